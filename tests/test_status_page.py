"""The status page: rendered from constructed matrices (escaping, sections, atomic writes) and
checked in Debian's headless Chromium (DOM, layout at 1280 and 390 px, WCAG AA contrast, no
network)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from devtools.browser import full_page_screenshot, headless_chromium, set_viewport
from devtools.status_page_shot import GENERATED_AT, sample_matrix, sample_promotions
from selenium import webdriver
from selenium.webdriver.common.by import By

from promoter.app.status import CellState, Drift, StatusCell, StatusMatrix
from promoter.errors import ConfigError
from promoter.gitops.promotions import PromotionRecord
from promoter.reference import parse_reference
from promoter.statuspage import NO_PROMOTIONS, STATE_LABELS, render_status_page, write_status_page

HOSTILE_SUBJECT = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'


def _hostile_matrix() -> StatusMatrix:
    """One module whose values try to break out of the page (a subject, an error, a warning)."""
    cell = StatusCell(
        parse_reference("registry.example/team/app:1.0"),
        None,
        Drift.NONE,
        error='refused: <b onmouseover="x()">',
    )
    return StatusMatrix(
        ("dev",),
        ("team/app",),
        MappingProxyType({("dev", "team/app"): cell}),
        warnings=("a warning with </li><script>alert(3)</script>",),
    )


def _record(subject: str) -> PromotionRecord:
    return PromotionRecord(
        environment="dev",
        source="ci",
        module="team/app",
        version="1.0",
        digest=None,
        previous=None,
        commit="0123456789abcdef0123456789abcdef01234567",
        committed_at=datetime(2026, 11, 1, tzinfo=UTC),
        subject=subject,
    )


def test_every_value_is_escaped() -> None:
    """Commit subjects, registry errors and warnings are text on the page, never markup."""
    html = render_status_page(_hostile_matrix(), {"dev": (_record(HOSTILE_SUBJECT),)})
    assert "<script>" not in html
    assert "<img" not in html
    assert "<b " not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; &lt;script&gt;" in html
    assert "&lt;/li&gt;&lt;script&gt;alert(3)" in html


def test_a_merged_or_reverted_promotion_says_so_and_is_dated_by_its_merge() -> None:
    """A promotion merged from a branch shows the merge's date and commit; one a revert undid
    names the revert."""
    merged = replace(
        _record("promote team/app"),
        merged_at=datetime(2026, 11, 5, 12, 0, tzinfo=UTC),
        merge="fedcba9876543210fedcba9876543210fedcba98",
    )
    reverted = replace(_record("promote again"), reverted_by="a" * 40)
    html = render_status_page(sample_matrix(), {"production": (merged, reverted)})
    assert "2026-11-05 12:00 UTC" in html
    assert "merged in fedcba987654" in html
    assert f"reverted by {'a' * 12}" in html


def test_why_a_registry_could_not_be_asked_is_on_the_page() -> None:
    """An unreachable cell's reason is in the page's warnings, not only in a tooltip (a phone or
    a CI artifact has no hover); a shallow clone's note stands above the promotions."""
    html = render_status_page(sample_matrix(), {}, history_note="a shallow clone")
    warnings = html.split('class="warnings"', 1)[1].split("</ul>", 1)[0]
    assert "cannot connect to 222222222222.dkr.ecr.us-east-1.amazonaws.com: timed out" in warnings
    assert "a shallow clone" in html


def test_the_page_names_no_url_and_loads_nothing() -> None:
    """The page has no script, stylesheet link, image, font or URL of any kind."""
    html = render_status_page(sample_matrix(), sample_promotions(), generated_at=GENERATED_AT)
    assert not re.search(r"https?:|//[a-z]|url\(|@import|<script|<link|<img|src=", html)


def test_an_environment_without_promotions_says_how_to_get_them() -> None:
    """A section with no promotion commits says so, and names promote --commit."""
    html = render_status_page(sample_matrix(), {"production": ()})
    assert NO_PROMOTIONS in html
    assert NO_PROMOTIONS == "no promotion commits yet: promote --commit records them"


