"""Same content is decided by bytes or by digests of one algorithm, never by spelling: a source that
names its manifests ``sha512:`` (devtools/hostile_registry.py with manifest_digests="sha512"; Distribution cannot) is in sync with a
destination that answers ``sha256:`` for the same bytes, in copy, plan, sync and status."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.hostile_registry import HostileRegistry
from devtools.registry import RegistryProcess
from tests.conftest import EXAMPLE, PROD, CliRun
from tests.registry_checks import skopeo, skopeo_raw_digest

from promoter.oci.digest import Digest, compute_digest, hashes_to, same_digest

_DATA = b'{"schemaVersion": 2}'
_SHA256 = compute_digest(_DATA)
_SHA512 = compute_digest(_DATA, "sha512")
_OTHER = compute_digest(b"other")


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (_SHA256, _SHA256, True),
        (_SHA512, _SHA512, True),
        (_SHA256, _OTHER, False),
        (_SHA256, _SHA512, None),  # two algorithms: only the bytes can tell
        (_SHA512, _OTHER, None),
    ],
)
def test_same_digest_answers_only_within_one_algorithm(
    first: Digest, second: Digest, same: bool | None
) -> None:
    """Digests of one algorithm compare; digests of two say nothing about each other."""
    assert same_digest(first, second) is same


@pytest.mark.parametrize(
    ("data", "digest", "expected"),
    [(_DATA, _SHA256, True), (_DATA, _SHA512, True), (b"other", _SHA512, False)],
)
def test_hashes_to_hashes_with_the_digests_own_algorithm(
    data: bytes, digest: Digest, *, expected: bool
) -> None:
    """Bytes match a digest of either algorithm exactly when they are its content."""
    assert hashes_to(data, digest) is expected


@pytest.fixture
def sha512_registry() -> Iterator[HostileRegistry]:
    """A read-only registry naming its manifests by sha512 digests."""
    with HostileRegistry(manifest_digests="sha512") as registry:
        yield registry


def _image(seed: str, *, index: bool) -> images.Image:
    if index:
        return images.multi_arch_index(seed, layer_sizes=(400, 300))
    return images.oci_image([images.layer(600, seed)], seed=seed)


@pytest.mark.parametrize("index", [False, True], ids=["image", "index"])
def test_copy_from_a_sha512_source_reruns_as_present_not_as_a_conflict(
    sha512_registry: HostileRegistry,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    *,
    index: bool,
) -> None:
    """The first copy writes the exact bytes (skopeo reads them back); the re-run finds the same
    bytes under the tag although the registries spell their digests differently: present, exit 0,
    nothing written."""
    image = _image(f"s512-{repo}", index=index)
    source_digest = sha512_registry.add_image(repo, "1.0", image)
    src = f"{sha512_registry.host}/{repo}:1.0"
    first = cli("copy", src, f"{dest_registry.host}/{repo}:1.0", "-o", "json")
    assert first.code == 0, first.err
    assert first.json()["action"] == "copied"
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == image.digest
    with FaultProxy(dest_registry.url) as proxy:
        again = cli("copy", src, f"{proxy.host}/{repo}:1.0", "-o", "json")
    assert again.code == 0, again.err
    assert again.json()["action"] == "present"
    assert again.json()["digest"] == source_digest
    assert {h.method for h in proxy.hits if h.path != "/v2/"} <= {"HEAD", "GET"}
    # A destination named by the source's content in sha256 is the same content too.
    pinned = cli("copy", src, f"{dest_registry.host}/{repo}@{image.digest}", "-o", "json")
    assert pinned.code == 0, pinned.err
    assert pinned.json()["action"] == "present"


def test_other_content_under_the_tag_is_still_a_conflict(
    sha512_registry: HostileRegistry,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """When the source's tag moves to other bytes, the destination's tag is a conflict (exit 3)
    naming both digests, each in its registry's own algorithm."""
    sha512_registry.add_image(repo, "1.0", _image(f"before-{repo}", index=False))
    src = f"{sha512_registry.host}/{repo}:1.0"
    dst = f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", src, dst).code == 0
    old = skopeo_raw_digest(dest_registry, f"{repo}:1.0")
    new = sha512_registry.add_image(repo, "1.0", _image(f"after-{repo}", index=False))
    refused = cli("copy", src, dst)
    assert refused.code == 3
    assert old in refused.err
    assert new in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == old


