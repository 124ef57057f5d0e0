"""The runtime of a run or a process: settings in, transport, credential chain, ECR preparer and secret
scrubber out.

Every front end builds one :class:`Runtime` (the CLI per command, the webhook once per process, a Python
caller through :class:`promoter.Session`) and hands it to the operations of this package. The ECR objects
are made on first use, so runs that never meet ECR never import boto3.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from promoter.authn.chain import CredentialChain, CredentialSource, docker_sources
from promoter.authn.store import Credential
from promoter.config.values import RegistrySettings
from promoter.ecr.hosts import is_ecr_host
from promoter.errors import (
    CUT_MARK,
    ConfigError,
    InputError,
    PromoterError,
    RegistryError,
    RegistryErrorDetail,
    TagConflictError,
)
from promoter.reference import Reference, parse_reference
from promoter.remote.copy import DEFAULT_JOBS, CopyOptions, check_concurrency
from promoter.transport.auth import CredentialProvider
from promoter.transport.pools import DEFAULT_REQUESTS, TransportOptions
from promoter.transport.retry import RetryPolicy
from promoter.transport.session import Transport

if TYPE_CHECKING:
    from promoter.ecr.api import EcrApi
    from promoter.ecr.settings import EcrSettings


class SecretScrubber:
    """Remembers every secret of a run and removes it from text that is printed, logged or handed to a
    Python caller. Thread-safe.

    What it is given (a password, an identity token, the base64 ``user:password`` of Basic auth, a
    registry token as fetched, an ECR token) is learned in every form a server might echo back: as
    given, percent-encoded, and for base64 text also without padding and in the URL-safe alphabet.
    A secret that a cut (:data:`promoter.errors.CUT_MARK`) split in two is removed too: the part
    before the mark, when at least :attr:`MIN_LENGTH` characters of it begin a secret.
    """

    #: Shorter strings are not secrets worth scrubbing (and would mangle ordinary words).
    MIN_LENGTH = 4
    REDACTED = "<redacted>"

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def remember(self, *secrets: str) -> None:
        """Add secrets to scrub, in every form (see the class docstring)."""
        forms = {form for secret in secrets for form in secret_forms(secret)}
        with self._lock:
            new = {f for f in forms if len(f) >= self.MIN_LENGTH} - self._secrets
            if new:
                self._secrets |= new
                self._ordered = sorted(self._secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = self._ordered
        if not secrets:
            return text
        for secret in secrets:  # longest first: a padded form before its unpadded prefix
            if secret in text:
                text = text.replace(secret, self.REDACTED)
        if " [... " in text:
            text = self._cut_tails(text, secrets)
        return text

    def _cut_tails(self, text: str, secrets: list[str]) -> str:
        """Remove the start of a secret that a cut mark split: the characters just before a mark
        that begin a secret (at least :attr:`MIN_LENGTH` of them)."""
        pieces: list[str] = []
        done = 0
        for mark in _CUT.finditer(text):
            before = text[done : mark.start()]
            pieces.append(self._without_secret_start(before, secrets) + mark.group(0))
            done = mark.end()
        pieces.append(text[done:])
        return "".join(pieces)

    def _without_secret_start(self, before: str, secrets: list[str]) -> str:
        for secret in secrets:
            for size in range(min(len(secret) - 1, len(before)), self.MIN_LENGTH - 1, -1):
                if before.endswith(secret[:size]):
                    return before[:-size] + self.REDACTED
        return before

    def error(self, error: BaseException) -> BaseException:
        """Scrub ``error`` in place, with its causes, so that ``str()``, ``repr()`` and tracebacks
        show no secret; returns it. Fields are scrubbed before they are formatted (and cut), so a
        cut cannot hide a secret from the scrubber."""
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self._scrub_fields(current)
            current = current.__cause__ or current.__context__
        return error

    def _scrub_fields(self, error: BaseException) -> None:
        if isinstance(error, RegistryError):
            error.details = tuple(
                RegistryErrorDetail(self(d.code), self(d.message)) for d in error.details
            )
            error.url, error.what = self(error.url), self(error.what)
        if isinstance(error, PromoterError):
            error.hint = self(error.hint)
        with contextlib.suppress(AttributeError, TypeError):  # exceptions that fix their args
            error.args = tuple(self(a) if isinstance(a, str) else a for a in error.args)
        notes = getattr(error, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [self(n) if isinstance(n, str) else n for n in notes]


#: A cut mark (:data:`promoter.errors.CUT_MARK`) with its count.
_CUT = re.compile(re.escape(CUT_MARK).replace(r"\{\}", r"\d+"))


def secret_forms(secret: str) -> set[str]:
    """The forms in which ``secret`` may come back from a server: as given, percent-encoded (a
    form body or query), hex-encoded, base64-encoded itself, and, for base64 text (Basic auth's
    ``user:password``, an ECR token, the secret's own base64), without padding and in the URL-safe
    alphabet."""
    if not secret:
        return set()
    raw = secret.encode("utf-8", "surrogatepass")
    encoded = base64.b64encode(raw).decode()
    forms = {secret, quote(secret, safe=""), raw.hex(), raw.hex().upper()}
    for text in (secret, encoded):
        if _BASE64.fullmatch(text):
            for form in (text, text.translate(_URL_SAFE)):
                forms |= {form, form.rstrip("="), quote(form, safe="")}
    return forms


_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_URL_SAFE = str.maketrans("+/", "-_")


def _frozen(mapping: Mapping[str, RegistrySettings] | None) -> Mapping[str, RegistrySettings]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """How to reach registries, for every operation of a run.

    Attributes:
        ca_file: extra CA certificates (PEM) trusted for every registry.
        insecure_registries: hosts reached over plain HTTP or unverified TLS.
        retries: retries of a failed request (408, 429, 5xx, dropped connections).
        jobs: concurrent blob streams (bandwidth-bound: blobs over
            :data:`~promoter.remote.blobs.SMALL_BLOB`).
        requests: requests in flight for latency-bound work: registry lookups, images copied at
            once, manifest reads and writes, small blobs.
        registries: promoter.yaml's ``registries:`` settings by host (endpoints, CAs, ECR).
        credential_ttl: seconds a credential without expiry (docker config) is kept before it is read
            again; a long-running process picks up rotated credentials after this.
        answer_timeout: seconds a registry may take to answer one request as a whole (status line,
            headers and a body read whole), however slowly it drips them.
        stall_window, stall_bytes: a streaming blob that moves fewer than ``stall_bytes`` bytes in
            ``stall_window`` seconds is stalled: cut and retried within the run's deadline.
        pool_size: connections kept per registry host; None for what ``jobs`` streams and
            ``requests`` in flight need. A
            server with many concurrent lookups (the webhook) keeps one per lookup thread, so that
            none pays a new connection (a round trip, a TLS handshake) under load.
    """

    ca_file: Path | None = None
    insecure_registries: frozenset[str] = frozenset()
    retries: int = 4
    jobs: int = DEFAULT_JOBS
    requests: int = DEFAULT_REQUESTS
    registries: Mapping[str, RegistrySettings] = field(default_factory=lambda: _frozen(None))
    credential_ttl: float = 300.0
    answer_timeout: float = 120.0
    stall_window: float = 30.0
    stall_bytes: int = 64 * 1024
    pool_size: int | None = None

    def __post_init__(self) -> None:
        """Refuse what the CLI's options refuse.

        Raises:
            InputError: ``jobs`` or ``requests`` out of range, ``retries`` not a whole number of
                at least 0.
        """
        check_concurrency(self.jobs, self.requests)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InputError(
                f"retries: expected a whole number of at least 0, got {self.retries!r}"
            )

    def transport_options(self) -> TransportOptions:
        """The transport's options.

        Raises:
            ConfigError: ``ca_file`` does not exist.
        """
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(
                f"CA file {self.ca_file}: no such file", hint="give a PEM file of CA certificates"
            )
        registries = self.registries
        return TransportOptions(
            ca_file=self.ca_file,
            ca_files={h: s.ca_file for h, s in registries.items() if s.ca_file is not None},
            endpoints={h: s.endpoint for h, s in registries.items() if s.endpoint},
            insecure_registries=frozenset(self.insecure_registries)
            | {h for h, s in registries.items() if s.insecure},
            retry=RetryPolicy(attempts=self.retries + 1),
            read_timeout=self.answer_timeout,
            stall_window=self.stall_window,
            stall_bytes=self.stall_bytes,
            pool_size=self.pool_size or self.connections,
        )

    @property
    def connections(self) -> int:
        """Connections a run may use at once per registry host, which the pools keep. A copy
        whose source and destination are one registry asks it from every worker at once: the
        images' own threads, the manifest lookups', the attachment lookups', the small blobs' and
        the upload sessions' (``requests`` each), and each blob stream from both its ends (2 x
        ``jobs``); a few more for a token or a ping. Only connections needed are opened; a
        smaller pool would close the surplus after each burst and open it again (urllib3 says
        "Connection pool is full, discarding connection"), a round trip each over a far link."""
        return 5 * self.requests + 2 * self.jobs + 4

    def copy_options(self, **options: Any) -> CopyOptions:
        """Copy options with this run's concurrency (``jobs``, ``requests``) and ``options``."""
        return CopyOptions(jobs=self.jobs, requests=self.requests, **options)

    @property
    def ecr_settings(self) -> dict[str, EcrSettings]:
        """``registries.<host>.ecr`` by host."""
        return {h: s.ecr for h, s in self.registries.items() if s.ecr is not None}

    @property
    def not_ecr(self) -> frozenset[str]:
        """ECR-named hosts served by something else: an ``endpoint`` without an ``ecr`` section (a
        mirror, a local registry standing in for ECR) gets no tokens and no repository creation."""
        return frozenset(h for h, s in self.registries.items() if s.endpoint and s.ecr is None)


