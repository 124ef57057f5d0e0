"""Input that cannot explode: size caps, YAML alias rules, linear validation, one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import promoter.config.load
from promoter.config.input_files import InputCap
from promoter.config.load import load_config
from promoter.errors import ConfigError
from promoter.gitops.kustomization import image_field_specs
from promoter.gitops.render import Rendering

# -- validation stays linear -----------------------------------------------------------------------


def _pipeline(folder: Path, count: int) -> Path:
    """A promoter.yaml of ``count`` environments in one chain, written last stage first.

    Each environment promotes from the one after it in the file: the longest possible chain, and the
    file order farthest from pipeline order, which is the worst case for both checks and ordering.
    """
    lines = ["environments:"]
    for index in range(count):
        lines += [
            f"  env-{index}:",
            f"    overlay: overlays/env-{index}",
            f"    registry: r{index}.example.com",
        ]
        if index < count - 1:
            lines.append(f"    promotesFrom: env-{index + 1}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "promoter.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _lines_run_in_load_module(path: Path) -> int:
    """How many lines of promoter/config/load.py run while loading ``path``: the work validation does."""
    module_file = promoter.config.load.__file__
    counted = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal counted
        if event == "line":
            counted += 1
        return local

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == module_file else None

    sys.settrace(on_call)
    try:
        load_config(path)
    finally:
        sys.settrace(None)
    return counted


def test_validation_work_grows_linearly_with_environments(tmp_path: Path) -> None:
    """Four times the environments costs about four times the validation work, not sixteen."""
    small = _lines_run_in_load_module(_pipeline(tmp_path / "small", 1000))
    large = _lines_run_in_load_module(_pipeline(tmp_path / "large", 4000))
    assert large < 5 * small, (small, large)


def test_three_thousand_environments_load_in_pipeline_order(tmp_path: Path) -> None:
    """A chain of 3000 environments validates and comes back source before receiver."""
    config = load_config(_pipeline(tmp_path, 3000))
    assert list(config.environments) == [f"env-{index}" for index in reversed(range(3000))]
    assert config.source_of("env-0") == config.environments["env-1"]


# -- the real CLI, its exit code, its one line and its peak memory ---------------------------------

#: Runs the CLI like the console script and, as it exits, records the process's peak resident size
#: (VmHWM, in KiB) in the file named first: the measure covers promoter alone, not kustomize.
_MEASURED_CLI = """\
import sys
from promoter.cli.main import main
code = main(sys.argv[2:])
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
with open(sys.argv[1], "w") as out:
    out.write(peak)
sys.exit(code)
"""
#: What a run that refuses a hostile input may use at most, far below what the input would cost.
PEAK_LIMIT_MIB = 200


@dataclass(frozen=True)
class Run:
    """One CLI run in a child process."""

    code: int
    out: str
    err: str
    peak_mib: float

    @property
    def error_line(self) -> str:
        """Standard error, which must be exactly one line."""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def run_cli(
    *args: str | Path, cwd: Path | None = None, stdin: bytes | None = None, timeout: float = 60
) -> Run:
    """``promoter ARGS`` as a child process, with its exit code, output and peak memory."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED_CLI, peak.name, *map(str, args)],
            cwd=cwd,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        recorded = Path(peak.name).read_text()
    assert recorded, done.stderr.decode(errors="replace")
    return Run(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        int(recorded) / 1024,
    )