# plan, sync and status over a GitOps repository whose dev registry names content in sha512 -----

_TAGS = {"cart": ("2.3.1", "2.4.0"), "checkout": ("1.8.0",), "catalog": ("3.0.2", "3.1.0")}


def _statuses(run: CliRun) -> dict[str, str]:
    """image -> plan status, from ``plan -o json``."""
    items: list[dict[str, Any]] = run.json()["images"]  # type: ignore[assignment] # JSON shape
    return {str(i["image"]): str(i["status"]) for i in items}


def _drift(run: CliRun, prefix: str) -> dict[str, object]:
    """module -> production's drift from dev, from ``status -o json``."""
    rows = {r["module"]: r["environments"] for r in run.json()["modules"]}  # type: ignore[union-attr]
    return {module: rows[f"{prefix}/{module}"]["production"]["drift"] for module in _TAGS}


def _behind(run: CliRun, prefix: str) -> dict[str, object]:
    """module -> whether production is behind dev, from ``status -o json``."""
    modules: list[dict[str, Any]] = run.json()["modules"]  # type: ignore[assignment] # JSON shape
    rows = {r["module"]: r["environments"] for r in modules}
    return {module: rows[f"{prefix}/{module}"]["production"]["behind"] for module in _TAGS}


def test_plan_sync_and_status_agree_with_a_sha512_source(
    sha512_registry: HostileRegistry,
    dest_registry: RegistryProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """After a sync, plan says present (exit 0) and status says production is not behind where it
    runs dev's bytes; other bytes under checkout's tag in dev make plan say diverged (exit 0, and
    3 with --fail-on-diverged) and status diverged."""
    prefix = f"shop{uuid.uuid4().hex[:8]}"
    for module, tags in _TAGS.items():
        for tag in tags:
            sha512_registry.add_image(
                f"{prefix}/{module}", tag, _image(f"{prefix}-{module}-{tag}", index=True)
            )
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    config = root / "promoter.yaml"
    text = config.read_text().replace("http://127.0.0.1:5101", sha512_registry.url)
    config.write_text(text.replace("http://127.0.0.1:5102", dest_registry.url))
    for path in (root / "infra").rglob("*.yaml"):
        path.write_text(path.read_text().replace("/shop/", f"/{prefix}/"))
    monkeypatch.chdir(root / "infra")

    assert set(_statuses(cli("plan", "production", "-o", "json")).values()) == {"copy", "external"}
    synced = cli("sync", "production")
    assert synced.code == 0, synced.err
    plan = cli("plan", "production", "-o", "json")
    assert plan.code == 0, plan.err
    assert set(_statuses(plan).values()) == {"present", "external"}
    status = cli("status", "-o", "json")
    assert status.code == 0, status.err
    # checkout runs 1.8.0 in both; cart and catalog run older tags (other bytes) in production.
    assert _behind(status, prefix) == {"cart": True, "checkout": False, "catalog": True}
    again = cli("sync", "production")
    assert again.code == 0, again.err
    assert "0 copied" in again.out

    sha512_registry.add_image(
        f"{prefix}/checkout", "1.8.0", _image(f"{prefix}-rebuilt", index=True)
    )
    moved = cli("plan", "production", "-o", "json")
    assert moved.code == 0, moved.err
    assert _statuses(moved)[f"{PROD}/{prefix}/checkout:1.8.0"] == "diverged"
    assert cli("plan", "production", "--fail-on-diverged").code == 3
    assert _drift(cli("status", "-o", "json"), prefix)["checkout"] == "diverged"


def test_the_shim_names_manifests_in_sha512_as_a_real_registry_would(
    sha512_registry: HostileRegistry, repo: str
) -> None:
    """The harness itself: a tag answers ``Docker-Content-Digest: sha512:...`` of the exact bytes,
    which skopeo (an independent client) reads back."""
    image = _image("shim", index=False)
    digest = sha512_registry.add_image(repo, "1.0", image)
    assert digest == "sha512:" + hashlib.sha512(image.manifest).hexdigest()
    assert digest == images.sha512_digest(image.manifest)
    read = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{sha512_registry.host}/{repo}:1.0"
    )
    assert read.stdout.encode() == image.manifest
