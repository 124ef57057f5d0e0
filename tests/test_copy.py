"""`promoter copy` against the real Distribution registry: digest-exact, complete, minimal writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import (
    has_blob,
    manifest_digest,
    push,
    skopeo,
    skopeo_raw_digest,
    write_batch,
)

from promoter.remote.repository import Repository
from promoter.transport.session import Transport


def assert_complete(registry: RegistryProcess, repo: str, image: images.Image) -> None:
    """Every manifest and blob of the image is in the destination repository."""
    for manifest in image.all_manifests():
        assert manifest_digest(registry, repo, manifest.digest) == manifest.digest
    for blob in image.all_blobs():
        assert has_blob(registry, repo, blob.digest), blob.digest


IMAGE_KINDS: dict[str, Callable[[], images.Image]] = {
    "docker-v2": lambda: images.docker_image(
        [images.layer(4096, "d1"), images.layer(2048, "d2")], seed="dv2"
    ),
    "oci-image": lambda: images.oci_image([images.layer(4096, "o1")], seed="oci"),
    "multi-arch-oci-index-shared-layers": lambda: images.multi_arch_index("ma"),
    "docker-manifest-list": lambda: images.multi_arch_index("ml", docker=True),
    "nested-index": lambda: images.oci_index(
        [
            images.multi_arch_index("n1"),
            images.oci_image([images.layer(1000, "n2")], arch="s390x", seed="n2"),
        ],
        platforms=[
            {"os": "linux", "architecture": "amd64"},
            {"os": "linux", "architecture": "s390x"},
        ],
    ),
    "helm-chart-artifact": lambda: images.oci_artifact(content=images.layer(3000, "chart")),
    "artifact-with-empty-config": lambda: images.oci_artifact(
        config_media_type="application/vnd.oci.empty.v1+json",
        layer_media_type="application/vnd.example.sbom.v1+json",
        content=b'{"sbom": true}',
        artifact_type="application/vnd.example.sbom.v1+json",
    ),
    "empty-layers": lambda: images.docker_image(
        [images.empty_layer(), images.layer(100, "e"), b""], seed="empty"
    ),
}


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_copies_every_kind_digest_exact(
    kind: str,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Each image kind lands complete with the source digest, and skopeo reads it back and copies it out."""
    image = IMAGE_KINDS[kind]()
    digest = push(source_registry, repo, image)
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["digest"] == digest
    assert doc["action"] == "copied"
    assert doc["blobs"] == {"copied": len(image.all_blobs()), "mounted": 0, "skipped": 0}
    assert doc["bytes"] == sum(b.size for b in image.all_blobs())
    assert_complete(dest_registry, repo, image)
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.0") == digest
    layout = tmp_path / "layout"
    if kind == "nested-index":
        # skopeo 1.9 cannot copy a nested index out ("Unexpectedly received a manifest list");
        # it read the bytes back above, and assert_complete checked every child and blob.
        return
    if image.media_type.startswith("application/vnd.oci."):
        skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            *dest_registry.skopeo_flags("src"),
            f"docker://{dest_registry.host}/{repo}:1.0",
            f"oci:{layout}:out",
        )
        assert images.read_oci_layout_digest(layout, "out") == digest
    else:
        # An OCI layout cannot hold Docker media types unconverted; skopeo's dir: format can.
        skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            *dest_registry.skopeo_flags("src"),
            f"docker://{dest_registry.host}/{repo}:1.0",
            f"dir:{layout}",
        )
        assert images.sha256_digest((layout / "manifest.json").read_bytes()) == digest


