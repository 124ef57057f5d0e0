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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promoter.deadline import current_deadline
from promoter.errors import ConfigError, CredentialError, DeadlineExceededError
from promoter.reference import DOCKER_HUB, DOCKER_HUB_ALIASES, DOCKER_HUB_CONFIG_KEY

#: A credential helper gets this long to answer; helpers that prompt would otherwise hang a sync Job.
HELPER_TIMEOUT_SECONDS = 30
_HELPER_NOT_FOUND = "credentials not found"
#: docker's marker for an identity token in a credential helper's answer.
_TOKEN_USERNAME = "<token>"  # noqa: S105 - a marker docker defines, not a secret
#: The largest credentials file (docker config, auth.json) or helper answer read, in bytes; real ones
#: are a few kilobytes, and a bigger one is refused rather than read into memory.
CREDENTIALS_FILE_LIMIT = 1024 * 1024
#: What a credential helper's name may be: it becomes part of a program name looked up on PATH.
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
        raw: the credential as its source handed it over, when that is a secret of its own (an ECR
            ``authorizationToken``); only scrubbed, never sent.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = field(default="", compare=False)
    renew_at: float | None = field(default=None, compare=False)
    raw: str = field(default="", compare=False)

    def __repr__(self) -> str:
        kind = "identity-token" if self.identity_token else "password"
        return f"Credential(username={self.username!r}, {kind}=<redacted>, source={self.source!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values, so output can be scrubbed of them: the password, the identity token,
        the base64 ``user:password`` that HTTP Basic sends, and the raw form. The scrubber adds the
        variants a server may echo (unpadded, URL-safe, percent-encoded)."""
        found = [s for s in (self.password, self.identity_token, self.raw) if s]
        if self.password:
            found.append(self.basic)
        return tuple(found)

    @property
    def basic(self) -> str:
        """``base64(username:password)``: what HTTP Basic sends (RFC 7617) and docker config's
        ``auth`` holds."""
        return basic_token(self.username, self.password)


def basic_token(username: str, password: str) -> str:
    """``base64(username:password)`` (RFC 7617, section 2)."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


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
    helpers = _mapping(config, "credHelpers", config_path)
    helper = helpers.get(_config_host(registry)) or helpers.get(registry)
    if helper:
        return _helper_get(_helper_name(helper, config_path), registry)
    found = _from_auths(_mapping(config, "auths", config_path), registry, config_path)
    if found is not None:
        return _labelled(found, f"docker config auths ({config_path})")
    store = config.get("credsStore")
    if store:
        return _helper_get(_helper_name(store, config_path), registry)
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
            found = _from_auths(_mapping(data, "auths", path), registry, path)
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
    helper = _mapping(config, "credHelpers", path).get(key) or config.get("credsStore")
    if helper:
        helper = _helper_name(helper, path)
        payload = json.dumps({"ServerURL": key, "Username": username, "Secret": password})
        _run_helper(helper, "store", payload, registry)
        return f"docker-credential-{helper}"
    auths = _mapping(config, "auths", path)
    config["auths"] = auths
    auths[key] = {"auth": basic_token(username, password)}
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
    """A credentials file as a JSON object; None when it does not exist or is empty.

    Raises:
        ConfigError: it cannot be read, is larger than :data:`CREDENTIALS_FILE_LIMIT`, is not UTF-8,
            not JSON, nested too deeply to parse, or not an object; the message names the file.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(CREDENTIALS_FILE_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    if len(data) > CREDENTIALS_FILE_LIMIT:
        raise ConfigError(
            f"credentials file {path} is larger than {CREDENTIALS_FILE_LIMIT // 1024} KiB; "
            "it cannot be a docker config: fix or remove it"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"credentials file {path} is not UTF-8 text (byte {exc.start}); fix or remove it"
        ) from None
    if not text.strip():
        return None
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"credentials file {path} is not valid JSON: {exc}; fix or remove it"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"credentials file {path} is nested too deeply to be a docker config; fix or remove it"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"credentials file {path} must hold a JSON object; fix or remove it")
    return loaded


def _mapping(config: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """``config[key]`` when it is a JSON object (an empty one when absent or null).

    Raises:
        ConfigError: it is something else (``credHelpers`` written as a list).
    """
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"credentials file {path}: {key!r} must be a JSON object keyed by registry host, "
            f"not {_json_kind(value)}; fix or remove it"
        )
    return value


def _helper_name(value: object, path: Path) -> str:
    """A credential helper's name from the docker config (``ecr-login`` for
    ``docker-credential-ecr-login``).

    Raises:
        ConfigError: not a name (a number, an object, a path).
    """
    if isinstance(value, str) and _HELPER_NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"credentials file {path}: a credential helper must be named by a word such as "
        f"'ecr-login', not {_json_kind(value)}; fix or remove it"
    )


def _json_kind(value: object) -> str:
    """How a message names a JSON value's type, without showing the value (it may be a secret)."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return next((k for t, k in kinds.items() if isinstance(value, t)), "a number")


