"""The Config Management Plugin's settings, and what the plugin prints besides the overlay's manifests.

Parameters reach a plugin as environment variables that Argo CD prefixes with ``ARGOCD_ENV_``
(``spec.source.plugin.env``), so each setting has a plugin variable. A value given on the command line
wins, then the Application's ``ARGOCD_ENV_<variable>``, then ``<variable>`` in the sidecar's own
environment (a default for every Application the sidecar renders: Argo CD runs the command with the
sidecar's environment), then the built-in default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from promoter.argocd.hookjob import CONFIG_KEY, HookSettings
from promoter.config.input_files import InputCap, read_regular_text
from promoter.config.locate import read_config_document
from promoter.ecr.hosts import is_ecr_host
from promoter.errors import ConfigError, InputError
from promoter.reference import is_loopback_host
from promoter.version import __version__

#: What Argo CD puts before the name of each user-given plugin variable.
ENV_PREFIX: Final = "ARGOCD_ENV_"
#: The image the hook Job runs when none is given: build it from this repository's Dockerfile
#: and push it where the cluster can pull it, then name it with PROMOTER_IMAGE. No registry
#: serves this name, so generate warns when it is used (and fails with --strict).
DEFAULT_HOOK_IMAGE: Final = f"promoter:{__version__}"
#: The PROMOTER_ROLE_ARN value that asks for no IRSA annotation on purpose: the role comes from an
#: EKS Pod Identity association (or the node), which the manifests do not show.
NO_ROLE: Final = "none"
#: The key of a promoter.yaml registry entry that says its workstation settings (a loopback
#: ``endpoint``, ``insecure``) hold in the cluster too.
IN_CLUSTER_KEY: Final = "inCluster"
#: A CA file copied into the hook's ConfigMap (whose whole data Kubernetes caps at 1 MiB).
CA_FILE_CAP: Final = InputCap(
    "a CA file for the hook Job", 256 * 1024, "keep only the certificates that sign the registry's"
)
_PEM_CERTIFICATE: Final = "-----BEGIN CERTIFICATE-----"
#: The start of any PEM block (RFC 7468), with its label: ``CERTIFICATE``, ``PRIVATE KEY``, ...
_PEM_BEGIN: Final = re.compile(r"-----BEGIN ([^-\r\n]*)-----")
#: A whole certificate block, from its BEGIN line to its END line.
_PEM_CERTIFICATE_BLOCK: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----"
)

#: Argo CD's own limits for a plugin command: ``ARGOCD_EXEC_TIMEOUT`` (90 s by default) on the
#: sidecar, and the repo-server request timeout (``controller.repo.server.timeout.seconds``, 60 s by
#: default) that the sidecar cannot see. Without ``ARGOCD_EXEC_TIMEOUT`` the smaller one holds.
ARGOCD_DEFAULT_BUDGET: Final = 60.0
#: Seconds of a plugin command's budget kept for what is not rendering: starting Python, reading
#: promoter.yaml, parsing the manifests and printing them.
RENDER_RESERVE: Final = 10.0
_GO_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


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
        "emit the ServiceAccount, an ordinary resource one wave before the Job (true/false)",
    ),
    Setting(
        "--role-arn",
        "PROMOTER_ROLE_ARN",
        None,
        "IAM role for IRSA: the ServiceAccount's eks.amazonaws.com/role-arn annotation, or "
        f"'{NO_ROLE}' when an EKS Pod Identity association gives the ServiceAccount its role",
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


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """The Job settings, and which of them nobody gave (their built-in default applies).

    Attributes:
        hook: the settings the Job is built with.
        unset: the plugin variables given neither as an option, nor by the Application, nor in the
            sidecar's environment.
    """

    hook: HookSettings
    unset: frozenset[str]


@dataclass(frozen=True, slots=True)
class HookConfig:
    """What the hook's ConfigMap carries, and what was left out of it.

    Attributes:
        files: ConfigMap key -> text: :data:`~promoter.argocd.hookjob.CONFIG_KEY` (promoter.yaml's
            ``registries`` for the cluster) and each CA file it names, under the name its
            ``caFile`` now says (a path relative to the mounted promoter.yaml); empty when no
            setting is left for the cluster.
        notes: one line for each workstation setting left out.
    """

    files: dict[str, str]
    notes: tuple[str, ...]


def hook_settings(given: Mapping[str, str | None], environ: Mapping[str, str]) -> PluginSettings:
    """The Job settings: the value given (by plugin variable name), else the Application's
    ``ARGOCD_ENV_<variable>``, else the sidecar's ``<variable>``, else the default.

    Raises:
        InputError: a value is empty or not of its kind; the message names the variable.
    """
    values: dict[str, str | None] = {}
    unset: set[str] = set()
    for setting in SETTINGS:
        value = given.get(setting.variable)
        if value is None:  # an empty variable is no value, as Argo CD's UI leaves them
            value = (
                environ.get(ENV_PREFIX + setting.variable) or environ.get(setting.variable) or None
            )
        if value is None:
            unset.add(setting.variable)
            value = setting.default
        values[setting.variable] = value

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
    role = (values["PROMOTER_ROLE_ARN"] or "").strip()
    try:
        hook = HookSettings(
            image=text("PROMOTER_IMAGE"),
            pull_policy=text("PROMOTER_PULL_POLICY"),
            service_account=text("PROMOTER_SERVICE_ACCOUNT"),
            create_service_account=create == "true",
            role_arn=None if role.lower() in {"", NO_ROLE} else role,
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
    return PluginSettings(hook, frozenset(unset))


def hook_problems(settings: PluginSettings, registries: Iterable[str]) -> list[str]:
    """What keeps the hook Job from working as configured: one line each, naming the setting to give.

    - no image: :data:`DEFAULT_HOOK_IMAGE` is a local build's name that no registry serves, so the
      Pod would never start and the sync would wait out the Job's deadline;
    - no role while the Job reaches ECR (``registries``: the source and destination hosts) with a
      ServiceAccount it creates itself: the Pod would get no AWS credentials. ``none`` says the
      role comes from elsewhere (an EKS Pod Identity association).
    """
    problems: list[str] = []
    hook = settings.hook
    if hook.image == DEFAULT_HOOK_IMAGE:
        problems.append(
            f"no hook image configured: the Job would run {DEFAULT_HOOK_IMAGE}, which no registry "
            "serves; set PROMOTER_IMAGE in the Application's plugin env or on the promoter-cmp "
            "sidecar"
        )
    ecr = sorted({r for r in registries if is_ecr_host(r)})
    if "PROMOTER_ROLE_ARN" in settings.unset and hook.create_service_account and ecr:
        problems.append(
            f"no IAM role configured for ServiceAccount {hook.service_account}: the Job would "
            f"reach {', '.join(ecr)} without AWS credentials; set PROMOTER_ROLE_ARN to the role's "
            "ARN (IRSA) in the Application's plugin env or on the promoter-cmp sidecar, or to "
            f"'{NO_ROLE}' when an EKS Pod Identity association gives the ServiceAccount its role"
        )
    return problems


def hook_config(path: Path) -> HookConfig:
    """promoter.yaml's ``registries`` as the hook Job in the cluster needs them: ``files`` empty when
    none is left (then the Job gets no ConfigMap), ``notes`` naming every setting left out either way.

    A workstation's settings stay out unless the entry is marked ``inCluster: true``: an
    ``endpoint`` on a loopback address (in a pod that is the pod itself) and ``insecure: true``.
    Endpoints elsewhere, ECR settings and CA files are copied; each ``caFile``'s certificates travel
    in the ConfigMap beside promoter.yaml, renamed to its key there, so the Job reads them from the
    mounted folder exactly as the workstation reads the file from the repository.

    The file is read as every reader reads it (:func:`~promoter.config.locate.read_config_document`:
    capped, no aliases), so what the Job gets cannot grow beyond what the file spells out. The caller
    has validated it (:func:`~promoter.config.load.load_config`).

    Raises:
        ConfigError: the file cannot be read, or a ``caFile`` is missing, outside the folder of
            promoter.yaml, no regular file, over :data:`CA_FILE_CAP`, holds no PEM certificate,
            or holds a PEM block of another kind (a private key).
    """
    import yaml  # noqa: PLC0415 - generate only

    document = read_config_document(path) or {}
    registries = document.get("registries") if isinstance(document, dict) else None
    if not isinstance(registries, dict):
        return HookConfig({}, ())
    kept: dict[str, Any] = {}
    files: dict[str, str] = {}
    notes: list[str] = []
    for host, entry in registries.items():
        if not isinstance(entry, dict):
            continue
        marked = entry.pop(IN_CLUSTER_KEY, False) is True
        where = f"registries.{host}"
        mark = f"mark the entry {IN_CLUSTER_KEY}: true to copy it into the cluster"
        endpoint = entry.get("endpoint")
        if not marked and isinstance(endpoint, str) and _is_loopback_url(endpoint):
            del entry["endpoint"]
            notes.append(f"{where}.endpoint {endpoint} is this machine's address: left out; {mark}")
        if not marked and entry.get("insecure") is True:
            del entry["insecure"]
            notes.append(f"{where}.insecure: true is a workstation setting: left out; {mark}")
        ca_file = entry.get("caFile")
        if isinstance(ca_file, str):
            key = _ca_key(host)
            files[key] = _read_ca_file(path, ca_file, f"{path}: {where}.caFile")
            entry["caFile"] = key
        if entry:
            kept[host] = entry
    if not kept:  # the notes still say what was left out: the cluster gets no settings at all
        return HookConfig({}, tuple(notes))
    text = yaml.safe_dump({"registries": kept}, sort_keys=False)
    return HookConfig({CONFIG_KEY: text, **files}, tuple(notes))


def _is_loopback_url(url: str) -> bool:
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return False
    return is_loopback_host(netloc.rpartition("@")[2])


def _ca_key(host: str) -> str:
    """The ConfigMap key of a registry's CA file: a valid key (``[-._a-zA-Z0-9]+``) naming the host."""
    return "ca-" + re.sub(r"[^-._a-zA-Z0-9]", "_", host) + ".pem"


