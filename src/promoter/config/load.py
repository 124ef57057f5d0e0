"""``promoter.yaml``: the environments of a GitOps repository and how to reach their registries.

The file is small and written by hand, so every mistake in it gets one line that names the file, the
key path and what is wrong; pydantic checks shapes and types, and its errors are translated here
because its own report spans several lines and speaks in Python terms (``Input should be a valid
dictionary``). Relations between keys (``promotesFrom`` naming a known environment, no cycles) are
checked after the shape, on the validated values.

Example::

    environments:
      dev:
        overlay: infra/overlays/dev
        registry: 111111111111.dkr.ecr.us-east-1.amazonaws.com
      production:
        overlay: infra/overlays/production
        registry: 222222222222.dkr.ecr.us-east-1.amazonaws.com
        promotesFrom: dev
    registries:
      111111111111.dkr.ecr.us-east-1.amazonaws.com:
        endpoint: http://127.0.0.1:5101
"""

from __future__ import annotations

import difflib
import heapq
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from promoter.config.kustomize_options import build_arguments
from promoter.config.locate import CONFIG_NAME, find_config, read_config_document
from promoter.config.schema import AdmissionModel, ConfigModel, EcrModel
from promoter.config.values import (
    LONGEST_ADMISSION_CACHE,
    LONGEST_ADMISSION_DEADLINE,
    AdmissionMode,
    AdmissionSettings,
    Environment,
    ExternalImages,
    PromoterConfig,
    RegistrySettings,
)
from promoter.ecr.hosts import is_ecr_host, is_role_arn
from promoter.ecr.settings import EcrSettings, RepositorySettings
from promoter.errors import ConfigError, InvalidReferenceError
from promoter.reference import hide_credentials, parse_registry_host

__all__ = [
    "CONFIG_NAME",
    "Environment",
    "PromoterConfig",
    "RegistrySettings",
    "find_config",
    "load_config",
]

# Environment names are typed on the command line (`promoter plan production`) and shown as table
# columns, so they stay plain words.
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# -- public functions --------------------------------------------------------------------------------


def load_config(path: Path, *, registries_only: bool = False) -> PromoterConfig:
    """Read and validate a ``promoter.yaml``.

    Relative ``overlay`` and ``caFile`` paths are taken from the file's folder, not the current
    directory, so that commands give the same answer wherever in the repository they run.

    Args:
        path: the file.
        registries_only: accept a file without ``environments`` (the in-cluster sync only needs the
            ``registries`` settings, which the hook packagings mount on their own).

    Raises:
        ConfigError: one line naming the file, the key path and what is wrong; credentials typed
            into a key or value are shown as ``***@`` and URLs without their query strings.
    """
    data = read_config_document(path)
    if data is None and registries_only:
        data = {}
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs an 'environments' mapping")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {_describe(data)}")
    if data.get("registries", {}) is None:
        # `registries:` with every entry commented out is a natural state, not an error.
        del data["registries"]
    if registries_only:
        data.setdefault("environments", {})
    elif not data.get("environments", True):
        raise ConfigError(f"{path}: environments: at least one environment is required")
    try:
        return _build(path, ConfigModel.model_validate(data))
    except ValidationError as exc:
        failure = ConfigError(_hidden_in(f"{path}: {_explain(exc)}", data))
    except ConfigError as exc:
        failure = ConfigError(_hidden_in(exc.message, data), hint=exc.hint, remedy=exc.remedy)
    # Raised outside the handlers, so that no __context__ keeps the text hidden here.
    raise failure


# -- building the values -----------------------------------------------------------------------------


