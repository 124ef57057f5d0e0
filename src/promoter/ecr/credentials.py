"""Registry credentials for ECR: the AWS identity exchanged for registry tokens, as a source of the
credential chain (:class:`promoter.authn.chain.CredentialChain`).

ECR's registry API takes HTTP Basic with the user ``AWS`` and a password from
``GetAuthorizationToken`` (base64 of ``AWS:<password>``), valid for 12 hours (ECR user guide,
"Private registry authentication"; ECR API reference, "GetAuthorizationToken"). Tokens are asked for
the registry's own account (``registryIds``), so credentials of one account can read another
account's registry when its repository policies allow it.

A token is kept until a quarter of its life, at most five minutes, before its ``expiresAt``, so
that a 12-hour token and a token of a few seconds (tests) are both renewed before they lapse; the
chain then asks :meth:`EcrTokenSource.lookup` again. A registry that calls a token expired anyway
(ECR: 403 ``DENIED: Your authorization token has expired``) gets a fresh one from
:meth:`EcrTokenSource.renew`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from collections.abc import Callable

from promoter.authn.store import Credential
from promoter.deadline import KeyedLocks
from promoter.ecr.api import RENEW_BEFORE, EcrApi
from promoter.ecr.hosts import EcrRegistry, parse_ecr_host
from promoter.errors import CredentialError, PromoterError

#: The user name ECR's registry API expects with a token.
ECR_USERNAME = "AWS"
#: How long an ECR token lives (ECR API reference, "GetAuthorizationToken": "The authorization
#: token is valid for 12 hours"); used when an answer gives no usable ``expiresAt``.
TOKEN_LIFETIME = dt.timedelta(hours=12)
#: An identity ARN longer than this is cut in messages (IAM ARNs are at most 2048 characters).
_ARN_SHOWN = 200


def decode_token(token: str, registry: str) -> Credential:
    """The Basic credential in an ``authorizationToken`` (base64 of ``AWS:<password>``; ECR API
    reference, "AuthorizationData").

    Args:
        token: the ``authorizationToken`` field as ECR returns it.
        registry: the registry host, for the message.

    Returns:
        A credential with the user name and password (no source, no renewal time).

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


def renew_time(expires_at: dt.datetime, issued_at: dt.datetime) -> dt.datetime:
    """When a token should be replaced: ``expires_at`` less a quarter of its lifetime, at most
    :data:`~promoter.ecr.api.RENEW_BEFORE` (five minutes).

    A 12-hour ECR token is renewed five minutes before it expires; a token of a few seconds at three
    quarters of its life, which is still before it expires. An ``expires_at`` that is not after
    ``issued_at`` says that the local clock and AWS's disagree (moto answers a fixed date in 2015):
    the documented 12 hours from ``issued_at`` are then the better guess, and a registry that calls
    the token expired earlier gets it renewed through the chain's refusal path.

    Args:
        expires_at: the token's ``expiresAt`` (timezone-aware; naive values are taken as UTC).
        issued_at: the wall-clock time when the answer arrived (timezone-aware).

    Returns:
        The wall-clock time (timezone-aware) from which the token should no longer be handed out.
    """
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=dt.UTC)
    lifetime = expires_at - issued_at
    if lifetime <= dt.timedelta(0):
        lifetime = TOKEN_LIFETIME
        expires_at = issued_at + lifetime
    return expires_at - min(RENEW_BEFORE, lifetime / 4)


