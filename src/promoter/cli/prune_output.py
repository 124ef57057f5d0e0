"""``promoter prune``'s output: the plan as a table (deletions first) or as JSON."""

from __future__ import annotations

import json

from promoter.app.prune import PruneOutcome, PrunePlan
from promoter.app.wire import prune_json
from promoter.cli.common import error, human_size, print_table, warn
from promoter.oci.referrers import is_attachment_tag
from promoter.planning.prune import PruneAction


def print_prune(
    plan: PrunePlan, json_output: bool, *, dry_run: bool = True, quiet: bool = False
) -> None:
    """Every deletion with its reason, the kept tags, then one summary line; a repository over
    ``--max-delete`` on standard error. ``quiet``: nothing (``--confirm -o json`` prints one
    document, after deleting)."""
    for note in plan.notes:
        warn(note)
    if quiet:
        return
    if json_output:
        print(json.dumps(prune_json(plan, dry_run=dry_run)))
    else:
        rows = [("ACTION", "REPOSITORY", "TAG", "DIGEST", "SIZE", "REASON")]
        for wanted in (PruneAction.DELETE, PruneAction.KEEP):
            for repository in plan.repositories:
                for entry in repository.entries:
                    if entry.action is not wanted or (wanted is PruneAction.KEEP and not entry.tag):
                        continue
                    rows.append(
                        (
                            str(entry.action),
                            repository.repository,
                            entry.tag or "-",
                            entry.digest.short,
                            human_size(entry.size) if entry.size is not None else "-",
                            entry.reason,
                        )
                    )
        print_table(rows)
    for repository in plan.refused:
        images = [e for e in repository.entries if e.tag and not is_attachment_tag(e.tag)]
        going = [e for e in images if e.action is PruneAction.DELETE]
        error(
            f"{plan.registry}/{repository.repository}: the plan deletes {len(going)} of its "
            f"{len(images)} image tags, more than the --max-delete part; nothing at all is deleted: "
            "check the overlays (a rename?) or raise --max-delete"
        )
    if not json_output and dry_run:
        deletions = [e for r in plan.repositories for e in r.deletions]
        tags = sum(1 for e in deletions if e.tag)
        size = sum(e.size or 0 for e in deletions if e.tag is None)
        touched = sum(1 for r in plan.repositories if r.deletions)
        ending = (
            "; stopped at --max-delete: nothing is deleted"
            if plan.refused
            else "; a dry run: --confirm deletes"
        )
        print(
            f"{plan.environment} ({plan.registry}, kept for {', '.join(plan.sharing)}): would "
            f"delete {_count(tags, 'tag')} and {_count(len(deletions) - tags, 'manifest')} in "
            f"{_count(touched, 'repository', 'repositories')} ({human_size(size)} of manifests "
            f"and the blobs only they use){ending}"
        )


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else (many or one + 's')}"


def print_pruned(plan: PrunePlan, outcome: PruneOutcome, json_output: bool) -> None:
    """What ``--confirm`` deleted (and left, with why): one summary line, or the JSON document with
    ``"deleted"`` and ``"skipped"``."""
    if json_output:
        document: dict[str, object] = dict(prune_json(plan, dry_run=False))
        document["deleted"] = [
            {"repository": e.repository, "tag": e.tag, "digest": str(e.digest)}
            for e in outcome.deleted
        ]
        document["skipped"] = [
            {"repository": e.repository, "tag": e.tag, "digest": str(e.digest), "why": why}
            for e, why in outcome.skipped
        ]
        print(json.dumps(document))
        return
    for entry, why in outcome.skipped:
        warn(f"{entry.repository}:{entry.tag or entry.digest}: {why}")
    tags = sum(1 for e in outcome.deleted if e.tag)
    print(
        f"{plan.environment} ({plan.registry}): deleted {_count(tags, 'tag')} and "
        f"{_count(len(outcome.deleted) - tags, 'manifest')}; blobs are freed by the registry's "
        "garbage collection"
    )
