"""Carry a plan out: copy every image whose status is ``copy``, all in one run.

One :class:`~promoter.remote.copy.Copier` serves every image, so blobs shared between images move
once and concurrency stays bounded. Every image is tried; the outcome of each is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promoter.errors import PromoterError
from promoter.promote.plan import PlanItem, PlanStatus
from promoter.reference import Reference
from promoter.remote.copy import Copier, CopyResult


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """What happened to one image of a sync; ``error`` is set when it could not be made present."""

    item: PlanItem
    result: CopyResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the image is present in the destination now."""
        return self.error is None and self.item.status not in (
            PlanStatus.CONFLICT,
            PlanStatus.MISSING_SOURCE,
            PlanStatus.ERROR,
        )

    def to_json(self) -> dict[str, object]:
        """A ``--report`` entry: source, destination, digest, bytes, seconds (and error, if any)."""
        entry: dict[str, object] = {
            **self.item.to_json(),
            "destination": str(self.item.destination) if self.item.destination else self.item.image,
            # What was copied, which is what the plan saw unless the copy itself says otherwise.
            **({"digest": str(self.result.digest)} if self.result is not None else {}),
            "bytes": self.result.bytes if self.result is not None else 0,
            "seconds": round(self.result.seconds, 3) if self.result is not None else 0.0,
            "action": str(self.result.action) if self.result is not None else "none",
        }
        if self.error is not None:
            entry["error"] = self.error
        return entry


def sync_plan(copier: Copier, plan: Sequence[PlanItem]) -> list[SyncRecord]:
    """Copy what the plan says to copy; report every managed image's outcome, in plan order."""
    pairs: list[tuple[Reference, Reference]] = []
    positions: dict[int, int] = {}
    for index, item in enumerate(plan):
        if item.status is PlanStatus.COPY and item.source and item.destination:
            positions[index] = len(pairs)
            # Copy the digest the plan saw: a tag CI moves between plan and copy is not copied
            # unchecked (the copier reads the source by digest when it has one).
            source = item.source.with_digest(str(item.digest)) if item.digest else item.source
            pairs.append((source, item.destination))
    outcomes = copier.copy_all(pairs)
    records: list[SyncRecord] = []
    for index, item in enumerate(plan):
        if item.status is PlanStatus.EXTERNAL:
            continue
        outcome = outcomes[positions[index]] if index in positions else None
        if isinstance(outcome, PromoterError):
            records.append(SyncRecord(item, error=str(outcome)))
        elif isinstance(outcome, CopyResult):
            records.append(SyncRecord(item, result=outcome))
        elif item.status is PlanStatus.ERROR:
            records.append(SyncRecord(item, error=item.error))
        elif item.status is PlanStatus.CONFLICT:
            records.append(
                SyncRecord(
                    item, error=f"{item.destination} points at another digest than {item.source}"
                )
            )
        elif item.status is PlanStatus.MISSING_SOURCE:
            where = (
                f"nor in {item.source.registry}"
                if item.source is not None
                else "(no source environment)"
            )
            records.append(
                SyncRecord(item, error=f"{item.destination} is not in its registry {where}")
            )
        else:
            records.append(SyncRecord(item))
    return records
