"""Signatures travel: what carrying one signature per image adds to a 50-image ``promoter copy --batch``.

Issue 11's "Done when": a 50-image batch with one signature each costs at most 1.3x the same batch
without signatures. Two throwaway Distribution registries run on 127.0.0.1. The source holds 50
small services (3 layers: a shared base and two of their own), each twice: in ``signed/svc-NN``,
signed once with ``devtools.signing.sign_image`` (the ``sha256-<hex>.sig`` tag c/image writes), and
in ``plain/svc-NN``, the same bytes unsigned. Measured side by side, the order rotated each round,
every run into fresh destination repositories:

* **A**: ``promoter copy --batch`` of the signed images (default: the signatures travel);
* **B**: the same with ``--no-referrers`` (the same image bytes, no signature work at all);
* **C**: ``promoter copy --batch`` of the unsigned images (default: only the look for attachments);
* **S1 / S0**: ``skopeo copy`` once per signed image, with and without ``use-sigstore-attachments``
  in a registries.d (with it, skopeo carries the ``.sig`` too): the reference ratio.

The headline is A/B (B is the engine path without attachments, so A/B charges the signatures with
all they cost, the look included); C/B is what an unsigned fleet pays for the look. After the timed
rounds one untimed round of A, B and C runs through ``devtools.fault_proxy.FaultProxy`` in front of
both registries and counts every request, so the report says where the extra time goes; then A, B
and C run three more times with both registries behind ``devtools.latency_proxy.LatencyProxy`` at a
20 ms round trip, for the batch and for one image alone, where requests made one after another cost
round trips instead of registry CPU.

Every copy is checked: each destination tag holds the source digest, and the ``.sig`` tag is there
with the source's digest exactly when the run carries signatures (A, S1), absent otherwise.

    .venv/bin/python bench/signatures.py [--quick] [--rounds N] [--json FILE] [--keep-work]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools and bench are top-level packages of the repository

from bench.measure import (  # noqa: E402 - needs the sys.path entry above
    KIB,
    MIB,
    BenchError,
    CpuMeter,
    Measured,
    Spawner,
    registry_pid,
    settle,
)
from bench.report import Figures, cpu_table, fmt_s, verdict  # noqa: E402
from bench.run import begin, finish, log, registries  # noqa: E402
from bench.tools import (  # noqa: E402
    Tools,
    docker_registry_version,
    revision,
    skopeo_version,
)
from bench.verify import (  # noqa: E402
    check_promoter_json,
    expect_digest,
    get_manifest,
    head_manifest_digest,
)
from devtools import images, signing  # noqa: E402
from devtools.fault_proxy import FaultProxy, Hit  # noqa: E402
from devtools.latency_proxy import LatencyProxy  # noqa: E402
from devtools.referrers_api import RequestKind, route  # noqa: E402
from devtools.registry import RegistryProcess  # noqa: E402

TARGET = 1.3  # issue 11: A / B
TAG = "1.0"


@dataclass(frozen=True)
class Shape:
    """The fleet: how many services, and their layers (what --quick shrinks)."""

    services: int
    base: tuple[int, ...]  # shared by every service
    own: tuple[int, ...]  # per service


FULL = Shape(services=50, base=(3 * MIB,), own=(1 * MIB, 32 * KIB))
QUICK = Shape(services=10, base=(512 * KIB,), own=(128 * KIB, 16 * KIB))


@dataclass(frozen=True)
class Service:
    """One seeded service: its name, image digest and the signature attached in ``signed/``."""

    name: str  # svc-07
    digest: str
    sig_tag: str  # sha256-<hex>.sig
    sig_digest: str


@dataclass(frozen=True)
class Fleet:
    """What the source registry holds: every service in ``signed/`` and in ``plain/``."""

    services: tuple[Service, ...]
    bytes_distinct: int  # distinct image blob bytes over the fleet
    sig_bytes: int  # one signature: its manifest, config and payload


@dataclass(frozen=True)
class Run:
    """One measured way of promoting the fleet."""

    key: str
    label: str
    signed: bool  # reads signed/ (else plain/)
    carries: bool  # the .sig tag must arrive


RUNS = (
    Run("A", "promoter --batch, signed (signatures travel)", signed=True, carries=True),
    Run("B", "promoter --batch --no-referrers, signed", signed=True, carries=False),
    Run("C", "promoter --batch, unsigned", signed=False, carries=False),
    Run("S1", "skopeo per image, use-sigstore-attachments", signed=True, carries=True),
    Run("S0", "skopeo per image", signed=True, carries=False),
)
PROMOTER_OPTIONS = {"A": (), "B": ("--no-referrers",), "C": ()}
FAR_ROUNDS = 3
PROMOTER_RUNS = tuple(run for run in RUNS if run.key in PROMOTER_OPTIONS)
RTT_MS = 20.0  # the far-link rounds: a registry in the same cloud region, roughly
RATIOS = (  # numerator, denominator, what it shows
    ("A", "B", "signatures carried vs not"),
    ("A", "C", "signed vs unsigned images"),
    ("C", "B", "the look for attachments alone"),
    ("S1", "S0", "skopeo with vs without attachments"),
    ("A", "S1", "promoter vs skopeo, both carrying"),
)


def seed(source: RegistryProcess, shape: Shape, key: signing.KeyPair) -> Fleet:
    """Push every service to ``signed/`` and ``plain/`` (the same bytes); sign the one in
    ``signed/`` once (``sha256-<hex>.sig``, as skopeo 1.9 writes it).

    Raises:
        PushError: The registry refused a request.
    """
    base = [images.layer(size, f"sig-base-{i}", gzip=False) for i, size in enumerate(shape.base)]
    services = []
    distinct: dict[str, int] = {}
    sig_bytes = 0
    for n in range(shape.services):
        own = [images.layer(size, f"sig-{n}-{i}", gzip=False) for i, size in enumerate(shape.own)]
        image = images.oci_image([*base, *own], seed=f"bench-sig-{n}")
        name = f"svc-{n:02d}"
        for where in ("signed", "plain"):
            images.push_image(source.url, f"{where}/{name}", image, TAG)
        identity = f"{source.host}/signed/{name}:{TAG}"
        sig = signing.sign_image(source.url, f"signed/{name}", image.digest, identity, key)
        services.append(Service(name, image.digest, signing.cosign_tag(image.digest, "sig"), sig))
        distinct.update((blob.digest, blob.size) for blob in image.all_blobs())
        if n == 0:
            sig_bytes = _sig_size(source, f"signed/{name}", sig)
    return Fleet(tuple(services), sum(distinct.values()), sig_bytes)


def _sig_size(source: RegistryProcess, repository: str, sig_digest: str) -> int:
    """Bytes of one ``.sig`` attachment: its manifest and the blobs it names."""
    data = get_manifest(source.url, repository, sig_digest)
    manifest = json.loads(data)
    return len(data) + sum(int(b["size"]) for b in [manifest["config"], *manifest["layers"]])


# the runs -------------------------------------------------------------------------------------


@dataclass
class SigBench:
    """The five runs, each checked and recorded in ``figures``; the request counts."""

    source: RegistryProcess
    dest: RegistryProcess
    tools: Tools
    fleet: Fleet
    meter: CpuMeter
    work: Path
    figures: Figures = field(default_factory=Figures)
    counts: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    far: dict[str, list[float]] = field(default_factory=dict)  # over RTT_MS: seconds per run

    def registries_d(self) -> Path:
        """Write skopeo's registries.d turning on sigstore attachments for both registries."""
        return signing.write_registries_d(
            self.work / "registries.d", self.source.host, self.dest.host
        )

    def round(self, prefix: str, order: Sequence[Run], *, record: bool) -> None:
        """Every run once, in ``order``, into repositories under ``<prefix>-<key>/``."""
        for run in order:
            seconds, rss, cpu_before, tool_cpu = self._timed(run, f"{prefix}-{run.key.lower()}")
            cpu = self.meter.since(cpu_before, tool_cpu)
            if record:
                self.figures.series(run.key).add(seconds, rss, cpu)
            log(f"{prefix}: {run.key} {fmt_s(seconds)}{'' if record else ' (not counted)'}")

    def _timed(self, run: Run, prefix: str) -> tuple[float, int, tuple[float, ...], float]:
        if run.key not in PROMOTER_OPTIONS:
            return self._skopeo_loop(run, prefix)
        settle()
        before = self.meter.snapshot()
        result = self._promote(run, prefix, self.fleet.services, self.source.host, self.dest.host)
        return result.seconds, result.max_rss_kib, before, result.cpu_seconds

    def _skopeo_loop(self, run: Run, prefix: str) -> tuple[float, int, tuple[float, ...], float]:
        registries_d = self.registries_d() if run.carries else None
        self.tools.drop_skopeo_cache()  # once, like a fresh CI runner (bench/README.md, (b))
        settle()
        before = self.meter.snapshot()
        started = time.perf_counter()
        peak, tool_cpu = 0, 0.0
        for service in self.fleet.services:
            result = self.tools.skopeo(
                f"{self.source.host}/signed/{service.name}:{TAG}",
                f"{self.dest.host}/{prefix}/{service.name}:{TAG}",
                registries_d=registries_d,
            ).check(f"skopeo copy ({run.key})")
            peak = max(peak, result.max_rss_kib)
            tool_cpu += result.cpu_seconds
        seconds = time.perf_counter() - started
        self._check_destination(run, prefix, self.fleet.services)
        return seconds, peak, before, tool_cpu

    def _promote(
        self,
        run: Run,
        prefix: str,
        services: Sequence[Service],
        src_host: str,
        dst_host: str,
    ) -> Measured:
        """``promoter copy --batch`` of ``services`` from ``src_host`` to ``dst_host`` (the
        registries or proxies in front of them), into ``<prefix>/svc-NN``; checked.

        Raises:
            BenchError: promoter failed, or a destination is not what the run should leave.
        """
        where = "signed" if run.signed else "plain"
        batch = self.work / f"{prefix}.batch"
        batch.write_text(
            "".join(
                f"{src_host}/{where}/{s.name}:{TAG} {dst_host}/{prefix}/{s.name}:{TAG}\n"
                for s in services
            )
        )
        result = self.tools.promoter("--batch", str(batch), *PROMOTER_OPTIONS[run.key])
        result.check(f"promoter copy --batch ({run.key})")
        check_promoter_json(
            result, {f"{dst_host}/{prefix}/{s.name}:{TAG}": s.digest for s in services}
        )
        for line in filter(str.strip, result.stdout.splitlines()):
            attached = [a["digest"] for a in json.loads(line).get("attachments", [])]
            if len(attached) != (1 if run.carries else 0):
                raise BenchError(f"{run.key}: promoter listed attachments {attached} in {line}")
        self._check_destination(run, prefix, services)
        return result

    def _check_destination(self, run: Run, prefix: str, services: Sequence[Service]) -> None:
        """Each image's tag holds the source digest; its .sig tag the source's signature exactly
        when ``run`` carries signatures."""
        for service in services:
            repository = f"{prefix}/{service.name}"
            expect_digest(self.dest, repository, TAG, service.digest)
            sig = head_manifest_digest(self.dest.url, repository, service.sig_tag)
            if sig != (service.sig_digest if run.carries else None):
                raise BenchError(
                    f"{run.key}: {self.dest.host}/{repository}:{service.sig_tag} is {sig}, "
                    f"expected {service.sig_digest if run.carries else 'absent'}"
                )

    def count_requests(self) -> None:
        """One more promoter run of A, B and C, untimed, through a counting proxy in front of
        each registry."""
        with FaultProxy(self.source.url) as src, FaultProxy(self.dest.url) as dst:
            for run in PROMOTER_RUNS:
                src.hits.clear()
                dst.hits.clear()
                self._promote(
                    run, f"count-{run.key.lower()}", self.fleet.services, src.host, dst.host
                )
                tally: Counter[tuple[str, str]] = Counter()
                tally.update(("source", request_kind(hit)) for hit in src.hits)
                tally.update(("destination", request_kind(hit)) for hit in dst.hits)
                self.counts[run.key] = tally
                log(f"counted {run.key}: {len(src.hits)} + {len(dst.hits)} requests")

    def far_link(self, rounds: int) -> None:
        """A, B and C again with both registries behind a ``RTT_MS`` round trip
        (``devtools.latency_proxy``), where requests made one after another cost round trips
        rather than registry CPU: the whole batch, and one image alone, whose (A - B) / RTT is
        the number of round trips in sequence that carrying its signature adds."""
        one = self.fleet.services[:1]
        with (
            LatencyProxy(("127.0.0.1", self.source.port), rtt_ms=RTT_MS) as src,
            LatencyProxy(("127.0.0.1", self.dest.port), rtt_ms=RTT_MS) as dst,
        ):
            for r in range(rounds):
                order = PROMOTER_RUNS if r % 2 == 0 else PROMOTER_RUNS[::-1]
                for run in order:
                    for label, services in ((run.key, self.fleet.services), (f"{run.key}1", one)):
                        prefix = f"far{r}-{label.lower()}"
                        settle()
                        seconds = self._promote(run, prefix, services, src.host, dst.host).seconds
                        self.far.setdefault(label, []).append(seconds)
                    log(f"far {r + 1}: {run.key} {fmt_s(self.far[run.key][-1])}")


