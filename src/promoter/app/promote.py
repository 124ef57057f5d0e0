"""Promotion as a Git change: set the version the source environment runs into the target overlay.

The edit goes into the target's ``kustomization.yaml`` ``images:`` entry for each module, changing nothing
else; then the edited overlay is rendered and every module must now run what was promoted, or the file is
put back and the reason given (a patch sets the image, the module is not deployed there). The Kustomize
component's image list, when the overlay has one, is rewritten to match. Nothing is committed unless
asked (:mod:`promoter.app.write_back`).

What a user means by "promote X":

- the version is one the source registry holds (asked before anything is written, unless ``verify``
  is off), so a promotion never names an image that a sync could not copy;
- a module new to the target gets an entry named as the source's (``name: ml``), renamed into the
  target's registry, so that Kustomize applies it;
- a target that pins the module by digest stays pinned, at the new version's digest;
- a tag the target's registry already holds with other content (CI pushed the source's tag again
  after it was promoted) is never written: no sync moves a tag, so the target could not get the
  source's content under it; a module that already runs that tag, pinned or not, keeps what it
  runs and is reported as diverged;
- a module the target deploys from another environment's registry, or whose ``images:`` entry
  names it in any other registry (a typo'd ``newName``), is renamed into the target's own;
- "already runs" is said only of what the target renders in its registry;
- with every module, one the source runs in two versions is left for a human and reported, and the
  others are promoted;
- what the reviewer should look at is said: an old image left in a patch (now overridden), a comment
  beside a value that changed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.environment import (
    check_own_registry,
    environment_images,
    foreign_modules,
    module_versions,
    modules,
    unused_image_entries,
)
from promoter.app.plan import EnvironmentPlan, environment_policy, look_up
from promoter.app.runtime import Runtime
from promoter.app.write_back import (
    WriteBack,
    commit_promotion,
    prepare_write_back,
    push_unchanged,
)
from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import LONGEST_RUN_TIMEOUT, Deadline
from promoter.errors import (
    ConfigError,
    InputError,
    InvalidReferenceError,
    PromoterError,
    Remedy,
    RepositoryAccessError,
    SafetyError,
)
from promoter.gitops.git import CommitMade
from promoter.gitops.hookfile import hook_images_path, rewritten
from promoter.gitops.kustomization import image_entry_names
from promoter.gitops.promotions import PromotedImage
from promoter.oci.digest import Digest
from promoter.outcome import Outcome
from promoter.planning.plan import iter_wanted, own_images
from promoter.planning.versions import compare_tags
from promoter.process import undo_on_sudden_exit
from promoter.reference import Reference, parse_reference
from promoter.remote.repository import lookup_digests, same_content

if TYPE_CHECKING:
    from promoter.gitops.overlay import ImageEdit


@dataclass(frozen=True, slots=True)
class ModuleChange:
    """What a promotion did for one module.

    Attributes:
        module: the repository path.
        source: what the source environment runs, the version promoted.
        digest: what the source registry resolved ``source`` to; None when it was not asked
            (``verify`` off, and no digest to pin).
        before: what the target ran before, or None when it did not run the module from its
            registry.
        after: what the target runs now: its registry, the promoted tag, and the digest when
            the target pins the module.
        changed: whether the kustomization changed for this module (False: it already ran it).
        destination_digest: what the target's registry holds under the promoted tag when that is
            other content than the source's (only for a module whose version did not change: a
            promotion that would write such a tag is refused); None when the same content, absent,
            or not asked.
    """

    module: str
    source: Reference
    digest: Digest | None
    before: Reference | None
    after: Reference
    changed: bool
    destination_digest: Digest | None = None

    @property
    def diverged(self) -> bool:
        """Whether the target's registry holds the promoted tag with other content than the
        source's: the target keeps what it was given, and only a new tag moves it."""
        return self.destination_digest is not None


@dataclass(frozen=True, slots=True)
class RefusedModule:
    """A module left alone by a promotion of every module: the source runs it in several versions,
    or the target's registry holds its tag with other content.

    Attributes:
        module: the repository path.
        versions: every version the source runs, in first-use order.
        reason: why it was left alone when that is not several versions (a diverged tag, both
            digests named).
    """

    module: str
    versions: tuple[Reference, ...]
    reason: str | None = None

    def message(self, source: str, target: str) -> str:
        """One line for the user, naming every version (or the reason)."""
        if self.reason is not None:
            return f"{self.module} not promoted: {self.reason}"
        versions = ", ".join(_version(r) for r in self.versions)
        return (
            f"{self.module} not promoted: {source} runs more than one version of it ({versions}); "
            f"promote it by editing {target}'s overlay by hand"
        )


@dataclass(frozen=True, slots=True)
class Promotion:
    """What a promotion wrote.

    Attributes:
        target: the environment promoted to.
        modules: the modules promoted (repository paths).
        edits: the files considered, the kustomization first (also when it already ran every
            version: ``changed`` false), then the hook's image list when it was rewritten (each
            with its text before and after); an edit with ``changed`` false wrote nothing.
        diff: the unified diff of every edit, paths relative to promoter.yaml's folder.
        notes: what was skipped or already in place, one line each, for the user.
        source: the environment promoted from.
        changes: one per module promoted, in ``modules``' order.
        refused: the modules left alone (every module was asked for, and the source runs these in
            more than one version, or the target's registry holds their tag with other content).
        warnings: what the reviewer should look at, one line each: an old image left in a patch,
            a comment kept beside a changed value, versions not checked in the source registry, a
            diverged tag the target keeps, a target registry that could not be asked.
        images: every image the target's overlay renders after the promotion (what a sync of
            the promoted modules plans from, without building the overlay again).
        root: promoter.yaml's folder: the diff, the JSON form and the warnings name files
            relative to it.
        dry_run: nothing was written: ``edits`` and ``diff`` are what a promotion would write.
        commit: the commit that recorded the promotion in Git (``write_back``), if one was made.
    """

    target: str
    modules: tuple[str, ...]
    edits: tuple[ImageEdit, ...] = ()
    diff: str = ""
    notes: tuple[str, ...] = ()
    source: str = ""
    changes: tuple[ModuleChange, ...] = ()
    refused: tuple[RefusedModule, ...] = ()
    warnings: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    root: Path | None = None
    dry_run: bool = False
    commit: CommitMade | None = None

    @property
    def outcome(self) -> Outcome:
        """Failed when its commit could not be pushed (the commit stands), refused when a module
        was left alone (``refused``), else done: a promotion that cannot be made raises
        instead."""
        if self.commit is not None and self.commit.push_error:
            return Outcome.FAILED
        return Outcome.REFUSED if self.refused else Outcome.DONE

    @property
    def changed(self) -> bool:
        """Whether any file was written (or, in a dry run, would be)."""
        return any(edit.changed for edit in self.edits)

    def file_name(self, path: Path) -> str:
        """A file as the diff labels it: relative to :attr:`root` when inside it, as ``git diff``
        would print it."""
        return _shown(path, self.root)