class Runtime:
    """Transport, credential chain, ECR side and scrubber of one run or process. Thread-safe.

    Args:
        settings: how to reach registries.
        scrubber: the scrubber to feed; a new one by default.
        credentials: a credential provider to use instead of the chain (``promoter login`` checks
            one given credential).

    Raises:
        ConfigError: the CA file does not exist.
    """

    def __init__(
        self,
        settings: RuntimeSettings | None = None,
        *,
        scrubber: SecretScrubber | None = None,
        credentials: CredentialProvider | None = None,
    ) -> None:
        self.settings = settings or RuntimeSettings()
        self.scrubber = scrubber or SecretScrubber()
        self._lock = threading.Lock()
        self._api: EcrApi | None = None
        if credentials is None:
            credentials = CredentialChain(
                [*docker_sources(), _LazyEcrSource(self)],
                remember=self.scrubber.remember,
                ttl=self.settings.credential_ttl,
            )
        self.credentials = credentials
        self.transport = Transport(
            self.settings.transport_options(), credentials, remember=self.scrubber.remember
        )

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pools."""
        self.transport.close()

    # -- ECR ---------------------------------------------------------------------------------------

    @property
    def ecr_api(self) -> EcrApi:
        """The AWS side, shared by tokens, repository creation and grant-pull; made on first use."""
        with self._lock:
            if self._api is None:
                from promoter.ecr.api import EcrApi  # noqa: PLC0415 - only runs that meet ECR

                self._api = EcrApi(self.settings.ecr_settings)
            return self._api

    def is_ecr(self, registry: str) -> bool:
        """Whether ``registry`` is an ECR registry reached as ECR (tokens, repository creation)."""
        return registry not in self.settings.not_ecr and is_ecr_host(registry)

    def prepare_destination(self, registry: str, repository: str) -> bool:
        """The copier's hook: create a missing ECR repository; nothing for other registries.
        True when it created the repository (then it holds no blob yet).

        Raises:
            CredentialError, ConfigError, AwsApiError: AWS refused or failed.
        """
        if not self.is_ecr(registry):
            return False
        from promoter.ecr.repositories import RepositoryPreparer  # noqa: PLC0415 - see ecr_api

        # A preparer of its own per call: the copier already prepares each repository once per run,
        # and what a preparer remembers must not outlive the run (a repository deleted since
        # would never be created again in a long-running process).
        return RepositoryPreparer(self.ecr_api)(registry, repository)

    def immutable_hint(self, destination: Reference) -> str | None:
        """The explanation for a refused tag move when an ECR repository keeps that tag immutable
        (then forcing cannot move it either); None otherwise, and on any AWS failure."""
        if destination.tag is None or not self.is_ecr(destination.registry):
            return None
        from promoter.ecr.repositories import immutable_tag_setting  # noqa: PLC0415 - see ecr_api

        setting = immutable_tag_setting(
            self.ecr_api, destination.registry, destination.repository, destination.tag
        )
        if setting is None:
            return None
        return (
            f"the tag is immutable in that ECR repository (imageTagMutability {setting}) and "
            "cannot be moved, not even by forcing the copy: promote under a new tag"
        )

    def explain_conflict(self, error: TagConflictError) -> TagConflictError:
        """The same refusal, with :meth:`immutable_hint` as its hint when there is one."""
        hint = self.immutable_hint(parse_reference(error.destination))
        if hint is None:
            return error
        explained = TagConflictError(
            error.destination, error.existing, error.wanted, hint=hint, remedy=None
        )
        explained.__cause__ = error
        return explained


class _LazyEcrSource:
    """The AWS identity as the chain's last source, made on first use so that runs without ECR never
    import boto3."""

    name = "AWS identity"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._source: CredentialSource | None = None
        self._lock = threading.Lock()

    def _real(self) -> CredentialSource:
        with self._lock:
            if self._source is None:
                from promoter.ecr.credentials import EcrTokenSource  # noqa: PLC0415

                self._source = EcrTokenSource(self._runtime.ecr_api, is_ecr=self._runtime.is_ecr)
            return self._source

    def lookup(self, registry: str) -> Credential | None:
        """An ECR token for an ECR host; None for any other host (without loading boto3)."""
        if not self._runtime.is_ecr(registry):
            return None
        return self._real().lookup(registry)

    def renew(self, registry: str) -> Credential | None:
        """A fresh ECR token."""
        if not self._runtime.is_ecr(registry):
            return None
        return self._real().renew(registry)

    def describe(self, registry: str, credential: Credential) -> str:
        """``AWS identity <arn>``."""
        return self._real().describe(registry, credential)


def registry_settings_of(path: Path | None) -> Mapping[str, RegistrySettings]:
    """promoter.yaml's ``registries:`` alone (the in-cluster sync needs only these), or nothing.

    Raises:
        ConfigError: the file is invalid.
    """
    if path is None:
        return _frozen(None)
    from promoter.config.load import load_config  # noqa: PLC0415 - pydantic only with a file

    return _frozen(load_config(path, registries_only=True).registries)
