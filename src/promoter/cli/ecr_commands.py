"""``promoter ecr ...``: AWS-side setup for promoting between ECR registries.

``ecr grant-pull`` lets the next environment's account pull from the source registry by merging a
statement into each source repository's policy. The AWS identity running it needs
``ecr:DescribeRepositories``, ``ecr:GetRepositoryPolicy`` and ``ecr:SetRepositoryPolicy`` there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.app.runtime import Runtime, RuntimeSettings, SecretScrubber
from promoter.app.wire import policy_change_json
from promoter.cli.common import as_json
from promoter.cli.exit_codes import EXIT_OK
from promoter.deadline import bounded_by
from promoter.errors import ConfigError, InputError

if TYPE_CHECKING:
    from promoter.config.values import PromoterConfig

ECR_COMMANDS = ("ecr",)


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``ecr`` and its subcommands."""
    ecr = commands.add_parser(
        "ecr", parents=[common], help="ECR setup: repository policies for cross-account pulls"
    )
    actions = ecr.add_subparsers(dest="ecr_command", metavar="ACTION")
    actions.required = True
    grant = actions.add_parser(
        "grant-pull",
        parents=[common],
        help="let another account pull from the source registry's repositories",
        description="Merge a statement allowing DEST_ACCOUNT to pull (ecr:BatchGetImage, "
        "ecr:GetDownloadUrlForLayer, ecr:BatchCheckLayerAvailability, and ecr:ListImages, whose "
        "tag list tells which signatures travel) into the policy of each "
        "repository of the source registry, keeping the policy's other statements. Re-running "
        "changes nothing.",
    )
    grant.add_argument(
        "--account", required=True, metavar="DEST_ACCOUNT", help="the 12-digit account to allow"
    )
    grant.add_argument(
        "--repository",
        action="append",
        default=[],
        metavar="NAME",
        help="a repository to grant on (repeatable; default: every repository of the registry)",
    )
    grant.add_argument(
        "--registry",
        metavar="HOST",
        help="the source ECR registry (default: the only ECR registry in promoter.yaml that "
        "another environment promotes from)",
    )
    grant.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="promoter.yaml for registry settings (default: the nearest one, if any)",
    )
    grant.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resulting policies as JSON, change nothing",
    )


def run_command(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Run ``ecr grant-pull``."""
    from promoter.app.access import grant_pull_access, source_ecr_registry  # noqa: PLC0415

    if not (len(args.account) == 12 and args.account.isdigit()):
        raise InputError(f"--account {args.account!r} is not a 12-digit AWS account id")
    config = _config(args)
    registry = source_ecr_registry(config, args.registry, what="--registry")
    settings = RuntimeSettings(registries=dict(config.registries) if config is not None else {})
    with Runtime(settings, scrubber=scrub) as runtime, bounded_by(args.deadline):
        grant = grant_pull_access(
            runtime, registry, args.account, args.repository, dry_run=args.dry_run
        )
    if args.dry_run or as_json(args):
        document = {
            "registry": registry.host,
            "account": args.account,
            "dryRun": bool(args.dry_run),
            "repositories": [policy_change_json(change) for change in grant.changes],
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    for change in grant.changes:
        verb = "granted  " if change.changed else "unchanged"
        print(f"{verb} {registry.host}/{change.repository}: pull for account {args.account}")
    if not grant.changes:
        print(f"{registry.host} has no repositories")
    return EXIT_OK


def _config(args: argparse.Namespace) -> PromoterConfig | None:
    """promoter.yaml when given or found here or above; grant-pull works without one."""
    from promoter.config.load import find_config, load_config  # noqa: PLC0415 - pydantic

    if args.config is not None:
        return load_config(args.config)
    try:
        path = find_config(Path.cwd())
    except ConfigError:
        return None
    return load_config(path)