@dataclass(frozen=True, slots=True)
class _Step:
    """One module's planned promotion: what to write and what the target must render then."""

    module: str
    running: Reference  #: what the source runs
    found: Digest | None  #: what the source registry resolved it to, if asked
    after: Reference  #: what the target must render
    name: str  #: the ``name`` of an appended entry
    new_name: str | None  #: its ``newName``, when the resources write another name
    new_tag: str | None  #: the ``newTag`` to write (Kustomize's ``tag@digest`` form included)
    digest: str | None  #: the ``digest`` to write
    rename: str | None  #: the ``newName`` of an entry naming another environment's image
    writes: bool  #: whether the target runs something else now (a new entry, version or name)


def promote(
    runtime: Runtime,
    config: PromoterConfig,
    target_name: str,
    chosen: Sequence[str] = (),
    *,
    every_module: bool = False,
    pin_digest: bool = False,
    verify: bool = True,
    version: str | None = None,
    dry_run: bool = False,
    write_back: WriteBack | None = None,
    deadline: Deadline | None = None,
) -> Promotion:
    """Promote ``chosen`` modules (or every module the target deploys) into ``target_name``'s overlay.

    Before anything is written, the target's registry is asked for each tag to promote (the same
    repository path and tag): a tag it holds with other content than the source's cannot reach the
    target by a sync, which never moves a tag. Writing such a tag is refused; a module that already
    runs it (pinned by digest or not: only the digest would change) keeps what it runs and is
    reported as diverged (:attr:`ModuleChange.diverged`, and a warning). A target registry that
    cannot be asked is a warning, not a failure. An ``images:`` entry of the target naming a module
    in a registry that is neither the target's nor another environment's (a typo) is moved into
    the target's registry, with a warning.

    Args:
        runtime: reaches the source and the target registry.
        config: promoter.yaml.
        target_name: the environment to promote to; it must promote from another one.
        chosen: repository paths of the modules.
        every_module: promote every module of the source that the target deploys; one the source
            runs in more than one version, or whose tag the target's registry holds with other
            content, is left alone and listed in ``refused``.
        pin_digest: write the digest beside the tag (the source registry is asked for it). A
            module the target already pins by digest stays pinned without it.
        verify: ask the source registry whether it holds each version before writing anything;
            off, the versions are written unchecked (a warning names them), except those whose
            digest is needed for a pin.
        version: promote this version (a tag, a digest or ``tag@digest``) of the one module in
            ``chosen`` instead of the one the source runs: one the source registry holds, else
            one the target's registry holds (a rollback to what the target ran before); the same
            checks apply.
        dry_run: write nothing: the edit is rendered in a temporary copy of the overlay and
            checked there, and returned with its diff (:attr:`Promotion.dry_run`).
        write_back: commit the edit to Git (and push it) as this asks; everything that could
            refuse the commit is checked before a file is written, and a commit that fails puts
            the files back (:mod:`promoter.app.write_back`).
        deadline: bounds the renders, the registry lookups and Git.

    Raises:
        InputError: no source environment, ``version`` without exactly one module or not a
            version, a write-back Git would refuse (nothing is written), unknown modules (an ``images:`` entry name is told
            which module it is, an entry that applies to no rendered image is told so), named
            modules the source runs in more than one version, an edit that would not change what
            the target runs or one that changes nothing while the target renders another image
            (the file is restored or untouched).
        ConfigError: an overlay cannot be read, rendered or written, or the target deploys no
            image of its registry while its source does (a wrong ``registry:``).
        SafetyError: a named module's tag, new to the target, is held by the target's registry
            with other content than the source's (both digests named; nothing is written).
        PromoterError: a version the source registry lacks (nothing is written; its remedy is
            :attr:`Remedy.SKIP_VERIFY` when skipping the check would write it anyway), or a
            named ``version`` that neither registry holds; a push that failed (the commit stays).
        RegistryError, RegistryUnreachableError, DeadlineExceededError: the source registry
            could not be asked, or (the deadline) an overlay did not render in time.
        RunInterruptedError: the run was interrupted; a kustomization written already was put
            back.
    """
    target = config.environment(target_name)
    if target.overlay_link is not None:
        raise ConfigError(
            f"environments.{target.name}.overlay: {target.overlay_link} passes a symbolic link "
            f"(to {target.overlay}); promote writes no file through a link: name the real "
            "folder in promoter.yaml"
        )
    source = config.source_of(target.name)
    if source is None:
        raise InputError(
            f"environment {target.name} does not promote from another one "
            f"(set promotesFrom in {config.path})"
        )
    if every_module == bool(chosen):
        raise InputError("name the modules to promote, or ask for every module (not both)")
    source_images = tuple(environment_images(source, deadline=deadline))
    target_images = tuple(environment_images(target, deadline=deadline))
    # A wrong registry: (a typo, another region) is refused as plan refuses it, before anything
    # is chosen. Other environments' images are what promotion moves into the target's registry.
    check_own_registry(
        config, target.name, target_images, lambda: source_images, allow_foreign=True
    )
    available = module_versions(source, source_images)
    current = modules(target, target_images)
    known: dict[str, Digest] = {}
    origin = source
    warnings: list[str] = []
    if version is not None:  # the one module's version is the one named
        available, known, origin = _named_version(
            runtime,
            (source, target),
            chosen,
            version,
            available=available,
            deployed=set(available) | set(current),
            every_module=every_module,
            verify=verify,
            warnings=warnings,
            deadline=deadline,
        )
    # ruamel.yaml loads only here: plan and sync, which run on every sync, do not edit files.
    from promoter.gitops.overlay import kept_comments, unified_diff  # noqa: PLC0415

    moved = _moved_modules(
        config,
        target,
        target_images,
        [m for m in (available if every_module else chosen) if m in available and m not in current],
        warnings,
    )
    notes: list[str] = []
    wanted, names, refused = _choose(
        source,
        target,
        available=available,
        source_images=source_images,
        target_images=target_images,
        current=current,
        foreign=moved,
        chosen=chosen,
        every_module=every_module,
        notes=notes,
    )
    pinned = {m for m in wanted if pin_digest or (m in current and current[m].digest is not None)}
    # A module the target runs at that version already gets nothing written: its version need not
    # be in the source registry, so re-running a promotion stays safe after the source dropped it.
    in_place = {
        m
        for m in wanted
        if m not in pinned
        and m not in moved
        and m in current
        and (current[m].tag, current[m].digest) == (available[m][0].tag, available[m][0].digest)
    }
    asked = [m for m in wanted if m in pinned or (verify and m not in in_place)]
    found = known | _look_up_versions(
        runtime,
        source,
        {m: available[m][0] for m in asked if m not in known},
        skippable={m for m in asked if verify and m not in pinned},
        deadline=deadline,
    )
    if verify:  # asked only to tell a diverged tag: what is not there or not answered is no error
        found |= _look_up_quietly(
            runtime, source, {m: available[m][0] for m in in_place}, warnings, deadline
        )
    steps = [
        _step(
            target,
            module,
            available[module][0],
            found=found.get(module),
            pinned=module in pinned,
            name=(current[module].name, None) if module in current else names[module],
            rename=f"{target.registry}/{module}" if module in moved else None,
            before=current.get(module),
        )
        for module in wanted
    ]
    held = _target_tags(runtime, target, steps, warnings, deadline)
    steps, kept = _keep_same_tags(steps, held, current)
    diverged = [s for s in steps if s.module in held and s.writes]
    if diverged and not every_module:
        raise SafetyError(
            "refusing to promote "
            + "; ".join(_divergence(target, source, s, held[s.module]) for s in diverged)
            + f": a sync never moves a tag ('promoter copy --force' does, on purpose), so "
            f"{target.name} would not get {source.name}'s content; nothing was promoted",
            hint="push it under a new tag and promote that",
        )
    refused += tuple(
        RefusedModule(
            s.module,
            (s.running,),
            f"{_divergence(target, source, s, held[s.module])}: a sync never moves a tag "
            "('promoter copy --force' does, on purpose); push it under a new tag and promote that",
        )
        for s in diverged
    )
    steps = [s for s in steps if s not in diverged]
    warnings += [
        _kept_divergence(runtime, target, source, s, held=held[s.module], deadline=deadline)
        for s in steps
        if s.module in held
    ]
    # Paths relative to promoter.yaml's folder, however the configuration was named (--config x).
    folder = config.path.parent.absolute()
    steps = _moving_back(
        steps,
        current=current,
        environments=(source, target),
        every_module=every_module,
        named=version is not None,
        notes=notes,
        warnings=warnings,
    )
    warnings += [
        f"not checked in {source.name}'s registry: {s.running} (verification skipped)"
        for s in steps
        if s.module not in asked and s.module not in in_place
    ] + _stale_in_patches(target, steps, folder, committed=write_back is not None)

    edit, changes = _plan_edit(target, steps, kept=kept, current=current, held=held, notes=notes)
    edits: list[ImageEdit] = []
    rendered, made = target_images, None
    if edit is not None:
        edits, rendered, made = _apply(
            target,
            steps,
            edit,
            target_images,
            changes,
            origin=origin,
            home=folder,
            dry_run=dry_run,
            write_back=write_back,
            deadline=deadline,
        )
        warnings += [
            f"{_shown(comment.path, folder)}:{comment.line}: {comment.text}: the comment was "
            "written beside the old value; check that it still holds"
            for comment in kept_comments(edit)
        ] + list(made.notes if made is not None else ())
    if write_back is not None and (made is None or not made.new):
        notes.append(f"nothing to commit: {target.name}'s overlay already runs every version")
    diff = "".join(unified_diff(e, relative_to=folder) for e in edits)
    return Promotion(
        target.name,
        tuple(s.module for s in steps),
        tuple(edits),
        diff,
        tuple(notes),
        source=origin.name,
        changes=tuple(changes),
        refused=refused,
        warnings=tuple(warnings),
        images=rendered,
        root=folder,
        dry_run=dry_run,
        commit=made,
    )


