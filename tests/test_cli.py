"""The command line as a user meets it: usage errors, one-line failures, exit codes, login, the
console script, and the progress display on a terminal."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from devtools import images
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push

from promoter.cli.main import main
from promoter.cli.progress import binary_rate
from promoter.errors import InputError

PROMOTER = Path(sys.executable).parent / "promoter"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["copy", "UPPER/Case:1", "127.0.0.1:1/x:1"], "invalid repository"),
        (["copy", "127.0.0.1:1/x:bad tag", "127.0.0.1:1/y"], "invalid"),
        (["copy", "127.0.0.1:1/x@sha256:123", "127.0.0.1:1/y"], "invalid digest"),
        (["copy", "https://127.0.0.1:1/x", "127.0.0.1:1/y"], "drop the URL scheme"),
        (["copy", "127.0.0.1:1/x"], "copy needs SRC and DST"),
        (["digest", "Bad/Ref"], "invalid repository"),
        (
            ["copy", "--ca-file", "/nonexistent/ca.pem", "127.0.0.1:1/x", "127.0.0.1:1/y"],
            "no such file",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_2(
    args: list[str], fragment: str, cli: Callable[..., CliRun]
) -> None:
    """Bad references and options exit 2 with one line naming the problem, no traceback."""
    result = cli(*args)
    assert result.code == 2
    assert fragment in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert result.out == ""


def test_usage_errors_exit_2(cli: Callable[..., CliRun]) -> None:
    """argparse usage errors (unknown flag, bad --jobs, no command) exit 2."""
    assert cli("copy", "--no-such-flag", "a", "b").code == 2
    assert cli("copy", "--jobs", "0", "a", "b").code == 2
    assert cli().code == 2
    assert cli("frobnicate").code == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("copy", "--requests", "100000000", "a", "b"), "--requests: expected at most 256"),
        (("copy", "--jobs", "129", "a", "b"), "--jobs: expected at most 128"),
        (("sync", "--from-registry", "r", "--image", "d/a:1", "--requests", "0"), "at least 1"),
        (("plan", "production", "--requests", "9999"), "--requests: expected at most 256"),
    ],
)
def test_concurrency_beyond_its_range_is_refused_before_anything_starts(
    cli: Callable[..., CliRun], args: tuple[str, ...], fragment: str
) -> None:
    """A mistyped huge --requests or --jobs would size thread pools and connection pools by it
    (urllib3 sets a pool's slots up front): refused with exit 2, at once, memory untouched."""
    result = cli(*args)
    assert result.code == 2
    assert fragment in result.err


def test_the_python_api_refuses_concurrency_beyond_its_range() -> None:
    """Session(requests=..., jobs=...) is held to the same ranges as the CLI."""
    from promoter.api import Session  # noqa: PLC0415

    with pytest.raises(
        InputError, match="requests: expected a whole number from 1 to 256, got 1000"
    ):
        Session(requests=1000)
    with pytest.raises(InputError, match="jobs: expected a whole number from 1 to 128, got 0"):
        Session(jobs=0)
    with pytest.raises(InputError, match="got '64'"):
        Session(requests="64")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"got 8\.5"):
        Session(requests=8.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="retries: expected a whole number of at least 0, got -3"):
        Session(retries=-3)


