"""The credential chain: where a registry's credential comes from, asked again when it stops working.

Sources are asked in order, first hit wins (docker's rule): the docker config (``credHelpers``, ``auths``,
``credsStore``), then the containers auth.json files, then (for ECR hosts, added by the runtime) the AWS
identity. The chain keeps what it found per registry, and asks again:

* when a credential's ``renew_at`` has passed (an ECR token is renewed before it expires: 12 hours, ECR
  user guide, "Private registry authentication");
* after ``ttl`` seconds for credentials that do not expire (a docker config a long-running process reads may
  be rotated under it), and a few seconds after a refusal that no other source could answer (a repaired
  ``docker login`` is picked up soon);
* when a registry refuses a credential (:meth:`CredentialChain.refused`): a source whose token the registry
  calls expired is asked for a fresh one once; otherwise the source is passed over for that registry and the
  next one is asked (a stale ``docker login`` entry for an ECR host falls back to the AWS identity). When
  no other source has a credential, the refused one stays on offer: refusals never turn a run anonymous.

No HTTP here: the transport reports refusals, the chain only decides what to offer next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from promoter.authn.store import (
    Credential,
    containers_auth_credential,
    docker_config_credential,
)
from promoter.deadline import KeyedLocks
from promoter.errors import PromoterError

#: Seconds a credential without an expiry is kept before its source is read again.
DEFAULT_TTL = 300.0
#: Refused sources remembered per registry for messages.
_REFUSALS_KEPT = 4
#: Seconds after a renewal on refusal during which another "expired" refusal is not believed.
_RENEWED_GRACE = 1.0
#: Seconds after a renewal during which a refusal without a reason does not renew again.
_UNEXPLAINED_GRACE = 60.0
#: Seconds a refused credential that nothing replaced is kept before the sources are read again, so
#: that a repaired ``docker login`` reaches a long-running process soon, not after the whole TTL.
REFUSED_RECHECK = 5.0


class CredentialSource(Protocol):
    """One place credentials come from."""

    name: str  #: how messages call the source when it has nothing or was refused

    def lookup(self, registry: str) -> Credential | None:
        """The credential for ``registry``, or None when this source has none."""

    def renew(self, registry: str) -> Credential | None:
        """A fresh credential after the registry called the current one expired; None when this
        source cannot make a new one."""

    def describe(self, registry: str, credential: Credential) -> str:
        """The source of ``credential`` as a message names it (``AWS identity arn:...``)."""


class FunctionSource:
    """A source made of a lookup function, for sources whose credentials cannot be renewed."""

    def __init__(self, name: str, lookup: Callable[[str], Credential | None]) -> None:
        self.name = name
        self._lookup = lookup

    def lookup(self, registry: str) -> Credential | None:
        """Ask the function."""
        return self._lookup(registry)

    def renew(self, registry: str) -> Credential | None:  # noqa: ARG002 - interface
        """Files and helpers give the same answer again: nothing to renew."""
        return None

    def describe(self, registry: str, credential: Credential) -> str:  # noqa: ARG002 - interface
        """The label the credential carries."""
        return credential.source or self.name


def docker_sources() -> list[CredentialSource]:
    """The sources every registry has: the docker config, then the containers auth.json files."""
    return [
        FunctionSource("docker config", docker_config_credential),
        FunctionSource("containers auth.json", containers_auth_credential),
    ]


@dataclass(slots=True)
class _Entry:
    """What the chain currently offers for one registry."""

    credential: Credential | None
    source: int  #: index of the source it came from (len(sources) for none)
    found_at: float
    refused: dict[int, float] = field(default_factory=dict)  #: source index -> when it was refused
    refusals: list[str] = field(default_factory=list)  #: messages' names of refused sources
    renewed_at: float | None = None  #: when a refusal last made the source renew the credential
    recheck_at: float | None = None  #: when to read the sources again after an unfixed refusal


class CredentialChain:
    """Credentials per registry from a list of sources, renewed as described in the module docstring.

    Thread-safe; one chain serves a whole process.

    Args:
        sources: the sources in the order they are asked.
        remember: called with every secret handed out, so that output can be scrubbed of it.
        ttl: seconds before a credential without expiry, or a refusal, is forgotten.
        clock: monotonic seconds, replaceable in tests.
    """

    def __init__(
        self,
        sources: Sequence[CredentialSource] | None = None,
        *,
        remember: Callable[..., None] | None = None,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = list(sources) if sources is not None else docker_sources()
        self._remember = remember
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks = KeyedLocks()

    def get(self, registry: str) -> Credential | None:
        """The credential to send to ``registry`` now, or None for anonymous access.

        Raises:
            ConfigError, CredentialError: a source is broken (unreadable config, failing helper,
                no AWS identity).
        """
        with self._locks.hold(registry, f"read credentials for {registry}"):
            entry = self._entries.get(registry)
            now = self._clock()
            if entry is not None and self._fresh(entry, now):
                return entry.credential
            refused = self._live_refusals(entry, now)
            found = self._find(registry, start=0, refused=refused, now=now)
            if found.credential is None and refused:
                # Every source that has something was refused: offer the first of them again
                # rather than nothing (a refusal may be about one repository, not the credential).
                found = self._find(registry, start=min(refused), refused={}, now=now)
                found.refused = refused
            found.refusals = entry.refusals if entry is not None else []
            self._entries[registry] = found
            return found.credential

    def refused(
        self,
        registry: str,
        credential: Credential,
        *,
        expired: bool,
        maybe_expired: bool = False,
        proven: bool = False,
    ) -> Credential | None:
        """The registry refused ``credential``: what to offer instead, or None when nothing else is.

        A source whose credential the registry called expired is asked for a fresh one, unless it
        handed out a fresh one less than a second ago (a token refused at once did not expire). Any
        other refusal passes over the source for this registry and asks the next ones; a source that
        fails while asked is named with its reason. When no other source has a credential, the
        refused one stays on offer (a 403 may concern one repository only) and None is returned.

        Args:
            registry: the registry host.
            credential: the credential that was sent.
            expired: the registry said the credential (a token) expired.
            maybe_expired: the registry gave no reason (the answer to a HEAD has no body); the
                source renews at most once a minute on such refusals, so that a repository the
                credential may not read does not cost a token request every time.
            proven: the registry accepted this credential before: it is not passed over (the
                refusal concerns something else), only re-read from its source a few seconds on.
        """
        with self._locks.hold(registry, f"read credentials for {registry}"):
            now = self._clock()
            entry = self._entries.get(registry)
            if entry is None or entry.credential is None:
                return None
            if entry.credential != credential:
                return entry.credential  # another request already moved on
            source = self.sources[entry.source]
            grace = _RENEWED_GRACE if expired else _UNEXPLAINED_GRACE
            recently = entry.renewed_at is not None and now - entry.renewed_at < grace
            if (expired or maybe_expired) and not recently:
                try:
                    fresh = source.renew(registry)
                except PromoterError as exc:
                    fresh = None
                    entry.refusals = self._noted(entry.refusals, f"{source.name} ({exc.message})")
                if fresh is not None and fresh != credential:
                    self._offer(fresh)
                    entry.credential, entry.found_at, entry.renewed_at = fresh, now, now
                    return fresh
            if proven:
                if entry.recheck_at is None:
                    entry.recheck_at = now + REFUSED_RECHECK
                return None
            entry.refused[entry.source] = now
            entry.refusals = self._noted(entry.refusals, source.describe(registry, credential))
            following = self._find(
                registry,
                start=entry.source + 1,
                refused=entry.refused,
                now=now,
                failures=entry.refusals,
            )
            if following.credential is None:
                entry.refusals = following.refusals or entry.refusals
                if entry.recheck_at is None:  # a deadline that traffic cannot push back
                    entry.recheck_at = now + REFUSED_RECHECK
                return None
            following.refusals = entry.refusals
            self._entries[registry] = following
            return following.credential

    def refusals(self, registry: str) -> list[str]:
        """The sources refused for ``registry`` so far, as messages name them, oldest first."""
        with self._locks.hold(registry, f"read credentials for {registry}"):
            entry = self._entries.get(registry)
            return list(entry.refusals) if entry is not None else []

    # -- inside ------------------------------------------------------------------------------------

    def _fresh(self, entry: _Entry, now: float) -> bool:
        if entry.recheck_at is not None and now >= entry.recheck_at:
            return False
        credential = entry.credential
        if credential is not None and credential.renew_at is not None:
            return now < credential.renew_at
        return now - entry.found_at < self._ttl

    def _live_refusals(self, entry: _Entry | None, now: float) -> dict[int, float]:
        if entry is None:
            return {}
        return {i: at for i, at in entry.refused.items() if now - at < self._ttl}

    def _find(
        self,
        registry: str,
        *,
        start: int,
        refused: dict[int, float],
        now: float,
        failures: list[str] | None = None,
    ) -> _Entry:
        """The first credential from ``start`` on, skipping refused sources. With ``failures``, a
        source that raises is noted there (with its reason) and passed over instead of raising."""
        notes = list(failures) if failures is not None else []
        for index in range(start, len(self.sources)):
            if index in refused:
                continue
            try:
                credential = self.sources[index].lookup(registry)
            except PromoterError as exc:
                if failures is None:
                    raise
                notes = self._noted(notes, f"{self.sources[index].name} ({exc.message})")
                continue
            if credential is not None:
                self._offer(credential)
                return _Entry(credential, index, now, dict(refused), notes)
        return _Entry(None, len(self.sources), now, dict(refused), notes)

    @staticmethod
    def _noted(notes: list[str], note: str) -> list[str]:
        return [*notes, note][-_REFUSALS_KEPT:]

    def _offer(self, credential: Credential) -> None:
        if self._remember is not None:
            self._remember(*credential.secrets)


class StaticCredentials:
    """One fixed credential for one registry (``promoter login`` checks the credentials it is given):
    the same interface as :class:`CredentialChain`, nothing to renew."""

    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    def get(self, registry: str) -> Credential | None:  # noqa: ARG002 - interface
        """The credential."""
        return self._credential

    def refused(
        self,
        registry: str,
        credential: Credential,
        *,
        expired: bool,
        maybe_expired: bool = False,
        proven: bool = False,
    ) -> Credential | None:
        """Nothing else to offer."""
        del registry, credential, expired, maybe_expired, proven
        return None

    def refusals(self, registry: str) -> list[str]:  # noqa: ARG002 - interface
        """The credential given, when it was refused."""
        return [self._credential.source or "the credentials given"]
