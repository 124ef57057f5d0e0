"""Planning an environment: what a sync would do for each of its images.

Each managed image is looked up in the environment's registry and, under the same repository path and tag
or digest, in the registry of the environment it promotes from (:mod:`promoter.planning`). When the overlay
uses the Kustomize component's image list, the list is checked against what the overlay runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from promoter.app.runtime import Runtime
from promoter.config.values import Environment, PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import InputError
from promoter.gitops.hookfile import HookFileDrift, drift, hook_images_path
from promoter.oci.referrers import ALL_ATTACHMENTS, AttachmentFilter
from promoter.outcome import Outcome, worst
from promoter.planning.lookup import plan_images
from promoter.planning.plan import (
    DEFAULT_POLICY,
    PlanItem,
    PlanPolicy,
    WantedImage,
    iter_wanted,
    plan_outcome,
)

if TYPE_CHECKING:
    from promoter.gitops.discover import UnmanagedReference
    from promoter.gitops.render import Rendering


@dataclass(frozen=True, slots=True)
class EnvironmentPlan:
    """The plan of one environment.

    Attributes:
        environment: its name (or a label such as ``from HOST`` for the in-cluster sync).
        items: one entry per distinct image, in first-use order, external images included.
        hook_file: how the Kustomize component's image list differs from what the overlay runs, when
            the overlay has one and it differs.
        source: the environment it promotes from, when it is one of promoter.yaml's.
        unmanaged: strings in the manifests that name the environment's registry outside the places
            images are found (see :func:`~promoter.gitops.discover.scan_manifests`): possibly images
            the plan does not cover; reported, never copied.
        warnings: what is probably a mistake in the overlay, one line each (an image written
            without a registry under a name another environment's kustomization renames).
        hook_sources: ``sourceRegistry`` values of the Kustomize component's ConfigMap that are
            not the registry of the environment it promotes from: the hook Job would copy from
            there (or fail to reach it) on every sync; blocks like a missing list line.
        attachments: which attachments the plan looked for, and a sync of it copies.
    """

    environment: str
    items: tuple[PlanItem, ...]
    hook_file: HookFileDrift | None = None
    source: str | None = None
    unmanaged: tuple[UnmanagedReference, ...] = ()
    warnings: tuple[str, ...] = ()
    hook_sources: tuple[str, ...] = ()
    attachments: AttachmentFilter = ALL_ATTACHMENTS

    @property
    def outcome(self) -> Outcome:
        """Failed when a registry could not be asked; refused when something blocks a sync (a
        conflict, a missing source, an image the hook's list lacks); done otherwise."""
        lacking = (self.hook_file is not None and self.hook_file.blocking) or bool(
            self.hook_sources
        )
        return worst([plan_outcome(self.items), Outcome.REFUSED if lacking else Outcome.DONE])


def plan_environment(
    runtime: Runtime,
    config: PromoterConfig,
    name: str,
    *,
    manifests: str | None = None,
    only: set[str] | None = None,
    rendering: Rendering | None = None,
    check_hook_file: bool = False,
    deadline: Deadline | None = None,
    policy: PlanPolicy | None = None,
    lookup_share: float | None = None,
) -> EnvironmentPlan:
    """Plan environment ``name`` of ``config``.

    Args:
        runtime: reaches the registries.
        config: promoter.yaml.
        name: the environment.
        manifests: a file of already rendered manifests (``helm template`` output) to read instead
            of rendering the overlay, or ``-`` for standard input.
        only: plan just these modules (repository paths); each must be a module of the
            environment.
        rendering: a build of the overlay started earlier (see :func:`environment_images`).
        check_hook_file: compare the Kustomize component's image list with the plan.
        deadline: bounds the renders (stopped at it) and the registry lookups.
        policy: which of ``diverged`` and ``foreign-environment`` block a sync; by default the
            environment's settings (:func:`environment_policy`).
        lookup_share: the part (0 < share <= 1) of the deadline's time left after rendering that
            the registry lookups may use: a sync keeps the rest for its copies. A render gets the
            whole deadline, since nothing can be planned without it.

    Returns:
        The plan; an image whose registry could not be asked (an error, the deadline) is an
        ``error`` item, never an exception.

    Raises:
        ConfigError: unknown environment, the overlay cannot be rendered, or it deploys no image
            of the environment's registry while its source environment does (a wrong
            ``registry:``).
        InputError: a module in ``only`` that the environment does not run.
        InvalidReferenceError: an image in the manifests does not parse.
        DeadlineExceededError: an overlay was still rendering at the deadline.
        RunInterruptedError: the run was interrupted while an overlay rendered.
    """
    from promoter.app.environment import (  # noqa: PLC0415 - YAML: not for the hook
        check_own_registry,
        environment_images,
        environment_scan,
        overlay_warnings,
    )

    environment = config.environment(name)
    source = config.source_of(name)
    # The render takes a while (kustomize, Helm charts): the connections the lookups will use
    # open meanwhile (issue 14); no further ping starts once the lookups do.
    warming = (
        runtime.transport.warm(
            [environment.registry, *([source.registry] if source else [])],
            runtime.settings.requests,
            deadline=deadline,
        )
        if manifests is None
        else None
    )
    scan = environment_scan(
        environment, manifests=manifests, rendering=rendering, deadline=deadline
    )
    images = [found.image for found in scan.images]
    # Given manifests (Helm users) are checked too, against the source overlay where it renders.
    skipped = check_own_registry(
        config,
        name,
        images,
        lambda: environment_images(source, deadline=deadline) if source else (),
        allow_foreign=policy is not None and "*" in policy.allowed_foreign,
        given=bool(manifests),
    )
    wanted = iter_wanted(
        images,
        environment.registry,
        source.registry if source else None,
        others=config.other_registries(name),
    )
    if only is not None:
        wanted = (
            w for w in wanted if w.destination is not None and w.destination.repository in only
        )
    if policy is None:
        policy = environment_policy(environment)
    if deadline is not None and lookup_share is not None:
        deadline = deadline.share(lookup_share)
    if warming is not None:
        warming.stop()
    items = look_up(runtime, wanted, deadline=deadline, policy=policy)
    if only is not None:
        unknown = sorted(set(only) - {i.destination.repository for i in items if i.destination})
        if unknown:
            raise InputError(f"{', '.join(unknown)}: not a module of {name}")
    wrong_sources = tuple(
        sorted({value for value in scan.hook_sources if source and value != source.registry})
    )
    difference = None
    if check_hook_file and not manifests:
        hook_file = hook_images_path(environment.overlay)
        if hook_file is not None:
            difference = drift(
                hook_file,
                [i.image for i in items if i.destination is not None],
                environment.registry,
            )
    return EnvironmentPlan(
        name,
        items,
        difference,
        source.name if source else None,
        unmanaged=scan.unmanaged,
        hook_sources=wrong_sources,
        attachments=policy.attachments,
        warnings=tuple(
            ([skipped] if skipped else [])
            + overlay_warnings(
                config, name, images, rendered=not manifests, hook_images=scan.hook_images
            )
        ),
    )


def environment_policy(
    environment: Environment,
    *,
    fail_diverged: bool = False,
    allow_foreign: bool = False,
    attachments: AttachmentFilter = ALL_ATTACHMENTS,
) -> PlanPolicy:
    """The environment's policy from promoter.yaml, made stricter by ``fail_diverged``
    (``--fail-on-diverged``) and more lenient by ``allow_foreign`` (``--allow-foreign``), with
    the attachments that travel (``--no-referrers``, ``--referrers-type``)."""
    allowed = {"*"} if allow_foreign else set(environment.allow_images_from)
    return PlanPolicy(
        fail_diverged=fail_diverged or environment.fail_diverged,
        allowed_foreign=frozenset(allowed),
        attachments=attachments,
    )


def look_up(
    runtime: Runtime,
    wanted: Iterable[WantedImage],
    *,
    deadline: Deadline | None = None,
    policy: PlanPolicy = DEFAULT_POLICY,
) -> tuple[PlanItem, ...]:
    """The plan items of ``wanted`` (:func:`~promoter.planning.lookup.plan_images`), their error
    texts scrubbed of the run's secrets: a plan is printed, written to reports and returned to
    Python callers, and a registry may echo a credential in its error message."""
    items = plan_images(
        runtime.transport,
        wanted,
        lookups=runtime.settings.requests,
        deadline=deadline,
        policy=policy,
    )
    scrub = runtime.scrubber
    return tuple(replace(i, error=scrub(i.error)) if i.error else i for i in items)
