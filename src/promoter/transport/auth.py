"""The registry auth flow: challenges, Basic, Bearer tokens per scope, and what to say on a refusal.

Bearer tokens follow the distribution project's "Token Authentication Specification" and its OAuth2
variant (an identity token is a refresh token); Basic is RFC 7617. Credentials come from a
:class:`CredentialProvider` (normally :class:`promoter.authn.chain.CredentialChain`), asked on every use so
that renewed credentials take effect at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import urllib3

from promoter.authn.store import Credential
from promoter.deadline import Deadline, bounded_by, hold
from promoter.errors import AuthenticationError, RegistryError, RegistryUnreachableError, Remedy
from promoter.transport.challenge import Challenge, parse_challenge
from promoter.transport.responses import error_from, redact

#: Refresh a token this long before the server says it expires.
TOKEN_MARGIN_SECONDS = 30.0
#: A token whose answer names no lifetime is kept this long (the token spec's default is 60 s).
DEFAULT_TOKEN_SECONDS = 60.0


class CredentialProvider(Protocol):
    """Where a transport gets credentials, and where it reports that a registry refused one."""

    def get(self, registry: str) -> Credential | None:
        """The credential for ``registry`` now, or None for anonymous access."""

    def refused(
        self,
        registry: str,
        credential: Credential,
        *,
        expired: bool,
        maybe_expired: bool = False,
        proven: bool = False,
    ) -> Credential | None:
        """``registry`` refused ``credential``: another one to try, or None. ``expired``: the
        registry said so; ``maybe_expired``: it gave no reason; ``proven``: the registry accepted
        this credential before (then its source is not passed over)."""

    def refusals(self, registry: str) -> list[str]:
        """The sources refused for ``registry``, as messages name them."""


class RawSender(Protocol):
    """How the flow sends a token request: one exchange, no auth, no retry (the session's ``raw``)."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        what: str,
        deadline: Deadline | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send it."""


#: Credentials a request or a token fetch may try after a refusal: a stale docker login, a stale
#: auth.json entry, then the AWS identity's token renewed once. Bounds a registry (or token server)
#: that calls every credential expired.
MAX_REPLACEMENTS = 3


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float  #: monotonic seconds
    fetched_with: Credential | None = None  #: the credential the token server accepted


class AuthFlow:
    """The auth state of one registry: its challenge, the tokens fetched per scope set. Thread-safe.

    Args:
        registry: the registry host, for messages and credential lookups.
        credentials: where credentials come from.
        send: sends a token request (the session's raw sender, so pools and TLS are shared).
        remember: called with every token fetched, so that output can be scrubbed of it.
    """

    def __init__(
        self,
        registry: str,
        credentials: CredentialProvider,
        send: RawSender,
        remember: Callable[..., None] | None = None,
    ) -> None:
        self.registry = registry
        self._credentials = credentials
        self._send = send
        self._remember = remember
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._fetching: dict[tuple[str, ...], threading.Lock] = {}
        #: credentials this registry has accepted: a later 403 is about permissions, not them.
        self._proven: set[Credential] = set()
        self._lock = threading.RLock()

    @property
    def challenge(self) -> Challenge | None:
        """The challenge learnt so far, if any."""
        with self._lock:
            return self._challenge

    def credential(self, deadline: Deadline | None = None) -> Credential | None:
        """The credential to use now (asked of the provider each time; it caches); a credential
        helper or token call it makes is bounded by ``deadline``."""
        with bounded_by(deadline):
            return self._credentials.get(self.registry)

    def learn(self, response: urllib3.BaseHTTPResponse) -> bool:
        """Remember the registry's challenge from a 401; True if it was new or changed."""
        header = response.headers.get("WWW-Authenticate")
        if response.status != 401 or not header:
            return False
        challenge = parse_challenge(header)
        if challenge is None:
            return False
        with self._lock:
            changed = self._challenge is None or (
                self._challenge.scheme != challenge.scheme
                or self._challenge.realm != challenge.realm
            )
            self._challenge = challenge
        return changed

    def authorization(
        self,
        scopes: Sequence[str],
        *,
        base_url: str,
        refresh: bool = False,
        deadline: Deadline | None = None,
    ) -> tuple[str | None, Credential | None]:
        """The ``Authorization`` header for a request needing ``scopes``, and the credential behind it.

        Args:
            scopes: token scopes (``repository:name:pull``).
            base_url: the registry's base URL (a TLS registry's http:// realm is asked over TLS).
            refresh: fetch a new token even if one is cached.
            deadline: bounds a token request.
        """
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None, None
        credential = self.credential(deadline)
        if challenge.scheme == "basic":
            if credential is None or not credential.password:
                return None, credential
            return "Basic " + credential.basic, credential
        if challenge.scheme != "bearer":
            return None, credential
        key = tuple(sorted(set(scopes)))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and not refresh and token.expires > time.monotonic():
                return f"Bearer {token.value}", token.fetched_with
            fetching = self._fetching.setdefault(key, threading.Lock())
        # One fetch per scope set at a time, without holding up requests whose token is cached; a
        # caller with a deadline waits for another thread's fetch only as long as it allows.
        with hold(fetching, deadline, f"get a token for {self.registry}"):
            with self._lock:
                token = self._tokens.get(key)
            fresh = token is not None and token.expires > time.monotonic()
            if not fresh or refresh:
                token, credential = self._fetch_with_fallback(
                    challenge, key, credential, base_url, deadline
                )
                with self._lock:
                    self._tokens[key] = token
            assert token is not None  # noqa: S101 - fetched above when not fresh
        return f"Bearer {token.value}", token.fetched_with

    def _fetch_with_fallback(
        self,
        challenge: Challenge,
        key: tuple[str, ...],
        credential: Credential | None,
        base_url: str,
        deadline: Deadline | None,
    ) -> tuple[_Token, Credential | None]:
        """Fetch a token; when the token server refuses the credential, ask the provider for another
        one and try again (a bounded number of times), as for a registry's own refusal."""
        for _ in range(MAX_REPLACEMENTS):
            try:
                return self._fetch_token(challenge, key, credential, base_url, deadline), credential
            except AuthenticationError as error:
                if credential is None or error.status not in (401, 403):
                    raise
                replacement = self.refused(credential, error)
                if replacement is None:
                    error.hint, error.remedy = self.hint(error.status, credential)
                    raise
                credential = replacement
        return self._fetch_token(challenge, key, credential, base_url, deadline), credential

    def forget_tokens(self, scopes: Sequence[str] | None = None) -> None:
        """Drop the token for ``scopes`` (all tokens when None), so the next request fetches anew."""
        with self._lock:
            if scopes is None:
                self._tokens.clear()
            else:
                self._tokens.pop(tuple(sorted(set(scopes))), None)

    def prove(self, credential: Credential) -> None:
        """The registry accepted ``credential`` (it answered something other than 401/403)."""
        if credential not in self._proven:
            with self._lock:
                self._proven.add(credential)

    def refused(
        self,
        credential: Credential | None,
        error: RegistryError,
        *,
        maybe_expired: bool = False,
        deadline: Deadline | None = None,
    ) -> Credential | None:
        """The registry refused a request sent with ``credential``: the next one to try, or None.

        A token the registry calls expired (ECR: 403 ``DENIED: Your authorization token has
        expired``) is renewed by its source; any other refusal moves on to the next source.

        Args:
            credential: the credential the request carried.
            error: the refusal.
            maybe_expired: take a refusal that gives no reason for an expired token too. The answer
                to a HEAD has no body, so ECR cannot say "expired" there; the session sets this for
                the first such refusal of a request only, so that a renewed credential that is
                refused again passes over its source.
        """
        if credential is None:
            return None
        expired = says_expired(error)
        maybe = maybe_expired and not error.details and not expired
        proven = credential in self._proven
        if error.status == 403 and proven and not expired and not maybe:
            # A credential this registry accepted, refused one thing with a reason: a permission
            # (a repository it may not read), not a bad credential; other sources are not asked.
            return None
        with bounded_by(deadline):
            replacement = self._credentials.refused(
                self.registry, credential, expired=expired, maybe_expired=maybe, proven=proven
            )
        if replacement is not None and replacement != credential:
            self.forget_tokens()
            return replacement
        return None

    def hint(self, status: int, credential: Credential | None) -> tuple[str, Remedy | None]:
        """What to do about a refusal, naming every credential source that was refused."""
        refused = self._credentials.refusals(self.registry)
        if credential is None and not refused:
            advice = (
                f"no credentials for {self.registry} were found; run 'promoter login "
                f"{self.registry}' (or docker login) or configure a credential helper"
            )
            return advice, Remedy.LOG_IN
        if not refused and (credential is None or not credential.source):
            if status == 403:
                return f"the credentials for {self.registry} are not allowed to do this", None
            return f"the registry did not accept the stored credentials for {self.registry}", None
        names = refused or [credential.source if credential and credential.source else "stored"]
        sources = ", then ".join(dict.fromkeys(names))
        if status == 403:
            return (
                f"the credentials from {sources} for {self.registry} are not allowed to do this",
                None,
            )
        return f"the registry did not accept the credentials from {sources}", Remedy.LOG_IN

    def _fetch_token(
        self,
        challenge: Challenge,
        scopes: tuple[str, ...],
        credential: Credential | None,
        base_url: str,
        deadline: Deadline | None,
    ) -> _Token:
        """Token flow (distribution "Token Authentication Specification" and its OAuth2 variant)."""
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise RegistryUnreachableError(
                f"{self.registry} sent an auth challenge without a usable realm URL",
                retryable=False,
            )
        if realm.startswith("http://") and base_url.startswith("https://"):
            # A TLS registry behind a proxy often advertises an http:// realm; credentials must not
            # travel in clear text, so ask the same realm over TLS (as go-containerregistry does).
            realm = "https://" + realm[len("http://") :]
        what = f"get a token for {self.registry}"
        service = challenge.service
        from urllib.parse import urlencode  # noqa: PLC0415 - only token registries need it

        if credential is not None and credential.identity_token:
            # An identity token is an OAuth2 refresh token (docker login with a registry that issues one).
            fields = [
                ("grant_type", "refresh_token"),
                ("refresh_token", credential.identity_token),
                ("service", service),
                ("client_id", "promoter"),
                *[("scope", s) for s in scopes],
            ]
            response = self._send(
                "POST",
                realm,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=urlencode(fields).encode(),
                what=what,
                deadline=deadline,
            )
        else:
            headers: dict[str, str] = {}
            if credential is not None and credential.password:
                headers["Authorization"] = "Basic " + credential.basic
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            response = self._send(
                "GET", url, headers=headers, body=None, what=what, deadline=deadline
            )
        if response.status != 200:
            raise error_from(response, "GET", realm, what, AuthenticationError, preloaded=True)
        try:
            payload = json.loads(response.data)
            found = payload.get("token") or payload.get("access_token") or ""
        except (ValueError, AttributeError, RecursionError) as exc:
            raise AuthenticationError(
                "GET", redact(realm), 200, what=what + " (unreadable answer)"
            ) from exc
        if not isinstance(found, str) or not found:  # a number, NaN, a list: not a token
            raise AuthenticationError(
                "GET", redact(realm), 200, what=what + " (no token in answer)"
            )
        value = found
        if self._remember is not None:
            self._remember(value)
        expires_in = payload.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else DEFAULT_TOKEN_SECONDS
        )
        return _Token(
            value,
            time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2),
            credential,
        )


def says_expired(error: RegistryError) -> bool:
    """Whether a refusal says the credential expired (ECR: ``DENIED: Your authorization token has
    expired. Reauthenticate and try again.``; token servers: ``token expired``)."""
    return any("expired" in f"{d.code} {d.message}".lower() for d in error.details)
