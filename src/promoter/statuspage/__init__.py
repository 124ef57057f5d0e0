"""The status page: one self-contained HTML file of the status matrix and the last promotions.

A front end beside the webhook and the Python API: it renders values the application layer made
(:class:`~promoter.app.status.StatusMatrix`, :class:`~promoter.gitops.promotions.PromotionRecord`)
and talks to nothing, so ``promoter status --html``, the webhook or a small server can all serve it.
"""

from __future__ import annotations

from promoter.statuspage.page import (
    NO_PROMOTIONS,
    STATE_LABELS,
    render_status_page,
    write_status_page,
)

__all__ = ["NO_PROMOTIONS", "STATE_LABELS", "render_status_page", "write_status_page"]
