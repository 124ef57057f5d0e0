"""Carrying plans out: an environment's sync, and making a list of references present (what the
in-cluster hook and the admission webhook call).

One copy run serves every image of a sync, so blobs shared between images move once; every image is tried
and has a record; the report's outcome is the worst of its records'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from promoter.app.plan import EnvironmentPlan, look_up, plan_environment
from promoter.app.runtime import Runtime
from promoter.config.values import PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import InputError, InvalidReferenceError
from promoter.outcome import Outcome, worst
from promoter.planning.execute import SyncRecord, sync_plan
from promoter.planning.plan import (
    DEFAULT_POLICY,
    PlanPolicy,
    PlanStatus,
    WantedImage,
    in_registry,
)
from promoter.reference import parse_reference, parse_registry_host
from promoter.remote.copy import Copier, CopyAction, CopyProgress

if TYPE_CHECKING:
    from promoter.gitops.render import Rendering


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a sync did.

    Attributes:
        environment: the environment's name, or ``from HOST`` for :func:`make_present` (a label
            for reports).
        records: one per managed image, in plan order.
    """

    environment: str
    records: tuple[SyncRecord, ...]

    @property
    def outcome(self) -> Outcome:
        """Done when every managed image is present now; refused when only conflicts or missing
        sources remain; failed when a copy or a lookup failed."""
        return worst(record.outcome for record in self.records)

    @property
    def copied(self) -> int:
        """Images copied in this run."""
        return sum(
            1
            for r in self.records
            if r.result is not None and r.ok and r.result.action is not CopyAction.ATTACHED
        )

    @property
    def attached(self) -> int:
        """Images that were present, whose missing attachments were copied in this run."""
        return sum(
            1
            for r in self.records
            if r.result is not None and r.ok and r.result.action is CopyAction.ATTACHED
        )

    @property
    def diverged(self) -> int:
        """Present images whose source tag now holds other content (kept, with a warning)."""
        return sum(
            1
            for r in self.records
            if r.item.status is PlanStatus.DIVERGED and r.outcome is Outcome.DONE
        )

    @property
    def refused(self) -> int:
        """Images left alone on purpose: a conflict or a missing source (a human must act)."""
        return sum(1 for r in self.records if r.outcome is Outcome.REFUSED)

    @property
    def failed(self) -> int:
        """Images whose copy or lookup failed (or was interrupted)."""
        return sum(1 for r in self.records if r.outcome is Outcome.FAILED)


def carry_out(
    runtime: Runtime,
    plan: EnvironmentPlan,
    *,
    progress: CopyProgress | None = None,
    deadline: Deadline | None = None,
) -> SyncReport:
    """Copy every ``copy`` image of ``plan`` in one run and record every managed image's outcome.

    A conflict whose tag is immutable in its ECR repository says so in its record.
    """
    copier = Copier(
        runtime.transport,
        # A signature tag the plan found differing was reported there; a sync keeps it.
        runtime.settings.copy_options(attachments=plan.attachments, keep_attachment_tags=True),
        progress,
        prepare_destination=runtime.prepare_destination,
    )
    with copier:
        records = sync_plan(copier, plan.items, deadline=deadline)
    return SyncReport(
        plan.environment, tuple(_explained(runtime, _scrubbed(runtime, r)) for r in records)
    )


def _scrubbed(runtime: Runtime, record: SyncRecord) -> SyncRecord:
    """The record without the run's secrets in its error text or cause (a registry may echo a
    credential in its error message; reports are printed, written and returned)."""
    if record.cause is not None:
        runtime.scrubber.error(record.cause)
    return replace(record, error=runtime.scrubber(record.error)) if record.error else record


def _explained(runtime: Runtime, record: SyncRecord) -> SyncRecord:
    """Say so when a refused tag (a conflict, a refused divergence) is immutable in its ECR
    repository: forcing cannot move it."""
    destination = record.item.destination
    moving = record.item.status in {PlanStatus.CONFLICT, PlanStatus.DIVERGED}
    if not moving or destination is None or not record.error:
        return record
    hint = runtime.immutable_hint(destination)
    return replace(record, error=f"{record.error}; {hint}") if hint else record