def alias_bomb(levels: int = 9, width: int = 10, indent: str = "") -> str:
    """Billion laughs: ``width ** levels`` strings from about a kilobyte of YAML, as a mapping's keys."""
    lines = [
        f'{indent}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    ]
    lines += [
        f"{indent}l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]"
        for level in range(1, levels + 1)
    ]
    return "\n".join(lines) + "\n"


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gitops"
DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of examples/gitops whose registries nobody answers (these runs must not get that far)."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    return root


def test_an_alias_bomb_in_promoter_yaml_stops_argocd_generate_in_one_line(repo: Path) -> None:
    """A billion-laughs repositoryPolicy is refused before validation: exit 2, small and fast."""
    bomb = alias_bomb(indent="            ").replace("l0: &l0", "Version: &l0", 1)
    (repo / "promoter.yaml").write_text(
        (repo / "promoter.yaml").read_text().split("\nregistries:")[0]
        + f"\nregistries:\n  {PROD}:\n    ecr:\n      repository:\n"
        + f"        repositoryPolicy:\n          Statement:\n{bomb}"
    )
    run = run_cli("argocd", "generate", cwd=repo / "infra" / "overlays" / "production")
    assert run.code == 2
    assert run.out == ""  # nothing for Argo CD to apply (or prune by)
    assert run.error_line.startswith(f"promoter: error: {repo / 'promoter.yaml'}: YAML alias of ")
    assert run.error_line.endswith(
        "aliases are not accepted in this file; write the value out where it is used"
    )
    assert run.peak_mib < PEAK_LIMIT_MIB


def test_promoter_yaml_takes_no_aliases_at_all(repo: Path) -> None:
    """Even one harmless alias in promoter.yaml is refused, naming the anchored value's place."""
    config = repo / "promoter.yaml"
    config.write_text(
        f"environments:\n  dev:\n    overlay: infra/overlays/dev\n    registry: &dev {DEV}\n"
        "  production:\n    overlay: infra/overlays/production\n    registry: *dev\n"
    )
    run = run_cli("plan", "production", "--config", config)
    assert run.code == 2
    assert run.error_line == (
        f"promoter: error: {config}: YAML alias of the value at line 4, column 15: aliases are not "
        "accepted in this file; write the value out where it is used"
    )


def test_an_alias_bomb_in_rendered_manifests_is_refused(repo: Path) -> None:
    """--manifests with a billion laughs under a ConfigMap: exit 2 in one line, memory flat."""
    manifests = repo / "bomb.yaml"
    manifests.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\ndata:\n"
        + alias_bomb(indent="  ")
    )
    run = run_cli("plan", "production", "--manifests", manifests, cwd=repo)
    assert run.code == 2
    assert run.error_line == (
        f"promoter: error: manifests from {manifests}: YAML aliases in the document at line 1 expand "
        "beyond the limit of 1,000,000 characters and values that aliases may add; write the values out"
    )
    assert run.peak_mib < PEAK_LIMIT_MIB


def test_a_few_aliases_in_rendered_manifests_are_fine(repo: Path) -> None:
    """Helm output that shares an env list through an anchor still plans (its image is external;
    dev promotes from nowhere, so no source overlay is rendered to check its registry against)."""
    manifests = repo / "shared.yaml"
    manifests.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "    - {name: a, image: busybox:1.36, env: &env [{name: A, value: '1'}]}\n"
        "    - {name: b, image: busybox:1.36, env: *env}\n"
    )
    run = run_cli("plan", "dev", "--manifests", manifests, "-o", "json", cwd=repo)
    assert run.code == 0, run.err
    [image] = json.loads(run.out)["images"]
    assert (image["image"], image["status"]) == ("busybox:1.36", "external")


