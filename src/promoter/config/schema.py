"""promoter.yaml's shape as pydantic models (strict types, no unknown keys); keys keep the file's own
names through aliases, so errors name them as written. Relations between keys are checked by
:mod:`promoter.config.load` on the validated values."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ExclusionFilterModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    filter_type: str = Field(alias="filterType")
    pattern: str = Field(alias="filter")


class ScanningModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scan_on_push: bool = Field(alias="scanOnPush")


class EncryptionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    encryption_type: str = Field(alias="encryptionType")
    kms_key: str | None = Field(default=None, alias="kmsKey")


class TagModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(alias="Key")
    value: str = Field(alias="Value")


class RepositoryModel(BaseModel):
    """``ecr.repository``: the keys of the CreateRepository API, plus the two policies."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_tag_mutability: str | None = Field(default=None, alias="imageTagMutability")
    image_tag_mutability_exclusion_filters: list[ExclusionFilterModel] | None = Field(
        default=None, alias="imageTagMutabilityExclusionFilters"
    )
    image_scanning_configuration: ScanningModel | None = Field(
        default=None, alias="imageScanningConfiguration"
    )
    encryption_configuration: EncryptionModel | None = Field(
        default=None, alias="encryptionConfiguration"
    )
    tags: list[TagModel] | None = None
    repository_policy: dict[str, Any] | str | None = Field(default=None, alias="repositoryPolicy")
    lifecycle_policy: dict[str, Any] | str | None = Field(default=None, alias="lifecyclePolicy")


class EcrModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role_arn: str | None = Field(default=None, alias="roleArn")
    api_endpoint: str | None = Field(default=None, alias="apiEndpoint")
    create_repositories: bool = Field(default=True, alias="createRepositories")
    repository: RepositoryModel = Field(default_factory=RepositoryModel)


class RegistryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    endpoint: str | None = None
    insecure: bool = False
    ca_file: str | None = Field(default=None, alias="caFile")
    ecr: EcrModel | None = None
    # Read only by ``argocd generate``: copy endpoint and insecure into the hook's ConfigMap too.
    in_cluster: bool = Field(default=False, alias="inCluster")


class AdmissionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["guard", "promote"] = "guard"
    external: Literal["allow", "warn", "deny"] = "allow"
    allow_external: list[str] = Field(default_factory=list, alias="allowExternal")
    promote_repositories: list[str] = Field(default_factory=list, alias="promoteRepositories")
    cache_seconds: float = Field(default=60.0, alias="cacheSeconds")
    deadline_seconds: float = Field(default=8.0, alias="deadlineSeconds")


class PruneModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    keep: list[str] = Field(default_factory=list)


class EnvironmentModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    overlay: str
    registry: str
    promotes_from: str | None = Field(default=None, alias="promotesFrom")
    diverged_tags: Literal["warn", "fail"] = Field(default="warn", alias="divergedTags")
    allow_images_from: list[str] = Field(default_factory=list, alias="allowImagesFrom")
    # Read only by ``webhook serve``: what the admission webhook checks and may copy.
    admission: AdmissionModel = Field(default_factory=AdmissionModel)
    # Read only by ``prune``: tag patterns its registry keeps whatever Git says.
    prune: PruneModel = Field(default_factory=PruneModel)
    # Arguments of every ``kustomize build`` of the overlay (Argo CD's kustomize.buildOptions).
    kustomize_build_options: list[str] = Field(default_factory=list, alias="kustomizeBuildOptions")
    allow_kustomize_plugins: bool = Field(default=False, alias="allowKustomizePlugins")


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    environments: dict[str, EnvironmentModel]
    registries: dict[str, RegistryModel] = Field(default_factory=dict)
