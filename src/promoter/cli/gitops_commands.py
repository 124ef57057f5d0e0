"""What the GitOps commands print: ``plan``, ``sync``, ``status`` and ``promote``, driven by promoter.yaml.

The work is :mod:`promoter.app`'s; this module loads the configuration, calls it, and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.environment import unmanaged_notes
from promoter.app.plan import EnvironmentPlan, environment_policy, plan_environment
from promoter.app.promote import Promotion, promote, promotion_plan
from promoter.app.runtime import Runtime, SecretScrubber
from promoter.app.status import DRIFT_MARKS, StatusCell, StatusMatrix, Verdict, status_matrix
from promoter.app.sync import LOOKUP_SHARE, SyncReport, carry_out, lookup_deadline
from promoter.app.wire import (
    history_json,
    promotion_json,
    status_json,
    sync_json,
)
from promoter.app.write_back import WriteBack, promotion_history
from promoter.cli.common import (
    as_json,
    attachment_filter,
    build_runtime,
    error,
    print_table,
    terminal_progress,
    warn,
)
from promoter.cli.exit_codes import (
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    exit_code_of,
)
from promoter.cli.gitops import build_option_flags
from promoter.cli.plan_output import print_plan, print_sync, sync_and_print
from promoter.config.load import find_config, load_config
from promoter.config.values import PromoterConfig
from promoter.errors import ConfigError, DeadlineExceededError, InputError, one_line
from promoter.gitops.render import Rendering
from promoter.outcome import Outcome, worst
from promoter.planning.plan import PlanPolicy

if TYPE_CHECKING:
    from promoter.deadline import Deadline
    from promoter.gitops.discover import UnmanagedReference
    from promoter.gitops.promotions import PromotionRecord


def run_command(
    args: argparse.Namespace, scrub: SecretScrubber, early: Rendering | None = None
) -> int:
    """Run one of the GitOps commands; ``early`` is a build of the overlay started before loading.

    With ``-o json``, a command that ends with an error still prints a document on standard output
    (``promoter.cli.main`` does, for every one-document command).
    """
    return _run(args, scrub, early)


def _run(args: argparse.Namespace, scrub: SecretScrubber, early: Rendering | None) -> int:
    config = load_config(args.config if args.config is not None else find_config(Path.cwd()))
    config = config.with_build_options(build_option_flags(args), "--kustomize-build-option")
    for line in config.warnings:
        warn(line)
    if args.command == "history":  # Git only: no registry
        return _history(config, args)
    with build_runtime(args, scrub, registries=config.registries) as runtime:
        if args.command == "plan":
            return _plan(config, args, runtime, early)
        if args.command == "sync":
            return _sync(config, args, runtime, early=early)
        if args.command == "status":
            return _status(config, args, runtime)
        if args.command == "prune":
            return _prune(config, args, runtime)
        return _promote(config, args, runtime)


def _prune(config: PromoterConfig, args: argparse.Namespace, runtime: Runtime) -> int:
    from promoter.app.prune import (  # noqa: PLC0415 - git and YAML: only for prune
        PruneSettings,
        carry_out_prune,
        images_in_use,
        plan_prune_environment,
    )
    from promoter.cli.prune_output import print_prune, print_pruned  # noqa: PLC0415

    in_use: tuple[str, ...] = ()
    if args.in_use is not None:
        in_use = images_in_use(args.in_use)
    settings = PruneSettings(
        keep_history=args.keep_history,
        keep_recent=args.keep_recent,
        keep=tuple(args.keep),
        in_use=in_use,
        max_delete=args.max_delete,
    )
    plan = plan_prune_environment(
        runtime, config, args.environment, settings, deadline=args.deadline
    )
    if not args.confirm or plan.refused:
        print_prune(plan, as_json(args))
        return EXIT_REFUSED if plan.refused else EXIT_OK
    print_prune(plan, json_output=False, dry_run=False, quiet=as_json(args))
    outcome = carry_out_prune(runtime, plan, deadline=args.deadline)
    print_pruned(plan, outcome, as_json(args))
    return EXIT_OK


def _plan(
    config: PromoterConfig, args: argparse.Namespace, runtime: Runtime, early: Rendering | None
) -> int:
    plan = plan_environment(
        runtime,
        config,
        args.environment,
        manifests=args.manifests,
        rendering=early,
        check_hook_file=True,
        deadline=args.deadline,
        policy=_policy(config, args, args.environment),
    )
    print_plan(plan, as_json(args))
    if plan.hook_file is not None and not as_json(args):
        _report_hook_file(config, plan)
    _report_hook_sources(config, plan)
    _warn_plan(config, plan)
    return exit_code_of(plan.outcome)


def _policy(config: PromoterConfig, args: argparse.Namespace, name: str) -> PlanPolicy:
    """The environment's plan policy with ``--fail-on-diverged``, ``--allow-foreign``,
    ``--no-referrers`` and ``--referrers-type``."""
    return environment_policy(
        config.environment(name),
        fail_diverged=getattr(args, "fail_on_diverged", False),
        allow_foreign=getattr(args, "allow_foreign", False),
        attachments=attachment_filter(args),
    )


def _warn_unmanaged(
    config: PromoterConfig, name: str, unmanaged: Sequence[UnmanagedReference]
) -> None:
    """Warn about strings naming environment ``name``'s registry outside image fields: an image
    there would be missing at deploy time although the plan had nothing to copy."""
    for note in unmanaged_notes(config.environment(name), unmanaged):
        warn(note)


def _warn_plan(config: PromoterConfig, plan: EnvironmentPlan) -> None:
    """Every warning of a plan: strings naming the registry outside image fields, and the
    overlay's probable mistakes."""
    _warn_unmanaged(config, plan.environment, plan.unmanaged)
    for line in plan.warnings:
        warn(line)


