"""One-shot forms of the Python API: each opens a :class:`~promoter.app.session.Session`, runs one
operation and closes it. For several operations, use a session: it keeps connections and tokens.

Timeouts are in seconds for the whole operation; errors are :class:`promoter.errors.PromoterError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.session import ConfigLike, Session

if TYPE_CHECKING:
    from promoter.app.plan import EnvironmentPlan
    from promoter.app.promote import Promotion
    from promoter.app.status import StatusMatrix
    from promoter.app.sync import SyncReport
    from promoter.oci.digest import Digest
    from promoter.reference import Reference
    from promoter.remote.copy import CopyResult


def copy(
    source: str | Reference,
    destination: str | Reference,
    *,
    force: bool = False,
    config: ConfigLike | None = None,
    ca_file: Path | None = None,
    insecure_registries: Iterable[str] = (),
    timeout: float | None = None,
) -> CopyResult:
    """Copy one image digest-exact, every platform (see :meth:`Session.copy`)."""
    with Session(config, ca_file=ca_file, insecure_registries=insecure_registries) as session:
        return session.copy(source, destination, force=force, timeout=timeout)


def digest(
    reference: str | Reference,
    *,
    config: ConfigLike | None = None,
    insecure_registries: Iterable[str] = (),
    timeout: float | None = None,
) -> Digest:
    """The digest a reference resolves to (see :meth:`Session.digest`)."""
    with Session(config, insecure_registries=insecure_registries) as session:
        return session.digest(reference, timeout=timeout)


def plan(
    environment: str,
    *,
    config: ConfigLike | None = None,
    manifests: str | None = None,
    timeout: float | None = None,
) -> EnvironmentPlan:
    """What a sync of ``environment`` would do (see :meth:`Session.plan`); ``config`` defaults to the
    nearest promoter.yaml."""
    with Session(config) as session:
        return session.plan(environment, manifests=manifests, timeout=timeout)


def sync(
    environment: str,
    *,
    config: ConfigLike | None = None,
    manifests: str | None = None,
    modules: Iterable[str] | None = None,
    timeout: float | None = None,
) -> SyncReport:
    """Copy every image ``environment`` needs into its registry (see :meth:`Session.sync`)."""
    with Session(config) as session:
        return session.sync(environment, manifests=manifests, modules=modules, timeout=timeout)


def status(*, config: ConfigLike | None = None, timeout: float | None = None) -> StatusMatrix:
    """Which version of each module every environment runs (see :meth:`Session.status`)."""
    with Session(config) as session:
        return session.status(timeout=timeout)


def promote(
    modules: Sequence[str] = (),
    *,
    to: str,
    config: ConfigLike | None = None,
    every_module: bool = False,
    pin_digest: bool = False,
) -> Promotion:
    """Edit ``to``'s overlay to run what its source runs (see :meth:`Session.promote`)."""
    with Session(config) as session:
        return session.promote(modules, to=to, every_module=every_module, pin_digest=pin_digest)
