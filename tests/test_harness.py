"""Proves the devtools harness itself against the real Distribution registry and skopeo.

If these fail, every end-to-end test built on the harness is suspect, so they run first and
fast: they check the four registry configurations, the independent pusher (cross-checked with
skopeo), the token server's refusal of anonymous pulls, and the fault proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from devtools import images
from devtools.fault_proxy import DROPPED, FaultProxy
from devtools.registry import AuthMode, RegistryProcess
from devtools.token_server import b64url_decode

CONFIGS: dict[str, tuple[AuthMode, bool]] = {
    "none": ("none", False),
    "basic": ("basic", False),
    "token": ("token", False),
    "tls": ("none", True),
}


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    """An HTTP client that never retries, so tests see exactly what the server answered."""
    manager = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10.0))
    yield manager
    manager.clear()


@pytest.fixture(params=sorted(CONFIGS))
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryProcess]:
    """A running registry in each of the four configurations."""
    auth, tls = CONFIGS[request.param]
    with RegistryProcess(tmp_path / "reg", auth=auth, tls=tls) as registry:
        yield registry


@pytest.fixture
def harness_plain(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A running registry without auth or TLS."""
    with RegistryProcess(tmp_path / "plain") as registry:
        yield registry


@pytest.fixture
def harness_token(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A running registry guarded by the devtools token server."""
    with RegistryProcess(tmp_path / "token", auth="token") as registry:
        yield registry


def skopeo(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    """Run skopeo with a private HOME so no auth file or policy of the machine leaks in."""
    env = {**os.environ, "HOME": str(home), "REGISTRY_AUTH_FILE": str(home / "auth.json")}
    env.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run(["skopeo", *args], capture_output=True, timeout=60, env=env, check=False)


def sha256(data: bytes) -> str:
    """Digest string for ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_registry_answers_v2_with_its_auth_mode(
    any_registry: RegistryProcess, pool: urllib3.PoolManager
) -> None:
    """Every configuration serves /v2/: open ones anonymously, guarded ones only with headers."""
    registry = any_registry
    client = urllib3.PoolManager(ssl_context=registry.ssl_context(), retries=False)
    try:
        anonymous = client.request("GET", registry.url + "/v2/")
        authorised = client.request(
            "GET", registry.url + "/v2/", headers=registry.push_headers("harness/x")
        )
    finally:
        client.clear()
    assert anonymous.status == (200 if registry.auth == "none" else 401)
    assert authorised.status == 200
    assert registry.url.startswith("https://" if registry.tls else "http://")


def test_pushed_index_reads_back_byte_exact_through_skopeo(
    any_registry: RegistryProcess, tmp_path: Path
) -> None:
    """A pushed multi-arch OCI index and its children read back via skopeo with equal digests."""
    registry = any_registry
    index = images.multi_arch_index("harness")
    pushed = images.push_image(
        registry.url,
        "harness/app",
        index,
        "v1",
        headers=registry.push_headers("harness/app"),
        ssl_context=registry.ssl_context(),
    )
    assert pushed == index.digest
    # Platforms share layer bytes: two children, two configs, two shared layers.
    assert len(index.children) == 2
    assert len(index.all_blobs()) == 4
    raw = skopeo(
        "inspect",
        "--raw",
        *registry.skopeo_flags(),
        f"docker://{registry.host}/harness/app:v1",
        home=tmp_path,
    )
    assert raw.returncode == 0, raw.stderr.decode()
    assert sha256(raw.stdout) == index.digest
    child = index.children[1]
    raw_child = skopeo(
        "inspect",
        "--raw",
        *registry.skopeo_flags(),
        f"docker://{registry.host}/harness/app@{child.digest}",
        home=tmp_path,
    )
    assert raw_child.returncode == 0, raw_child.stderr.decode()
    assert raw_child.stdout == child.manifest


def test_token_registry_refuses_anonymous_pull_and_accepts_minted_token(
    harness_token: RegistryProcess, pool: urllib3.PoolManager, tmp_path: Path
) -> None:
    """Anonymous tokens carry no access (401 at the registry); a minted pull token works."""
    registry = harness_token
    server = registry.token_server
    assert server is not None
    image = images.oci_image([images.layer(512, "tok")], seed="tok")
    images.push_image(
        registry.url, "harness/tok", image, "t", headers=registry.push_headers("harness/tok")
    )
    manifest_url = f"{registry.url}/v2/harness/tok/manifests/t"
    accept = {"Accept": images.OCI_MANIFEST}

    challenge = pool.request("GET", manifest_url, headers=accept)
    assert challenge.status == 401
    assert 'scope="repository:harness/tok:pull"' in challenge.headers["WWW-Authenticate"]

    anonymous = pool.request(
        "GET",
        server.realm,
        fields={"service": server.service, "scope": "repository:harness/tok:pull"},
    )
    assert anonymous.status == 200
    anonymous_token = anonymous.json()["token"]
    claims = json.loads(b64url_decode(anonymous_token.split(".")[1]))
    assert claims["access"] == []
    refused = pool.request(
        "GET", manifest_url, headers={**accept, "Authorization": f"Bearer {anonymous_token}"}
    )
    assert refused.status == 401
    assert server.requests[-1].basic_auth is None

    pull = [{"type": "repository", "name": "harness/tok", "actions": ["pull"]}]
    allowed = pool.request(
        "GET", manifest_url, headers={**accept, "Authorization": f"Bearer {server.mint(pull)}"}
    )
    assert allowed.status == 200
    assert allowed.data == image.manifest

    denied = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        f"docker://{registry.host}/harness/tok:t",
        home=tmp_path,
    )
    assert denied.returncode != 0


