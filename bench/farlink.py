"""promoter over a far link (issue 14, item 1): both registries behind a latency proxy, side by side
with what a script would run, at 20 ms and at 80 ms round-trip time in one run.

Two throwaway Distribution registries run on 127.0.0.1 (source and destination); each is reached
only through its own ``devtools/latency_proxy.py`` process (every byte delayed by half the round
trip each way, a new connection waits one round trip first). Each proxy is a separate process, so
neither tool shares an interpreter lock with the proxies or with this harness. Scenarios, per
round-trip time:

* (a) the fleet: 20 images, one shared 2 MiB base layer and two small layers of their own each:
  one ``promoter copy --batch`` (default options) vs ``skopeo copy`` once per image;
* (b) the 256 MiB multi-arch image of bench/run.py's (a): ``promoter copy`` vs
  ``skopeo copy --all``;
* (c) ``promoter plan`` of an environment whose overlay names 200 images, all present in both
  registries, vs a script: ``kubectl kustomize`` (or ``kustomize build``) plus one
  ``skopeo inspect --raw`` per image it renders;
* (d) the hook's no-op run: ``promoter sync --from-registry SRC --image ...`` for the fleet's 20
  images, all present, against the issue's target of 1 s + 3 round trips;

and once, on loopback without the proxies: the same no-op run against ``promoter --version``
(the start-up target: within 1.5x), and (c)'s plan against kustomize rendering its overlay alone.

Requests are counted from the registries' own access logs (each log is fenced with marked
requests before and after a run, so every request of the run is in the window and nothing else);
connections are the distinct client ports the registry saw, one per connection through the proxy. Every copy is checked: promoter's
``-o json`` digests and a HEAD of each destination manifest must equal the source's.

    .venv/bin/python bench/farlink.py              # 20 and 80 ms (about 5 minutes)
    .venv/bin/python bench/farlink.py --quick      # smaller (b) and (c), 20 ms only (about 40 s)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools and bench are top-level packages of the repository

from bench.measure import KIB, MIB, BenchError, Measured  # noqa: E402 - needs the sys.path entry
from bench.plan import deployment, kustomize_command, promoter_yaml  # noqa: E402
from bench.run import begin, finish, log, registries  # noqa: E402
from bench.seed import FULL, QUICK, multi_arch_image  # noqa: E402
from bench.tools import (  # noqa: E402
    PROMOTER,
    Tools,
    docker_registry_version,
    revision,
    skopeo_version,
    startup_time,
)
from bench.verify import check_promoter_json, expect_digest  # noqa: E402
from devtools import images  # noqa: E402
from devtools.registry import RegistryProcess  # noqa: E402

RUN_TIMEOUT_S = 900.0  # every subprocess of the benchmark is bounded
INSPECT_TIMEOUT_S = 120.0
PROXY_START_TIMEOUT_S = 15.0
FENCE_TIMEOUT_S = 30.0
DEV = "dev.registry.example"
PROD = "prod.registry.example"

# The targets (ratios of wall times, one run).
TARGET_FLEET = 0.05  # (a) promoter / skopeo loop
TARGET_MULTI = 0.9  # (b) promoter / skopeo --all
TARGET_PLAN = 0.02  # (c) promoter plan / kustomize + skopeo inspect loop
TARGET_HOOK_BASE_S = 1.0  # (d) no-op hook run <= 1 s + 3 round trips
TARGET_HOOK_RTTS = 3
TARGET_STARTUP = 1.5  # no-op hook on loopback / promoter --version


@dataclass(frozen=True)
class FarSizes:
    """What --quick shrinks."""

    rtts_ms: tuple[float, ...]
    fleet_images: int
    fleet_base: int  # the one layer every fleet image shares
    fleet_own: tuple[int, ...]  # each fleet image's own layers
    platform_layers: tuple[int, ...]  # (b), per platform
    shared_layers: tuple[int, ...]  # (b), in both platforms
    plan_images: int


FAR_FULL = FarSizes(
    rtts_ms=(20.0, 80.0),
    fleet_images=20,
    fleet_base=2 * MIB,
    fleet_own=(64 * KIB, 16 * KIB),
    platform_layers=FULL.platform_layers,
    shared_layers=FULL.shared_layers,
    plan_images=200,
)
FAR_QUICK = FarSizes(
    rtts_ms=(20.0,),
    fleet_images=20,
    fleet_base=2 * MIB,
    fleet_own=(64 * KIB, 16 * KIB),
    platform_layers=QUICK.platform_layers,
    shared_layers=QUICK.shared_layers,
    plan_images=50,
)


# request counting ------------------------------------------------------------------------------

_RESPONSE = re.compile(
    r'msg="response completed(?: with error)?".*?http\.request\.method=(\S+)'
    r'.*?http\.request\.remoteaddr="?([^"\s]+)"?'
    r'.*?http\.request\.uri="?([^"\s]+)"?'
    r".*?http\.response\.status=(\d+)"
)


# The access log's own line for every request (combined log format), to check the count against.
_ACCESS = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[\d.]+" (\d+) ')


def request_kind(method: str, uri: str) -> str:
    """``METHOD kind`` for a registry request: ping, manifest, blob, upload, tags, referrers."""
    path = uri.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        kind = "ping"
    elif "/blobs/uploads/" in path or path.endswith("/blobs/uploads"):
        kind = "upload"
    elif "/blobs/" in path:
        kind = "blob"
    elif "/manifests/" in path:
        kind = "manifest"
    elif path.endswith("/tags/list"):
        kind = "tags"
    elif "/referrers/" in path:
        kind = "referrers"
    else:
        kind = "other"
    return f"{method} {kind}"


@dataclass
class Traffic:
    """What one registry answered during a run: requests by kind, and client connections."""

    requests: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    errors: int = 0  # 4xx and 5xx answers (404s of HEAD lookups included; also in requests)
    unrouted: int = 0  # requests the router refused without the app: no client port logged
    clients: frozenset[str] = frozenset()  # the connections' client addresses

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total": self.total,
            "connections": self.connections,
            "errors": self.errors,
            "unrouted": self.unrouted,
        }


class AccessLog:
    """Counts the requests a registry answers, from its access log (one combined-format line per
    request), and the connections they came on, from the client ports of its ``response
    completed`` lines (``... with error`` for 4xx and 5xx). A request the router refuses before
    the app (Distribution 2.8 has no referrers API: ``GET /v2/<name>/referrers/<digest>`` is a bare
    404) has only the access-log line: it is counted, its connection is not (``unrouted``).

    ``mark`` and ``since_mark`` each send a fence (``GET /v2/?fence=<id>``, straight to the
    registry, not through the proxy) and wait until its line is in the log, so every request
    answered before is counted and none of the harness's own checks after it.
    """

    def __init__(self, registry: RegistryProcess) -> None:
        self.registry = registry
        self.offset = 0

    def _fence(self) -> int:
        """Send two fences, one after the other; the log's length once the second one's line is
        there. A request answered just before the first fence may be logged just after it (the
        registry writes its log lines after the answer); by the second one it is in the log."""
        self._one_fence()
        return self._one_fence()

    def _one_fence(self) -> int:
        fence = uuid.uuid4().hex
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.registry.url}/v2/?fence={fence}", timeout=30) as response:
            response.read()
        deadline = time.monotonic() + FENCE_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.registry.log_path.read_bytes()
            at = text.find(f"fence={fence}".encode())
            if at >= 0:
                end = text.find(b"\n", at)
                if end >= 0:
                    return end + 1
            time.sleep(0.01)
        raise BenchError(f"{self.registry.name}: fence {fence} never reached the log")

    def mark(self) -> None:
        self.offset = self._fence()

    def since_mark(self) -> Traffic:
        end = self._fence()
        text = self.registry.log_path.read_bytes()[self.offset : end].decode("utf-8", "replace")
        traffic = Traffic()
        clients: set[str] = set()
        answered = 0
        for line in text.splitlines():
            if (access := _ACCESS.match(line)) is not None:
                method, uri, status = access.groups()
                if "fence=" not in uri:
                    # 4xx and 5xx apart (a HEAD answered 404 is a lookup that found nothing).
                    failed = int(status) >= 400
                    key = request_kind(method, uri) + (f" {status}" if failed else "")
                    traffic.requests[key] += 1
                    traffic.errors += int(failed)
            elif (response := _RESPONSE.search(line)) is not None and "fence=" not in line:
                clients.add(response.group(2))
                answered += 1
        traffic.connections = len(clients)
        traffic.clients = frozenset(clients)
        traffic.unrouted = traffic.total - answered
        self.offset = end
        return traffic


# the latency proxies, each in its own process --------------------------------------------------


class HasHost(Protocol):
    """A registry as the tools reach it: directly or through its proxy."""

    @property
    def host(self) -> str: ...


class ProxyProcess:
    """``python -m devtools.latency_proxy`` in front of one registry, for one round-trip time."""

    def __init__(self, registry: RegistryProcess, rtt_ms: float, max_seconds: float) -> None:
        self.rtt_ms = rtt_ms
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.latency_proxy",
                "--rtt-ms",
                f"{rtt_ms:g}",
                "--upstream",
                registry.host,
                "--max-seconds",
                f"{max_seconds:g}",
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], PROXY_START_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r"latency proxy 127\.0\.0\.1:(\d+) ", line)
        if match is None:
            self.stop()
            raise BenchError(f"latency proxy did not start: {line!r}")
        self.port = int(match.group(1))

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def proxies(
    source: RegistryProcess, dest: RegistryProcess, rtt_ms: float
) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    src = ProxyProcess(source, rtt_ms, RUN_TIMEOUT_S * 4)
    try:
        dst = ProxyProcess(dest, rtt_ms, RUN_TIMEOUT_S * 4)
        try:
            yield src, dst
        finally:
            dst.stop()
    finally:
        src.stop()


# seeding ---------------------------------------------------------------------------------------


@dataclass
class FarSeeded:
    """What the registries hold: the fleet and the plan's images in both, (b) in the source."""

    fleet: list[tuple[str, str]]  # (repository, digest); tag 1.0, in both registries
    multi_digest: str  # multi/app:v1, in the source only
    multi_bytes: int
    plan: list[str]  # repositories; tag 1.0, the same small image, in both registries


