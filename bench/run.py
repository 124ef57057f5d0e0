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

The pieces live beside this entry point in bench/: ``measure`` (running a command through
bench/spawn.py, CPU accounting), ``tools`` (promoter's and skopeo's environment, command lines and
versions), ``seed`` (the images and the curl ceiling), ``verify`` (the digest checks) and
``report`` (the figures and the Markdown report). This file holds the scenarios and ``main``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools and bench are top-level packages of the repository

from bench.measure import (  # noqa: E402 - needs the sys.path entry above
    KIB,
    MIB,
    Cpu,
    CpuMeter,
    Measured,
    Spawner,
    registry_pid,
    settle,
    tree_size,
)
from bench.report import Figures, fmt_s, render  # noqa: E402
from bench.seed import FULL, QUICK, Seeded, curl_ceiling, seed  # noqa: E402
from bench.tools import (  # noqa: E402
    Tools,
    preflight,
    revision,
    rss_floor,
    skopeo_version,
    startup_time,
)
from bench.verify import check_promoter_json, expect_digest  # noqa: E402
from devtools.registry import RegistryProcess  # noqa: E402

WORK_ROOT = ROOT / "bench" / ".work"
JOBS_SWEEP = (1, 2, 4, 8, 16)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# scenarios -------------------------------------------------------------------------------------


@dataclass
class Bench:
    """The scenarios: every copy measured side by side, checked, and recorded in ``figures``."""

    source: RegistryProcess
    dest: RegistryProcess
    tools: Tools
    seeded: Seeded
    rounds: int
    meter: CpuMeter
    figures: Figures = field(default_factory=Figures)

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
                self.figures.series(name).add(seconds, rss, cpu)
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
            self.figures.jobs[jobs] = (result, cpu)
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
        self.figures.series("b/promoter --batch").add(result.seconds, result.max_rss_kib, cpu)
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
        self.figures.series("b/skopeo loop").add(seconds, peak, cpu)
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
        self.figures.series(f"c/{name}").add(result.seconds, result.max_rss_kib, cpu)
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


def exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the registries


def begin(prefix: str) -> tuple[Spawner, float, Path]:
    """What every bench run starts with: the checks, SIGTERM handling, the process spawner (made
    first, while this process is still small), the load average (with a warning when other work
    will skew the figures) and a fresh work folder ``bench/.work/<prefix>-*``."""
    preflight()
    signal.signal(signal.SIGTERM, exit_on_signal)
    spawner = Spawner()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: 1-minute load average is {load:.2f}; other work will skew the figures")
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK_ROOT))
    log(f"work dir {work}")
    return spawner, load, work


def finish(spawner: Spawner, work: Path, *, keep: bool) -> None:
    """What every bench run ends with: the spawner closed, the work folder removed (and
    bench/.work when nothing else is in it) unless ``keep``."""
    spawner.close()
    if keep:
        log(f"kept {work}")
        return
    shutil.rmtree(work, ignore_errors=True)
    if WORK_ROOT.exists() and not any(WORK_ROOT.iterdir()):
        WORK_ROOT.rmdir()


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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    spawner, load, work = begin("run")
    try:
        with registries(work) as (source, dest):
            log(f"source {source.url}, destination {dest.url}; seeding")
            started = time.perf_counter()
            seeded = seed(source, sizes, work / "blobs")
            log(f"seeded in {fmt_s(time.perf_counter() - started)}")
            tools = Tools(work / "home", spawner)
            meter = CpuMeter(registry_pid(source), registry_pid(dest), spawner.pid)
            bench = Bench(source, dest, tools, seeded, args.rounds, meter)
            bench.figures.extra["startup"] = startup_time(tools)
            bench.figures.extra["rss_floor_mib"] = rss_floor(tools)
            bench.figures.extra["revision"] = revision()
            bench.figures.extra["load_at_start"] = load
            bench.figures.extra["skopeo"] = skopeo_version(tools)
            bench.scenario_a()
            bench.jobs_sweep()
            bench.scenario_b(work)
            bench.scenario_c()
            bench.figures.extra["work_gib"] = tree_size(work) / (1024 * MIB)
            bench.figures.extra["self_rss_mib"] = (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB
            )
            report = render(
                bench.figures,
                seeded,
                sizes,
                quick=args.quick,
                rounds=args.rounds,
                cache_seen=tools.cache_seen,
            )
            print()
            print(report)
            if args.json is not None:
                args.json.write_text(
                    json.dumps(bench.figures.to_json(tools.cache_seen), indent=2) + "\n"
                )
        tools.drop_skopeo_cache()
    finally:
        finish(spawner, work, keep=args.keep_work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
