"""Reporting a run: the figures gathered (``Figures``), their medians, and the Markdown report.

The report prints the scenarios' medians and minima, the ratios against the targets in ``TARGETS``
with a verdict each, the ``--jobs`` sweep and where the CPU time went; ``Figures.to_json`` gives
the raw figures behind it for ``--json``.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.measure import KIB, MIB, Cpu, Measured
from bench.seed import PLATFORMS, Seeded, Sizes
from bench.tools import docker_registry_version

TARGETS = {
    "a_vs_skopeo": 0.75,
    "a_vs_ceiling": 1.15,
    "b_vs_skopeo": 0.25,
    "c_rss_mib": 150.0,
}


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


def cpu_table(results: dict[str, Series]) -> list[str]:
    """Where the CPU time of each run went (mean over its rounds), as a note and a Markdown table."""
    ncpu = os.cpu_count() or 1
    note = (
        "CPU seconds per run (mean over rounds; user + system). 'machine' is all non-idle CPU"
        " time from /proc/stat, 'other' is machine minus the named processes (kernel threads,"
        f" anything else running), 'saturation' is machine / (wall x {ncpu} CPUs):"
    )
    lines = [
        note,
        "",
        "| run | wall | tool | source reg. | dest reg. | harness | other | machine | saturation |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, series in results.items():
        cpu = series.mean_cpu()
        wall = statistics.fmean(series.seconds)
        lines.append(
            f"| {name} | {fmt_s(wall)} | {cpu.tool:.2f} | {cpu.source:.2f} | {cpu.dest:.2f} |"
            f" {cpu.harness:.2f} | {cpu.other:.2f} | {cpu.busy:.2f} |"
            f" {cpu.busy / (wall * ncpu):.0%} |"
        )
    return lines


@dataclass
class Figures:
    """What one run measured: the series per scenario and tool, the --jobs sweep, single figures."""

    results: dict[str, Series] = field(default_factory=dict)
    jobs: dict[int, tuple[Measured, Cpu]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def series(self, name: str) -> Series:
        return self.results.setdefault(name, Series())

    def to_json(self, cache_seen: set[str]) -> dict[str, Any]:
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
            "skopeo_cache_files": sorted(cache_seen),
        }


def render(
    figures: Figures,
    seeded: Seeded,
    sizes: Sizes,
    *,
    quick: bool,
    rounds: int,
    cache_seen: set[str],
) -> str:
    """The Markdown report of a run; ``cache_seen`` is where skopeo wrote its blob-info cache."""
    s = seeded
    a_p, a_s, a_c = (figures.results[k] for k in ("a/promoter", "a/skopeo", "a/curl ceiling"))
    b_p, b_s = figures.results["b/promoter --batch"], figures.results["b/skopeo loop"]
    c_p, c_s = figures.results["c/promoter"], figures.results["c/skopeo"]
    a_vs_s = a_p.median / a_s.median
    a_vs_c = a_p.median / a_c.median
    b_vs_s = b_p.median / b_s.median
    mode = "--quick" if quick else "full"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    title = f"## Results {today} ({mode}, {rounds} round(s), {os.cpu_count()} CPUs)"
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
        f"promoter at {figures.extra['revision']}; {figures.extra['skopeo']};"
        f" {docker_registry_version()}; load average at start"
        f" {figures.extra['load_at_start']:.2f}"
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
    for jobs, (result, cpu) in sorted(figures.jobs.items()):
        lines.append(
            f"| {jobs} | {fmt_s(result.seconds)} | {fmt_rate(s.multi_bytes, result.seconds)} |"
            f" {result.max_rss_kib / KIB:.1f} MiB | {cpu.tool:.2f} s |"
        )
    lines += ["", *cpu_table(figures.results)]
    cache_at = ", ".join(sorted(cache_seen)) or "nowhere seen"
    self_line = (
        f"this script: peak RSS {figures.extra['self_rss_mib']:.0f} MiB, work directory"
        f" {figures.extra['work_gib']:.2f} GiB at the end"
    )
    lines += [
        "",
        f"promoter start-up (`promoter --version`, median of 5): {fmt_s(figures.extra['startup'])}",
        f"peak RSS floor of the measuring process (`true`): {figures.extra['rss_floor_mib']:.1f} MiB",
        self_line,
        "skopeo blob-info cache deleted before each skopeo run (once before the loop in (b));",
        f"skopeo wrote it at: {cache_at}",
        "All promoter and skopeo copies verified: destination digest == source digest.",
    ]
    return "\n".join(lines)
