"""promoter: promote container images between registries, digest-exact.

The Python API (the CLI itself calls the same operations)::

    import promoter

    with promoter.Session(config="promoter.yaml") as session:
        result = session.copy("dev.example.com/shop/cart:1.4", "prod.example.com/shop/cart")
        plan = session.plan("production")

    promoter.copy(src, dst)            # one-shot forms open and close a session of their own
    promoter.digest(ref)
    promoter.plan("production", config="promoter.yaml")
    promoter.sync("production", config="promoter.yaml")
    promoter.status(config="promoter.yaml")
    promoter.promote("shop/cart", to="production", config="promoter.yaml",
                     write_back=promoter.WriteBack(branch="promote/cart"))
    promoter.history("production", config="promoter.yaml")

Every error is a :class:`promoter.errors.PromoterError` (the tree is drawn in that module). Names are loaded
on first use, so ``import promoter`` stays cheap for the command line.

Layers, top to bottom (enforced by import-linter, see ``pyproject.toml``): ``cli``; ``app`` (the operations
every front end shares); ``argocd`` and ``gitops``; ``config``; ``planning``; ``ecr``; ``remote`` (registry
operations and the copy engine); ``transport`` (HTTP, TLS, retries, auth flow); ``authn`` (where
credentials come from); ``reference``; ``oci``; ``outcome``, ``deadline``; ``errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promoter.version import __version__

if TYPE_CHECKING:
    from promoter.api import (
        copy,
        copy_batch,
        digest,
        history,
        make_present,
        plan,
        promote,
        status,
        sync,
    )
    from promoter.app.plan import EnvironmentPlan
    from promoter.app.promote import Promotion
    from promoter.app.session import Session, SessionOptions
    from promoter.app.status import StatusCell, StatusMatrix
    from promoter.app.sync import SyncReport
    from promoter.app.write_back import WriteBack
    from promoter.deadline import Deadline
    from promoter.errors import DeadlineExceededError, PromoterError
    from promoter.gitops.promotions import PromotionRecord
    from promoter.oci.digest import Digest, parse_digest
    from promoter.oci.referrers import ALL_ATTACHMENTS, NO_ATTACHMENTS, Attachment, AttachmentFilter
    from promoter.outcome import Outcome
    from promoter.planning.execute import SyncRecord
    from promoter.planning.plan import PlanItem, PlanStatus
    from promoter.reference import Reference, parse_reference
    from promoter.remote.copy import CopyAction, CopyResult

#: Each public name and the module it lives in; loaded on first use (PEP 562).
_HOMES = {
    **dict.fromkeys(
        (
            "copy",
            "copy_batch",
            "digest",
            "history",
            "make_present",
            "plan",
            "promote",
            "status",
            "sync",
        ),
        "promoter.api",
    ),
    "WriteBack": "promoter.app.write_back",
    "PromotionRecord": "promoter.gitops.promotions",
    "Session": "promoter.app.session",
    "SessionOptions": "promoter.app.session",
    "EnvironmentPlan": "promoter.app.plan",
    "Promotion": "promoter.app.promote",
    "StatusCell": "promoter.app.status",
    "StatusMatrix": "promoter.app.status",
    "SyncReport": "promoter.app.sync",
    "Deadline": "promoter.deadline",
    "DeadlineExceededError": "promoter.errors",
    "PromoterError": "promoter.errors",
    "Digest": "promoter.oci.digest",
    "parse_digest": "promoter.oci.digest",
    **dict.fromkeys(
        ("ALL_ATTACHMENTS", "NO_ATTACHMENTS", "Attachment", "AttachmentFilter"),
        "promoter.oci.referrers",
    ),
    "Outcome": "promoter.outcome",
    "SyncRecord": "promoter.planning.execute",
    "PlanItem": "promoter.planning.plan",
    "PlanStatus": "promoter.planning.plan",
    "Reference": "promoter.reference",
    "parse_reference": "promoter.reference",
    "CopyAction": "promoter.remote.copy",
    "CopyResult": "promoter.remote.copy",
}

__all__ = [
    "ALL_ATTACHMENTS",
    "NO_ATTACHMENTS",
    "Attachment",
    "AttachmentFilter",
    "CopyAction",
    "CopyResult",
    "Deadline",
    "DeadlineExceededError",
    "Digest",
    "EnvironmentPlan",
    "Outcome",
    "PlanItem",
    "PlanStatus",
    "PromoterError",
    "Promotion",
    "PromotionRecord",
    "Reference",
    "Session",
    "SessionOptions",
    "StatusCell",
    "StatusMatrix",
    "SyncRecord",
    "SyncReport",
    "WriteBack",
    "__version__",
    "copy",
    "copy_batch",
    "digest",
    "history",
    "make_present",
    "parse_digest",
    "parse_reference",
    "plan",
    "promote",
    "status",
    "sync",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its home on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'promoter' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only when a public name is first asked for

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not, for completion and ``help(promoter)``."""
    return sorted(__all__)
