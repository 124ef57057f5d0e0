"""Run a real CNCF Distribution registry on 127.0.0.1 with throwaway storage.

Tests talk to the genuine server instead of a fake so that promoter is held to what registries
really do (status codes, Location headers, digest checks, auth challenges). The registry binds
``127.0.0.1:0`` on first start and we learn the kernel-chosen port from its "listening on" log
line, which avoids the race of picking a free port and hoping nobody takes it before the
registry binds. Restarts reuse that port explicitly so clients holding the URL keep working.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal

import trustme

from devtools.loopback_http import LOOPBACK
from devtools.token_server import KeyIdMode, TokenServer

AuthMode = Literal["none", "basic", "token"]

REGISTRY_BINARY = "docker-registry"
"""Debian's name for the Distribution binary (upstream calls it ``registry``)."""

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
_BIND_RETRIES = 5
_LISTENING = re.compile(r"listening on (?:\[?[0-9a-fA-F.:]*\]?):(\d+)")
_BIND_FAILURE = re.compile(r"address already in use", re.IGNORECASE)


class RegistryError(RuntimeError):
    """The registry could not be started or did not become ready in time."""


class RegistryProcess:
    """A Distribution registry subprocess with its config, storage and credentials.

    Args:
        workdir: Directory for config, storage, certificates and ``registry.log``; created if
            missing. Use a pytest ``tmp_path`` so everything is thrown away.
        auth: ``none``; ``basic`` (htpasswd, bcrypt); or ``token`` (a ``TokenServer`` this
            object starts and stops alongside the registry).
        tls: Serve HTTPS with a certificate for 127.0.0.1 and localhost from a fresh test CA.
        name: Label used in log file names and error messages, for tests running several.
        token_key_id: How tokens identify their signing key (``x5c`` or ``kid``), so tests can
            cover both ways Distribution accepts.
        username: The user for ``basic``/``token`` auth (default ``tester``); ECR's data plane
            wants ``AWS``.
        password: The password (default: random); ECR tests pass what GetAuthorizationToken gives.
        delete_enabled: Allow ``DELETE`` of manifests and blobs (``storage.delete.enabled``);
            False starts a registry that answers them 405 ``UNSUPPORTED``, as Distribution does
            by default.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        auth: AuthMode = "none",
        tls: bool = False,
        name: str = "registry",
        token_key_id: KeyIdMode = "x5c",  # noqa: S107 - a header field name, not a secret
        username: str = "tester",
        password: str | None = None,
        delete_enabled: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.delete_enabled = delete_enabled
        self.auth: AuthMode = auth
        self.tls = tls
        self.name = name
        self.username: str | None = None
        self.password: str | None = None
        self.token_server: TokenServer | None = None
        self.ca_file: Path | None = None
        self._cert_file: Path | None = None
        self._key_file: Path | None = None
        self._port = 0
        self._secret = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[str] | None = None
        self._port_seen = threading.Event()
        self._bind_failed = threading.Event()
        if auth in ("basic", "token"):
            self.username = username
            self.password = password if password is not None else secrets.token_urlsafe(12)
        if auth == "token":
            self.token_server = TokenServer(
                username=self.username or "",
                password=self.password,
                identity_token=secrets.token_urlsafe(24),
                key_id=token_key_id,
            )
        elif auth not in ("none", "basic"):
            raise ValueError(f"unknown auth mode {auth!r}")

    # addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the registry listens on (known after the first start)."""
        if self._port == 0:
            raise RegistryError(f"{self.name}: not started yet, port unknown")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL including scheme."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}"

    @property
    def storage(self) -> Path:
        """Root of the filesystem storage driver, for tests that corrupt or inspect blobs."""
        return self.workdir / "storage"

    @property
    def log_path(self) -> Path:
        """Where the registry's stdout and stderr are appended."""
        return self.workdir / f"{self.name}.log"

    @property
    def cert_dir(self) -> Path | None:
        """Directory holding only ``ca.crt``, suitable for ``skopeo --cert-dir``."""
        return None if self.ca_file is None else self.ca_file.parent

    @property
    def running(self) -> bool:
        """Whether the subprocess is alive."""
        return self._proc is not None and self._proc.poll() is None

    def blob_data_path(self, digest: str) -> Path:
        """Path of a blob's bytes inside storage, to corrupt or delete it behind the API."""
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return (
            self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        )

    # credentials -------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting the test CA (None without TLS)."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def push_headers(self, repository: str) -> dict[str, str]:
        """An Authorization header allowing pull and push on ``repository``.

        For token auth the token is minted directly rather than fetched, so seeding a
        registry does not add entries to ``token_server.requests`` that tests assert on.
        """
        if self.auth == "basic":
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        if self.auth == "token":
            assert self.token_server is not None
            access = [{"type": "repository", "name": repository, "actions": ["pull", "push"]}]
            return {"Authorization": "Bearer " + self.token_server.mint(access)}
        return {}

    @property
    def creds(self) -> str | None:
        """``user:password`` for ``skopeo --creds``, or None without auth."""
        if self.username is None:
            return None
        return f"{self.username}:{self.password}"

    def skopeo_flags(self, role: Literal["", "src", "dest"] = "") -> list[str]:
        """skopeo options to reach this registry: TLS trust and credentials.

        Args:
            role: ``""`` for inspect-style commands, ``src``/``dest`` for ``skopeo copy``, which
                prefixes its per-side options that way.
        """
        prefix = f"--{role}-" if role else "--"
        flags = (
            [f"{prefix}cert-dir", str(self.cert_dir)] if self.tls else [f"{prefix}tls-verify=false"]
        )
        if self.creds is not None:
            flags += [f"{prefix}creds", self.creds]
        else:
            flags.append(f"{prefix}no-creds")
        return flags

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Write the config, launch the registry and wait until ``GET /v2/`` answers.

        Raises:
            RegistryError: The binary is missing, the process died, or it was not ready within
                ``START_TIMEOUT_S``. The message carries the tail of the log.
        """
        if self.running:
            return
        if shutil.which(REGISTRY_BINARY) is None:
            raise RegistryError(f"{REGISTRY_BINARY} not found on PATH (apt-get install it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        self._prepare_tls()
        self._prepare_auth()
        if self.token_server is not None:
            self.token_server.start()
        for attempt in range(_BIND_RETRIES):
            self._write_config()
            self._spawn()
            try:
                self._wait_ready()
            except RegistryError:
                bind_failed = self._bind_failed.is_set()
                self._terminate()
                # A fixed port (restart) can briefly still be held; anything else is fatal.
                if bind_failed and attempt + 1 < _BIND_RETRIES:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if self.token_server is not None:
                    self.token_server.stop()
                raise
            return

    def stop(self) -> None:
        """Terminate the registry (kill if it lingers) and its token server."""
        self._terminate()
        if self.token_server is not None:
            self.token_server.stop()

    def restart(self) -> None:
        """Stop and start again on the same port with the same storage and credentials."""
        self._terminate()
        self.start()

    def __enter__(self) -> RegistryProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # internals ---------------------------------------------------------------------------------

    def _prepare_tls(self) -> None:
        if not self.tls or self.ca_file is not None:
            return
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        tls_dir = self.workdir / "tls"
        ca_dir = tls_dir / "ca"
        ca_dir.mkdir(parents=True, exist_ok=True)
        # ca.crt sits alone in its directory: containers/image treats *.key/*.cert files in a
        # --cert-dir as client credentials, so the server key must live elsewhere.
        self.ca_file = ca_dir / "ca.crt"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._cert_file = tls_dir / "server-chain.pem"
        self._key_file = tls_dir / "server-key.pem"
        with self._cert_file.open("wb") as fh:
            for pem in leaf.cert_chain_pems:
                fh.write(pem.bytes())
        leaf.private_key_pem.write_to_path(str(self._key_file))

    def _prepare_auth(self) -> None:
        if self.auth == "basic":
            path = self.workdir / "htpasswd"
            if not path.exists():
                path.write_text(_htpasswd_line(self.username or "", self.password or ""))
        elif self.auth == "token":
            assert self.token_server is not None
            bundle = self.workdir / "token-root.pem"
            if not bundle.exists():
                self.token_server.write_cert_bundle(bundle)

    def _config(self) -> dict[str, Any]:
        http_cfg: dict[str, Any] = {
            "addr": f"{LOOPBACK}:{self._port}",
            "secret": self._secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http_cfg["tls"] = {"certificate": str(self._cert_file), "key": str(self._key_file)}
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "fields": {"service": self.name}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": self.delete_enabled},
                "redirect": {"disable": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_cfg,
            "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
        }
        if self.auth == "basic":
            config["auth"] = {
                "htpasswd": {"realm": "promoter-test", "path": str(self.workdir / "htpasswd")}
            }
        elif self.auth == "token":
            assert self.token_server is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.workdir / "token-root.pem"),
                }
            }
        return config

    def _write_config(self) -> None:
        (self.workdir / "config.yml").write_text(_to_yaml(self._config()))

    def _spawn(self) -> None:
        self._port_seen.clear()
        self._bind_failed.clear()
        self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(f"--- {self.name}: starting on {LOOPBACK}:{self._port}\n")
        self._log.flush()
        self._proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(self.workdir / "config.yml")],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(
            target=self._pump_output,
            args=(self._proc.stdout, self._log),
            name=f"{self.name}-log",
            daemon=True,
        )
        self._reader.start()

    def _pump_output(self, stream: IO[bytes], log: IO[str]) -> None:
        """Copy registry output to the log file and watch for the port and bind failures."""
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                log.write(line)
                log.flush()
                if not self._port_seen.is_set():
                    match = _LISTENING.search(line)
                    if match:
                        self._port = int(match.group(1))
                        self._port_seen.set()
                if _BIND_FAILURE.search(line):
                    self._bind_failed.set()
        except (ValueError, OSError):
            # The pipe or log was closed under us after a stop that timed out joining this
            # thread; nothing is left to copy, and raising here would only be noise.
            return

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._proc is not None
        while not self._port_seen.wait(0.05):
            if self._proc.poll() is not None:
                self._join_reader()  # let the reader flush the final lines (bind errors)
                raise RegistryError(
                    f"{self.name}: exited with {self._proc.returncode}" + self._tail()
                )
            if time.monotonic() > deadline:
                raise RegistryError(f"{self.name}: no 'listening on' line in time" + self._tail())
        while True:
            status = self._probe()
            if status in (200, 401):
                return
            if self._proc.poll() is not None:
                raise RegistryError(
                    f"{self.name}: exited with {self._proc.returncode}" + self._tail()
                )
            if time.monotonic() > deadline:
                raise RegistryError(f"{self.name}: /v2/ not ready (last {status})" + self._tail())
            time.sleep(0.05)

    def _probe(self) -> int | None:
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(
                LOOPBACK, self._port, timeout=2, context=self.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(LOOPBACK, self._port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return None
        else:
            return response.status
        finally:
            conn.close()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT_S)
            self._join_reader()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
            if not self._reader.is_alive():
                self._reader = None

    def _tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n--- last log lines ---\n" + "\n".join(text.splitlines()[-lines:])


def _htpasswd_line(username: str, password: str) -> str:
    """Produce a bcrypt htpasswd entry; Distribution's htpasswd auth accepts only bcrypt.

    Prefers apache2-utils' ``htpasswd`` and falls back to the ``bcrypt`` package so the harness
    works wherever either is available.
    """
    if shutil.which("htpasswd"):
        result = subprocess.run(
            ["htpasswd", "-Bbn", username, password],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip() + "\n"
    try:
        import bcrypt  # type: ignore[import-not-found]  # noqa: PLC0415 - optional fallback
    except ImportError as exc:
        raise RegistryError(
            "basic auth needs `htpasswd` (apt-get install apache2-utils) or the bcrypt package"
        ) from exc
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode("ascii")
    return f"{username}:{hashed}\n"


def _to_yaml(value: Mapping[str, Any], indent: int = 0) -> str:
    """Emit the small config dialect we need: nested maps, scalar lists, strings, bools, ints.

    Strings are written JSON-quoted, which is valid YAML, so paths and regexes need no
    escaping rules of their own; that keeps PyYAML out of the dependencies.
    """
    pad = "  " * indent
    out: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            out.append(f"{pad}{key}:\n{_to_yaml(item, indent + 1)}")
        elif isinstance(item, list):
            out.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in item)}]\n")
        else:
            out.append(f"{pad}{key}: {_scalar(item)}\n")
    return "".join(out)


def _scalar(item: object) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return json.dumps(item)
    raise TypeError(f"unsupported config value {item!r}")