def sync_environment(
    runtime: Runtime,
    config: PromoterConfig,
    name: str,
    *,
    manifests: str | None = None,
    only: set[str] | None = None,
    rendering: Rendering | None = None,
    progress: CopyProgress | None = None,
    deadline: Deadline | None = None,
    policy: PlanPolicy | None = None,
) -> SyncReport:
    """Plan environment ``name`` and carry the plan out in one copy run.

    Args: as :func:`~promoter.app.plan.plan_environment`, plus ``progress`` for blob events. The
        render may use the deadline's whole time (nothing can be planned without it), the lookups
        :data:`LOOKUP_SHARE` of what is left then, the copies the rest.

    Returns:
        One record per managed image; its outcome is the worst of theirs (an image that ran out of
        time is a failed record, never an exception).

    Raises:
        ConfigError, InputError, InvalidReferenceError: as :func:`plan_environment`.
    """
    plan = plan_environment(
        runtime,
        config,
        name,
        manifests=manifests,
        only=only,
        rendering=rendering,
        deadline=deadline,
        policy=policy,
        lookup_share=LOOKUP_SHARE,
    )
    return carry_out(runtime, plan, progress=progress, deadline=deadline)


def wanted_from(references: Iterable[str], source_registry: str) -> list[WantedImage]:
    """Each destination reference with the same repository path and tag or digest in
    ``source_registry``; duplicates once, in first-seen order.

    A reference in ``source_registry`` itself is no destination: "making it present" would copy it
    onto itself and always report ``present``, while the environment pulls from the registry it
    promotes from (a Helm ``images`` value or a ``promoter-images.txt`` naming dev's image in
    production). It is a ``foreign-environment`` image whose ``foreign`` is
    :func:`source_registry_label`, refused by a sync unless the policy allows every registry.

    Raises:
        InputError: ``source_registry`` is not a registry host, or a reference does not parse.
    """
    try:
        source_host = parse_registry_host(source_registry)
    except InvalidReferenceError as exc:
        raise InputError(f"source registry: {exc}") from None
    wanted = []
    if isinstance(references, str):  # one reference, not its characters
        references = [references]
    for text in dict.fromkeys(references):
        destination = parse_reference(text)
        if in_registry(destination, source_host):
            wanted.append(WantedImage(text, None, None, source_registry_label(source_host)))
            continue
        wanted.append(
            WantedImage(
                text, destination, destination.in_repository(source_host, destination.repository)
            )
        )
    return wanted


def source_registry_label(host: str) -> str:
    """The ``foreign`` text of an image :func:`wanted_from` found in the source registry itself: a
    phrase, never one word, so that it is not read as an environment's name."""
    return f"the source registry {host}"


#: The part of a sync's deadline its registry lookups may use: one image whose registry stalls is
#: reported as an error while the others are still copied in the time left.
LOOKUP_SHARE = 0.25


def lookup_deadline(deadline: Deadline | None) -> Deadline | None:
    """The deadline for a sync's lookups (:data:`LOOKUP_SHARE` of ``deadline``'s time left)."""
    return deadline.share(LOOKUP_SHARE) if deadline is not None else None


def plan_references(
    runtime: Runtime,
    references: Iterable[str],
    source_registry: str,
    *,
    deadline: Deadline | None = None,
    policy: PlanPolicy = DEFAULT_POLICY,
) -> EnvironmentPlan:
    """Plan making each reference present by copying it from ``source_registry`` (same path, tag and
    digest), without promoter.yaml environments. ``policy.fail_diverged`` refuses a reference whose
    source tag now holds other content than the destination's (a warning otherwise); a reference
    in ``source_registry`` itself is refused unless ``policy`` allows every registry (``"*"``).

    Raises:
        InputError: see :func:`wanted_from`.
    """
    wanted = wanted_from(references, source_registry)
    label = f"from {parse_registry_host(source_registry)}"
    return EnvironmentPlan(
        label,
        look_up(runtime, wanted, deadline=deadline, policy=policy),
        attachments=policy.attachments,
    )


def make_present(
    runtime: Runtime,
    references: Iterable[str],
    source_registry: str,
    *,
    progress: CopyProgress | None = None,
    deadline: Deadline | None = None,
    policy: PlanPolicy = DEFAULT_POLICY,
) -> SyncReport:
    """Make each destination reference present, copying what is missing from ``source_registry``.

    What the hook Job runs on every sync and the admission webhook on demand: when everything is
    present it only sends HEAD requests. Statuses, records and outcome are those of an environment's
    sync.

    Raises:
        InputError: ``source_registry`` is not a registry host, or a reference does not parse.
    """
    plan = plan_references(
        runtime, references, source_registry, deadline=lookup_deadline(deadline), policy=policy
    )
    return carry_out(runtime, plan, progress=progress, deadline=deadline)
