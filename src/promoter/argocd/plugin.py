"""The Config Management Plugin's settings, and what the plugin prints besides the overlay's manifests.

Parameters reach a plugin as environment variables that Argo CD prefixes with ``ARGOCD_ENV_``
(``spec.source.plugin.env``), so each setting has a plugin variable. A value given on the command line
wins, then the Application's ``ARGOCD_ENV_<variable>``, then ``<variable>`` in the sidecar's own
environment (a default for every Application the sidecar renders: Argo CD runs the command with the
sidecar's environment), then the built-in default.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from promoter.argocd.hookjob import (
    CONFIG_KEY,
    INT32_MAX,
    LONGEST_DEADLINE,
    PULL_POLICIES,
    SHORTEST_DEADLINE,
    HookSettings,
    is_dns_subdomain,
    parse_quantity,
)
from promoter.config.input_files import InputCap, read_regular_text
from promoter.config.locate import read_config_document
from promoter.deadline import LONGEST_RUN_TIMEOUT
from promoter.ecr.hosts import is_ecr_host, is_role_arn
from promoter.errors import ConfigError, InputError, InvalidReferenceError
from promoter.reference import is_loopback_host, parse_reference
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

    A blank value (empty, or only spaces) is no value, at every level: the next one applies, as
    Argo CD's UI leaves a variable empty. Every value is checked here, with Kubernetes' rules for
    its field, so that a Job Kubernetes would refuse, or one that could never finish its work, is
    never printed.

    Raises:
        InputError: a value that is not of its kind; one line naming where it came from (the
            option, the Application's variable or the sidecar's), what is allowed and what it got.
    """
    values: dict[str, _Value] = {}
    unset: set[str] = set()
    for setting in SETTINGS:
        value = _first_given(setting, given, environ)
        if value is None:
            unset.add(setting.variable)
            value = _Value(setting.default or "", f"{setting.variable}'s default")
        values[setting.variable] = value

    def number(variable: str, low: int, high: int, allowed: str) -> int:
        value = values[variable]
        try:
            found = int(value.text)
        except ValueError:
            found = None
        if found is None or not low <= found <= high:
            raise InputError(f"{value.source}: expected {allowed}, got {value.text!r}")
        return found

    def quantity(variable: str) -> Decimal:
        value = values[variable]
        found = parse_quantity(value.text)
        if found is None:
            raise InputError(
                f"{value.source}: expected a Kubernetes resource quantity (such as 100m, 0.5, "
                f"128Mi, 1Gi), got {value.text!r}"
            )
        return found

    for resource in ("CPU", "MEMORY"):
        request = quantity(f"PROMOTER_{resource}_REQUEST")
        if request > quantity(f"PROMOTER_{resource}_LIMIT"):
            raise InputError(
                f"{values[f'PROMOTER_{resource}_REQUEST'].source}: "
                f"{values[f'PROMOTER_{resource}_REQUEST'].text} is more than the "
                f"{resource.lower()} limit {values[f'PROMOTER_{resource}_LIMIT'].text} "
                f"({values[f'PROMOTER_{resource}_LIMIT'].source}); Kubernetes refuses such a pod"
            )
    image = values["PROMOTER_IMAGE"]
    try:
        parse_reference(image.text)
    except InvalidReferenceError as exc:
        raise InputError(f"{image.source}: {exc}") from None
    policy = values["PROMOTER_PULL_POLICY"]
    if policy.text not in PULL_POLICIES:
        raise InputError(
            f"{policy.source}: expected {', '.join(PULL_POLICIES)}, got {policy.text!r}"
        )
    account = values["PROMOTER_SERVICE_ACCOUNT"]
    if not is_dns_subdomain(account.text):
        raise InputError(
            f"{account.source}: a ServiceAccount name must be a DNS subdomain (lower-case "
            f"letters, digits, '-' and '.', at most 253), got {account.text!r}"
        )
    create = values["PROMOTER_CREATE_SERVICE_ACCOUNT"]
    if create.text.lower() not in {"true", "false"}:
        raise InputError(f"{create.source}: expected true or false, got {create.text!r}")
    role = values["PROMOTER_ROLE_ARN"]
    if role.text and role.text.lower() != NO_ROLE and not is_role_arn(role.text):
        raise InputError(
            f"{role.source}: expected an IAM role ARN like arn:aws:iam::123456789012:role/name, "
            f"or '{NO_ROLE}', got {role.text!r}"
        )
    hook = HookSettings(
        image=image.text,
        pull_policy=policy.text,
        service_account=account.text,
        create_service_account=create.text.lower() == "true",
        role_arn=None if role.text.lower() in {"", NO_ROLE} else role.text,
        requests={
            "cpu": values["PROMOTER_CPU_REQUEST"].text,
            "memory": values["PROMOTER_MEMORY_REQUEST"].text,
        },
        limits={
            "cpu": values["PROMOTER_CPU_LIMIT"].text,
            "memory": values["PROMOTER_MEMORY_LIMIT"].text,
        },
        active_deadline_seconds=number(
            "PROMOTER_ACTIVE_DEADLINE_SECONDS",
            SHORTEST_DEADLINE,
            LONGEST_DEADLINE,
            f"whole seconds from {SHORTEST_DEADLINE} to {LONGEST_DEADLINE:,} (the Job passes 80 % "
            f"of it to promoter as --timeout, which takes 1 to {LONGEST_RUN_TIMEOUT:,} seconds)",
        ),
        backoff_limit=number(
            "PROMOTER_BACKOFF_LIMIT", 0, INT32_MAX, f"a whole number from 0 to {INT32_MAX:,}"
        ),
        sync_wave=number(
            "PROMOTER_SYNC_WAVE",
            -INT32_MAX,
            -1,
            "a negative whole number: the sync wave must be negative, before the workloads' 0",
        ),
    )
    return PluginSettings(hook, frozenset(unset))


