"""The Argo CD Config Management Plugin's ``generate``: an overlay's manifests plus the hook Job.

Argo CD runs the plugin's ``generate`` command in the application's source directory and applies whatever it
prints, so the output is the overlay's manifests exactly as kustomize rendered them, followed by the hook
that copies the managed images those manifests use (pod specs, and the custom resources' fields the
overlay's kustomize ``configurations:`` declare): nobody keeps an image list by hand. Every failure
raises: an empty output with pruning on would make Argo CD delete the application's resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter.app.environment import (
    check_own_registry,
    environment_images,
    lookalike_warnings,
    unmanaged_notes,
    unqualified_warnings,
    unused_entry_warnings,
)
from promoter.app.plan import environment_policy
from promoter.argocd.hookjob import hook_objects
from promoter.argocd.plugin import PluginSettings, dump_objects, hook_config, hook_problems
from promoter.config.load import find_config, load_config
from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import ConfigError, InputError, InvalidReferenceError
from promoter.gitops.discover import FoundImage, parse_manifests, scan_manifests
from promoter.gitops.hookfile import is_hook
from promoter.gitops.kustomization import image_field_specs
from promoter.gitops.render import render_overlay
from promoter.planning.plan import in_registry
from promoter.reference import parse_reference


@dataclass(frozen=True, slots=True)
class PluginOutput:
    """What ``generate`` prints: the rendered manifests and the hook objects after them.

    Attributes:
        manifests: kustomize's output, unchanged (ending in a newline).
        hook: the hook's Kubernetes objects (none when the environment promotes from nowhere or
            runs no image of its registry).
        notes: images of other environments' registries that the environment allows (the hook
            does not copy them); why no hook was added, when none was; the workstation settings
            left out of it; strings naming the environment's registry outside image fields, which
            the hook does not copy; ``images:`` entries of the overlay that no rendered image shows.
        problems: what keeps the hook from working as configured (no image, no role:
            :func:`~promoter.argocd.plugin.hook_problems`), and images the workloads would pull
            although nobody promoted them (:func:`overlay_problems`), one line each; ``--strict``
            refuses them.
    """

    manifests: str
    hook: list[dict[str, Any]]
    notes: list[str]
    problems: list[str]

    @property
    def text(self) -> str:
        """The whole output: manifests, then each hook object as a ``---`` YAML document."""
        return self.manifests + dump_objects(self.hook)


def generate_plugin_output(
    source_dir: Path,
    settings: PluginSettings,
    *,
    render_seconds: float,
    config_path: Path | None = None,
) -> PluginOutput:
    """Render the overlay in ``source_dir`` and add the hook for its managed images.

    Args:
        source_dir: the overlay folder (Argo CD runs plugins in the application's source path).
        settings: the hook Job's settings.
        render_seconds: the most every render together may take (the overlay's, and the source
            environment's when it is needed): Argo CD kills a plugin command that outlives its
            own timeout, and its message would then replace ours
            (:func:`~promoter.argocd.plugin.render_budget`).
        config_path: promoter.yaml; by default the nearest one in ``source_dir`` or above.

    The Job passes ``--fail-on-diverged`` when the environment says ``divergedTags: fail``.

    Raises:
        ConfigError: no promoter.yaml, the folder is no environment's overlay, the render failed or
            produced no objects, the manifests already hold promoter's hook (another packaging:
            the Kustomize component), the manifests deploy images of another environment's registry
            that the environment does not allow (``allowImagesFrom``), the overlay deploys no
            image of the environment's registry while
            its source environment deploys images of its own (a wrong ``registry:``), or a
            ``caFile`` cannot be carried to the Job.
        DeadlineExceededError: the source environment's render was still running at the deadline.
        InputError: an image in the manifests does not parse (naming the workload and container).
    """
    deadline = Deadline.after(render_seconds)
    source_dir = source_dir.resolve()
    config = load_config(config_path if config_path is not None else find_config(source_dir))
    environment = config.environment_for_overlay(source_dir)
    if environment is None:
        overlays = ", ".join(f"{e.name}: {e.overlay}" for e in config.environments.values())
        raise ConfigError(
            f"{source_dir} is the overlay of no environment in {config.path} ({overlays})"
        )
    # The environment's kustomizeBuildOptions: what Argo CD's kustomize.buildOptions would pass.
    manifests = render_overlay(
        source_dir, options=environment.kustomize_build_options, deadline=deadline
    )
    documents = parse_manifests(manifests, source=f"kustomize build {source_dir}")
    if not documents:
        # Printing nothing would let Argo CD prune every resource of the application.
        raise ConfigError(f"kustomize build {source_dir} rendered no objects; refusing to go on")
    _refuse_packaged_hook(documents, source_dir)
    # No hook container to leave out of the scan: manifests holding one were refused just now.
    scan = scan_manifests(documents, environment.registry, image_field_specs(source_dir))
    images: dict[str, None] = {}
    others = config.other_registries(environment.name)
    foreign: dict[str, dict[str, FoundImage]] = {}  # environment -> image -> first place
    for found in scan.images:
        try:
            reference = parse_reference(found.image)
        except InvalidReferenceError as exc:
            raise InputError(f"{found.kind}/{found.name} {found.place}: {exc}") from exc
        if in_registry(reference, environment.registry):
            images.setdefault(found.image, None)
        elif reference.registry in others:
            foreign.setdefault(others[reference.registry], {}).setdefault(found.image, found)
    notes = _check_foreign(config, environment, foreign)
    warnings, problems = overlay_problems(
        config, environment.name, [found.image for found in scan.images]
    )
    notes += warnings
    source = config.source_of(environment.name)
    hook: list[dict[str, Any]] = []
    if source is None:
        notes.append(f"{environment.name} promotes from no environment: no hook added")
    elif not images:
        check_own_registry(
            config,
            environment.name,
            [image.image for image in scan.images],
            lambda: environment_images(source, deadline=deadline),
        )
        notes.append(
            f"{source_dir}'s manifests use no image of {environment.registry}: no hook added"
        )
    else:
        carried = hook_config(config.path)
        notes.extend(carried.notes)
        problems = [*hook_problems(settings, (source.registry, environment.registry)), *problems]
        hook = hook_objects(
            settings.hook,
            source.registry,
            list(images),
            config_files=carried.files or None,
            fail_on_diverged=environment.fail_diverged,
        )
    notes += unmanaged_notes(environment, scan.unmanaged)
    text = manifests if manifests.endswith("\n") else f"{manifests}\n"
    return PluginOutput(text, hook, notes, problems)


def overlay_problems(
    config: PromoterConfig, name: str, images: list[str]
) -> tuple[list[str], list[str]]:
    """What ``plan`` and ``sync`` warn about in environment ``name``'s images
    (:func:`~promoter.app.environment.overlay_warnings`), split into notes and problems.

    Problems are the images a Pod would pull from somewhere nobody promoted to: one in a registry
    that looks like the environment's own (:func:`~promoter.app.environment.lookalike_warnings`,
    a typo in ``newName``) and an unqualified one another environment's ``images:`` renames
    (:func:`~promoter.app.environment.unqualified_warnings`, ``ml`` pulled from Docker Hub). The
    hook leaves such an image out without a word, and Argo CD shows no standard error of a
    command that succeeds, so ``--strict`` refuses them. An ``images:`` entry that applies to no
    rendered image stays a note: what the workloads pull does not change by it.

    Returns:
        ``(notes, problems)``, each line as ``overlay_warnings`` words it.
    """
    problems = [
        *unqualified_warnings(config, name, images),
        *lookalike_warnings(config, name, images),
    ]
    notes = unused_entry_warnings(config.environment(name), images)
    return notes, problems


def _refuse_packaged_hook(documents: list[dict[str, Any]], source_dir: Path) -> None:
    """Refuse manifests that already hold promoter's hook (:func:`~promoter.gitops.hookfile.is_hook`):
    the overlay uses another packaging (the Kustomize component), and with the plugin's own hook
    Argo CD would get two Jobs and the same ServiceAccount twice.

    Raises:
        ConfigError: one line naming the hook object and what to do.
    """
    found = [d for d in documents if is_hook(d)]
    if not found:
        return
    metadata = found[0].get("metadata")
    names = metadata if isinstance(metadata, dict) else {}
    shown = f"{found[0].get('kind')}/{names.get('name') or names.get('generateName')}"
    raise ConfigError(
        f"kustomize build {source_dir} already contains promoter's hook ({shown} runs promoter "
        "sync --from-registry: the Kustomize component deploy/kustomize/promoter-hook or a Job of "
        "your own), and the plugin adds its own: Argo CD would get two hook Jobs and the "
        "ServiceAccount twice; use one packaging: remove the component (its configMapGenerator "
        "and promoter-images.txt too) or that container from the overlay, or deploy the overlay "
        "without the plugin"
    )


#: How many images of one other environment a refusal names before it counts the rest.
FOREIGN_SHOWN = 5


def _check_foreign(
    config: PromoterConfig,
    environment: Environment,
    foreign: Mapping[str, Mapping[str, FoundImage]],
) -> list[str]:
    """Refuse images of other environments' registries that ``environment`` does not allow (its
    ``allowImagesFrom``, the rule ``plan`` applies): the hook copies only images of the
    environment's own registry, so they would be left out of its Job without a word while the
    workloads pull from another account. Allowed ones are returned as notes.

    Args:
        foreign: by the environment whose registry holds them, each image and its first place.

    Raises:
        ConfigError: one line naming the refused images, whose registry they are in, and the two
            ways on (promote them, or ``allowImagesFrom``).
    """
    policy = environment_policy(environment)
    refused: list[str] = []
    notes: list[str] = []
    for owner, found in foreign.items():
        registry = config.environment(owner).registry
        shown = ", ".join(
            f"{image} ({place.kind}/{place.name})"
            for image, place in list(found.items())[:FOREIGN_SHOWN]
        )
        rest = len(found) - FOREIGN_SHOWN
        if rest > 0:
            shown = f"{shown} and {rest} more"
        if policy.allows(owner):
            notes.append(
                f"{environment.name} deploys images of environment {owner}'s registry {registry} "
                f"(allowImagesFrom): {shown}; the hook does not copy them"
            )
        else:
            refused.append(f"images of environment {owner}'s registry {registry}: {shown}")
    if refused:
        name = environment.name
        raise ConfigError(
            f"environment {name} deploys {'; '.join(refused)}; the hook copies only images of "
            f"{environment.registry}, so {name} would pull these from another environment's "
            f"registry: promote them (promoter promote MODULE --to {name}) so the overlay names "
            f"{environment.registry}, or allow it (allowImagesFrom under environments.{name} in "
            "promoter.yaml)"
        )
    return notes
