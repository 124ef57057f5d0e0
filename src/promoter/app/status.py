"""The status matrix: which version of each module every environment runs, and how it compares with
the environment it promotes from.

One row per module (a repository path managed somewhere), one column per environment in pipeline order.
A cell holds what the overlay asks for, what that resolves to in the registry, and its drift: in sync,
behind or ahead (tags ordered as versions), differs (no order known), or diverged (the same tag, other
content). Content is compared where both registries answer, by digest in one algorithm or else by the
bytes; references otherwise. Offline (``status_matrix(..., offline=True)``) no registry is asked at all:
the matrix is Git's view alone, each cell marked not checked.

Each cell has one :class:`CellState` that the table, the JSON and the status page show, and the
matrix has one :class:`Verdict` that ``status --exit-code`` turns into an exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from promoter.app.environment import (
    check_own_registry,
    environment_scan,
    foreign_modules,
    modules,
    overlay_warnings,
)
from promoter.app.runtime import Runtime
from promoter.config.values import PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import InputError, InvalidReferenceError, PromoterError
from promoter.oci.digest import Digest
from promoter.planning.versions import compare_tags
from promoter.reference import Reference, parse_reference
from promoter.remote.repository import lookup_digests, same_content

if TYPE_CHECKING:
    from promoter.gitops.discover import UnmanagedReference


class Drift(StrEnum):
    """How a cell compares with the same module in the environment it promotes from."""

    NONE = "none"  #: no source environment, or the source does not run the module
    IN_SYNC = (
        "in-sync"  #: the same content (or, where a registry could not say, the same reference)
    )
    BEHIND = "behind"  #: an older version than the source's (tags ordered as versions)
    AHEAD = "ahead"  #: a newer version than the source's (a hotfix, a rollback upstream)
    DIFFERS = "differs"  #: another version whose order the tags do not tell (``latest``, a digest)
    DIVERGED = "diverged"  #: the same tag, other content: the source's tag was pushed again


#: The table's mark for each drift (legend printed under the table).
DRIFT_MARKS: Final = MappingProxyType(
    {
        Drift.NONE: "",
        Drift.IN_SYNC: "",
        Drift.BEHIND: "<",
        Drift.AHEAD: ">",
        Drift.DIFFERS: "~",
        Drift.DIVERGED: "!",
    }
)


class CellState(StrEnum):
    """The one state a cell is shown with, the most pressing of its facts first.

    The order of the members is that precedence: a cell whose image is missing and behind is
    shown missing (it would not even pull); a cell deployed from another environment's registry
    in sync is shown foreign. What the state leaves out is still in the cell (and on the page as
    a note): its drift, its presence, where it is deployed from.
    """

    EXTERNAL = "external"  #: the module deployed from a registry outside promoter.yaml
    MISSING = "missing"  #: not in the registry the overlay names
    DIVERGED = "diverged"  #: the source's tag holds other content now
    BEHIND = "behind"  #: an older version than the source's
    DIFFERS = "differs"  #: another version whose order the tags do not tell
    UNREACHABLE = "unreachable"  #: the registry could not be asked (drift by references only)
    FOREIGN = "foreign"  #: deployed from another environment's registry
    AHEAD = "ahead"  #: a newer version than the source's
    IN_SYNC = "in-sync"  #: what the source runs
    PRESENT = "present"  #: in its registry; no source environment runs the module to compare
    NOT_CHECKED = "not-checked"  #: offline, and no source environment runs the module


#: Drifts that make an environment not run what it should (``status --exit-code`` exits 4).
#: ``ahead`` is left out: a newer version than the source's is a deliberate hotfix or an upstream
#: rollback. ``differs`` is in: versions whose order the tags do not tell may be behind, and a gate
#: does not pass what it cannot tell.
FAILING_DRIFTS: Final = frozenset({Drift.BEHIND, Drift.DIFFERS, Drift.DIVERGED})


class Verdict(StrEnum):
    """Whether every environment runs what it should: the matrix as one answer, for CI gates."""

    IN_SYNC = "in-sync"  #: nothing behind, diverged, differing or missing; every registry answered
    DRIFT = "drift"  #: a cell is behind, diverged or differs, or its image is missing
    INCOMPLETE = "incomplete"  #: a registry could not be asked: not a pass, drift found or not


@dataclass(frozen=True, slots=True)
class StatusCell:
    """One module in one environment.

    Attributes:
        reference: what the environment's overlay asks for.
        resolved: what that resolves to in the registry it names; None when it is not there or the
            registry could not be asked.
        drift: how it compares with the environment it promotes from.
        error: why the registry could not be asked (one line, scrubbed); empty when it answered.
        foreign: the other environment whose registry the image is in, when the environment
            deploys it from there instead of its own registry (``foreign-environment``).
        checked: whether the registry was asked at all; False offline, where ``resolved`` is
            None and the drift compares references and tags (Git's view).
        external: the environment deploys the module's repository path from a registry outside
            promoter.yaml (``ghcr.io/shop/cart``, a typo'd host) while another environment
            manages it: no promoted image runs there. Such a registry is not asked.
    """

    reference: Reference
    resolved: Digest | None
    drift: Drift = Drift.NONE
    error: str = ""
    foreign: str | None = None
    checked: bool = True
    external: bool = False

    @property
    def behind(self) -> bool:
        """Whether the environment runs an older version than the one it promotes from."""
        return self.drift is Drift.BEHIND

    @property
    def present(self) -> bool | None:
        """Whether the image is in the registry; None when it could not be asked or was not
        (offline)."""
        if self.error or not self.checked or self.external:
            return None
        return self.resolved is not None

    @property
    def state(self) -> CellState:
        """The one state the cell is shown with (see :class:`CellState` for the precedence)."""
        if self.external:
            return CellState.EXTERNAL
        if self.present is False:
            return CellState.MISSING
        by_drift = {
            Drift.DIVERGED: CellState.DIVERGED,
            Drift.BEHIND: CellState.BEHIND,
            Drift.DIFFERS: CellState.DIFFERS,
        }
        if self.drift in by_drift:
            return by_drift[self.drift]
        if self.error:
            return CellState.UNREACHABLE
        if self.foreign is not None:
            return CellState.FOREIGN
        if self.drift is Drift.AHEAD:
            return CellState.AHEAD
        if self.drift is Drift.IN_SYNC:
            return CellState.IN_SYNC
        return CellState.PRESENT if self.checked else CellState.NOT_CHECKED

    @property
    def failing(self) -> bool:
        """Whether the cell is drift for a gate: external, missing, or behind, differing or
        diverged."""
        return self.external or self.present is False or self.drift in FAILING_DRIFTS

    @property
    def digest(self) -> Digest | None:
        """The content digest when known: the registry's answer, else the pinned digest."""
        return self.resolved or self.reference.digest


@dataclass(frozen=True, slots=True)
class StatusMatrix:
    """Modules by environments.

    Attributes:
        environments: names in pipeline order.
        modules: repository paths, sorted.
        cells: by (environment, module); a module an environment does not deploy has no cell.
        unmanaged: by environment, the strings naming its registry outside image fields (see
            :attr:`~promoter.app.plan.EnvironmentPlan.unmanaged`); environments with none are absent.
        warnings: what in the overlays is probably a mistake (as
            :attr:`~promoter.app.plan.EnvironmentPlan.warnings`), every environment's, one line each:
            a module deployed from a lookalike registry or as an unqualified image has no cell.
    """

    environments: tuple[str, ...]
    modules: tuple[str, ...]
    cells: Mapping[tuple[str, str], StatusCell]
    unmanaged: Mapping[str, tuple[UnmanagedReference, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    warnings: tuple[str, ...] = ()

    def cell(self, environment: str, module: str) -> StatusCell | None:
        """The cell, or None when the environment does not deploy the module.

        Raises:
            InputError: ``environment`` is not one of the matrix's environments.
        """
        if environment not in self.environments:
            raise InputError(
                f"unknown environment {environment!r}; known: {', '.join(self.environments)}"
            )
        return self.cells.get((environment, module))

    @property
    def offline(self) -> bool:
        """Whether no registry was asked (every cell not checked); False for an empty matrix."""
        return bool(self.cells) and not any(cell.checked for cell in self.cells.values())

    def failing(self) -> tuple[tuple[str, str], ...]:
        """The (environment, module) pairs that are drift for a gate (:attr:`StatusCell.failing`),
        in pipeline order, then by module."""
        return tuple(
            (name, module)
            for name in self.environments
            for module in self.modules
            if (cell := self.cells.get((name, module))) is not None and cell.failing
        )

    def unchecked(self) -> tuple[tuple[str, str], ...]:
        """The (environment, module) pairs whose registry could not be asked (an ``error``); not
        those left unasked on purpose (offline)."""
        return tuple(
            (name, module)
            for name in self.environments
            for module in self.modules
            if (cell := self.cells.get((name, module))) is not None and cell.error
        )

    @property
    def verdict(self) -> Verdict:
        """The matrix as one answer. A registry that could not be asked makes it
        :attr:`Verdict.INCOMPLETE` even where drift was found elsewhere: a gate does not pass, nor
        report as mere drift, what it could not check. Offline, only Git's view is judged
        (behind, differs); presence and divergence need the registries and are not checked."""
        if self.unchecked():
            return Verdict.INCOMPLETE
        if self.failing():
            return Verdict.DRIFT
        return Verdict.IN_SYNC


def status_matrix(
    runtime: Runtime,
    config: PromoterConfig,
    *,
    deadline: Deadline | None = None,
    offline: bool = False,
) -> StatusMatrix:
    """Render every environment, find its modules, and look each version up in its registry.

    The matrix is Git's view first: a registry that cannot be asked (down, refusing, past the
    deadline) leaves its cells with an ``error`` and no digest, and the drift compares the
    references there; the other cells are complete. An image an environment deploys from another
    environment's registry is shown in its module's row, marked foreign. With ``offline`` no
    registry is contacted at all (``runtime``'s transport is never used): every cell is not
    checked, with no digest but a pinned one, and its drift compares references and tags.

    Raises:
        ConfigError: an overlay cannot be rendered, or deploys no image of its environment's
            registry while its source environment does (a wrong ``registry:``).
    """
    names = list(config.environments)
    scans = {name: environment_scan(config.environment(name), deadline=deadline) for name in names}
    images = {name: [found.image for found in scans[name].images] for name in names}
    for name in names:
        source = config.source_of(name)
        rendered = images[source.name] if source is not None else []
        check_own_registry(config, name, images[name], rendered.__iter__)
    per_env: dict[str, dict[str, tuple[Reference, str | None]]] = {}
    for name in names:
        found: dict[str, tuple[Reference, str | None]] = {
            module: (ref, None)
            for module, ref in modules(config.environment(name), images[name]).items()
        }
        for module, (ref, holder) in foreign_modules(
            images[name], config.other_registries(name)
        ).items():
            found.setdefault(module, (ref, holder))
        per_env[name] = found
    all_modules = sorted({module for refs in per_env.values() for module in refs})
    keys = [(n, m) for n in names for m in all_modules if m in per_env[n]]
    answers: Mapping[Reference, Digest | PromoterError | None] = (
        {}
        if offline
        else lookup_digests(
            runtime.transport,
            (per_env[n][m][0] for n, m in keys),
            deadline=deadline,
            workers=runtime.settings.requests,
        )
    )
    resolved: dict[tuple[str, str], Digest | None] = {}
    errors: dict[tuple[str, str], str] = {}
    for key in keys:
        answer = answers.get(per_env[key[0]][key[1]][0])
        if isinstance(answer, PromoterError):
            resolved[key] = None
            errors[key] = runtime.scrubber(str(answer))
        else:
            resolved[key] = answer
    cells: dict[tuple[str, str], StatusCell] = {}
    for name, module in keys:
        reference, owner = per_env[name][module]
        source = config.source_of(name)
        drift = Drift.NONE
        if source is not None and module in per_env[source.name]:
            upstream = per_env[source.name][module][0]
            drift, problem = _drift(
                runtime,
                (reference, resolved[(name, module)]),
                (upstream, resolved[(source.name, module)]),
                deadline=deadline,
            )
            if problem:
                errors.setdefault((name, module), problem)
        cells[(name, module)] = StatusCell(
            reference,
            resolved[(name, module)],
            drift,
            errors.get((name, module), ""),
            owner,
            checked=not offline,
        )
    registries = {config.environment(name).registry for name in names}
    cells |= _external_cells(names, all_modules, registries, images)
    unmanaged = {name: scan.unmanaged for name, scan in scans.items() if scan.unmanaged}
    warnings = tuple(
        line
        for name in names
        for line in overlay_warnings(
            config, name, images[name], hook_images=scans[name].hook_images
        )
    )
    return StatusMatrix(
        tuple(names),
        tuple(all_modules),
        MappingProxyType(cells),
        MappingProxyType(unmanaged),
        warnings,
    )


def _external_cells(
    names: Sequence[str],
    all_modules: Sequence[str],
    registries: set[str],
    images: Mapping[str, Sequence[str]],
) -> dict[tuple[str, str], StatusCell]:
    """A cell for each module an environment deploys, in some workload, from a registry outside
    promoter.yaml's (``registries``): its repository path there, or, for a module of two parts or
    more, a path ending in it (``ghcr.io/other/shop/cart``), also where another workload
    runs it from the environment's own registry. Without it, the row would show the environment
    as not deploying the module, or as running only the promoted image, and a gate would pass
    it."""
    cells: dict[tuple[str, str], StatusCell] = {}
    for name in names:
        for text in images[name]:
            try:
                reference = parse_reference(text, default_tag=None)
            except InvalidReferenceError:
                continue
            if reference.registry in registries:
                continue
            path = reference.repository
            for module in all_modules:
                # Under another path only for a module of two parts or more (shop/cart): a
                # one-part module (nginx) would match every vendor's (bitnami/nginx).
                under = "/" in module and path.endswith(f"/{module}")
                if (path == module or under) and (name, module) not in cells:
                    cells[(name, module)] = StatusCell(
                        reference, None, checked=False, external=True
                    )
    return cells


def _drift(
    runtime: Runtime,
    cell: tuple[Reference, Digest | None],
    upstream: tuple[Reference, Digest | None],
    *,
    deadline: Deadline | None,
) -> tuple[Drift, str]:
    """A cell's drift from its upstream (each a reference and what it resolved to), and why the
    content could not be compared (empty when it could). Content is compared where both
    registries answered (digests of one algorithm, else the bytes), references otherwise; other
    versions are ordered by their tags where they read as versions."""
    (mine, my_digest), (theirs, their_digest) = cell, upstream
    same_reference = (mine.tag, mine.digest) == (theirs.tag, theirs.digest)
    if my_digest is not None and their_digest is not None:
        try:
            if same_content(runtime.transport, mine, my_digest, their_digest, deadline=deadline):
                return Drift.IN_SYNC, ""  # a tag and a pinned digest of one image are in sync
        except PromoterError as exc:
            problem = runtime.scrubber(str(exc))
            return (Drift.IN_SYNC if same_reference else _by_tags(mine, theirs)), problem
        if same_reference or compare_tags(mine.tag, theirs.tag) == 0 or mine.tag == theirs.tag:
            return Drift.DIVERGED, ""  # one version (v1.2 and 1.2.0 too), other content
    elif same_reference or (mine.digest is not None and mine.digest == theirs.digest):
        return Drift.IN_SYNC, ""
    return _by_tags(mine, theirs), ""


def _by_tags(mine: Reference, theirs: Reference) -> Drift:
    """Behind or ahead when the tags read as versions, differs otherwise."""
    order = compare_tags(mine.tag, theirs.tag)
    if order == 0:
        return Drift.IN_SYNC  # the same version (a pin beside a tag), content unknown: Git's view
    if order is None:
        return Drift.DIFFERS
    return Drift.BEHIND if order < 0 else Drift.AHEAD