def test_unreachable_and_unknown_hosts_exit_1_in_one_line(
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused connection and a host that does not resolve fail with exit 1 and one clear line."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        refused = cli("copy", "--retries", "0", f"127.0.0.1:{port}/a:1", f"127.0.0.1:{port}/b:1")
    assert refused.code == 1
    assert len(refused.err.strip().splitlines()) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in refused.err

    real_getaddrinfo = socket.getaddrinfo

    def resolver(host: object, *args: object, **kwargs: object) -> object:
        if host == "registry.unknown.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    # No DNS traffic leaves the machine: the resolver itself answers "unknown host".
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    unknown = cli("digest", "registry.unknown.test/a:1")
    assert unknown.code == 1
    assert "cannot resolve host registry.unknown.test" in unknown.err
    assert len(unknown.err.strip().splitlines()) == 1


def test_batch_file_errors_name_the_line(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """A malformed batch line is an input error naming file and line; nothing is copied."""
    batch = tmp_path / "pairs.txt"
    batch.write_text("127.0.0.1:1/a:1 127.0.0.1:1/b:1\n\nonly-one-word\n")
    result = cli("copy", "--batch", str(batch))
    assert result.code == 2
    assert f"{batch}:3" in result.err
    assert cli("copy", "--batch", str(tmp_path / "missing.txt")).code == 2


def test_batch_reports_each_failure_and_exits_with_the_worst(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Every pair of a batch is tried; a refusal alone exits 3, any other failure exits 1."""
    good = push(
        source_registry, repo, images.oci_image([images.layer(10, "g")], seed="g"), tag="good"
    )
    push(source_registry, repo, images.oci_image([images.layer(10, "c")], seed="c"), tag="conflict")
    push(
        dest_registry,
        repo,
        images.oci_image([images.layer(10, "other")], seed="other"),
        tag="conflict",
    )
    s, d = source_registry.host, dest_registry.host
    batch = tmp_path / "pairs.txt"
    batch.write_text(f"{s}/{repo}:good {d}/{repo}:good\n{s}/{repo}:conflict {d}/{repo}:conflict\n")
    refused = cli("copy", "--batch", str(batch), "-o", "json")
    assert refused.code == 3
    lines = refused.json_lines()
    assert lines[0]["digest"] == good
    assert "refusing to move tag" in str(lines[1]["error"])
    batch.write_text(batch.read_text() + f"{s}/{repo}:missing {d}/{repo}:missing\n")
    failed = cli("copy", "--batch", str(batch))
    assert failed.code == 1
    assert "present" in failed.out
    assert failed.err.count("promoter: error:") == 2
    # the batch ends with one summary line, so a log reader sees the whole run at a glance
    assert failed.out.splitlines()[-1] == "3 images: 0 copied, 1 present, 1 refused, 1 failed"


def test_login_checks_and_stores_credentials(
    basic_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """login refuses a wrong password without storing it, stores a right one, and copies then work."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    config = tmp_path / "d" / "config.json"
    host = basic_registry.host
    password = basic_registry.password
    assert password
    wrong = main(
        ["login", host, "-u", "tester", "--password-stdin"], stdin=io.StringIO("wrong-pass\n")
    )
    err = capsys.readouterr().err
    assert wrong == 1
    assert "401" in err
    assert f"log in to {host} as tester" in err
    assert "refused this user name and password; nothing was stored" in err
    assert err.count("\n") == 1
    assert "wrong-pass" not in err
    assert not config.exists()

    assert (
        main(
            ["login", host, "-u", "tester", "--password-stdin"], stdin=io.StringIO(password + "\n")
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert password not in out + err
    assert host in json.loads(config.read_text())["auths"]
    # -o json: one document on stdout naming what was stored where, never the password
    again = ["login", host, "-u", "tester", "--password-stdin", "-o", "json"]
    assert main(again, stdin=io.StringIO(password + "\n")) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"registry": host, "username": "tester", "storedIn": str(config)}
    assert password not in out + err
    digest = push(
        source_registry, repo, images.oci_image([images.layer(10, "login")], seed="login")
    )
    assert main(["copy", f"{source_registry.host}/{repo}:1.0", f"{host}/{repo}:1.0"]) == 0
    assert manifest_digest(basic_registry, repo, "1.0") == digest


def test_login_needs_a_password(cli: Callable[..., CliRun]) -> None:
    """login without --password-stdin and without a terminal is an input error."""
    assert main(["login", "127.0.0.1:1", "-u", "me"], stdin=io.StringIO("")) == 2
    assert (
        main(["login", "127.0.0.1:1/repo", "-u", "me", "--password-stdin"], stdin=io.StringIO("x"))
        == 2
    )


@pytest.mark.parametrize("option", [["-p", "Sup3rSecretPw"], ["--password=Sup3rSecretPw"]])
def test_login_refuses_a_password_on_the_command_line_without_repeating_it(
    cli: Callable[..., CliRun], option: list[str]
) -> None:
    """docker login's -p habit: refused (exit 2) pointing at --password-stdin, the value never
    echoed (argparse would print an unknown option's value)."""
    result = cli("login", "127.0.0.1:1", "-u", "me", *option)
    assert result.code == 2
    assert "--password-stdin" in result.err
    assert "Sup3rSecretPw" not in result.err + result.out


def test_sync_report_is_checked_before_anything_runs(
    cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--report with --dry-run, or a path that cannot be written, is bad input before any work."""
    dry = cli(
        "sync",
        "--from-registry",
        "127.0.0.1:1",
        "--image",
        "127.0.0.1:2/a:1",
        "--dry-run",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert dry.code == 2
    assert "--dry-run copies nothing" in dry.err
    missing = cli(
        "sync",
        "--from-registry",
        "127.0.0.1:1",
        "--image",
        "127.0.0.1:2/a:1",
        "--report",
        str(tmp_path / "no" / "r.json"),
    )
    assert missing.code == 2
    assert "does not exist" in missing.err
    assert missing.err.count("\n") == 1  # nothing was asked of 127.0.0.1:1 (it would fail)


def test_console_script_and_module_entry_points(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """The installed `promoter` script and `python -m promoter` both run; quiet when not on a terminal."""
    digest = push(source_registry, repo, images.multi_arch_index("script"))
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [
            str(PROMOTER),
            "copy",
            f"{source_registry.host}/{repo}:1.0",
            f"{dest_registry.host}/{repo}:1.0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("copied ")
    assert digest in done.stdout
    version = subprocess.run(
        [sys.executable, "-m", "promoter", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0
    assert version.stdout.startswith("promoter ")


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (controller, terminal side), closed afterwards."""
    controller, side = pty.openpty()
    yield controller, side
    for fd in (controller, side):
        with contextlib.suppress(OSError):  # the test closes the terminal side itself
            os.close(fd)


def test_progress_is_shown_on_a_terminal(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    terminal: tuple[int, int],
) -> None:
    """On a terminal, copy draws byte progress on stderr; the final line still reaches stdout."""
    push(
        source_registry,
        repo,
        images.oci_image([images.layer(3_000_000, "tty", gzip=False)], seed="tty"),
    )
    controller, side = terminal
    proc = subprocess.Popen(
        [
            str(PROMOTER),
            "copy",
            f"{source_registry.host}/{repo}:1.0",
            f"{dest_registry.host}/{repo}:1.0",
        ],
        stdout=subprocess.PIPE,
        stderr=side,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(side)
    screen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal side closed: the process is done with it
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.startswith("copied ")
    text = screen.decode(errors="replace")
    assert "total" in text
    assert "MiB" in text
    # one unit family: sizes and speeds both in powers of 1024, never kB/s beside MiB
    assert not re.search(r"\d\s?[kMG]B/s", text)


def test_transfer_rates_use_the_units_of_sizes() -> None:
    """Speeds are KiB/s and MiB/s like the sizes beside them."""
    assert binary_rate(None) == "?"
    assert binary_rate(512) == "512 B/s"
    assert binary_rate(3 * 1024 * 1024) == "3.0 MiB/s"


def test_batch_refuses_two_writes_to_one_destination(
    cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """Two lines writing the same destination would race; the batch is refused naming both lines."""
    batch = tmp_path / "pairs.txt"
    batch.write_text("127.0.0.1:1/a:1 127.0.0.1:2/x:1\n127.0.0.1:1/b:1 127.0.0.1:2/x:1\n")
    result = cli("copy", "--batch", str(batch))
    assert result.code == 2
    assert f"{batch}:2" in result.err
    assert "line 1" in result.err


def test_bare_destination_keeps_tag_and_digest_of_the_source(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """SRC:tag@digest to a bare repository is pushed under the tag and checked against the digest."""
    digest = push(
        source_registry, repo, images.oci_image([images.layer(10, "pin")], seed="pin"), tag="3.1"
    )
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:3.1@{digest}",
        f"{dest_registry.host}/{repo}",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert result.json()["destination"] == f"{dest_registry.host}/{repo}:3.1@{digest}"
    assert manifest_digest(dest_registry, repo, "3.1") == digest


def test_json_output_reports_a_single_failure_too(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """With -o json a failed copy still prints one JSON object naming the error and exit code."""
    result = cli(
        "copy",
        "-o",
        "json",
        f"{source_registry.host}/{repo}:nope",
        f"{dest_registry.host}/{repo}:nope",
    )
    assert result.code == 1
    doc = result.json()
    assert doc["exitCode"] == 1
    assert "not found" in str(doc["error"])
    assert len(result.err.strip().splitlines()) == 1


def test_login_accepts_a_url(
    basic_registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`promoter login http://host:port/` stores credentials under the host, as docker login does."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    password = basic_registry.password or ""
    code = main(
        ["login", f"http://{basic_registry.host}/", "-u", "tester", "--password-stdin"],
        stdin=io.StringIO(password),
    )
    assert code == 0
    assert basic_registry.host in json.loads((tmp_path / "config.json").read_text())["auths"]


def test_grant_pull_without_a_source_registry_says_which_option_names_it(
    cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no promoter.yaml and no --registry, one line tells the user to give --registry (exit 2)."""
    monkeypatch.chdir(tmp_path)
    result = cli("ecr", "grant-pull", "--account", "123456789012")
    assert result.code == 2
    assert result.err.strip() == (
        "promoter: error: give --registry HOST: no promoter.yaml ECR registries that another "
        "environment promotes from"
    )


def test_a_signal_once_the_run_is_over_leaves_its_exit_code() -> None:
    """The console script owns the process: a SIGTERM (or a first Ctrl-C) that comes after the
    run, while the process flushes and ends, changes nothing (the default action would kill it,
    exit 143, after the summary said all was done)."""
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from promoter.cli.common import stop_on_signals  # noqa: PLC0415

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with stop_on_signals(owns_process=True):
            pass
        os.kill(os.getpid(), signal.SIGTERM)  # handled at once, on this (the main) thread
        os.kill(os.getpid(), signal.SIGINT)
        survived = True
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert survived


def test_a_stream_of_sigterms_while_the_process_ends_leaves_exit_0() -> None:
    """From the end of the run to the last instant of the interpreter (which gives Python's own
    handlers back to the default action while it finalizes), SIGTERM after SIGTERM changes
    nothing: the console script ignores them once the run is over, and exits 0."""
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "from promoter.cli.common import stop_on_signals\n"
                "with stop_on_signals(owns_process=True):\n"
                "    pass\n"
                "print('over', flush=True)\n"
                "import promoter.cli.main\n"  # a process that takes a while to end
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "over\n"
    ends = time.monotonic() + 20
    while child.poll() is None and time.monotonic() < ends:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGTERM)
        time.sleep(0.0005)  # a stream of signals, not a wait for anything
    assert child.wait(10) == 0
    child.stdout.close()