def _apply(
    target: Environment,
    steps: Sequence[_Step],
    edit: ImageEdit,
    target_images: tuple[str, ...],
    changes: Sequence[ModuleChange],
    *,
    origin: Environment,
    home: Path,
    dry_run: bool,
    write_back: WriteBack | None,
    deadline: Deadline | None,
) -> tuple[list[ImageEdit], tuple[str, ...], CommitMade | None]:
    """Write the edit and check it (:func:`_write`), or only try it (``dry_run``: :func:`_try`),
    and commit it when ``write_back`` asks (Git's checks made before anything is written; on a
    new branch, tried in a copy and committed without touching the checkout); the edits, the
    images the target renders with them, and the commit (None when none was made: a dry run, no
    write-back, no file changed).

    Raises:
        InputError: a dry run with a write-back; else as :func:`promote`.
    """
    if dry_run and write_back is not None:
        raise InputError("a dry run writes nothing, so it makes no commit: drop one")
    if write_back is None:
        if dry_run:
            return (*_try(target, steps, edit, target_images, deadline), None)
        return (*_write(target, steps, edit, target_images, deadline), None)
    git_deadline = deadline or Deadline.after(LONGEST_RUN_TIMEOUT)
    # Checked before anything is written, whether or not this promotion changes a file: an edit
    # an earlier promote left uncommitted is no change now, yet the commit would lack it.
    hook_file = hook_images_path(target.overlay)
    files = [edit.path] + ([hook_file] if hook_file is not None else [])
    from promoter.gitops.kustomization import local_sources  # noqa: PLC0415 - see promote

    commit_target = prepare_write_back(
        write_back,
        files,
        sources=local_sources(target.overlay),
        home=home,
        deadline=git_deadline,
    )
    on_branch = write_back.branch is not None
    # A branch commit touches no file of the checkout: the edit is checked in a copy.
    edits, rendered = (_try if on_branch else _write)(target, steps, edit, target_images, deadline)
    if not any(e.changed for e in edits):  # the promotion is in HEAD: push it when asked
        return edits, rendered, push_unchanged(commit_target, deadline=git_deadline)
    made = commit_promotion(
        commit_target,
        environment=target.name,
        source=origin.name,
        images=[_promoted_image(c) for c in changes if c.changed],
        edits=edits,
        written=not on_branch,
        deadline=git_deadline,
    )
    return edits, rendered, made