def _report_hook_sources(config: PromoterConfig, plan: EnvironmentPlan) -> None:
    """Say when the Kustomize component's ConfigMap names another source registry than the
    environment's ``promotesFrom`` one: the hook Job copies from what it names."""
    source = config.source_of(plan.environment)
    for value in plan.hook_sources:
        error(
            f"the promoter-hook ConfigMap's sourceRegistry is {value}, but {plan.environment} "
            f"promotes from {source.name if source else 'nowhere'}"
            f"{f' ({source.registry})' if source else ''}: the hook Job would copy from {value}; "
            "fix the configMapGenerator's sourceRegistry literal"
        )


def _report_hook_file(config: PromoterConfig, plan: EnvironmentPlan) -> None:
    """Say how the Kustomize component's image list differs from what the overlay runs."""
    difference = plan.hook_file
    assert difference is not None  # noqa: S101 - the caller checked
    shown = (
        difference.path.relative_to(config.path.parent)
        if difference.path.is_relative_to(config.path.parent)
        else difference.path
    )
    if difference.missing:
        error(
            f"{shown} lacks {', '.join(difference.missing)}: the hook Job would not copy it; "
            "run promoter promote or add it"
        )
    if difference.elsewhere:
        error(
            f"{shown} lists {', '.join(difference.elsewhere)}, outside {plan.environment}'s "
            "registry: the hook Job would refuse it (foreign-environment, exit 3); remove the line "
            "or run promoter promote"
        )
    rest = [line for line in difference.extra if line not in difference.elsewhere]
    if rest:
        error(
            f"{shown} lists {', '.join(rest)}, which the overlay does not run: the hook Job would "
            "copy it on every sync (and fail when it exists nowhere); run promoter promote or "
            "remove the line"
        )


def _sync(
    config: PromoterConfig,
    args: argparse.Namespace,
    runtime: Runtime,
    *,
    early: Rendering | None = None,
) -> int:
    plan = plan_environment(
        runtime,
        config,
        args.environment,
        manifests=args.manifests,
        rendering=early,
        check_hook_file=True,
        deadline=args.deadline,  # the render may take it all; the copies get what the lookups leave
        policy=_policy(config, args, args.environment),
        lookup_share=LOOKUP_SHARE,
    )
    code = sync_and_print(plan, args, runtime)
    _warn_plan(config, plan)
    if plan.hook_file is not None:
        # The images are present now, but the hook Job's list would miss them on the next Argo CD
        # sync of a new version: as plan does, that is a refusal, not a silent success.
        _report_hook_file(config, plan)
    _report_hook_sources(config, plan)
    if plan.outcome is Outcome.REFUSED and code == EXIT_OK:
        code = EXIT_REFUSED
    return code


def _status(config: PromoterConfig, args: argparse.Namespace, runtime: Runtime) -> int:
    """``status``: the table (or ``-o json``), ``--html FILE`` beside it, and with
    ``--exit-code`` the matrix's verdict as the exit code (:func:`_status_exit_code`)."""
    # With a page to write, the lookups leave part of the run's time to reading Git's history:
    # a registry that hangs makes cells unreachable on the page, not a run with no page.
    lookups = lookup_deadline(args.deadline) if args.html is not None else args.deadline
    matrix = status_matrix(runtime, config, deadline=lookups, offline=args.offline)
    if args.html is not None:  # first: a page that cannot be written is the one document
        _write_status_page(config, args, matrix)
    if as_json(args):
        print(json.dumps(status_json(matrix)))
    else:
        print_table(_status_rows(matrix))
        print(STATUS_LEGEND)
        if matrix.offline:
            print(STATUS_OFFLINE)
    # Git's view is complete even when a registry is not: say which could not be asked.
    for problem in sorted({cell.error for cell in matrix.cells.values() if cell.error}):
        warn(problem)
    for name, unmanaged in matrix.unmanaged.items():
        _warn_unmanaged(config, name, unmanaged)
    for line in matrix.warnings:
        warn(line)
    return _status_exit_code(matrix) if args.exit_code else EXIT_OK


