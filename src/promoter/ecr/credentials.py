"""Registry credentials for ECR: an AWS identity exchanged for a registry token.

ECR's registry API takes HTTP Basic with the user ``AWS`` and a password from
``GetAuthorizationToken`` (base64 of ``AWS:<password>``), valid for 12 hours. Tokens are asked for the
registry's own account (``registryIds``), so credentials of one account can read another account's
registry when its repository policies allow it, and kept until shortly before they expire.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
from dataclasses import dataclass

from promoter.authn.store import Credential
from promoter.ecr.api import RENEW_BEFORE, EcrApi
from promoter.ecr.hosts import EcrRegistry, parse_ecr_host
from promoter.errors import CredentialError

#: The user name ECR's registry API expects with a token.
ECR_USERNAME = "AWS"


@dataclass(frozen=True, slots=True)
class _Cached:
    credential: Credential
    renew_at: dt.datetime


def decode_token(token: str, registry: str) -> Credential:
    """The Basic credential in an ``authorizationToken`` (base64 of ``AWS:<password>``).

    Raises:
        CredentialError: the token is not in that form; its content is never shown.
    """
    try:
        username, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep, username, password = "", "", ""
    if not sep or not username or not password:
        raise CredentialError(f"ECR returned an authorization token for {registry} of unknown form")
    return Credential(username=username, password=password)


def renew_time(expires_at: dt.datetime) -> dt.datetime:
    """When a token that expires at ``expires_at`` should be replaced."""
    return expires_at - RENEW_BEFORE


class EcrCredentials:
    """A credential loader (``registry -> Credential | None``) for ECR hosts; None for other hosts.

    Thread-safe: concurrent requests for one registry fetch one token, and each registry has its
    own lock, so a slow account does not hold up another.
    """

    def __init__(self, api: EcrApi) -> None:
        self._api = api
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, registry: str) -> Credential | None:
        """The registry credential for an ECR host, fetched or cached; None for other hosts.

        Raises:
            CredentialError: no AWS identity, AWS refused it, or the AWS API is unreachable.
        """
        ecr = parse_ecr_host(registry)
        if ecr is None:
            return None
        with self._lock:
            lock = self._locks.setdefault(ecr.host, threading.Lock())
        with lock:
            cached = self._cache.get(ecr.host)
            if cached is not None and self._api.now() < cached.renew_at:
                return cached.credential
            credential, expires_at = self._fetch(ecr)
            self._cache[ecr.host] = _Cached(credential, renew_time(expires_at))
            return credential

    def _fetch(self, ecr: EcrRegistry) -> tuple[Credential, dt.datetime]:
        answer = self._api.call(
            ecr,
            "get_authorization_token",
            unreachable=CredentialError,
            registryIds=[ecr.account],
        )
        data = answer.get("authorizationData") or []
        if not data or not data[0].get("authorizationToken"):
            raise CredentialError(f"ECR returned no authorization token for {ecr.host}")
        credential = decode_token(str(data[0]["authorizationToken"]), ecr.host)
        expires_at = data[0].get("expiresAt")
        if not isinstance(expires_at, dt.datetime):
            # Without an expiry, keep it for the documented 12 hours less the margin.
            expires_at = self._api.now() + dt.timedelta(hours=12)
        return credential, expires_at
