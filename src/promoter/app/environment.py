"""An environment's images: render (or read) its manifests, discover the images, and sort out the ones
its own registry holds (its *modules*: repository paths in that registry).

Argo CD hook objects of promoter itself are left out: their image is the promoter Job's own, deployed with
the hook, not something the environment promotes. Images in custom resources are found where the overlay's
kustomize ``configurations:`` say they are; any other mention of the environment's registry is kept as an
unmanaged reference for the front ends to report.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import ConfigError, InvalidReferenceError
from promoter.gitops.discover import (
    ImageFieldSpec,
    ManifestScan,
    UnmanagedReference,
    iter_manifests,
    scan_manifests,
)
from promoter.gitops.hookfile import is_hook_settings, without_hook_containers
from promoter.gitops.kustomization import image_entry_names, image_field_specs
from promoter.gitops.render import Rendering, read_manifests, render_overlay
from promoter.planning.plan import own_images
from promoter.reference import Reference, parse_reference


def environment_images(
    environment: Environment,
    *,
    manifests: str | None = None,
    rendering: Rendering | None = None,
    deadline: Deadline | None = None,
) -> Iterator[str]:
    """Every image the environment's manifests use, as written, one per place, in document order.

    Arguments and exceptions as for :func:`environment_scan`.
    """
    scan = environment_scan(
        environment, manifests=manifests, rendering=rendering, deadline=deadline
    )
    return (found.image for found in scan.images)


def environment_scan(
    environment: Environment,
    *,
    manifests: str | None = None,
    rendering: Rendering | None = None,
    deadline: Deadline | None = None,
    mentions_of: str | None = None,
) -> ManifestScan:
    """The images of the environment's manifests and the other strings naming its registry (or,
    with ``mentions_of``, that registry: prune asks an environment about another's).

    Images are those of pod specs and, for a rendered overlay, those at the fields its kustomization
    tree declares through ``configurations:`` image fieldSpecs (:func:`image_field_specs`); given
    manifests (Helm output) come with no kustomization, so only pod specs are read there. Each
    document is dropped once scanned.

    Args:
        environment: the environment.
        manifests: already rendered manifests to read instead (a path, ``-`` for standard input).
        rendering: a build of the overlay started earlier; used when it is of this environment's
            overlay, stopped otherwise.
        deadline: bounds a render that is not done yet (kustomize fetching a remote base): it is
            stopped at the deadline.

    Raises:
        ConfigError: the overlay cannot be rendered, the manifests are not valid YAML, or a
            kustomization or configurations file of the overlay cannot be read.
        DeadlineExceededError: the render was still running at the deadline.
        RunInterruptedError: the run was interrupted while the overlay rendered.
    """
    if manifests:
        text = read_manifests(manifests)
        source = (
            "manifests from standard input" if manifests == "-" else f"manifests from {manifests}"
        )
        field_specs: tuple[ImageFieldSpec, ...] = ()
    else:
        text = _rendered(environment, rendering, deadline)
        source = f"kustomize build {environment.overlay}"
        field_specs = image_field_specs(environment.overlay)  # after kustomize accepted the tree
    hook_images: list[str] = []
    hook_sources: list[str] = []

    def scanned(document: Mapping[str, Any]) -> bool:
        if not is_hook_settings(document):
            return True
        value = document["data"].get("sourceRegistry")
        if isinstance(value, str):
            hook_sources.append(value.strip())
        return False

    documents = without_hook_containers(
        (d for d in iter_manifests(text, source=source) if scanned(d)), hook_images
    )
    scan = scan_manifests(documents, mentions_of or environment.registry, field_specs)
    return replace(scan, hook_images=tuple(hook_images), hook_sources=tuple(hook_sources))


#: How many unmanaged references :func:`unmanaged_notes` describes one by one.
UNMANAGED_SHOWN = 10


def unmanaged_notes(
    environment: Environment, unmanaged: Sequence[UnmanagedReference], shown: int = UNMANAGED_SHOWN
) -> list[str]:
    """One line per distinct value among ``unmanaged`` (at most ``shown``, then one line counting the
    rest), for the front ends to print as warnings: an image there may be missing at deploy time
    although plan and sync found nothing to do."""
    places: dict[str, list[UnmanagedReference]] = {}
    for reference in unmanaged:
        places.setdefault(reference.value, []).append(reference)
    notes = []
    for value, found in list(places.items())[:shown]:
        first = found[0]
        more = len(found) - 1
        also = f" (and {more} more place{'s' if more > 1 else ''})" if more else ""
        notes.append(
            f"{environment.name}: {value} at {first.kind}/{first.name} {first.path}{also} names "
            f"the registry {environment.registry} outside the fields promoter reads images from, "
            "so no plan or sync copies it; if it is an image, declare its field as an images: "
            "fieldSpec in a kustomize configurations: file"
        )
    rest = len(places) - shown
    if rest > 0:
        notes.append(
            f"{environment.name}: {rest} more value{'s' if rest > 1 else ''} naming "
            f"{environment.registry} outside image fields (plan -o json lists every place)"
        )
    return notes


def _rendered(
    environment: Environment, rendering: Rendering | None, deadline: Deadline | None
) -> str:
    """The overlay's manifests, built with the environment's build options: the early build when
    it is of this overlay with those options, else a new one; either is stopped at the deadline.

    Raises:
        ConfigError: the build failed or ran past its own timeout.
        DeadlineExceededError: the build was stopped at the deadline.
        RunInterruptedError: the run was interrupted while it ran.
    """
    options = environment.kustomize_build_options
    if (
        rendering is not None
        and rendering.overlay == environment.overlay
        and rendering.options == options
    ):
        return rendering.result(deadline)
    if rendering is not None:
        # built for an overlay, or with options, that the validated configuration does not name
        rendering.cancel()
    return render_overlay(environment.overlay, options=options, deadline=deadline)


def check_own_registry(
    config: PromoterConfig,
    name: str,
    images: Sequence[str],
    source_images: Callable[[], Iterable[str]],
    *,
    allow_foreign: bool = False,
    given: bool = False,
) -> str | None:
    """Refuse an environment whose overlay deploys no image of its own registry while the environment
    it promotes from deploys images of its own. Either its ``registry:`` in promoter.yaml is wrong (a
    typo, another account or region), or the overlay deploys other environments' images (production
    pulling from dev's account); either way every plan would have nothing to copy and every sync would
    report done. ``source_images`` is only asked in that case, and may raise
    :class:`~promoter.errors.ConfigError` to skip the check (a source overlay that cannot be
    rendered where manifests were given).

    Images of environments the environment may deploy from (``allowImagesFrom``, or every one
    with ``allow_foreign``) do not count as a mistake. ``given``: the images come from manifests
    given instead of the overlay (``--manifests``), which the message then names as the suspect.

    Returns:
        A warning when the check could not be made (the source overlay does not render), else None.

    Raises:
        ConfigError: naming the environment, its registry, the source's and the registries the
            overlay does use, with what to do.
    """
    environment = config.environment(name)
    source = config.source_of(name)
    if source is None or own_images(images, environment.registry):
        return None
    try:
        if not own_images(source_images(), source.registry):
            return None  # neither deploys anything of its own yet: a new pipeline, not a mistake
    except ConfigError as exc:
        # The check needs the source's images; say that it was skipped, and why, rather than
        # let a wrong registry: plan "nothing to copy" without a word.
        return (
            f"environment {name}: its images name none of its registry {environment.registry}, "
            f"and {source.name}'s overlay could not be rendered to tell whether that is a "
            f"mistake ({exc}); if the registry is mistyped, nothing will be copied"
        )
    used = sorted({_registry_of(text) for text in images} - {""})
    others = config.other_registries(name)
    foreign = sorted({others[registry] for registry in used if registry in others})
    allowed = allow_foreign or "*" in environment.allow_images_from
    if foreign:
        if allowed or set(foreign) <= set(environment.allow_images_from):
            return None
        shown = ", ".join(f"{other} ({config.environment(other).registry})" for other in foreign)
        raise ConfigError(
            f"environment {name}: its overlay deploys no image of its registry "
            f"{environment.registry} but images of {shown}: {name} would pull from another "
            f"environment's registry; promote them (promoter promote --all --to {name}) so the "
            f"overlay names {environment.registry}, or allow it (allowImagesFrom in promoter.yaml, "
            "--allow-foreign)"
        )
    if given:
        raise ConfigError(
            f"environment {name}: the given manifests deploy no image of its registry "
            f"{environment.registry}, while {source.name} deploys images of {source.registry}; "
            f"their images are in {', '.join(used) or 'no registry'}: check the manifests (what "
            f"rendered them, with which values), or environments.{name}.registry in promoter.yaml"
        )
    raise ConfigError(
        f"environment {name}: its overlay deploys no image of its registry "
        f"{environment.registry}, while {source.name} deploys images of {source.registry}; the "
        f"overlay's images are in {', '.join(used) or 'no registry'}: check "
        f"environments.{name}.registry in promoter.yaml"
    )


def overlay_warnings(
    config: PromoterConfig,
    name: str,
    images: Sequence[str],
    *,
    rendered: bool = True,
    hook_images: Sequence[str] = (),
) -> list[str]:
    """What in environment ``name``'s images is valid but most likely a mistake, one line each:
    :func:`unqualified_warnings`, :func:`unused_entry_warnings` (only when ``rendered``: the images
    come from the overlay, not from manifests given instead) and :func:`lookalike_warnings`. Plan
    and sync print them; a kustomization that cannot be read here adds nothing (the render already
    accepted the overlay). ``hook_images`` (promoter's own hook containers) count as rendered
    images for the ``images:`` entries (the component's entry for the hook image applies there)."""
    environment = config.environment(name)
    unused = unused_entry_warnings(environment, [*images, *hook_images]) if rendered else []
    return [
        *unqualified_warnings(config, name, images),
        *unused,
        *lookalike_warnings(config, name, images),
    ]


def unused_entry_warnings(environment: Environment, images: Sequence[str]) -> list[str]:
    """Warnings for the ``images:`` entries of the environment's kustomization tree that no image
    in its rendered manifests shows: kustomize applied them nowhere. Most often the image sits in
    a field of a custom resource that kustomize does not rewrite (``spec.image: connect``), which
    the overlay must declare in ``configurations:``; or no resource names that image any more."""
    try:
        entries = unused_image_entries(environment, images)
    except ConfigError:
        return []
    return [
        f"environment {environment.name}: the images: entry {entry!r} of its kustomization "
        f"(becoming {becomes}) matches no image in the rendered manifests: an image in a field "
        "kustomize does not rewrite (declare the field in configurations:) or a name no resource "
        "uses; its image is neither set nor planned"
        for entry, becomes in entries.items()
    ]


def unused_image_entries(environment: Environment, images: Sequence[str]) -> dict[str, str]:
    """The ``images:`` entries of the environment's kustomization tree that no image of its
    rendered manifests (``images``) shows, by ``name``, each with the image it becomes
    (``newName``, else the name), as :func:`~promoter.gitops.kustomization.image_entry_names`
    gives them.

    Raises:
        ConfigError: the kustomization tree cannot be read.
    """
    shown = {_name_as_written(text) for text in images}
    return {
        entry: becomes
        for entry, becomes in image_entry_names(environment.overlay).items()
        if becomes not in shown and entry not in shown
    }


def lookalike_warnings(config: PromoterConfig, name: str, images: Sequence[str]) -> list[str]:
    """Warnings for external images in a registry that looks like the environment's own (the
    same account in another region, a character off): a typo in one ``newName`` makes that image
    external, never copied, while the plan reports nothing to do for it."""
    own = config.environment(name).registry
    others = config.other_registries(name)
    warnings = []
    by_registry: dict[str, list[str]] = {}
    for text in images:  # each image parsed once
        by_registry.setdefault(_registry_of(text), []).append(text)
    for registry, used in by_registry.items():
        if not registry or registry == own or registry in others:
            continue
        same_account = registry.split(".", 1)[0] == own.split(".", 1)[0] and "." in own
        close = difflib.SequenceMatcher(a=registry, b=own).ratio() >= LOOKALIKE_RATIO
        if same_account or close:
            what = f"{used[0]} and {len(used) - 1} more are" if len(used) > 1 else f"{used[0]} is"
            warnings.append(
                f"environment {name}: {what} in {registry}, which looks like its registry {own} "
                "(a typo in an images: entry, a patch, or promoter.yaml?): such an image is "
                "external, never copied"
            )
    return warnings


#: How alike (difflib's ratio) a registry host must be to the environment's to be called a lookalike.
LOOKALIKE_RATIO = 0.9


def unqualified_warnings(config: PromoterConfig, name: str, images: Iterable[str]) -> list[str]:
    """Warnings for images the environment's manifests write without a registry (``ml``, which
    the runtime pulls as docker.io/library/ml) under a name another environment's kustomization
    renames in its ``images:``: the environment's overlay most likely lacks that entry, and its
    Pods would pull an unrelated public image, or nothing. One line each, naming what to add.

    Another environment's tree that cannot be read is passed over: its own plan reports that.
    """
    unqualified: dict[str, str] = {}
    for text in dict.fromkeys(images):
        written = _name_as_written(text)
        if written and _registry_of(text) == "docker.io" and "." not in written.split("/")[0]:
            unqualified.setdefault(written, text)
    if not unqualified:
        return []
    warnings = []
    for other in config.environments.values():
        if other.name == name:
            continue
        try:
            renames = image_entry_names(other.overlay)
        except ConfigError:
            continue
        for written, text in list(unqualified.items()):
            if written in renames:
                warnings.append(
                    f"environment {name} runs {text!r}, which means docker.io/library/"
                    f"{written.removeprefix('library/')}, while {other.name}'s kustomization "
                    f"renames {written!r} to {renames[written]}: {name}'s overlay most likely "
                    f"lacks that images: entry (promoter promote adds it)"
                )
                del unqualified[written]
    return warnings


def _name_as_written(text: str) -> str:
    """The image name as a kustomization ``images:`` entry matches it: without tag or digest."""
    name = text.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _registry_of(text: str) -> str:
    try:
        return parse_reference(text).registry
    except InvalidReferenceError:
        return ""


def module_versions(environment: Environment, images: Iterable[str]) -> dict[str, list[Reference]]:
    """Every distinct reference each module of the environment runs, by module (repository path in
    the environment's registry), modules and versions in first-use order.

    Raises:
        InvalidReferenceError: an image does not parse.
    """
    versions: dict[str, list[Reference]] = {}
    for text in own_images(images, environment.registry):
        reference = parse_reference(text)
        found = versions.setdefault(reference.repository, [])
        if reference not in found:
            found.append(reference)
    return versions


def foreign_modules(
    images: Iterable[str], others: dict[str, str]
) -> dict[str, tuple[Reference, str]]:
    """The images of other environments' registries (``others``: host -> environment, as
    :meth:`~promoter.config.values.PromoterConfig.other_registries` gives), by repository path:
    the first reference of each and the environment whose registry holds it.

    Raises:
        InvalidReferenceError: an image does not parse.
    """
    found: dict[str, tuple[Reference, str]] = {}
    for text in dict.fromkeys(images):
        reference = parse_reference(text)
        owner = others.get(reference.registry)
        if owner is not None:
            found.setdefault(reference.repository, (reference, owner))
    return found


def modules(environment: Environment, images: Iterable[str]) -> dict[str, Reference]:
    """The first version each module of the environment runs, by module."""
    return {module: refs[0] for module, refs in module_versions(environment, images).items()}