def seed(source: RegistryProcess, dest: RegistryProcess, sizes: FarSizes) -> FarSeeded:
    """Push every scenario's images with the independent pusher of devtools.images, straight to
    the registries (not through the proxies)."""
    base = images.layer(sizes.fleet_base, "far-fleet-base", gzip=False)
    fleet = []
    for n in range(sizes.fleet_images):
        own = [
            images.layer(size, f"far-fleet-{n}-{i}", gzip=False)
            for i, size in enumerate(sizes.fleet_own)
        ]
        image = images.oci_image([base, *own], seed=f"far-fleet-{n}")
        repository = f"fleet/svc-{n:02d}"
        for registry in (source, dest):  # in dest too: (d)'s hook finds them all present
            images.push_image(registry.url, repository, image, "1.0")
        fleet.append((repository, image.digest))

    multi = multi_arch_image(sizes, layers="far-b", seed="far-b")
    images.push_image(source.url, "multi/app", multi, "v1")
    multi_bytes = sum(blob.size for blob in multi.all_blobs())
    multi_digest = multi.digest
    del multi

    small = images.oci_image([images.layer(1024, "far-plan")], seed="far-plan")
    plan = [f"plan/svc-{i:03d}" for i in range(sizes.plan_images)]

    def push(job: tuple[RegistryProcess, str]) -> str:
        registry, repository = job
        return images.push_image(registry.url, repository, small, "1.0")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(push, [(r, repo) for r in (source, dest) for repo in plan]))
    return FarSeeded(fleet=fleet, multi_digest=multi_digest, multi_bytes=multi_bytes, plan=plan)