def _moving_back(
    steps: Sequence[_Step],
    *,
    current: dict[str, Reference],
    environments: tuple[Environment, Environment],
    every_module: bool,
    named: bool,
    notes: list[str],
    warnings: list[str],
) -> list[_Step]:
    """The steps, without those of ``--all`` that would move the target back to an older version
    than it runs (it is ahead of the source: a hotfix, a rollback upstream; ``status`` shows it
    as deliberate); each left alone gets a line in ``notes``, and a named module moved back a
    warning in ``warnings``; a version ``named`` with ``--version`` is moved back without a word
    (that is what a rollback is). Versions are ordered as :func:`compare_tags` orders tags.
    """
    if named:
        return list(steps)
    source, target = environments
    kept = []
    for step in steps:
        before = current.get(step.module)
        newer = step.writes and before is not None and compare_tags(before.tag, step.after.tag) == 1
        if not newer:
            kept.append(step)
            continue
        assert before is not None  # noqa: S101 - newer says so
        ran = f"{target.name} runs {step.module} {before.tag}, newer than {source.name}'s {step.after.tag}"
        if every_module:
            notes.append(
                f"{ran} (ahead): left as it is; promote {step.module} by name to move it back"
            )
            continue
        warnings.append(f"{ran}: this promotion moves it back (a hotfix there is undone)")
        kept.append(step)
    return kept


def _named_version(
    runtime: Runtime,
    environments: tuple[Environment, Environment],
    chosen: Sequence[str],
    version: str,
    *,
    available: dict[str, list[Reference]],
    deployed: set[str],
    every_module: bool,
    verify: bool,
    warnings: list[str],
    deadline: Deadline | None,
) -> tuple[dict[str, list[Reference]], dict[str, Digest], Environment]:
    """The versions to promote by module (``available`` with the one module's replaced by the
    image of ``version``), its digest when asked, by module, and the environment whose registry
    holds it: the source's, else the target's (a rollback to what the target ran before);
    ``environments`` are the source and the target, ``deployed`` the modules either deploys.

    A ``tag@digest`` version must be what that registry's tag holds: a digest with a tag that
    does not hold it would write a pin under a tag that a sync then creates or refuses. A source
    registry that cannot be asked does not stop a rollback to what the target's holds (a
    warning in ``warnings`` says so). Unverified (``verify`` off), the source's is taken unasked.

    Raises:
        InputError: not exactly one module, one neither environment deploys, ``version`` no tag,
            digest or ``tag@digest``, or a tag that does not hold the digest given with it.
        PromoterError: neither registry holds it (nothing was promoted).
        RegistryError, RegistryUnreachableError, DeadlineExceededError: a registry could not be
            asked and the other does not hold it.
    """
    if every_module or len(set(chosen)) != 1:
        raise InputError("--version names the version of one module: name exactly one module")
    source, target = environments
    module = chosen[0]
    if module not in deployed:
        raise InputError(
            f"{module}: neither {source.name} nor {target.name} deploys it, so it has no version "
            f"to set (known: {', '.join(sorted(deployed)) or 'none'})"
        )
    separator = "@" if version.startswith(("sha256:", "sha512:")) else ":"
    images: list[tuple[Environment, Reference]] = []
    for environment in (source, target):
        try:
            image = parse_reference(
                f"{environment.registry}/{module}{separator}{version}", default_tag=None
            )
        except InvalidReferenceError:
            raise InputError(
                f"--version {version!r} is not a tag, a digest (sha256:...) or tag@digest"
            ) from None
        images.append((environment, image))
    if not verify:
        return {**available, module: [images[0][1]]}, {}, source
    tags = [i.with_tag(i.tag) for _, i in images if i.tag is not None and i.digest is not None]
    answers = lookup_digests(runtime.transport, [*(i for _, i in images), *tags], deadline=deadline)
    problem: PromoterError | None = None
    for environment, image in images:
        answer = answers[image]
        if isinstance(answer, RepositoryAccessError) or answer is None:
            continue  # not there (a repository that does not exist there counts as such)
        if isinstance(answer, PromoterError):
            problem = problem or answer
            continue  # the other registry may hold it
        if image.tag is not None and image.digest is not None:
            _check_tag_holds(
                runtime, environment, image, answers[image.with_tag(image.tag)], deadline
            )
        if problem is not None:
            warnings.append(
                f"could not ask {source.name}'s registry ({runtime.scrubber(str(problem))}); "
                f"{target.name}'s registry holds {module} {version}: rolled back to that"
            )
        return {**available, module: [image]}, {module: answer}, environment
    if problem is not None:
        raise problem
    raise PromoterError(
        f"neither {source.name}'s nor {target.name}'s registry has {module} {version}: nothing "
        "was promoted",
        hint=f"check the version (promoter history {target.name} {module} lists what "
        f"{target.name} ran), or push it to {source.name}'s registry first",
    )


def _check_tag_holds(
    runtime: Runtime,
    environment: Environment,
    image: Reference,
    held: Digest | PromoterError | None,
    deadline: Deadline | None,
) -> None:
    """Refuse a ``tag@digest`` whose tag, in ``environment``'s registry, does not hold the digest
    (``held``: what the tag resolves to there).

    Raises:
        InputError: naming both.
        PromoterError: the registry could not be asked.
    """
    if isinstance(held, PromoterError):
        raise held
    assert image.tag is not None  # noqa: S101 - only called for tag@digest
    assert image.digest is not None  # noqa: S101
    tag = image.with_tag(image.tag)
    if held is not None and same_content(
        runtime.transport, tag, held, image.digest, deadline=deadline
    ):
        return
    holds = "is not there" if held is None else f"holds {held}"
    raise InputError(
        f"--version {image.tag}@{image.digest}: {environment.name}'s registry has that digest, "
        f"but its tag {image.tag} {holds}; give the tag or the digest alone"
    )


def _promoted_image(change: ModuleChange) -> PromotedImage:
    """A module's line in the promotion commit's message."""
    before = change.before
    return PromotedImage(
        change.module,
        change.after.tag,
        change.digest or change.after.digest,
        _version(before) if before is not None else None,
    )


