"""Carry a plan out: copy every image whose status is ``copy``, all in one run.

One :class:`~promoter.remote.copy.Copier` run serves every image, so blobs shared between images move
once and concurrency stays bounded. Every image is tried; the outcome of each is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promoter.deadline import Deadline
from promoter.errors import PromoterError
from promoter.outcome import Outcome, outcome_of
from promoter.planning.plan import PlanItem, PlanStatus
from promoter.reference import Reference
from promoter.remote.copy import Copier, CopyResult


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """What happened to one image of a sync.

    Attributes:
        item: the plan's entry for the image.
        result: the copy's result, when the image was copied.
        error: why the image is not present (set for every outcome but done).
        outcome: done, refused (a conflict, a missing source) or failed.
        cause: the exception behind ``error`` for a failed copy, if any.
        warning: what a person should know about an image that is done (a diverged tag, an
            allowed image of another environment's registry).
    """

    item: PlanItem
    result: CopyResult | None = None
    error: str | None = None
    outcome: Outcome = Outcome.DONE
    cause: PromoterError | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the image is present in the destination now."""
        return self.outcome is Outcome.DONE


#: Statuses a sync hands to the copier: the image, or (present already) just its attachments.
TO_COPY = frozenset({PlanStatus.COPY, PlanStatus.ATTACH})


def sync_plan(
    copier: Copier, plan: Sequence[PlanItem], *, deadline: Deadline | None = None
) -> list[SyncRecord]:
    """Copy what the plan says to copy (images, attachments), in one run; report every managed image's outcome, in plan
    order (external images have no record).

    Raises:
        nothing for a single image: each failure is its record's; Ctrl-C propagates.
    """
    pairs: list[tuple[Reference, Reference]] = []
    positions: dict[int, int] = {}
    for index, item in enumerate(plan):
        if item.status in TO_COPY and item.source and item.destination and not item.blocking:
            positions[index] = len(pairs)
            # Copy the digest the plan saw: a tag CI moves between plan and copy is not copied
            # unchecked (the copier reads the source by digest when it has one).
            source = item.source.with_digest(item.digest) if item.digest else item.source
            pairs.append((source, item.destination))
    outcomes = copier.copy_all(pairs, deadline=deadline)
    records: list[SyncRecord] = []
    for index, item in enumerate(plan):
        if item.status is PlanStatus.EXTERNAL:
            continue
        text = explain(item)
        if text is not None and (item.outcome is not Outcome.DONE or index not in positions):
            if item.outcome is Outcome.DONE:
                records.append(SyncRecord(item, warning=text))
            else:
                records.append(SyncRecord(item, error=text, outcome=item.outcome))
            continue
        outcome = outcomes[positions[index]] if index in positions else None
        if isinstance(outcome, PromoterError):
            # A tag another writer moved between plan and copy is a refusal like a planned conflict.
            # An image promoted without all its attachments keeps its copy result for the report.
            copied = getattr(outcome, "result", None)
            records.append(
                SyncRecord(
                    item,
                    result=copied if isinstance(copied, CopyResult) else None,
                    error=str(outcome),
                    outcome=outcome_of(outcome),
                    cause=outcome,
                )
            )
        elif isinstance(outcome, CopyResult):
            records.append(SyncRecord(item, result=outcome, warning=text))
        elif item.status is PlanStatus.ERROR:
            records.append(SyncRecord(item, error=item.error, outcome=item.outcome))
        else:
            records.append(SyncRecord(item))
    return records


def explain(item: PlanItem) -> str | None:
    """One line for a person about an image a sync neither copies nor finds simply present: a
    refusal's reason, or a warning when the item's outcome is done (the sync may live with it);
    None otherwise.

    Names both digests of every conflict and divergence, and what to do.
    """
    destination, source = item.destination, item.source
    status = item.status
    warning = item.outcome is Outcome.DONE
    if status is PlanStatus.CONFLICT and destination is not None:
        text = (
            f"refusing to move tag {destination.with_tag(destination.tag or '')}: it holds "
            f"{item.held}, the overlay pins {item.digest}; promote a new tag (a sync never moves "
            "one; 'promoter copy --force' does, on purpose)"
        )
    elif status is PlanStatus.DIVERGED and destination is not None:
        text = (
            f"{destination} is present with {item.held}, but the source {source} now holds "
            f"{item.digest} (the tag was pushed again after it was promoted); the environment "
            "keeps what it was given: to move it, push it under a new tag and promote that"
        )
        if not warning:
            text = (
                f"{text}; refused: diverged tags fail here (--fail-on-diverged, or divergedTags: "
                "fail in promoter.yaml)"
            )
    elif status is PlanStatus.MISSING_SOURCE and destination is not None:
        where = f"nor in {source.registry}" if source is not None else "(no source environment)"
        text = f"{destination} is not in its registry {where}"
        if item.error:
            text = f"{text} ({item.error})"
    elif item.differing_attachments and destination is not None:
        attachment, held = item.differing_attachments[0]
        more = len(item.differing_attachments) - 1
        others = f" (and {more} more such tags)" if more else ""
        tag = destination.with_tag(attachment.tag)
        text = (
            f"{tag} holds {held}, the source's {attachment.tag} is {attachment.digest}{others}: "
            "a signature was added on one side after the promotion; the destination keeps its "
            f"own (a sync never moves a tag); 'promoter copy --force {source} {destination}' "
            "(with --config when promoter.yaml maps the registries) moves it, dropping what only "
            "the destination's tag holds"
        )
        if not warning:
            text = (
                f"{text}; refused: diverged tags fail here (--fail-on-diverged, or divergedTags: "
                "fail in promoter.yaml)"
            )
    elif status is PlanStatus.FOREIGN:
        owner = item.foreign or "another environment's registry"
        # An environment's name is one word (config/load.py); a phrase says whose registry it is
        # itself (the hook's "the source registry HOST", which promoter.yaml cannot allow).
        phrase = " " in owner
        where = owner if phrase else f"the registry of environment {owner}"
        allow = "--allow-foreign" if phrase else "allowImagesFrom in promoter.yaml, --allow-foreign"
        text = (
            f"{item.image} is in {where}, not this environment's: promote it here and deploy it "
            "from this registry"
        )
        text = (
            f"{text} (allowed: {'--allow-foreign' if phrase else 'allowImagesFrom or --allow-foreign'})"
            if warning
            else f"{text}, or allow it ({allow})"
        )
    else:
        return None
    return text
