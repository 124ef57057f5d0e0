"""Authentication and TLS against the real registry: Basic, Bearer tokens, identity tokens, TLS."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push, skopeo_raw_digest


def _ca_args(registry: RegistryProcess) -> list[str]:
    return ["--ca-file", str(registry.ca_file)] if registry.ca_file else []


@pytest.fixture(params=["basic", "token", "tls"])
def secured(request: pytest.FixtureRequest) -> RegistryProcess:
    """Each secured registry configuration in turn."""
    registry: RegistryProcess = request.getfixturevalue(f"{request.param}_registry")
    return registry


def test_copy_into_a_secured_registry(
    secured: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """With credentials from the docker config (and the CA for TLS), a copy into it lands digest-exact."""
    docker_config(secured)
    digest = push(source_registry, repo, images.multi_arch_index("into"))
    result = cli(
        "copy",
        *_ca_args(secured),
        f"{source_registry.host}/{repo}:1.0",
        f"{secured.host}/{repo}:1.0",
    )
    assert result.code == 0, result.err
    assert skopeo_raw_digest(secured, f"{repo}:1.0") == digest


def test_copy_out_of_a_secured_registry(
    secured: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """Pulling from a secured registry with stored credentials works too."""
    docker_config(secured)
    digest = push(secured, repo, images.multi_arch_index("outof"))
    result = cli(
        "copy", *_ca_args(secured), f"{secured.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    )
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_without_credentials_the_registry_refuses_in_one_line(
    secured: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Anonymous access to a secured registry fails with exit 1, the status and the registry's code."""
    push(source_registry, repo, images.oci_image([images.layer(10, "anon")], seed="anon"))
    result = cli(
        "copy",
        *_ca_args(secured),
        f"{source_registry.host}/{repo}:1.0",
        f"{secured.host}/{repo}:1.0",
    )
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert "401" in result.err
    assert "no credentials for" in result.err
    assert "promoter login" in result.err
    assert "Traceback" not in result.err


