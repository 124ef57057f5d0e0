"""One-shot forms of the Python API: each opens a :class:`~promoter.app.session.Session`, runs one
operation and closes it. For several operations, use a session: it keeps connections and tokens.

Every function takes the session's connection options as keywords (``ca_file``,
``insecure_registries``, ``retries``, ``jobs``, ``requests``, ``progress``: :class:`SessionOptions`) and ``config``
(promoter.yaml, a path or a loaded value). Timeouts are in seconds for the whole operation; errors are
:class:`promoter.errors.PromoterError`, as the matching :class:`Session` method documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Unpack

from promoter.app.session import ConfigLike, Session, SessionOptions

if TYPE_CHECKING:
    from promoter.app.plan import EnvironmentPlan
    from promoter.app.promote import Promotion
    from promoter.app.status import StatusMatrix
    from promoter.app.sync import SyncReport
    from promoter.app.write_back import WriteBack
    from promoter.errors import PromoterError
    from promoter.gitops.promotions import PromotionLog
    from promoter.oci.digest import Digest
    from promoter.reference import Reference
    from promoter.remote.copy import CopyResult


def copy(
    source: str | Reference,
    destination: str | Reference,
    *,
    force: bool = False,
    include_foreign: bool = False,
    config: ConfigLike | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> CopyResult:
    """Copy one image digest-exact, every platform (see :meth:`Session.copy`)."""
    with Session(config, **options) as session:
        return session.copy(
            source, destination, force=force, include_foreign=include_foreign, timeout=timeout
        )


def copy_batch(
    pairs: Sequence[tuple[str, str]],
    *,
    force: bool = False,
    include_foreign: bool = False,
    config: ConfigLike | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> list[CopyResult | PromoterError]:
    """Copy many images in one run; each pair's result or error in its place (see
    :meth:`Session.copy_batch`)."""
    with Session(config, **options) as session:
        return list(
            session.copy_batch(pairs, force=force, include_foreign=include_foreign, timeout=timeout)
        )


def digest(
    reference: str | Reference,
    *,
    config: ConfigLike | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> Digest:
    """The digest a reference resolves to (see :meth:`Session.digest`)."""
    with Session(config, **options) as session:
        return session.digest(reference, timeout=timeout)


def make_present(
    references: str | Iterable[str],
    *,
    from_registry: str,
    config: ConfigLike | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> SyncReport:
    """Make each destination reference present from ``from_registry`` (see
    :meth:`Session.make_present`)."""
    with Session(config, **options) as session:
        return session.make_present(references, from_registry=from_registry, timeout=timeout)


def plan(
    environment: str,
    *,
    config: ConfigLike | None = None,
    manifests: str | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> EnvironmentPlan:
    """What a sync of ``environment`` would do (see :meth:`Session.plan`); ``config`` defaults to the
    nearest promoter.yaml."""
    with Session(config, **options) as session:
        return session.plan(environment, manifests=manifests, timeout=timeout)


def sync(
    environment: str,
    *,
    config: ConfigLike | None = None,
    manifests: str | None = None,
    modules: str | Iterable[str] | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> SyncReport:
    """Copy every image ``environment`` needs into its registry (see :meth:`Session.sync`)."""
    with Session(config, **options) as session:
        return session.sync(environment, manifests=manifests, modules=modules, timeout=timeout)


def status(
    *,
    config: ConfigLike | None = None,
    timeout: float | None = None,
    offline: bool = False,
    **options: Unpack[SessionOptions],
) -> StatusMatrix:
    """Which version of each module every environment runs (see :meth:`Session.status`)."""
    with Session(config, **options) as session:
        return session.status(timeout=timeout, offline=offline)


def promote(
    modules: str | Sequence[str] = (),
    *,
    to: str,
    config: ConfigLike | None = None,
    every_module: bool = False,
    pin_digest: bool = False,
    verify: bool = True,
    version: str | None = None,
    dry_run: bool = False,
    write_back: WriteBack | None = None,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> Promotion:
    """Edit ``to``'s overlay to run what its source runs (see :meth:`Session.promote`)."""
    with Session(config, **options) as session:
        return session.promote(
            modules,
            to=to,
            every_module=every_module,
            pin_digest=pin_digest,
            verify=verify,
            version=version,
            dry_run=dry_run,
            write_back=write_back,
            timeout=timeout,
        )


def history(
    environment: str | None = None,
    module: str | None = None,
    *,
    config: ConfigLike | None = None,
    limit: int = 100,
    timeout: float | None = None,
    **options: Unpack[SessionOptions],
) -> PromotionLog:
    """The promotions recorded in Git, newest first (see :meth:`Session.history`)."""
    with Session(config, **options) as session:
        return session.history(environment, module, limit=limit, timeout=timeout)
