"""What every command shares: exit codes, error lines, secret scrubbing, logging, the transport
built from the common options, and the progress display."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from promoter.authn.store import Credential, find_credential
from promoter.errors import ConfigError
from promoter.remote.copy import DEFAULT_JOBS
from promoter.transport.retry import RetryPolicy
from promoter.transport.session import Transport, TransportOptions

if TYPE_CHECKING:
    from promoter.cli.progress import TerminalProgress
    from promoter.gitops.config import RegistrySettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

log = logging.getLogger("promoter")


class SecretScrubber:
    """Remembers every secret loaded in this run and removes them from text we print or log."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def load(self, registry: str) -> Credential | None:
        """A credential loader for :class:`Transport` that records the secrets it hands out."""
        credential = find_credential(registry)
        if credential is not None:
            self.remember(*credential.secrets)
        return credential

    def remember(self, *secrets: str) -> None:
        """Add secrets to scrub."""
        with self._lock:
            self._secrets.update(s for s in secrets if len(s) >= 4)

    def __call__(self, text: str) -> str:
        with self._lock:
            for secret in self._secrets:
                text = text.replace(secret, "<redacted>")
        return text


class ScrubFilter(logging.Filter):
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


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for whole numbers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
        return value

    return parse


def add_jobs_option(parser: argparse.ArgumentParser, *, shown: bool = True) -> None:
    """``-j/--jobs N``: concurrent blob transfers, for every command that copies."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=int_at_least(1),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"concurrent blob transfers (default {DEFAULT_JOBS})" if shown else argparse.SUPPRESS,
    )


def error(message: str) -> None:
    print(f"promoter: error: {message}", file=sys.stderr)


def configure_logging(debug: bool, scrub: SecretScrubber) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter(scrub))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("promoter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def build_transport(
    args: argparse.Namespace,
    scrub: SecretScrubber,
    jobs: int = DEFAULT_JOBS,
    *,
    registries: Mapping[str, RegistrySettings] | None = None,
) -> Transport:
    """The transport for a run: the common options, plus per-registry settings from promoter.yaml."""
    registries = registries or {}
    ca_file = getattr(args, "ca_file", None)
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"--ca-file {ca_file}: no such file; give a PEM file of CA certificates")
    options = TransportOptions(
        ca_file=ca_file,
        ca_files={host: s.ca_file for host, s in registries.items() if s.ca_file is not None},
        endpoints={host: s.endpoint for host, s in registries.items() if s.endpoint},
        insecure_registries=frozenset(getattr(args, "insecure_registry", None) or ())
        | {host for host, s in registries.items() if s.insecure},
        retry=RetryPolicy(attempts=getattr(args, "retries", 4) + 1),
        pool_size=jobs * 2 + 4,
    )
    return Transport(options, credentials=scrub.load)


def terminal_progress(args: argparse.Namespace) -> TerminalProgress | None:
    """A progress display when standard error is a terminal (and --debug is not logging there)."""
    if not sys.stderr.isatty() or getattr(args, "debug", False):
        return None
    from promoter.cli.progress import TerminalProgress  # noqa: PLC0415 - rich only on a terminal

    return TerminalProgress()


def human_size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"
