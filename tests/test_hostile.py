"""Registries that misbehave (devtools.hostile_registry) cost promoter bounded memory and bounded time,
and end in one clear line with the documented exit code: endless bodies stop at their cap, drips and
stalls are cut by the exchange's watchdog or the run's deadline, a refused loopback connection is not
retried, a dropped answer is not called a TLS failure, a redirect off HTTP is not followed, and an
interrupt stops the run at once saying what completed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from devtools.fault_proxy import FaultProxy
from devtools.hostile_registry import (
    HostileRegistry,
    drip_body,
    drip_head,
    drop,
    endless,
    redirect,
    respond,
    stall,
)
from devtools.images import Image, layer, oci_image
from devtools.peak_rss import Measured, run_measured
from devtools.registry import RegistryProcess
from tests.conftest import CliRun, credential_helper
from tests.registry_checks import manifest_digest, push, upload_sessions_end

from promoter.app.batch import copy_images, pair
from promoter.app.runtime import Runtime, RuntimeSettings
from promoter.app.sync import make_present
from promoter.deadline import Deadline
from promoter.errors import DeadlineExceededError, RegistryUnreachableError
from promoter.reference import parse_reference
from promoter.remote.copy import CopyResult
from promoter.remote.repository import lookup_digest
from promoter.transport.pools import ANSWER_LIMIT
from promoter.version import __version__

#: Far below what an endless body would cost in the time it runs (1.5 GiB in 2 s before the cap).
MEMORY_CEILING_MIB = 150
LAYER_BYTES = 300_000
PROMOTER_COPY = (sys.executable, "-m", "promoter", "copy")


def _image(seed: str) -> Image:
    return oci_image([layer(LAYER_BYTES, seed, gzip=False)], seed=seed)


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        registry.add_image("app", "1.0", _image("hostile-app"))
        yield registry


def promoter(tmp_path: Path, *args: str, timeout: float = 90.0) -> Measured:
    """The CLI as a separate process, its peak memory measured from outside."""
    return run_measured(
        [sys.executable, "-m", "promoter", *args], out_dir=tmp_path, timeout=timeout
    )


def one_line(run: Measured) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def test_an_endless_manifest_stops_at_the_manifest_cap_with_flat_memory(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    hostile.misbehave("GET", r"/manifests/", endless())
    run = promoter(tmp_path, "copy", f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert run.returncode == 1
    line = one_line(run)
    assert line.startswith("promoter: error: pull manifest")
    assert f"larger than {16 * 1024 * 1024} bytes" in line
    assert run.peak_mib < MEMORY_CEILING_MIB


def test_an_endless_token_answer_stops_at_the_answer_cap(
    tmp_path: Path, dest_registry: RegistryProcess, repo: str
) -> None:
    with HostileRegistry(token_realm=True) as registry:
        registry.add_image("app", "1.0", _image("hostile-token"))
        registry.misbehave("GET", r"^/token", endless())
        run = promoter(
            tmp_path, "copy", f"{registry.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0"
        )
    assert run.returncode == 1
    assert f"larger than {ANSWER_LIMIT} bytes" in one_line(run)
    assert run.peak_mib < MEMORY_CEILING_MIB


def test_endless_error_and_challenge_bodies_are_never_read_to_their_end(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    """A 401 without end before the token dance, then a 404 without end: neither is drained."""
    hostile.token_realm = True
    hostile.misbehave("GET", r"^/v2/$", endless(status=401), times=1)
    hostile.misbehave("GET", r"/manifests/1\.0$", endless(status=404))
    hostile.misbehave("HEAD", r"/manifests/1\.0$", endless(status=404))
    run = promoter(tmp_path, "copy", f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert run.returncode == 1
    assert "answered 404" in one_line(run)
    assert run.peak_mib < MEMORY_CEILING_MIB
    assert hostile.requests("GET", r"^/token")  # the challenge in the endless 401 was understood


def test_headers_dripped_for_ever_end_at_the_run_timeout(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    hostile.misbehave(None, r"/manifests/1\.0$", drip_head(0.05))
    run = promoter(
        tmp_path,
        "copy",
        "--timeout",
        "2",
        f"{hostile.host}/app:1.0",
        f"{dest_registry.host}/{repo}:1.0",
    )
    assert run.returncode == 1
    line = one_line(run)
    assert "gave up after the 2 s deadline" in line
    assert hostile.host in line


def _runtime(**settings: float) -> Runtime:
    return Runtime(RuntimeSettings(**settings))  # type: ignore[arg-type]


def test_an_answer_that_never_completes_is_no_answer_within_the_answer_time(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    """A per-byte read timeout never fires on a drip; the answer time bounds the exchange whole."""
    hostile.misbehave(None, r"/manifests/1\.0$", drip_head(0.05))
    with _runtime(answer_timeout=1.0, retries=0) as runtime:
        (outcome,) = copy_images(
            runtime, [pair(f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")]
        )
    assert isinstance(outcome, RegistryUnreachableError)
    assert f"no complete answer from {hostile.host} within 1 s" in str(outcome)


def test_a_dripping_blob_is_a_stall_retried_then_reported_naming_the_blob(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    image = _image("hostile-app")
    blob = image.blobs[-1]
    hostile.misbehave("GET", f"/blobs/{blob.digest}", drip_body(0.05, 16))
    with _runtime(stall_window=0.5, stall_bytes=4096, retries=1) as runtime:
        (outcome,) = copy_images(
            runtime, [pair(f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")]
        )
    assert isinstance(outcome, RegistryUnreachableError)
    message = str(outcome)
    assert "stalled" in message
    assert f"{hostile.host}/app" in message
    assert blob.digest.removeprefix("sha256:")[:12] in message
    assert len(hostile.requests("GET", f"/blobs/{blob.digest}")) == 2  # one retry, then reported
    with _runtime() as runtime:
        reference = parse_reference(f"{dest_registry.host}/{repo}:1.0")
        assert lookup_digest(runtime.transport, reference) is None  # nothing tagged


def test_a_blob_that_stops_half_way_is_retried_and_the_copy_completes(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    image = _image("hostile-app")
    blob = image.blobs[-1]
    hostile.misbehave("GET", f"/blobs/{blob.digest}", stall(after=LAYER_BYTES // 2), times=1)
    with _runtime(stall_window=0.5, stall_bytes=4096) as runtime:
        (outcome,) = copy_images(
            runtime, [pair(f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")]
        )
    assert isinstance(outcome, CopyResult), outcome
    assert str(outcome.digest) == image.digest
    assert len(hostile.requests("GET", f"/blobs/{blob.digest}")) == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_loopback_connection_is_reported_at_once_not_retried(
    tmp_path: Path, dest_registry: RegistryProcess, repo: str
) -> None:
    port = _closed_port()
    run = promoter(
        tmp_path, "--debug", "copy", f"127.0.0.1:{port}/app:1.0", f"{dest_registry.host}/{repo}:1"
    )
    assert run.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}" in run.stderr
    assert "retry 1/" not in run.stderr  # promoter.transport.retry logs each retry
    assert "TLS" not in run.stderr


def test_a_dropped_ping_is_no_answer_not_a_tls_failure(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    hostile.misbehave("GET", r"^/v2/$", drop())
    run = promoter(
        tmp_path,
        "copy",
        "--retries",
        "0",
        f"{hostile.host}/app:1.0",
        f"{dest_registry.host}/{repo}:1.0",
    )
    assert run.returncode == 1
    line = one_line(run)
    assert "TLS" not in line
    assert f"connection to {hostile.host} failed" in line


def test_a_redirect_off_http_is_refused_without_retrying(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    blob = _image("hostile-app").blobs[-1]
    hostile.misbehave("GET", f"/blobs/{blob.digest}", redirect("file:///etc/passwd"))
    run = promoter(tmp_path, "copy", f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert run.returncode == 1
    assert "only http and https are followed" in one_line(run)
    assert len(hostile.requests("GET", f"/blobs/{blob.digest}")) == 1


def test_every_request_names_promoter_and_its_version(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    run = promoter(tmp_path, "copy", f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert run.returncode == 0, run.stderr
    assert hostile.seen
    assert {seen.headers.get("User-Agent") for seen in hostile.seen} == {f"promoter/{__version__}"}


# -- interrupts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_a_stalled_batch_at_once_saying_what_completed(
    tmp_path: Path,
    hostile: HostileRegistry,
    dest_registry: RegistryProcess,
    repo: str,
    signum: signal.Signals,
) -> None:
    """The first image is copied, the second's blob stalls: the interrupt ends the run (130) without
    a traceback, the output's "copied" lines are exactly what the destination holds, the stalled
    image is not tagged and its upload sessions are cancelled."""
    stalled = _image("hostile-stalled")
    hostile.add_image("stalled", "2.0", stalled)
    hostile.misbehave("GET", f"/blobs/{stalled.blobs[-1].digest}", stall(after=1000))
    patching = threading.Event()
    committed = threading.Event()
    batch = tmp_path / "batch.txt"
    batch.write_text(
        f"{hostile.host}/app:1.0 {{dest}}/{repo}/app:1.0\n"
        f"{hostile.host}/stalled:2.0 {{dest}}/{repo}/stalled:2.0\n".replace("{dest}", "DEST")
    )
    with FaultProxy(dest_registry.url) as proxy:
        # The stalled blob's upload is under way once its PATCH reaches the destination; the
        # image's small config moves beside it and is committed (then only the stalled upload's
        # session is open when the signal comes).
        proxy.add_rule("PATCH", "/stalled/blobs/uploads/", before=patching.set)
        config = stalled.blobs[0].digest.replace(":", "%3A")
        proxy.add_rule("PUT", f"/stalled/blobs/uploads/.*digest={config}", after=committed.set)
        batch.write_text(batch.read_text().replace("DEST", proxy.host))
        process = subprocess.Popen(
            [*PROMOTER_COPY, "--jobs", "1", "--requests", "1", "--batch", str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert patching.wait(60), "the stalled blob's upload never started"
            assert committed.wait(60), "the stalled image's config was never committed"
            process.send_signal(signum)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        deletes = [hit for hit in proxy.hits if hit.method == "DELETE" and "/uploads/" in hit.path]
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    with _runtime() as runtime:
        stalled_ref = parse_reference(f"{dest_registry.host}/{repo}/stalled:2.0")
        assert lookup_digest(runtime.transport, stalled_ref) is None
        app_ref = parse_reference(f"{dest_registry.host}/{repo}/app:1.0")
        app_present = lookup_digest(runtime.transport, app_ref) is not None
    assert ("copied" in out and "/app:1.0" in out) == app_present
    assert "stalled:2.0" not in out
    # Every upload session the stalled image opened ends committed (its config) or cancelled
    # (the stalled layer's); a DELETE answered 404 came after a commit whose answer the interrupt
    # cut off.
    ends = upload_sessions_end(proxy.hits, "/stalled/blobs/uploads/")
    assert len(ends) == 2, proxy.hits
    for session, steps in ends.items():
        cancelled = ("DELETE", 204) in steps
        assert cancelled == any(method == "PATCH" for method, _ in steps), (session, steps)
    assert {hit.status for hit in deletes} <= {204, 404}, (out, err, proxy.hits)


class _Hold:
    """A proxy rule's hook that holds a request (``before``) or its answer (``after``) until
    released; ``came`` is set when it arrives."""

    def __init__(self) -> None:
        self.came = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.came.set()
        self.release.wait(30)


def _copy_interrupted(
    args: Sequence[str],
    hold: _Hold,
    *,
    signum: signal.Signals = signal.SIGINT,
    release: bool = True,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[int, str, str]:
    """``promoter copy ARGS``, signalled once the held request came; then (after ``meanwhile``)
    the hold is released, or with ``release=False`` only once the process ended. Its exit code,
    output and errors."""
    process = subprocess.Popen(
        [*PROMOTER_COPY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert hold.came.wait(60), "the held request never came"
        process.send_signal(signum)
        if meanwhile is not None:
            meanwhile()
        if release:
            hold.release.set()
        out, err = process.communicate(timeout=30)
    finally:
        hold.release.set()
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


@pytest.mark.parametrize(
    ("signum", "throttled"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "cancels answered 429 first"],
)
def test_an_interrupt_while_upload_sessions_open_cancels_them(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    signum: signal.Signals,
    throttled: bool,
) -> None:
    """The signal comes while the destination has opened the upload sessions but their answers
    (their locations) are still on the way: promoter waits for them (a short grace) and cancels
    each, instead of cutting the POSTs and leaving sessions open that it never learned of. A
    cancel the registry answers 429 (a rate limiter) is tried again, interrupt or not. Small
    blobs (one PUT with the body after the POST): when the answer beats the signal and a blob's
    body is under way as it lands, a PATCH's session would stay open by the limit README states."""
    push(source_registry, repo, oci_image([layer(2000, "open-sessions")], seed="open-sessions"))
    hold = _Hold()
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("POST", "/blobs/uploads/", times=2, after=hold)
        if throttled:
            proxy.add_rule("DELETE", "/blobs/uploads/", status=429, headers={"Retry-After": "1"})
        hosts = (source_registry.host, proxy.host)
        code, _, err = _copy_interrupted([f"{h}/{repo}:1.0" for h in hosts], hold, signum=signum)
        hits = list(proxy.hits)
    assert code == 130, err
    assert any(h.method == "POST" and h.status == 202 for h in hits)
    assert not throttled or any(h.method == "DELETE" and h.status == 429 for h in hits)
    upload_sessions_end(hits)
    assert manifest_digest(dest_registry, repo, "1.0") is None