def write_gitops(root: Path, repositories: Sequence[str]) -> Path:
    """A GitOps tree: a base with one Deployment per image (``image: svc-NNN``) and the dev and
    production overlays naming each in their registry with kustomize ``images:`` entries; the
    production overlay's folder is returned. promoter.yaml is written per round trip."""
    base = root / "base"
    base.mkdir(parents=True)
    names = []
    for repository in repositories:
        name = repository.rsplit("/", 1)[1]
        names.append(f"{name}.yaml")
        (base / f"{name}.yaml").write_text(deployment(name, name))
    (base / "kustomization.yaml").write_text("resources:\n" + "".join(f"  - {n}\n" for n in names))
    for env, registry in (("dev", DEV), ("production", PROD)):
        overlay = root / "overlays" / env
        overlay.mkdir(parents=True)
        entries = "".join(
            f"  - name: {r.rsplit('/', 1)[1]}\n    newName: {registry}/{r}\n    newTag: '1.0'\n"
            for r in repositories
        )
        (overlay / "kustomization.yaml").write_text(
            f"resources:\n  - ../../base\nimages:\n{entries}"
        )
    return root / "overlays" / "production"


def write_config(root: Path, src_host: str, dst_host: str) -> Path:
    """promoter.yaml: dev -> production, each registry reached at ``HOST:PORT`` over HTTP."""
    path = root / "promoter.yaml"
    path.write_text(promoter_yaml((DEV, PROD), (f"http://{src_host}", f"http://{dst_host}")))
    return path