def _read_ca_file(config_path: Path, name: str, where: str) -> str:
    """The certificates of a ``caFile``, which must be a file in the folder of promoter.yaml or
    below and hold PEM certificates and nothing else of PEM's.

    Argo CD runs the plugin in its repo-server, whose own files (its ServiceAccount token among them)
    must never end up in an application's ConfigMap: the path is resolved, symbolic links followed,
    before it is checked. A PEM block of any other kind (a ``PRIVATE KEY`` above all, committed
    beside the certificate by mistake) is refused rather than copied into a ConfigMap that anyone
    who can read the application's namespace reads; of the rest only the certificate blocks are
    carried (text around them, such as ``openssl x509 -text`` output, stays behind).

    Raises:
        ConfigError: as :func:`hook_config` says.
    """
    folder = config_path.absolute().parent.resolve()
    resolved = (folder / name).resolve()
    if not resolved.is_relative_to(folder):
        raise ConfigError(
            f"{where}: {name} is outside {folder}; the hook Job only gets CA files kept beside "
            "promoter.yaml"
        )
    if not resolved.exists():
        raise ConfigError(f"{where}: {name}: no such file; commit the CA file beside promoter.yaml")
    text = read_regular_text(resolved, name=f"{where} {name}", cap=CA_FILE_CAP)
    others = sorted({label for label in _PEM_BEGIN.findall(text) if label != "CERTIFICATE"})
    if others:
        raise ConfigError(
            f"{where}: {name} holds a {' and a '.join(others)} block besides certificates; only "
            "CA certificates may go into the hook's ConfigMap: keep the file to certificates "
            "(and a key out of Git)"
        )
    certificates = _PEM_CERTIFICATE_BLOCK.findall(text)
    if not certificates:
        raise ConfigError(f"{where}: {name} holds no PEM certificate ({_PEM_CERTIFICATE})")
    if len(certificates) != text.count(_PEM_CERTIFICATE):
        raise ConfigError(
            f"{where}: {name} has a certificate block without its END line, or with text "
            "inside it that is not base64"
        )
    return "\n".join(certificates) + "\n"


