"""Benchmark promoter against skopeo and against a curl upload ceiling, side by side.

Two throwaway Distribution registries run on 127.0.0.1 (source and destination). The source is
seeded with deterministic images from ``devtools.images``; every measured copy then goes to a
destination repository that no earlier run has touched, so nothing is skipped or mounted from a
previous round. Scenarios (see bench/README.md for the reasoning):

* (a) one multi-arch image of >= 256 MiB: promoter vs ``skopeo copy --all --preserve-digests`` vs a
  parallel ``curl`` upload of the same blobs from local files (the physical ceiling), plus a
  promoter ``--jobs`` sweep.
* (b) 50 images sharing base layers: one ``promoter copy --batch`` vs skopeo once per image.
* (c) peak RSS of promoter copying one image with a single 1 GiB layer (``ru_maxrss`` of the child
  from ``os.wait4``), with skopeo alongside for context.

Every promoter copy is checked: the ``-o json`` digest and a HEAD of the destination manifest must
equal the source digest. Run ``.venv/bin/python bench/run.py --help`` for options.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools is a top-level package of the repository

from devtools import images  # noqa: E402 - needs the sys.path entry above
from devtools.registry import RegistryProcess  # noqa: E402

MIB = 1024 * 1024
KIB = 1024
WORK_ROOT = ROOT / "bench" / ".work"
PROMOTER = ROOT / ".venv" / "bin" / "promoter"
MANIFEST_ACCEPT = ", ".join(
    [images.OCI_INDEX, images.OCI_MANIFEST, images.DOCKER_MANIFEST_LIST, images.DOCKER_MANIFEST]
)
# Where containers/image (skopeo 1.9) keeps its blob-info cache: the system path when running as
# root, else under $XDG_DATA_HOME (defaulting to ~/.local/share). The cache remembers which
# repositories of a registry hold a blob, so with it skopeo could mount instead of copying.
SYSTEM_BLOB_INFO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
USER_BLOB_INFO_CACHE = Path("containers/cache/blob-info-cache-v1.boltdb")

# Timeouts: every subprocess and every loop in this script is bounded.
COPY_TIMEOUT_S = 900.0
CURL_TIMEOUT_S = 600.0
HTTP_TIMEOUT_S = 60.0

TARGETS = {
    "a_vs_skopeo": 0.75,
    "a_vs_ceiling": 1.15,
    "b_vs_skopeo": 0.25,
    "c_rss_mib": 150.0,
}
JOBS_SWEEP = (1, 2, 4, 8, 16)


# sizes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Everything that --quick shrinks."""

    platform_layers: tuple[int, ...]  # per platform, each platform its own bytes
    shared_layers: tuple[int, ...]  # in every platform of (a)
    batch_images: int
    batch_base: tuple[int, ...]  # shared by every image of (b)
    batch_unique: tuple[int, ...]  # per image of (b)
    big_layer: int  # (c)


FULL = Sizes(
    platform_layers=(64 * MIB, 36 * MIB, 20 * MIB, 8 * MIB),
    shared_layers=(2 * MIB,),
    batch_images=50,
    batch_base=(12 * MIB, 8 * MIB, 4 * MIB),
    batch_unique=(256 * KIB, 32 * KIB),
    big_layer=1024 * MIB,
)
QUICK = Sizes(
    platform_layers=(8 * MIB, 4 * MIB + 512 * KIB, 2 * MIB + 512 * KIB, 1 * MIB),
    shared_layers=(256 * KIB,),
    batch_images=10,
    batch_base=(3 * MIB, 2 * MIB, 1 * MIB),
    batch_unique=(64 * KIB, 16 * KIB),
    big_layer=64 * MIB,
)
PLATFORMS = (("amd64", None), ("arm64", "v8"))


# running and measuring subprocesses ------------------------------------------------------------


@dataclass
class Measured:
    """One subprocess run: wall time from spawn to reaping, and the child's peak RSS."""

    argv: list[str]
    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise BenchError(
                f"{what}: exit {self.returncode}\n$ {' '.join(self.argv)}\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
            )
        return self


class BenchError(RuntimeError):
    """A benchmark step failed (a copy failed or produced a wrong digest)."""


