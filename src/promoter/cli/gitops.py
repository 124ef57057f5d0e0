"""The GitOps commands' arguments. Their work lives in :mod:`promoter.cli.gitops_commands`, loaded only
when one of them runs: YAML, pydantic and kustomize handling would slow every other command's start
(the hook Job starts the CLI on every sync)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promoter.app.runtime import SecretScrubber
from promoter.cli.common import (
    add_jobs_option,
    add_referrers_options,
    add_requests_option,
    check_output_path,
    int_at_least,
)
from promoter.config.locate import find_config, render_hint
from promoter.errors import ConfigError, InputError
from promoter.gitops.render import Rendering, start_render
from promoter.planning.prune import DEFAULT_KEEP_HISTORY, DEFAULT_MAX_DELETE

GITOPS_COMMANDS = ("plan", "sync", "status", "promote", "prune", "history")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register the GitOps subcommands."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="promoter.yaml to use (default: the nearest one in this folder or above)",
    )

    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument(
        "--fail-on-diverged",
        action="store_true",
        help="refuse (exit 3) an image whose source tag was pushed again after it was promoted, "
        "instead of a warning (promoter.yaml: divergedTags: fail)",
    )
    policy.add_argument(
        "--allow-foreign",
        action="store_true",
        help="allow images of another environment's registry (promoter.yaml: allowImagesFrom)",
    )

    add_referrers_options(policy)

    render = argparse.ArgumentParser(add_help=False)
    render.add_argument(
        "--kustomize-build-option",
        action="append",
        default=[],
        dest="kustomize_build_options",
        metavar="OPTION",
        help="a kustomize build flag added to each environment's kustomizeBuildOptions, as in "
        "Argo CD's kustomize.buildOptions, e.g. '--load-restrictor LoadRestrictionsNone' "
        "(repeatable)",
    )
    render.add_argument(
        "--enable-helm",
        action="store_true",
        help="render helmCharts: (the same as --kustomize-build-option --enable-helm)",
    )

    plan = commands.add_parser(
        "plan",
        parents=[common, config, policy, render],
        help="show what a sync of ENV would do",
        description="Render ENV's overlay, find its images and check each against ENV's registry and "
        "the registry of the environment it promotes from. Exit 3 when anything blocks a sync.",
    )
    plan.add_argument("environment", metavar="ENV")
    add_requests_option(plan)
    plan.add_argument(
        "--manifests",
        metavar="FILE",
        help="use already rendered manifests ('-' for stdin), e.g. from helm template",
    )

    sync = commands.add_parser(
        "sync",
        parents=[common, config, policy, render],
        help="copy every image ENV needs into ENV's registry",
        description="Carry out the plan for ENV: copy every missing image from the environment it "
        "promotes from, all in one run. Exits non-zero if any image could not be made present. "
        "In a cluster, without the Git repository: sync --from-registry SRC_HOST --image DST_REF "
        "makes each DST_REF present by copying the same repository path and tag or digest from "
        "SRC_HOST.",
    )
    sync.add_argument("environment", metavar="ENV", nargs="?")
    sync.add_argument(
        "--from-registry",
        metavar="HOST",
        help="copy from this registry instead of an environment of promoter.yaml",
    )
    sync.add_argument(
        "--image",
        action="append",
        metavar="DST_REF",
        help="with --from-registry: an image to make present (repeatable)",
    )
    sync.add_argument(
        "--images-file",
        action="append",
        type=Path,
        metavar="FILE",
        help="with --from-registry: image references, one per line ('#' comments)",
    )
    sync.add_argument("--manifests", metavar="FILE", help="already rendered manifests ('-': stdin)")
    sync.add_argument("--dry-run", action="store_true", help="only show the plan")
    sync.add_argument(
        "--report", type=Path, metavar="FILE", help="write a JSON record of what was copied"
    )
    add_jobs_option(sync)

    _add_status(commands, [common, config, render])

    prune = commands.add_parser(
        "prune",
        parents=[common, config, render],
        help="delete from ENV's registry what no environment still needs (a dry run by default)",
        description="Plan deleting the tags and manifests of ENV's registry that no environment "
        "deploying from it needs: what every such overlay deploys now and deployed in its last "
        "--keep-history revisions in Git, tags matching --keep, images --in-use, and everything "
        "attached to what is kept. Only repositories an overlay names are looked at. A dry run "
        "unless --confirm; nothing is deleted when an overlay does not render, Git history cannot "
        "be read, or a repository cannot be listed.",
    )
    prune.add_argument("environment", metavar="ENV")
    prune.add_argument(
        "--confirm",
        action="store_true",
        help="delete what the plan lists (without it, only the plan is printed)",
    )
    prune.add_argument(
        "--keep-history",
        type=_history_count,
        default=DEFAULT_KEEP_HISTORY,
        metavar="N",
        help=f"also keep what each overlay deployed in its last N revisions (default "
        f"{DEFAULT_KEEP_HISTORY}, the current one included)",
    )
    prune.add_argument(
        "--keep-recent",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="also keep each repository's N most recently pushed tags (ECR: imagePushedAt)",
    )
    prune.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep tags matching this shell pattern, e.g. 'release-*' (repeatable)",
    )
    prune.add_argument(
        "--in-use",
        metavar="FILE",
        help="keep every image a running Pod uses: the JSON of 'kubectl get pods -A -o json' "
        "('-' for standard input)",
    )
    prune.add_argument(
        "--max-delete",
        type=_fraction,
        default=DEFAULT_MAX_DELETE,
        metavar="FRACTION",
        help=f"stop when a repository would lose more than this part of its tags (default "
        f"{DEFAULT_MAX_DELETE:g})",
    )

    promote = commands.add_parser(
        "promote",
        parents=[common, config, render],
        help="set MODULE's version in ENV's overlay",
        description="Set the tag (or digest) that the source environment runs (or --version) "
        "into the target overlay's kustomization.yaml images: entry, changing nothing else; "
        "prints the diff. The source registry is asked first: a version it lacks is not written "
        "(exit 1); nor is a tag the target's registry holds with other content (exit 3: push a "
        "new tag). Without --commit nothing is committed: review and commit it as with "
        "'kustomize edit set image'.",
    )
    promote.add_argument(
        "modules",
        nargs="*",
        metavar="MODULE",
        help="repository path of a module, e.g. shop/checkout",
    )
    promote.add_argument("--to", required=True, metavar="ENV", dest="target")
    promote.add_argument("--all", action="store_true", help="promote every module")
    promote.add_argument(
        "--pin-digest",
        action="store_true",
        help="write the digest beside the tag (an entry pinned already stays pinned)",
    )
    promote.add_argument(
        "--no-verify",
        action="store_true",
        help="write the version without asking the source registry whether it holds it",
    )
    promote.add_argument(
        "--version",
        metavar="TAG|DIGEST",
        dest="version",
        help="promote this version of the one MODULE named instead of the one the source runs: "
        "one the source registry holds, or the target registry (a rollback to what it ran)",
    )
    promote.add_argument(
        "--dry-run",
        action="store_true",
        help="print the diff and write nothing (the edit is rendered in a temporary copy)",
    )
    promote.add_argument(
        "--sync", action="store_true", help="then copy just those images into the target registry"
    )
    git = promote.add_argument_group("writing back to Git")
    git.add_argument(
        "--commit",
        action="store_true",
        help="commit exactly the edit, with a message naming each module, version and digest "
        "(promoter history reads it back); refused when the files have other changes",
    )
    git.add_argument(
        "--branch",
        metavar="NAME",
        help="commit on this new branch, made from HEAD, leaving the checkout as it is "
        "(implies --commit)",
    )
    git.add_argument(
        "--push",
        nargs="?",
        const="",
        metavar="REMOTE",
        help="push the commit's branch to REMOTE (default: the branch's upstream remote, else "
        "origin; implies --commit)",
    )
    add_jobs_option(promote, shown=False)

    history = commands.add_parser(
        "history",
        parents=[common, config],
        help="list past promotions to ENV from Git",
        description="List the promotions to ENV (of MODULE) recorded by 'promote --commit' in the "
        "Git history of promoter.yaml's checkout, newest first: version, digest, date, commit. "
        "Commits reachable from HEAD are read, those of merged branches included; edits "
        "committed by hand carry no record and are not listed.",
    )
    history.add_argument("environment", metavar="ENV")
    history.add_argument("module", nargs="?", metavar="MODULE", help="only this module")
    history.add_argument(
        "--limit",
        type=_promotion_count,
        default=50,
        metavar="N",
        help="list at most N promotions (default 50)",
    )


def _add_status(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """``status`` and its gate, offline and page options."""
    status = commands.add_parser(
        "status",
        parents=parents,
        help="which version of each module runs where",
        description="One row per managed repository (module), one column per environment in "
        "pipeline order: the tag each overlay asks for, whether that image is in the environment's "
        "registry, and how it compares with the environment it promotes from ('<' behind, '>' "
        "ahead, '~' another version, '!' diverged).",
    )
    add_requests_option(status)
    status.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 4 when an environment is behind, diverged or differs from its source or an "
        "image is missing, 1 when a registry could not be asked (a CI gate); without it, 0",
    )
    status.add_argument(
        "--offline",
        action="store_true",
        help="Git's view only: ask no registry; drift by references and tags",
    )
    status.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML status page to FILE",
    )


def run_command(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Run one of :data:`GITOPS_COMMANDS`.

    plan and sync start rendering their overlay first, so kustomize works while the rest of
    promoter loads; the validated configuration decides afterwards whether that build is used.
    """
    if args.command == "sync":
        _check_sync_outputs(args)
    if args.command == "status" and args.html is not None:
        check_output_path(args.html, "--html", replaces="<!DOCTYPE html")
    if args.command == "sync" and args.from_registry is not None and build_option_flags(args):
        raise InputError(
            "--kustomize-build-option and --enable-helm are for rendering an overlay, and sync "
            "--from-registry renders none; drop them"
        )
    if args.command == "sync" and args.from_registry is not None:
        from promoter.cli.image_sync import run_image_sync  # noqa: PLC0415 - see the docstring

        return run_image_sync(args, scrub)
    if args.command == "sync" and (args.image or args.images_file):
        raise InputError("--image and --images-file go with --from-registry")
    if args.command == "sync" and args.environment is None:
        raise InputError("sync needs ENV, or --from-registry HOST with --image DST_REF")
    early = _start_rendering_early(args)
    try:
        from promoter.cli import gitops_commands  # noqa: PLC0415 - see the module docstring

        return gitops_commands.run_command(args, scrub, early)
    finally:
        if early is not None:
            early.cancel()