def test_rerun_when_present_only_reads(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A second copy of the same digest is 'present' and sends nothing but HEAD requests."""
    push(source_registry, repo, images.multi_arch_index("again"))
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", src, dst).code == 0
    with FaultProxy(dest_registry.url) as proxy:
        result = cli("copy", src, f"{proxy.host}/{repo}:1.0", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["action"] == "present"
    methods = {hit.method for hit in proxy.hits if hit.path != "/v2/"}
    assert methods == {"HEAD"}, proxy.hits


def test_tag_conflict_is_refused_with_exit_3_and_force_moves_it(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A destination tag on another digest is refused (exit 3, both digests named); --force moves it."""
    old = push(dest_registry, repo, images.oci_image([images.layer(100, "old")], seed="old"))
    new = push(source_registry, repo, images.oci_image([images.layer(100, "new")], seed="new"))
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    refused = cli("copy", src, dst)
    assert refused.code == 3
    assert old in refused.err
    assert new in refused.err
    assert "--force" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert manifest_digest(dest_registry, repo, "1.0") == old
    forced = cli("copy", "--force", src, dst)
    assert forced.code == 0, forced.err
    assert manifest_digest(dest_registry, repo, "1.0") == new


def test_digest_only_destination_copies_without_a_tag(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """repo@digest as destination pushes by digest and creates no tag."""
    digest = push(source_registry, repo, images.multi_arch_index("bydigest"))
    result = cli(
        "copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}@{digest}"
    )
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, digest) == digest
    assert manifest_digest(dest_registry, repo, "1.0") is None
    wrong = "sha256:" + "0" * 64
    mismatch = cli(
        "copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}@{wrong}"
    )
    assert mismatch.code == 2
    assert wrong in mismatch.err


def test_bare_destination_keeps_the_source_tag(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A destination without tag or digest gets the source's tag, not 'latest'."""
    digest = push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "keep")], seed="keep"),
        tag="2.3.4",
    )
    result = cli(
        "copy", f"{source_registry.host}/{repo}:2.3.4", f"{dest_registry.host}/{repo}", "-o", "json"
    )
    assert result.code == 0, result.err
    assert result.json()["destination"] == f"{dest_registry.host}/{repo}:2.3.4"
    assert manifest_digest(dest_registry, repo, "2.3.4") == digest
    assert manifest_digest(dest_registry, repo, "latest") is None


