"""Showing plans and sync reports: tables and summaries for people, the wire shapes for ``-o json``.

Nothing here reads promoter.yaml, so the in-cluster sync (the hook Job on every Argo CD sync) loads
neither YAML nor pydantic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from promoter.app.plan import EnvironmentPlan
from promoter.app.runtime import Runtime
from promoter.app.sync import SyncReport, carry_out
from promoter.app.wire import plan_json, sync_json
from promoter.cli.common import (
    as_json,
    attachment_notes,
    describe_attachments,
    error,
    print_table,
    terminal_progress,
    warn,
)
from promoter.cli.exit_codes import exit_code_of
from promoter.errors import ConfigError
from promoter.outcome import Outcome
from promoter.planning.execute import explain
from promoter.planning.plan import PlanItem, PlanStatus
from promoter.remote.copy import CopyAction


def sync_and_print(plan: EnvironmentPlan, args: argparse.Namespace, runtime: Runtime) -> int:
    """``sync``: copy what the plan says (or only show it with ``--dry-run``), report, exit code.

    Exit codes: 0 when every managed image is present afterwards; 1 when a copy failed; 3 when only
    conflicts or missing sources remain (as ``plan``).
    """
    report_path: Path | None = getattr(args, "report", None)
    if getattr(args, "dry_run", False):
        print_plan(plan, as_json(args))
        return exit_code_of(plan.outcome)
    progress = terminal_progress(args)
    display = progress if progress is not None else contextlib.nullcontext()
    with display:
        report = carry_out(runtime, plan, progress=progress, deadline=args.deadline)
    if report_path is not None:
        write_report(report_path, report)
    print_sync(report, as_json(args))
    return exit_code_of(report.outcome)


def print_plan(plan: EnvironmentPlan, json_output: bool) -> None:
    """The plan as a table, or as ``{"environment", "images"[, "hookFile"]}`` JSON.

    The table fits 100 columns for the usual names: the source is shown relative to the image (the
    environment it promotes from, or its registry, when the repository path and tag are the same,
    which is how promotion works). Every
    image that needs a person's attention gets one line below it: a refusal on standard error as
    an error, a divergence or an allowed foreign image as a warning.
    """
    if json_output:
        print(json.dumps(plan_json(plan)))
        return
    registries = {i.destination.registry for i in plan.items if i.destination is not None}
    if len(registries) == 1:
        [registry] = registries
        print(f"{plan.environment}: images in {registry} shown as REPOSITORY:TAG")
    rows = [("STATUS", "IMAGE", "FROM", "DIGEST")]
    for item in plan.items:
        image = item.image
        if item.destination is not None:
            image = str(item.destination)
            if len(registries) == 1:
                image = image.removeprefix(f"{item.destination.registry}/")
        rows.append(
            (str(item.status), image, _relative_source(item, plan.source), _digest_cell(item))
        )
    print_table(rows)
    for item in plan.items:
        if item.status is PlanStatus.ATTACH:
            print(
                f"attach {item.destination}: the destination lacks "
                f"{describe_attachments(item.attachments)} the source has; a sync copies them "
                "(until then a verifying admission policy there may reject the image)"
            )
    said: set[str] = set()
    for item in plan.items:
        text = item.error if item.status is PlanStatus.ERROR else explain(item)
        if text is None or text in said:
            continue  # a registry that cannot be reached says so once, not once per image
        said.add(text)
        if item.outcome is Outcome.DONE:
            warn(text)
        else:
            error(text)
    _warn_left_behind(plan.items)
    counts = {status: sum(1 for i in plan.items if i.status is status) for status in PlanStatus}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"{plan.environment}: {summary or 'no images'}")


def _warn_left_behind(items: Iterable[PlanItem]) -> None:
    """One warning naming the attachment types ``--referrers-type`` leaves out of present images
    (a copied image's own are named with it)."""
    types = sorted({t for item in items for t in item.left_behind})
    if types:
        warn(
            f"attachments of type {', '.join(types)} stayed behind (not in --referrers-type); "
            "images present already are not given them"
        )


def _relative_source(item: PlanItem, environment: str | None) -> str:
    """The source as short as it stays unambiguous: the source ``environment`` (else its registry)
    when the repository path, tag and digest are the destination's; the environment whose registry
    a foreign image is in; ``-`` for none."""
    source, destination = item.source, item.destination
    if item.status is PlanStatus.FOREIGN:
        return item.foreign or "-"
    if source is None or destination is None:
        return "-"
    if (source.repository, source.tag, source.digest) == (
        destination.repository,
        destination.tag,
        destination.digest,
    ):
        return environment or source.registry
    return str(source)


def _digest_cell(item: PlanItem) -> str:
    """The short digest; for a divergence or a conflict, the destination's then the wanted one."""
    if item.digest is None:
        return "-"
    if item.held is not None:
        return f"{item.held.short}!={item.digest.short}"
    if item.differing_attachments:
        return f"{item.digest.short} (.sig differs)"
    return item.digest.short


def write_report(path: Path, report: SyncReport) -> None:
    """``--report FILE``: the sync's JSON, indented, written whole or not at all (a temporary file
    beside it, renamed over it).

    Raises:
        ConfigError: the file cannot be written.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(json.dumps(sync_json(report), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write report {path}: {exc.strerror}") from exc


def print_sync(report: SyncReport, json_output: bool) -> None:
    """Each image's outcome (errors on standard error) and a summary line, or the JSON document."""
    if json_output:
        print(json.dumps(sync_json(report)))
    said: set[str] = set()
    for record in report.records:
        destination = record.item.destination
        for text, show in ((record.warning, warn), (record.error, error)):
            if text is not None and text not in said:  # one unreachable registry: said once
                said.add(text)
                show(text)
        if record.error is not None:
            continue
        result = record.result
        for note in attachment_notes(result) if result is not None else ():
            if note not in said:
                said.add(note)
                warn(note)
        if not json_output and result is not None and result.action is CopyAction.ATTACHED:
            carried = describe_attachments(result.attachments)
            print(f"attached {destination} {result.digest}: {carried} copied")
        elif not json_output and result is not None:
            carried = (
                f" (+ {describe_attachments(result.attachments)})" if result.attachments else ""
            )
            print(f"copied  {record.item.source} -> {destination} {result.digest}{carried}")
        elif not json_output and destination is not None:
            print(f"present {destination}")
    _warn_left_behind(r.item for r in report.records if r.result is None)
    if not json_output:
        # An allowed image of another environment's registry is neither copied nor looked up:
        # counted apart, never as present.
        foreign = sum(1 for r in report.records if r.item.status is PlanStatus.FOREIGN and r.ok)
        present = len(report.records) - report.copied - report.refused - report.failed - foreign
        notes = [f"{report.diverged} diverged"] if report.diverged else []
        if report.attached:
            notes.append(f"{report.attached} given missing attachments")
        more = f" ({', '.join(notes)})" if notes else ""
        allowed = f", {foreign} from other environments (allowed)" if foreign else ""
        print(
            f"{report.environment}: {report.copied} copied, {present} present{more}, "
            f"{report.refused} refused, {report.failed} failed{allowed}"
        )