@pytest.mark.parametrize(
    ("args", "name", "limit"),
    [
        (("plan", "production", "--manifests", "/dev/zero"), "manifests from /dev/zero", "32 MiB"),
        (
            ("sync", "--from-registry", DEV, "--images-file", "/dev/zero"),
            "images file /dev/zero",
            "4 MiB",
        ),
        (("copy", "--batch", "/dev/zero"), "batch file /dev/zero", "4 MiB"),
    ],
)
def test_endless_inputs_stop_at_their_cap(
    repo: Path, args: tuple[str, ...], name: str, limit: str
) -> None:
    """An input without end is read only up to its documented cap, then refused in one line."""
    run = run_cli(*args, cwd=repo)
    assert run.code == 2
    assert run.error_line.startswith(f"promoter: error: {name} is larger than {limit}, the limit")
    assert run.peak_mib < PEAK_LIMIT_MIB


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _folder_holding(tmp_path: Path, name: str, make: Callable[[Path], object]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    make(folder / "promoter.yaml")
    return folder


@pytest.mark.timeout(60)
def test_promoter_yaml_must_be_a_regular_file_and_is_never_waited_on(
    repo: Path, tmp_path: Path
) -> None:
    """--config naming a named pipe (or a folder whose promoter.yaml is one, a folder, or a link to
    /dev/zero), or a promoter.yaml found in the current folder that is one: exit 2 at once, one
    line saying what it is instead of a regular file; one over 2 MiB is still refused at the cap."""
    fifo = _fifo(tmp_path / "fifo" / "promoter.yaml")
    cases = {
        fifo: (fifo, "a named pipe (FIFO)"),
        fifo.parent: (fifo, "a named pipe (FIFO)"),
        Path("/dev/zero"): (Path("/dev/zero"), "a character device"),
        _folder_holding(tmp_path, "zero", lambda p: p.symlink_to("/dev/zero")): (
            tmp_path / "zero" / "promoter.yaml",
            "a character device",
        ),
        _folder_holding(tmp_path, "nested", Path.mkdir): (
            tmp_path / "nested" / "promoter.yaml",
            "a folder",
        ),
    }
    for given, (path, kind) in cases.items():
        for args in (("plan", "production", "--config", given), ("--config", given, "status")):
            run = run_cli(*args, cwd=repo, timeout=20)
            assert run.code == 2, (args, run.err)
            assert run.error_line == (
                f"promoter: error: {path} is {kind}, not a regular file; give a regular file"
            )
    found = _fifo(tmp_path / "here" / "promoter.yaml")  # found by looking, not named
    run = run_cli("status", cwd=found.parent, timeout=20)
    assert run.error_line == (
        f"promoter: error: {found} is a named pipe (FIFO), not a regular file; give a regular file"
    )
    huge = repo / "huge.yaml"
    with huge.open("wb") as sparse:
        sparse.truncate(3 * 1024 * 1024)
    run = run_cli("plan", "production", "--config", huge, cwd=repo)
    assert run.code == 2
    assert run.error_line.startswith(f"promoter: error: {huge} is larger than 2 MiB, the limit")


@pytest.mark.timeout(60)
def test_kustomization_and_configurations_files_must_be_regular_files(tmp_path: Path) -> None:
    """A configurations file (or a kustomization) of the overlay's tree that is a named pipe is
    refused in one line naming it, without waiting for a writer that never comes."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("configurations: [images-config.yaml]\n")
    pipe = _fifo(overlay / "images-config.yaml")
    with pytest.raises(ConfigError) as caught:
        image_field_specs(overlay)
    assert str(caught.value) == (
        f"kustomize configurations file {pipe} is a named pipe (FIFO), not a regular file; "
        "give a regular file"
    )
    base = tmp_path / "base"
    _fifo(base / "kustomization.yaml")
    (overlay / "kustomization.yaml").write_text("resources: [../base]\n")
    with pytest.raises(ConfigError, match=r"kustomization .*base/kustomization\.yaml is a named"):
        image_field_specs(overlay)


def test_kustomize_output_is_read_up_to_the_cap(tmp_path: Path) -> None:
    """A real kustomize build that prints more than the cap is stopped, and its output refused."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "big.txt").write_text(("x" * 99 + "\n") * 1000)
    (overlay / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: big\n    files: [big.txt]\n"
    )
    cap = InputCap("rendered manifests", 10_000, "split the application")
    rendering = Rendering(overlay, timeout=60, cap=cap)
    with pytest.raises(ConfigError) as caught:
        rendering.result()
    assert str(caught.value) == (
        f"the output of kustomize build {overlay} is larger than 10000 bytes, the limit for "
        "rendered manifests; split the application"
    )
    assert (
        len(Rendering(overlay, timeout=60).result()) > 10_000
    )  # the same build, under the real cap


@pytest.mark.parametrize("flag", ["--images-file", "--batch"])
@pytest.mark.parametrize("from_stdin", [False, True])
def test_list_files_that_are_not_utf8_are_bad_input(
    tmp_path: Path, flag: str, from_stdin: bool
) -> None:
    """Non-UTF-8 --images-file / --batch (a file or standard input): exit 2, one line, a remedy."""
    data = b"localhost:5000/a:1 localhost:5001/a:1\n\xff\xfe localhost:5000/b:1\n"
    path = tmp_path / "list.txt"
    path.write_bytes(data)
    source = "-" if from_stdin else str(path)
    command = (
        ["sync", "--from-registry", "localhost:5000", "--images-file", source]
        if flag == "--images-file"
        else ["copy", "--batch", source]
    )
    run = run_cli(*command, stdin=data if from_stdin else None)
    what = "images file" if flag == "--images-file" else "batch file"
    where = f"{what} from standard input" if from_stdin else f"{what} {path}"
    assert run.code == 2
    assert run.error_line == (
        f"promoter: error: cannot read {where}: not UTF-8 text (byte 0xff at offset 38); "
        "save it as UTF-8"
    )


# -- credentials typed into references and hosts are refused, never repeated -----------------------

PASSWORD = "S3cretPW-7f1c"
CREDENTIALS_HINT = "remove it, and store credentials with promoter login or docker login instead"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("copy", f"user:{PASSWORD}@reg.example.com/app:1", "localhost:5000/app:1"),
            "image reference '***@reg.example.com/app:1' has a user name or password in it; "
            + CREDENTIALS_HINT,
        ),
        (
            ("copy", "reg.example.com/app:1", f"https://u:{PASSWORD}@localhost:5000/app:1"),
            "image reference 'https://***@localhost:5000/app:1' has a user name or password in "
            "it; " + CREDENTIALS_HINT,
        ),
        (
            ("digest", f"u:{PASSWORD}@nginx:latest"),
            "image reference '***@nginx:latest' has a user name or password in it; "
            + CREDENTIALS_HINT,
        ),
        (
            ("digest", f"u:pa/{PASSWORD}@localhost:5000/app@sha256:{'a' * 64}"),
            f"image reference '***@localhost:5000/app@sha256:{'a' * 64}' has a user name or "
            "password in it; " + CREDENTIALS_HINT,
        ),
        (
            ("login", "-u", "u", "--password-stdin", f"u:{PASSWORD}@reg.example.com"),
            (
                "login takes a registry host, not credentials: remove the user name/password from "
                "'***@reg.example.com'; give the user with --username and the password on standard input"
            ),
        ),
        (
            ("login", "-u", "u", "--password-stdin", f"https://u:{PASSWORD}@reg.example.com/"),
            (
                "login takes a registry host, not credentials: remove the user name/password from "
                "'https://***@reg.example.com/'; give the user with --username and the password on "
                "standard input"
            ),
        ),
        (
            ("sync", "--from-registry", f"u:{PASSWORD}@reg.example.com", "--image", "r.io/a:1"),
            "--from-registry: registry host '***@reg.example.com' has a user name or password in "
            "it; " + CREDENTIALS_HINT,
        ),
        (
            ("ecr", "grant-pull", "--registry", f"u:{PASSWORD}@{DEV}", "--account", "222222222222"),
            f"--registry: registry host '***@{DEV}' has a user name or password in it; "
            + CREDENTIALS_HINT,
        ),
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_credentials_in_a_reference_or_host_are_refused_unrepeated(
    tmp_path: Path, args: tuple[str, ...], message: str, debug: bool
) -> None:
    """user:pw@host in a reference, a URL or a registry host: exit 2, password never printed."""
    run = run_cli(*args, *(["--debug"] if debug else []), cwd=tmp_path, stdin=b"x\n")
    assert run.code == 2, run.err
    assert PASSWORD not in run.out + run.err
    if not debug:  # --debug adds the traceback, which must not have it either
        assert run.error_line == f"promoter: error: {message}"


