"""promoter.yaml's content as plain values: environments, registries and their settings.

No pydantic and no YAML here: every layer that needs the values (the runtime, the hook, the webhook) can
import them without paying for validation machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from promoter.config.kustomize_options import build_arguments
from promoter.ecr.settings import EcrSettings
from promoter.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """How to reach one registry host, beyond what its name says.

    Attributes:
        endpoint: base URL to send this registry's requests to (a mirror, a proxy, a local test
            registry) while references keep the registry's own name, as containerd mirrors do.
        insecure: skip TLS verification and allow plain HTTP for this host.
        ca_file: extra CA certificates (PEM) to trust, absolute, resolved against the folder of
            the config file.
        ecr: how to use the AWS API of an ECR registry (``registries.<host>.ecr``), or None for
            the defaults (ECR hosts still get tokens and repositories from the ambient identity).
    """

    endpoint: str | None = None
    insecure: bool = False
    ca_file: Path | None = None
    ecr: EcrSettings | None = None


class AdmissionMode(StrEnum):
    """What the admission webhook does with a missing image of its environment's registry."""

    #: Deny it (the default): promotion stays a Git change and a sync.
    GUARD = "guard"
    #: Copy it from the environment it promotes from before answering, when the source has it.
    PROMOTE = "promote"


class ExternalImages(StrEnum):
    """What the admission webhook does with an image of a registry that is no environment's."""

    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"


#: The longest review deadline: the API server waits at most 30 s for a webhook
#: (``timeoutSeconds``, admissionregistration.k8s.io/v1), and the answer must arrive before.
LONGEST_ADMISSION_DEADLINE = 29.0
#: The longest time a positive lookup is trusted: longer hides a deletion (a lifecycle rule, a prune).
LONGEST_ADMISSION_CACHE = 3600.0


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """An environment's ``admission:`` settings, read by ``promoter webhook serve``.

    Attributes:
        mode: guard (deny a missing image) or promote (copy it on demand from ``promotesFrom``).
        external: what happens to images of registries that are no environment's.
        allow_external: shell-style patterns (:mod:`fnmatch`, ``*`` crosses ``/``) of
            ``REGISTRY/REPOSITORY`` that are allowed without a warning whatever ``external`` says.
        promote_repositories: promote mode only: patterns of repository paths it may copy; empty
            for every repository.
        cache_seconds: how long an image found present is trusted without asking again; 0 turns
            the cache off. Images found missing are never cached.
        deadline_seconds: what one review may spend on lookups and an on-demand copy, in
            seconds; keep it below the webhook configuration's ``timeoutSeconds``.
    """

    mode: AdmissionMode = AdmissionMode.GUARD
    external: ExternalImages = ExternalImages.ALLOW
    allow_external: tuple[str, ...] = ()
    promote_repositories: tuple[str, ...] = ()
    cache_seconds: float = 60.0
    deadline_seconds: float = 8.0


@dataclass(frozen=True, slots=True)
class Environment:
    """One stage of the pipeline: the overlay that describes it and the registry it pulls from.

    Attributes:
        name: the key under ``environments``.
        overlay: the Kustomize overlay folder, absolute, resolved against the config file's folder.
        registry: registry host (``host[:port]``); images there are managed, all others external.
        promotes_from: the environment whose images this one receives, or None for the first stage.
        fail_diverged: a tag whose source content changed after it was promoted (``diverged``)
            fails a sync instead of a warning (``divergedTags: fail``).
        allow_images_from: environments whose registry's images this one may deploy (each is a
            ``foreign-environment`` image, refused by a sync otherwise).
        overlay_link: the overlay path as promoter.yaml writes it, when a symbolic link in it
            leads elsewhere (``overlay`` is where it leads); None otherwise. Rendering follows it;
            ``promote`` does not write through it.
        admission: what the admission webhook does for this environment.
        prune_keep: tag patterns ``prune`` keeps in this environment's registry (``prune: keep:``).
        kustomize_build_options: the arguments every ``kustomize build`` of the overlay takes
            (``kustomizeBuildOptions:``, plus a command's ``--kustomize-build-option``), checked
            and one per flag (:func:`~promoter.config.kustomize_options.build_arguments`).
        kustomize_plugins: the build may run Kustomize plugins (``allowKustomizePlugins: true``):
            exec plugins and KRM functions, whose flags are refused otherwise.
    """

    name: str
    overlay: Path
    registry: str
    promotes_from: str | None = None
    fail_diverged: bool = False
    allow_images_from: tuple[str, ...] = ()
    overlay_link: str | None = None
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    prune_keep: tuple[str, ...] = ()
    kustomize_build_options: tuple[str, ...] = ()
    kustomize_plugins: bool = False


