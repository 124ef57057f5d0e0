"""Make destination repositories exist before the first push into them.

ECR rejects a push into a repository that does not exist (and can drop the connection instead of
answering), unless a repository creation template covers it. So before the first blob or manifest
goes to an ECR repository, the copier calls :class:`RepositoryPreparer`: it asks
``DescribeRepositories`` and, when the repository is missing and ``ecr.createRepositories`` is on,
creates it with the settings from promoter.yaml. An existing repository is never changed: its
owners may have tuned it since.
"""

from __future__ import annotations

import fnmatch
import threading

from promoter.ecr.api import EcrApi
from promoter.ecr.hosts import EcrRegistry, parse_ecr_host
from promoter.errors import AwsApiError, ConfigError, PromoterError

_NOT_FOUND = "RepositoryNotFoundException"
_ALREADY_EXISTS = "RepositoryAlreadyExistsException"
_BAD_SETTINGS = frozenset(
    {
        "InvalidParameterException",
        "InvalidTagParameterException",
        "ValidationException",
        "KmsException",
        "ParamValidationError",
    }
)


class RepositoryPreparer:
    """The copier's ``prepare_destination`` hook for ECR registries: ``(registry, repository)``.

    Each repository is checked once per run; concurrent images into one repository wait for the
    first check instead of racing to create it. Non-ECR registries are left alone.
    """

    def __init__(self, api: EcrApi) -> None:
        self._api = api
        self._done: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, registry: str, repository: str) -> bool:
        """Make ``repository`` exist in ``registry`` when that is an ECR registry.

        Returns:
            True when this call created it (it holds nothing yet: a copy need not ask which
            blobs are there); False when it existed, or is left to the user.

        Raises:
            CredentialError: AWS refused the identity (e.g. no ``ecr:CreateRepository``).
            ConfigError: AWS refused the ``ecr.repository`` settings.
            AwsApiError: any other AWS failure.
        """
        ecr = parse_ecr_host(registry)
        if ecr is None or not self._api.settings(ecr).create_repositories:
            # Without createRepositories the user creates repositories (or a creation template
            # does); the push then needs no ecr:DescribeRepositories permission.
            return False
        key = (ecr.host, repository)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._done:
                return False
            created = self._ensure(ecr, repository)
            self._done.add(key)
        return created

    def _ensure(self, ecr: EcrRegistry, repository: str) -> bool:
        """Create the repository unless it exists; whether this call created it."""
        try:
            self._api.call(
                ecr,
                "describe_repositories",
                registryId=ecr.account,
                repositoryNames=[repository],
            )
        except AwsApiError as exc:
            if exc.code != _NOT_FOUND:
                raise
        else:
            return False  # it exists: leave it exactly as its owners set it up
        settings = self._api.settings(ecr).repository
        where = f"registries.{ecr.host}.ecr.repository"
        try:
            self._api.call(
                ecr,
                "create_repository",
                registryId=ecr.account,
                repositoryName=repository,
                **settings.create_arguments,
            )
        except AwsApiError as exc:
            if exc.code == _ALREADY_EXISTS:
                return False  # another job created it between our two calls; theirs stands
            if exc.code in _BAD_SETTINGS:
                raise ConfigError(f"{where}: creating {repository}: {exc}") from None
            raise
        if settings.repository_policy is not None:
            self._api.call(
                ecr,
                "set_repository_policy",
                registryId=ecr.account,
                repositoryName=repository,
                policyText=settings.repository_policy,
            )
        if settings.lifecycle_policy is not None:
            self._api.call(
                ecr,
                "put_lifecycle_policy",
                registryId=ecr.account,
                repositoryName=repository,
                lifecyclePolicyText=settings.lifecycle_policy,
            )
        return True


def tag_is_immutable(mutability: str, exclusion_filters: list[dict[str, str]], tag: str) -> bool:
    """Whether ECR refuses to move ``tag`` under a repository's tag mutability settings.

    ``*_WITH_EXCLUSION`` settings flip the rule for tags matching one of the wildcard filters
    (ECR user guide, "Image tag mutability": ``*`` matches any run of characters).
    """
    matched = any(
        fnmatch.fnmatchcase(tag, f.get("filter", ""))
        for f in exclusion_filters
        if f.get("filterType", "WILDCARD") == "WILDCARD"
    )
    if mutability == "IMMUTABLE":
        return True
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not matched
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return matched
    return False


def immutable_tag_setting(api: EcrApi, registry: str, repository: str, tag: str) -> str | None:
    """The repository's ``imageTagMutability`` when it makes ``tag`` immutable, else None.

    Used to explain a refused tag move; any AWS failure just means no explanation.
    """
    ecr = parse_ecr_host(registry)
    if ecr is None:
        return None
    try:
        answer = api.call(
            ecr, "describe_repositories", registryId=ecr.account, repositoryNames=[repository]
        )
    except PromoterError:
        return None
    for found in answer.get("repositories", []):
        mutability = str(found.get("imageTagMutability", "MUTABLE"))
        filters = list(found.get("imageTagMutabilityExclusionFilters") or [])
        if tag_is_immutable(mutability, filters, tag):
            return mutability
    return None