def test_the_page_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """A write replaces the old page in one rename (readable by others, no temporary file left);
    a folder that does not exist is one ConfigError naming the path."""
    folder = tmp_path / "site"
    folder.mkdir()
    page = folder / "status.html"
    page.write_text("old")
    write_status_page(page, "<!DOCTYPE html><p>new</p>")
    assert page.read_text() == "<!DOCTYPE html><p>new</p>"
    assert page.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in folder.iterdir()] == ["status.html"]
    with pytest.raises(ConfigError, match=r"cannot write the status page .*nowhere.*writable path"):
        write_status_page(folder / "nowhere" / "status.html", "x")
    assert [p.name for p in folder.iterdir()] == ["status.html"]


# -- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module, with a fresh profile."""
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def sample_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample matrix (every state) written as a page."""
    page = tmp_path_factory.mktemp("page") / "status.html"
    write_status_page(
        page, render_status_page(sample_matrix(), sample_promotions(), generated_at=GENERATED_AT)
    )
    return page


@pytest.fixture
def opened(browser: webdriver.Chrome, sample_page: Path) -> webdriver.Chrome:
    """The sample page opened at 1280 x 900."""
    set_viewport(browser, 1280, 900, mobile=False)
    browser.get(sample_page.as_uri())
    return browser


def test_the_matrix_has_a_column_per_environment_and_a_row_per_module(
    opened: webdriver.Chrome,
) -> None:
    """Environments are columns in pipeline order, modules rows; each cell shows its state by
    class and by text, its version and short digest; modules an environment lacks say so."""
    matrix = sample_matrix()
    headers = opened.find_elements(By.CSS_SELECTOR, "thead th[data-environment]")
    assert [h.text for h in headers] == list(matrix.environments)
    rows = opened.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-module") for r in rows] == list(matrix.modules)
    seen = set()
    for row, module in zip(rows, matrix.modules, strict=True):
        assert row.find_element(By.CSS_SELECTOR, "th[scope=row]").text == module
        tds = row.find_elements(By.CSS_SELECTOR, "td")
        assert [td.get_attribute("data-environment") for td in tds] == list(matrix.environments)
        for td, env in zip(tds, matrix.environments, strict=True):
            cell = matrix.cell(env, module)
            if cell is None:
                assert td.text == "not deployed"
                continue
            state = cell.state
            seen.add(state)
            assert f"state-{state}" in (td.get_attribute("class") or "").split()
            label = td.find_element(By.CSS_SELECTOR, ".state").text
            expected = f"from {cell.foreign}" if state is CellState.FOREIGN else STATE_LABELS[state]
            assert label == expected
            assert td.find_element(By.CSS_SELECTOR, ".version").text == cell.reference.tag
            if cell.digest is not None:
                assert td.find_element(By.CSS_SELECTOR, ".digest").text == cell.digest.short
    assert seen == set(CellState)  # the sample shows every state
    catalog = opened.find_element(
        By.CSS_SELECTOR, 'tr[data-module="shop/catalog"] td[data-environment="production"]'
    )
    assert [n.text for n in catalog.find_elements(By.CSS_SELECTOR, ".note")] == ["behind"]
    verdict = opened.find_element(By.CSS_SELECTOR, "[data-verdict]")
    assert verdict.get_attribute("data-verdict") == "incomplete"


def test_the_legend_explains_every_state(opened: webdriver.Chrome) -> None:
    """The legend lists each state once, with its word and its colour."""
    items = opened.find_elements(By.CSS_SELECTOR, ".legend li")
    assert sorted(i.get_attribute("data-state") or "" for i in items) == sorted(CellState)
    for item in items:
        badge = item.find_element(By.CSS_SELECTOR, ".state")
        assert badge.text == STATE_LABELS[CellState(item.get_attribute("data-state"))]


def test_the_last_promotions_are_listed_per_environment(opened: webdriver.Chrome) -> None:
    """Each promoted environment has a section: production's promotions newest first, with
    version, previous version, date, commit and subject; staging says it has none yet."""
    sections = opened.find_elements(By.CSS_SELECTOR, "section.promotions")
    assert [s.get_attribute("data-environment") for s in sections] == ["staging", "production"]
    assert sections[0].find_element(By.CSS_SELECTOR, ".empty").text == NO_PROMOTIONS
    items = sections[1].find_elements(By.CSS_SELECTOR, "li")
    records = sample_promotions()["production"]
    assert [i.get_attribute("data-commit") for i in items] == [r.commit[:12] for r in records]
    first = items[0].text
    assert first.startswith("shop/checkout 1.8.0")
    assert "from 1.7.4" in first
    assert "2026-11-29 06:30 UTC" in first
    assert records[0].subject in first


def _overflow(driver: webdriver.Chrome) -> int:
    """How many CSS pixels the page is wider than its viewport."""
    return int(
        driver.execute_script(
            "const d = document.documentElement; return d.scrollWidth - d.clientWidth;"
        )
    )


@pytest.mark.parametrize(("width", "mobile"), [(1280, False), (390, True)])
def test_no_horizontal_overflow_on_a_desktop_or_a_phone(
    browser: webdriver.Chrome,
    sample_page: Path,
    tmp_path: Path,
    width: int,
    mobile: bool,
) -> None:
    """The page fits 1280 px and a 390 px phone without horizontal scrolling (on the phone each
    module is a card); screenshots of both are taken."""
    set_viewport(browser, width, 844, mobile=mobile)
    browser.get(sample_page.as_uri())
    assert browser.execute_script("return window.innerWidth") == width
    assert _overflow(browser) <= 0
    shot = tmp_path / f"status-{width}.png"
    full_page_screenshot(browser, shot, width, mobile=mobile)
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert _overflow(browser) <= 0


#: For each element with text: its colour and the first opaque background behind it.
_COLOURS_JS = """
const out = [];
const opaque = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (!/rgba\\(.*, 0\\)$/.test(bg) && bg !== 'transparent') return bg;
  }
  return 'rgb(255, 255, 255)';
};
for (const el of document.querySelectorAll(arguments[0])) {
  out.push([el.textContent.trim(), getComputedStyle(el).color, opaque(el),
            el.closest('[data-state]') ? el.closest('[data-state]').dataset.state : '']);
}
return out;
"""


def _rgb(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in re.findall(r"[\d.]+", text)[:3]]
    return values[0], values[1], values[2]


def _luminance(colour: tuple[float, float, float]) -> float:
    """WCAG 2.x relative luminance."""
    channels = []
    for value in colour:
        c = value / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def _contrast(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(_rgb(foreground)), _luminance(_rgb(background))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_state_and_all_text_meet_wcag_aa_contrast(opened: webdriver.Chrome) -> None:
    """Every state's word on its colour, and every other text, has a contrast of at least 4.5:1
    (computed from the browser's styles); the states differ by colour too."""
    badges = opened.execute_script(_COLOURS_JS, ".state")
    states = {state for _, _, _, state in badges}
    assert set(CellState) <= states
    for text, colour, background, state in badges:
        assert _contrast(colour, background) >= 4.5, (text, state, colour, background)
    legend = {state: background for _, _, background, state in badges if state}
    assert (
        len({legend[state] for state in CellState}) >= len(CellState) - 1
    )  # near-white pair aside
    rest = opened.execute_script(
        _COLOURS_JS,
        ".version, .digest, .note, th, td.absent, .meta, .verdict, .legend li > span, "
        ".promotions li, .empty, h1, h2, h3",
    )
    assert rest
    for text, colour, background, _ in rest:
        assert _contrast(colour, background) >= 4.5, (text, colour, background)


def test_nothing_is_fetched_from_anywhere(opened: webdriver.Chrome) -> None:
    """The opened page requested no resource, and no element points at one."""
    assert opened.execute_script("return performance.getEntriesByType('resource').length") == 0
    linked = opened.execute_script(
        "return [...document.querySelectorAll('[src], [href], link, script, img, iframe, object')]"
        ".map(e => e.outerHTML)"
    )
    assert linked == []
