"""Pruning an environment's registry: keep what Git (and the cluster) still needs, plan to delete the rest.

What is kept (issue "Prune"; README "Prune"): every image that any environment whose registry is this one
deploys now (registries can be shared), the images those overlays deployed in their last N revisions in
Git (a rollback by ``git revert`` finds its image), tags matching ``--keep`` patterns, with ``--in-use``
every image a running Pod uses, and everything attached to or listed by what is kept. Only repositories
that an overlay deploying from the registry names are looked at; a repository no overlay names is never
touched.

Nothing is deleted when anything needed to decide could not be had: an overlay that does not render,
Git history that cannot be read, a repository that cannot be listed completely. A failed render must never
shrink what is kept: those raise, and the plan is not made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from promoter.app.runtime import Runtime
from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import LONGEST_RUN_TIMEOUT, Deadline
from promoter.errors import (
    ConfigError,
    InputError,
    InvalidReferenceError,
    PromoterError,
    SafetyError,
)
from promoter.gitops.discover import UnmanagedReference
from promoter.oci.digest import Digest
from promoter.planning.inventory import repository_inventory, tag_digests, with_manifests
from promoter.planning.plan import in_registry
from promoter.planning.prune import (
    DEFAULT_KEEP_HISTORY,
    DEFAULT_MAX_DELETE,
    KeptReference,
    PruneAction,
    PruneEntry,
    most_recent,
    over_limit,
    plan_prune,
    tags_matching,
)
from promoter.reference import Reference, parse_reference, registry_identity
from promoter.remote.repository import Repository

if TYPE_CHECKING:
    from promoter.ecr.hosts import EcrRegistry


@dataclass(frozen=True, slots=True)
class PruneSettings:
    """What a prune keeps beyond what the overlays deploy now.

    Attributes:
        keep_history: revisions of each overlay, newest first, whose images are kept (0: none).
        keep_recent: the most recently pushed tags kept per repository, where the registry says
            when (ECR's ``imagePushedAt``).
        keep: tag patterns (shell style, ``release-*``) kept in every repository.
        in_use: the images running Pods use (from ``kubectl get pods -A -o json``).
        max_delete: the most of a repository's image tags (0 < fraction <= 1) a run may delete.
    """

    keep_history: int = DEFAULT_KEEP_HISTORY
    keep_recent: int = 0
    keep: tuple[str, ...] = ()
    in_use: tuple[str, ...] = ()
    max_delete: float = DEFAULT_MAX_DELETE


@dataclass(frozen=True, slots=True)
class RepositoryPrune:
    """The plan of one repository.

    Attributes:
        repository: its path in the registry.
        entries: every decision (:func:`~promoter.planning.prune.plan_prune`).
        over_limit: it would delete more than ``max_delete`` of its image tags: the run stops.
    """

    repository: str
    entries: tuple[PruneEntry, ...]
    over_limit: bool = False

    @property
    def deletions(self) -> tuple[PruneEntry, ...]:
        """The entries to delete."""
        return tuple(e for e in self.entries if e.action is PruneAction.DELETE)


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """What a prune of an environment's registry would do.

    Attributes:
        environment: the environment named.
        registry: its registry.
        sharing: the environments whose registry it is (all of them are kept).
        repositories: one plan per managed repository, by path.
        notes: what a person should know (a keep rule the registry cannot honour).
    """

    environment: str
    registry: str
    sharing: tuple[str, ...]
    repositories: tuple[RepositoryPrune, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()

    @property
    def refused(self) -> tuple[RepositoryPrune, ...]:
        """Repositories over the ``max_delete`` limit."""
        return tuple(r for r in self.repositories if r.over_limit)


def plan_prune_environment(
    runtime: Runtime,
    config: PromoterConfig,
    name: str,
    settings: PruneSettings,
    *,
    deadline: Deadline | None = None,
) -> PrunePlan:
    """Plan pruning environment ``name``'s registry.

    Raises:
        ConfigError: unknown environment, or an overlay that does not render (nothing is planned).
        PromoterError: Git history cannot be read, or a repository cannot be listed completely.
        InvalidReferenceError: an image in the manifests does not parse.
    """
    from promoter.app.environment import environment_scan  # noqa: PLC0415 - YAML: not for the hook
    from promoter.gitops.history import images_in_history  # noqa: PLC0415 - git: only for prune

    environment = config.environment(name)
    registry = environment.registry
    names = _names(config, registry)
    sharing = [e for e in config.environments.values() if registry_identity(e.registry) in names]
    kept: dict[str, list[KeptReference]] = {}
    notes: list[str] = []
    # Every environment counts, not only those whose registry this is: one that deploys images
    # of this registry (allowImagesFrom, a shared registry spelled otherwise) needs them too.
    everyone = list(config.environments.values())
    using: list[Environment] = []  # the environments that deploy this registry's images now
    for each in everyone:
        source = config.source_of(each.name)
        promotes_from_here = source is not None and registry_identity(source.registry) in names
        # Mentions outside image fields of this registry: by its own name for an environment
        # whose registry it is, by the name pruned for any other (allowImagesFrom).
        mentions_of = None if each in sharing else registry
        scan = environment_scan(each, deadline=deadline, mentions_of=mentions_of)
        before = sum(len(v) for v in kept.values())
        for found in scan.images:
            _keep(kept, found.image, names, f"deployed by {each.name}")
            if promotes_from_here:
                # What an environment promoting from here deploys is what its next sync copies
                # from here (a promotion edited in Git, not synced yet): the source stays too.
                _keep_source(kept, found.image, each.registry, registry, each.name)
        notes.extend(_keep_mentions(kept, scan.unmanaged, names, each))
        if each in sharing or sum(len(v) for v in kept.values()) > before:
            using.append(each)
    managed = set(kept)  # only repositories an overlay names now are looked at
    for each in using:  # whose history can name this registry's images
        # Argo CD deploys the upstream: a checkout behind it is refused, history or not (without
        # history, a folder that is no Git checkout has nothing to be behind).
        _check_current(
            each.overlay,
            deadline or Deadline.after(LONGEST_RUN_TIMEOUT),
            needs_git=bool(settings.keep_history),
        )
        if settings.keep_history:
            history = images_in_history(
                each.overlay,
                settings.keep_history,
                deadline=deadline or Deadline.after(LONGEST_RUN_TIMEOUT),
                mentions_of=each.registry if each in sharing else registry,
                build_options=each.kustomize_build_options,
            )
            for image, revisions in history.items():
                at = revisions[0].commit[:12]
                _keep(kept, image, names, f"deployed by {each.name} at {at}")
    for image in settings.in_use:
        _keep(kept, image, names, "running in a Pod")
    patterns = (*settings.keep, *(p for e in sharing for p in e.prune_keep))
    if settings.keep_recent and not runtime.is_ecr(registry):
        notes.append(
            f"--keep-recent: {registry} does not say when images were pushed (only ECR does); "
            "nothing is kept for being recent"
        )
    repositories = []
    for path in sorted(managed):
        inventory = repository_inventory(
            runtime.transport, Reference(registry, path), deadline=deadline
        )
        _check_listed(runtime, registry, path, inventory.tags, kept[path], deadline=deadline)
        pinned = [k.digest for k in kept[path] if k.digest is not None]
        inventory = with_manifests(
            runtime.transport, Reference(registry, path), inventory, pinned, deadline=deadline
        )
        references = [
            *kept[path],
            *tags_matching(inventory.tags, patterns, "matches the keep pattern {!r}"),
            *_recent(runtime, registry, path, settings.keep_recent),
        ]
        entries = plan_prune(inventory, references)
        repositories.append(
            RepositoryPrune(
                path, tuple(entries), over_limit(entries, inventory, settings.max_delete)
            )
        )
    return PrunePlan(
        name, registry, tuple(e.name for e in sharing), tuple(repositories), tuple(notes)
    )


def _recent(runtime: Runtime, registry: str, repository: str, count: int) -> list[KeptReference]:
    """The ``count`` most recently pushed tags of an ECR repository (``imagePushedAt``: a tag moved
    onto an image pushed earlier keeps that image's time); none elsewhere."""
    if not count or not runtime.is_ecr(registry):
        return []
    from promoter.ecr.hosts import parse_ecr_host  # noqa: PLC0415 - boto3: only on ECR
    from promoter.ecr.images import pushed_at  # noqa: PLC0415

    ecr = parse_ecr_host(registry)
    if ecr is None:
        return []
    times = pushed_at(runtime.ecr_api, ecr, repository)
    return [
        KeptReference(tag, None, f"one of the {count} most recent pushes")
        for tag in most_recent(times, count)
    ]


def _check_current(overlay: Path, deadline: Deadline, *, needs_git: bool) -> None:
    """Refuse a checkout behind its branch's upstream: the newest revisions, which Argo CD
    deploys, would be missing from what is kept. Without ``needs_git`` (no history asked for), a
    folder that is no Git checkout has nothing to be behind.

    Raises:
        ConfigError: naming the upstream and how far behind; with ``needs_git``, no Git checkout.
    """
    from promoter.gitops.history import commits_behind  # noqa: PLC0415 - git: only for prune

    try:
        behind = commits_behind(overlay, deadline=deadline)
    except ConfigError:
        if needs_git:
            raise
        return
    if behind is not None and behind[1] > 0:
        upstream, count = behind
        raise ConfigError(
            f"the checkout of {overlay} is {count} commit(s) behind {upstream}, which is what "
            "gets deployed; prune decides from the checkout",
            hint="pull (or check out the deployed revision) first",
        )


def _check_listed(
    runtime: Runtime,
    registry: str,
    path: str,
    listed: Iterable[str],
    kept: Iterable[KeptReference],
    *,
    deadline: Deadline | None,
) -> None:
    """Refuse a tag list that leaves out a tag the registry serves and something keeps: the
    listing is incomplete (a registry that lies or pages wrongly), and a prune built on it could
    delete the digest of a deployed image.

    Raises:
        PromoterError: naming the tag.
    """
    names = set(listed)
    repository = Repository.of(runtime.transport, Reference(registry, path), deadline=deadline)
    for reference in kept:
        if reference.tag is None or reference.tag in names:
            continue
        if repository.head_manifest(reference.tag) is not None:
            raise PromoterError(
                f"{repository}: the registry serves {reference.tag!r} ({reference.reason}) but "
                "its tag list leaves it out; nothing is deleted from an incomplete listing"
            )


def _names(config: PromoterConfig, registry: str) -> frozenset[str]:
    """Every name of ``registry``: itself, and the hosts promoter.yaml's ``registries:`` sends to
    the same endpoint (one registry under two names is one registry to prune), as identities."""
    settings = {registry_identity(h): s for h, s in config.registries.items()}
    own = settings.get(registry_identity(registry))
    names = {registry_identity(registry)}
    if own is not None and own.endpoint:
        target = _endpoint(own.endpoint)
        names |= {h for h, s in settings.items() if s.endpoint and _endpoint(s.endpoint) == target}
    return frozenset(names)


def _endpoint(url: str) -> str:
    """An endpoint URL as compared: scheme and host in lower case, ``localhost`` and the IPv6
    loopback as ``127.0.0.1``, no trailing ``/`` nor ``/v2`` (the API's own root), default ports
    dropped (``http://localhost:5000/v2/`` is ``http://127.0.0.1:5000``). Two DNS names of one
    host are not told apart without asking DNS, which promoter does not do here."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        host = "127.0.0.1"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    where = host if port in (None, default) else f"{host}:{port}"
    path = parts.path.rstrip("/").removesuffix("/v2").rstrip("/")
    return f"{parts.scheme.lower()}://{where}{path}"


def _names_of(registry: str) -> frozenset[str]:
    return frozenset({registry_identity(registry)})


def _keep_mentions(
    kept: dict[str, list[KeptReference]],
    mentions: Iterable[UnmanagedReference],
    names: frozenset[str],
    environment: Environment,
) -> list[str]:
    """Keep what strings outside image fields name in the registry (``plan`` warns about them: an
    operator's ``spec.image``, an argument): an image reference there is kept; a bare host (a Helm
    value split into registry, repository and tag) cannot be, and a note says so."""
    notes = []
    for mention in mentions:
        where = f"{mention.kind}/{mention.name} {mention.path}"
        if "/" in mention.value:
            try:
                _keep(kept, mention.value, names, f"named by {environment.name} at {where}")
                continue
            except InvalidReferenceError:
                pass
        notes.append(
            f"{environment.name}: {where} names {environment.registry} outside image fields, and "
            "which image it means cannot be told: keep it with --keep (or prune.keep in "
            "promoter.yaml)"
        )
    return notes


def _keep_source(
    kept: dict[str, list[KeptReference]],
    image: str,
    own_registry: str,
    registry: str,
    environment: str,
) -> None:
    """Keep, in ``registry``, the source of ``image`` that ``environment`` (whose registry is
    ``own_registry``) promotes from there: the same repository path, tag and digest."""
    reference = parse_reference(image)
    if in_registry(reference, own_registry):
        source = reference.in_repository(registry, reference.repository)
        _keep(kept, str(source), _names_of(registry), f"{environment} promotes it from here")


def _keep(
    kept: dict[str, list[KeptReference]], image: str, names: frozenset[str], reason: str
) -> None:
    """Add ``image`` to ``kept`` under its repository when it is in the registry ``names``
    (identities: :func:`~promoter.reference.registry_identity`) name."""
    reference = parse_reference(image)
    if registry_identity(reference.registry) not in names:
        return
    kept.setdefault(reference.repository, []).append(
        KeptReference(reference.tag, reference.digest, reason)
    )


def images_in_use(source: str) -> tuple[str, ...]:
    """The images of ``kubectl get pods -A -o json`` output (a file, ``-`` for standard input),
    for :attr:`PruneSettings.in_use`.

    Raises:
        ConfigError: the file cannot be read, is over
            :data:`~promoter.config.input_files.POD_LIST_CAP`, or is not JSON/YAML.
        InputError: it holds no Pod: a wrong file must not silently protect nothing.
    """
    from promoter.config.input_files import POD_LIST_CAP, read_input_text  # noqa: PLC0415
    from promoter.gitops.discover import iter_manifests, running_images  # noqa: PLC0415

    name = "Pod list from standard input" if source == "-" else f"Pod list {source}"
    text = read_input_text(source, name=name, cap=POD_LIST_CAP)
    pods = [d for d in iter_manifests(text, source=name) if d.get("kind") == "Pod"]
    if not pods:
        raise InputError(
            f"{name}: no Pod in it; give the JSON of 'kubectl get pods -A -o json' (a List of Pods)"
        )
    return tuple(running_images(pods))


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    """What carrying out a prune plan did.

    Attributes:
        deleted: the entries deleted (tags, and manifests by digest), in the order deleted.
        skipped: entries left in place, each with why (a registry that deletes a tag only with its
            manifest, which another tag keeps).
    """

    deleted: tuple[PruneEntry, ...] = ()
    skipped: tuple[tuple[PruneEntry, str], ...] = ()


def carry_out_prune(
    runtime: Runtime, plan: PrunePlan, *, deadline: Deadline | None = None
) -> PruneOutcome:
    """Delete what ``plan`` says, repository by repository: tags first (where the registry can
    delete a tag alone), then manifests by digest, the tagged ones (images, indexes, referrers
    indexes) before what they list, so that no tag ever points at deleted content and a failure
    mid-way leaves what a re-run finishes. On ECR through ``BatchDeleteImage`` (100 per call).

    Raises:
        SafetyError: the plan has repositories over ``max_delete`` (nothing is deleted at all).
        DeletionDisabledError: the registry does not delete (Distribution without
            ``storage.delete.enabled``).
        RegistryError, RegistryUnreachableError, DeadlineExceededError, CredentialError,
        AwsApiError: a deletion failed; what was deleted before it stays deleted.
    """
    if plan.refused:
        names = ", ".join(r.repository for r in plan.refused)
        raise SafetyError(
            f"not pruning {plan.registry}: {names} would lose more than the --max-delete part "
            "of its tags",
            hint="check the overlays (a renamed module?) or raise --max-delete",
        )
    deleted: list[PruneEntry] = []
    skipped: list[tuple[PruneEntry, str]] = []
    # Every repository is listed again before anything is deleted: a listing that fails then
    # stops the run while nothing is deleted yet.
    listed = {
        r.repository: _tags_now(runtime, Reference(plan.registry, r.repository), deadline)
        for r in plan.repositories
    }
    for repository in plan.repositories:
        reference = Reference(plan.registry, repository.repository)
        # Tags pushed since the plan (a sync promoting meanwhile) point where? A manifest a new
        # tag points at is not deleted: deleting by digest would take that tag with it.
        now = listed[repository.repository]
        planned = {(e.tag, e.digest) for e in repository.entries if e.tag}
        added: dict[Digest, set[str]] = {}
        for tag, digest in now.items():
            if (tag, digest) not in planned:
                added.setdefault(digest, set()).add(tag)
        if added:
            # A tag is new or moved since the plan: what it points at may list or have attached
            # what the plan would delete (a new index over old platforms), which is not known
            # here. The repository is left whole until a new plan.
            changed = ", ".join(sorted(t for tags in added.values() for t in tags))
            first, *rest = repository.deletions or (None,)
            if first is not None:
                more = f" (and {len(rest)} more entries)" if rest else ""
                why = f"kept, with the repository{more}: {changed} changed since the plan"
                skipped.append((first, f"{why}; prune again"))
            continue
        going = {e.digest for e in repository.deletions if e.tag is None}
        tags_alone = [
            e
            for e in repository.deletions
            if e.tag and e.digest not in going and now.get(e.tag) == e.digest
        ]
        tagged = {e.digest for e in repository.entries if e.tag}
        manifests = sorted(
            (e for e in repository.deletions if e.tag is None and e.digest in going),
            key=lambda e: (e.digest not in tagged, str(e.digest)),
        )
        if runtime.is_ecr(plan.registry):
            done, left = _delete_on_ecr(runtime, reference, tags_alone, manifests)
        else:
            done, left = _delete_by_api(runtime, reference, tags_alone, manifests, deadline)
        # Deleting a manifest by digest deletes the tags on it (Distribution, ECR): theirs too.
        gone = {e.digest for e in done if e.tag is None}
        done.extend(e for e in repository.deletions if e.tag and e.digest in gone)
        deleted.extend(done)
        skipped.extend(left)
    return PruneOutcome(tuple(deleted), tuple(skipped))


def _ecr_host(registry: str) -> EcrRegistry:
    """The ECR registry ``registry`` names (the runtime said it is one).

    Raises:
        ConfigError: it is no ECR host name.
    """
    from promoter.ecr.hosts import parse_ecr_host  # noqa: PLC0415 - boto3: only on ECR

    ecr = parse_ecr_host(registry)
    if ecr is None:
        raise ConfigError(f"{registry} is not an ECR registry host")
    return ecr


def _tags_now(
    runtime: Runtime, reference: Reference, deadline: Deadline | None
) -> dict[str, Digest]:
    """Every tag of the repository and its digest, asked again right before deleting (on ECR from
    ``DescribeImages``, which the deletions go through too)."""
    if not runtime.is_ecr(reference.registry):
        return tag_digests(Repository.of(runtime.transport, reference, deadline=deadline))
    from promoter.ecr.images import describe_images  # noqa: PLC0415 - boto3: only on ECR

    registry = _ecr_host(reference.registry)
    return {
        tag: image.digest
        for image in describe_images(runtime.ecr_api, registry, reference.repository)
        for tag in image.tags
    }


def _delete_by_api(
    runtime: Runtime,
    reference: Reference,
    tags_alone: list[PruneEntry],
    manifests: list[PruneEntry],
    deadline: Deadline | None,
) -> tuple[list[PruneEntry], list[tuple[PruneEntry, str]]]:
    """Deletions through the registry API (distribution-spec "Deleting Manifests", "Deleting
    tags")."""
    repository = Repository.of(runtime.transport, reference, push=True, deadline=deadline)
    done: list[PruneEntry] = []
    left: list[tuple[PruneEntry, str]] = []
    for entry in tags_alone:
        if repository.delete_tag(str(entry.tag)):
            done.append(entry)
        else:
            left.append(
                (entry, "kept: this registry deletes a tag only with its manifest, which is kept")
            )
    for entry in manifests:
        repository.delete_manifest(entry.digest)
        done.append(entry)
    return done, left


def _delete_on_ecr(
    runtime: Runtime,
    reference: Reference,
    tags_alone: list[PruneEntry],
    manifests: list[PruneEntry],
) -> tuple[list[PruneEntry], list[tuple[PruneEntry, str]]]:
    """Deletions through ECR's ``BatchDeleteImage``: tags alone, then manifests by digest."""
    from promoter.ecr.images import ImageId, batch_delete_images  # noqa: PLC0415 - boto3: on ECR

    registry = _ecr_host(reference.registry)
    done: list[PruneEntry] = []
    left: list[tuple[PruneEntry, str]] = []
    for entries, ids in (
        (tags_alone, [ImageId(tag=e.tag) for e in tags_alone]),
        (manifests, [ImageId(digest=e.digest) for e in manifests]),
    ):
        if not entries:
            continue
        result = batch_delete_images(runtime.ecr_api, registry, reference.repository, ids)
        failed = {
            (f.image.digest, f.image.tag): f
            for f in result.failures
            if f.image is not None and not f.gone
        }
        for entry, image in zip(entries, ids, strict=True):
            failure = failed.get((image.digest, image.tag))
            if failure is None:
                done.append(entry)
            else:
                left.append((entry, f"ECR refused: {failure.code}: {failure.reason}"))
    return done, left