# measuring -------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One measured run of one tool: wall time and what each registry answered."""

    seconds: float
    source: Traffic
    dest: Traffic
    cpu_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "source": self.source.to_json(),
            "dest": self.dest.to_json(),
        }


@dataclass
class FarBench:
    source: RegistryProcess
    dest: RegistryProcess
    tools: Tools
    seeded: FarSeeded
    work: Path
    rounds: int
    baseline_rounds: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    #: checks of the run being measured, made once its window is closed (their requests are the
    #: harness's, not the tool's)
    deferred: list[Callable[[], None]] = field(default_factory=list)
    source_log: AccessLog = field(init=False)
    dest_log: AccessLog = field(init=False)

    def __post_init__(self) -> None:
        self.source_log = AccessLog(self.source)
        self.dest_log = AccessLog(self.dest)

    def measured(self, key: str, run: Callable[[], tuple[float, float]]) -> Sample:
        """Run ``run`` (which returns wall and tool CPU seconds) between two fences; record it."""
        self.source_log.mark()
        self.dest_log.mark()
        seconds, cpu = run()
        sample = Sample(seconds, self.source_log.since_mark(), self.dest_log.since_mark(), cpu)
        checks, self.deferred = self.deferred, []
        for check in checks:
            check()
        self.samples.setdefault(key, []).append(sample)
        return sample

    def side_by_side(
        self,
        name: str,
        rtt: float,
        promoter: Callable[[str], tuple[float, float]],
        baseline: Callable[[str], tuple[float, float]],
    ) -> None:
        """``rounds`` promoter runs and ``baseline_rounds`` baseline runs, interleaved, the order
        alternating each round; every run gets its own ``prefix`` (fresh destination paths)."""
        for r in range(self.rounds):
            runners = [("promoter", promoter)]
            if r < self.baseline_rounds:
                runners.append(("baseline", baseline))
                if r % 2:
                    runners.reverse()
            for tool, runner in runners:
                prefix = f"{name}{rtt:g}-{r}-{tool[0]}"
                sample = self.measured(f"{name}/{rtt:g}/{tool}", lambda p=prefix, f=runner: f(p))
                log(f"({name}) {rtt:g} ms round {r + 1}: {tool} {sample.seconds:.2f} s")

    # (a) the fleet -----------------------------------------------------------------------------

    def fleet_pairs(
        self, src: HasHost, dst: HasHost, prefix: str
    ) -> list[tuple[str, str, str, str]]:
        """(source ref, destination ref, destination repository, digest) per fleet image."""
        pairs = []
        for repository, digest in self.seeded.fleet:
            target = repository.replace("fleet/", f"{prefix}/", 1)
            pairs.append(
                (f"{src.host}/{repository}:1.0", f"{dst.host}/{target}:1.0", target, digest)
            )
        return pairs

    def fleet_copy(
        self, src: HasHost, dst: HasHost, prefix: str, *options: str
    ) -> tuple[float, float]:
        """One ``promoter copy --batch`` of the fleet into fresh repositories under ``prefix``."""
        pairs = self.fleet_pairs(src, dst, prefix)
        batch = self.work / f"{prefix}.txt"
        batch.write_text("".join(f"{s} {d}\n" for s, d, _, _ in pairs))
        result = self.tools.promoter("--batch", str(batch), *options)
        result.check("promoter copy --batch (a)")
        check_promoter_json(result, {d: digest for _, d, _, digest in pairs})
        self.verify(pairs)
        return result.seconds, result.cpu_seconds

    def sweep(self, src: HasHost, dst: HasHost, rtt: float, values: Sequence[int]) -> None:
        """(a) and (d) with each ``--requests`` value, rounds interleaved: which default fits
        loopback and far links alike (issue 14, item 3)."""
        for r in range(self.rounds):
            for value in values:
                option = ("--requests", str(value))
                prefix = f"s{rtt:g}-{value}-{r}"
                key = f"sweep/{rtt:g}/{value}"
                fleet = self.measured(
                    f"{key}/a", lambda p=prefix, o=option: self.fleet_copy(src, dst, p, *o)
                )
                hook = self.measured(
                    f"{key}/d", lambda o=option: self.hook_once(src.host, dst.host, *o)
                )
                log(
                    f"sweep {rtt:g} ms --requests {value} round {r + 1}: (a) "
                    f"{fleet.seconds:.2f} s, (d) {hook.seconds:.2f} s"
                )

    def scenario_fleet(self, src: ProxyProcess, dst: ProxyProcess) -> None:
        def promoter(prefix: str) -> tuple[float, float]:
            return self.fleet_copy(src, dst, prefix)

        def skopeo(prefix: str) -> tuple[float, float]:
            pairs = self.fleet_pairs(src, dst, prefix)
            self.tools.drop_skopeo_cache()  # once, like a fresh CI runner
            started = time.perf_counter()
            cpu = 0.0
            for s, d, _, _ in pairs:
                cpu += self.tools.skopeo(s, d).check("skopeo copy (a)").cpu_seconds
            seconds = time.perf_counter() - started
            self.verify(pairs)
            return seconds, cpu

        self.side_by_side("a", src.rtt_ms, promoter, skopeo)

    def verify(self, pairs: Sequence[tuple[str, str, str, str]], tag: str = "1.0") -> None:
        """Check each destination by HEAD once the run's request count is taken."""
        for _, _, repository, digest in pairs:
            self.deferred.append(lambda r=repository, d=digest: expect_digest(self.dest, r, tag, d))

    # (b) the multi-arch image ------------------------------------------------------------------

    def scenario_multi(self, src: ProxyProcess, dst: ProxyProcess) -> None:
        digest = self.seeded.multi_digest

        def promoter(prefix: str) -> tuple[float, float]:
            destination = f"{dst.host}/{prefix}/app:v1"
            result = self.tools.promoter(f"{src.host}/multi/app:v1", destination)
            result.check("promoter copy (b)")
            check_promoter_json(result, {destination: digest})
            self.verify([("", "", f"{prefix}/app", digest)], tag="v1")
            return result.seconds, result.cpu_seconds

        def skopeo(prefix: str) -> tuple[float, float]:
            self.tools.drop_skopeo_cache()
            result = self.tools.skopeo(f"{src.host}/multi/app:v1", f"{dst.host}/{prefix}/app:v1")
            result.check("skopeo copy --all (b)")
            self.verify([("", "", f"{prefix}/app", digest)], tag="v1")
            return result.seconds, result.cpu_seconds

        self.side_by_side("b", src.rtt_ms, promoter, skopeo)

    # (c) plan of 200 present images ------------------------------------------------------------

    def plan_once(self, config: Path) -> tuple[float, float]:
        """``promoter plan production``; every image must be present."""
        expected = len(self.seeded.plan)
        argv = [str(PROMOTER), "plan", "production", "-o", "json", "--config", str(config)]
        result = self.run(argv, "promoter plan (c)", cwd=config.parent)
        statuses = Counter(i["status"] for i in json.loads(result.stdout)["images"])
        if statuses != Counter({"present": expected}):
            raise BenchError(f"promoter plan (c): expected {expected} present, got {statuses}")
        return result.seconds, result.cpu_seconds

    def scenario_plan(self, src: ProxyProcess, dst: ProxyProcess, gitops: Path) -> None:
        config = write_config(gitops, src.host, dst.host)
        overlay = gitops / "overlays" / "production"
        expected = len(self.seeded.plan)

        def promoter(_prefix: str) -> tuple[float, float]:
            return self.plan_once(config)

        def script(_prefix: str) -> tuple[float, float]:
            started = time.perf_counter()
            rendered = self.run(kustomize_command(overlay), "kustomize (c)", cwd=gitops)
            refs = re.findall(r"^\s*(?:- )?image: (\S+)$", rendered.stdout, re.MULTILINE)
            if len(refs) != expected:
                raise BenchError(f"kustomize (c): {len(refs)} images rendered, not {expected}")
            cpu = rendered.cpu_seconds
            for ref in refs:
                # The registry name is not resolvable here; the script asks its endpoint.
                inspected = self.run(
                    [
                        "skopeo",
                        "inspect",
                        "--raw",
                        "--tls-verify=false",
                        "--no-creds",
                        f"docker://{ref.replace(PROD, dst.host, 1)}",
                    ],
                    "skopeo inspect --raw (c)",
                    timeout=INSPECT_TIMEOUT_S,
                )
                cpu += inspected.cpu_seconds
            return time.perf_counter() - started, cpu

        self.side_by_side("c", src.rtt_ms, promoter, script)

    # (d) the hook's no-op run ------------------------------------------------------------------

    def hook_argv(self, src_host: str, dst_host: str) -> list[str]:
        argv = [str(PROMOTER), "sync", "--from-registry", src_host, "-o", "json"]
        for repository, _ in self.seeded.fleet:
            argv += ["--image", f"{dst_host}/{repository}:1.0"]
        return argv

    def hook_once(self, src_host: str, dst_host: str, *options: str) -> tuple[float, float]:
        """One no-op hook run, in an empty folder (no promoter.yaml is read); all must be present."""
        result = self.run(
            [*self.hook_argv(src_host, dst_host), *options], "promoter sync (d)", cwd=self.hook_dir
        )
        actions = Counter((i["status"], i["action"]) for i in json.loads(result.stdout)["images"])
        if actions != Counter({("present", "none"): len(self.seeded.fleet)}):
            raise BenchError(f"promoter sync (d): expected all present, got {actions}")
        return result.seconds, result.cpu_seconds

    def scenario_hook(self, src: ProxyProcess, dst: ProxyProcess) -> None:
        for r in range(self.rounds):
            sample = self.measured(
                f"d/{src.rtt_ms:g}/promoter", lambda: self.hook_once(src.host, dst.host)
            )
            log(f"(d) {src.rtt_ms:g} ms round {r + 1}: promoter sync {sample.seconds:.2f} s")

    def startup(self) -> None:
        """On loopback, no proxy: the no-op hook run next to ``promoter --version``."""
        self.hook_once(self.source.host, self.dest.host)  # warm-up (bytecode, page cache)
        for r in range(max(5, self.rounds)):
            sample = self.measured(
                "d/loopback/promoter", lambda: self.hook_once(self.source.host, self.dest.host)
            )
            log(f"(d) loopback round {r + 1}: promoter sync {sample.seconds:.2f} s")

    def plan_context(self, gitops: Path) -> None:
        """On loopback, no proxy: ``promoter plan`` of (c), and kustomize rendering its overlay
        alone, to tell the link's share of (c) from rendering and start-up."""
        config = write_config(gitops, self.source.host, self.dest.host)
        overlay = gitops / "overlays" / "production"
        self.plan_once(config)  # warm-up
        for r in range(self.rounds):
            sample = self.measured("c/loopback/promoter", lambda: self.plan_once(config))
            render = self.measured(
                "c/loopback/kustomize",
                lambda: self._seconds(
                    self.run(kustomize_command(overlay), "kustomize", cwd=gitops)
                ),
            )
            log(
                f"(c) loopback round {r + 1}: promoter plan {sample.seconds:.2f} s, "
                f"kustomize alone {render.seconds:.2f} s"
            )

    @staticmethod
    def _seconds(result: Measured) -> tuple[float, float]:
        return result.seconds, result.cpu_seconds

    @property
    def hook_dir(self) -> Path:
        folder = self.work / "hook"
        folder.mkdir(exist_ok=True)
        return folder

    def run(
        self, argv: Sequence[str], what: str, *, cwd: Path | None = None, timeout: float = 0
    ) -> Measured:
        return self.tools.spawner.measure(
            argv, env=self.tools.env, timeout=timeout or RUN_TIMEOUT_S, cwd=cwd
        ).check(what)