def test_token_server_password_and_refresh_grants_work_at_the_registry(
    tmp_path: Path, pool: urllib3.PoolManager
) -> None:
    """POST password and refresh_token grants yield usable tokens; kid-identified keys verify."""
    with RegistryProcess(tmp_path / "kid", auth="token", token_key_id="kid") as registry:
        server = registry.token_server
        assert server is not None
        assert server.identity_token is not None
        image = images.oci_image([images.layer(64, "kid")], seed="kid")
        images.push_image(
            registry.url, "harness/kid", image, "k", headers=registry.push_headers("harness/kid")
        )
        header = json.loads(
            b64url_decode(registry.push_headers("x")["Authorization"][7:].split(".")[0])
        )
        assert "kid" in header
        assert "x5c" not in header

        scope = "repository:harness/kid:pull"
        by_password = pool.request_encode_body(
            "POST",
            server.realm,
            encode_multipart=False,
            fields={
                "grant_type": "password",
                "username": server.username,
                "password": server.password,
                "service": server.service,
                "scope": scope,
                "client_id": "harness",
                "access_type": "offline",
            },
        )
        assert by_password.status == 200
        assert by_password.json()["refresh_token"] == server.identity_token
        by_refresh = pool.request_encode_body(
            "POST",
            server.realm,
            encode_multipart=False,
            fields={
                "grant_type": "refresh_token",
                "refresh_token": server.identity_token,
                "service": server.service,
                "scope": scope,
                "client_id": "harness",
            },
        )
        assert by_refresh.status == 200
        wrong = pool.request_encode_body(
            "POST",
            server.realm,
            encode_multipart=False,
            fields={"grant_type": "refresh_token", "refresh_token": "nope", "scope": scope},
        )
        assert wrong.status == 401
        for response in (by_password, by_refresh):
            token = response.json()["access_token"]
            got = pool.request(
                "HEAD",
                f"{registry.url}/v2/harness/kid/manifests/k",
                headers={"Accept": images.OCI_MANIFEST, "Authorization": f"Bearer {token}"},
            )
            assert got.status == 200
        assert [r.status for r in server.requests] == [200, 200, 401]


def test_skopeo_reads_oci_layout_and_basic_creds_gate_copy(tmp_path: Path) -> None:
    """write_oci_layout output copies into a basic-auth registry digest-exact with skopeo."""
    artifact = images.oci_artifact(content=b"helm chart bytes")
    index = images.multi_arch_index("layout")
    layout = tmp_path / "layout"
    images.write_oci_layout(layout, artifact, ref_name="chart")
    images.write_oci_layout(layout, index, ref_name="list")
    assert images.read_oci_layout_digest(layout, "chart") == artifact.digest
    assert images.read_oci_layout_digest(layout, "list") == index.digest
    with RegistryProcess(tmp_path / "basic", auth="basic") as registry:
        copied = skopeo(
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            *registry.skopeo_flags("dest"),
            f"oci:{layout}:list",
            f"docker://{registry.host}/harness/list:l",
            home=tmp_path,
        )
        assert copied.returncode == 0, copied.stderr.decode()
        raw = skopeo(
            "inspect",
            "--raw",
            *registry.skopeo_flags(),
            f"docker://{registry.host}/harness/list:l",
            home=tmp_path,
        )
        assert sha256(raw.stdout) == index.digest
        copied = skopeo(
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            *registry.skopeo_flags("dest"),
            f"oci:{layout}:chart",
            f"docker://{registry.host}/harness/chart:c",
            home=tmp_path,
        )
        assert copied.returncode == 0, copied.stderr.decode()
        raw = skopeo(
            "inspect",
            "--raw",
            *registry.skopeo_flags(),
            f"docker://{registry.host}/harness/chart:c",
            home=tmp_path,
        )
        assert raw.stdout == artifact.manifest