def request_kind(hit: Hit) -> str:
    """What a request was, for the count: method, endpoint, which manifest, status."""
    where = route(hit.path.split("?", 1)[0])
    reference = where.reference or ""
    if where.kind is RequestKind.MANIFEST:
        if reference.startswith("sha256:"):
            what = "manifest by digest"
        elif reference.endswith((".sig", ".att", ".sbom")):
            what = "manifest, signature tag"
        elif reference.startswith("sha256-"):
            what = "manifest, referrers tag"
        else:
            what = "manifest, image tag"
    elif where.kind is RequestKind.UPLOAD:
        if hit.method == "POST":
            what = "blob upload (mount)" if "mount=" in hit.path else "blob upload start"
        else:
            what = "blob upload data" if hit.method == "PATCH" else "blob upload commit"
    elif where.kind is RequestKind.OTHER:
        what = "ping /v2/" if hit.path == "/v2/" else hit.path
    else:
        what = {
            RequestKind.BLOB: "blob",
            RequestKind.TAGS: "tag list",
            RequestKind.REFERRERS: "referrers API",
        }[where.kind]
    return f"{hit.method} {what} {hit.status}"


# report ---------------------------------------------------------------------------------------


def render(bench: SigBench, shape: Shape, *, quick: bool, rounds: int) -> str:
    """The Markdown report: times, ratios with the verdict, request counts, CPU."""
    results = bench.figures.results
    n = len(bench.fleet.services)
    median = {key: series.median for key, series in results.items()}
    best = {key: series.best for key, series in results.items()}
    mode = "--quick" if quick else "full"
    title = f"## Signatures travel: cost ({mode}, {rounds} round(s), {os.cpu_count()} CPUs)"
    versions = (
        f"promoter at {revision()}; {skopeo_version(bench.tools)}; {docker_registry_version()};"
        f" load average {bench.figures.extra['load_at_start']:.2f} at the start,"
        f" {os.getloadavg()[0]:.2f} at the end (this run's own processes count in the second)"
    )
    what = (
        f"{n} services, each in its own repository: layers {_sizes(shape.base)} shared +"
        f" {_sizes(shape.own)} own, {bench.fleet.bytes_distinct / MIB:.1f} MiB distinct; one"
        f" signature each ({bench.fleet.sig_bytes} bytes: manifest, config, payload)"
    )
    lines = [
        title,
        "",
        versions,
        "",
        what,
        "",
        "| run | what | median | min | per image (median) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for run in RUNS:
        per_image = f"{median[run.key] / n * 1000:.1f} ms"
        lines.append(
            f"| {run.key} | {run.label} | {fmt_s(median[run.key])} | {fmt_s(best[run.key])} |"
            f" {per_image} |"
        )
    lines += ["", "| ratio | median (min) | verdict |", "| --- | ---: | --- |"]
    for top, bottom, label in RATIOS:
        ratio = median[top] / median[bottom]
        judged = verdict(ratio, TARGET) if (top, bottom) == ("A", "B") else ""
        lines.append(
            f"| {top} / {bottom}: {label} | {ratio:.2f} ({best[top] / best[bottom]:.2f}) |"
            f" {judged} |"
        )
    per_signature = (
        f"Per signature: A - B = {(median['A'] - median['B']) / n * 1000:.1f} ms,"
        f" S1 - S0 = {(median['S1'] - median['S0']) / n * 1000:.1f} ms (medians, {n} images)."
    )
    checked = (
        "Every copy verified: destination digest == source digest; the .sig tag present with the"
        " source's digest after A and S1, absent after B, C and S0."
    )
    lines += ["", per_signature, "", *count_table(bench.counts, n), ""]
    lines += [*far_table(bench.far, n), ""]
    lines += [*cpu_table(results), "", checked]
    return "\n".join(lines)


def count_table(counts: dict[str, Counter[tuple[str, str]]], images_count: int) -> list[str]:
    """Requests per image of A, B and C by registry and kind, and A's extra over B."""
    keys = sorted({k for tally in counts.values() for k in tally})
    lines = [
        f"Requests per image (one untimed run each through a counting proxy, / {images_count}):",
        "",
        "| registry | request | A | B | C | A - B |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for registry, kind in keys:
        a, b, c = (counts[r][(registry, kind)] / images_count for r in ("A", "B", "C"))
        lines.append(f"| {registry} | {kind} | {a:.2f} | {b:.2f} | {c:.2f} | {a - b:+.2f} |")
    for registry in ("source", "destination"):
        a, b, c = (
            sum(v for (where, _), v in counts[r].items() if where == registry) / images_count
            for r in ("A", "B", "C")
        )
        lines.append(f"| {registry} | **total** | {a:.2f} | {b:.2f} | {c:.2f} | {a - b:+.2f} |")
    return lines


def far_table(far: dict[str, list[float]], images_count: int) -> list[str]:
    """The far-link figures: medians per run, for the batch and for one image alone."""
    median = {label: statistics.median(seconds) for label, seconds in far.items()}
    rounds = min(len(seconds) for seconds in far.values())
    where = f"Over a {RTT_MS:g} ms round trip (both registries behind devtools/latency_proxy.py)"
    lines = [
        f"{where}, median of {rounds}:",
        "",
        f"| run | {images_count} images | one image |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {run.key} | {fmt_s(median[run.key])} | {fmt_s(median[f'{run.key}1'])} |"
        for run in PROMOTER_RUNS
    ]
    added = (median["A1"] - median["B1"]) / (RTT_MS / 1000)
    summary = (
        f"A / B: {median['A'] / median['B']:.2f} for the batch, {median['A1'] / median['B1']:.2f}"
        f" for one image; (A - B) / RTT for one image: {added:.1f} round trips in sequence."
    )
    lines += ["", summary]
    return lines


def _sizes(sizes: Sequence[int]) -> str:
    return " + ".join(f"{s / MIB:g} MiB" if s >= MIB else f"{s / KIB:g} KiB" for s in sizes)


# main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 smaller images, a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write raw figures here")
    parser.add_argument(
        "--keep-work", action="store_true", help="leave bench/.work/<run> in place (debugging)"
    )
    parser.add_argument(
        "--own-mib",
        type=float,
        default=None,
        metavar="MIB",
        help="size of each service's own large layer (default 1 MiB; a signature's cost is fixed, "
        "so larger images dilute it)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    return args


def rotated(r: int) -> list[Run]:
    """Round ``r``'s order: every run moves one place each round, so drift hits all alike."""
    shift = r % len(RUNS)
    return [*RUNS[shift:], *RUNS[:shift]]


def measure(
    source: RegistryProcess,
    dest: RegistryProcess,
    spawner: Spawner,
    work: Path,
    *,
    shape: Shape,
    rounds: int,
) -> SigBench:
    """Seed, one warm-up round, ``rounds`` timed rounds, then the counting round."""
    started = time.perf_counter()
    fleet = seed(source, shape, signing.sigstore_key_pair(b"bench"))
    log(
        f"seeded {len(fleet.services)} signed + unsigned services in {fmt_s(time.perf_counter() - started)}"
    )
    tools = Tools(work / "home", spawner)
    meter = CpuMeter(registry_pid(source), registry_pid(dest), spawner.pid)
    bench = SigBench(source, dest, tools, fleet, meter, work)
    # Unrecorded: the first copies after seeding run slower for every tool (bench/README.md).
    bench.round("warmup", RUNS, record=False)
    for r in range(rounds):
        bench.round(f"r{r + 1}", rotated(r), record=True)
    bench.count_requests()
    bench.far_link(FAR_ROUNDS)
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shape = QUICK if args.quick else FULL
    if args.own_mib is not None:
        shape = replace(shape, own=(int(args.own_mib * MIB), *shape.own[1:]))
    spawner, load, work = begin("sig")
    try:
        with registries(work) as (source, dest):
            log(f"source {source.url}, destination {dest.url}; seeding")
            bench = measure(source, dest, spawner, work, shape=shape, rounds=args.rounds)
            bench.figures.extra["load_at_start"] = load
            print()
            print(render(bench, shape, quick=args.quick, rounds=args.rounds))
            if args.json is not None:
                raw: dict[str, Any] = bench.figures.to_json(bench.tools.cache_seen)
                raw["requests"] = {
                    run: {f"{where} {kind}": v for (where, kind), v in sorted(tally.items())}
                    for run, tally in bench.counts.items()
                }
                raw["far_link"] = {"rtt_ms": RTT_MS, "seconds": bench.far}
                raw["medians"] = {
                    k: statistics.median(s.seconds) for k, s in bench.figures.results.items()
                }
                args.json.write_text(json.dumps(raw, indent=2) + "\n")
            bench.tools.drop_skopeo_cache()
    finally:
        finish(spawner, work, keep=args.keep_work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
