"""The status matrix: which version of each module every environment runs, and who is behind.

One row per module (a repository path managed somewhere), one column per environment in pipeline order.
A cell holds what the overlay asks for, what that resolves to in the environment's registry, and whether
the environment runs other content than the one it promotes from (content compared where both registries
answer, by digest in one algorithm or else by the bytes; references otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

from promoter.app.environment import check_own_registry, environment_images, modules
from promoter.app.runtime import Runtime
from promoter.config.values import PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import InputError, PromoterError
from promoter.oci.digest import Digest
from promoter.reference import Reference
from promoter.remote.repository import lookup_digest, same_content

#: Concurrent lookups for the matrix.
STATUS_LOOKUPS = 16


@dataclass(frozen=True, slots=True)
class StatusCell:
    """One module in one environment.

    Attributes:
        reference: what the environment's overlay asks for.
        resolved: what that resolves to in the environment's registry; None when it is not there
            or the registry could not be asked.
        behind: whether the environment runs other content than the one it promotes from.
        error: why the registry could not be asked (one line, scrubbed); empty when it answered.
    """

    reference: Reference
    resolved: Digest | None
    behind: bool
    error: str = ""

    @property
    def present(self) -> bool | None:
        """Whether the image is in the environment's registry; None when it could not be asked."""
        if self.error:
            return None
        return self.resolved is not None

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
    """

    environments: tuple[str, ...]
    modules: tuple[str, ...]
    cells: Mapping[tuple[str, str], StatusCell]

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


def status_matrix(
    runtime: Runtime, config: PromoterConfig, *, deadline: Deadline | None = None
) -> StatusMatrix:
    """Render every environment, find its modules, and look each version up in its registry.

    The matrix is Git's view first: a registry that cannot be asked (down, refusing, past the
    deadline) leaves its cells with an ``error`` and no digest, and "behind" compares the references
    there; the other cells are complete.

    Raises:
        ConfigError: an overlay cannot be rendered, or deploys no image of its environment's
            registry while its source environment does (a wrong ``registry:``).
    """
    names = list(config.environments)
    images = {
        name: list(environment_images(config.environment(name), deadline=deadline))
        for name in names
    }
    for name in names:
        source = config.source_of(name)
        rendered = images[source.name] if source is not None else []
        check_own_registry(config.environment(name), images[name], source, rendered.__iter__)
    per_env = {name: modules(config.environment(name), images[name]) for name in names}
    all_modules = sorted({module for refs in per_env.values() for module in refs})
    keys = [(n, m) for n in names for m in all_modules if m in per_env[n]]
    with ThreadPoolExecutor(max_workers=STATUS_LOOKUPS, thread_name_prefix="status") as pool:
        futures = {
            key: pool.submit(
                lookup_digest, runtime.transport, per_env[key[0]][key[1]], deadline=deadline
            )
            for key in keys
        }
        resolved: dict[tuple[str, str], Digest | None] = {}
        errors: dict[tuple[str, str], str] = {}
        for key, future in futures.items():
            try:
                resolved[key] = future.result()
            except PromoterError as exc:
                resolved[key] = None
                errors[key] = runtime.scrubber(str(exc))
    cells: dict[tuple[str, str], StatusCell] = {}
    for name, module in keys:
        reference = per_env[name][module]
        source = config.source_of(name)
        behind = False
        if source is not None and module in per_env[source.name]:
            upstream = per_env[source.name][module]
            mine, theirs = resolved[(name, module)], resolved[(source.name, module)]
            # Behind means other content: compare content where both registries answered (digests
            # of one algorithm, else the bytes), the references otherwise (a tag and a pinned
            # digest of the same image are not behind).
            compared: bool | None = None
            if mine is not None and theirs is not None:
                try:
                    compared = not same_content(
                        runtime.transport, reference, mine, theirs, deadline=deadline
                    )
                except PromoterError as exc:
                    errors.setdefault((name, module), runtime.scrubber(str(exc)))
            behind = (
                compared
                if compared is not None
                else (upstream.tag, upstream.digest) != (reference.tag, reference.digest)
            )
        cells[(name, module)] = StatusCell(
            reference, resolved[(name, module)], behind, errors.get((name, module), "")
        )
    return StatusMatrix(tuple(names), tuple(all_modules), MappingProxyType(cells))
