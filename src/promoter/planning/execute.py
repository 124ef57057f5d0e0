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
    """

    item: PlanItem
    result: CopyResult | None = None
    error: str | None = None
    outcome: Outcome = Outcome.DONE
    cause: PromoterError | None = None

    @property
    def ok(self) -> bool:
        """Whether the image is present in the destination now."""
        return self.outcome is Outcome.DONE


def sync_plan(
    copier: Copier, plan: Sequence[PlanItem], *, deadline: Deadline | None = None
) -> list[SyncRecord]:
    """Copy what the plan says to copy, in one run; report every managed image's outcome, in plan
    order (external images have no record).

    Raises:
        nothing for a single image: each failure is its record's; Ctrl-C propagates.
    """
    pairs: list[tuple[Reference, Reference]] = []
    positions: dict[int, int] = {}
    for index, item in enumerate(plan):
        if item.status is PlanStatus.COPY and item.source and item.destination:
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
        outcome = outcomes[positions[index]] if index in positions else None
        if isinstance(outcome, PromoterError):
            # A tag another writer moved between plan and copy is a refusal like a planned conflict.
            records.append(
                SyncRecord(item, error=str(outcome), outcome=outcome_of(outcome), cause=outcome)
            )
        elif isinstance(outcome, CopyResult):
            records.append(SyncRecord(item, result=outcome))
        elif item.status is PlanStatus.ERROR:
            records.append(SyncRecord(item, error=item.error, outcome=item.outcome))
        elif item.status is PlanStatus.CONFLICT:
            records.append(
                SyncRecord(
                    item,
                    error=(
                        f"refusing to move tag {item.destination}: it points at {item.held}, "
                        f"the source {item.source} is {item.digest}; promote a new tag (a sync "
                        "never moves one; 'promoter copy --force' does, on purpose)"
                    ),
                    outcome=item.outcome,
                )
            )
        elif item.status is PlanStatus.MISSING_SOURCE:
            where = (
                f"nor in {item.source.registry}"
                if item.source is not None
                else "(no source environment)"
            )
            records.append(
                SyncRecord(
                    item,
                    error=f"{item.destination} is not in its registry {where}",
                    outcome=item.outcome,
                )
            )
        else:
            records.append(SyncRecord(item))
    return records
