"""Find and store registry credentials the way docker, crane and skopeo do.

Lookup order for a registry host, first hit wins:

1. ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``): ``credHelpers[host]``, then
   ``auths[host]`` (``auth`` = base64 ``user:password``, or ``identitytoken``), then ``credsStore``.
2. ``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, else
   ``~/.config/containers/auth.json`` (podman and skopeo's file, same ``auths`` shape).

``auths`` keys may be written with a scheme or a path (``https://host/v1/``); they match by host.
Docker Hub's credentials are stored under ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promoter.errors import ConfigError, CredentialError
from promoter.reference import DOCKER_HUB, DOCKER_HUB_ALIASES, DOCKER_HUB_CONFIG_KEY

#: A credential helper gets this long to answer; helpers that prompt would otherwise hang a sync Job.
HELPER_TIMEOUT_SECONDS = 30
_HELPER_NOT_FOUND = "credentials not found"
#: docker's marker for an identity token in a credential helper's answer.
_TOKEN_USERNAME = "<token>"  # noqa: S105 - a marker docker defines, not a secret


@dataclass(frozen=True, slots=True)
class Credential:
    """Credentials for one registry. ``repr`` never shows the secrets.

    Attributes:
        username, password: for HTTP Basic and the token flow.
        identity_token: an OAuth2 refresh token (``docker login`` with a registry that issues one).
        source: where it came from, for messages: ``docker config auths``, ``credential helper
            ecr-login``, ``AWS identity arn:...``.
        renew_at: ``time.monotonic()`` seconds after which it should be fetched again (a token about to
            expire), or None when it does not expire.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = field(default="", compare=False)
    renew_at: float | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        kind = "identity-token" if self.identity_token else "password"
        return f"Credential(username={self.username!r}, {kind}=<redacted>, source={self.source!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the secret values, so output can be scrubbed of them: the password, the
        identity token, and the base64 ``user:password`` that HTTP Basic sends."""
        found = [s for s in (self.password, self.identity_token) if s]
        if self.password:
            found.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return tuple(found)


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def containers_auth_paths() -> list[Path]:
    """The containers auth.json files in the order podman and skopeo read them."""
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [Path(explicit)]
    paths = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME")
    paths.append(
        (Path(config_home) if config_home else Path.home() / ".config") / "containers" / "auth.json"
    )
    return paths


def find_credential(registry: str) -> Credential | None:
    """The credential for ``registry`` (a host, as in a reference), or None for anonymous access:
    the docker config first, then the containers auth.json files.

    Raises:
        ConfigError: a config file exists but is not valid JSON.
        CredentialError: a configured credential helper is missing or fails.
    """
    return docker_config_credential(registry) or containers_auth_credential(registry)


def docker_config_credential(registry: str) -> Credential | None:
    """The docker config's credential for ``registry``: ``credHelpers[host]``, then ``auths[host]``,
    then ``credsStore``, as docker reads them; None when it has none.

    Raises:
        ConfigError: the file exists but is not valid JSON.
        CredentialError: a configured credential helper is missing or fails.
    """
    config_path = docker_config_path()
    config = _read_json(config_path)
    if config is None:
        return None
    helper = (config.get("credHelpers") or {}).get(_config_host(registry)) or (
        config.get("credHelpers") or {}
    ).get(registry)
    if helper:
        return _helper_get(str(helper), registry)
    found = _from_auths(config.get("auths") or {}, registry, config_path)
    if found is not None:
        return _labelled(found, f"docker config auths ({config_path})")
    store = config.get("credsStore")
    if store:
        return _helper_get(str(store), registry)
    return None


def containers_auth_credential(registry: str) -> Credential | None:
    """The credential for ``registry`` in the first containers auth.json that has one (podman's and
    skopeo's file), or None.

    Raises:
        ConfigError: a file exists but is not valid JSON.
    """
    for path in containers_auth_paths():
        data = _read_json(path)
        if data is not None:
            found = _from_auths(data.get("auths") or {}, registry, path)
            if found is not None:
                return _labelled(found, f"containers auth.json ({path})")
    return None


def _labelled(credential: Credential, source: str) -> Credential:
    return Credential(
        username=credential.username,
        password=credential.password,
        identity_token=credential.identity_token,
        source=source,
    )


def store_credential(registry: str, username: str, password: str) -> Path | str:
    """Save credentials as ``docker login`` does: into the configured helper if there is one, else into
    ``auths`` of the docker config (written atomically, mode 0600).

    Returns:
        The config path written, or the helper's name.
    """
    path = docker_config_path()
    config = _read_json(path) or {}
    key = _config_host(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper:
        payload = json.dumps({"ServerURL": key, "Username": username, "Secret": password})
        _run_helper(str(helper), "store", payload, registry)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[key] = {"auth": token}
    import tempfile  # noqa: PLC0415 - only login writes files; copies should not pay for the import

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent="\t")
            handle.write("\n")
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _config_host(registry: str) -> str:
    """The key docker uses in config.json for a registry host."""
    return DOCKER_HUB_CONFIG_KEY if registry in DOCKER_HUB_ALIASES else registry


def _normalise_key(key: str) -> str:
    """``https://host/v1/`` -> ``host``, so keys written with scheme or path still match."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"credentials file {path} is not valid JSON: {exc}; fix or remove it"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"credentials file {path} must hold a JSON object")
    return data


def _from_auths(auths: dict[str, Any], registry: str, path: Path) -> Credential | None:
    wanted = _normalise_key(registry)
    for key, entry in auths.items():
        if _normalise_key(str(key)) != wanted or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            username = ""
            if entry.get("auth"):
                username = _decode_auth(str(entry["auth"]), registry, path)[0]
            return Credential(username=username, identity_token=str(entry["identitytoken"]))
        if entry.get("auth"):
            username, password = _decode_auth(str(entry["auth"]), registry, path)
            return Credential(username=username, password=password)
        if entry.get("username") and entry.get("password"):
            return Credential(username=str(entry["username"]), password=str(entry["password"]))
    return None


def _decode_auth(value: str, registry: str, path: Path) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: the stored auth for {registry} is not base64 of user:password; log in again"
        ) from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise ConfigError(f"{path}: the stored auth for {registry} has no ':'; log in again")
    return username, password


def _helper_get(helper: str, registry: str) -> Credential | None:
    out = _run_helper(helper, "get", _config_host(registry), registry)
    if out is None:
        return None
    try:
        answer = json.loads(out)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialError(
            f"docker-credential-{helper} gave an unreadable answer for {registry}"
        ) from exc
    source = f"credential helper {helper}"
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret, source=source)
    return Credential(username=username, password=secret, source=source)


def _run_helper(helper: str, action: str, stdin: str, registry: str) -> str | None:
    import subprocess  # noqa: PLC0415 - helpers are rare; a copy without them skips the import

    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, action],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CredentialError(
            f"credential helper {program} (configured for {registry}) is not on PATH; install it "
            "or remove it from the docker config"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise CredentialError(
            f"credential helper {program} did not answer within {HELPER_TIMEOUT_SECONDS} s"
        ) from exc
    if proc.returncode != 0:
        message = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        first = message[0] if message else f"exit status {proc.returncode}"
        if action == "get" and _HELPER_NOT_FOUND in first.lower():
            return None
        # Helpers' messages do not contain the secret; we still only show their first line.
        raise CredentialError(
            f"credential helper {program} {action} failed for {registry}: {first}"
        )
    return proc.stdout
