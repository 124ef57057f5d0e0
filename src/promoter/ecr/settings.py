"""Per-registry ECR settings, as promoter.yaml's ``registries.<host>.ecr`` gives them.

Plain values: validation of the YAML happens in :mod:`promoter.config.load`, which builds these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RepositorySettings:
    """How a repository that promoter creates is set up.

    Attributes:
        create_arguments: the ``CreateRepository`` parameters, with the API's own key names
            (``imageTagMutability``, ``imageTagMutabilityExclusionFilters``,
            ``imageScanningConfiguration``, ``encryptionConfiguration``, ``tags``), passed through
            unchanged so that new API values work without a promoter release.
        repository_policy: a policy document (JSON text) for ``SetRepositoryPolicy``, or None.
        lifecycle_policy: a lifecycle policy document (JSON text) for ``PutLifecyclePolicy``, or None.
    """

    create_arguments: Mapping[str, Any] = field(default_factory=_empty)
    repository_policy: str | None = None
    lifecycle_policy: str | None = None


@dataclass(frozen=True, slots=True)
class EcrSettings:
    """How promoter talks to one ECR registry's AWS API.

    Attributes:
        role_arn: a role to assume (STS AssumeRole) before calling ECR, for a registry in another
            account than the ambient credentials'.
        api_endpoint: the endpoint URL for the ECR and STS APIs, for VPC endpoints and tests;
            None uses the region's public endpoint.
        create_repositories: create a missing destination repository before the first push.
        repository: settings for the repositories promoter creates.
    """

    role_arn: str | None = None
    api_endpoint: str | None = None
    create_repositories: bool = True
    repository: RepositorySettings = field(default_factory=RepositorySettings)
