"""Exit codes, and errors in the command line's words: the one place the CLI decides both.

| code | meaning |
| 0 | done (copied, or already present) |
| 1 | failed: a registry error, an unreachable host, a digest mismatch, a credential failure, a deadline |
| 2 | bad input or usage: a reference, an option, a file |
| 3 | refused by a safety rule: a destination tag that would move |
| 130 | interrupted (Ctrl-C, SIGTERM): what completed is reported, nothing half-written is tagged |
"""

from __future__ import annotations

from promoter.errors import InputError, PromoterError, Remedy, RunInterruptedError
from promoter.outcome import Outcome, outcome_of

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
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


def cli_message(error: PromoterError) -> str:
    """The error's one line, with its remedy in the command line's terms (``(use --force to move
    it)``) where the CLI has one, else its hint."""
    text = _REMEDY_TEXT.get(error.remedy) if error.remedy is not None else None
    if text is None:
        return str(error)
    return text.format(error.message)
