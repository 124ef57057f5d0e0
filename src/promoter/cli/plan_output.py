"""Showing plans and carrying them out: shared by ``plan``/``sync ENV`` and ``sync --from-registry``.

Nothing here reads promoter.yaml, so the in-cluster sync (a PreSync Job on every Argo CD sync)
loads neither YAML nor pydantic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    destination_preparer,
    immutable_note,
    terminal_progress,
)
from promoter.errors import ConfigError
from promoter.promote.plan import PlanItem, PlanStatus, blocks_sync
from promoter.promote.sync import SyncRecord, sync_plan
from promoter.remote.copy import Copier, CopyOptions
from promoter.transport.session import Transport

if TYPE_CHECKING:
    from promoter.gitops.hookfile import HookFileDrift


def as_json(args: argparse.Namespace) -> bool:
    """Whether ``-o json`` was asked for."""
    return getattr(args, "output", "text") == "json"


def plan_exit_code(items: Sequence[PlanItem]) -> int:
    """``plan``'s exit code: 1 if a registry could not be asked, 3 if anything blocks a sync."""
    if any(item.status is PlanStatus.ERROR for item in items):
        return EXIT_FAILED
    return EXIT_REFUSED if blocks_sync(items) else EXIT_OK


def carry_out(
    items: Sequence[PlanItem], args: argparse.Namespace, transport: Transport, label: str
) -> int:
    """``sync``: copy what the plan says (or only show it with ``--dry-run``), report, exit code.

    Exit codes: 0 when every managed image is present afterwards; 1 when a copy failed; 3 when only
    conflicts or missing sources remain (as ``plan``).
    """
    if getattr(args, "dry_run", False):
        print_plan(label, items, as_json(args))
        return plan_exit_code(items)
    progress = terminal_progress(args)
    display = progress if progress is not None else contextlib.nullcontext()
    copier = Copier(
        transport,
        CopyOptions(jobs=args.jobs),
        progress,
        prepare_destination=destination_preparer(transport),
    )
    with copier, display:
        records = [_explain_conflict(record, transport) for record in sync_plan(copier, items)]
    report = getattr(args, "report", None)
    if report is not None:
        write_report(report, label, records)
    print_sync(label, records, as_json(args))
    failed = [r for r in records if not r.ok]
    if not failed:
        return EXIT_OK
    copy_failures = [r for r in failed if r.item.status in (PlanStatus.COPY, PlanStatus.ERROR)]
    return EXIT_FAILED if copy_failures else EXIT_REFUSED


def _explain_conflict(record: SyncRecord, transport: Transport) -> SyncRecord:
    """Say so when a conflicting tag is immutable in its ECR repository: no --force can move it."""
    destination = record.item.destination
    if record.item.status is not PlanStatus.CONFLICT or destination is None or not record.error:
        return record
    note = immutable_note(transport, destination.registry, destination.repository, destination.tag)
    return replace(record, error=record.error + note) if note else record


def print_plan(
    environment: str,
    items: Sequence[PlanItem],
    as_json: bool,
    *,
    hook_file: HookFileDrift | None = None,
) -> None:
    """The plan as a table, or as ``{"environment", "images"[, "hookFile"]}`` JSON."""
    if as_json:
        document: dict[str, object] = {
            "environment": environment,
            "images": [i.to_json() for i in items],
        }
        if hook_file is not None:
            document["hookFile"] = hook_file.to_json()
        print(json.dumps(document))
        return
    rows = [("STATUS", "IMAGE", "SOURCE", "DIGEST")]
    for item in items:
        image = str(item.destination) if item.destination is not None else item.image
        rows.append(
            (
                str(item.status),
                image,
                str(item.source or "-"),
                item.digest.short if item.digest else "-",
            )
        )
    print_table(rows)
    for item in items:
        if item.error is not None:
            print(f"promoter: error: {item.error}", file=sys.stderr)
    counts = {status: sum(1 for i in items if i.status is status) for status in PlanStatus}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"{environment}: {summary or 'no images'}")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def write_report(path: Path, environment: str, records: Sequence[SyncRecord]) -> None:
    document = {"environment": environment, "images": [r.to_json() for r in records]}
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report {path}: {exc.strerror}") from exc


def print_sync(environment: str, records: Sequence[SyncRecord], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"environment": environment, "images": [r.to_json() for r in records]}))
    for record in records:
        destination = record.item.destination
        if record.error is not None:
            print(f"promoter: error: {record.error}", file=sys.stderr)
        elif not as_json and record.result is not None:
            print(f"copied  {record.item.source} -> {destination} {record.result.digest}")
        elif not as_json:
            print(f"present {destination}")
    if not as_json:
        copied = sum(1 for r in records if r.result is not None and r.ok)
        failed = sum(1 for r in records if not r.ok)
        print(
            f"{environment}: {copied} copied, {len(records) - copied - failed} present, "
            f"{failed} failed"
        )