def _status_exit_code(matrix: StatusMatrix) -> int:
    """``status --exit-code``: 0 in sync, 4 on drift, 1 when a registry could not be asked (that
    wins over drift: the check is incomplete, and a gate must not call it mere drift either).
    Says why on standard error in one line."""
    verdict = matrix.verdict
    if verdict is Verdict.IN_SYNC:
        return EXIT_OK
    if verdict is Verdict.INCOMPLETE:
        cells = matrix.unchecked()
        error(
            f"status not checked: {len(cells)} cell(s) whose registry could not be asked "
            f"({_cells_named(matrix, cells)}); a gate does not pass what it could not check"
        )
        return EXIT_FAILED
    cells = matrix.failing()
    remedies = [
        "promote to catch up (promoter promote MODULE --to ENV)",
        "sync ENV for a missing image",
    ]
    if any(matrix.cells[cell].external for cell in cells):
        remedies.append(
            "name the environment's own registry in the images: entry of an external module"
        )
    error(f"drift: {_cells_named(matrix, cells)}; {', or '.join(remedies)}")
    return EXIT_DRIFT


def _cells_named(matrix: StatusMatrix, cells: Sequence[tuple[str, str]], shown: int = 5) -> str:
    """``ENV MODULE STATE, ...``: the first ``shown`` cells, then how many more."""
    named = [f"{env} {module} {matrix.cells[(env, module)].state}" for env, module in cells[:shown]]
    more = len(cells) - shown
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _write_status_page(
    config: PromoterConfig, args: argparse.Namespace, matrix: StatusMatrix
) -> None:
    """``--html FILE``: the page, with each promoted environment's last promotions from Git;
    the path is printed (on standard error with ``-o json``, whose output is one document).
    History that cannot be read (promoter.yaml outside a Git checkout) is said on the page and in
    a warning; the page is written all the same."""
    from promoter.statuspage import (  # noqa: PLC0415 - Jinja2: only for --html
        render_status_page,
        write_status_page,
    )

    promotions: dict[str, tuple[PromotionRecord, ...]] = {}
    history_note = ""
    try:
        promotions, shallow = _recent_promotions(config, matrix, deadline=args.deadline)
    except (ConfigError, DeadlineExceededError) as exc:  # the page stands without them
        history_note = f"promotions not read from Git: {exc}"
        warn(f"the status page lists no promotions: {exc}")
    else:
        if shallow:
            history_note = (
                "this checkout is a shallow clone: older promotions are not in it (git fetch "
                "--unshallow; in CI, a checkout with fetch-depth: 0)"
            )
            warn(f"the status page's promotions may be incomplete: {history_note}")
    page = render_status_page(matrix, promotions, history_note=history_note)
    write_status_page(args.html, page)
    print(f"status page written to {args.html}", file=sys.stderr if as_json(args) else sys.stdout)


#: How many promotions of each environment the status page lists.
PAGE_PROMOTIONS = 5


def _recent_promotions(
    config: PromoterConfig, matrix: StatusMatrix, *, deadline: Deadline | None
) -> tuple[dict[str, tuple[PromotionRecord, ...]], bool]:
    """By environment that promotes from another, in pipeline order: its last
    :data:`PAGE_PROMOTIONS` promotions recorded in Git (``promote --commit``), newest first; and
    whether the checkout is a shallow clone (the lists may be short).

    Raises:
        ConfigError: promoter.yaml is not in a Git checkout, or Git failed.
    """
    logs = {
        name: promotion_history(config, name, limit=PAGE_PROMOTIONS, deadline=deadline)
        for name in matrix.environments
        if config.source_of(name) is not None
    }
    return {name: log.records for name, log in logs.items()}, any(
        log.shallow for log in logs.values()
    )


#: Printed under the status table offline.
STATUS_OFFLINE = (
    "offline: no registry was asked; versions are what the overlays name, drift compares "
    "references and tags (Git's view), presence and content are not checked"
)

