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
from promoter.ecr.hosts import is_ecr_host
from promoter.errors import ConfigError
from promoter.remote.copy import DEFAULT_JOBS, PrepareDestination
from promoter.transport.retry import RetryPolicy
from promoter.transport.session import Transport, TransportOptions

if TYPE_CHECKING:
    from promoter.cli.progress import TerminalProgress
    from promoter.ecr.api import EcrApi
    from promoter.ecr.credentials import EcrCredentials
    from promoter.ecr.repositories import RepositoryPreparer
    from promoter.ecr.settings import EcrSettings
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


class RegistryCredentials:
    """The credential loader of a run, for every command: the docker config first, then ECR.

    The docker config (and its credential helpers, ``docker-credential-ecr-login`` included) wins, as
    for any registry; an ECR host it has nothing for gets a token from the AWS identity (boto3's
    chain, ``ecr.roleArn``). Every secret handed out is remembered by the scrubber. The ECR objects
    are made on first use, so runs without ECR never import boto3.

    Args:
        scrub: the run's scrubber; its loader reads the docker config.
        ecr_settings: ``registries.<host>.ecr`` from promoter.yaml, by host.
        not_ecr: ECR-named hosts that are served by something else (an ``endpoint`` without an
            ``ecr`` section: a mirror or a local stand-in), which get no AWS treatment.
    """

    def __init__(
        self,
        scrub: SecretScrubber,
        ecr_settings: Mapping[str, EcrSettings],
        not_ecr: frozenset[str] = frozenset(),
    ) -> None:
        self._scrub = scrub
        self._ecr_settings = dict(ecr_settings)
        self._not_ecr = not_ecr
        self._lock = threading.Lock()
        self._api: EcrApi | None = None
        self._tokens: EcrCredentials | None = None
        self._preparer: RepositoryPreparer | None = None

    @property
    def ecr_api(self) -> EcrApi:
        """The run's AWS side, shared by tokens, repository creation and grant-pull."""
        with self._lock:
            if self._api is None:
                from promoter.ecr.api import EcrApi  # noqa: PLC0415 - only runs that meet ECR

                self._api = EcrApi(self._ecr_settings)
            return self._api

    def is_ecr(self, registry: str) -> bool:
        """Whether ``registry`` is an ECR registry reached as ECR (tokens, repository creation)."""
        return registry not in self._not_ecr and is_ecr_host(registry)

    def __call__(self, registry: str) -> Credential | None:
        credential = self._scrub.load(registry)
        if credential is not None or not self.is_ecr(registry):
            return credential
        from promoter.ecr.credentials import EcrCredentials  # noqa: PLC0415 - see the class

        api = self.ecr_api
        with self._lock:
            if self._tokens is None:
                self._tokens = EcrCredentials(api)
            tokens = self._tokens
        credential = tokens(registry)
        if credential is not None:
            self._scrub.remember(*credential.secrets)
        return credential

    def prepare_destination(self, registry: str, repository: str) -> None:
        """The copier's hook: create missing ECR repositories; nothing for other registries."""
        if not self.is_ecr(registry):
            return
        from promoter.ecr.repositories import RepositoryPreparer  # noqa: PLC0415 - see the class

        api = self.ecr_api
        with self._lock:
            if self._preparer is None:
                self._preparer = RepositoryPreparer(api)
            preparer = self._preparer
        preparer(registry, repository)

    def immutable_note(self, registry: str, repository: str, tag: str | None) -> str:
        """A sentence for a refused tag move when an ECR repository keeps that tag immutable,
        since then ``--force`` cannot help; empty otherwise."""
        if tag is None or not self.is_ecr(registry):
            return ""
        from promoter.ecr.repositories import immutable_tag_setting  # noqa: PLC0415 - see class

        setting = immutable_tag_setting(self.ecr_api, registry, repository, tag)
        if setting is None:
            return ""
        return (
            f"; the tag is immutable in that ECR repository (imageTagMutability {setting}) and "
            "cannot be moved, not even with --force: promote under a new tag"
        )


def immutable_note(transport: Transport, registry: str, repository: str, tag: str | None) -> str:
    """:meth:`RegistryCredentials.immutable_note` for a transport made by :func:`build_transport`."""
    loader = transport.credential_loader
    if isinstance(loader, RegistryCredentials):
        return loader.immutable_note(registry, repository, tag)
    return ""


def destination_preparer(transport: Transport) -> PrepareDestination | None:
    """The ``prepare_destination`` hook for a transport made by :func:`build_transport`."""
    loader = transport.credential_loader
    return loader.prepare_destination if isinstance(loader, RegistryCredentials) else None


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
    ecr = {host: s.ecr for host, s in registries.items() if s.ecr is not None}
    # An endpoint without an ecr section sends an ECR-named host's requests to something that is
    # not ECR (a mirror, a local registry standing in for it): no tokens, no repository creation.
    not_ecr = frozenset(h for h, s in registries.items() if s.endpoint and s.ecr is None)
    return Transport(options, credentials=RegistryCredentials(scrub, ecr, not_ecr))


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