def _text_field(entry: dict[str, Any], key: str, registry: str, path: Path) -> str:
    """A string field of an ``auths`` entry ('' when absent).

    Raises:
        ConfigError: the field is not a string.
    """
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(
            f"credentials file {path}: {key!r} of the entry for {registry} must be a string, "
            f"not {_json_kind(value)}; log in again"
        )
    return value


def _from_auths(auths: dict[str, Any], registry: str, path: Path) -> Credential | None:
    wanted = _normalise_key(registry)
    for key, entry in auths.items():
        if _normalise_key(str(key)) != wanted:
            continue
        if not isinstance(entry, dict):
            raise ConfigError(
                f"credentials file {path}: the auths entry for {registry} must be a JSON object, "
                f"not {_json_kind(entry)}; log in again"
            )
        auth = _text_field(entry, "auth", registry, path)
        identity_token = _text_field(entry, "identitytoken", registry, path)
        if identity_token:
            username = _decode_auth(auth, registry, path)[0] if auth else ""
            return Credential(username=username, identity_token=identity_token)
        if auth:
            username, password = _decode_auth(auth, registry, path)
            return Credential(username=username, password=password)
        username = _text_field(entry, "username", registry, path)
        password = _text_field(entry, "password", registry, path)
        if username and password:
            return Credential(username=username, password=password)
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
    """Ask ``docker-credential-<helper>`` for the registry's credential.

    Raises:
        CredentialError: the helper is missing, fails or does not answer in time.
        ConfigError: its answer is not UTF-8 JSON with string ``Username`` and ``Secret``; bad
            input like a broken docker config. The answer itself is never shown.
    """
    program = f"docker-credential-{helper}"
    out = _run_helper(helper, "get", _config_host(registry), registry)
    if out is None:
        return None
    unreadable = ConfigError(
        f"credential helper {program} answered for {registry} with something other than the "
        'JSON object {"Username": ..., "Secret": ...} that helpers print (the answer is not '
        f"shown: it may hold a secret); check or reinstall {program}"
    )
    try:
        answer = json.loads(out.decode("utf-8"))
    except (ValueError, RecursionError):
        raise unreadable from None
    if not isinstance(answer, dict):
        raise unreadable
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise unreadable
    source = f"credential helper {helper}"
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret, source=source)
    return Credential(username=username, password=secret, source=source)


#: The most of a helper's error output kept (only to recognise "credentials not found"; never shown).
_HELPER_STDERR_KEPT = 64 * 1024


def _run_helper(helper: str, action: str, stdin: str, registry: str) -> bytes | None:
    """Run ``docker-credential-<helper> <action>``; its standard output, or None when it has no
    credentials for the registry.

    What a failing helper prints is never shown: a helper may echo what it was given (``store``
    is given the secret) or hold secrets in its errors.

    It runs for at most :data:`HELPER_TIMEOUT_SECONDS`, less when the current deadline
    (:func:`promoter.deadline.current_deadline`) leaves less.

    Raises:
        CredentialError: it is missing, fails or times out.
        DeadlineExceededError: the current deadline passed while it ran.
        ConfigError: it prints more than :data:`CREDENTIALS_FILE_LIMIT` bytes.
    """
    import subprocess  # noqa: PLC0415 - helpers are rare; a copy without them skips the import

    from promoter.process import run_capped  # noqa: PLC0415 - likewise (it imports subprocess)

    program = f"docker-credential-{helper}"
    deadline = current_deadline()
    timeout = HELPER_TIMEOUT_SECONDS if deadline is None else deadline.cap(HELPER_TIMEOUT_SECONDS)
    try:
        proc = run_capped(
            [program, action],
            stdin=stdin.encode(),
            timeout=timeout,
            stdout_limit=CREDENTIALS_FILE_LIMIT,
            stderr_limit=_HELPER_STDERR_KEPT,
        )
    except FileNotFoundError as exc:
        raise CredentialError(
            f"credential helper {program} (configured for {registry}) is not on PATH; install it "
            "or remove it from the docker config"
        ) from exc
    except OSError as exc:
        raise CredentialError(
            f"credential helper {program} (configured for {registry}) cannot be run: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    except subprocess.TimeoutExpired:
        if deadline is not None and deadline.expired:
            raise DeadlineExceededError(
                f"credential helper {program} for {registry}: gave up after the "
                f"{deadline.seconds:g} s deadline"
            ) from None
        raise CredentialError(
            f"credential helper {program} did not answer within {HELPER_TIMEOUT_SECONDS} s"
        ) from None
    if proc.overflowed:
        raise ConfigError(
            f"credential helper {program} printed more than {CREDENTIALS_FILE_LIMIT // 1024} KiB "
            f"for {registry}; check or reinstall it"
        )
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode("utf-8", "replace").lower()
        if action == "get" and _HELPER_NOT_FOUND in said:
            return None
        raise CredentialError(
            f"credential helper {program} {action} failed for {registry} (exit status "
            f"{proc.returncode}); its output is not shown, since it may hold secrets: run "
            f"'echo {_config_host(registry)} | {program} get' to see it"
            if action == "get"
            else f"credential helper {program} {action} failed for {registry} (exit status "
            f"{proc.returncode}); its output is not shown, since it may hold secrets"
        )
    return proc.stdout
