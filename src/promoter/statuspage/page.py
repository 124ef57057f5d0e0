"""Render the status matrix as one HTML page, and write it so that no reader sees half of it.

The page is self-contained: its CSS is inline, it has no script, no web font and no image, and it
names no URL, so it opens the same from a CI artifact, a laptop without network or behind a strict
Content-Security-Policy. Every value on it (module names, tags, digests, environment names, commit
subjects) comes from users or registries and is escaped by Jinja2's autoescape.

Shapes: :func:`render_status_page` takes the matrix and, by environment, that environment's
promotions newest first; it returns the page's text. :func:`write_status_page` puts the text at a
path atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

import jinja2

from promoter.app.status import CellState, Drift, StatusCell, StatusMatrix, Verdict
from promoter.errors import ConfigError, one_line
from promoter.gitops.promotions import PromotionRecord

#: What a state says on the page, beside its colour. ``foreign`` names the environment instead.
STATE_LABELS: Final = MappingProxyType(
    {
        CellState.EXTERNAL: "external",
        CellState.MISSING: "missing",
        CellState.DIVERGED: "diverged",
        CellState.BEHIND: "behind",
        CellState.DIFFERS: "differs",
        CellState.UNREACHABLE: "unreachable",
        CellState.FOREIGN: "from ENV",
        CellState.AHEAD: "ahead",
        CellState.IN_SYNC: "in sync",
        CellState.PRESENT: "present",
        CellState.NOT_CHECKED: "not checked",
    }
)

#: The legend's explanation of each state, in the order the legend lists them.
STATE_MEANINGS: Final = MappingProxyType(
    {
        CellState.IN_SYNC: "runs what the environment it promotes from runs",
        CellState.BEHIND: "an older version than its source's (tags ordered as versions)",
        CellState.AHEAD: "a newer version than its source's (a hotfix, or a rollback upstream)",
        CellState.DIFFERS: "another version whose order the tags do not tell",
        CellState.DIVERGED: "the same tag, other content: the source's tag was pushed again",
        CellState.MISSING: "not in the registry the overlay names: it would not pull",
        CellState.EXTERNAL: "deployed from a registry outside promoter.yaml: no promoted image",
        CellState.UNREACHABLE: "its registry could not be asked",
        CellState.NOT_CHECKED: "offline: no registry was asked",
        CellState.FOREIGN: "deployed from environment ENV's registry instead of its own",
        CellState.PRESENT: "in its registry; no source environment to compare with",
    }
)

#: Said in an environment's promotions section when it has none.
NO_PROMOTIONS: Final = "no promotion commits yet: promote --commit records them"

_VERDICTS: Final = MappingProxyType(
    {
        Verdict.IN_SYNC: "Every environment runs what it should.",
        Verdict.DRIFT: "Drift: some environments do not run what they should.",
        Verdict.INCOMPLETE: "Incomplete: a registry could not be asked, so this is not a pass.",
    }
)

_DRIFT_NOTES: Final = MappingProxyType(
    {
        Drift.BEHIND: "behind",
        Drift.AHEAD: "ahead",
        Drift.DIFFERS: "differs",
        Drift.DIVERGED: "diverged",
    }
)


@dataclass(frozen=True, slots=True)
class _CellView:
    """One cell as the template shows it: everything already text."""

    environment: str
    state: str  #: the CellState value: the CSS class and data-state
    label: str
    version: str
    digest: str
    image: str
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _RowView:
    module: str
    cells: tuple[_CellView | None, ...]


@dataclass(frozen=True, slots=True)
class _PromotionView:
    module: str
    version: str
    digest: str
    previous: str
    source: str
    when: str
    commit: str
    subject: str
    note: str


@dataclass(frozen=True, slots=True)
class _SectionView:
    environment: str
    promotions: tuple[_PromotionView, ...]


def _printable(value: object) -> object:
    """A value as the page shows it: text with control and bidirectional-override characters
    written as escapes (:func:`promoter.errors.one_line`), so a commit subject cannot reorder
    what the reader sees; HTML escaping comes after, by autoescape."""
    return one_line(value) if isinstance(value, str) else value


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("promoter.statuspage", "templates"),
    finalize=_printable,
    autoescape=True,  # every value is user or registry controlled
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_status_page(
    matrix: StatusMatrix,
    promotions: Mapping[str, Sequence[PromotionRecord]],
    *,
    generated_at: datetime | None = None,
    title: str = "promoter status",
    history_note: str = "",
) -> str:
    """The page's HTML.

    Args:
        matrix: the status matrix; its environments become columns (in its order, the pipeline's),
            its modules rows.
        promotions: by environment, its promotions newest first; each environment named gets a
            section (in the matrix's order, then any other), one without promotions saying so.
        generated_at: when the matrix was made (now by default), shown on the page.
        title: the page's title and heading.
        history_note: why the promotions could not be read (one line), shown instead of them.

    Returns:
        One HTML document, UTF-8 text with no external reference.
    """
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    rows = tuple(
        _RowView(
            module,
            tuple(
                _cell_view(name, cell) if (cell := matrix.cell(name, module)) else None
                for name in matrix.environments
            ),
        )
        for module in matrix.modules
    )
    order = [name for name in matrix.environments if name in promotions]
    order += [name for name in promotions if name not in matrix.environments]
    sections = tuple(
        _SectionView(name, tuple(_promotion_view(record) for record in promotions[name]))
        for name in order
    )
    legend = tuple(
        (str(state), STATE_LABELS[state], meaning) for state, meaning in STATE_MEANINGS.items()
    )
    return _TEMPLATES.get_template("status.html.j2").render(
        title=title,
        generated=when.strftime("%Y-%m-%d %H:%M UTC"),
        generated_iso=when.isoformat(timespec="seconds"),
        environments=matrix.environments,
        rows=rows,
        verdict=str(matrix.verdict),
        verdict_text=_VERDICTS[matrix.verdict],
        failing=len(matrix.failing()),
        unchecked=len(matrix.unchecked()),
        offline=matrix.offline,
        legend=legend,
        sections=sections,
        history_note=history_note,
        no_promotions=NO_PROMOTIONS,
        # Why a registry could not be asked is on the page itself, not only in a cell's tooltip:
        # a phone or a CI artifact has no hover.
        warnings=(*sorted({c.error for c in matrix.cells.values() if c.error}), *matrix.warnings),
    )


def _cell_view(environment: str, cell: StatusCell) -> _CellView:
    state = cell.state
    label = STATE_LABELS[state]
    if state is CellState.FOREIGN:
        label = f"from {cell.foreign}"
    notes: list[str] = []
    if cell.drift in _DRIFT_NOTES and _DRIFT_NOTES[cell.drift] != str(state):
        notes.append(_DRIFT_NOTES[cell.drift])
    if cell.error and state is not CellState.UNREACHABLE:
        notes.append("registry unreachable")
    if not cell.checked and state not in (CellState.NOT_CHECKED, CellState.EXTERNAL):
        notes.append("not checked")
    if cell.foreign is not None and state is not CellState.FOREIGN:
        notes.append(f"from {cell.foreign}")
    digest = cell.digest
    return _CellView(
        environment=environment,
        state=str(state),
        label=label,
        version=cell.reference.tag or "",
        digest=digest.short if digest is not None else "",
        image=str(cell.reference) + (f" ({cell.error})" if cell.error else ""),
        notes=tuple(notes),
    )


def _promotion_view(record: PromotionRecord) -> _PromotionView:
    return _PromotionView(
        module=record.module,
        version=record.version or "",
        digest=record.digest.short if record.digest is not None else "",
        previous=record.previous or "",
        source=record.source,
        when=record.landed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=record.commit[:12],
        subject=record.subject,
        note=(
            f"reverted by {record.reverted_by[:12]}"
            if record.reverted_by
            else f"merged in {record.merge[:12]}"
            if record.merge
            else ""
        ),
    )


def write_status_page(path: Path, html: str) -> None:
    """Write the page at ``path`` atomically: a temporary file beside it, flushed to disk, then
    renamed over it, so a reader (a web server, a CI artifact upload) sees the old page or the new
    one, never part of one, and a failure leaves no temporary file behind.

    Raises:
        ConfigError: the page cannot be written there (no such folder, not writable, a folder).
    """
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(html)
                stream.flush()
                os.fsync(stream.fileno())
            Path(temporary).chmod(0o644)  # a page to publish, not a secret (mkstemp makes 0600)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(
            f"cannot write the status page {path}: {exc.strerror or exc}; choose a writable path"
        ) from exc