def _try(
    target: Environment,
    steps: Sequence[_Step],
    edit: ImageEdit,
    target_images: tuple[str, ...],
    deadline: Deadline | None,
) -> tuple[list[ImageEdit], tuple[str, ...]]:
    """:func:`_write` without writing: the edit is rendered in a temporary copy of what the
    overlay renders from and checked there; the edits a promotion would write (the hook's list
    included) and the images the target would render.

    Raises:
        InputError: as :func:`_check_promotion`.
        ConfigError: the overlay cannot be copied or rendered.
    """
    from promoter.gitops.kustomization import copy_sources, normal_path  # noqa: PLC0415

    rendered = target_images
    if edit.changed:
        with tempfile.TemporaryDirectory(prefix="promoter-dry-run-") as folder:
            scratch = Path(folder)
            root = copy_sources(target.overlay, scratch)
            (scratch / normal_path(edit.path).relative_to(root)).write_text(edit.after, "utf-8")
            copy = replace(target, overlay=scratch / normal_path(target.overlay).relative_to(root))
            try:
                rendered = tuple(environment_images(copy, deadline=deadline))
            except ConfigError as exc:  # named as the user knows the files, not the copy
                real = str(root).rstrip("/")
                raise ConfigError(
                    exc.message.replace(str(scratch), real),
                    hint=exc.hint.replace(str(scratch), real),
                ) from None
    _check_promotion(target, steps, edit, rendered)
    listed = _hook_file_edit(target, edit, rendered)
    return [edit] + ([listed] if listed is not None and listed.changed else []), rendered


def _plan_edit(
    target: Environment,
    steps: Sequence[_Step],
    *,
    kept: set[str],
    current: dict[str, Reference],
    held: dict[str, Digest],
    notes: list[str],
) -> tuple[ImageEdit | None, list[ModuleChange]]:
    """One edit of the target's kustomization for every step (None without steps, unchanged when
    every module is kept; nothing is written here) and what it does for each module; a module whose entry is already as promoted,
    or that keeps what the target runs (``kept``), gets an "already runs" line in ``notes``.

    Raises:
        ConfigError: the target's kustomization cannot be read or edited.
        InvalidReferenceError: an entry would not be a valid image reference.
    """
    from promoter.gitops.overlay import set_image, unchanged_edit  # noqa: PLC0415 - see promote

    edit: ImageEdit | None = None
    changes: list[ModuleChange] = []
    for step in steps:
        changed = False
        if step.module not in kept:  # a kept module's target keeps its pin or its tag
            updated = set_image(
                target.overlay,
                match_repository=step.module,
                name=step.name,
                new_name=step.new_name,
                new_tag=step.new_tag,
                digest=step.digest,
                rename_to=step.rename,
                previous=edit,
            )
            changed = updated.after != (edit.after if edit is not None else updated.before)
            edit = updated
        if not changed:
            notes.append(f"{target.name} already runs {step.module} {_version(step.after)}")
        changes.append(
            ModuleChange(
                step.module,
                step.running,
                step.found,
                current.get(step.module),
                step.after,
                changed,
                held.get(step.module),
            )
        )
    if edit is None and steps:  # every module kept: the file is still reported, the list checked
        edit = unchanged_edit(target.overlay)
    return edit, changes


def _step(
    target: Environment,
    module: str,
    running: Reference,
    *,
    found: Digest | None,
    pinned: bool,
    name: tuple[str, str | None],
    rename: str | None,
    before: Reference | None,
) -> _Step:
    """What to write for one module: the source's tag, and the digest when the module is pinned
    (``found``) or the source runs it by digest; a pin written as Kustomize's ``newTag:
    tag@digest`` keeps that form. ``name`` is the ``name`` and ``newName`` of an entry to append,
    ``rename`` the ``newName`` of a matching entry that names another environment's registry,
    ``before`` what the target runs now from its registry.

    Raises:
        ConfigError: the target's kustomization cannot be read.
    """
    from promoter.gitops.overlay import image_entries  # noqa: PLC0415 - see promote

    digest = found if pinned else running.digest
    at_form = (
        pinned
        and running.tag is not None
        and digest is not None
        and any(
            entry.new_tag is not None and "@" in entry.new_tag
            for entry in image_entries(target.overlay, module)
        )
    )
    versioned = (f":{running.tag}" if running.tag else "") + (f"@{digest}" if digest else "")
    after = parse_reference(f"{target.registry}/{module}{versioned}", default_tag=None)
    return _Step(
        module=module,
        running=running,
        found=found,
        after=after,
        name=name[0],
        new_name=name[1],
        new_tag=f"{running.tag}@{digest}" if at_form else running.tag,
        digest=str(digest) if digest is not None and not at_form else None,
        rename=rename,
        writes=before is None or (before.tag, before.digest) != (after.tag, after.digest),
    )


def _look_up_quietly(
    runtime: Runtime,
    source: Environment,
    versions: dict[str, Reference],
    warnings: list[str],
    deadline: Deadline | None,
) -> dict[str, Digest]:
    """What the source registry holds for versions the target already runs, by module, asked only
    to tell whether the target's tag diverged: a version it lacks is left out, and a registry
    that cannot be asked is a warning (in ``warnings``), so that re-running a promotion stays safe.
    """
    answers = lookup_digests(runtime.transport, versions.values(), deadline=deadline)
    found: dict[str, Digest] = {}
    unasked: list[str] = []
    problem = ""
    for module, version in versions.items():
        answer = answers[version]
        if isinstance(answer, RepositoryAccessError):
            continue  # as a plan reads it: a repository that may not exist
        if isinstance(answer, PromoterError):
            unasked.append(str(version))
            problem = problem or runtime.scrubber(str(answer))
        elif answer is not None:
            found[module] = answer
    if unasked:
        warnings.append(
            f"could not ask {source.name}'s registry about {', '.join(unasked)} "
            f"({problem}): not checked whether the target's tags still hold that content"
        )
    return found


