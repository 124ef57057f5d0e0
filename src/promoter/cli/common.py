"""What every command shares: error lines, logging through the scrubber, the runtime built from the common
options, the progress display, and small output helpers. Exit codes live in :mod:`promoter.cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.runtime import Runtime, RuntimeSettings, SecretScrubber
from promoter.errors import LINE_SHOWN, ConfigError, InputError, one_line
from promoter.oci.referrers import (
    ALL_ATTACHMENTS,
    NO_ATTACHMENTS,
    Attachment,
    AttachmentFilter,
    AttachmentKind,
)
from promoter.process import children_running, run_undo, stop_children
from promoter.remote.copy import DEFAULT_JOBS, MAX_JOBS, CopyResult
from promoter.transport.pools import DEFAULT_REQUESTS, MAX_REQUESTS
from promoter.transport.watch import interrupt, interrupted, traffic_started

if TYPE_CHECKING:
    from promoter.cli.progress import TerminalProgress
    from promoter.config.values import RegistrySettings

__all__ = [
    "SecretScrubber",
    "add_jobs_option",
    "add_referrers_options",
    "add_requests_option",
    "as_json",
    "attachment_filter",
    "attachment_notes",
    "build_runtime",
    "build_runtime_settings",
    "check_output_path",
    "configure_logging",
    "describe_attachments",
    "error",
    "human_size",
    "int_at_least",
    "log",
    "print_table",
    "stop_on_signals",
    "terminal_progress",
    "warn",
]

log = logging.getLogger("promoter")


class ScrubFilter(logging.Filter):
    """Scrubs every log record (message and traceback) of the run's secrets."""

    def __init__(self, scrub: SecretScrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._scrub(record.getMessage())
        record.args = None
        if record.exc_info:  # render the traceback now, so that it is scrubbed too
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def positive_seconds(text: str) -> float:
    """An argparse type for a duration: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text!r}")
    return value


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type for whole numbers of at least ``minimum`` (and at most ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {value}")
        return value

    return parse


def add_jobs_option(parser: argparse.ArgumentParser, *, shown: bool = True) -> None:
    """``-j/--jobs N`` (concurrent blob streams) and ``--requests N`` (requests in flight), for
    every command that copies."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=int_at_least(1, MAX_JOBS),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"concurrent blob streams, for blobs over 64 KiB (default {DEFAULT_JOBS}, at most "
        f"{MAX_JOBS})"
        if shown
        else argparse.SUPPRESS,
    )
    add_requests_option(parser, shown=shown)


def add_requests_option(parser: argparse.ArgumentParser, *, shown: bool = True) -> None:
    """``--requests N``: requests in flight, for every command that talks to registries in
    bulk (README "Concurrency and far links")."""
    parser.add_argument(
        "--requests",
        type=int_at_least(1, MAX_REQUESTS),
        default=DEFAULT_REQUESTS,
        metavar="N",
        help="requests in flight: images at once, lookups, manifests, small blobs, mounts "
        f"(default {DEFAULT_REQUESTS}, at most {MAX_REQUESTS})"
        if shown
        else argparse.SUPPRESS,
    )


def add_referrers_options(parser: argparse.ArgumentParser) -> None:
    """``--no-referrers`` and ``--referrers-type TYPE``: what travels with an image, for every
    command that copies or plans (README "Signatures, attestations and SBOMs")."""
    group = parser.add_argument_group("attachments (signatures, attestations, SBOMs)")
    group.add_argument(
        "--no-referrers",
        action="store_true",
        help="copy images without what is attached to them (OCI referrers, cosign .sig/.att/.sbom "
        "tags); by default they travel with every image",
    )
    group.add_argument(
        "--referrers-type",
        action="append",
        default=[],
        metavar="TYPE",
        help="carry only attachments of this artifact type (repeatable), e.g. "
        "application/vnd.dev.sigstore.bundle.v0.3+json; what is attached to them travels too",
    )


def attachment_filter(args: argparse.Namespace) -> AttachmentFilter:
    """The :class:`~promoter.oci.referrers.AttachmentFilter` of ``--no-referrers`` and
    ``--referrers-type``.

    Raises:
        InputError: both are given, or a type is empty.
    """
    # Repeatable, and comma-separated within one value as well (media types hold no comma).
    types = [t.strip() for v in getattr(args, "referrers_type", None) or [] for t in v.split(",")]
    if getattr(args, "no_referrers", False):
        if types:
            raise InputError("--no-referrers and --referrers-type contradict each other; give one")
        return NO_ATTACHMENTS
    if any(not t for t in types):
        raise InputError("--referrers-type needs an artifact type, e.g. application/spdx+json")
    return AttachmentFilter(artifact_types=frozenset(types)) if types else ALL_ATTACHMENTS


#: How :func:`describe_attachments` names each kind, one and many.
_KIND_WORDS = {
    AttachmentKind.SIGNATURE: ("signature", "signatures"),
    AttachmentKind.ATTESTATION: ("attestation", "attestations"),
    AttachmentKind.SBOM: ("SBOM", "SBOMs"),
    AttachmentKind.REFERRER: ("referrer", "referrers"),
}


def describe_attachments(attachments: Sequence[Attachment]) -> str:
    """``3 signatures, 1 referrer``: how many of each kind."""
    counted = []
    for kind, (one, many) in _KIND_WORDS.items():
        n = sum(1 for a in attachments if a.kind is kind)
        if n:
            counted.append(f"{n} {one if n == 1 else many}")
    return ", ".join(counted)


def attachment_notes(result: CopyResult) -> list[str]:
    """Warning lines about what a copy did or left with attachments: each signature tag
    ``--force`` moved (what only it held is gone), each referrer the source lists but no longer
    has, the types ``--referrers-type`` left behind."""
    notes = [
        f"moved {result.destination.name}:{tag} from {held}: "
        + ("signatures only it held are gone" if lost else "it held nothing the new one lacks")
        for tag, held, lost in result.moved_tags
    ]
    notes.extend(
        f"{result.destination}: the source lists referrer {a.digest} of {a.subject}, which it no "
        "longer has: left out (remove it from the source's referrers index)"
        for a in result.dangling
    )
    if result.left_behind:
        notes.append(
            f"{result.destination}: attachments of type {', '.join(sorted(result.left_behind))} "
            "stayed behind (not in --referrers-type)"
        )
    return notes


#: The run's scrubber, set by :func:`configure_logging`: every error and warning line passes it.
_scrub: SecretScrubber | None = None


def _line(message: str) -> str:
    """The one place a printed error or warning line is made: scrubbed of the run's secrets, then
    escaped to one line and cut to :data:`~promoter.errors.LINE_SHOWN` characters."""
    if _scrub is not None:
        message = _scrub(message)
    line = one_line(message, LINE_SHOWN)
    return _scrub(line) if _scrub is not None else line  # a secret split by the cut


def error(message: str) -> None:
    """An error line on standard error (see :func:`_line`)."""
    print(f"promoter: error: {_line(message)}", file=sys.stderr)


def warn(message: str) -> None:
    """A warning line on standard error (see :func:`_line`)."""
    print(f"promoter: warning: {_line(message)}", file=sys.stderr)


def as_json(args: argparse.Namespace) -> bool:
    """Whether ``-o json`` was asked for."""
    return getattr(args, "output", "text") == "json"


def configure_logging(debug: bool, scrub: SecretScrubber) -> None:
    """Log to standard error through the scrubber; DEBUG with ``--debug``, else warnings. urllib3's
    warnings go through the same scrubbing handler (never its debug lines: they show whole URLs,
    query strings included); error and warning lines (:func:`error`) use the same scrubber."""
    global _scrub  # noqa: PLW0603 - one scrubber per CLI run, like the logging handlers below
    _scrub = scrub
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter(scrub))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("promoter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False
    urllib3_log = logging.getLogger("urllib3")
    urllib3_log.handlers[:] = [handler]
    urllib3_log.setLevel(logging.WARNING)
    urllib3_log.propagate = False


def build_runtime_settings(
    args: argparse.Namespace, *, registries: Mapping[str, RegistrySettings] | None = None
) -> RuntimeSettings:
    """The runtime settings of a command: the common options, plus per-registry settings from
    promoter.yaml.

    Raises:
        ConfigError: ``--ca-file`` names no file.
    """
    ca_file = getattr(args, "ca_file", None)
    if ca_file is not None and not ca_file.is_file():
        what = "not a regular file" if ca_file.exists() else "no such file"
        raise ConfigError(f"--ca-file {ca_file}: {what}; give a PEM file of CA certificates")
    return RuntimeSettings(
        ca_file=ca_file,
        insecure_registries=frozenset(getattr(args, "insecure_registry", None) or ()),
        retries=getattr(args, "retries", 4),
        jobs=getattr(args, "jobs", DEFAULT_JOBS),
        requests=getattr(args, "requests", DEFAULT_REQUESTS),
        registries=dict(registries or {}),
    )


def build_runtime(
    args: argparse.Namespace,
    scrub: SecretScrubber,
    *,
    registries: Mapping[str, RegistrySettings] | None = None,
) -> Runtime:
    """The runtime for a command (see :func:`build_runtime_settings`).

    Raises:
        ConfigError: ``--ca-file`` names no file.
    """
    return Runtime(build_runtime_settings(args, registries=registries), scrubber=scrub)


def terminal_progress(args: argparse.Namespace) -> TerminalProgress | None:
    """A progress display when standard error is a terminal (and --debug is not logging there)."""
    if not sys.stderr.isatty() or getattr(args, "debug", False):
        return None
    from promoter.cli.progress import TerminalProgress  # noqa: PLC0415 - rich only on a terminal

    return TerminalProgress()


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def human_size(nbytes: int) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"


@contextmanager
def stop_on_signals(*, owns_process: bool = False) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM stop the run promptly while the block runs: the first cuts every
    registry exchange and stops retries (:func:`promoter.transport.watch.interrupt`) and kills every
    child process (kustomize, credential helpers: :func:`promoter.process.stop_children`), so each
    operation ends with an "interrupted" error, undoes what it wrote (promote puts the
    kustomization back) and the command reports what completed; a second Ctrl-C kills any child
    still running and exits at once (130), without a traceback (a repeated SIGTERM changes
    nothing). Outside the main thread (a caller's thread), nothing changes.

    With ``owns_process`` (the console script), the handlers are not given back afterwards: a
    signal that comes once the run is over, while the process flushes its output and ends, is
    ignored and leaves the run's exit code as it is (the default action would kill it, 143),
    except that a Ctrl-C after an interrupt still ends it at once (130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        if interrupted():
            # Only a second Ctrl-C forces the exit: a SIGTERM may arrive twice for one stop
            # (GNU timeout signals the process and then its group), and should not cost the report.
            if signum == signal.SIGINT:
                stop_children()  # none is left running without its parent
                run_undo()  # nor a half-done write (promote's unchecked edit)
                os.write(2, b"promoter: error: interrupted again: stopping at once\n")
                os._exit(130)
            return
        interrupt()
        stop_children()
        if not traffic_started() and not children_running():
            # Nothing sent or started yet (reading standard input): nothing to report or cancel,
            # and a blocked read would not notice the cut, so stop here.
            raise KeyboardInterrupt

    def over(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and interrupted():
            os.write(2, b"promoter: error: interrupted again: stopping at once\n")
            os._exit(130)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if not owns_process:
                signal.signal(sig, handler)
            elif sig == signal.SIGINT and interrupted():
                signal.signal(sig, over)
            else:
                # Ignored, not handled in Python: the interpreter gives Python handlers back to
                # the default action while it finalizes, and the signal would kill it then.
                signal.signal(sig, signal.SIG_IGN)


def check_output_path(path: Path, what: str, *, replaces: str = "") -> None:
    """Check, before any work starts, that a file can be written at ``path``, and may be.

    The folder is tried for real (a temporary file made and removed): permission bits say
    nothing for root, nor for ``/proc`` or a read-only mount. What is at ``path`` already must
    be a regular file, never a device, a pipe or a link (a write renames over it), and, when
    ``replaces`` is given, a file that starts with it (case aside): an output never replaces a
    file of another kind (``--html promoter.yaml``).

    Args:
        path: the file to write.
        what: the option naming it, for messages.
        replaces: how a file this output may replace begins (``<!DOCTYPE html``, ``{``).

    Raises:
        ConfigError: ``path`` is a directory, a device, a pipe or a link, a file of another
            kind, its directory does not exist or cannot be written.
    """
    parent = path.parent if str(path.parent) else Path()
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: directory {parent} does not exist; create it first")
    if os.path.lexists(path):
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise ConfigError(f"{what} {path}: is {kind}; give the path of a file to write")
        try:
            with path.open("rb") as existing:
                start = existing.read(len(replaces.encode()) + 64)
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from exc
        if (
            replaces
            and start.strip()
            and not start.lstrip().lower().startswith(replaces.lower().encode())
        ):
            raise ConfigError(
                f"{what} {path}: exists and is not what this writes (it does not start with "
                f"{replaces!r}); name a new file or remove it first"
            )
    try:
        descriptor, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(descriptor)
        Path(probe).unlink()
    except OSError as exc:
        raise ConfigError(
            f"{what} {path}: cannot be written ({exc.strerror or exc}); choose another path"
        ) from None