def test_credentials_in_a_batch_file_are_not_repeated(tmp_path: Path) -> None:
    """A --batch line with credentials, as a pair or alone, is refused without the password."""
    batch = tmp_path / "pairs.txt"
    for line, message in [
        (
            f"u:{PASSWORD}@reg.example.com/a:1 localhost:5000/a:1",
            f"{batch}:1: image reference '***@reg.example.com/a:1' has a user name or password "
            "in it; " + CREDENTIALS_HINT,
        ),
        (
            f"u:{PASSWORD}@reg.example.com/a:1",
            f"{batch}:1: expected 'SRC DST', got '***@reg.example.com/a:1'",
        ),
    ]:
        batch.write_text(line + "\n")
        for debug in ([], ["--debug"]):
            run = run_cli("copy", "--batch", batch, *debug)
            assert run.code == 2
            assert PASSWORD not in run.out + run.err
        assert run_cli("copy", "--batch", batch).error_line == f"promoter: error: {message}"


def _config_with(folder: Path, registry: str = DEV, registries: str = "") -> Path:
    path = folder / "promoter.yaml"
    path.write_text(
        f"environments:\n  dev:\n    overlay: o/dev\n    registry: '{registry}'\n"
        + (f"registries:\n{registries}" if registries else "")
    )
    return path