@dataclass(frozen=True, slots=True)
class PromoterConfig:
    """A loaded, validated ``promoter.yaml``.

    Attributes:
        path: the file it was loaded from.
        environments: by name, in pipeline order: every environment after the one it promotes
            from, file order otherwise.
        registries: per-registry settings by host; hosts not listed use the defaults.
        warnings: what is valid but probably a mistake (a ``registries:`` entry that matches no
            environment), one line each, for front ends to show.
    """

    path: Path
    environments: dict[str, Environment]
    registries: dict[str, RegistrySettings]
    warnings: tuple[str, ...] = ()

    def environment(self, name: str) -> Environment:
        """The environment called ``name``.

        Raises:
            ConfigError: no such environment; the message lists the known ones.
        """
        try:
            return self.environments[name]
        except KeyError:
            raise ConfigError(
                f"unknown environment {name!r} in {self.path}; known: {', '.join(self.environments)}"
            ) from None

    def source_of(self, name: str) -> Environment | None:
        """The environment ``name`` promotes from, or None when it is the start of the pipeline."""
        source = self.environment(name).promotes_from
        return None if source is None else self.environments[source]

    def other_registries(self, name: str) -> dict[str, str]:
        """The registries of the environments other than ``name`` (and other than its own
        registry, which several environments may share): host -> environment, the environment it
        promotes from first, then pipeline order."""
        environment = self.environment(name)
        source = self.source_of(name)
        others: dict[str, str] = {}
        for other in ([source] if source else []) + list(self.environments.values()):
            if other.name != name and other.registry != environment.registry:
                others.setdefault(other.registry, other.name)
        return others

    def environment_for_overlay(self, directory: Path) -> Environment | None:
        """The environment whose overlay is ``directory`` (after resolving both), if any.

        Lets commands that are given an overlay folder find out which registry it pulls from.
        """
        wanted = directory.resolve()
        for environment in self.environments.values():
            if environment.overlay == wanted:
                return environment
        return None

    def with_build_options(self, entries: Sequence[str], where: str) -> PromoterConfig:
        """This configuration with ``entries`` (a command's ``--kustomize-build-option``s) added
        after every environment's own ``kustomizeBuildOptions``, as the command renders each
        environment it reads (``status`` every one, ``prune`` those deploying from the registry).

        Added, not replacing: an option the overlay needs (``--enable-helm`` for its
        ``helmCharts:``) stays whatever the command adds. Plugin flags need the environment's
        ``allowKustomizePlugins: true`` here too.

        Raises:
            ConfigError: an entry is refused (:func:`~promoter.config.kustomize_options.build_arguments`),
                naming ``where`` and, for a plugin flag, the environment.
        """
        if not entries:
            return self
        added = build_arguments(entries, where=where, plugins_allowed=True)
        environments = {}
        for name, environment in self.environments.items():
            if not environment.kustomize_plugins:
                build_arguments(entries, where=f"{where} (environment {name})")
            environments[name] = replace(
                environment, kustomize_build_options=environment.kustomize_build_options + added
            )
        return replace(self, environments=environments)

    def registry_settings(self, registry: str) -> RegistrySettings:
        """Settings for a registry host: those in the file, or the defaults when it is not listed."""
        return self.registries.get(registry, RegistrySettings())