class EcrTokenSource:
    """The AWS identity as a :class:`~promoter.authn.chain.CredentialSource`: registry tokens from
    ``ecr:GetAuthorizationToken`` for the hosts ``is_ecr`` accepts, none for other hosts.

    Thread-safe: concurrent lookups for one registry fetch one token, and each registry has its own
    lock, so a slow account does not hold up another.

    Args:
        api: the run's AWS side (endpoint and role settings per registry).
        is_ecr: whether a registry host is an ECR registry reached as ECR (an ECR-named host served
            by a mirror gets no AWS treatment).
        clock: monotonic seconds, the clock of :attr:`Credential.renew_at`; replaceable in tests.
    """

    name = "AWS identity"

    def __init__(
        self,
        api: EcrApi,
        is_ecr: Callable[[str], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._is_ecr = is_ecr
        self._clock = clock
        self._tokens: dict[str, Credential] = {}
        self._identities: dict[str, str] = {}
        self._locks = KeyedLocks()

    def lookup(self, registry: str) -> Credential | None:
        """The token for an ECR registry, cached until its renewal time; None for other hosts.

        Returns:
            ``Credential(username="AWS", password=..., source="AWS identity ...", renew_at=...)``
            with ``renew_at`` in :func:`time.monotonic` seconds, or None.

        Raises:
            CredentialError: no AWS identity, AWS refused it, or the AWS API is unreachable.
            AwsApiError: any other AWS error.
        """
        ecr = self._registry(registry)
        if ecr is None:
            return None
        with self._locks.hold(ecr.host, f"get an ECR token for {ecr.host}"):
            cached = self._tokens.get(ecr.host)
            if (
                cached is not None
                and cached.renew_at is not None
                and self._clock() < cached.renew_at
            ):
                return cached
            return self._fetch(ecr)

    def renew(self, registry: str) -> Credential | None:
        """A fresh token for an ECR registry, whatever the cache holds (the registry called the
        current one expired); None for other hosts.

        Raises:
            CredentialError, AwsApiError: as :meth:`lookup`.
        """
        ecr = self._registry(registry)
        if ecr is None:
            return None
        with self._locks.hold(ecr.host, f"get an ECR token for {ecr.host}"):
            return self._fetch(ecr)

    def describe(self, registry: str, credential: Credential) -> str:
        """``AWS identity <arn>`` for messages about a refused token.

        With ``ecr.roleArn`` the role is named without a call; otherwise the ARN comes from
        ``sts:GetCallerIdentity`` (:meth:`EcrApi.caller_arn`), asked once per registry. When that
        fails, just ``AWS identity``: the name is for the message, never a reason to fail.
        """
        ecr = self._registry(registry)
        if ecr is None:
            return credential.source or self.name
        with self._locks.hold(ecr.host, f"get an ECR token for {ecr.host}"):
            known = self._identities.get(ecr.host)
            if known is None:
                known = self._identity(ecr)
                self._identities[ecr.host] = known
            return known

    # -- inside ------------------------------------------------------------------------------------

    def _registry(self, registry: str) -> EcrRegistry | None:
        return parse_ecr_host(registry) if self._is_ecr(registry) else None

    def _label(self, ecr: EcrRegistry) -> str:
        """The source label a token carries: cheap, so no STS call; :meth:`describe` names the ARN."""
        role = self._api.settings(ecr).role_arn
        return f"{self.name} {role}" if role else self.name

    def _identity(self, ecr: EcrRegistry) -> str:
        role = self._api.settings(ecr).role_arn
        if role:
            return f"{self.name} {role}"
        try:
            arn = self._api.caller_arn(ecr)
        except PromoterError:
            return self.name
        shown = " ".join(arn.split())[:_ARN_SHOWN]  # AWS's text: kept to one short line
        return f"{self.name} {shown}" if shown else self.name

    def _fetch(self, ecr: EcrRegistry) -> Credential:
        """GetAuthorizationToken for the registry's account; caches and returns the token (not
        started past the current deadline: :meth:`EcrApi.call`)."""
        answer = self._api.call(
            ecr,
            "get_authorization_token",
            unreachable=CredentialError,
            registryIds=[ecr.account],
        )
        data = answer.get("authorizationData") or []
        if not data or not data[0].get("authorizationToken"):
            raise CredentialError(f"ECR returned no authorization token for {ecr.host}")
        token = str(data[0]["authorizationToken"])
        decoded = decode_token(token, ecr.host)
        # The one conversion from AWS's wall-clock expiry to the monotonic clock that renew_at
        # uses: both clocks are read together, so later wall-clock steps change nothing.
        wall, monotonic = self._api.now(), self._clock()
        expires_at = data[0].get("expiresAt")
        if not isinstance(expires_at, dt.datetime):
            expires_at = wall + TOKEN_LIFETIME  # no expiry given: the documented lifetime
        renew_at = monotonic + (renew_time(expires_at, wall) - wall).total_seconds()
        credential = Credential(
            username=decoded.username,
            password=decoded.password,
            source=self._label(ecr),
            renew_at=renew_at,
            raw=token,  # scrubbed as fetched, besides the password and its Basic form
        )
        self._tokens[ecr.host] = credential
        return credential