def _build(path: Path, model: ConfigModel) -> PromoterConfig:
    """Check what pydantic cannot (names, hosts, URLs, references between environments)."""
    folder = path.absolute().parent
    environments: dict[str, Environment] = {}
    for name, entry in model.environments.items():
        where = f"{path}: environments.{name}"
        if not _ENVIRONMENT_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: environments: invalid environment name {_shown(name)!r} "
                "(use letters, digits, '.', '_' and '-')"
            )
        if not entry.overlay.strip():
            raise ConfigError(f"{where}.overlay: must not be empty")
        environments[name] = Environment(
            name=name,
            overlay=(folder / entry.overlay).resolve(),
            overlay_link=_through_link(folder, entry.overlay),
            registry=_registry_host(entry.registry, f"{where}.registry"),
            promotes_from=entry.promotes_from,
            fail_diverged=entry.diverged_tags == "fail",
            allow_images_from=tuple(entry.allow_images_from),
            admission=_admission_settings(entry.admission, f"{where}.admission"),
            prune_keep=tuple(entry.prune.keep),
            kustomize_build_options=build_arguments(
                entry.kustomize_build_options,
                where=f"{where}.kustomizeBuildOptions",
                plugins_allowed=entry.allow_kustomize_plugins,
            ),
            kustomize_plugins=entry.allow_kustomize_plugins,
        )
    _check_sources(path, environments)
    _check_admission(path, environments)
    _check_allowed(path, environments)
    for environment in environments.values():
        source = environments.get(environment.promotes_from or "")
        if source is not None and source.registry == environment.registry:
            raise ConfigError(
                f"{path}: environments.{environment.name}.registry: the same registry as "
                f"{source.name}, which it promotes from; promotion copies the same repository "
                f"path and tag, so nothing would ever move: give {environment.name} its own registry"
            )
    registries: dict[str, RegistrySettings] = {}
    for host, settings in model.registries.items():
        where = f"{path}: registries.{_shown(host)}"
        normalised = _registry_host(host, f"{path}: registries")
        if normalised in registries:
            raise ConfigError(f"{where}: the same registry as another key in registries")
        if settings.endpoint is not None:
            _check_endpoint(settings.endpoint, f"{where}.endpoint")
        if settings.ca_file is not None and not settings.ca_file.strip():
            raise ConfigError(f"{where}.caFile: must not be empty")
        registries[normalised] = RegistrySettings(
            endpoint=settings.endpoint,
            insecure=settings.insecure,
            ca_file=None if settings.ca_file is None else (folder / settings.ca_file).resolve(),
            ecr=None if settings.ecr is None else _ecr_settings(normalised, settings.ecr, where),
        )
    used = {environment.registry for environment in environments.values()}
    warnings = (
        tuple(
            f"{path}: environments.{e.name}.admission.promoteRepositories applies in mode: promote "
            "only; in guard mode the webhook copies nothing"
            for e in environments.values()
            if e.admission.promote_repositories and e.admission.mode is AdmissionMode.GUARD
        )
        + tuple(
            f"{path}: environments.{e.name}.admission.allowExternal: {_shown(pattern)!r} names a "
            "tag, a digest or a URL scheme; patterns match REGISTRY/REPOSITORY only (e.g. "
            "'registry.k8s.io/*', 'nginx'), so it allows nothing"
            for e in environments.values()
            for pattern in e.admission.allow_external
            if "@" in pattern or "://" in pattern or ":" in pattern.rpartition("/")[2]
        )
        + tuple(
            f"{path}: registries.{host} matches no environment's registry "
            f"({', '.join(sorted(used))}): plan, sync and status do not use it; check for a typo"
            for host in registries
            if used and host not in used
        )
    )
    return PromoterConfig(
        path=path,
        environments=_pipeline_order(environments),
        registries=registries,
        warnings=warnings,
    )


def _registry_host(text: str, where: str) -> str:
    """The registry host, normalised as image references normalise it (``index.docker.io`` is
    ``docker.io``), so that it compares equal to the registry of a discovered image."""
    try:
        return parse_registry_host(text)
    except InvalidReferenceError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_endpoint(url: str, where: str) -> None:
    """An endpoint is where requests go: an http(s) base URL, without credentials or query."""
    shown = _shown(url)
    if hide_credentials(url) is not None:
        # Credentials come from the docker config or a helper, never from a file kept in Git.
        raise ConfigError(
            f"{where}: remove the user name/password from the URL ({shown!r}); "
            "store credentials with promoter login or docker login instead"
        )
    problem = f"expected an http:// or https:// URL like http://127.0.0.1:5000, got {shown!r}"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: {problem}") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"{where}: invalid port in {shown!r}: use a port from 1 to 65535")
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{where}: an endpoint takes no query string or fragment, got {shown!r}; "
            "give the registry's base URL"
        )
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{where}: {problem}")


