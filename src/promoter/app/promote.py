"""Promotion as a Git change: set the version the source environment runs into the target overlay.

The edit goes into the target's ``kustomization.yaml`` ``images:`` entry for each module, changing nothing
else; then the edited overlay is rendered and every module must now run what was promoted, or the file is
put back and the reason given (a patch sets the image, the module is not deployed there). The Kustomize
component's image list, when the overlay has one, is rewritten to match. Nothing is committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from promoter.app.environment import environment_images, module_versions, modules
from promoter.app.runtime import Runtime
from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import InputError
from promoter.gitops.hookfile import hook_images_path, rewritten
from promoter.outcome import Outcome
from promoter.planning.plan import own_images
from promoter.reference import Reference
from promoter.remote.repository import lookup_digest

if TYPE_CHECKING:
    from promoter.gitops.overlay import ImageEdit


@dataclass(frozen=True, slots=True)
class Promotion:
    """What a promotion wrote.

    Attributes:
        target: the environment promoted to.
        modules: the modules promoted (repository paths).
        edits: the files written, the kustomization first, then the hook's image list (each with its
            text before and after); an edit with ``changed`` false wrote nothing.
        diff: the unified diff of every edit, paths relative to promoter.yaml's folder.
        notes: what was skipped or already in place, one line each, for the user.
    """

    target: str
    modules: tuple[str, ...]
    edits: tuple[ImageEdit, ...] = ()
    diff: str = ""
    notes: tuple[str, ...] = ()

    @property
    def outcome(self) -> Outcome:
        """Always done: a promotion that cannot be made raises instead."""
        return Outcome.DONE

    @property
    def changed(self) -> bool:
        """Whether any file was written."""
        return any(edit.changed for edit in self.edits)


def promote(
    runtime: Runtime,
    config: PromoterConfig,
    target_name: str,
    chosen: Sequence[str] = (),
    *,
    every_module: bool = False,
    pin_digest: bool = False,
    deadline: Deadline | None = None,
) -> Promotion:
    """Promote ``chosen`` modules (or every module the target deploys) into ``target_name``'s overlay.

    Args:
        runtime: reaches the source registry (for ``pin_digest``).
        config: promoter.yaml.
        target_name: the environment to promote to; it must promote from another one.
        chosen: repository paths of the modules.
        every_module: promote every module of the source that the target deploys.
        pin_digest: write the digest beside the tag (the source registry is asked for it).
        deadline: bounds the registry lookups.

    Raises:
        InputError: no source environment, unknown or ambiguous modules, an edit that would not change
            what the target runs (the file is restored), a version the source registry lacks.
        ConfigError: an overlay cannot be read, rendered or written.
    """
    target = config.environment(target_name)
    source = config.source_of(target.name)
    if source is None:
        raise InputError(
            f"environment {target.name} does not promote from another one "
            f"(set promotesFrom in {config.path})"
        )
    if every_module == bool(chosen):
        raise InputError("name the modules to promote, or ask for every module (not both)")
    available = module_versions(source, environment_images(source))
    current = modules(target, environment_images(target))
    notes: list[str] = []
    wanted_modules = _choose(
        source,
        target,
        available=available,
        current=current,
        chosen=chosen,
        every_module=every_module,
        notes=notes,
    )
    # ruamel.yaml loads only here: plan and sync, which run on every sync, do not edit files.
    from promoter.gitops.overlay import set_image, unified_diff  # noqa: PLC0415

    wanted: dict[str, tuple[str | None, str | None]] = {}
    edit: ImageEdit | None = None
    for module in wanted_modules:
        running = available[module][0]
        new_tag = running.tag
        digest = str(running.digest) if running.digest is not None else None
        if pin_digest:
            found = lookup_digest(runtime.transport, running, deadline=deadline)
            if found is None:
                raise InputError(f"{running} is not in {source.name}'s registry: nothing to pin")
            # The tag stays beside the digest: the copy keeps it, so the destination registry
            # never holds an untagged image that a lifecycle policy would expire.
            digest = str(found)
        wanted[module] = (new_tag, digest)
        name = current[module].name if module in current else f"{target.registry}/{module}"
        updated = set_image(
            target.overlay,
            match_repository=module,
            name=name,
            new_tag=new_tag,
            digest=digest,
            previous=edit,
        )
        if updated.after == (edit.after if edit is not None else updated.before):
            notes.append(f"{target.name} already runs {module} {digest or new_tag}")
        edit = updated
    edits = _write(target, wanted, edit) if edit is not None else []
    # Paths relative to promoter.yaml's folder, however the configuration was named (--config x).
    folder = config.path.parent.absolute()
    diff = "".join(unified_diff(e, relative_to=folder) for e in edits)
    return Promotion(target.name, tuple(wanted_modules), tuple(edits), diff, tuple(notes))


def _write(
    target: Environment, wanted: dict[str, tuple[str | None, str | None]], edit: ImageEdit
) -> list[ImageEdit]:
    """Write the kustomization edit (one write for all modules: the file is never left
    half-promoted), check what the overlay renders now, and rewrite the hook's image list."""
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see promote

    edits: list[ImageEdit] = []
    rendered: list[str] | None = None  # the target after the edit, rendered once for both uses
    if edit.changed:
        write_edit(edit)
        rendered = list(environment_images(target))
        _check_promotion(target, wanted, edit, rendered)
        edits.append(edit)
    listed = _rewrite_hook_file(target, edit, rendered)
    if listed is not None and listed.changed:
        edits.append(listed)
    return edits