@dataclass(frozen=True, slots=True)
class _Value:
    """A setting's text (stripped) and where it came from, for messages."""

    text: str
    source: str


def _first_given(
    setting: Setting, given: Mapping[str, str | None], environ: Mapping[str, str]
) -> _Value | None:
    """The first non-blank value of a setting: its option, the Application's variable, the
    sidecar's variable; None when all are missing or blank."""
    application = ENV_PREFIX + setting.variable
    for text, source in (
        (given.get(setting.variable), setting.option),
        (environ.get(application), f"{application} (the Application's plugin env)"),
        (environ.get(setting.variable), f"{setting.variable} (the promoter-cmp sidecar's env)"),
    ):
        if text is not None and text.strip():
            return _Value(text.strip(), source)
    return None


def hook_problems(settings: PluginSettings, registries: Iterable[str]) -> list[str]:
    """What keeps the hook Job from working as configured: one line each, naming the setting to give.

    - no image: :data:`DEFAULT_HOOK_IMAGE` is a local build's name that no registry serves, so the
      Pod would never start and the sync would wait out the Job's deadline;
    - no role while the Job reaches ECR (``registries``: the source and destination hosts) with a
      ServiceAccount it creates itself: the Pod would get no AWS credentials. ``none`` says the
      role comes from elsewhere (an EKS Pod Identity association);
    - a role with a ServiceAccount it does not create (the role would be dropped), and the
      namespace's ``default`` ServiceAccount to create (its role would reach every Pod).
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
    if hook.role_arn and not hook.create_service_account:
        problems.append(
            f"PROMOTER_ROLE_ARN is set but PROMOTER_CREATE_SERVICE_ACCOUNT is false: the role is "
            f"written only on a ServiceAccount promoter creates, so it would be dropped; annotate "
            f"your ServiceAccount {hook.service_account} with it yourself and unset the role"
        )
    if hook.create_service_account and hook.service_account == "default":
        problems.append(
            "PROMOTER_SERVICE_ACCOUNT is 'default' with PROMOTER_CREATE_SERVICE_ACCOUNT true: Argo "
            "CD would manage the namespace's default ServiceAccount and give its role to every Pod "
            "of the namespace; name the hook's own ServiceAccount"
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
    for index, block in enumerate(certificates, 1):
        # The label is the file's word; OpenSSL's parse is the proof: other bytes (a key's body
        # in certificate armour) are refused, not carried.
        try:
            ssl.create_default_context().load_verify_locations(cadata=block)
        except ssl.SSLError:
            raise ConfigError(
                f"{where}: {name}: certificate block {index} is no X.509 certificate; only CA "
                "certificates may go into the hook's ConfigMap"
            ) from None
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