#: Printed under the status table.
STATUS_LEGEND = (
    "compared with the environment it promotes from: '<' behind, '>' ahead, '~' another version "
    "(tags not ordered), '!' diverged (same tag, other content); '(missing)' not in its registry; "
    "'(unknown)' its registry could not be asked; '(not checked)' offline, not asked; "
    "'(from ENV)' deployed from ENV's registry; '(external: HOST)' deployed from a registry outside "
    "promoter.yaml; "
    "'-' not deployed from a registry of promoter.yaml (a warning says why, when it looks wrong)"
)


def _status_rows(matrix: StatusMatrix) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("MODULE", *matrix.environments)]
    for module in matrix.modules:
        cells = (matrix.cell(name, module) for name in matrix.environments)
        rows.append((module, *(_cell_text(c) if c is not None else "-" for c in cells)))
    return rows


def _cell_text(cell: StatusCell) -> str:
    version = cell.reference.tag or ""
    digest = cell.digest
    if digest is not None:
        version += f" ({digest.short})" if cell.reference.tag else digest.short
    mark = (
        f" (external: {cell.reference.registry})"
        if cell.external
        else " (unknown)"
        if cell.error
        else " (not checked)"
        if not cell.checked
        else ""
        if cell.present
        else " (missing)"
    )
    if cell.foreign is not None:
        mark += f" (from {cell.foreign})"
    drift = DRIFT_MARKS[cell.drift]
    return (f"{drift} " if drift else "") + version + mark


def _promote(config: PromoterConfig, args: argparse.Namespace, runtime: Runtime) -> int:
    """``promote``: the edit, then (``--sync``) a sync of just the promoted modules.

    With ``-o json`` standard output is one document (:func:`promotion_json`, the sync's under
    ``sync``); notes and warnings go to standard error either way.
    """
    if not args.modules and not args.all and args.push:
        raise InputError(
            f"no module named: {args.push!r} was read as --push's REMOTE; put --push after the "
            "modules, or write --push=REMOTE"
        )
    if args.all == bool(args.modules):
        raise InputError("name the modules to promote, or pass --all (not both)")
    write_back = _write_back(args)
    promotion = promote(
        runtime,
        config,
        args.target,
        args.modules,
        every_module=args.all,
        pin_digest=args.pin_digest,
        verify=not args.no_verify,
        version=args.version,
        dry_run=args.dry_run,
        write_back=write_back,
        deadline=args.deadline,
    )
    for note in promotion.notes:
        print(note, file=sys.stderr)
    if promotion.dry_run:
        print("dry run: nothing was written", file=sys.stderr)
    if promotion.commit is not None:
        print(_commit_line(promotion), file=sys.stderr)
        if promotion.commit.push_error:
            error(promotion.commit.push_error)
    for warning in promotion.warnings:
        warn(warning)
    for refused in promotion.refused:
        error(refused.message(promotion.source, promotion.target))
    document = promotion_json(promotion)
    if not as_json(args):
        sys.stdout.write(promotion.diff)
    outcomes = [promotion.outcome]
    if args.sync:
        report = _sync_promotion(config, args, runtime, promotion)
        document["sync"] = sync_json(report)
        outcomes.append(report.outcome)
    if as_json(args):
        print(json.dumps(document))
    return exit_code_of(worst(outcomes))


def _history(config: PromoterConfig, args: argparse.Namespace) -> int:
    """``history``: the promotions recorded in Git, as a table or one JSON document."""
    log = promotion_history(
        config, args.environment, args.module, limit=args.limit, deadline=args.deadline
    )
    if log.shallow:
        warn(
            "this checkout is a shallow clone: older promotions are not in it (git fetch "
            "--unshallow; in CI, a checkout with fetch-depth: 0)"
        )
    if as_json(args):
        document = {
            "environment": args.environment,
            "promotions": history_json(log.records),
            "shallow": log.shallow,
            "more": log.more,
        }
        print(json.dumps(document))
        return EXIT_OK
    if not log.records:
        print(
            f"no promotion to {args.environment} recorded in Git"
            + (f" for {args.module}" if args.module else "")
            + " (promote --commit records them)",
            file=sys.stderr,
        )
        return EXIT_OK
    print_table(_history_rows(log.records))
    if log.more:
        print(f"(the newest {args.limit}; --limit N shows more)", file=sys.stderr)
    return EXIT_OK


