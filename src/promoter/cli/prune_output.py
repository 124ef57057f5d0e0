"""``promoter prune``'s output: the plan as a table (deletions first) or as JSON."""

from __future__ import annotations

import json

from promoter.app.prune import PrunePlan
from promoter.app.wire import prune_json
from promoter.cli.common import error, human_size, print_table
from promoter.planning.prune import PruneAction


def print_prune(plan: PrunePlan, json_output: bool, *, dry_run: bool = True) -> None:
    """Every deletion with its reason, the kept tags, then one summary line; a repository over
    ``--max-delete`` on standard error."""
    if json_output:
        print(json.dumps(prune_json(plan, dry_run=dry_run)))
    else:
        rows = [("ACTION", "REPOSITORY", "TAG", "DIGEST", "REASON")]
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
                            entry.reason,
                        )
                    )
        print_table(rows)
    for repository in plan.refused:
        error(
            f"{plan.registry}/{repository.repository}: the plan deletes more than the "
            "--max-delete part of its tags; nothing is deleted there: check the overlays (a "
            "rename?) or raise --max-delete"
        )
    if not json_output:
        deletions = [e for r in plan.repositories for e in r.deletions]
        tags = sum(1 for e in deletions if e.tag)
        size = sum(e.size or 0 for e in deletions if e.tag is None)
        what = "would delete" if dry_run else "deleted"
        print(
            f"{plan.environment} ({plan.registry}, kept for {', '.join(plan.sharing)}): {what} "
            f"{tags} tags and {len(deletions) - tags} manifests in {len(plan.repositories)} "
            f"repositories ({human_size(size)})"
            + ("; a dry run: --confirm deletes" if dry_run else "")
        )
