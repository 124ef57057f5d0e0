"""A realistic status matrix with every cell state, its page, and docs/status-page.png.

``python -m devtools.status_page_shot [--out docs/status-page.png] [--html FILE]`` renders the page
of :func:`sample_matrix` and :func:`sample_promotions` (three environments, eight modules, each
state at least once, a section with promotions and one without) and takes its screenshot in
headless Chromium at 1280 px. The browser tests render the same values.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from devtools.browser import full_page_screenshot, headless_chromium
from promoter.app.status import Drift, StatusCell, StatusMatrix
from promoter.gitops.promotions import PromotionRecord
from promoter.oci.digest import Digest, parse_digest
from promoter.reference import parse_reference
from promoter.statuspage import render_status_page, write_status_page

REGISTRIES = MappingProxyType(
    {
        "dev": "111111111111.dkr.ecr.us-east-1.amazonaws.com",
        "staging": "333333333333.dkr.ecr.us-east-1.amazonaws.com",
        "production": "222222222222.dkr.ecr.us-east-1.amazonaws.com",
    }
)
#: When the sample was "made": fixed, so the screenshot only changes when the page does.
GENERATED_AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def digest_of(text: str) -> Digest:
    """A stable sha256 digest named by ``text``."""
    return parse_digest("sha256:" + hashlib.sha256(text.encode()).hexdigest())


def _cell(
    env: str,
    module: str,
    tag: str,
    drift: Drift = Drift.NONE,
    *,
    content: str | None = None,
    missing: bool = False,
    error: str = "",
    foreign: str | None = None,
    checked: bool = True,
) -> StatusCell:
    registry = REGISTRIES[foreign or env]
    resolved = (
        None if (missing or error or not checked) else digest_of(content or f"{module}:{tag}")
    )
    return StatusCell(
        parse_reference(f"{registry}/{module}:{tag}"),
        resolved,
        drift,
        error,
        foreign,
        checked=checked,
    )


def sample_matrix() -> StatusMatrix:
    """dev -> staging -> production; every :class:`~promoter.app.status.CellState` appears."""
    cells = {
        ("dev", "shop/cart"): _cell("dev", "shop/cart", "2.4.0"),
        ("staging", "shop/cart"): _cell("staging", "shop/cart", "2.4.0", Drift.IN_SYNC),
        ("production", "shop/cart"): _cell("production", "shop/cart", "2.3.1", Drift.BEHIND),
        ("dev", "shop/catalog"): _cell("dev", "shop/catalog", "3.1.0"),
        ("staging", "shop/catalog"): _cell(
            "staging", "shop/catalog", "3.1.0", Drift.DIVERGED, content="catalog rebuilt"
        ),
        ("production", "shop/catalog"): _cell(
            "production", "shop/catalog", "3.0.2", Drift.BEHIND, missing=True
        ),
        ("dev", "shop/checkout"): _cell("dev", "shop/checkout", "1.8.0"),
        ("staging", "shop/checkout"): _cell("staging", "shop/checkout", "1.8.0", Drift.IN_SYNC),
        ("production", "shop/checkout"): _cell(
            "production", "shop/checkout", "1.8.0", Drift.IN_SYNC
        ),
        ("dev", "shop/search"): _cell("dev", "shop/search", "main-3f2a1c"),
        ("staging", "shop/search"): _cell("staging", "shop/search", "0.9.2", Drift.DIFFERS),
        ("production", "shop/search"): _cell("production", "shop/search", "0.9.2", Drift.IN_SYNC),
        ("dev", "shop/payments"): _cell("dev", "shop/payments", "5.2.0"),
        ("staging", "shop/payments"): _cell("staging", "shop/payments", "5.2.1", Drift.AHEAD),
        ("production", "shop/payments"): _cell(
            "production",
            "shop/payments",
            "5.2.1",
            Drift.IN_SYNC,
            error="cannot connect to 222222222222.dkr.ecr.us-east-1.amazonaws.com: timed out",
        ),
        ("dev", "shop/ml"): _cell("dev", "shop/ml", "0.4.0"),
        ("staging", "shop/ml"): _cell("staging", "shop/ml", "0.4.0", Drift.IN_SYNC, foreign="dev"),
        ("dev", "data/connect"): _cell("dev", "data/connect", "7.1.0", checked=False),
        ("production", "shop/ml"): StatusCell(
            parse_reference("ghcr.io/shop/ml:0.3.0"), None, checked=False, external=True
        ),
    }
    return StatusMatrix(
        ("dev", "staging", "production"),
        tuple(sorted({module for _, module in cells})),
        MappingProxyType(cells),
    )


def sample_promotions() -> Mapping[str, tuple[PromotionRecord, ...]]:
    """Production's last promotions, newest first; staging has none yet."""

    def record(module: str, version: str, previous: str, days: int, commit: str) -> PromotionRecord:
        return PromotionRecord(
            environment="production",
            source="staging",
            module=module,
            version=version,
            digest=digest_of(f"{module}:{version}"),
            previous=previous,
            commit=hashlib.sha1(commit.encode()).hexdigest(),  # noqa: S324 - a commit-like name
            committed_at=GENERATED_AT - timedelta(days=days, hours=3),
            subject=f"promote {module} to production: {previous} -> {version}",
        )

    return {
        "staging": (),
        "production": (
            record("shop/checkout", "1.8.0", "1.7.4", 1, "c1"),
            record("shop/search", "0.9.2", "0.9.1", 4, "c2"),
            record("shop/cart", "2.3.1", "2.3.0", 9, "c3"),
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the sample page (``--html``) and its screenshot (``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/status-page.png"))
    parser.add_argument("--html", type=Path, help="also keep the page here")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    html = render_status_page(sample_matrix(), sample_promotions(), generated_at=GENERATED_AT)
    with tempfile.TemporaryDirectory(prefix="status-page-") as work:
        page = args.html or Path(work) / "status.html"
        write_status_page(page, html)
        with headless_chromium(Path(work) / "profile") as driver:
            driver.get(page.resolve().as_uri())
            full_page_screenshot(driver, args.out, args.width, mobile=args.width < 600)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
