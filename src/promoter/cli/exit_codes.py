"""Exit codes, and errors in the command line's words: the one place the CLI decides both.

| code | meaning |
| 0 | done (copied, or already present) |
| 1 | failed: a registry error, an unreachable host, a digest mismatch, a credential failure, a deadline |
| 2 | bad input or usage: a reference, an option, a file |
| 3 | refused by a safety rule: a destination tag that would move |
| 4 | drift (``status --exit-code``): an environment behind, diverged or differing, an image missing, a module run from a registry outside promoter.yaml |
| 130 | interrupted (Ctrl-C, SIGTERM): what completed is reported, nothing half-written is tagged |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promoter.errors import (
    CUT_MARK,
    LINE_SHOWN,
    InputError,
    PromoterError,
    Remedy,
    RunInterruptedError,
    one_line,
)
from promoter.outcome import Outcome, outcome_of

if TYPE_CHECKING:
    from promoter.app.runtime import SecretScrubber

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
#: ``status --exit-code``: an environment does not run what it should (behind, diverged, differs
#: from its source, or an image missing from its registry). A registry that could not be asked is
#: EXIT_FAILED instead, also when drift was found elsewhere: the check is incomplete.
EXIT_DRIFT = 4
EXIT_INTERRUPTED = 130

#: Seconds a command that talks to registries may run (``--timeout``): well inside the 600 s
#: ``activeDeadlineSeconds`` of the hook Job, whose packagings pass 80 % of theirs explicitly.
DEFAULT_TIMEOUT = 480.0

_BY_OUTCOME = {Outcome.DONE: EXIT_OK, Outcome.REFUSED: EXIT_REFUSED, Outcome.FAILED: EXIT_FAILED}

#: How the command line words an error with a remedy (as the CLI always did); {} is the message.
_REMEDY_TEXT = {
    Remedy.FORCE: "{} (use --force to move it)",
    Remedy.TRUST_CA: "{} (use --ca-file for a private CA)",
    Remedy.NAME_CONFIG: "{}; create one or pass --config",
    Remedy.NAME_REGISTRY: "give --registry HOST: {}",
    Remedy.SKIP_VERIFY: "{} (push first, or use --no-verify to write without checking)",
}


def exit_code_of(outcome: Outcome) -> int:
    """The exit code of an operation's outcome."""
    return _BY_OUTCOME[outcome]


def exit_code_for(error: BaseException) -> int:
    """The exit code of a command that ended with ``error``: 2 for bad input, else by outcome."""
    if isinstance(error, InputError):
        return EXIT_USAGE
    if isinstance(error, RunInterruptedError):
        return EXIT_INTERRUPTED
    return exit_code_of(outcome_of(error))


def cli_message(error: PromoterError, scrub: SecretScrubber | None = None) -> str:
    """The error's one line as the command line prints it (on standard error, and in ``-o json``):
    scrubbed of the run's secrets, escaped to one line and cut (:func:`promoter.errors.one_line`),
    with its remedy in the command line's terms (``(use --force to move it)``) where the CLI has
    one, else its hint.

    The error's fields are scrubbed first (in place, before anything formats or cuts them); the
    message is then cut so that the line, remedy or hint included, fits in
    :data:`~promoter.errors.LINE_SHOWN` characters.
    """
    if scrub is not None:
        scrub.error(error)
    message = error.message
    template = _REMEDY_TEXT.get(error.remedy) if error.remedy is not None else None
    if template is not None:
        before, _, after = template.partition("{}")
    else:  # the error's own wording of its hint ("; hint", or ": hint" for a registry's error)
        full = str(error)
        before, after = "", full[len(message) :] if full.startswith(message) else ""
    mark = len(CUT_MARK.format(len(message)))
    room = max(LINE_SHOWN - len(before) - len(after) - mark, LINE_SHOWN // 2)
    line = one_line(before + one_line(message, room) + after, LINE_SHOWN)
    return scrub(line) if scrub is not None else line
