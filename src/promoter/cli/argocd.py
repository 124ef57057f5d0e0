"""``promoter argocd generate``: an Argo CD Config Management Plugin that adds the hook Job.

Argo CD runs the plugin's ``generate`` command in the application's source directory (the
repository path ``ARGOCD_APP_SOURCE_PATH`` names) and applies whatever it prints. So the command
prints the overlay's manifests exactly as kustomize rendered them, followed by the hook that copies
the managed images those manifests use: nobody keeps an image list by hand.

Two rules follow from being a plugin: standard output holds nothing but Kubernetes objects (every
message goes to standard error), and every failure exits non-zero, because an empty output with
pruning on would make Argo CD delete the application's resources.

Parameters reach a plugin as environment variables that Argo CD prefixes with ``ARGOCD_ENV_``
(``spec.source.plugin.env``), so each option below also reads ``ARGOCD_ENV_PROMOTER_*``, and then
``PROMOTER_*`` from the sidecar's own environment (a default for every Application); an option given
on the command line wins.

A Job that cannot work (no image, no role for ECR), or an image the workloads would pull although the
hook leaves it out (a registry that looks like the environment's own, an unqualified image another
environment's ``images:`` renames), is printed with a warning on standard error, which Argo CD does not
show when the command succeeds: ``--strict``, which the shipped plugin.yaml passes, refuses it instead,
so the Application shows the error before a sync waits on a Pod that never starts or deploys an image
nobody promoted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from promoter.app.runtime import SecretScrubber
from promoter.argocd.plugin import ENV_PREFIX, SETTINGS
from promoter.cli.common import warn
from promoter.cli.exit_codes import EXIT_OK
from promoter.errors import ConfigError

ARGOCD_COMMANDS = ("argocd",)

__all__ = ["ARGOCD_COMMANDS", "ENV_PREFIX", "add_commands", "run_command"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``argocd`` and its subcommand ``generate``."""
    argocd = commands.add_parser(
        "argocd",
        parents=[common],
        help="Argo CD integration (Config Management Plugin)",
        description="Commands Argo CD runs; see docs/argocd.md.",
    )
    subcommands = argocd.add_subparsers(dest="argocd_command", metavar="SUBCOMMAND")
    subcommands.required = True
    generate = subcommands.add_parser(
        "generate",
        parents=[common],
        help="print an overlay's manifests plus the hook Job that copies its images",
        description="Run as a Config Management Plugin's generate command in the application's "
        "source directory: find promoter.yaml there or above, the environment whose overlay is "
        "that directory, render it with kustomize, print the manifests unchanged and append the "
        "Sync-phase hook Job (in a negative wave, its ServiceAccount and settings ConfigMap one "
        "wave earlier) running 'promoter sync --from-registry' for every managed image they use. "
        "Each option can also be given as the plugin variable in brackets: by the Application "
        "(Argo CD passes it as ARGOCD_ENV_<name>) or, for every Application, in the sidecar's "
        "environment as <name>.",
    )
    generate.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="promoter.yaml to use (default: the nearest one in the source directory or above)",
    )
    generate.add_argument(
        "--source-dir",
        type=Path,
        metavar="DIR",
        help="the overlay directory (default: the current directory, where Argo CD runs plugins)",
    )
    generate.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) instead of warning when the Job cannot work as configured (no image, "
        "or no IAM role while it reaches ECR) or the overlay runs an image the Job leaves out "
        "that is most likely a mistake (in a registry that looks like the environment's own; "
        "unqualified, under a name another environment's images: renames)",
    )
    for setting in SETTINGS:
        default = "none" if setting.default is None else setting.default
        generate.add_argument(
            setting.option,
            metavar="VALUE",
            help=f"{setting.help} [{setting.variable}; default {default}]",
        )


def run_command(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Run ``argocd generate`` (the only ``argocd`` subcommand)."""
    del scrub  # nothing secret is loaded: generate reads files and runs kustomize, no registry
    return _generate(args, os.environ)


def _generate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    # Heavy imports here, not at the top: main.py imports this module for every command.
    from promoter.app.hook import generate_plugin_output  # noqa: PLC0415
    from promoter.argocd.plugin import hook_settings, render_budget  # noqa: PLC0415

    given = {
        s.variable: getattr(args, s.option.removeprefix("--").replace("-", "_")) for s in SETTINGS
    }
    settings = hook_settings(given, environ)
    output = generate_plugin_output(
        args.source_dir or Path.cwd(),
        settings,
        render_seconds=render_budget(environ),
        config_path=args.config,
    )
    for note in output.notes:
        warn(note)
    if output.problems and args.strict:
        raise ConfigError(f"{'; '.join(output.problems)} (--strict)")
    for problem in output.problems:
        warn(problem)
    sys.stdout.write(output.text)
    sys.stdout.flush()
    return EXIT_OK