def _history_rows(records: Sequence[PromotionRecord]) -> list[tuple[str, ...]]:
    """The history table: one row per promotion; text from commits escaped and cut."""
    rows: list[tuple[str, ...]] = [
        ("DATE (UTC)", "MODULE", "VERSION", "DIGEST", "PREVIOUS", "FROM", "COMMIT", "NOTE")
    ]
    for record in records:
        note = f"merged in {record.merge[:12]}" if record.merge else ""
        if record.reverted_by:
            note = f"reverted by {record.reverted_by[:12]}"
        rows.append(
            tuple(
                one_line(cell, 72)
                for cell in (
                    record.landed_at.strftime("%Y-%m-%d %H:%M"),
                    record.module,
                    record.version or "-",
                    record.digest.short if record.digest else "-",
                    _short_version(record.previous),
                    record.source or "-",
                    record.commit[:12],
                    note,
                )
            )
        )
    return rows


def _short_version(version: str | None) -> str:
    """A version as the history table shows it: ``tag@sha256:`` and 12 digits of a digest."""
    if not version:
        return "-"
    tag, at, digest = version.rpartition("@") if "@" in version else ("", "", version)
    algorithm, colon, hex_digits = digest.partition(":")
    if not colon:
        return version
    short = f"{algorithm}:{hex_digits[:12]}"
    return f"{tag}@{short}" if at else short


def _unsynced(promotion: Promotion) -> str:
    """The warning for a promotion whose sync did not finish: where the promotion stays, how to
    go on and how to go back."""
    go_on = f"fix what it reports and run promoter sync {promotion.target}"
    made = promotion.commit
    if made is not None and made.created:
        return (
            f"the promotion is committed on branch {made.branch} ({made.commit[:12]}); the sync "
            f"did not finish: {go_on} once it is merged (the hook Job copies it on Argo CD's "
            f"sync too), or delete the branch (git branch -D {made.branch})"
        )
    if made is not None:
        return (
            f"the promotion is committed ({made.commit[:12]}); the sync did not finish: "
            f"{go_on}, or undo it with git revert {made.commit[:12]}"
        )
    files = " ".join(promotion.file_name(e.path) for e in promotion.edits if e.changed)
    return (
        f"the promotion is written and stays in {files} (not committed); the sync did not "
        f"finish: {go_on}, or undo the edit with git checkout -- {files}"
    )


def _write_back(args: argparse.Namespace) -> WriteBack | None:
    """What ``--commit``, ``--branch`` and ``--push`` ask (either of the last two implies the
    first), checked against ``--dry-run``.

    Raises:
        InputError: a write-back or ``--sync`` with ``--dry-run``.
    """
    if args.dry_run and args.sync:
        raise InputError("--dry-run writes nothing and --sync copies: drop one")
    pushing = args.push is not None
    if not (args.commit or args.branch is not None or pushing):
        return None
    if args.dry_run:
        raise InputError("--dry-run writes nothing, so it makes no commit: drop one")
    return WriteBack(branch=args.branch, push=pushing, remote=args.push or None)


def _commit_line(promotion: Promotion) -> str:
    """``committed 1a2b3c4d5e6f on branch B`` with what the checkout did and the push."""
    made = promotion.commit
    assert made is not None  # noqa: S101 - only called with a commit
    where = (
        f"on branch {made.branch}"
        if made.branch
        else "on the detached HEAD (git switch -c NAME keeps it on a branch)"
    )
    line = f"committed {made.commit[:12]} {where}"
    if not made.new:
        line = f"nothing new to commit: {made.branch} is at {made.commit[:12]}"
    if made.created:
        line += f" (the checkout stays as it was: git switch {made.branch} to go there)"
    if made.remote is not None:
        pushed = (made.remote_ref or "").removeprefix("refs/heads/")
        line += f"; pushed to {made.remote}" + (f" as {pushed}" if pushed != made.branch else "")
    return line


def _sync_promotion(
    config: PromoterConfig, args: argparse.Namespace, runtime: Runtime, promotion: Promotion
) -> SyncReport:
    """Copy the promoted modules' images into the target registry, planned from what the
    promotion rendered. A sync that does not finish leaves the overlay edited: say so, naming the
    files, and how to go on or back."""
    done = False
    try:
        plan = promotion_plan(
            runtime, config, promotion, deadline=lookup_deadline(args.deadline)
        )  # the copies get the rest
        progress = terminal_progress(args)
        with progress if progress is not None else contextlib.nullcontext():
            report = carry_out(runtime, plan, progress=progress, deadline=args.deadline)
        if as_json(args):  # the document is printed whole by the caller; errors go here
            for record in report.records:
                if record.error is not None:
                    error(record.error)
        else:
            print_sync(report, json_output=False)
        done = report.outcome is Outcome.DONE
        return report
    finally:
        if not done and promotion.changed:
            warn(_unsynced(promotion))
