"""Registry facts a plan needs: what each wanted reference resolves to in each registry.

HEAD requests only, concurrently, each registry session shared across the run so that a plan of
hundreds of images costs two HEADs per image and one token per repository. Where the two registries
answer in different digest algorithms (a source that names its manifests ``sha512:``), the content
decides, not the spelling: one GET of the destination's manifest tells whether it is the source's
(:func:`~promoter.remote.repository.same_content`).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from promoter.deadline import Deadline
from promoter.errors import PromoterError, RepositoryAccessError
from promoter.oci.digest import Digest
from promoter.planning.plan import (
    DEFAULT_POLICY,
    PlanItem,
    PlanPolicy,
    PlanStatus,
    WantedImage,
    decide,
    failed,
)
from promoter.process import signals_to_main_thread
from promoter.reference import Reference
from promoter.remote.attachments import AttachmentFinder
from promoter.remote.repository import Repository, lookup_digest, same_content
from promoter.transport.pools import DEFAULT_REQUESTS
from promoter.transport.session import Transport


def plan_images(
    transport: Transport,
    wanted: Iterable[WantedImage],
    *,
    lookups: int = DEFAULT_REQUESTS,
    deadline: Deadline | None = None,
    policy: PlanPolicy = DEFAULT_POLICY,
) -> list[PlanItem]:
    """Look every managed image up in its destination and source registry and decide its status.

    Lookups start as images arrive, so a plan overlaps them with parsing the manifests. A reference
    pinned by digest alone that the destination holds is present whatever the source has (the
    digest names the content), so its source is only asked when the destination lacks it; a
    reference with tag and digest also has its tag looked up in the destination. A registry that
    fails to answer for one image makes that image an ``error``; the others are planned as usual.
    A destination answer in another digest algorithm than the one it is compared with is spelled
    in that one when the bytes are the same, so :func:`~promoter.planning.plan.decide` compares
    content.

    Args:
        transport: reaches the registries.
        wanted: the images, as :func:`~promoter.planning.plan.iter_wanted` classifies them.
        lookups: requests in flight (the run's ``requests`` setting).
        deadline: bounds every lookup; an image whose lookup runs out of time is an ``error``.
        policy: which statuses block a sync (see :func:`~promoter.planning.plan.decide`).
    """
    with ThreadPoolExecutor(
        max_workers=max(1, lookups),
        thread_name_prefix="lookup",
        initializer=signals_to_main_thread,
    ) as pool:
        futures: dict[Reference, Future[Digest | None]] = {}

        refused: dict[Reference, str] = {}

        def look(reference: Reference) -> Digest | None:
            try:
                return lookup_digest(transport, reference, deadline=deadline)
            except RepositoryAccessError as exc:
                # insufficient_scope with a granted token: what Docker Hub and others answer for
                # a repository that does not exist. Absent, with the registry's words kept.
                refused[reference] = exc.hint or str(exc)
                return None

        def ask(reference: Reference | None) -> None:
            if reference is not None and reference not in futures:
                futures[reference] = pool.submit(look, reference)

        def answer(reference: Reference | None) -> Digest | None:
            return futures[reference].result() if reference is not None else None

        items = []
        for item in wanted:
            items.append(item)
            destination = item.destination
            ask(destination)
            if destination is None:
                continue
            if destination.digest is None or destination.tag is not None:
                ask(item.source)
            if destination.digest is not None and destination.tag is not None:
                ask(destination.with_tag(destination.tag))
        plan: list[PlanItem] = []
        in_source: set[int] = set()  # present images the source holds too
        for item in items:
            destination = item.destination
            if destination is None:
                plan.append(decide(item, None, None, policy=policy))
                continue
            try:
                if (
                    destination.digest is not None
                    and destination.tag is None
                    and not answer(destination)
                ):
                    ask(item.source)
                tagged = (
                    answer(destination.with_tag(destination.tag))
                    if destination.digest is not None and destination.tag is not None
                    else None
                )
                source = answer(item.source) if item.source in futures else None
                found = _spelled(transport, destination, answer(destination), source, deadline)
                tagged = _spelled(transport, destination, tagged, destination.digest, deadline)
                decided = decide(item, found, source, tag_digest=tagged, policy=policy)
                notes = [refused[r] for r in (item.source, destination) if r in refused]
                if decided.status is PlanStatus.MISSING_SOURCE and notes:
                    decided = replace(decided, error="; ".join(notes))
                if decided.status is PlanStatus.PRESENT and source is not None:
                    in_source.add(len(plan))
                plan.append(decided)
            except PromoterError as exc:
                plan.append(failed(item, str(exc)))
        if policy.attachments.enabled:
            plan = _with_attachments(
                transport, pool, plan, in_source, policy=policy, deadline=deadline
            )
    return plan


def _with_attachments(
    transport: Transport,
    pool: ThreadPoolExecutor,
    plan: list[PlanItem],
    candidates: set[int],
    *,
    policy: PlanPolicy,
    deadline: Deadline | None,
) -> list[PlanItem]:
    """``plan`` with each ``present`` image of ``candidates`` (those the source holds too) whose
    destination lacks some of its source's attachments made ``attach`` (an image whose source has
    none stays ``present``); one finder for the plan, so each repository's tags are listed once. An image whose attachments cannot be
    looked up is an ``error``: the plan cannot tell whether it is complete.
    """
    finder = AttachmentFinder(policy.attachments)

    def check(
        item: PlanItem, source: Reference, destination: Reference, digest: Digest
    ) -> PlanItem:
        src = Repository.of(transport, source, deadline=deadline)
        dst = Repository.of(transport, destination, deadline=deadline)
        try:
            found = finder.plan(src, dst, digest)
        except PromoterError as exc:
            return replace(
                item,
                status=PlanStatus.ERROR,
                error=(
                    f"what is attached to {destination} could not be checked against its "
                    f"source {source}: {exc}"
                ),
            )
        if found.left_behind:
            item = replace(item, left_behind=found.left_behind)
        if found.differing:
            item = replace(
                item, differing_attachments=found.differing, blocking=policy.fail_diverged
            )
        if not found.missing:
            return item
        return replace(item, status=PlanStatus.ATTACH, attachments=found.missing)

    checks = {
        index: pool.submit(check, item, item.source, item.destination, item.digest)
        for index, item in enumerate(plan)
        if index in candidates
        and item.source is not None
        and item.destination is not None
        and item.digest is not None
    }
    return [checks[i].result() if i in checks else item for i, item in enumerate(plan)]


def _spelled(
    transport: Transport,
    destination: Reference,
    found: Digest | None,
    wanted: Digest | None,
    deadline: Deadline | None,
) -> Digest | None:
    """``found`` (a destination answer) spelled as ``wanted`` when both name the same bytes, else
    unchanged: digests of two algorithms compare by content, never by spelling.

    Raises:
        PromoterError: the destination's bytes were needed and could not be had.
    """
    if found is None or wanted is None:
        return found
    same = same_content(transport, destination, found, wanted, deadline=deadline)
    return wanted if same else found