def _target_tags(
    runtime: Runtime,
    target: Environment,
    steps: Sequence[_Step],
    warnings: list[str],
    deadline: Deadline | None,
) -> dict[str, Digest]:
    """What the target's registry holds under each promoted tag, by module, where that is other
    content than the source's (digests of two algorithms compared by content, as a plan does).

    Steps without a tag, or whose source content is not known (not asked), are not checked. A
    registry that cannot be asked is not a reason to fail a promotion (the source check stands,
    and a plan of the target tells the rest): a warning in ``warnings`` names what was not checked.
    """
    held: dict[str, Digest] = {}
    checked = [
        (step, step.after.with_tag(step.after.tag), content)
        for step in steps
        if step.after.tag is not None and (content := step.after.digest or step.found) is not None
    ]
    answers = lookup_digests(runtime.transport, (tag for _, tag, _ in checked), deadline=deadline)
    unchecked: list[str] = []
    problem = ""
    for step, tag, content in checked:
        answer = answers[tag]
        try:
            if isinstance(answer, RepositoryAccessError):
                continue  # as a plan reads it: a repository that may not exist yet
            if isinstance(answer, PromoterError):
                raise answer
            if answer is not None and not same_content(
                runtime.transport, tag, answer, content, deadline=deadline
            ):
                held[step.module] = answer
        except PromoterError as exc:
            problem = problem or runtime.scrubber(str(exc))
            unchecked.append(str(tag))
    if unchecked:
        warnings.append(
            f"could not ask {target.name}'s registry about {', '.join(unchecked)} ({problem}): "
            "not checked whether it holds those tags with other content; "
            f"promoter plan {target.name} tells once it answers"
        )
    return held


def _divergence(target: Environment, source: Environment, step: _Step, held: Digest) -> str:
    """``MODULE TAG: TARGET's registry holds REF as DIGEST, not SOURCE's DIGEST``."""
    content = step.after.digest or step.found
    return (
        f"{step.module} {step.after.tag}: {target.name}'s registry holds "
        f"{step.after.with_tag(step.after.tag or '')} as {held}, not {source.name}'s {content} "
        f"({step.running})"
    )


def _kept_divergence(
    runtime: Runtime,
    target: Environment,
    source: Environment,
    step: _Step,
    *,
    held: Digest,
    deadline: Deadline | None,
) -> str:
    """The warning for a module the target already runs at the promoted tag while its registry
    holds that tag with other content than the source's: a re-pushed source tag (the target keeps
    what it was given, pinned or not: diverged), or a pin the tag does not hold (a sync refuses it
    as a conflict). Whether the pin is what the tag holds is compared by content; a registry that
    cannot tell is taken at the pin's word (``promoter plan`` tells the rest)."""
    tag = step.after.with_tag(step.after.tag or "")
    pin = step.after.digest
    if pin is not None:
        try:
            conflict = not same_content(runtime.transport, tag, held, pin, deadline=deadline)
        except PromoterError:
            conflict = False
        if conflict:
            return (
                f"{target.name} pins {step.module} {_version(step.after)}, but its registry's "
                f"{tag} holds {held}: a sync refuses to move the tag (a conflict); push the image "
                "under a new tag and promote that"
            )
    pinned = f" (pinned to {pin})" if pin is not None else ""
    return (
        f"{target.name} already runs {step.module} {step.after.tag}{pinned}; {source.name}'s "
        f"{step.running} is now {step.found} (pushed again after it was promoted), while "
        f"{target.name}'s registry holds {tag} as {held}: diverged; {target.name} keeps what it "
        "was given: to move it, push the image under a new tag and promote that"
    )


def _moved_modules(
    config: PromoterConfig,
    target: Environment,
    target_images: Sequence[str],
    candidates: Sequence[str],
    warnings: list[str],
) -> dict[str, Reference]:
    """The modules the target takes from another registry, by the image to move into its own:
    another environment's (what the target renders), or, among ``candidates`` (modules it does
    not run from its registry), any other registry an ``images:`` entry names the module in (a
    typo'd ``newName``: the same account in another region), moved the same way with a warning
    in ``warnings`` naming the registry it had.

    Raises:
        ConfigError: the target's kustomization cannot be read.
        InvalidReferenceError: an image of the target does not parse.
    """
    others = config.other_registries(target.name)
    moved = {
        module: reference
        for module, (reference, _) in foreign_modules(target_images, others).items()
    }
    misplaced = _misplaced_entries(target, candidates, skip=set(moved), others=others)
    warnings += [
        f"{target.name}'s images: entry for {module} names {reference.name}, in "
        f"{reference.registry}, not {target.name}'s registry {target.registry} (a typo?): "
        f"moved into {target.registry}"
        for module, reference in misplaced.items()
    ]
    return moved | misplaced


def _keep_same_tags(
    steps: Sequence[_Step], held: dict[str, Digest], current: dict[str, Reference]
) -> tuple[list[_Step], set[str]]:
    """The steps with those that keep what the target runs, and their modules: where the target
    runs the promoted tag already and only the digest would change, to content its registry
    cannot hold under that tag (``held``: the source's tag was pushed again), the target keeps
    what it was given, pinned or not (diverged) and nothing is written for it. Only a tag new to
    the target is refused."""
    kept = {
        s.module
        for s in steps
        if s.module in held
        and s.writes
        and (before := current.get(s.module)) is not None
        and before.tag is not None
        and before.tag == s.after.tag
    }
    return [
        replace(s, after=current[s.module], writes=False) if s.module in kept else s for s in steps
    ], kept


def _misplaced_entries(
    target: Environment, candidates: Iterable[str], *, skip: set[str], others: dict[str, str]
) -> dict[str, Reference]:
    """The modules among ``candidates`` (``skip`` left out) that an ``images:`` entry of the
    target's kustomization names in a registry that is neither the target's nor another
    environment's (``others``), each with that entry's image (``newName``, else ``name``): a
    ``newName`` typo (the same account in another region) that made the module external.

    Raises:
        ConfigError: the target's kustomization cannot be read.
    """
    from promoter.gitops.overlay import image_entries  # noqa: PLC0415 - see promote

    found: dict[str, Reference] = {}
    for module in dict.fromkeys(candidates):
        if module in skip:
            continue
        for entry in image_entries(target.overlay, module):
            written = entry.new_name or entry.name
            try:
                reference = parse_reference(written or "", default_tag=None)
            except InvalidReferenceError:
                continue
            if reference.registry != target.registry and reference.registry not in others:
                found[module] = reference
                break
    return found


def promotion_plan(
    runtime: Runtime,
    config: PromoterConfig,
    promotion: Promotion,
    *,
    deadline: Deadline | None = None,
) -> EnvironmentPlan:
    """The plan of a sync of just the promoted modules, made from the images the promotion
    rendered (``promotion.images``): the edited overlay is not built a second time.

    The environment's own policy applies (``divergedTags``, ``allowImagesFrom``), as for
    ``promoter sync``: ``promote --sync`` and ``promote`` then ``sync`` agree. A tag the target's
    registry holds with other content was refused by :func:`promote` before anything was written,
    so a ``diverged`` image here is one the target already ran (warned about there).

    Raises:
        ConfigError: the target is no longer an environment of ``config``.
        InvalidReferenceError: an image of the promotion does not parse.
    """
    target = config.environment(promotion.target)
    source = config.source_of(target.name)
    promoted = set(promotion.modules)
    wanted = (
        w
        for w in iter_wanted(promotion.images, target.registry, source.registry if source else None)
        if w.destination is not None and w.destination.repository in promoted
    )
    policy = environment_policy(target)
    return EnvironmentPlan(
        target.name,
        look_up(runtime, wanted, deadline=deadline, policy=policy),
        source=source.name if source else None,
        attachments=policy.attachments,
    )


