"""Child processes (kustomize, credential helpers) under interrupts and deadlines: the first SIGINT or
SIGTERM stops them at once and the command ends "interrupted" (130), promote puts back the file it
wrote, a second SIGINT leaves none running, and a render is stopped at the run's deadline. Real
kubectl, real processes and signals; the slow parts are a remote resource on 127.0.0.1 that is not
answered, and a credential helper that never answers."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType

import pytest
from devtools.loopback_http import LoopbackServer
from devtools.registry import RegistryProcess
from tests.conftest import CliRun, GitOpsRepo, credential_helper

#: A resource kustomize fetches over HTTP: a ConfigMap, with no image.
_CONFIG_MAP = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote}\ndata: {a: b}\n"


class _RemoteResource:
    """A kustomize remote resource served on 127.0.0.1; a request that comes while ``hold()`` is
    true is held unanswered (``held`` is set) until the server stops."""

    def __init__(self, hold: Callable[[], bool]) -> None:
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()
        self._server = LoopbackServer(_RemoteResourceHandler, self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/remote.yaml"

    def __enter__(self) -> _RemoteResource:
        self._server.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.stop()


class _RemoteResourceHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        remote: _RemoteResource = self.server.owner  # type: ignore[attr-defined]  # LoopbackServer's
        if remote.hold():
            remote.held.set()
            remote.release.wait(120)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(_CONFIG_MAP)))
        self.end_headers()
        self.wfile.write(_CONFIG_MAP)

    def log_message(self, *_args: object) -> None:
        """Quiet."""


def _add_resource(path: Path, url: str) -> None:
    """List ``url`` first under the kustomization's ``resources:``."""
    text = path.read_text()
    assert "resources:\n" in text
    path.write_text(text.replace("resources:\n", f"resources:\n  - {url}\n", 1))


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _kustomize_children(pid: int) -> list[int]:
    """The children of ``pid`` that run kustomize (``kubectl kustomize`` or ``kustomize``)."""
    found = []
    for child in _children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kustomize" in command or any(part.endswith(b"/kustomize") for part in command):
            found.append(child)
    return found


