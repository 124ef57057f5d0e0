"""The Argo CD Config Management Plugin's ``generate``: an overlay's manifests plus the PreSync hook.

Argo CD runs the plugin's ``generate`` command in the application's source directory and applies whatever it
prints, so the output is the overlay's manifests exactly as kustomize rendered them, followed by the hook
that copies the managed images those manifests use (pod specs, and the custom resources' fields the
overlay's kustomize ``configurations:`` declare): nobody keeps an image list by hand. Every failure
raises: an empty output with pruning on would make Argo CD delete the application's resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter.app.environment import unmanaged_notes
from promoter.argocd.hookjob import HookSettings, hook_objects
from promoter.argocd.plugin import dump_objects, hook_registry_settings
from promoter.config.load import find_config, load_config
from promoter.errors import ConfigError, InputError, InvalidReferenceError
from promoter.gitops.discover import parse_manifests, scan_manifests
from promoter.gitops.hookfile import is_hook
from promoter.gitops.kustomization import image_field_specs
from promoter.gitops.render import render_overlay
from promoter.planning.plan import in_registry
from promoter.reference import parse_reference

#: Argo CD gives a plugin command 90 s; rendering stops first, so that our message is the one shown.
PLUGIN_RENDER_TIMEOUT = 80.0


@dataclass(frozen=True, slots=True)
class PluginOutput:
    """What ``generate`` prints: the rendered manifests and the hook objects after them.

    Attributes:
        manifests: kustomize's output, unchanged (ending in a newline).
        hook: the hook's Kubernetes objects (none when the environment promotes from nowhere or
            runs no image of its registry).
        notes: why no hook was added, when none was; strings naming the environment's registry
            outside image fields, which the hook does not copy.
    """

    manifests: str
    hook: list[dict[str, Any]]
    notes: list[str]

    @property
    def text(self) -> str:
        """The whole output: manifests, then each hook object as a ``---`` YAML document."""
        return self.manifests + dump_objects(self.hook)


def generate_plugin_output(
    source_dir: Path, settings: HookSettings, *, config_path: Path | None = None
) -> PluginOutput:
    """Render the overlay in ``source_dir`` and add the PreSync hook for its managed images.

    Args:
        source_dir: the overlay folder (Argo CD runs plugins in the application's source path).
        settings: the hook Job's settings.
        config_path: promoter.yaml; by default the nearest one in ``source_dir`` or above.

    Raises:
        ConfigError: no promoter.yaml, the folder is no environment's overlay, the render failed or
            produced no objects.
        InputError: an image in the manifests does not parse (naming the workload and container).
    """
    source_dir = source_dir.resolve()
    config = load_config(config_path if config_path is not None else find_config(source_dir))
    environment = config.environment_for_overlay(source_dir)
    if environment is None:
        overlays = ", ".join(f"{e.name}: {e.overlay}" for e in config.environments.values())
        raise ConfigError(
            f"{source_dir} is the overlay of no environment in {config.path} ({overlays})"
        )
    manifests = render_overlay(source_dir, timeout=PLUGIN_RENDER_TIMEOUT)
    documents = parse_manifests(manifests, source=f"kustomize build {source_dir}")
    if not documents:
        # Printing nothing would let Argo CD prune every resource of the application.
        raise ConfigError(f"kustomize build {source_dir} rendered no objects; refusing to go on")
    scan = scan_manifests(
        (d for d in documents if not is_hook(d)),
        environment.registry,
        image_field_specs(source_dir),
    )
    images: dict[str, None] = {}
    for found in scan.images:
        try:
            reference = parse_reference(found.image)
        except InvalidReferenceError as exc:
            raise InputError(f"{found.kind}/{found.name} {found.place}: {exc}") from exc
        if in_registry(reference, environment.registry):
            images.setdefault(found.image, None)
    source = config.source_of(environment.name)
    hook: list[dict[str, Any]] = []
    notes: list[str] = []
    if source is None:
        notes.append(f"{environment.name} promotes from no environment: no hook added")
    elif not images:
        notes.append(
            f"{source_dir}'s manifests use no image of {environment.registry}: no hook added"
        )
    else:
        hook = hook_objects(
            settings,
            source.registry,
            list(images),
            registry_settings=hook_registry_settings(config.path),
        )
    notes += unmanaged_notes(environment, scan.unmanaged)
    text = manifests if manifests.endswith("\n") else f"{manifests}\n"
    return PluginOutput(text, hook, notes)