def _look_up_versions(
    runtime: Runtime,
    source: Environment,
    versions: dict[str, Reference],
    *,
    skippable: set[str],
    deadline: Deadline | None,
) -> dict[str, Digest]:
    """What the source registry holds for each version, by module; all are asked before anything
    is written. ``skippable`` are the modules asked only to verify (not for a digest to pin).

    Raises:
        PromoterError: the registry lacks some of them, every one named; its remedy is
            :attr:`Remedy.SKIP_VERIFY` when each of them was asked only to verify.
        RegistryError, RegistryUnreachableError, DeadlineExceededError: it could not be asked.
    """
    answers = lookup_digests(runtime.transport, versions.values(), deadline=deadline)
    found: dict[str, Digest] = {}
    missing: list[str] = []
    for module, running in versions.items():
        answer = answers[running]
        if isinstance(answer, PromoterError):
            raise answer
        if answer is None:
            missing.append(module)
        else:
            found[module] = answer
    if missing:
        them = "it" if len(missing) == 1 else "them"
        skip = all(m in skippable for m in missing)
        pins = "" if skip else " (a pin needs the digest)"
        raise PromoterError(
            f"{source.name}'s registry has no {', '.join(str(versions[m]) for m in missing)}"
            f"{pins}: nothing was promoted",
            hint=f"push {them} to {source.name}'s registry first"
            + (f", or skip this check to write {them} anyway" if skip else ""),
            remedy=Remedy.SKIP_VERIFY if skip else None,
        )
    return found


