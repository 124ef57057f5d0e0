"""The Config Management Plugin's settings, and what the plugin prints besides the overlay's manifests.

Parameters reach a plugin as environment variables that Argo CD prefixes with ``ARGOCD_ENV_``
(``spec.source.plugin.env``), so each setting has a plugin variable; a value given on the command line
wins over it, and the default applies when neither is given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter.argocd.hookjob import HookSettings
from promoter.config.locate import read_config_document
from promoter.errors import InputError
from promoter.version import __version__

log = logging.getLogger(__name__)

#: What Argo CD puts before the name of each user-given plugin variable.
ENV_PREFIX = "ARGOCD_ENV_"
#: The image the hook Job runs when none is given: build it from this repository's Dockerfile
#: and push it where the cluster can pull it, then name it with --hook-image.
DEFAULT_HOOK_IMAGE = f"promoter:{__version__}"


@dataclass(frozen=True, slots=True)
class Setting:
    """One Job setting: its option, the plugin variable that can also give it, and its default."""

    option: str
    variable: str
    default: str | None
    help: str


SETTINGS = (
    Setting(
        "--hook-image", "PROMOTER_IMAGE", DEFAULT_HOOK_IMAGE, "the promoter image the Job runs"
    ),
    Setting("--pull-policy", "PROMOTER_PULL_POLICY", "IfNotPresent", "the Job's imagePullPolicy"),
    Setting(
        "--service-account", "PROMOTER_SERVICE_ACCOUNT", "promoter-hook", "the Job's ServiceAccount"
    ),
    Setting(
        "--create-service-account",
        "PROMOTER_CREATE_SERVICE_ACCOUNT",
        "true",
        "emit the ServiceAccount as an earlier PreSync hook (true/false)",
    ),
    Setting(
        "--role-arn",
        "PROMOTER_ROLE_ARN",
        None,
        "IAM role for IRSA: the ServiceAccount's eks.amazonaws.com/role-arn annotation",
    ),
    Setting("--cpu-request", "PROMOTER_CPU_REQUEST", "100m", "container CPU request"),
    Setting("--memory-request", "PROMOTER_MEMORY_REQUEST", "128Mi", "container memory request"),
    Setting("--cpu-limit", "PROMOTER_CPU_LIMIT", "1", "container CPU limit"),
    Setting("--memory-limit", "PROMOTER_MEMORY_LIMIT", "512Mi", "container memory limit"),
    Setting(
        "--active-deadline-seconds",
        "PROMOTER_ACTIVE_DEADLINE_SECONDS",
        "600",
        "the Job's time limit in seconds (Argo CD has no hook timeout of its own)",
    ),
    Setting("--backoff-limit", "PROMOTER_BACKOFF_LIMIT", "1", "retries of a failed pod"),
    Setting("--sync-wave", "PROMOTER_SYNC_WAVE", "-5", "the Job's sync wave (negative)"),
)


def hook_settings(given: Mapping[str, str | None], environ: Mapping[str, str]) -> HookSettings:
    """The Job settings: the value given (by plugin variable name), else ``ARGOCD_ENV_<variable>``,
    else the default.

    Raises:
        InputError: a value is empty or not of its kind; the message names the variable.
    """
    values: dict[str, str | None] = {}
    for setting in SETTINGS:
        given_value = given.get(setting.variable)
        if given_value is None:
            given_value = environ.get(ENV_PREFIX + setting.variable) or setting.default
        values[setting.variable] = given_value

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


def hook_registry_settings(path: Path) -> str | None:
    """promoter.yaml's ``registries`` section alone, for the Job (None when there is none).

    The Job needs endpoints, ECR roles and repository settings as the repository states them;
    ``caFile`` names a file in the repository that the pod does not have, so it is left out with a
    warning (mount the CA into the image, or use a registry with a public certificate).

    The file is read as every reader reads it (:func:`~promoter.config.locate.read_config_document`:
    capped, no aliases), so what the Job gets cannot grow beyond what the file spells out.

    Raises:
        ConfigError: the file cannot be read or is not acceptable YAML.
    """
    import yaml  # noqa: PLC0415 - generate only

    document = read_config_document(path) or {}
    registries = document.get("registries") if isinstance(document, dict) else None
    if not isinstance(registries, dict) or not registries:
        return None
    for host, entry in registries.items():
        if isinstance(entry, dict) and entry.pop("caFile", None) is not None:
            log.warning("registries.%s.caFile is not available to the hook Job; left out", host)
    return yaml.safe_dump({"registries": registries}, sort_keys=False)


def dump_objects(objects: list[dict[str, Any]]) -> str:
    """The objects as YAML documents, each starting with ``---`` so they follow any output."""
    if not objects:
        return ""
    import yaml  # noqa: PLC0415 - only when there is a hook to print

    return "".join(
        "---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects
    )