class Spawner:
    """Runs measured commands through bench/spawn.py, a process started while this one is small.

    A child inherits its parent's memory high-water mark across exec (see bench/spawn.py), so
    children spawned from this process, which holds the seeded layers, would all report its peak.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).with_name("spawn.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        self.pid = self._proc.pid

    def measure(self, argv: Sequence[str], *, env: dict[str, str], timeout: float) -> Measured:
        """Run ``argv`` to completion: wall time and the child's own ``ru_maxrss``."""
        request = json.dumps({"argv": list(argv), "env": env, "timeout": timeout})
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(request + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise BenchError("bench/spawn.py exited unexpectedly")
        reply = json.loads(line)
        return Measured(
            argv=list(argv),
            seconds=reply["seconds"],
            max_rss_kib=reply["max_rss_kib"],
            returncode=reply["returncode"],
            stdout=reply["stdout"],
            stderr=reply["stderr"],
            cpu_seconds=reply["cpu_seconds"],
        )

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) spent during one measured run."""

    tool: float  # the copying tool: promoter, skopeo, or the curl processes
    source: float  # source registry
    dest: float  # destination registry
    harness: float  # this script (its registry log pumps) and bench/spawn.py
    busy: float  # the whole machine, from /proc/stat (includes everything above)

    @property
    def other(self) -> float:
        """Kernel threads and anything else running on the machine: high means interference."""
        return self.busy - self.tool - self.source - self.dest - self.harness


def _pid_cpu(pid: int) -> float:
    """utime + stime of a live process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the machine has not been idle (or waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Snapshots of the registries' and the machine's CPU time around a measured run."""

    def __init__(self, source_pid: int, dest_pid: int, spawner_pid: int) -> None:
        self._pids = (source_pid, dest_pid, spawner_pid)

    def snapshot(self) -> tuple[float, ...]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (
            _pid_cpu(self._pids[0]),
            _pid_cpu(self._pids[1]),
            _machine_busy(),
            children.ru_utime + children.ru_stime,  # reaped children of this process: curl
            me.ru_utime + me.ru_stime + _pid_cpu(self._pids[2]),
        )

    def since(self, before: tuple[float, ...], tool: float | None = None) -> Cpu:
        """CPU used since ``before``; ``tool`` defaults to this process's reaped children."""
        after = self.snapshot()
        return Cpu(
            tool=after[3] - before[3] if tool is None else tool,
            source=after[0] - before[0],
            dest=after[1] - before[1],
            harness=after[4] - before[4],
            busy=after[2] - before[2],
        )


def settle() -> None:
    """Flush dirty pages left by the previous run so its writeback does not land in the next."""
    os.sync()
    time.sleep(0.3)


# registry helpers ------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def head_manifest_digest(base_url: str, repository: str, reference: str) -> str | None:
    """The destination's digest for ``repository:reference`` (None if absent)."""
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        f"{base_url}/v2/{repository}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    try:
        with _NO_PROXY.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def expect_digest(registry: RegistryProcess, repository: str, tag: str, digest: str) -> None:
    found = head_manifest_digest(registry.url, repository, tag)
    if found != digest:
        raise BenchError(f"{registry.host}/{repository}:{tag} is {found}, expected {digest}")


def check_promoter_json(result: Measured, expected: dict[str, str]) -> None:
    """Each ``-o json`` line must name a destination we asked for with the source's digest."""
    seen: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            if "error" in record:
                raise BenchError(f"promoter reported an error: {record}")
            seen[record["destination"]] = record["digest"]
    for destination, digest in expected.items():
        if seen.get(destination) != digest:
            raise BenchError(
                f"promoter -o json: {destination} -> {seen.get(destination)}, expected {digest}"
            )


# environment of the measured tools -------------------------------------------------------------


@dataclass
class Tools:
    """Environment and command lines of the two copiers, promoter and skopeo."""

    home: Path
    spawner: Spawner
    env: dict[str, str] = field(init=False)
    cache_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        # An empty home for both tools: no docker or containers auth files are read, and a
        # non-root skopeo keeps its blob-info cache in here, where we delete it.
        for sub in ("data", "config", "cache", "runtime", "docker"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / "data"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_CACHE_HOME=str(self.home / "cache"),
            XDG_RUNTIME_DIR=str(self.home / "runtime"),
            DOCKER_CONFIG=str(self.home / "docker"),
            # Keep compiled bytecode between runs, as an installed package has it, without
            # writing into src/: the first start compiles, later ones reuse.
            PYTHONPYCACHEPREFIX=str(self.home / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env

    def cache_files(self) -> list[Path]:
        return [SYSTEM_BLOB_INFO_CACHE, self.home / "data" / USER_BLOB_INFO_CACHE]

    def drop_skopeo_cache(self) -> None:
        for path in self.cache_files():
            path.unlink(missing_ok=True)

    def note_skopeo_cache(self) -> None:
        """Record where skopeo actually wrote its cache, as evidence that we delete the right file."""
        for path in self.cache_files():
            if path.exists():
                self.cache_seen.add(str(path))

    def promoter(self, *args: str) -> Measured:
        argv = [str(PROMOTER), "copy", "-o", "json", *args]
        return self.spawner.measure(argv, env=self.env, timeout=COPY_TIMEOUT_S)

    def skopeo(self, src: str, dst: str) -> Measured:
        argv = [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{src}",
            f"docker://{dst}",
        ]
        result = self.spawner.measure(argv, env=self.env, timeout=COPY_TIMEOUT_S)
        self.note_skopeo_cache()
        return result


# content ---------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the source registry holds for the scenarios."""

    multi_ref: str  # repository:tag on the source
    multi_digest: str
    multi_blobs: list[tuple[str, Path, int]]  # digest, local file, size: for the curl ceiling
    multi_bytes: int
    batch: list[tuple[str, str]]  # (repository:tag, digest)
    batch_bytes_unique: int  # distinct blob bytes over all images of (b)
    batch_bytes_total: int  # bytes if each image were copied on its own
    big_ref: str
    big_digest: str
    big_bytes: int


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def seed(source: RegistryProcess, sizes: Sizes, blob_dir: Path) -> Seeded:
    """Push the three scenarios' images to the source registry, with the independent pusher."""
    blob_dir.mkdir(parents=True, exist_ok=True)

    # (a): each platform has its own layers of different sizes plus the small shared ones.
    shared = [
        images.layer(size, f"a-shared-{i}", gzip=False)
        for i, size in enumerate(sizes.shared_layers)
    ]
    children = []
    for arch, variant in PLATFORMS:
        own = [
            images.layer(size, f"a-{arch}-{i}", gzip=False)
            for i, size in enumerate(sizes.platform_layers)
        ]
        children.append(
            images.oci_image([*shared, *own], arch=arch, variant=variant, seed=f"bench-a-{arch}")
        )
    multi = images.oci_index(children)
    images.push_image(source.url, "bench/multi", multi, "v1")
    blobs = []
    for blob in multi.all_blobs():
        path = blob_dir / blob.digest.removeprefix("sha256:")
        path.write_bytes(blob.data)
        blobs.append((blob.digest, path, blob.size))
    multi_bytes = sum(size for _, _, size in blobs)
    multi_digest = multi.digest
    del multi, children, shared, own

    # (b): every image = the same base layers + small layers of its own + its own config.
    base = [
        images.layer(size, f"b-base-{i}", gzip=False) for i, size in enumerate(sizes.batch_base)
    ]
    batch = []
    distinct: dict[str, int] = {}
    total = 0
    for n in range(sizes.batch_images):
        unique = [
            images.layer(size, f"b-{n}-{i}", gzip=False)
            for i, size in enumerate(sizes.batch_unique)
        ]
        image = images.oci_image([*base, *unique], seed=f"bench-b-{n}")
        repository = f"bench/svc-{n:02d}"
        images.push_image(source.url, repository, image, "1.0")
        batch.append((f"{repository}:1.0", image.digest))
        for blob in image.all_blobs():
            distinct[blob.digest] = blob.size
            total += blob.size
    del base

    # (c): one big layer.
    big = images.oci_image([images.layer(sizes.big_layer, "c-big", gzip=False)], seed="bench-c")
    images.push_image(source.url, "bench/big", big, "v1")
    big_bytes = sum(b.size for b in big.all_blobs())
    big_digest = big.digest
    del big

    return Seeded(
        multi_ref="bench/multi:v1",
        multi_digest=multi_digest,
        multi_blobs=blobs,
        multi_bytes=multi_bytes,
        batch=batch,
        batch_bytes_unique=sum(distinct.values()),
        batch_bytes_total=total,
        big_ref="bench/big:v1",
        big_digest=big_digest,
        big_bytes=big_bytes,
    )


# the curl ceiling ------------------------------------------------------------------------------


def _curl_one(base_url: str, repository: str, digest: str, path: Path) -> None:
    posted = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "Content-Length: 0",
            f"{base_url}/v2/{repository}/blobs/uploads/",
        ],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT_S,
        check=True,
    )
    location = None
    for line in posted.stdout.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = urljoin(base_url + "/", value.strip())
    if location is None:
        raise BenchError(f"curl POST gave no Location: {posted.stdout!r}")
    separator = "&" if "?" in location else "?"
    put = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "PUT",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            f"@{path}",
            f"{location}{separator}digest={digest}",
        ],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT_S,
        check=True,
    )
    if put.stdout.strip() != "201":
        raise BenchError(f"curl PUT of {digest}: HTTP {put.stdout.strip()} {put.stderr}")