def _ended(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (or ends within ``within`` seconds): a pidfd becomes
    readable when its process exits, so this waits for the event, not for a clock."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([descriptor], [], [], within)
        return bool(readable)
    finally:
        os.close(descriptor)


def _promoter(*args: str) -> subprocess.Popen[str]:
    """The CLI as a process of its own, to be signalled."""
    return subprocess.Popen(
        [sys.executable, "-m", "promoter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """Its output once it has ended; killed when it does not end within ``timeout`` s."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_promotes_check_render_stops_it_and_puts_the_file_back(
    gitops: GitOpsRepo, signum: signal.Signals
) -> None:
    """An interrupt while promote renders the edited overlay stops kubectl at once, puts the
    kustomization back byte for byte and ends "interrupted" (130) with no diff; before, the render
    ran on, the edit stayed and the diff was printed under exit 130."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    with _RemoteResource(hold=lambda: "newTag: 2.4.0" in path.read_text()) as remote:
        _add_resource(path, remote.url)
        before = path.read_bytes()
        process = _promoter("promote", gitops.repo("cart"), "--to", "production")
        try:
            assert remote.held.wait(60), "the check render never asked for the remote resource"
            [kustomize] = _kustomize_children(process.pid)
            process.send_signal(signum)
            signalled = time.monotonic()
            out, err = _finish(process)
            took = time.monotonic() - signalled
        finally:
            _finish(process)
    assert process.returncode == 130, err
    assert took < 10, err
    assert path.read_bytes() == before
    assert out == ""
    assert "Traceback" not in err
    assert re.fullmatch(r"promoter: error: kustomize build \S+production: interrupted", err.strip())
    assert _ended(kustomize)


def test_a_second_sigint_exits_at_once_leaving_no_kustomize_running(gitops: GitOpsRepo) -> None:
    """Two SIGINTs in a row during promote's check render (registries asked already) exit 130 at
    once with no kubectl left behind and the kustomization put back; before, the first was ignored
    and the second exited with kubectl still running, its parent gone, the edit unchecked."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    with _RemoteResource(hold=lambda: "newTag: 2.4.0" in path.read_text()) as remote:
        _add_resource(path, remote.url)
        original = path.read_bytes()
        process = _promoter("promote", gitops.repo("cart"), "--to", "production")
        try:
            assert remote.held.wait(60), "the check render never asked for the remote resource"
            [kustomize] = _kustomize_children(process.pid)
            os.kill(process.pid, signal.SIGINT)
            os.kill(process.pid, signal.SIGINT)
            _, err = _finish(process)
        finally:
            _finish(process)
        assert process.returncode == 130, err
        assert "Traceback" not in err
        assert _ended(kustomize)  # checked while the server still holds its request
        assert path.read_bytes() == original  # the unchecked edit is put back on the way out


def test_an_interrupt_stops_a_credential_helper_that_never_answers(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGINT while a docker-credential helper hangs kills the helper and ends "interrupted"
    (130) at once; before, promoter waited for the helper's own 30 s timeout."""
    started = tmp_path / "helper-started"
    os.mkfifo(started)
    credential_helper(
        tmp_path,
        monkeypatch,
        basic_registry.host,
        "stuck",
        f'echo "$$" > {started}\nexec sleep 60\n',
    )
    reader = os.open(started, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO: readable once it is written
    try:
        process = _promoter(
            "copy", f"{basic_registry.host}/app:1.0", f"{dest_registry.host}/{repo}:1.0"
        )
        try:
            assert select.select([reader], [], [], 60)[0], "the credential helper never ran"
            helper = int(os.read(reader, 64))
            process.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            _, err = _finish(process)
            took = time.monotonic() - signalled
        finally:
            _finish(process)
    finally:
        os.close(reader)
    assert process.returncode == 130, err
    assert took < 10, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert _ended(helper)


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "production"),
        ("sync", "production"),
        ("status",),
        ("promote", "--all", "--to", "production"),
    ],
    ids=["plan", "sync", "status", "promote"],
)
def test_a_render_that_never_ends_is_stopped_at_the_runs_deadline(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], args: tuple[str, ...]
) -> None:
    """A render stuck on a remote resource that never answers ends at --timeout (the whole run's
    deadline, for sync too), exit 1, one line naming the deadline and how long the build ran,
    kubectl stopped; before, plan's early render was waited for its own 120 s and the message
    blamed the deadline (sync's its lookups' quarter), and promote's renders had no deadline."""
    path = gitops.kustomization("production")
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        _add_resource(path, f"http://127.0.0.1:{silent.getsockname()[1]}/never.yaml")
        started = time.monotonic()
        result = cli(*args, "--timeout", "3")
        took = time.monotonic() - started
    assert result.code == 1, result.err
    assert took < 8, result.err
    [line] = result.err.splitlines()
    found = re.fullmatch(
        r"promoter: error: kustomize build \S+production: stopped after ([\d.]+) s, at the 3 s "
        r"deadline",
        line,
    )
    assert found is not None, line
    assert 1.0 <= float(found.group(1)) <= took  # the time it really ran
    assert _kustomize_children(os.getpid()) == []


@pytest.mark.parametrize("command", ["plan", "sync", "status"])
def test_json_output_is_a_document_when_the_command_fails(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], command: str
) -> None:
    """plan, sync and status with -o json print one document on stdout when they fail (an overlay
    that does not render): the environment named, the error line as stderr shows it, the exit
    code; before, stdout was empty."""
    _add_resource(gitops.kustomization("production"), "../../charts/no-such-chart")
    args = (command, "-o", "json") if command == "status" else (command, "production", "-o", "json")
    result = cli(*args)
    assert result.code == 2, result.err
    expected: dict[str, object] = {} if command == "status" else {"environment": "production"}
    expected |= {"error": result.err.strip().removeprefix("promoter: error: "), "exitCode": 2}
    assert result.json() == expected
    assert "no-such-chart" in str(expected["error"])
    assert json.loads(result.out) == expected  # one document, nothing else on stdout


def test_promoters_worker_threads_leave_stop_signals_to_the_main_thread() -> None:
    """Every worker pool and reader thread blocks SIGINT and SIGTERM, so the kernel delivers them to
    the main thread, which runs the handler at once (a signal taken by a worker left a main thread
    waiting on a future asleep until the worker ended: an interrupt lost for 30 s under load)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - this test only

    from promoter.process import PipeReader, signals_to_main_thread  # noqa: PLC0415

    with ThreadPoolExecutor(1, initializer=signals_to_main_thread) as pool:
        blocked = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result()
    assert {signal.SIGINT, signal.SIGTERM} <= blocked
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the caller's own
    read, write = os.pipe()
    seen: list[set[signal.Signals]] = []

    class Probe(PipeReader):
        def run(self) -> None:
            super().run()
            seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    with os.fdopen(read, "rb") as pipe:
        reader = Probe(pipe, 10)
        os.close(write)
        reader.join(10)
    assert seen
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
