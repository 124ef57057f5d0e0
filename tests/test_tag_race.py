"""The tag written last is checked: another writer moving it between our PUT and our check is a
conflict (exit 3), and a spurious MANIFEST_BLOB_UNKNOWN is retried once after re-checking the blobs.

Deterministic, no sleeps: the fault proxy's ``after``/``before`` callbacks run the second writer (or
break the storage) at exactly the moment between two of promoter's requests.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable

from devtools import images
from devtools.fault_proxy import FaultProxy, Hit
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push, skopeo_raw_digest

import promoter
from promoter.remote.copy import CopyAction

_BLOB_UNKNOWN = (
    b'{"errors": [{"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry"}]}'
)


def _after_last_tag_put(hits: list[Hit], tag_path: str) -> list[Hit]:
    """The requests after the last PUT of the tag."""
    last = max(i for i, h in enumerate(hits) if h.method == "PUT" and h.path == tag_path)
    return hits[last + 1 :]


def test_a_copy_checks_its_tag_with_one_head_after_the_last_put(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """An undisturbed copy sends exactly one request after its tag PUT: a HEAD of that tag."""
    digest = push(source_registry, repo, images.multi_arch_index("checked"))
    with FaultProxy(dest_registry.url) as proxy:
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert result.code == 0, result.err
    assert "copied" in result.out
    tag_path = f"/v2/{repo}/manifests/1.0"
    assert [(h.method, h.path, h.status) for h in _after_last_tag_put(proxy.hits, tag_path)] == [
        ("HEAD", tag_path, 200)
    ]
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_a_tag_moved_between_our_put_and_our_check_is_a_conflict_naming_both_digests(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Two copies of different images into one tag at once: the one whose tag was overwritten
    exits 3 naming both digests and prints no 'copied'; the last writer's copy stands."""
    ours = push(source_registry, repo, images.oci_image([images.layer(500, "ours")], seed="ours"))
    theirs_image = images.oci_image([images.layer(500, "theirs")], seed="theirs")
    theirs = push(source_registry, repo, theirs_image, tag="theirs")
    other_writer: list[CopyAction] = []

    def second_copy() -> None:
        # Runs after the registry committed our PUT and before promoter hears of it. The other
        # writer looked at the tag before our PUT, when it was empty; force=True stands in for
        # that earlier look (now it would see ours and refuse).
        done = promoter.copy(
            f"{source_registry.host}/{repo}:theirs", f"{dest_registry.host}/{repo}:1.0", force=True
        )
        other_writer.append(done.action)

    with FaultProxy(dest_registry.url) as proxy:
        rule = proxy.add_rule("PUT", f"/v2/{repo}/manifests/1.0$", after=second_copy)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert proxy.errors == []
    assert rule.fired == 1
    assert other_writer == [CopyAction.COPIED]
    assert result.code == 3, result.err
    assert "copied" not in result.out
    assert len(result.err.strip().splitlines()) == 1
    assert ours in result.err
    assert theirs in result.err
    assert "moved by another writer" in result.err
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == theirs


