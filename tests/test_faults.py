"""Faults against real registries: corrupt blobs, a registry that dies mid-copy, 429/503, dropped
connections and registries that refuse streamed uploads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import has_blob, manifest_digest, push, upload_sessions_end, write_batch


def test_corrupt_source_blob_is_refused_and_nothing_is_tagged(
    fresh_registry: Callable[..., RegistryProcess],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A source blob whose bytes do not match its digest aborts the copy: exit 1, no tag, no blob."""
    source = fresh_registry()
    bad = images.layer(300_000, "to-corrupt", gzip=False)
    image = images.oci_image([images.layer(1000, "fine"), bad], seed="corrupt")
    push(source, repo, image)
    bad_digest = images.sha256_digest(bad)
    path = source.blob_data_path(bad_digest)
    path.write_bytes(bytes(b ^ 0xFF for b in bad[:1000]) + bad[1000:])  # same size, other bytes
    result = cli("copy", f"{source.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert bad_digest in result.err
    assert "hashes to" in result.err
    assert manifest_digest(dest_registry, repo, "1.0") is None
    assert manifest_digest(dest_registry, repo, image.digest) is None
    assert not has_blob(dest_registry, repo, bad_digest)


def test_source_stopped_mid_copy_fails_cleanly_and_a_rerun_completes(
    fresh_registry: Callable[..., RegistryProcess],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The source dying at the first blob download fails in one line with no tag; after a restart
    the same command completes."""
    source = fresh_registry()
    image = images.multi_arch_index("dies", layer_sizes=(200_000, 100_000))
    digest = push(source, repo, image)
    with FaultProxy(source.url) as proxy:
        rule = proxy.add_rule("GET", r"/blobs/sha256:", before=source.stop)
        args = (
            "copy",
            "--retries",
            "1",
            f"{proxy.host}/{repo}:1.0",
            f"{dest_registry.host}/{repo}:1.0",
        )
        failed = cli(*args)
        assert rule.fired == 1
        assert failed.code == 1
        assert len(failed.err.strip().splitlines()) == 1
        assert "Traceback" not in failed.err
        assert proxy.host in failed.err
        assert manifest_digest(dest_registry, repo, "1.0") is None
        source.restart()
        again = cli(*args)
    assert again.code == 0, again.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_429_and_503_are_retried_and_the_copy_completes(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Throttling and unavailability on every kind of request are retried; Retry-After is honoured."""
    image = images.multi_arch_index("flaky")
    digest = push(source_registry, repo, image)
    with FaultProxy(source_registry.url) as src, FaultProxy(dest_registry.url) as dst:
        # By tag, the source's manifest is read with a GET at once (no HEAD first).
        src.add_rule("GET", "/manifests/", status=429, headers={"Retry-After": "0"})
        src.add_rule("GET", "/manifests/", status=503)
        src.add_rule("GET", "/blobs/", status=503, times=2)
        dst.add_rule("HEAD", "/manifests/1.0", status=429, headers={"Retry-After": "0"})
        dst.add_rule("POST", "/blobs/uploads/", status=503)
        dst.add_rule("PUT", "/manifests/sha256:", status=502)
        dst.add_rule("PUT", "/manifests/1.0", status=504)
        result = cli("copy", f"{src.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0", "-o", "json")
        injected = [h.status for h in src.hits + dst.hits if h.status in (429, 502, 503, 504)]
    assert result.code == 0, result.err
    assert result.json()["digest"] == digest
    assert sorted(injected) == [429, 429, 502, 503, 503, 503, 503, 504]
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_persistent_503_gives_up_after_bounded_retries(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A registry that keeps answering 503 is tried 1 + --retries times, then the copy fails in one line."""
    push(source_registry, repo, images.oci_image([images.layer(100, "down")], seed="down"))
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("HEAD", "/manifests/", status=503, times=100)
        result = cli(
            "copy", "--retries", "2", f"{source_registry.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0"
        )
        tries = [h for h in dst.hits if h.method == "HEAD" and "/manifests/" in h.path]
    assert result.code == 1
    assert "503" in result.err
    assert len(tries) == 3


def test_dropped_upload_connection_is_retried(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A connection closed during the streamed PATCH restarts that blob with a fresh upload session."""
    image = images.oci_image([images.layer(400_000, "drop", gzip=False)], seed="drop")
    digest = push(source_registry, repo, image)
    with FaultProxy(dest_registry.url) as dst:
        rule = dst.add_rule("PATCH", "/blobs/uploads/", drop=True)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert rule.fired == 1
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_registry_without_patch_gets_monolithic_uploads(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A 405 to the streamed PATCH switches that registry to POST + PUT-with-body uploads."""
    image = images.oci_image(
        [images.layer(200_000, "mono", gzip=False), images.layer(1000, "mono2")], seed="mono"
    )
    digest = push(source_registry, repo, image)
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("PATCH", "/blobs/uploads/", status=405, times=100)
        result = cli(
            "copy",
            "-j",
            "1",
            f"{source_registry.host}/{repo}:1.0",
            f"{dst.host}/{repo}:1.0",
            "-o",
            "json",
        )
        patches = [h for h in dst.hits if h.method == "PATCH"]
        blob_puts = [h for h in dst.hits if h.method == "PUT" and "/blobs/uploads/" in h.path]
    assert result.code == 0, result.err
    assert result.json()["blobs"]["copied"] == 3  # type: ignore[index]
    assert len(patches) == 1  # learned once, then every blob goes monolithic
    assert len(blob_puts) == 3
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_the_registry_error_code_reaches_the_user(
    fresh_registry: Callable[..., RegistryProcess],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A blob missing from the source's storage fails with the registry's own code (BLOB_UNKNOWN);
    an error body on a non-streamed request (a manifest PUT) keeps its code too."""
    source = fresh_registry()
    lost = images.layer(1000, "lost")
    image = images.oci_image([lost], seed="lost")
    push(source, repo, image)
    source.blob_data_path(images.sha256_digest(lost)).unlink()
    missing = cli("copy", f"{source.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert missing.code == 1
    assert "BLOB_UNKNOWN" in missing.err
    assert len(missing.err.strip().splitlines()) == 1

    fine = images.oci_image([images.layer(1000, "fine-code")], seed="fine-code")
    push(source, repo, fine, tag="2.0")
    with FaultProxy(dest_registry.url) as dst:
        body = b'{"errors": [{"code": "TAG_INVALID", "message": "manifest tag did not match URI"}]}'
        dst.add_rule("PUT", "/manifests/2.0", status=400, body=body)
        refused = cli("copy", f"{source.host}/{repo}:2.0", f"{dst.host}/{repo}:2.0")
    assert refused.code == 1
    assert "TAG_INVALID: manifest tag did not match URI" in refused.err


def test_corrupt_blob_is_never_committed_by_a_monolithic_upload(
    fresh_registry: Callable[..., RegistryProcess],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """With PATCH refused, a corrupt source blob is still caught by promoter before the PUT body ends."""
    source = fresh_registry()
    bad = images.layer(3_000_000, "mono-corrupt", gzip=False)
    push(source, repo, images.oci_image([bad], seed="mono-corrupt"))
    path = source.blob_data_path(images.sha256_digest(bad))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the very last byte differs
    path.write_bytes(bytes(data))
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("PATCH", "/blobs/uploads/", status=405, times=100)
        result = cli("copy", f"{source.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert result.code == 1
    assert "hashes to" in result.err  # promoter's own check, not the registry's DIGEST_INVALID
    assert not has_blob(dest_registry, repo, images.sha256_digest(bad))
    assert manifest_digest(dest_registry, repo, "1.0") is None


def test_a_commit_whose_answer_was_lost_is_not_a_failure(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The registry commits the blob and the tag, but the answers never arrive: the retried PUTs
    find the upload session gone or the work done, and a HEAD shows the registry holds it."""
    image = images.oci_image([images.layer(50_000, "lost-answer", gzip=False)], seed="lost-answer")
    digest = push(source_registry, repo, image)
    with FaultProxy(dest_registry.url) as dst:
        blob_commit = dst.add_rule("PUT", r"/blobs/uploads/.*digest=", lose_answer=True)
        tag_commit = dst.add_rule("PUT", "/manifests/1.0$", lose_answer=True)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert blob_commit.fired == 1
    assert tag_commit.fired == 1
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest


def test_a_registry_that_throttles_bursts_gets_fewer_requests_at_once_and_the_batch_completes(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """The destination answers 429 (Retry-After: 1) to whatever comes while 4 requests are in
    flight, as a rate limiter does. promoter halves what it sends that registry at once on each
    429 (growing back as answers come), so the batch of 30 images at the default 64 requests in
    flight completes instead of running out of retries, and every upload session it opened ends
    committed or cancelled."""
    base = images.layer(5000, "throttled-base")
    for n in range(30):
        image = images.oci_image([base, images.layer(500, f"throttled-{n}")], seed=f"thr-{n}")
        push(source_registry, f"{repo}/app{n}", image)
    with FaultProxy(dest_registry.url) as dst:
        dst.throttle(4)
        batch = write_batch(tmp_path / "batch.txt", source_registry.host, dst.host, repo, 30)
        result = cli("copy", "--batch", str(batch))
        hits = list(dst.hits)
    assert result.code == 0, result.err
    assert "30 copied" in result.out
    assert any(hit.status == 429 for hit in hits)  # it did throttle
    upload_sessions_end(hits)


def test_a_failing_mount_falls_back_to_an_upload(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """Every cross-repository mount answers 500: a mount only saves bytes, so each image uploads
    the shared layer itself, at once (no retries of the mount), and the batch completes."""
    base = images.layer(5000, "mount-fails-base")
    for n in range(4):
        image = images.oci_image([base, images.layer(300, f"mount-fails-{n}")], seed=f"mf-{n}")
        push(source_registry, f"{repo}/app{n}", image)
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("POST", r"\?mount=", status=500, times=100)
        batch = write_batch(tmp_path / "batch.txt", source_registry.host, dst.host, repo, 4)
        result = cli("copy", "--batch", str(batch), "-o", "json")
        mounts = [h for h in dst.hits if h.method == "POST" and "mount=" in h.path]
    assert result.code == 0, result.err
    assert [json.loads(line)["action"] for line in result.out.splitlines()] == ["copied"] * 4
    assert 1 <= len(mounts) <= 3  # each tried once, never retried


def test_a_request_that_never_started_is_not_blamed_on_its_registry(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """The destination takes the requests and never answers; the run's few workers wait on it
    until the deadline, and the healthy source's lookups queued behind them never start. Their
    errors say so, instead of "pull manifest SOURCE: gave up", which reads as the source's fault."""
    release = threading.Event()
    image = images.oci_image([images.layer(300, "queued")], seed="queued")
    for n in range(6):
        push(source_registry, f"{repo}/app{n}", image)
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("HEAD", "/manifests/", times=100, before=lambda: release.wait(30))
        batch = write_batch(tmp_path / "batch.txt", source_registry.host, dst.host, repo, 6)
        try:
            result = cli("copy", "--batch", str(batch), "--requests", "2", "--timeout", "2")
        finally:
            release.set()
    assert result.code == 1
    blamed = [line for line in result.err.splitlines() if source_registry.host in line]
    assert blamed  # some source lookups were queued behind the stuck ones
    assert all("before it was sent" in line for line in blamed), blamed


def test_a_retry_after_longer_than_promoter_waits_is_named(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A registry that asks for an hour's wait (429, Retry-After: 3600) is not waited for, and
    the message says why the copy gave up so soon."""
    image = images.oci_image([images.layer(300, "hour")], seed="hour")
    push(source_registry, repo, image)
    with FaultProxy(dest_registry.url) as dst:
        dst.add_rule("HEAD", "/manifests/", status=429, headers={"Retry-After": "3600"}, times=9)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dst.host}/{repo}:1.0")
    assert result.code == 1
    assert "asked to wait 3600 s (Retry-After), longer than promoter waits (60 s)" in result.err


def test_a_registry_that_takes_one_request_at_a_time_still_gets_the_batch(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """The strictest limiter: 429 (Retry-After: 0) to whatever comes while one request is being
    handled. The throttle comes down to one in flight and a 429 gets more tries than other
    failures, so all 40 images are copied."""
    for n in range(40):
        image = images.oci_image([images.layer(300, f"one-{n}")], seed=f"one-{n}")
        push(source_registry, f"{repo}/app{n}", image)
    with FaultProxy(dest_registry.url) as dst:
        dst.throttle(1, retry_after=0)
        batch = write_batch(tmp_path / "batch.txt", source_registry.host, dst.host, repo, 40)
        result = cli("copy", "--batch", str(batch))
        hits = list(dst.hits)
    assert result.code == 0, result.err
    assert "40 copied" in result.out
    assert any(hit.status == 429 for hit in hits)
    upload_sessions_end(hits)