def curl_ceiling(
    registry: RegistryProcess, repository: str, blobs: Sequence[tuple[str, Path, int]]
) -> float:
    """Upload every blob at once, one POST + PUT pair of curl processes per blob; wall seconds."""
    errors: list[BaseException] = []

    def worker(digest: str, path: Path) -> None:
        try:
            _curl_one(registry.url, repository, digest, path)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(d, p)) for d, p, _ in blobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CURL_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if errors or any(t.is_alive() for t in threads):
        raise BenchError(f"curl ceiling failed: {errors[:3]}")
    return seconds


# statistics and report -------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one tool in one scenario."""

    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[Cpu] = field(default_factory=list)

    def add(self, seconds: float, rss_kib: int, cpu: Cpu) -> None:
        self.seconds.append(seconds)
        self.rss_kib.append(rss_kib)
        self.cpu.append(cpu)

    def mean_cpu(self) -> Cpu:
        n = len(self.cpu)
        return Cpu(
            tool=sum(c.tool for c in self.cpu) / n,
            source=sum(c.source for c in self.cpu) / n,
            dest=sum(c.dest for c in self.cpu) / n,
            harness=sum(c.harness for c in self.cpu) / n,
            busy=sum(c.busy for c in self.cpu) / n,
        )

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def rss_mib(self) -> float:
        return max(self.rss_kib) / KIB if self.rss_kib else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": [round(s, 4) for s in self.seconds],
            "median": round(self.median, 4),
            "min": round(self.best, 4),
            "max_rss_mib": round(self.rss_mib, 1),
            "cpu": [{k: round(v, 3) for k, v in vars(c).items()} for c in self.cpu],
        }