def test_a_tag_taken_while_our_blobs_moved_is_refused_before_our_put(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The tag was free when the copy began; another writer takes it while our blobs upload. The
    tag is looked at again right before it is written: exit 3 naming both digests, no PUT of the
    tag, and the other writer's image stands."""
    ours = push(source_registry, repo, images.oci_image([images.layer(700, "mine")], seed="mine"))
    theirs_image = images.oci_image([images.layer(700, "first")], seed="first")
    theirs = push(source_registry, repo, theirs_image, tag="first")
    other_writer: list[CopyAction] = []

    def other_copy() -> None:
        done = promoter.copy(
            f"{source_registry.host}/{repo}:first", f"{dest_registry.host}/{repo}:1.0"
        )
        other_writer.append(done.action)

    with FaultProxy(dest_registry.url) as proxy:
        # A blob upload's last request: by then our look at the tag (free) is long done.
        proxy.add_rule("PUT", "/blobs/uploads/", after=other_copy)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert proxy.errors == []
    assert other_writer == [CopyAction.COPIED]
    assert result.code == 3, result.err
    assert "copied" not in result.out
    assert ours in result.err
    assert theirs in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not [h for h in proxy.hits if h.method == "PUT" and h.path.endswith("/manifests/1.0")]
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == theirs


def test_a_tag_deleted_right_after_our_put_is_reported(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A tag that is gone when checked is no success either: exit 3, the message says so."""
    digest = push(source_registry, repo, images.oci_image([images.layer(300, "gone")], seed="gone"))

    def delete_it() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", dest_registry.port, timeout=10)
        try:
            conn.request("DELETE", f"/v2/{repo}/manifests/{digest}")
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 202, answer.status
        finally:
            conn.close()

    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", f"/v2/{repo}/manifests/1.0$", after=delete_it)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert proxy.errors == []
    assert result.code == 3, result.err
    assert "copied" not in result.out
    assert digest in result.err
    assert "no longer exists" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_a_spurious_manifest_blob_unknown_is_retried_once_after_checking_the_blobs(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """MANIFEST_BLOB_UNKNOWN for blobs the registry does have: the blobs are HEADed (none is
    uploaded again) and the tag PUT is sent exactly once more, which succeeds."""
    image = images.oci_image([images.layer(2000, "spurious"), images.layer(900, "s2")], seed="sp")
    digest = push(source_registry, repo, image)
    tag_path = f"/v2/{repo}/manifests/1.0"
    with FaultProxy(dest_registry.url) as proxy:
        rule = proxy.add_rule("PUT", f"{tag_path}$", status=400, body=_BLOB_UNKNOWN)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert rule.fired == 1
    assert result.code == 0, result.err
    assert "copied" in result.out
    puts = [h.status for h in proxy.hits if h.method == "PUT" and h.path == tag_path]
    assert puts == [400, 201]
    first_put = next(
        i for i, h in enumerate(proxy.hits) if h.path == tag_path and h.method == "PUT"
    )
    between = proxy.hits[first_put + 1 : -2]  # up to the retried PUT and its check
    # The failed PUT's own look at the tag (was it written anyway?), then one HEAD per blob.
    assert sorted((h.method, h.path.rsplit("/", 1)[1]) for h in between) == sorted(
        [("HEAD", "1.0"), *(("HEAD", blob.digest) for blob in image.blobs)]
    )
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == digest


def test_a_blob_lost_before_the_manifest_put_is_uploaded_again_and_the_put_retried(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The registry really lost a layer's link in the repository (its own MANIFEST_BLOB_UNKNOWN):
    the re-check finds it missing, uploads it again, and the one retried PUT succeeds."""
    lost = images.layer(3000, "really-lost")
    image = images.oci_image([lost], seed="really-lost")
    digest = push(source_registry, repo, image)
    lost_digest = images.sha256_digest(lost)
    link = (
        dest_registry.storage
        / "docker/registry/v2/repositories"
        / repo
        / "_layers/sha256"
        / lost_digest.split(":", 1)[1]
        / "link"
    )
    tag_path = f"/v2/{repo}/manifests/1.0"
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", f"{tag_path}$", before=link.unlink)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert proxy.errors == []
    assert result.code == 0, result.err
    puts = [h.status for h in proxy.hits if h.method == "PUT" and h.path == tag_path]
    assert puts == [400, 201]
    first_put = next(
        i for i, h in enumerate(proxy.hits) if h.path == tag_path and h.method == "PUT"
    )
    uploads = [h for h in proxy.hits[first_put:] if h.method == "PUT" and "digest=" in h.path]
    assert len(uploads) == 1
    assert lost_digest.split(":", 1)[1] in uploads[0].path
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == digest


def test_manifest_blob_unknown_twice_is_a_failure_after_one_retry(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The retry happens once, not in a loop: a second MANIFEST_BLOB_UNKNOWN fails the copy (exit 1)."""
    push(source_registry, repo, images.oci_image([images.layer(700, "twice")], seed="twice"))
    tag_path = f"/v2/{repo}/manifests/1.0"
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", f"{tag_path}$", status=400, body=_BLOB_UNKNOWN, times=5)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
    assert result.code == 1
    assert "MANIFEST_BLOB_UNKNOWN" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert [h.method for h in proxy.hits if h.path == tag_path].count("PUT") == 2
    assert manifest_digest(dest_registry, repo, "1.0") is None