def test_a_blob_larger_than_any_answer_cap_is_still_checked_by_head(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A HEAD's Content-Length describes a body that is not sent: it is not held to the cap of
    answers read whole (4 MiB), so a present 5 MiB blob is skipped, not refused."""
    base = images.layer(5 * 1024 * 1024, "big-base", gzip=False)
    for tag in ("one", "two"):
        push(source_registry, repo, images.oci_image([base, images.layer(100, tag)], seed=tag), tag)
    first = cli("copy", f"{source_registry.host}/{repo}:one", f"{dest_registry.host}/{repo}:one")
    assert first.code == 0, first.err
    again = cli(
        "copy",
        f"{source_registry.host}/{repo}:two",
        f"{dest_registry.host}/{repo}:two",
        "-o",
        "json",
    )
    assert again.code == 0, again.err
    assert again.json()["blobs"] == {"copied": 2, "mounted": 0, "skipped": 1}


def test_present_blobs_are_skipped_and_shared_blobs_move_once(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Blobs the destination has are skipped; in a batch, a shared base moves once and is mounted after."""
    base = images.layer(50_000, "shared-base")
    first = images.oci_image([base, images.layer(100, "one")], seed="one")
    second = images.oci_image([base, images.layer(100, "two")], seed="two")
    third = images.oci_image([base, images.layer(100, "three")], seed="three")
    push(source_registry, repo, first, "one")
    push(source_registry, repo, second, "two")
    push(source_registry, repo, third, "three")
    assert (
        cli("copy", f"{source_registry.host}/{repo}:one", f"{dest_registry.host}/{repo}:one").code
        == 0
    )
    again = cli(
        "copy",
        f"{source_registry.host}/{repo}:two",
        f"{dest_registry.host}/{repo}:two",
        "-o",
        "json",
    )
    assert again.json()["blobs"] == {"copied": 2, "mounted": 0, "skipped": 1}

    batch = tmp_path / "batch.txt"
    batch.write_text(
        "# two new repositories that share the base layer\n"
        f"{source_registry.host}/{repo}:three {dest_registry.host}/{repo}-x:three\n"
        f"{source_registry.host}/{repo}:three {dest_registry.host}/{repo}-y:three\n"
    )
    result = cli("copy", "--batch", str(batch), "-o", "json")
    assert result.code == 0, result.err
    lines = result.json_lines()
    assert len(lines) == 2
    totals = {
        k: sum(int(line["blobs"][k]) for line in lines) for k in ("copied", "mounted", "skipped")
    }  # type: ignore[index]
    # Three blobs (config, base, top) for two repositories: each moved once, then mounted once.
    assert totals == {"copied": 3, "mounted": 3, "skipped": 0}
    assert sum(int(line["bytes"]) for line in lines) == sum(b.size for b in third.all_blobs())  # type: ignore[call-overload]
    for suffix in ("-x", "-y"):
        assert_complete(dest_registry, f"{repo}{suffix}", third)


def test_same_registry_copy_mounts_blobs(
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Within one registry, blobs are mounted from the source repository instead of re-uploaded."""
    image = images.multi_arch_index("mount")
    digest = push(source_registry, repo, image)
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{source_registry.host}/{repo}-copy:1.0",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert result.json()["blobs"] == {"copied": 0, "mounted": len(image.all_blobs()), "skipped": 0}
    assert result.json()["bytes"] == 0
    assert manifest_digest(source_registry, f"{repo}-copy", "1.0") == digest


def test_tag_is_pushed_last(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Blobs go first, then child manifests by digest, then the tag as the very last write."""
    image = images.multi_arch_index("order")
    push(source_registry, repo, image)
    with FaultProxy(dest_registry.url) as proxy:
        assert (
            cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0").code == 0
        )
    writes = [hit for hit in proxy.hits if hit.method in ("POST", "PATCH", "PUT")]
    manifest_puts = [hit.path for hit in writes if "/manifests/" in hit.path]
    assert manifest_puts[-1].endswith("/manifests/1.0")
    assert writes[-1].path.endswith("/manifests/1.0")
    children = {child.digest for child in image.children}
    assert {p.rsplit("/", 1)[1] for p in manifest_puts[:-1]} == children
    first_manifest = writes.index(next(h for h in writes if "/manifests/" in h.path))
    assert all("/blobs/" in hit.path for hit in writes[:first_manifest])


def test_small_blobs_are_uploaded_in_one_put_and_large_ones_stream(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A blob of at most SMALL_BLOB bytes (configs, small layers) goes up as POST then one PUT with
    its body, saving the PATCH's round trip; a larger one streams through PATCH. The copy is
    digest-exact either way."""
    from promoter.remote.blobs import SMALL_BLOB  # noqa: PLC0415

    small = images.layer(SMALL_BLOB // 2, "small-one")
    large = images.layer(SMALL_BLOB * 4, "large-one")
    image = images.oci_image([small, large], seed="monolithic")
    digest = push(source_registry, repo, image, "1.0")
    with FaultProxy(dest_registry.url) as proxy:
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
        assert result.code == 0, result.err
    patches = [hit for hit in proxy.hits if hit.method == "PATCH"]
    posts = [hit for hit in proxy.hits if hit.method == "POST"]
    assert len(posts) == len(image.all_blobs())  # config, small and large layer
    assert len(patches) == 1  # the large layer only
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_a_copy_by_tag_reads_the_source_manifest_once(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """By tag, the source's manifest is read with one GET (its bytes give the digest), not a HEAD
    then a GET: a round trip less per image on a far link."""
    image = images.oci_image([images.layer(1000, "once")], seed="read-once")
    digest = push(source_registry, repo, image, "1.0")
    with FaultProxy(source_registry.url) as proxy:
        result = cli("copy", f"{proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
        assert result.code == 0, result.err
    manifests = [(h.method, h.path) for h in proxy.hits if "/manifests/" in h.path]
    assert manifests == [("GET", f"/v2/{repo}/manifests/1.0")]
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_images_of_a_batch_are_in_flight_together_with_one_blob_stream(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """Images are latency-bound: with one blob stream (``--jobs 1``) the images of a batch still
    look up their destinations at once (``--requests``, 64 by default). The destination holds
    each of their tag HEADs back until all four are there: one image at a time would never get
    past the first."""
    together = threading.Barrier(4, timeout=20)
    for n in range(4):
        image = images.oci_image([images.layer(1000, f"together-{n}")], seed=f"together-{n}")
        push(source_registry, f"{repo}/app{n}", image, "1.0")
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("HEAD", r"/manifests/1\.0$", times=4, before=together.wait)
        batch = write_batch(tmp_path / "batch.txt", source_registry.host, proxy.host, repo, 4)
        result = cli("copy", "--jobs", "1", "--batch", str(batch))
    assert not together.broken
    assert result.code == 0, result.err
    assert not proxy.errors


def test_a_blob_is_fetched_while_its_upload_session_opens(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The source's GET of a blob and the destination's POST of its upload session go out
    together (one round trip for both): the registries hold the two GETs and the two POSTs of an
    image's two blobs back until all four have arrived (one after the other, at most one per blob
    would be in flight)."""
    layer = images.layer(5000, "side-by-side")
    image = images.oci_image([layer], seed="side-by-side")
    digest = push(source_registry, repo, image, "1.0")
    together = threading.Barrier(4, timeout=20)
    with FaultProxy(source_registry.url) as src, FaultProxy(dest_registry.url) as dst:
        src.add_rule("GET", "/blobs/", times=2, before=together.wait)
        dst.add_rule("POST", "/blobs/uploads/", times=2, before=together.wait)
        result = cli("copy", f"{src.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert not together.broken
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_an_upload_session_opened_for_a_blob_the_source_fails_is_cancelled(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The session opened beside a source GET that fails is cancelled (DELETE), every time the
    copy tries; nothing is tagged."""
    image = images.oci_image([images.layer(5000, "gone-blob")], seed="gone-blob")
    push(source_registry, repo, image, "1.0")
    with FaultProxy(source_registry.url) as src, FaultProxy(dest_registry.url) as dst:
        src.add_rule("GET", f"/blobs/{image.blobs[-1].digest}", status=404, times=100)
        result = cli("copy", f"{src.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert result.code == 1
    opened = [h for h in dst.hits if h.method == "POST" and "/blobs/uploads/" in h.path]
    committed = [h for h in dst.hits if h.method == "PUT" and "/blobs/uploads/" in h.path]
    cancelled = [h for h in dst.hits if h.method == "DELETE" and h.status == 204]
    assert opened
    assert len(cancelled) == len(opened) - len(committed)  # the config went up; the layer not
    assert manifest_digest(dest_registry, repo, "1.0") is None


def test_an_image_manifest_is_not_looked_up_by_digest_an_index_is(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A new image manifest is not asked for by digest in the destination (its blobs' HEADs tell
    as much, in the same round trip); an index is (present there, its children need no walk)."""
    single = images.oci_image([images.layer(1000, "leaf")], seed="leaf")
    index = images.multi_arch_index("lookup-index")
    push(source_registry, f"{repo}/single", single, "1.0")
    push(source_registry, f"{repo}/multi", index, "1.0")
    with FaultProxy(dest_registry.url) as dst:
        for name in ("single", "multi"):
            target = f"{dst.host}/{repo}/{name}:1.0"
            result = cli("copy", f"{source_registry.host}/{repo}/{name}:1.0", target)
            assert result.code == 0, result.err
    by_digest = [h.path for h in dst.hits if h.method == "HEAD" and "/manifests/sha256:" in h.path]
    assert f"/v2/{repo}/multi/manifests/{index.digest}" in by_digest
    assert not [p for p in by_digest if "/single/" in p]
    assert manifest_digest(dest_registry, f"{repo}/single", "1.0") == single.digest
    assert_complete(dest_registry, f"{repo}/multi", index)


def test_foreign_layers_are_left_out_unless_asked(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A layer with urls is not copied by default; --include-foreign copies it."""
    foreign_bytes = images.layer(2000, "windows-base")
    foreign = images.Blob(
        foreign_bytes, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
    image = images.oci_image(
        [images.layer(100, "app")],
        seed="foreign",
        extra_layers=[foreign.descriptor(urls=["https://example.invalid/base"])],
    )
    digest = push(source_registry, repo, image)
    # The source holds the foreign blob too, as registries that mirror them do.
    push(source_registry, repo, images.oci_image([foreign_bytes], seed="carrier"), tag="carrier")
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert not has_blob(dest_registry, repo, foreign.digest)
    assert (
        cli(
            "copy",
            "--include-foreign",
            f"{source_registry.host}/{repo}:1.0",
            f"{dest_registry.host}/{repo}-all:1.0",
        ).code
        == 0
    )
    assert has_blob(dest_registry, f"{repo}-all", foreign.digest)


def test_images_pushed_by_skopeo_are_copied(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """An index skopeo pushed from an OCI layout is copied digest-exact."""
    image = images.multi_arch_index("skopeo-pushed")
    layout = tmp_path / "in"
    images.write_oci_layout(layout, image, ref_name="v1")
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        *source_registry.skopeo_flags("dest"),
        f"oci:{layout}:v1",
        f"docker://{source_registry.host}/{repo}:v1",
    )
    result = cli(
        "copy", f"{source_registry.host}/{repo}:v1", f"{dest_registry.host}/{repo}:v1", "-o", "json"
    )
    assert result.code == 0, result.err
    assert result.json()["digest"] == image.digest
    assert skopeo_raw_digest(dest_registry, f"{repo}:v1") == image.digest


def test_digest_command(
    source_registry: RegistryProcess, repo: str, cli: Callable[..., CliRun]
) -> None:
    """`promoter digest` prints what the reference resolves to; a missing tag fails with exit 1."""
    digest = push(source_registry, repo, images.multi_arch_index("dig"))
    result = cli("digest", f"{source_registry.host}/{repo}:1.0")
    assert result.code == 0
    assert result.out.strip() == digest
    assert (
        json.loads(cli("digest", "-o", "json", f"{source_registry.host}/{repo}:1.0").out)["digest"]
        == digest
    )
    missing = cli("digest", f"{source_registry.host}/{repo}:nope")
    assert missing.code == 1
    assert "not found" in missing.err
    assert "MANIFEST_UNKNOWN" in missing.err


def test_tag_listing_asks_for_bounded_pages_and_follows_link(
    source_registry: RegistryProcess, repo: str
) -> None:
    """Tags are listed with n= pages and the Link header's next page is followed.

    Distribution 2.8 ignores n= and answers with every tag at once (pagination of tags/list came
    in 3.0; ECR and others paginate), so the first page here is scripted by the proxy with a Link
    header, and the real registry answers the page it points to.
    """
    image = images.oci_image([images.layer(10, "tags")], seed="tags")
    tags = [f"v{i}" for i in range(7)]
    for tag in tags:
        push(source_registry, repo, image, tag=tag)
    transport = Transport()
    try:
        with FaultProxy(source_registry.url) as proxy:
            plain = Repository(transport.session(proxy.host), repo).list_tags(page_size=3)
            proxy.add_rule(
                "GET",
                "/tags/list",
                status=200,
                headers={
                    "Link": f'</v2/{repo}/tags/list?n=3&last=v2>; rel="next"',
                    "Content-Type": "application/json",
                },
                body=json.dumps({"name": repo, "tags": ["p0", "p1", "p2"]}).encode(),
            )
            paged = Repository(transport.session(proxy.host), repo).list_tags(page_size=3)
            pages = [hit.path for hit in proxy.hits if "/tags/list" in hit.path]
    finally:
        transport.close()
    assert sorted(plain) == sorted(tags)
    assert pages[0] == f"/v2/{repo}/tags/list?n=3"
    assert pages[1:] == [f"/v2/{repo}/tags/list?n=3", f"/v2/{repo}/tags/list?n=3&last=v2"]
    assert paged[:3] == ["p0", "p1", "p2"]
    assert sorted(paged[3:]) == sorted(tags)


def test_an_upload_session_that_cannot_be_cancelled_is_warned_of(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The source fails a blob after its upload session opened, and the destination refuses the
    DELETE that cancels it: the copy fails as before, and a warning says the session stays."""
    image = images.oci_image([images.layer(5000, "uncancelled")], seed="uncancelled")
    push(source_registry, repo, image)
    with FaultProxy(source_registry.url) as src, FaultProxy(dest_registry.url) as dst:
        src.add_rule("GET", f"/blobs/{image.blobs[-1].digest}", status=404, times=100)
        dst.add_rule("DELETE", "/blobs/uploads/", status=400, times=100)
        result = cli("copy", f"{src.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert result.code == 1
    assert "upload session(s) could not be cancelled" in result.err