def test_tokens_carry_the_right_scopes_and_are_cached(
    token_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """Source gets pull, destination pull+push, a mount adds pull on its source; tokens are reused."""
    docker_config(token_registry)
    image = images.multi_arch_index("scopes", layer_sizes=(100, 200, 300))
    push(token_registry, repo, image)
    server = token_registry.token_server
    assert server is not None
    server.requests.clear()
    result = cli(
        "copy",
        f"{token_registry.host}/{repo}:1.0",
        f"{token_registry.host}/{repo}-dst:1.0",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert result.json()["blobs"]["mounted"] == len(image.all_blobs())  # type: ignore[index]
    scopes = [tuple(sorted(r.query.get("scope", []))) for r in server.requests]
    assert all(r.basic_auth_valid for r in server.requests)
    assert (f"repository:{repo}:pull",) in scopes
    assert (f"repository:{repo}-dst:pull,push",) in scopes
    assert (f"repository:{repo}-dst:pull,push", f"repository:{repo}:pull") in scopes
    # One token per distinct scope set, however many blobs and manifests moved.
    assert len(scopes) == len(set(scopes))


def test_identity_token_is_exchanged_with_the_refresh_grant(
    token_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A docker config identitytoken is sent as an OAuth2 refresh_token, never as a password."""
    server = token_registry.token_server
    assert server is not None
    assert server.identity_token
    config = tmp_path / "idtoken"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    token_registry.host: {
                        "auth": base64.b64encode(b"tester:").decode(),
                        "identitytoken": server.identity_token,
                    }
                }
            }
        )
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    digest = push(source_registry, repo, images.oci_image([images.layer(10, "idt")], seed="idt"))
    server.requests.clear()
    result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{token_registry.host}/{repo}:1.0")
    assert result.code == 0, result.err
    assert server.requests
    assert all(
        r.method == "POST" and r.form["grant_type"] == ["refresh_token"] for r in server.requests
    )
    assert manifest_digest(token_registry, repo, "1.0") == digest


def test_tls_without_the_ca_fails_clearly_and_insecure_registry_allows_it(
    tls_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """An untrusted certificate is one line that points at --ca-file; --insecure-registry skips the check."""
    docker_config(tls_registry)
    digest = push(source_registry, repo, images.oci_image([images.layer(10, "tls")], seed="tls"))
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{tls_registry.host}/{repo}:1.0"
    refused = cli("copy", src, dst)
    assert refused.code == 1
    assert "TLS" in refused.err
    assert "--ca-file" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    allowed = cli("copy", "--insecure-registry", tls_registry.host, src, dst)
    assert allowed.code == 0, allowed.err
    assert manifest_digest(tls_registry, repo, "1.0") == digest


def test_secrets_never_appear_in_output_even_with_debug(
    token_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """With --debug logging every request, neither the password nor any token is printed."""
    docker_config(token_registry)
    push(source_registry, repo, images.oci_image([images.layer(10, "dbg")], seed="dbg"))
    result = cli(
        "copy", "--debug", f"{source_registry.host}/{repo}:1.0", f"{token_registry.host}/{repo}:1.0"
    )
    assert result.code == 0, result.err
    assert "PUT" in result.err  # debug logging did run
    password = token_registry.password
    assert password
    for text in (result.out, result.err):
        assert password not in text
        assert "eyJ" not in text  # the start of every JWT
        assert "_state=" not in text  # upload session state in Location query strings


class _StorageHandler(BaseHTTPRequestHandler):
    """Stands in for the object storage a registry redirects blob downloads to (S3 behind ECR)."""

    blobs: dict[str, bytes] = {}  # noqa: RUF012 - set per test before serving
    seen_authorization: list[str | None] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.seen_authorization.append(self.headers.get("Authorization"))
        data = self.blobs.get(self.path.rsplit("/", 1)[-1])
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def storage_server() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on loopback serving blobs by digest and recording Authorization headers."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StorageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_redirects_to_storage_never_carry_the_registry_token(
    token_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    storage_server: ThreadingHTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blob GETs redirected to another host are followed without the registry's Authorization."""
    image = images.oci_image([images.layer(5000, "redir")], seed="redir")
    digest = push(token_registry, repo, image)
    _StorageHandler.blobs = {b.digest: b.data for b in image.all_blobs()}
    _StorageHandler.seen_authorization = []
    port = storage_server.server_address[1]
    with FaultProxy(token_registry.url) as proxy:
        secret = base64.b64encode(
            f"{token_registry.username}:{token_registry.password}".encode()
        ).decode()
        (tmp_path / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": secret}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        for blob in image.all_blobs():
            proxy.add_rule(
                "GET",
                f"/blobs/{blob.digest}$",
                status=307,
                headers={"Location": f"http://localhost:{port}/presigned/{blob.digest}"},
            )
        result = cli("copy", f"{proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert result.code == 0, result.err
    assert len(_StorageHandler.seen_authorization) == len(image.all_blobs())
    assert _StorageHandler.seen_authorization == [None] * len(image.all_blobs())
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_relative_redirects_are_resolved_against_the_request(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A relative Location on a blob download is followed on the same registry."""
    image = images.oci_image([images.layer(3000, "relative")], seed="relative")
    digest = push(source_registry, repo, image)
    with FaultProxy(source_registry.url) as proxy:
        rules = [
            proxy.add_rule(
                "GET",
                f"/blobs/{blob.digest}$",
                status=307,
                headers={"Location": f"../blobs/{blob.digest}?moved=1"},
            )
            for blob in image.all_blobs()
        ]
        result = cli("copy", f"{proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
        followed = [h for h in proxy.hits if "moved=1" in h.path]
    assert result.code == 0, result.err
    assert all(rule.fired == 1 for rule in rules)
    assert len(followed) == len(image.all_blobs())
    assert manifest_digest(dest_registry, repo, "1.0") == digest


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_a_refused_docker_login_falls_back_to_auth_json(
    kind: str,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """A stale password in the docker config gives way to the containers auth.json, whether the
    registry asks for Basic itself or its token server does; with both stale, one line names both."""
    secured: RegistryProcess = request.getfixturevalue(f"{kind}_registry")
    digest = push(source_registry, repo, images.oci_image([images.layer(60, kind)], seed=repo))

    def write(path: Path, password: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        token = base64.b64encode(f"{secured.username}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {secured.host: {"auth": token}}}))
        return path

    write(tmp_path / "docker" / "config.json", "stale-password")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    auth_json = write(tmp_path / "auth.json", str(secured.password))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_json))
    done = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{secured.host}/{repo}:1.0")
    assert done.code == 0, done.err
    assert manifest_digest(secured, repo, "1.0") == digest
    write(auth_json, "also-stale")
    refused = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{secured.host}/{repo}:2.0")
    assert refused.code == 1
    line = refused.err.strip()
    assert "\n" not in line
    assert "docker config auths" in line
    assert "containers auth.json" in line
    assert "stale" not in line


def test_a_403_for_one_repository_leaves_the_credential_for_the_others(
    basic_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A credential the registry accepted, refused for one repository (a permission), is neither
    passed over for a stale second source nor dropped: other repositories keep working."""
    import promoter  # noqa: PLC0415 - the API tier of this check
    from promoter.errors import AuthenticationError  # noqa: PLC0415

    digest = push(basic_registry, repo, images.oci_image([images.layer(40, "pm")], seed=repo))
    with FaultProxy(basic_registry.url) as proxy:
        proxy.add_rule(None, r"^/v2/forbidden/", status=403, times=100)

        def write(path: Path, password: str) -> Path:
            path.parent.mkdir(parents=True, exist_ok=True)
            token = base64.b64encode(f"{basic_registry.username}:{password}".encode()).decode()
            path.write_text(json.dumps({"auths": {proxy.host: {"auth": token}}}))
            return path

        write(tmp_path / "docker" / "config.json", str(basic_registry.password))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(write(tmp_path / "auth.json", "stale")))
        with promoter.Session(insecure_registries=[proxy.host]) as session:
            assert str(session.digest(f"{proxy.host}/{repo}:1.0")) == digest
            with pytest.raises(AuthenticationError) as denied:
                session.digest(f"{proxy.host}/forbidden/app:1.0")
            for _ in range(3):
                assert str(session.digest(f"{proxy.host}/{repo}:1.0")) == digest
    assert "not allowed to do this" in str(denied.value)
    assert "docker config auths" in str(denied.value)


def test_a_repository_the_token_does_not_cover_is_named_not_a_login_problem(
    token_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
) -> None:
    """A token granted without this repository (insufficient_scope, what Docker Hub answers for a
    repository that does not exist) names the repository and says it may not exist; plan calls
    the image missing-source, not a credentials error."""
    docker_config(token_registry)
    server = token_registry.token_server
    assert server is not None
    server.hidden.add(repo)
    try:
        looked = cli("digest", f"{token_registry.host}/{repo}:1.0")
        assert looked.code == 1
        [line] = looked.err.splitlines()
        assert f"refused repository {repo} (insufficient_scope)" in line
        assert "may not exist, or the credentials cannot read it" in line
        assert "did not accept" not in line
        planned = cli(
            "sync",
            "--dry-run",
            "-o",
            "json",
            "--from-registry",
            token_registry.host,
            "--image",
            f"{dest_registry.host}/{repo}:1.0",
        )
        assert planned.code == 3, planned.err
        [item] = planned.json()["images"]  # type: ignore[misc]
        assert item["status"] == "missing-source"
        assert f"refused repository {repo}" in item["error"]
    finally:
        server.hidden.discard(repo)


def test_a_ca_file_that_is_a_named_pipe_is_refused_at_once_not_waited_on(
    tls_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    docker_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """OpenSSL's own open of a FIFO nobody writes to waits forever, out of reach of --timeout and
    Ctrl-C: the CA file is read without blocking and refused in one line (exit 2). A CA file with
    text around its certificate (a comment in any encoding) still works."""
    docker_config(tls_registry)
    push(source_registry, repo, images.oci_image([images.layer(10, "fifo")], seed="fifo"))
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{tls_registry.host}/{repo}:1.0"
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    flag = cli("copy", "--ca-file", str(fifo), src, dst)
    assert flag.code == 2, flag.err
    assert f"--ca-file {fifo}: not a regular file" in flag.err
    config = tmp_path / "promoter.yaml"  # a registry's caFile reaches the transport unchecked
    config.write_text(f"registries:\n  {tls_registry.host}:\n    caFile: ca.pem\n")
    refused = cli("copy", "--config", str(config), src, dst)
    assert refused.code == 2, refused.err
    assert f"cannot load CA file {fifo}" in refused.err
    assert "not a regular file" in refused.err
    assert tls_registry.ca_file is not None
    commented = tmp_path / "commented.pem"
    commented.write_bytes(
        "# Zertifikat für die Registry\n".encode() + tls_registry.ca_file.read_bytes()
    )
    assert cli("copy", "--ca-file", str(commented), src, dst).code == 0