def _write(
    target: Environment,
    steps: Sequence[_Step],
    edit: ImageEdit,
    target_images: tuple[str, ...],
    deadline: Deadline | None,
) -> tuple[list[ImageEdit], tuple[str, ...]]:
    """Write the kustomization edit (one write for all modules: the file is never left
    half-promoted), check what the overlay renders now, and rewrite the hook's image list; the
    edits and the images the target renders now. Any failure puts the kustomization back: a
    render that fails, runs past the deadline or is stopped by an interrupt leaves it unchecked.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see promote

    rendered = target_images
    if not edit.changed:
        # Nothing to write is "already runs" only when the target renders it: an entry that
        # matches the module yet applies to nothing would otherwise pass for done.
        _check_promotion(target, steps, edit, rendered)
    reverse = replace(edit, before=edit.after, after=edit.before)
    # A second Ctrl-C ends the process at once, running no except clause: the edit is put back
    # then too (write_edit only restores the file while it holds what was written).
    with undo_on_sudden_exit(lambda: write_edit(reverse) if edit.changed else None):
        if edit.changed:
            write_edit(edit)
            try:
                rendered = tuple(environment_images(target, deadline=deadline))
                _check_promotion(target, steps, edit, rendered)
            except BaseException:
                write_edit(reverse)
                raise
        edits = [edit]
        try:
            listed = _rewrite_hook_file(target, edit, rendered)
        except BaseException:
            if edit.changed:
                write_edit(reverse)
            raise
    if listed is not None and listed.changed:
        edits.append(listed)
    return edits, rendered


def _choose(
    source: Environment,
    target: Environment,
    *,
    available: dict[str, list[Reference]],
    source_images: Sequence[str],
    target_images: Sequence[str],
    current: dict[str, Reference],
    foreign: dict[str, Reference],
    chosen: Sequence[str],
    every_module: bool,
    notes: list[str],
) -> tuple[list[str], dict[str, tuple[str, str | None]], tuple[RefusedModule, ...]]:
    """The modules to promote, the ``name`` and ``newName`` of a new entry for each that the
    target does not run from its registry yet, and the modules refused; what is skipped goes
    into ``notes``. ``foreign`` are the modules the target takes from another registry (by
    repository path: the image to move into the target's); ``source_images`` what the source
    renders (an unknown name that is an ``images:`` entry applied nowhere is told so).

    Raises:
        InputError: a module the source does not run (an ``images:`` entry name of the source is
            told which module it is), or a named module it runs in more than one version.
    """
    wanted = sorted(available) if every_module else list(dict.fromkeys(chosen))
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise InputError(_unknown_modules(source, unknown, available, source_images))
    names = {
        m: _new_entry_name(source, target, m, foreign.get(m)) for m in wanted if m not in current
    }
    if every_module:
        # A module the target does not deploy has nothing to set; say so instead of adding an
        # images: entry that would change nothing. One it deploys under the source's entry name
        # (its chart was just added) is promoted.
        deployed = {_image_name(text) for text in target_images}
        skipped = [m for m in names if _image_name(names[m][0]) not in deployed]
        notes += [f"{target.name} does not use {m}; skipped" for m in skipped]
        wanted = [m for m in wanted if m not in skipped]
    ambiguous = [m for m in wanted if len(available[m]) > 1]
    if ambiguous and not every_module:
        versions = "; ".join(
            f"{m}: {', '.join(_version(r) for r in available[m])}" for m in ambiguous
        )
        raise InputError(
            f"{source.name} runs more than one version of {versions}; promote by editing "
            f"{target.name}'s overlay by hand"
        )
    refused = tuple(RefusedModule(m, tuple(available[m])) for m in ambiguous)
    return [m for m in wanted if m not in ambiguous], names, refused


def _unknown_modules(
    source: Environment,
    unknown: Sequence[str],
    available: dict[str, list[Reference]],
    source_images: Sequence[str],
) -> str:
    """The line for names that are no module of the source: a name that is the ``name:`` of an
    ``images:`` entry of the source's kustomization (``ml``, what the charts write) is told the
    module it stands for, since that is what a user who read the overlay would type; a name (or
    repository path) of an entry that applies to no image the source renders (``source_images``)
    is told so: its image most likely sits in a custom resource field kustomize does not rewrite.

    Raises:
        ConfigError: the source's kustomization tree cannot be read.
    """
    entries = image_entry_names(source.overlay)
    unused = unused_image_entries(source, source_images)
    meant: list[str] = []
    rest: list[str] = []
    for name in unknown:
        renamed = entries.get(name)
        reference = _parsed(renamed) if renamed else None
        idle = [
            entry
            for entry, becomes in unused.items()
            if name in {entry, becomes}
            or ((parsed := _parsed(becomes)) is not None and parsed.repository == name)
        ]
        if reference is not None and reference.repository in available:
            meant.append(
                f"{name!r} is the images: entry name of module {reference.repository}; "
                f"promote {reference.repository}"
            )
        elif idle:
            meant.append(
                f"{name}: {source.name}'s images: entry {idle[0]!r} (becoming {unused[idle[0]]}) "
                f"applies to no image {source.name} renders, so it is no module to promote: the "
                "image is most likely in a field kustomize does not rewrite (declare the field in "
                'a configurations: file, see "Where images are found" in README.md) or no '
                "resource names it"
            )
        else:
            rest.append(name)
    if rest:
        meant.append(
            f"{', '.join(rest)}: not a module of {source.name} "
            f"(known: {', '.join(sorted(available)) or 'none'})"
        )
    return "; ".join(meant)


def _new_entry_name(
    source: Environment, target: Environment, module: str, foreign: Reference | None = None
) -> tuple[str, str | None]:
    """``name`` and ``newName`` of an ``images:`` entry for a module the target does not run from
    its registry yet: for one it deploys from another environment's registry (``foreign``), that
    image renamed into the target's registry (no entry renames it yet: the resources write it);
    else the name the source's entry gives it (the resources write ``image: ml``), renamed into
    the target's registry; without such an entry, the image in the target's registry.

    Raises:
        ConfigError: the source's kustomization cannot be read.
    """
    from promoter.gitops.overlay import image_entries  # noqa: PLC0415 - see promote

    own = f"{target.registry}/{module}"
    if foreign is not None:
        return foreign.name, own
    for entry in image_entries(source.overlay, module):
        if entry.name:
            return entry.name, None if _image_name(entry.name) == _image_name(own) else own
    return own, None


def _parsed(text: str) -> Reference | None:
    """An image name as a reference (no default tag); None when it does not parse."""
    try:
        return parse_reference(text, default_tag=None)
    except InvalidReferenceError:
        return None


def _image_name(text: str) -> str:
    """An image's registry and repository, as Kustomize matches ``name`` (tag and digest left out);
    the text itself when it does not parse."""
    try:
        return parse_reference(text, default_tag=None).name
    except InvalidReferenceError:
        return text


def _stale_in_patches(
    target: Environment, steps: Sequence[_Step], folder: Path, *, committed: bool
) -> list[str]:
    """A warning for each place a patch of the target's overlay names another version of a
    promoted module, or its image in the other environment's registry it was moved from: the
    ``images:`` entry overrides it, so it is dead text to remove (in the same commit, or, when
    the promotion is ``committed`` by promote itself, in another).

    Raises:
        ConfigError: the kustomization or a patch file cannot be read.
    """
    from promoter.gitops.overlay import patched_images  # noqa: PLC0415 - see promote

    warnings = []
    for step in steps:
        names = [step.after.name] + ([step.name] if step.rename else [])
        mentions = (
            m for name in dict.fromkeys(names) for m in patched_images(target.overlay, name)
        )
        for mention in mentions:
            try:
                stale = parse_reference(mention.text, default_tag=None) != step.after
            except InvalidReferenceError:
                stale = True
            if stale:
                warnings.append(
                    f"{_shown(mention.path, folder)}:{mention.line} still names {mention.text}, "
                    f"which {target.name}'s images: entry overrides ({_version(step.after)}); "
                    + (
                        "remove it in a commit of its own"
                        if committed
                        else "remove it in the same commit"
                    )
                )
    return warnings


def _shown(path: Path, folder: Path | None) -> str:
    """A path relative to promoter.yaml's folder when inside it (see :meth:`Promotion.file_name`)."""
    absolute = path.absolute()
    if folder is None or not absolute.is_relative_to(folder):
        return str(path)
    return absolute.relative_to(folder).as_posix()


def _version(reference: Reference) -> str:
    if reference.tag is not None and reference.digest is not None:
        return f"{reference.tag}@{reference.digest}"
    return str(reference.digest) if reference.digest is not None else reference.tag or ""


def _rewrite_hook_file(
    target: Environment, edit: ImageEdit, rendered: Iterable[str]
) -> ImageEdit | None:
    """Make the Kustomize component's list name what the overlay runs; the edit written, if any.

    Otherwise the hook Job would not copy the promoted image. Rewritten even when the overlay
    already had the version, so that a promote also repairs a stale list.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see promote

    listed = _hook_file_edit(target, edit, rendered)
    if listed is not None:
        write_edit(listed)
    return listed


def _hook_file_edit(
    target: Environment, edit: ImageEdit, rendered: Iterable[str]
) -> ImageEdit | None:
    """The edit of the Kustomize component's list that makes it name what the overlay renders
    (``rendered``), not written; None when the overlay has no such list."""
    hook_file = hook_images_path(target.overlay)
    if hook_file is None:
        return None
    before, after = rewritten(hook_file, own_images(rendered, target.registry))
    return replace(edit, before=before, after=after, path=hook_file, changed=after != before)


def _check_promotion(
    target: Environment, steps: Sequence[_Step], edit: ImageEdit, rendered: Iterable[str]
) -> None:
    """Make sure each module of the rendered, edited overlay runs what was promoted.

    An entry can match by repository yet not apply (a patch sets the image after the rename, or
    the target does not deploy the module): then the caller puts the file back and the user is
    told where to look, instead of a diff that changes nothing.

    Raises:
        InputError: naming each module and what it renders instead.
    """
    versions = module_versions(target, rendered)
    wrong = []
    for step in steps:
        runs = versions.get(step.module, [])
        tag, digest = step.after.tag, step.after.digest
        if not runs or any((r.tag != tag and tag is not None) or r.digest != digest for r in runs):
            shown = ", ".join(str(r) for r in runs) or "no image of it"
            wrong.append(f"{step.module} (renders {shown})")
    if wrong:
        raise InputError(
            f"promoting to {target.name} would not change what it runs: {'; '.join(wrong)}; "
            "the image is set elsewhere in the overlay (a patch?) or not deployed there; "
            f"{edit.path} is unchanged"
        )
