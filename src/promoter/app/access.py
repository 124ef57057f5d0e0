"""Registry access set up by promoter: storing checked credentials (``login``) and letting the next
environment's account pull from an ECR source registry (``grant_pull_access``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.runtime import Runtime, RuntimeSettings, SecretScrubber
from promoter.authn.chain import StaticCredentials
from promoter.authn.store import Credential, store_credential
from promoter.config.locate import CONFIG_NAME
from promoter.config.values import PromoterConfig
from promoter.deadline import Deadline
from promoter.ecr.hosts import EcrRegistry, parse_ecr_host
from promoter.errors import AuthenticationError, InputError, InvalidReferenceError, Remedy
from promoter.reference import hide_credentials, parse_registry_host

if TYPE_CHECKING:
    from promoter.ecr.policy import PolicyChange


def login_host(text: str) -> str:
    """The registry host ``docker login`` would take from ``text``: a URL such as
    ``https://registry.example.com/`` names its host.

    Raises:
        InputError: ``text`` names a repository or nothing, has credentials typed into it (refused
            without repeating them: the password goes on standard input), or a port beyond 65535.
    """
    registry = text.strip()
    hidden = hide_credentials(registry)
    if hidden is not None:
        raise InputError(
            f"login takes a registry host, not credentials: remove the user name/password from "
            f"{hidden!r}",
            hint="give the user with --username and the password on standard input",
        )
    if "://" in registry:
        registry = registry.split("://", 1)[1].rstrip("/")
    if "/" in registry or not registry:
        raise InputError(
            f"login takes a registry host such as registry.example.com:5000, not {registry!r}"
        )
    parse_registry_host(registry)  # the port, and the host's spelling
    return registry


def login(
    settings: RuntimeSettings,
    registry: str,
    username: str,
    password: str,
    *,
    scrubber: SecretScrubber | None = None,
    deadline: Deadline | None = None,
) -> Path | str:
    """Check credentials against the registry (``GET /v2/``), then store them as ``docker login``
    does: in the configured credential helper, else in the docker config's ``auths`` (mode 0600).

    Returns:
        Where they were stored: the config file, or the helper's program name.

    Raises:
        InputError: an empty password.
        AuthenticationError: the registry refused them (nothing is stored).
        RegistryUnreachableError, CredentialError, DeadlineExceededError: no check was possible.
    """
    if not password:
        raise InputError("empty password")
    credential = Credential(username=username, password=password)
    scrubber = scrubber or SecretScrubber()
    scrubber.remember(*credential.secrets)
    with Runtime(settings, scrubber=scrubber, credentials=StaticCredentials(credential)) as runtime:
        try:
            runtime.transport.session(registry).ping(deadline=deadline)
        except AuthenticationError as exc:
            if exc.status != 401:
                raise
            raise AuthenticationError(
                exc.method,
                exc.url,
                exc.status,
                details=exc.details,
                what=f"log in to {registry} as {username}",
                hint="the registry refused this user name and password; nothing was stored",
            ) from exc
    return store_credential(registry, username, password)


@dataclass(frozen=True, slots=True)
class PullGrant:
    """What ``grant_pull_access`` did (or would do, in a dry run)."""

    registry: EcrRegistry
    account: str
    dry_run: bool
    changes: tuple[PolicyChange, ...]


def source_ecr_registry(
    config: PromoterConfig | None, registry: str | None = None, *, what: str = "registry"
) -> EcrRegistry:
    """The ECR registry to grant on: ``registry`` when given, else the one ECR registry of
    promoter.yaml that another environment promotes from.

    Args:
        what: how messages name ``registry`` (the CLI says ``--registry``).

    Raises:
        InputError: ``registry`` is no ECR host (or no host: credentials, a bad port), or
            promoter.yaml names no such registry or several.
    """
    if registry is not None:
        try:
            parse_registry_host(registry)  # refuses credentials without repeating them, bad ports
        except InvalidReferenceError as exc:
            raise InputError(f"{what}: {exc}") from None
        found = parse_ecr_host(registry.strip())
        if found is None:
            raise InputError(
                f"{what} {registry!r} is not an ECR registry host "
                "(<account>.dkr.ecr.<region>.amazonaws.com)"
            )
        return found
    sources: dict[str, EcrRegistry] = {}
    if config is not None:
        for environment in config.environments.values():
            if environment.promotes_from is None:
                continue
            parsed = parse_ecr_host(config.environments[environment.promotes_from].registry)
            if parsed is not None:
                sources[parsed.host] = parsed
    if len(sources) != 1:
        where = f"{config.path} has {len(sources)}" if config is not None else f"no {CONFIG_NAME}"
        raise InputError(
            f"{where} ECR registries that another environment promotes from",
            hint="name the source registry",
            remedy=Remedy.NAME_REGISTRY,
        )
    return next(iter(sources.values()))


def grant_pull_access(
    runtime: Runtime,
    registry: EcrRegistry,
    account: str,
    repositories: Sequence[str] = (),
    *,
    dry_run: bool = False,
) -> PullGrant:
    """Let ``account`` pull from ``repositories`` of ``registry`` (all of them when empty), merging a
    statement into each repository policy (see :func:`promoter.ecr.policy.grant_pull`).

    Raises:
        InputError: ``account`` is not a 12-digit account id, or a named repository is missing.
        CredentialError, AwsApiError: AWS refused or failed.
    """
    from promoter.ecr.policy import grant_pull  # noqa: PLC0415 - boto3 only for this operation

    changes = grant_pull(runtime.ecr_api, registry, account, repositories, dry_run=dry_run)
    return PullGrant(registry, account, dry_run, tuple(changes))