#: ECR's tag mutability settings (CreateRepository, ``imageTagMutability``).
_TAG_MUTABILITY = ("MUTABLE", "IMMUTABLE", "MUTABLE_WITH_EXCLUSION", "IMMUTABLE_WITH_EXCLUSION")


def _ecr_settings(host: str, model: EcrModel, where: str) -> EcrSettings:
    """``registries.<host>.ecr`` as values, checked beyond its shape."""
    where = f"{where}.ecr"
    if not is_ecr_host(host):
        raise ConfigError(
            f"{where}: {host} is not an ECR registry host "
            "(<account>.dkr.ecr.<region>.amazonaws.com[.cn])"
        )
    if model.role_arn is not None and not is_role_arn(model.role_arn):
        raise ConfigError(
            f"{where}.roleArn: expected a role ARN like arn:aws:iam::123456789012:role/name, "
            f"got {_shown(model.role_arn)!r}"
        )
    if model.api_endpoint is not None:
        _check_endpoint(model.api_endpoint, f"{where}.apiEndpoint")
    repository = model.repository
    mutability = repository.image_tag_mutability
    if mutability is not None and mutability not in _TAG_MUTABILITY:
        raise ConfigError(
            f"{where}.repository.imageTagMutability: expected one of "
            f"{', '.join(_TAG_MUTABILITY)}, got {_shown(mutability)!r}"
        )
    with_exclusion = mutability is not None and mutability.endswith("_WITH_EXCLUSION")
    if with_exclusion != bool(repository.image_tag_mutability_exclusion_filters):
        raise ConfigError(
            f"{where}.repository.imageTagMutabilityExclusionFilters: required with "
            "imageTagMutability *_WITH_EXCLUSION and only with it"
        )
    # The API's own key names and shapes, passed through as CreateRepository takes them.
    arguments = repository.model_dump(
        by_alias=True, exclude_none=True, exclude={"repository_policy", "lifecycle_policy"}
    )
    return EcrSettings(
        role_arn=model.role_arn,
        api_endpoint=model.api_endpoint,
        create_repositories=model.create_repositories,
        repository=RepositorySettings(
            create_arguments=MappingProxyType(arguments),
            repository_policy=_policy_text(
                repository.repository_policy, f"{where}.repository.repositoryPolicy"
            ),
            lifecycle_policy=_policy_text(
                repository.lifecycle_policy, f"{where}.repository.lifecyclePolicy"
            ),
        ),
    )