def _check_sync_outputs(args: argparse.Namespace) -> None:
    """``sync``'s output options, checked before anything is rendered or copied.

    Raises:
        InputError: ``--report`` with ``--dry-run``.
        ConfigError: ``--report`` names a path that cannot be written.
    """
    report = getattr(args, "report", None)
    if report is None:
        return
    if getattr(args, "dry_run", False):
        raise InputError(
            "--report records what a sync copied, and --dry-run copies nothing; drop one "
            "(-o json prints the plan)"
        )
    check_output_path(report, "--report", replaces="{")


def build_option_flags(args: argparse.Namespace) -> list[str]:
    """The command's ``--kustomize-build-option`` values, and ``--enable-helm`` as one, in the
    order :meth:`~promoter.config.values.PromoterConfig.with_build_options` adds them."""
    given = list(getattr(args, "kustomize_build_options", None) or [])
    return [*given, "--enable-helm"] if getattr(args, "enable_helm", False) else given


def _start_rendering_early(args: argparse.Namespace) -> Rendering | None:
    if args.command not in ("plan", "sync") or getattr(args, "manifests", None):
        return None
    try:
        config = args.config if args.config is not None else find_config(Path.cwd())
        hint = render_hint(config, args.environment, build_option_flags(args))
        if hint is None:
            return None
        overlay, options = hint
        return start_render(overlay, options=options)
    except ConfigError:
        return None  # the real load reports it properly


def _promotion_count(text: str) -> int:
    """Promotions to list: 1 to the most one history read returns."""
    from promoter.gitops.promotions import MOST_PROMOTIONS  # noqa: PLC0415 - git: only for history

    value = int_at_least(1)(text)
    if value > MOST_PROMOTIONS:
        raise argparse.ArgumentTypeError(f"expected at most {MOST_PROMOTIONS}, got {value}")
    return value


def _history_count(text: str) -> int:
    """Revisions of history to keep: 0 to 1000 (each is a render)."""
    from promoter.gitops.history import MOST_REVISIONS  # noqa: PLC0415 - git: only for prune

    value = int_at_least(0)(text)
    if value > MOST_REVISIONS:
        raise argparse.ArgumentTypeError(f"expected at most {MOST_REVISIONS}, got {value}")
    return value


def _fraction(text: str) -> float:
    """A part of a whole: a number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction above 0 and at most 1, got {text!r}")
    return value
