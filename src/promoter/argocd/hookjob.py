"""The Argo CD hook Job that copies an environment's images before Argo CD applies them.

Pure: builds Kubernetes objects as plain mappings from settings and an image list, does no I/O.
``promoter argocd generate`` appends them to an overlay's rendered manifests; the Helm chart and the
Kustomize component under ``deploy/`` build the same objects by hand, and the tests hold all three
to the same checks.

Why each setting is what it is (see ``docs/argocd.md`` and ``shared/argocd-notes.md``):

- only the Job is a hook. The ServiceAccount and the registry settings ConfigMap are ordinary
  resources of the application: a hook resource is deleted and created again before every Job
  (``BeforeHookCreation``, the default, and ``HookFailed`` after every failed sync), and a
  ServiceAccount created seconds before the Pod races the EKS pod identity webhook, which then
  admits the Pod without AWS credentials.
- ``argocd.argoproj.io/hook: Sync`` in a negative wave, the ServiceAccount and ConfigMap one wave
  earlier. A PreSync Job would run before any ordinary resource exists, so on an application's
  first sync its ServiceAccount would be missing and the Pod never created. Inside the Sync phase
  Argo CD applies wave by wave and waits for each wave's hooks: the ServiceAccount exists when the
  Job starts, and a failed Job fails the sync before the workloads' wave (0) is applied.
- ``hook-delete-policy: BeforeHookCreation``: a failed Job stays for inspection until the next sync
  creates it again. A ``generateName`` Job gets a new name every sync, so Argo CD never finds the
  old one to delete: ``ttlSecondsAfterFinished`` (a day by default) removes finished Jobs instead.
- registry settings from promoter.yaml (``registries``: endpoints, ECR role, repository settings,
  CA files) travel in the ConfigMap, passed to the Job with ``--config``.
- ``generateName`` instead of a name: Argo CD appends about 27 characters (``<rev7>-<phase>-<unix
  time>``), so the prefix is kept well below 63 - 27.
- ``activeDeadlineSeconds`` and ``backoffLimit``: Argo CD has no timeout of its own for a hook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from promoter.deadline import LONGEST_RUN_TIMEOUT

#: The longest suffix Argo CD appends to a hook's ``generateName`` (``<rev7>-<phase>-<unix time>``).
ARGOCD_NAME_SUFFIX: Final = 27
#: Kubernetes' limit for a Job's name (it becomes the ``job-name`` label of its pods).
NAME_LIMIT: Final = 63
#: The annotation EKS's pod identity webhook reads to give a ServiceAccount's pods an IAM role (IRSA).
IRSA_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
#: The sync phase the Job runs in (see the module docstring for why not PreSync).
HOOK_PHASE: Final = "Sync"
#: The user the container image runs as (see the Dockerfile); Kubernetes checks runAsNonRoot with it.
IMAGE_UID: Final = 10001
#: A writable emptyDir for the read-only container, also its HOME; a path in the pod, not here.
SCRATCH_DIR: Final = "/tmp"  # noqa: S108
#: Where the registry settings ConfigMap is mounted in the Job's pod.
CONFIG_DIR: Final = "/etc/promoter"
#: The ConfigMap key (so the file name in :data:`CONFIG_DIR`) of the Job's promoter.yaml.
CONFIG_KEY: Final = "promoter.yaml"
#: The ``activeDeadlineSeconds`` whose :func:`run_timeout` is at least 1 s (0 would mean no limit)
#: and at most :data:`~promoter.deadline.LONGEST_RUN_TIMEOUT` (2 and 1,250,001).
SHORTEST_DEADLINE: Final = (5 + 3) // 4
LONGEST_DEADLINE: Final = (LONGEST_RUN_TIMEOUT * 5 + 4) // 4
#: The container ``imagePullPolicy`` values Kubernetes takes (core/v1 Container).
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
#: Kubernetes' ``int32`` fields (``backoffLimit``); Argo CD reads sync waves into one as well.
INT32_MAX: Final = 2**31 - 1
#: A DNS-1123 subdomain (Kubernetes' ``IsDNS1123Subdomain``): what a ServiceAccount's name must be.
_DNS_SUBDOMAIN: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_DNS_SUBDOMAIN_LENGTH: Final = 253
#: A resource quantity (apimachinery ``resource.Quantity``): a number, then a binary-SI suffix, a
#: decimal-SI suffix or a decimal exponent; no sign here: a request or limit cannot be negative.
_QUANTITY: Final = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]{1,3})?"  # 1e999 is plenty
)
_BINARY_SI: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SI: Final = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


@dataclass(frozen=True, slots=True)
class HookSettings:
    """How the hook Job runs; the defaults are those documented in ``docs/argocd.md``.

    Attributes:
        image: the promoter container image the Job runs.
        pull_policy: the container's imagePullPolicy.
        service_account: the ServiceAccount the Job's pod runs as.
        create_service_account: also emit that ServiceAccount (an ordinary resource one wave
            before the Job).
        role_arn: the IAM role for IRSA, written as the ServiceAccount's annotation when created.
        name: the ``generateName`` prefix of the Job (without the trailing dash), and the prefix
            of the ConfigMap's name.
        requests: container resource requests.
        limits: container resource limits.
        active_deadline_seconds: the Job's time limit; Argo CD has none of its own for hooks.
        backoff_limit: retries of a failed pod.
        sync_wave: the Job's sync wave; negative, so that it runs before the workloads (wave 0).
        ttl_seconds_after_finished: how long a finished Job (and its pod and logs) is kept.
    """

    image: str
    pull_policy: str = "IfNotPresent"
    service_account: str = "promoter-hook"
    create_service_account: bool = True
    role_arn: str | None = None
    name: str = "promoter-hook"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    limits: dict[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "512Mi"})
    active_deadline_seconds: int = 600
    backoff_limit: int = 1
    sync_wave: int = -5
    ttl_seconds_after_finished: int = 86400

    def __post_init__(self) -> None:
        if len(self.name) + 1 + ARGOCD_NAME_SUFFIX > NAME_LIMIT:
            raise ValueError(
                f"hook name {self.name!r} is too long: with Argo CD's suffix it would exceed "
                f"{NAME_LIMIT} characters (keep it at most {NAME_LIMIT - ARGOCD_NAME_SUFFIX - 1})"
            )
        if self.sync_wave >= 0:
            raise ValueError(f"the hook's sync wave must be negative, got {self.sync_wave}")


def hook_objects(
    settings: HookSettings,
    source_registry: str,
    images: Sequence[str],
    *,
    config_files: Mapping[str, str] | None = None,
    fail_on_diverged: bool = False,
) -> list[dict[str, Any]]:
    """The ServiceAccount (when it is to be created) and the settings ConfigMap (when there are
    settings), both ordinary resources one wave before the Job, and the hook Job for ``images``.

    Args:
        settings: how the Job runs.
        source_registry: the registry host to copy from (the ``promotesFrom`` environment's).
        images: destination references the Job makes present, in the order given.
        config_files: the ConfigMap's data: :data:`CONFIG_KEY` (a promoter.yaml holding only
            ``registries``, for the Job's ``--config``) and the CA files it names by key.
        fail_on_diverged: the environment's ``divergedTags: fail``: the Job passes
            ``--fail-on-diverged``, so a re-pushed source tag fails the sync as it fails ``plan``.

    Raises:
        ValueError: no images (a Job with nothing to do would fail on every sync), or
            ``config_files`` without :data:`CONFIG_KEY`.
    """
    if not images:
        raise ValueError("a hook Job needs at least one image")
    if config_files is not None and CONFIG_KEY not in config_files:
        raise ValueError(f"the hook's ConfigMap needs a {CONFIG_KEY} key")
    objects: list[dict[str, Any]] = []
    if settings.create_service_account:
        objects.append(_service_account(settings))
    if config_files is not None:
        objects.append(_config_map(settings, config_files))
    objects.append(
        _job(
            settings,
            source_registry,
            images,
            with_config=config_files is not None,
            fail_on_diverged=fail_on_diverged,
        )
    )
    return objects


def _config_map(settings: HookSettings, files: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{settings.name}-config",
            "labels": _labels(),
            "annotations": _wave_annotation(settings.sync_wave - 1),
        },
        "data": dict(files),
    }


def _wave_annotation(wave: int) -> dict[str, str]:
    """An ordinary resource's wave: applied, and healthy, before the Job's wave starts."""
    return {"argocd.argoproj.io/sync-wave": str(wave)}


def _hook_annotations(wave: int) -> dict[str, str]:
    return {
        "argocd.argoproj.io/hook": HOOK_PHASE,
        "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
        **_wave_annotation(wave),
    }


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "promoter-hook", "app.kubernetes.io/component": "hook"}


def _service_account(settings: HookSettings) -> dict[str, Any]:
    annotations = _wave_annotation(settings.sync_wave - 1)
    if settings.role_arn:
        annotations[IRSA_ANNOTATION] = settings.role_arn
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": settings.service_account,
            "labels": _labels(),
            "annotations": annotations,
        },
    }


def is_dns_subdomain(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 subdomain, as a ServiceAccount's name must be: lower-case
    letters, digits, ``-`` and ``.``, starting and ending with a letter or digit, at most 253."""
    return len(name) <= _DNS_SUBDOMAIN_LENGTH and _DNS_SUBDOMAIN.fullmatch(name) is not None


def parse_quantity(text: str) -> Decimal | None:
    """The value of a non-negative Kubernetes resource quantity (``100m`` is 0.1, ``128Mi`` is
    134217728, ``1e3`` is 1000), or None when ``text`` is no such quantity."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix in _BINARY_SI:
        return number * Decimal(1024) ** _BINARY_SI[suffix]
    if suffix[:1] in {"e", "E"}:
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_DECIMAL_SI.get(suffix, 0))


def run_timeout(active_deadline_seconds: int) -> int:
    """The ``--timeout`` a hook Job passes to promoter: 80 % of its ``activeDeadlineSeconds``, so that
    promoter gives up and says why before Kubernetes kills the pod silently (the rest covers
    scheduling and the image pull, which the Job's deadline counts too). The Helm chart and the
    Kustomize component apply the same rule."""
    return active_deadline_seconds * 4 // 5


def _job(
    settings: HookSettings,
    source_registry: str,
    images: Sequence[str],
    *,
    with_config: bool,
    fail_on_diverged: bool,
) -> dict[str, Any]:
    args = [
        "sync",
        "--timeout",
        str(run_timeout(settings.active_deadline_seconds)),
        "--from-registry",
        source_registry,
    ]
    if with_config:
        args += ["--config", f"{CONFIG_DIR}/{CONFIG_KEY}"]
    if fail_on_diverged:
        args.append("--fail-on-diverged")
    for image in images:
        args += ["--image", image]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": SCRATCH_DIR}]
    container = {
        "name": "promoter",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "command": ["promoter"],
        "args": args,
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        "resources": {"requests": dict(settings.requests), "limits": dict(settings.limits)},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if with_config:
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "config", "configMap": {"name": f"{settings.name}-config"}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": f"{settings.name}-",
            "labels": _labels(),
            "annotations": _hook_annotations(settings.sync_wave),
        },
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": settings.service_account,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": IMAGE_UID,
                        "runAsGroup": IMAGE_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