def test_edge_images_push_and_storage_paths(harness_plain: RegistryProcess) -> None:
    """Zero-byte blobs, the empty layer and a foreign layer without its blob are accepted."""
    registry = harness_plain
    assert images.sha256_digest(images.empty_layer()) == images.EMPTY_LAYER_DIGEST
    foreign: dict[str, Any] = {
        "mediaType": images.OCI_FOREIGN_LAYER_GZIP,
        "digest": "sha256:" + "ab" * 32,
        "size": 1234,
        "urls": ["https://example.invalid/foreign.tar.gz"],
    }
    image = images.oci_image([b"", images.empty_layer()], seed="edge", extra_layers=[foreign])
    images.push_image(registry.url, "harness/edge", image, None)
    for blob in image.all_blobs():
        assert registry.blob_data_path(blob.digest).read_bytes() == blob.data
    assert not registry.blob_data_path(foreign["digest"]).exists()
    port = registry.port
    registry.restart()
    assert registry.port == port
    again = urllib3.request(
        "GET",
        f"{registry.url}/v2/harness/edge/manifests/{image.digest}",
        headers={"Accept": images.OCI_MANIFEST},
        retries=False,
    )
    assert again.status == 200
    assert again.data == image.manifest


def test_proxy_injects_503_once_then_forwards(
    harness_plain: RegistryProcess, pool: urllib3.PoolManager
) -> None:
    """A 503 rule fires exactly once without forwarding; later requests reach the registry."""
    with FaultProxy(harness_plain.url) as proxy:
        rule = proxy.add_rule("GET", r"^/v2/$", status=503, headers={"Retry-After": "0"})
        first = pool.request("GET", proxy.url + "/v2/")
        second = pool.request("GET", proxy.url + "/v2/")
        assert first.status == 503
        assert first.headers["Retry-After"] == "0"
        assert first.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert second.status == 200
        assert second.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        assert rule.fired == 1
        assert proxy.hits == [("GET", "/v2/", 503), ("GET", "/v2/", 200)]

        # Uploads go through the proxy too, because it rewrites the registry's Location.
        image = images.oci_image([images.layer(300_000, "proxy")], seed="proxy")
        put_rule = proxy.add_rule("PUT", r"/blobs/uploads/.*digest=", status=500)
        with pytest.raises(images.PushError):
            images.push_image(proxy.url, "harness/proxy", image, "p")
        assert put_rule.fired == 1
        assert images.push_image(proxy.url, "harness/proxy", image, "p") == image.digest
        assert any(m == "PUT" and "/blobs/uploads/" in p and s == 201 for m, p, s in proxy.hits)

        dropped = proxy.add_rule(None, r"/tags/list", drop=True, before=harness_plain.stop)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            pool.request("GET", proxy.url + "/v2/harness/proxy/tags/list")
        assert dropped.fired == 1
        assert proxy.hits[-1].status == DROPPED
        down = pool.request("GET", proxy.url + "/v2/")
        assert down.status == 502
        assert not proxy.errors


def test_the_demo_runs_end_to_end_and_leaves_its_work_for_inspection(tmp_path: Path) -> None:
    """make demo's script exits 0, leaves the GitOps repository with its promotions committed
    (one merged from a branch) and listed by history, shows the webhook allowing, denying and
    promoting on demand, and says where its work is."""
    work = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "devtools.demo"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DEMO_DIR": str(work)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"left for inspection in {work}" in run.stdout
    assert '"allowed": false' in run.stdout
    assert "the signature verifies in production" in run.stdout
    assert "would delete 0 tags and 0 manifests" in run.stdout  # pruned, and a re-run is empty
    assert "catalog 3.1.0" in run.stdout
    assert "+ 3 signatures, 1 referrer" in run.stdout
    assert "shop/catalog:3.1.0 was promoted from dev on demand" in run.stdout
    log = subprocess.run(
        ["git", "-C", str(work / "gitops"), "log", "--format=%s%n%(trailers:only,unfold)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "promote shop/cart to production: 2.3.1 -> 2.4.0" in log
    assert "promote shop/catalog to production: 3.0.2 -> 3.1.0" in log
    assert "Merge promote/catalog-3.1.0" in log
    assert log.count("Promoted-To: production") == 2
    history = run.stdout.split("$ promoter history production", 1)[1]
    assert "shop/catalog  3.1.0" in history
    assert "shop/cart     2.4.0" in history
    page = work / "status.html"
    assert str(page) in run.stdout.split("$ promoter status --html", 1)[1]
    assert "shop/catalog" in page.read_text()
    assert (work / "production").is_dir()