def _choose(
    source: Environment,
    target: Environment,
    *,
    available: dict[str, list[Reference]],
    current: dict[str, Reference],
    chosen: Sequence[str],
    every_module: bool,
    notes: list[str],
) -> list[str]:
    """The modules to promote; what is skipped goes into ``notes``.

    Raises:
        InputError: a module the source does not run, or runs in more than one version.
    """
    wanted = sorted(available) if every_module else list(dict.fromkeys(chosen))
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise InputError(
            f"{', '.join(unknown)}: not a module of {source.name} "
            f"(known: {', '.join(sorted(available)) or 'none'})"
        )
    if every_module:
        # A module the target does not deploy has nothing to set; say so instead of adding an
        # images: entry that would change nothing.
        notes += [f"{target.name} does not use {m}; skipped" for m in wanted if m not in current]
        wanted = [m for m in wanted if m in current]
    ambiguous = [m for m in wanted if len(available[m]) > 1]
    if ambiguous:
        versions = "; ".join(
            f"{m}: {', '.join(_version(r) for r in available[m])}" for m in ambiguous
        )
        raise InputError(
            f"{source.name} runs more than one version of {versions}; promote by editing "
            f"{target.name}'s overlay by hand"
        )
    return wanted


def _version(reference: Reference) -> str:
    return str(reference.digest) if reference.digest is not None else reference.tag or ""


def _rewrite_hook_file(
    target: Environment, edit: ImageEdit, rendered: list[str] | None
) -> ImageEdit | None:
    """Make the Kustomize component's list name what the overlay runs; the edit written, if any.

    Otherwise the PreSync hook would not copy the promoted image. Rewritten even when the overlay
    already had the version, so that a promote also repairs a stale list.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see promote

    hook_file = hook_images_path(target.overlay)
    if hook_file is None:
        return None
    if rendered is None:
        rendered = list(environment_images(target))
    before, after = rewritten(hook_file, own_images(rendered, target.registry))
    listed = replace(edit, before=before, after=after, path=hook_file, changed=after != before)
    write_edit(listed)
    return listed


def _check_promotion(
    target: Environment,
    wanted: dict[str, tuple[str | None, str | None]],
    edit: ImageEdit,
    rendered: Iterable[str],
) -> None:
    """Make sure each module of the rendered, edited overlay runs what was promoted.

    An entry can match by repository yet not apply (a patch sets the image after the rename, or
    the target does not deploy the module): then the file is put back and the user told where to
    look, instead of a diff that changes nothing.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see promote

    versions = module_versions(target, rendered)
    wrong = []
    for module, (tag, digest) in wanted.items():
        runs = versions.get(module, [])
        if not runs or any(
            (r.tag != tag and tag is not None) or _digest_text(r) != digest for r in runs
        ):
            shown = ", ".join(str(r) for r in runs) or "no image of it"
            wrong.append(f"{module} (renders {shown})")
    if wrong:
        write_edit(replace(edit, before=edit.after, after=edit.before))
        raise InputError(
            f"promoting to {target.name} would not change what it runs: {'; '.join(wrong)}; "
            "the image is set elsewhere in the overlay (a patch?) or not deployed there; "
            f"{edit.path} is unchanged"
        )


def _digest_text(reference: Reference) -> str | None:
    return str(reference.digest) if reference.digest is not None else None
