"""boto3 clients for ECR registries, and AWS errors turned into promoter's one-line errors.

One :class:`EcrApi` serves a whole run. Clients are made once per registry (boto3 clients are
thread-safe, sessions are not, so making them is serialised); with ``ecr.roleArn`` the role is
assumed first and assumed again when its credentials come within a few minutes of expiring.
boto3 is imported on the first call, so a run that never reaches an ECR registry does not load it.
The STS client that names the identity (:meth:`EcrApi.caller_arn`) is made only when a message
needs that name.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promoter.deadline import current_deadline
from promoter.ecr.hosts import EcrRegistry
from promoter.ecr.settings import EcrSettings
from promoter.errors import AwsApiError, CredentialError, PromoterError

#: Credentials (assumed-role keys, registry tokens) are renewed this long before they expire, so a
#: request never starts with credentials that lapse while it runs.
RENEW_BEFORE = dt.timedelta(minutes=5)
#: The session name CloudTrail shows for promoter's AssumeRole calls.
ROLE_SESSION_NAME = "promoter"
#: sts:GetCallerIdentity only names the identity in a message, so it gets one short try: a slow or
#: unreachable STS endpoint must not hold up the error it is meant to explain.
_IDENTITY_CONNECT_SECONDS = 2
_IDENTITY_READ_SECONDS = 5

#: AWS error codes that mean "these credentials are not good enough", whichever API says it.
_CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
    }
)


@dataclass(frozen=True, slots=True)
class _Clients:
    ecr: Any
    session: Any  #: the boto3 session the clients come from (with the assumed role's keys)
    renew_at: dt.datetime | None  #: when assumed-role credentials need renewing; None: never


class EcrApi:
    """The AWS side of every ECR registry of a run.

    Args:
        settings: ECR settings by registry host; hosts not listed use the defaults (ambient
            credentials, the public endpoint).
        clock: the current time, replaceable in tests.
    """

    def __init__(
        self,
        settings: Mapping[str, EcrSettings] | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._settings = dict(settings or {})
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._clients: dict[str, _Clients] = {}
        #: host -> (the clients an STS client was made beside, that STS client)
        self._identity: dict[str, tuple[_Clients, Any]] = {}
        self._lock = threading.Lock()

    def settings(self, registry: EcrRegistry) -> EcrSettings:
        """The settings for a registry, the defaults when promoter.yaml does not list it."""
        return self._settings.get(registry.host, EcrSettings())

    def now(self) -> dt.datetime:
        """The current time (timezone-aware, UTC)."""
        return self._clock()

    def call(
        self,
        registry: EcrRegistry,
        operation: str,
        *,
        unreachable: type[PromoterError] = AwsApiError,
        **params: Any,
    ) -> dict[str, Any]:
        """Call one ECR operation (boto3's snake_case name) for ``registry``.

        Not started once the current deadline (:func:`promoter.deadline.current_deadline`) has
        passed; a call under way is bounded by the AWS client's own timeouts, not cut at it.

        Raises:
            CredentialError: no AWS credentials, or AWS refused them (access denied, expired).
            AwsApiError: any other AWS error; ``code`` says which. Unreachable endpoints raise
                ``unreachable`` instead, so that the token path can report them as credential
                failures.
            DeadlineExceededError: the current deadline has passed.
        """
        what = f"ecr:{_action(operation)} for {registry.host}"
        deadline = current_deadline()
        if deadline is not None:
            deadline.check(what)
        clients = self._clients_for(registry, unreachable)
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - loaded already

        try:
            answer: dict[str, Any] = getattr(clients.ecr, operation)(**params)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, what, self.settings(registry), unreachable) from None
        return answer

    def caller_arn(self, registry: EcrRegistry) -> str:
        """The ARN of the AWS identity that ECR calls for ``registry`` are made with, for messages.

        Asks ``sts:GetCallerIdentity`` (STS API reference, "GetCallerIdentity": no permission is
        needed to call it) through the registry's ``apiEndpoint`` and ``roleArn`` settings, so with a
        role it names the assumed role's session
        (``arn:aws:sts::111111111111:assumed-role/<role>/promoter``). One try, with 2 s to connect
        and 5 s to answer.

        Returns:
            The ARN as AWS gives it, e.g. ``arn:aws:iam::111111111111:user/ci``.

        Raises:
            CredentialError: no AWS credentials, AWS refused them, or the endpoint is unreachable.
            AwsApiError: any other AWS error, or an answer without an ARN.
        """
        what = f"sts:GetCallerIdentity for {registry.host}"
        clients = self._clients_for(registry, CredentialError)
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - loaded already

        try:
            answer: dict[str, Any] = self._identity_client(registry, clients).get_caller_identity()
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, what, self.settings(registry), CredentialError) from None
        arn = answer.get("Arn")
        if not isinstance(arn, str) or not arn:
            raise AwsApiError(f"{what}: the answer names no ARN")
        return arn

    def _identity_client(self, registry: EcrRegistry, clients: _Clients) -> Any:
        """An STS client from the same session as the registry's ECR client, made on first use (and
        again when the role's keys were renewed)."""
        with self._lock:
            made = self._identity.get(registry.host)
            if made is not None and made[0] is clients:
                return made[1]
            from botocore.config import Config  # noqa: PLC0415 - loaded with boto3 already

            config = Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=_IDENTITY_CONNECT_SECONDS,
                read_timeout=_IDENTITY_READ_SECONDS,
                user_agent_extra="promoter",
            )
            sts = clients.session.client(
                "sts", endpoint_url=self.settings(registry).api_endpoint, config=config
            )
            self._identity[registry.host] = (clients, sts)
            return sts

    def _clients_for(self, registry: EcrRegistry, unreachable: type[PromoterError]) -> _Clients:
        with self._lock:
            found = self._clients.get(registry.host)
            if found is not None and (found.renew_at is None or self.now() < found.renew_at):
                return found
            made = self._make_clients(registry, unreachable)
            self._clients[registry.host] = made
            return made

    def _make_clients(self, registry: EcrRegistry, unreachable: type[PromoterError]) -> _Clients:
        import boto3  # noqa: PLC0415 - boto3 takes ~0.3 s to import; only the ECR path pays
        from botocore.config import Config  # noqa: PLC0415 - see above
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - see above

        settings = self.settings(registry)
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra="promoter",
        )
        what = (
            f"sts:AssumeRole {settings.role_arn} for {registry.host}"
            if settings.role_arn
            else f"AWS credentials for {registry.host}"
        )
        renew_at = None
        try:
            session = boto3.session.Session(region_name=registry.region)
            if settings.role_arn:
                sts = session.client("sts", endpoint_url=settings.api_endpoint, config=config)
                keys = sts.assume_role(
                    RoleArn=settings.role_arn, RoleSessionName=ROLE_SESSION_NAME
                )["Credentials"]
                session = boto3.session.Session(
                    aws_access_key_id=keys["AccessKeyId"],
                    aws_secret_access_key=keys["SecretAccessKey"],
                    aws_session_token=keys["SessionToken"],
                    region_name=registry.region,
                )
                renew_at = keys["Expiration"] - RENEW_BEFORE
            ecr = session.client("ecr", endpoint_url=settings.api_endpoint, config=config)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, what, settings, unreachable) from None
        return _Clients(ecr=ecr, session=session, renew_at=renew_at)