def test_answers_that_do_not_come_within_the_grace_are_warned_of(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """The registry opens the upload sessions but keeps their answers past the 2 s grace after
    the interrupt: promoter ends (130) without them and says that sessions may stay open."""
    push(source_registry, repo, _image("slow-answers"))
    hold = _Hold()
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("POST", "/blobs/uploads/", times=2, after=hold)
        hosts = (source_registry.host, proxy.host)
        code, _, err = _copy_interrupted([f"{h}/{repo}:1.0" for h in hosts], hold, release=False)
    assert code == 130, err
    assert "got no answer within 2 s of the interrupt" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("step", ["PUT", "HEAD"], ids=["the tag's PUT", "the check after it"])
def test_an_image_whose_tag_landed_as_the_interrupt_came_is_reported_copied(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, step: str
) -> None:
    """The interrupt cuts the tag's PUT after the registry took it (or the HEAD that checks it):
    one clean-up HEAD finds the tag holding the image, and the output says copied, as the
    destination does; the run still exits 130."""
    digest = push(source_registry, repo, _image("landed"))
    hold = _Hold()
    with FaultProxy(dest_registry.url) as proxy:
        if step == "HEAD":  # the look before the copy and the one before the PUT go through
            proxy.add_rule("HEAD", r"/manifests/1\.0$", times=2)
        proxy.add_rule(step, r"/manifests/1\.0$", after=hold)
        hosts = (source_registry.host, proxy.host)
        code, out, err = _copy_interrupted(
            ["-o", "json", *(f"{h}/{repo}:1.0" for h in hosts)], hold
        )
    assert code == 130, err
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert json.loads(out)["action"] == "copied", (out, err)


def test_a_tag_put_whose_answer_outlasts_the_grace_is_settled_by_a_look(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """The registry writes the tag but keeps the PUT's answer past the 2 s grace: the clean-up
    HEAD settles it (reported copied), and no warning about upload sessions is printed (a tag PUT
    opens none)."""
    digest = push(source_registry, repo, _image("late-answer"))
    hold = _Hold()
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/1\.0$", after=hold)
        hosts = (source_registry.host, proxy.host)
        args = ["-o", "json", *(f"{h}/{repo}:1.0" for h in hosts)]
        code, out, err = _copy_interrupted(args, hold, release=False)
    assert code == 130, err
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert json.loads(out)["action"] == "copied", (out, err)
    assert "upload session" not in err


def test_a_tag_put_on_its_way_at_the_interrupt_is_let_have_its_answer(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """The interrupt comes while the tag's PUT is on its way (the registry has not written it
    yet): promoter waits for the PUT's answer (a short grace) instead of cutting it and asking at
    once, which would find no tag and report the image failed while the PUT then writes it. No
    HEAD comes before the PUT is let through (a second's look for one), and the image is reported
    copied, as the destination shows."""
    digest = push(source_registry, repo, _image("on-its-way"))
    hold = _Hold()
    head_first = threading.Event()
    asked_first: list[bool] = []
    with FaultProxy(dest_registry.url) as proxy:
        # The looks before the copy and before the PUT go through; a third would come first.
        proxy.add_rule("HEAD", r"/manifests/1\.0$", times=2)
        proxy.add_rule("HEAD", r"/manifests/1\.0$", times=5, after=head_first.set)
        proxy.add_rule("PUT", r"/manifests/1\.0$", before=hold)
        hosts = (source_registry.host, proxy.host)
        code, out, err = _copy_interrupted(
            ["-o", "json", *(f"{h}/{repo}:1.0" for h in hosts)],
            hold,
            # cutting the PUT would ask at once
            meanwhile=lambda: asked_first.append(head_first.wait(1.0)),
        )
    assert code == 130, err
    assert asked_first == [False]
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert json.loads(out)["action"] == "copied", (out, err)


def test_a_second_interrupt_exits_at_once_without_a_traceback(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    blob = _image("hostile-app").blobs[-1]
    rule = hostile.misbehave("GET", f"/blobs/{blob.digest}", stall(after=1000))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promoter",
            "copy",
            f"{hostile.host}/app:1.0",
            f"{dest_registry.host}/{repo}:1.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert rule.started.wait(60), "the stalled blob was never asked for"
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err


def test_a_credential_helper_that_never_answers_ends_at_the_run_timeout(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A docker-credential helper runs under the run's deadline, not its own 30 s."""
    credential_helper(tmp_path, monkeypatch, basic_registry.host, "stuck", "exec sleep 60\n")
    result = cli(
        "copy",
        "--timeout",
        "2",
        f"{basic_registry.host}/app:1.0",
        f"{dest_registry.host}/{repo}:1.0",
    )
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "docker-credential-stuck" in result.err
    assert "gave up after the 2 s deadline" in result.err


def test_a_destination_that_never_answers_an_upload_is_cut_and_the_session_cancelled(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    """The watchdog holds the destination side to the same rules: a PATCH whose answer never comes
    ends within the answer time, and its upload session is cancelled."""
    release = threading.Event()
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PATCH", "/blobs/uploads/", before=lambda: release.wait(30), times=10)
        try:
            with _runtime(answer_timeout=1.0, stall_window=0.5, stall_bytes=4096, retries=0) as rt:
                (outcome,) = copy_images(
                    rt, [pair(f"{hostile.host}/app:1.0", f"{proxy.host}/{repo}:1.0")]
                )
        finally:
            release.set()
        deletes = [hit for hit in proxy.hits if hit.method == "DELETE" and "/uploads/" in hit.path]
    assert isinstance(outcome, RegistryUnreachableError), outcome
    assert proxy.host in str(outcome)
    assert "no complete answer" in str(outcome) or "stalled" in str(outcome)
    assert deletes


def test_a_deadline_that_ends_the_retries_of_a_stall_still_names_the_stall(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    """The run's deadline cuts the retry of a stalled blob: the one line still says it stalled."""
    blob = _image("hostile-app").blobs[-1]
    hostile.misbehave("GET", f"/blobs/{blob.digest}", stall(after=1000))
    with _runtime(stall_window=0.5, stall_bytes=4096) as runtime:
        (outcome,) = copy_images(
            runtime,
            [pair(f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")],
            deadline=Deadline.after(1.2),
        )
    assert isinstance(outcome, DeadlineExceededError), outcome
    assert "1.2 s deadline" in str(outcome)
    assert f"stalled: {hostile.host} moved less than 4096 bytes in 0.5 s" in str(outcome)


def test_a_sync_copies_the_healthy_images_when_one_lookup_stalls(
    hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    """One image whose source registry drips its answer uses the lookups' share of the deadline, not
    all of it: it is reported as failed and the other image is copied in the time left."""
    hostile.add_image(f"{repo}/stuck", "1.0", _image("hostile-stuck"))
    hostile.add_image(f"{repo}/fine", "1.0", _image("hostile-fine"))
    hostile.misbehave(None, f"/{repo}/stuck/manifests/", drip_head(0.05))
    with _runtime() as runtime:
        report = make_present(
            runtime,
            [f"{dest_registry.host}/{repo}/stuck:1.0", f"{dest_registry.host}/{repo}/fine:1.0"],
            hostile.host,
            deadline=Deadline.after(4),
        )
    by_repository = {r.item.destination.repository: r for r in report.records}  # type: ignore[union-attr]
    assert by_repository[f"{repo}/fine"].result is not None
    assert by_repository[f"{repo}/fine"].error is None
    stuck = by_repository[f"{repo}/stuck"]
    assert stuck.result is None
    assert "1 s deadline" in (stuck.error or "")


@pytest.mark.parametrize(
    ("path", "answer", "expected"),
    [
        (r"^/token", respond(200, b"[" * 100_000), "unreadable answer"),
        (r"^/token", respond(200, b'{"token": NaN}'), "no token in answer"),
        (r"/manifests/", respond(404, b'{"errors":' + b"[" * 5000), "answered 404"),
        (r"/manifests/1\.0$", respond(200, b'{"config":' + b"[" * 5000), "not valid JSON"),
    ],
    ids=["token-nested", "token-nan", "error-nested", "manifest-nested"],
)
def test_absurd_json_from_a_registry_is_one_clear_line_not_an_internal_error(
    tmp_path: Path,
    dest_registry: RegistryProcess,
    repo: str,
    path: str,
    answer: Callable[..., None],
    expected: str,
) -> None:
    with HostileRegistry(token_realm=True) as registry:
        registry.add_image("app", "1.0", _image("hostile-json"))
        registry.misbehave(None, path, answer)  # HEAD too: no digest header, so the GET is parsed
        run = promoter(
            tmp_path, "copy", f"{registry.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0"
        )
    assert run.returncode == 1
    line = one_line(run)
    assert "internal error" not in line
    assert expected in line


def test_a_redirect_loop_is_named_as_one(
    tmp_path: Path, hostile: HostileRegistry, dest_registry: RegistryProcess, repo: str
) -> None:
    blob = _image("hostile-app").blobs[-1]
    hostile.misbehave(
        "GET",
        f"/blobs/{blob.digest}",
        redirect(f"http://{hostile.host}/v2/app/blobs/{blob.digest}"),
    )
    run = promoter(tmp_path, "copy", f"{hostile.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert run.returncode == 1
    assert "redirects more than 5 times" in one_line(run)


def test_a_timeout_beyond_the_platform_timers_is_bad_input(tmp_path: Path) -> None:
    run = promoter(tmp_path, "--timeout", "1e10", "digest", "127.0.0.1:1/app:1.0")
    assert run.returncode == 2
    assert "at most 1e+06 seconds" in run.stderr
    assert "Traceback" not in run.stderr


def _reading_stdin(pid: int) -> bool:
    """Whether a thread of the process is blocked in read(2) on its standard input (Linux /proc;
    the read runs on a thread of its own, bounded by the run's deadline)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "syscall").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        if fields[:2] == ["0", "0x0"]:
            return True
    return False


def test_a_signal_while_reading_standard_input_stops_at_once(tmp_path: Path) -> None:
    """Before any registry request there is nothing to report: SIGTERM stops a batch still waiting
    for its list on standard input (a cut could not wake a blocked read)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "promoter", "copy", "--batch", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1000):  # bounded: about 10 s
            if _reading_stdin(process.pid):
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("promoter never waited on its standard input")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert err.strip() == "promoter: error: interrupted"
    assert out == ""


def test_a_credential_helper_printing_without_end_is_refused_with_flat_memory(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper's output is read under its 1 MiB cap as it is printed, and the helper is stopped
    past it; nothing of it is shown."""
    credential_helper(tmp_path, monkeypatch, basic_registry.host, "endless", "exec yes SECRET\n")
    run = promoter(
        tmp_path, "copy", f"{basic_registry.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0"
    )
    assert run.returncode == 2
    line = one_line(run)
    assert "docker-credential-endless printed more than 1024 KiB" in line
    assert "SECRET" not in run.stdout + run.stderr
    assert run.peak_mib < MEMORY_CEILING_MIB