def fmt_s(value: float) -> str:
    return f"{value:.2f} s"


def fmt_rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MIB / seconds:.0f} MiB/s" if seconds > 0 else "-"


def verdict(value: float, target: float) -> str:
    if value <= target:
        return f"met (<= {target:g})"
    return f"MISSED (target <= {target:g}, {value / target:.2f}x over)"


# scenarios -------------------------------------------------------------------------------------


@dataclass
class Bench:
    source: RegistryProcess
    dest: RegistryProcess
    tools: Tools
    seeded: Seeded
    rounds: int
    meter: CpuMeter
    results: dict[str, Series] = field(default_factory=dict)
    jobs: dict[int, tuple[Measured, Cpu]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def series(self, name: str) -> Series:
        return self.results.setdefault(name, Series())

    def src(self, ref: str) -> str:
        return f"{self.source.host}/{ref}"

    def dst(self, ref: str) -> str:
        return f"{self.dest.host}/{ref}"

    # (a) ---------------------------------------------------------------------------------------

    def a_promoter(self, repository: str, *jobs_args: str) -> tuple[Measured, Cpu]:
        destination = self.dst(f"{repository}:v1")
        settle()
        before = self.meter.snapshot()
        result = self.tools.promoter(*jobs_args, self.src(self.seeded.multi_ref), destination)
        cpu = self.meter.since(before, result.cpu_seconds)
        result.check("promoter copy (a)")
        check_promoter_json(result, {destination: self.seeded.multi_digest})
        expect_digest(self.dest, repository, "v1", self.seeded.multi_digest)
        return result, cpu

    def scenario_a(self) -> None:
        runners: list[tuple[str, Callable[[str], tuple[float, int, Cpu]]]] = [
            ("a/promoter", self._a_promoter),
            ("a/skopeo", self._a_skopeo),
            ("a/curl ceiling", self._a_ceiling),
        ]
        # One unrecorded round first: the first copies after seeding run slower for every tool.
        for name, runner in runners:
            seconds, _, _ = runner("warmup")
            log(f"(a) warm-up: {name} {fmt_s(seconds)} (not counted)")
        for r in range(self.rounds):
            # Rotate the order each round so no tool always runs first (or right after another).
            for name, runner in runners[r % 3 :] + runners[: r % 3]:
                seconds, rss, cpu = runner(f"a{r}")
                self.series(name).add(seconds, rss, cpu)
                log(f"(a) round {r + 1}: {name} {fmt_s(seconds)}")

    def _a_promoter(self, prefix: str) -> tuple[float, int, Cpu]:
        result, cpu = self.a_promoter(f"{prefix}-promoter/multi")
        return result.seconds, result.max_rss_kib, cpu

    def _a_skopeo(self, prefix: str) -> tuple[float, int, Cpu]:
        repository = f"{prefix}-skopeo/multi"
        self.tools.drop_skopeo_cache()
        settle()
        before = self.meter.snapshot()
        result = self.tools.skopeo(self.src(self.seeded.multi_ref), self.dst(f"{repository}:v1"))
        cpu = self.meter.since(before, result.cpu_seconds)
        result.check("skopeo copy (a)")
        expect_digest(self.dest, repository, "v1", self.seeded.multi_digest)
        return result.seconds, result.max_rss_kib, cpu

    def _a_ceiling(self, prefix: str) -> tuple[float, int, Cpu]:
        settle()
        before = self.meter.snapshot()
        seconds = curl_ceiling(self.dest, f"{prefix}-curl/multi", self.seeded.multi_blobs)
        return seconds, 0, self.meter.since(before)

    def jobs_sweep(self) -> None:
        for jobs in JOBS_SWEEP:
            result, cpu = self.a_promoter(f"jobs{jobs}/multi", "--jobs", str(jobs))
            self.jobs[jobs] = (result, cpu)
            log(f"(a) --jobs {jobs}: {fmt_s(result.seconds)}")

    # (b) ---------------------------------------------------------------------------------------

    def _b_pairs(self, prefix: str) -> list[tuple[str, str, str, str]]:
        """(source ref, destination ref, destination repository, digest) per image."""
        pairs = []
        for ref, digest in self.seeded.batch:
            repository = ref.split(":", 1)[0].replace("bench/", f"{prefix}/", 1)
            pairs.append((self.src(ref), self.dst(f"{repository}:1.0"), repository, digest))
        return pairs

    def scenario_b(self, work: Path) -> None:
        for r in range(self.rounds):
            order = [self._b_promoter, self._b_skopeo]
            for runner in order if r % 2 == 0 else order[::-1]:
                runner(r, work)

    def _b_promoter(self, r: int, work: Path) -> None:
        pairs = self._b_pairs(f"b{r}-promoter")
        batch_file = work / f"batch-{r}.txt"
        batch_file.write_text("".join(f"{s} {d}\n" for s, d, _, _ in pairs))
        settle()
        before = self.meter.snapshot()
        result = self.tools.promoter("--batch", str(batch_file))
        cpu = self.meter.since(before, result.cpu_seconds)
        result.check("promoter copy --batch (b)")
        check_promoter_json(result, {d: digest for _, d, _, digest in pairs})
        for _, _, repository, digest in pairs:
            expect_digest(self.dest, repository, "1.0", digest)
        self.series("b/promoter --batch").add(result.seconds, result.max_rss_kib, cpu)
        log(f"(b) round {r + 1}: promoter --batch {fmt_s(result.seconds)}")

    def _b_skopeo(self, r: int, _work: Path) -> None:
        pairs = self._b_pairs(f"b{r}-skopeo")
        self.tools.drop_skopeo_cache()  # once, like a fresh CI runner; the loop may then reuse it
        settle()
        before = self.meter.snapshot()
        started = time.perf_counter()
        peak = 0
        tool_cpu = 0.0
        for src, dst, _, _ in pairs:
            result = self.tools.skopeo(src, dst).check("skopeo copy (b)")
            peak = max(peak, result.max_rss_kib)
            tool_cpu += result.cpu_seconds
        seconds = time.perf_counter() - started
        cpu = self.meter.since(before, tool_cpu)
        for _, _, repository, digest in pairs:
            expect_digest(self.dest, repository, "1.0", digest)
        self.series("b/skopeo loop").add(seconds, peak, cpu)
        log(f"(b) round {r + 1}: skopeo x{len(pairs)} {fmt_s(seconds)}")

    # (c) ---------------------------------------------------------------------------------------

    def _c_copy(self, name: str, repository: str, tool: Callable[[str, str], Measured]) -> None:
        destination = self.dst(f"{repository}:v1")
        settle()
        before = self.meter.snapshot()
        result = tool(self.src(self.seeded.big_ref), destination)
        cpu = self.meter.since(before, result.cpu_seconds)
        result.check(f"{name} (c)")
        expect_digest(self.dest, repository, "v1", self.seeded.big_digest)
        self.series(f"c/{name}").add(result.seconds, result.max_rss_kib, cpu)
        rss = result.max_rss_kib / KIB
        log(f"(c) {name}: {fmt_s(result.seconds)}, peak RSS {rss:.1f} MiB")

    def _c_promoter(self, src: str, dst: str) -> Measured:
        result = self.tools.promoter(src, dst)
        if result.returncode == 0:
            check_promoter_json(result, {dst: self.seeded.big_digest})
        return result

    def _c_skopeo(self, src: str, dst: str) -> Measured:
        self.tools.drop_skopeo_cache()
        return self.tools.skopeo(src, dst)

    def scenario_c(self) -> None:
        for r in range(self.rounds):
            self._c_copy("promoter", f"c{r}-promoter/big", self._c_promoter)
        self._c_copy("skopeo", "c-skopeo/big", self._c_skopeo)  # once, for context

    # report ------------------------------------------------------------------------------------

    def report(self, sizes: Sizes, quick: bool) -> str:
        s = self.seeded
        a_p, a_s, a_c = (self.results[k] for k in ("a/promoter", "a/skopeo", "a/curl ceiling"))
        b_p, b_s = self.results["b/promoter --batch"], self.results["b/skopeo loop"]
        c_p, c_s = self.results["c/promoter"], self.results["c/skopeo"]
        a_vs_s = a_p.median / a_s.median
        a_vs_c = a_p.median / a_c.median
        b_vs_s = b_p.median / b_s.median
        mode = "--quick" if quick else "full"
        today = dt.datetime.now(dt.UTC).date().isoformat()
        title = f"## Results {today} ({mode}, {self.rounds} round(s), {os.cpu_count()} CPUs)"
        what_a = (
            f"(a) one OCI index, {len(PLATFORMS)} platforms, {len(s.multi_blobs)} blobs,"
            f" {s.multi_bytes / MIB:.1f} MiB"
        )
        what_b = (
            f"(b) {sizes.batch_images} images sharing {len(sizes.batch_base)} base layers"
            f" ({sum(sizes.batch_base) / MIB:.1f} MiB); {s.batch_bytes_unique / MIB:.1f} MiB"
            f" distinct, {s.batch_bytes_total / MIB:.1f} MiB if copied image by image"
        )
        what_c = f"(c) one image with a single {sizes.big_layer / MIB:.0f} MiB layer"
        versions = (
            f"promoter at {self.extra['revision']}; {self.extra['skopeo']};"
            f" {docker_registry_version()}; load average at start"
            f" {self.extra['load_at_start']:.2f}"
        )
        lines = [title, "", versions, "", what_a, what_b, what_c, ""]
        lines += [
            "| scenario | tool | median | min | throughput (median) | peak RSS |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        rows = [
            ("(a)", "promoter", a_p, s.multi_bytes),
            ("(a)", "skopeo", a_s, s.multi_bytes),
            ("(a)", "curl ceiling", a_c, s.multi_bytes),
            ("(b)", "promoter --batch", b_p, s.batch_bytes_unique),
            ("(b)", "skopeo per image", b_s, s.batch_bytes_unique),
            ("(c)", "promoter", c_p, s.big_bytes),
            ("(c)", "skopeo (context)", c_s, s.big_bytes),
        ]
        for scenario, tool, series, nbytes in rows:
            rss = f"{series.rss_mib:.1f} MiB" if series.rss_mib else "-"
            lines.append(
                f"| {scenario} | {tool} | {fmt_s(series.median)} | {fmt_s(series.best)} |"
                f" {fmt_rate(nbytes, series.median)} | {rss} |"
            )
        ratios = [
            ("(a) promoter / skopeo", a_vs_s, a_p.best / a_s.best, "a_vs_skopeo"),
            ("(a) promoter / curl ceiling", a_vs_c, a_p.best / a_c.best, "a_vs_ceiling"),
            ("(b) promoter --batch / skopeo loop", b_vs_s, b_p.best / b_s.best, "b_vs_skopeo"),
        ]
        lines += [
            "",
            "| target | measured: median (min) | verdict |",
            "| --- | ---: | --- |",
        ]
        for label, median, best, key in ratios:
            target = TARGETS[key]
            lines.append(
                f"| {label} <= {target:g} | {median:.2f} ({best:.2f}) | {verdict(median, target)} |"
            )
        rss_target = TARGETS["c_rss_mib"]
        lines.append(
            f"| (c) promoter peak RSS <= {rss_target:g} MiB | {c_p.rss_mib:.1f} MiB |"
            f" {verdict(c_p.rss_mib, rss_target)} |"
        )
        lines += [
            "",
            f"promoter --jobs sweep on (a), one run each ({s.multi_bytes / MIB:.1f} MiB):",
            "",
            "| --jobs | wall time | throughput | peak RSS | promoter CPU |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for jobs, (result, cpu) in sorted(self.jobs.items()):
            lines.append(
                f"| {jobs} | {fmt_s(result.seconds)} | {fmt_rate(s.multi_bytes, result.seconds)} |"
                f" {result.max_rss_kib / KIB:.1f} MiB | {cpu.tool:.2f} s |"
            )
        ncpu = os.cpu_count() or 1
        cpu_note = (
            "CPU seconds per run (mean over rounds; user + system). 'machine' is all non-idle CPU"
            " time from /proc/stat, 'other' is machine minus the named processes (kernel threads,"
            f" anything else running), 'saturation' is machine / (wall x {ncpu} CPUs):"
        )
        lines += [
            "",
            cpu_note,
            "",
            "| run | wall | tool | source reg. | dest reg. | harness | other | machine | saturation |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, series in self.results.items():
            cpu = series.mean_cpu()
            wall = statistics.fmean(series.seconds)
            lines.append(
                f"| {name} | {fmt_s(wall)} | {cpu.tool:.2f} | {cpu.source:.2f} | {cpu.dest:.2f} |"
                f" {cpu.harness:.2f} | {cpu.other:.2f} | {cpu.busy:.2f} |"
                f" {cpu.busy / (wall * ncpu):.0%} |"
            )
        cache_at = ", ".join(sorted(self.tools.cache_seen)) or "nowhere seen"
        self_line = (
            f"this script: peak RSS {self.extra['self_rss_mib']:.0f} MiB, work directory"
            f" {self.extra['work_gib']:.2f} GiB at the end"
        )
        lines += [
            "",
            f"promoter start-up (`promoter --version`, median of 5): {fmt_s(self.extra['startup'])}",
            f"peak RSS floor of the measuring process (`true`): {self.extra['rss_floor_mib']:.1f} MiB",
            self_line,
            "skopeo blob-info cache deleted before each skopeo run (once before the loop in (b));",
            f"skopeo wrote it at: {cache_at}",
            "All promoter and skopeo copies verified: destination digest == source digest.",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "results": {k: v.to_json() for k, v in self.results.items()},
            "jobs": {
                str(j): {
                    "seconds": round(m.seconds, 4),
                    "max_rss_mib": round(m.max_rss_kib / KIB, 1),
                    "cpu": {k: round(v, 3) for k, v in vars(c).items()},
                }
                for j, (m, c) in self.jobs.items()
            },
            "extra": self.extra,
            "skopeo_cache_files": sorted(self.tools.cache_seen),
        }


def startup_time(tools: Tools) -> float:
    """Median wall time of ``promoter --version``: interpreter start and imports."""
    argv = [str(PROMOTER), "--version"]
    runs = [
        tools.spawner.measure(argv, env=tools.env, timeout=60).check("promoter --version").seconds
        for _ in range(5)
    ]
    return statistics.median(runs)


def skopeo_version(tools: Tools) -> str:
    result = tools.spawner.measure(["skopeo", "--version"], env=tools.env, timeout=60)
    return result.check("skopeo --version").stdout.strip()


def rss_floor(tools: Tools) -> float:
    """Peak RSS (MiB) that spawn.py reports for ``true``: the least any measured child can show."""
    result = tools.spawner.measure(["true"], env=tools.env, timeout=60).check("true")
    return result.max_rss_kib / KIB


# main ------------------------------------------------------------------------------------------


@contextmanager
def registries(work: Path) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    source = RegistryProcess(work / "source", name="source")
    dest = RegistryProcess(work / "dest", name="dest")
    try:
        source.start()
        dest.start()
        yield source, dest
    finally:
        dest.stop()
        source.stop()


def _output(argv: Sequence[str]) -> str:
    """stdout of a quick informational command, or '' if it cannot run."""
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def revision() -> str:
    """The commit promoter was measured at, with '+dirty' if src/ has uncommitted changes."""
    head = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return head + ("+dirty" if dirty else "")


def docker_registry_version() -> str:
    return _output(["docker-registry", "--version"]) or "docker-registry (version unknown)"


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (the registries' storage and the blob files)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def registry_pid(registry: RegistryProcess) -> int:
    """The registry's process id (the harness keeps its Popen private)."""
    proc = registry._proc  # read only, for CPU accounting
    if proc is None:
        raise BenchError(f"{registry.name} is not running")
    return proc.pid


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the registries


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write raw figures here")
    parser.add_argument(
        "--keep-work", action="store_true", help="leave bench/.work/<run> in place (debugging)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    return args


def preflight() -> None:
    missing = [tool for tool in ("skopeo", "curl", "docker-registry") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (run `make deps`)")
    if not PROMOTER.exists():
        raise SystemExit(f"{PROMOTER} not found (run `make deps`)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    signal.signal(signal.SIGTERM, _terminate)
    sizes = QUICK if args.quick else FULL
    spawner = Spawner()  # first, while this process is still small
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: 1-minute load average is {load:.2f}; other work will skew the figures")
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_ROOT))
    log(f"work dir {work}")
    try:
        with registries(work) as (source, dest):
            log(f"source {source.url}, destination {dest.url}; seeding")
            started = time.perf_counter()
            seeded = seed(source, sizes, work / "blobs")
            log(f"seeded in {fmt_s(time.perf_counter() - started)}")
            tools = Tools(work / "home", spawner)
            meter = CpuMeter(registry_pid(source), registry_pid(dest), spawner.pid)
            bench = Bench(source, dest, tools, seeded, args.rounds, meter)
            bench.extra["startup"] = startup_time(tools)
            bench.extra["rss_floor_mib"] = rss_floor(tools)
            bench.extra["revision"] = revision()
            bench.extra["load_at_start"] = load
            bench.extra["skopeo"] = skopeo_version(tools)
            bench.scenario_a()
            bench.jobs_sweep()
            bench.scenario_b(work)
            bench.scenario_c()
            bench.extra["work_gib"] = tree_size(work) / (1024 * MIB)
            bench.extra["self_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB
            report = bench.report(sizes, args.quick)
            print()
            print(report)
            if args.json is not None:
                args.json.write_text(json.dumps(bench.to_json(), indent=2) + "\n")
        tools.drop_skopeo_cache()
    finally:
        spawner.close()
        if args.keep_work:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            with_contents = any(WORK_ROOT.iterdir()) if WORK_ROOT.exists() else True
            if not with_contents:
                WORK_ROOT.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