def _action(operation: str) -> str:
    """``get_authorization_token`` -> ``GetAuthorizationToken``, the IAM action's name."""
    return "".join(part.capitalize() for part in operation.split("_"))


def _translate(
    exc: Exception, what: str, settings: EcrSettings, unreachable: type[PromoterError]
) -> PromoterError:
    """An exception from boto3 as one line of ours. AWS messages name principals and resources,
    never keys, so they may be shown; anything else is named by its type only."""
    from botocore import exceptions as aws  # noqa: PLC0415 - loaded with boto3 already

    if isinstance(exc, aws.NoCredentialsError | aws.PartialCredentialsError):
        return CredentialError(
            f"{what}: no AWS credentials found (environment, shared config, web identity, "
            "EKS Pod Identity or instance profile); give the process an AWS identity"
        )
    if isinstance(exc, aws.CredentialRetrievalError):
        return CredentialError(f"{what}: AWS credentials could not be loaded: {exc}")
    if isinstance(
        exc,
        aws.EndpointConnectionError
        | aws.ConnectTimeoutError
        | aws.ReadTimeoutError
        | aws.ConnectionClosedError,
    ):
        endpoint = settings.api_endpoint or "the public AWS endpoint"
        return unreachable(f"{what}: cannot reach the AWS API at {endpoint}")
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = " ".join(str(error.get("Message", "")).split())
        detail = f"{code}: {message}" if message else code
        if code in _CREDENTIAL_CODES:
            return CredentialError(f"{what}: AWS refused the credentials ({detail})")
        return AwsApiError(f"{what} failed ({detail})", code=code)
    if isinstance(exc, aws.ParamValidationError):
        return AwsApiError(
            f"{what}: invalid parameters: {' '.join(str(exc).split())}",
            code="ParamValidationError",
        )
    if isinstance(exc, aws.BotoCoreError):
        return AwsApiError(f"{what} failed: {type(exc).__name__}")
    return AwsApiError(f"{what} failed: unexpected {type(exc).__name__}")