def _policy_text(value: dict[str, Any] | str | None, where: str) -> str | None:
    """A policy written as a YAML mapping or as JSON text, as the JSON text AWS takes."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{where}: not valid JSON: nested too deeply") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        return value
    return json.dumps(value)


def _check_sources(path: Path, environments: dict[str, Environment]) -> None:
    """Every ``promotesFrom`` names a known environment, and following them never loops.

    Each environment has at most one source, so the environments form chains; each chain is walked
    once, its environments marked as leading nowhere circular once the walk ends well. That keeps
    thousands of environments in one long pipeline linear (walking every chain from every environment
    was quadratic, and took half a minute for three thousand).
    """
    known = ", ".join(environments)
    for environment in environments.values():
        source = environment.promotes_from
        if source is not None and source not in environments:
            raise ConfigError(
                f"{path}: environments.{environment.name}.promotesFrom: "
                f"unknown environment {_shown(source)!r} (known: {known})"
            )
    acyclic: set[str] = set()
    for environment in environments.values():
        chain: dict[str, None] = {}  # the walk so far, in order, with constant-time membership
        current: str | None = environment.name
        while current is not None and current not in acyclic:
            if current in chain:
                names = list(chain)
                loop = [*names[names.index(current) :], current]
                raise ConfigError(
                    f"{path}: environments.{loop[0]}.promotesFrom: "
                    f"promotesFrom forms a cycle: {' -> '.join(loop)}"
                )
            chain[current] = None
            current = environments[current].promotes_from
        acyclic.update(chain)


def _through_link(folder: Path, overlay: str) -> str | None:
    """``overlay`` when the path from promoter.yaml's folder to it passes a symbolic link (Git
    stores links: one could lead a promotion's write anywhere), else None. The folder's own path
    is not looked at: a checkout under a linked home folder is fine."""
    base = folder.resolve()
    written = Path(os.path.normpath(base / overlay))
    try:
        resolved = written.resolve()
    except (OSError, RuntimeError):  # a link loop: the render reports it
        return overlay
    return overlay if resolved != written else None


def _admission_settings(model: AdmissionModel, where: str) -> AdmissionSettings:
    """``admission:`` as a value, its numbers and patterns checked."""
    if not 0 < model.deadline_seconds <= LONGEST_ADMISSION_DEADLINE:
        raise ConfigError(
            f"{where}.deadlineSeconds: must be above 0 and at most "
            f"{LONGEST_ADMISSION_DEADLINE:g} seconds, got {model.deadline_seconds:g} (the API "
            "server waits at most 30 s; keep it below the webhook's timeoutSeconds)"
        )
    if not 0 <= model.cache_seconds <= LONGEST_ADMISSION_CACHE:
        raise ConfigError(
            f"{where}.cacheSeconds: {model.cache_seconds:g} is not between 0 (no cache) and "
            f"{LONGEST_ADMISSION_CACHE:g} seconds"
        )
    for key, patterns in (
        ("allowExternal", model.allow_external),
        ("promoteRepositories", model.promote_repositories),
    ):
        for pattern in patterns:
            if not pattern.strip() or pattern != pattern.strip():
                raise ConfigError(
                    f"{where}.{key}: {_shown(pattern)!r} is not a pattern (no empty entries, no "
                    "surrounding spaces)"
                )
    return AdmissionSettings(
        mode=AdmissionMode(model.mode),
        external=ExternalImages(model.external),
        allow_external=tuple(model.allow_external),
        promote_repositories=tuple(model.promote_repositories),
        cache_seconds=float(model.cache_seconds),
        deadline_seconds=float(model.deadline_seconds),
    )


def _check_admission(path: Path, environments: dict[str, Environment]) -> None:
    """Promote mode needs a source to copy from."""
    for environment in environments.values():
        admission = environment.admission
        if admission.mode is AdmissionMode.PROMOTE and environment.promotes_from is None:
            raise ConfigError(
                f"{path}: environments.{environment.name}.admission.mode: promote copies missing "
                "images from the environment this one promotes from, and it has no promotesFrom: "
                "add promotesFrom, or use mode: guard"
            )


def _check_allowed(path: Path, environments: dict[str, Environment]) -> None:
    """Every ``allowImagesFrom`` entry names another known environment (or is ``*``)."""
    for environment in environments.values():
        for name in environment.allow_images_from:
            if name != "*" and (name not in environments or name == environment.name):
                raise ConfigError(
                    f"{path}: environments.{environment.name}.allowImagesFrom: {_shown(name)!r} is not "
                    f"another environment (known: {', '.join(environments)}; '*' allows all)"
                )


def _pipeline_order(environments: dict[str, Environment]) -> dict[str, Environment]:
    """Order environments so each comes after its source; otherwise keep the file's order.

    At each step the earliest environment in the file whose source is already placed comes next
    (Kahn's algorithm with file order as the tie-break, the waiting environments kept in a heap by
    their place in the file), so a file already in pipeline order keeps its order exactly. Cycles were
    refused before, so every environment is placed.
    """
    position = {name: index for index, name in enumerate(environments)}
    receivers: dict[str, list[str]] = {}
    ready: list[int] = []
    for name, environment in environments.items():
        if environment.promotes_from is None:
            ready.append(position[name])
        else:
            receivers.setdefault(environment.promotes_from, []).append(name)
    names = list(environments)
    ordered: dict[str, Environment] = {}
    while ready:
        name = names[heapq.heappop(ready)]
        ordered[name] = environments[name]
        for receiver in receivers.get(name, ()):
            heapq.heappush(ready, position[receiver])
    return ordered


# -- error messages ----------------------------------------------------------------------------------


def _explain(exc: ValidationError) -> str:
    """pydantic's errors as one line: the first problem (unknown keys first, since a misspelt key
    also shows up as a missing one), and how many more there are."""
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    message = _describe_error(errors[0])
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return message


def _describe_error(error: ErrorDetails) -> str:
    """One pydantic error in this file's words: ``key.path: what is wrong``; the key path and the
    value shown as :func:`_shown` shows them (a ``registries:`` key may hold a password)."""
    location = [_shown(str(part)) for part in error["loc"]]
    kind = error["type"]
    value = error["input"]
    if kind == "extra_forbidden":
        parent = ".".join(location[:-1])
        message = (
            f"{parent}: unknown key {location[-1]!r}" if parent else f"unknown key {location[-1]!r}"
        )
        known = _known_keys(location[:-1])
        nearest = difflib.get_close_matches(location[-1], known, n=1, cutoff=0.6)
        if nearest:
            return f"{message}; did you mean {nearest[0]!r}?"
        return f"{message} (known: {', '.join(known)})" if known else message
    if location and location[-1] == "[key]":
        return f"{'.'.join(location[:-1])}: keys must be strings, got {_describe(value)}"
    path = ".".join(location)  # pydantic reports keys by alias: as written in the file
    if kind == "missing":
        return f"{path}: field required"
    expected = {
        "bool_type": "a boolean",
        "string_type": "a string",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "list_type": "a list",
    }.get(kind)
    if expected is not None:
        return f"{path}: expected {expected}, got {_describe(value)}"
    return f"{path}: {error['msg'][:1].lower()}{error['msg'][1:]}"


def _known_keys(location: Sequence[str]) -> list[str]:
    """The keys promoter.yaml takes at ``location`` (a key path as pydantic reports it, by alias),
    found by walking the schema's models; empty where the walk finds no model."""
    model: type[BaseModel] = ConfigModel
    parts = list(location)
    while parts:
        key = parts.pop(0)
        fields = {(info.alias or name): info for name, info in model.model_fields.items()}
        if key not in fields:
            return []
        annotation = fields[key].annotation
        while True:  # unwrap Optional, dict values and list items down to a model
            arguments = [a for a in get_args(annotation) if a is not type(None)]
            origin = get_origin(annotation)
            if origin in (dict, list) and parts:
                parts.pop(0)  # the user's own key, or a list index
                annotation = arguments[-1]
            elif arguments and origin not in (dict, list):
                annotation = arguments[0]
            else:
                break
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [info.alias or name for name, info in model.model_fields.items()]


def _describe(value: object) -> str:
    """A value as the user wrote it, for "expected X, got Y"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(_shown(value) if isinstance(value, str) else value)


def _shown(text: str) -> str:
    """``text`` (a key or a value of the file) as a message may show it: ``user:password@`` typed
    into it as ``***@`` (:func:`~promoter.reference.hide_credentials`), and a URL's query string or
    fragment, which may carry a token, as ``?...`` (README: "URLs lose their query strings")."""
    text = hide_credentials(text) or text
    scheme, separator, rest = text.partition("://")
    cut = min((at for at in (rest.find("?"), rest.find("#")) if at >= 0), default=-1)
    if separator and cut >= 0:
        return f"{scheme}{separator}{rest[:cut]}{rest[cut]}..."
    return text


def _hidden_in(message: str, document: object) -> str:
    """``message`` with every key and value of ``document`` that :func:`_shown` would change
    replaced by what it shows: a net under the messages built above, for text they quote as
    written (a registry host's own error)."""
    replacements: dict[str, str] = {}
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and _shown(value) != value:
            replacements[repr(value)] = repr(_shown(value))
            replacements[value] = _shown(value)
    for text in sorted(replacements, key=len, reverse=True):
        message = message.replace(text, replacements[text])
    return message