@pytest.mark.parametrize(
    ("registry", "registries", "message"),
    [
        (
            f"u:{PASSWORD}@{DEV}",
            "",
            f"environments.dev.registry: registry host '***@{DEV}' has a user name or password "
            "in it; " + CREDENTIALS_HINT,
        ),
        (
            DEV,
            f"  'u:{PASSWORD}@{DEV}': {{}}\n",
            f"registries: registry host '***@{DEV}' has a user name or password in it; "
            + CREDENTIALS_HINT,
        ),
        (
            DEV,
            f"  {DEV}: {{endpoint: 'ftp://u:{PASSWORD}@mirror'}}\n",
            (
                f"registries.{DEV}.endpoint: remove the user name/password from the URL "
                "('ftp://***@mirror'); store credentials with promoter login or docker login instead"
            ),
        ),
        (
            DEV,
            f"  {DEV}: {{endpoint: 'http://u:{PASSWORD}@mirror:99999'}}\n",
            (
                f"registries.{DEV}.endpoint: remove the user name/password from the URL "
                "('http://***@mirror:99999'); store credentials with promoter login or docker login "
                "instead"
            ),
        ),
    ],
)
def test_credentials_in_promoter_yaml_are_refused_unrepeated(
    tmp_path: Path, registry: str, registries: str, message: str
) -> None:
    """Credentials in an environment's registry, a registries key or an endpoint: exit 2, unprinted."""
    config = _config_with(tmp_path, registry, registries)
    for debug in ([], ["--debug"]):
        run = run_cli("plan", "dev", "--config", config, *debug, cwd=tmp_path)
        assert run.code == 2
        assert PASSWORD not in run.out + run.err
    assert run_cli("plan", "dev", "--config", config).error_line == (
        f"promoter: error: {config}: {message}"
    )