# the report ------------------------------------------------------------------------------------


def render_sweep(bench: FarBench, rtts: Sequence[float], values: Sequence[int]) -> str:
    """The sweep's medians: a row per round-trip time, (a) and (d) per ``--requests`` value."""
    head = " | ".join(f"(a) {v} | (d) {v}" for v in values)
    lines = [
        f"| RTT | {head} |",
        "| ---: |" + " ---: |" * (2 * len(values)),
    ]
    for rtt in rtts:
        cells = []
        for value in values:
            for scenario in ("a", "d"):
                runs = bench.samples.get(f"sweep/{rtt:g}/{value}/{scenario}", [])
                cells.append(f"{median(runs):.2f} s" if runs else "-")
        lines.append(f"| {rtt:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median(samples: Sequence[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def per_image(samples: Sequence[Sample], images_per_run: int) -> tuple[float, float, float]:
    """Mean source requests, destination requests and connections (both) per image."""
    n = len(samples) * images_per_run
    src = sum(s.source.total for s in samples) / n
    dst = sum(s.dest.total for s in samples) / n
    conns = sum(s.source.connections + s.dest.connections for s in samples) / n
    return src, dst, conns


def breakdown(samples: Sequence[Sample], images_per_run: int) -> str:
    """Requests per image by kind, source then destination, e.g. ``src GET manifest 1.0``."""
    n = len(samples) * images_per_run
    parts = []
    for side in ("source", "dest"):
        total: Counter[str] = Counter()
        for s in samples:
            total += getattr(s, side).requests
        short = "src" if side == "source" else "dst"
        parts += [f"{short} {kind} {count / n:.2g}" for kind, count in sorted(total.items())]
    return "; ".join(parts)


def verdict(value: float, target: float) -> str:
    if value <= target:
        return "met"
    return f"**missed** ({value / target:.1f}x the target)"


def render(bench: FarBench, sizes: FarSizes, extra: dict[str, Any]) -> str:
    samples = bench.samples
    fleet = len(bench.seeded.fleet)
    plan = len(bench.seeded.plan)
    lines = [
        (
            f"far link, {extra['date']}: promoter at `{extra['revision']}`, {extra['skopeo']}, "
            f"{extra['registry']}; {os.cpu_count()} CPUs, load average {extra['load']:.2f} at the "
            f"start; promoter rounds {bench.rounds}, baseline rounds {bench.baseline_rounds} "
            "(medians)"
        ),
        "",
        "| scenario | RTT | promoter | baseline | ratio | target | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {
        "a": (f"(a) {fleet}-image fleet: copy --batch / skopeo per image", TARGET_FLEET),
        "b": (
            f"(b) {bench.seeded.multi_bytes / MIB:.0f} MiB multi-arch: copy / skopeo --all",
            TARGET_MULTI,
        ),
        "c": (f"(c) plan of {plan} present / kustomize + skopeo inspect loop", TARGET_PLAN),
    }
    for key, (label, target) in names.items():
        for rtt in sizes.rtts_ms:
            p = median(samples[f"{key}/{rtt:g}/promoter"])
            b = median(samples[f"{key}/{rtt:g}/baseline"])
            lines.append(
                f"| {label} | {rtt:g} ms | {p:.2f} s | {b:.2f} s | {p / b:.3f} | "
                f"<= {target:g} | {verdict(p / b, target)} |"
            )
    for rtt in sizes.rtts_ms:
        p = median(samples[f"d/{rtt:g}/promoter"])
        target = TARGET_HOOK_BASE_S + TARGET_HOOK_RTTS * rtt / 1000
        lines.append(
            f"| (d) hook no-op, {fleet} images present | {rtt:g} ms | {p:.2f} s | - | - | "
            f"<= {target:.2f} s | {verdict(p, target)} |"
        )
    loop = median(samples["d/loopback/promoter"])
    version = extra["version_s"]
    lines.append(
        f"| start-up: hook no-op on loopback / `promoter --version` | 0 | {loop:.2f} s | "
        f"{version:.2f} s | {loop / version:.2f} | <= {TARGET_STARTUP:g} | "
        f"{verdict(loop / version, TARGET_STARTUP)} |"
    )
    plan_loop = median(samples["c/loopback/promoter"])
    render_alone = median(samples["c/loopback/kustomize"])
    renderer = kustomize_command(Path())[0]
    lines += [
        "",
        (
            f"(c) on loopback, no proxy: promoter plan {plan_loop:.2f} s; `{renderer}` rendering "
            f"the production overlay alone {render_alone:.2f} s."
        ),
    ]
    lines += [
        "",
        "Requests per image (mean over the runs; connections: both registries) and by kind:",
        "",
        "| run | RTT | source req/image | dest req/image | connections/image | by kind, per image |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = [
        ("(a) promoter copy --batch", "a", "promoter", fleet),
        ("(a) skopeo per image", "a", "baseline", fleet),
        ("(b) promoter copy", "b", "promoter", 1),
        ("(b) skopeo copy --all", "b", "baseline", 1),
        ("(c) promoter plan", "c", "promoter", plan),
        ("(c) skopeo inspect loop", "c", "baseline", plan),
        ("(d) promoter sync --from-registry", "d", "promoter", fleet),
    ]
    for label, key, tool, count in rows:
        for rtt in sizes.rtts_ms:
            runs = samples[f"{key}/{rtt:g}/{tool}"]
            src, dst, conns = per_image(runs, count)
            lines.append(
                f"| {label} | {rtt:g} ms | {src:.2f} | {dst:.2f} | {conns:.2f} | "
                f"{breakdown(runs, count)} |"
            )
    for label, key, count in (
        ("(c) promoter plan", "c", plan),
        ("(d) promoter sync --from-registry", "d", fleet),
    ):
        runs = samples[f"{key}/loopback/promoter"]
        src, dst, conns = per_image(runs, count)
        lines.append(
            f"| {label} | 0 | {src:.2f} | {dst:.2f} | {conns:.2f} | {breakdown(runs, count)} |"
        )
    return "\n".join(lines)


# main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 20 ms only")
    parser.add_argument(
        "--rounds", type=int, default=None, help="promoter runs per scenario (default 3; quick 1)"
    )
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=1,
        help="skopeo / script runs per scenario (default 1: they take minutes at 80 ms)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write raw figures here")
    parser.add_argument(
        "--sweep-requests",
        metavar="N,N,...",
        type=lambda text: [int(v) for v in text.split(",")],
        help="instead of the scenarios: (a) and (d) with each --requests value, on loopback and "
        "at each round-trip time",
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="leave bench/.work/<run> in place (debugging)"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 1 <= args.baseline_rounds <= args.rounds:
        parser.error("--baseline-rounds must be between 1 and --rounds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = FAR_QUICK if args.quick else FAR_FULL
    if shutil.which("kustomize") is None and shutil.which("kubectl") is None:
        raise SystemExit("bench/farlink.py needs kustomize or kubectl (make deps)")
    spawner, load, work = begin("farlink")
    started = time.perf_counter()
    try:
        with registries(work) as (source, dest):
            log(f"source {source.url}, destination {dest.url}; seeding")
            seeded = seed(source, dest, sizes)
            gitops = work / "gitops"
            write_gitops(gitops, seeded.plan)
            tools = Tools(work / "home", spawner)
            bench = FarBench(source, dest, tools, seeded, work, args.rounds, args.baseline_rounds)
            extra: dict[str, Any] = {
                "date": dt.datetime.now(dt.UTC).date().isoformat(),
                "revision": revision(),
                "skopeo": skopeo_version(tools),
                "registry": docker_registry_version(),
                "load": load,
                "rtts_ms": list(sizes.rtts_ms),
                "quick": args.quick,
            }
            if args.sweep_requests:
                bench.sweep(source, dest, 0, args.sweep_requests)
                for rtt in sizes.rtts_ms:
                    with proxies(source, dest, rtt) as (src, dst):
                        bench.sweep(src, dst, rtt, args.sweep_requests)
                print()
                print(render_sweep(bench, [0, *sizes.rtts_ms], args.sweep_requests))
                return 0
            log("start-up: promoter --version and the no-op hook on loopback")
            extra["version_s"] = startup_time(tools)
            bench.startup()
            bench.plan_context(gitops)
            for rtt in sizes.rtts_ms:
                with proxies(source, dest, rtt) as (src, dst):
                    log(f"{rtt:g} ms: proxies {src.host} -> source, {dst.host} -> destination")
                    bench.scenario_hook(src, dst)
                    bench.scenario_fleet(src, dst)
                    bench.scenario_multi(src, dst)
                    bench.scenario_plan(src, dst, gitops)
            report = render(bench, sizes, extra)
            print()
            print(report)
            log(f"done in {time.perf_counter() - started:.0f} s")
            if args.json is not None:
                figures = {k: [s.to_json() for s in v] for k, v in bench.samples.items()}
                args.json.write_text(json.dumps({**extra, "samples": figures}, indent=2) + "\n")
        tools.drop_skopeo_cache()
    finally:
        finish(spawner, work, keep=args.keep_work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
