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
    from promoter.api import copy, digest, plan, promote, status, sync
    from promoter.app.session import Session
    from promoter.deadline import Deadline
    from promoter.outcome import Outcome

__all__ = [
    "Deadline",
    "Outcome",
    "Session",
    "__version__",
    "copy",
    "digest",
    "plan",
    "promote",
    "status",
    "sync",
]

_HOMES = {
    "Session": "promoter.app.session",
    "Deadline": "promoter.deadline",
    "Outcome": "promoter.outcome",
    "copy": "promoter.api",
    "digest": "promoter.api",
    "plan": "promoter.api",
    "promote": "promoter.api",
    "status": "promoter.api",
    "sync": "promoter.api",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its home on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'promoter' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only when a public name is first asked for

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