# -- ports are 1 to 65535 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("copy", "reg.example.com:99999/app:1", "localhost:5000/app:1"),
            (
                "invalid port 99999 in registry host 'reg.example.com:99999' of image reference "
                "'reg.example.com:99999/app:1': use a port from 1 to 65535"
            ),
        ),
        (
            ("copy", "reg.example.com/app:1", "localhost:0/app:1"),
            (
                "invalid port 0 in registry host 'localhost:0' of image reference 'localhost:0/app:1': "
                "use a port from 1 to 65535"
            ),
        ),
        (
            ("digest", "reg.example.com:http/app:1"),
            (
                "invalid registry host 'reg.example.com:http' in image reference "
                "'reg.example.com:http/app:1': expected host[:port] with a port from 1 to 65535"
            ),
        ),
        (
            ("sync", "--from-registry", "localhost:70000", "--image", "localhost:5000/a:1"),
            (
                "--from-registry: invalid port 70000 in registry host 'localhost:70000': use a port "
                "from 1 to 65535"
            ),
        ),
        (
            ("login", "-u", "u", "--password-stdin", "localhost:65536"),
            "invalid port 65536 in registry host 'localhost:65536': use a port from 1 to 65535",
        ),
    ],
)
def test_a_port_outside_1_to_65535_is_bad_input(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """A port over 65535, 0 or not a number, in a reference or a host: exit 2 in one line."""
    run = run_cli(*args, cwd=tmp_path, stdin=b"x\n")
    assert run.code == 2
    assert run.error_line == f"promoter: error: {message}"


@pytest.mark.parametrize(
    ("registry", "registries", "message"),
    [
        (
            "r.example.com:99999",
            "",
            (
                "environments.dev.registry: invalid port 99999 in registry host "
                "'r.example.com:99999': use a port from 1 to 65535"
            ),
        ),
        (
            DEV,
            f"  {DEV}: {{endpoint: 'http://127.0.0.1:65536'}}\n",
            (
                f"registries.{DEV}.endpoint: invalid port in 'http://127.0.0.1:65536': use a port "
                "from 1 to 65535"
            ),
        ),
        (
            DEV,
            f"  {DEV}: {{endpoint: 'http://127.0.0.1:0'}}\n",
            (
                f"registries.{DEV}.endpoint: invalid port in 'http://127.0.0.1:0': use a port "
                "from 1 to 65535"
            ),
        ),
        (
            DEV,
            f"  {DEV}: {{endpoint: 'http://127.0.0.1:five'}}\n",
            (
                f"registries.{DEV}.endpoint: invalid port in 'http://127.0.0.1:five': use a port "
                "from 1 to 65535"
            ),
        ),
    ],
)
def test_a_port_outside_1_to_65535_in_promoter_yaml_is_bad_input(
    tmp_path: Path, registry: str, registries: str, message: str
) -> None:
    """Environment registries and endpoints in promoter.yaml follow the same port rule."""
    config = _config_with(tmp_path, registry, registries)
    run = run_cli("plan", "dev", "--config", config, cwd=tmp_path)
    assert run.code == 2
    assert run.error_line == f"promoter: error: {config}: {message}"


def test_a_stream_that_never_ends_is_read_only_until_the_deadline(repo: Path) -> None:
    """--manifests - from a pipe whose writer never finishes, and an images file that is a named
    pipe nobody writes to, end at --timeout (exit 1, one line) instead of waiting forever."""
    writer = subprocess.Popen(["sleep", "60"], stdout=subprocess.PIPE)
    try:
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "promoter", "plan", "dev", "--manifests", "-", "--timeout", "2"],
            stdin=writer.stdout,
            capture_output=True,
            text=True,
            cwd=repo,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started
    finally:
        writer.kill()
        writer.wait()
        assert writer.stdout is not None
        writer.stdout.close()
    assert run.returncode == 1, run.stderr
    assert took < 20
    assert (
        "reading manifests from standard input: it had not ended at the 2 s deadline" in run.stderr
    )
    fifo = repo / "images.fifo"
    os.mkfifo(fifo)
    images = subprocess.run(
        [sys.executable, "-m", "promoter", "sync", "--from-registry", DEV, "--images-file",
         str(fifo), "--timeout", "2"],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert images.returncode == 1, images.stderr
    assert "it had not ended at the 2 s deadline" in images.stderr
