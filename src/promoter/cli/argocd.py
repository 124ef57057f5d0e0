"""``promoter argocd generate``: an Argo CD Config Management Plugin that adds the PreSync hook.

Argo CD runs the plugin's ``generate`` command in the application's source directory (the
repository path ``ARGOCD_APP_SOURCE_PATH`` names) and applies whatever it prints. So the command
prints the overlay's manifests exactly as kustomize rendered them, followed by the hook that copies
the managed images those manifests use: nobody keeps an image list by hand.

Two rules follow from being a plugin: standard output holds nothing but Kubernetes objects (every
message goes to standard error), and every failure exits non-zero, because an empty output with
pruning on would make Argo CD delete the application's resources.

Parameters reach a plugin as environment variables that Argo CD prefixes with ``ARGOCD_ENV_``
(``spec.source.plugin.env``), so each option below also reads ``ARGOCD_ENV_PROMOTER_*``; an
option given on the command line wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter import __version__
from promoter.cli.common import EXIT_OK, SecretScrubber, log
from promoter.errors import ConfigError, InputError, InvalidReferenceError

if TYPE_CHECKING:
    from promoter.gitops.discover import FoundImage
    from promoter.gitops.hookjob import HookSettings

ARGOCD_COMMANDS = ("argocd",)

#: What Argo CD puts before the name of each user-given plugin variable.
ENV_PREFIX = "ARGOCD_ENV_"
#: The image the hook Job runs when none is given: build it from this repository's Dockerfile
#: and push it where the cluster can pull it, then name it with --hook-image.
DEFAULT_HOOK_IMAGE = f"promoter:{__version__}"


@dataclass(frozen=True, slots=True)
class _Setting:
    """One Job setting: its option, the plugin variable that can also give it, and its default."""

    option: str
    variable: str
    default: str | None
    help: str


_SETTINGS = (
    _Setting(
        "--hook-image", "PROMOTER_IMAGE", DEFAULT_HOOK_IMAGE, "the promoter image the Job runs"
    ),
    _Setting("--pull-policy", "PROMOTER_PULL_POLICY", "IfNotPresent", "the Job's imagePullPolicy"),
    _Setting(
        "--service-account", "PROMOTER_SERVICE_ACCOUNT", "promoter-hook", "the Job's ServiceAccount"
    ),
    _Setting(
        "--create-service-account",
        "PROMOTER_CREATE_SERVICE_ACCOUNT",
        "true",
        "emit the ServiceAccount as an earlier PreSync hook (true/false)",
    ),
    _Setting(
        "--role-arn",
        "PROMOTER_ROLE_ARN",
        None,
        "IAM role for IRSA: the ServiceAccount's eks.amazonaws.com/role-arn annotation",
    ),
    _Setting("--cpu-request", "PROMOTER_CPU_REQUEST", "100m", "container CPU request"),
    _Setting("--memory-request", "PROMOTER_MEMORY_REQUEST", "128Mi", "container memory request"),
    _Setting("--cpu-limit", "PROMOTER_CPU_LIMIT", "1", "container CPU limit"),
    _Setting("--memory-limit", "PROMOTER_MEMORY_LIMIT", "512Mi", "container memory limit"),
    _Setting(
        "--active-deadline-seconds",
        "PROMOTER_ACTIVE_DEADLINE_SECONDS",
        "600",
        "the Job's time limit in seconds (Argo CD has no hook timeout of its own)",
    ),
    _Setting("--backoff-limit", "PROMOTER_BACKOFF_LIMIT", "1", "retries of a failed pod"),
    _Setting("--sync-wave", "PROMOTER_SYNC_WAVE", "-5", "the Job's sync wave (negative)"),
)


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
        help="print an overlay's manifests plus the PreSync Job that copies its images",
        description="Run as a Config Management Plugin's generate command in the application's "
        "source directory: find promoter.yaml there or above, the environment whose overlay is "
        "that directory, render it with kustomize, print the manifests unchanged and append one "
        "PreSync Job running 'promoter sync --from-registry' for every managed image they use. "
        "Each option can also be given as the plugin variable in brackets (Argo CD passes it as "
        "ARGOCD_ENV_<name>).",
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
    for setting in _SETTINGS:
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
    from promoter.gitops.config import find_config, load_config  # noqa: PLC0415
    from promoter.gitops.discover import discover_images, parse_manifests  # noqa: PLC0415
    from promoter.gitops.render import render_overlay  # noqa: PLC0415

    source_dir = (args.source_dir or Path.cwd()).resolve()
    config = load_config(args.config if args.config is not None else find_config(source_dir))
    environment = config.environment_for_overlay(source_dir)
    if environment is None:
        overlays = ", ".join(f"{e.name}: {e.overlay}" for e in config.environments.values())
        raise ConfigError(
            f"{source_dir} is the overlay of no environment in {config.path} ({overlays})"
        )
    settings = _hook_settings(args, environ)
    # Argo CD gives a plugin command 90 s; stop first, so that our message is the one shown.
    manifests = render_overlay(source_dir, timeout=80)
    documents = parse_manifests(manifests, source=f"kustomize build {source_dir}")
    if not documents:
        # Printing nothing would let Argo CD prune every resource of the application.
        raise ConfigError(f"kustomize build {source_dir} rendered no objects; refusing to go on")
    images = _managed_images(discover_images(documents), environment.registry)
    source = config.source_of(environment.name)
    hook: list[dict[str, Any]] = []
    if source is None:
        log.warning("%s promotes from no environment: no hook added", environment.name)
    elif not images:
        log.warning(
            "%s's manifests use no image of %s: no hook added", source_dir, environment.registry
        )
    else:
        from promoter.gitops.hookjob import hook_objects  # noqa: PLC0415

        hook = hook_objects(
            settings, source.registry, images, registry_settings=_registry_settings(config.path)
        )
    text = manifests if manifests.endswith("\n") else f"{manifests}\n"
    sys.stdout.write(text + _dump(hook))
    sys.stdout.flush()
    return EXIT_OK


def _registry_settings(path: Path) -> str | None:
    """promoter.yaml's ``registries`` section alone, for the Job (None when there is none).

    The Job needs endpoints, ECR roles and repository settings as the repository states them;
    ``caFile`` names a file in the repository that the pod does not have, so it is left out with a
    warning (mount the CA into the image, or use a registry with a public certificate).
    """
    import yaml  # noqa: PLC0415 - generate only

    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    registries = document.get("registries") if isinstance(document, dict) else None
    if not isinstance(registries, dict) or not registries:
        return None
    for host, entry in registries.items():
        if isinstance(entry, dict) and entry.pop("caFile", None) is not None:
            log.warning("registries.%s.caFile is not available to the hook Job; left out", host)
    return yaml.safe_dump({"registries": registries}, sort_keys=False)


def _managed_images(found_images: list[FoundImage], registry: str) -> list[str]:
    """The distinct images of ``registry`` among those found, in first-use order, as written
    (the hook's ``--image`` arguments then read like the manifests)."""
    from promoter.reference import parse_reference  # noqa: PLC0415

    managed: dict[str, None] = {}
    for found in found_images:
        try:
            reference = parse_reference(found.image)
        except InvalidReferenceError as exc:
            raise InputError(
                f"{found.kind}/{found.name} container {found.container}: {exc}"
            ) from exc
        if reference.registry == registry:
            managed.setdefault(found.image, None)
    return list(managed)


def _hook_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> HookSettings:
    """The Job settings: the option, else ``ARGOCD_ENV_<variable>``, else the default."""
    from promoter.gitops.hookjob import HookSettings  # noqa: PLC0415

    values: dict[str, str | None] = {}
    for setting in _SETTINGS:
        given = getattr(args, setting.option.removeprefix("--").replace("-", "_"))
        if given is None:
            given = environ.get(ENV_PREFIX + setting.variable) or setting.default
        values[setting.variable] = given

    def text(variable: str) -> str:
        value = values[variable]
        if value is None or not value.strip():
            raise InputError(f"{variable} must not be empty")
        return value.strip()

    def number(variable: str, *, minimum: int | None = None) -> int:
        try:
            value = int(text(variable))
        except ValueError:
            raise InputError(
                f"{variable}: expected a whole number, got {values[variable]!r}"
            ) from None
        if minimum is not None and value < minimum:
            raise InputError(f"{variable}: expected at least {minimum}, got {value}")
        return value

    create = text("PROMOTER_CREATE_SERVICE_ACCOUNT").lower()
    if create not in {"true", "false"}:
        raise InputError(f"PROMOTER_CREATE_SERVICE_ACCOUNT: expected true or false, got {create!r}")
    try:
        return HookSettings(
            image=text("PROMOTER_IMAGE"),
            pull_policy=text("PROMOTER_PULL_POLICY"),
            service_account=text("PROMOTER_SERVICE_ACCOUNT"),
            create_service_account=create == "true",
            role_arn=(values["PROMOTER_ROLE_ARN"] or "").strip() or None,
            requests={
                "cpu": text("PROMOTER_CPU_REQUEST"),
                "memory": text("PROMOTER_MEMORY_REQUEST"),
            },
            limits={"cpu": text("PROMOTER_CPU_LIMIT"), "memory": text("PROMOTER_MEMORY_LIMIT")},
            active_deadline_seconds=number("PROMOTER_ACTIVE_DEADLINE_SECONDS", minimum=1),
            backoff_limit=number("PROMOTER_BACKOFF_LIMIT", minimum=0),
            sync_wave=number("PROMOTER_SYNC_WAVE"),
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def _dump(objects: list[dict[str, Any]]) -> str:
    """The objects as YAML documents, each starting with ``---`` so they follow any output."""
    if not objects:
        return ""
    import yaml  # noqa: PLC0415 - only when there is a hook to print

    return "".join(
        "---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects
    )