def render_budget(environ: Mapping[str, str]) -> float:
    """Seconds ``generate`` may spend rendering overlays, so that Argo CD hears promoter's own error
    rather than killing the command: the plugin's budget (``ARGOCD_EXEC_TIMEOUT`` when the sidecar
    sets one, else :data:`ARGOCD_DEFAULT_BUDGET`) less :data:`RENDER_RESERVE`, and never more than
    half of it gone to the reserve. A value Argo CD cannot parse is one it ignores: so does this.
    """
    budget = _go_duration(environ.get("ARGOCD_EXEC_TIMEOUT", "").strip()) or ARGOCD_DEFAULT_BUDGET
    return max(budget - RENDER_RESERVE, budget / 2)


def _go_duration(text: str) -> float | None:
    """Seconds in a positive Go duration (``time.ParseDuration``: ``90s``, ``2m30s``), else None."""
    parts = list(_GO_DURATION_PART.finditer(text))
    if not parts or "".join(m.group(0) for m in parts) != text:
        return None
    seconds = sum(float(m.group(1)) * _GO_DURATION_UNITS[m.group(2)] for m in parts)
    return seconds if seconds > 0 else None


def dump_objects(objects: list[dict[str, Any]]) -> str:
    """The objects as YAML documents, each starting with ``---`` so they follow any output."""
    if not objects:
        return ""
    import yaml  # noqa: PLC0415 - only when there is a hook to print

    return "".join(
        "---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects
    )
