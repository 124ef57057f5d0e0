"""Which HTTP server for the admission webhook: each candidate under the same load, in one run.

Issue 10 asks to pick the webhook's HTTPS server from well-kept libraries by measurement: p99
under 200 concurrent AdmissionReviews. Every candidate serves the same minimal AdmissionReview
app over TLS (a certificate from ``trustme``), one process each, as the webhook's Pod would:

    parse the JSON body -> promoter.gitops.discover.discover_images(request.object)
    -> look every image up in an in-memory dict (the webhook's cached path)
    -> answer an AdmissionReview with the request's uid (allowed, or denied naming the image)

so the figures are the server's cost plus the work every review does anyway, without registry
round trips (those are the webhook's own bench). Candidates (those not installed are skipped):
uvicorn with httptools and with h11 (each on asyncio, and httptools on uvloop), hypercorn
(asyncio and uvloop), cheroot (threaded WSGI) and granian (Rust, ASGI).

For each, side by side, three loads of 200 concurrent reviews (``bench/admission_load.py``):

* ``keep-alive``: 200 connections kept alive, each sending its next review as soon as the last is
  answered (the API server's way), from the asyncio generator;
* ``wrk``: the same from wrk (Debian package), a C load source that leaves more CPU to the server;
* ``fresh``: bursts of 200 new connections at once, each timed from connect through the TLS
  handshake to the answer.

Reviews are Pod CREATEs of 1-3 images (4-7 KB, as the API server sends them); a fifth name an
image missing from the cache and must be denied, so every answer's verdict is checked too. The
server's CPU time (its whole process tree) and the generator's are reported beside each load: on
this 2-core machine they compete, which is part of what is measured.

    .venv/bin/python bench/webhook_servers.py                 # all candidates (about 2 minutes)
    .venv/bin/python bench/webhook_servers.py --servers uvicorn-httptools,cheroot --json out.json

Only 127.0.0.1; every child has a start-up and a stop time limit and is killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import importlib.util
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools and bench are top-level packages of the repository
if str(ROOT / "src") not in sys.path:
    sys.path.insert(1, str(ROOT / "src"))  # promoter, for discover_images, without installing

from bench.admission_load import (  # noqa: E402 - needs the sys.path entry above
    LoadResult,
    Review,
    Target,
    pod_admission_review,
    review,
    run_load,
    run_wrk,
    wrk_available,
)

from promoter.gitops.discover import discover_images  # noqa: E402

REGISTRY = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
BACKLOG = 2048
"""Accept queue of every server (where it can be set): a burst of 200 must not overflow it."""
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# The "cache": images the webhook would have looked up recently. A review naming anything else
# is denied. The same table in the parent (to build reviews) and in each server child.
CACHED: dict[str, str] = {
    f"{REGISTRY}/shop/svc-{index:02d}:1.{index}.0": "sha256:" + f"{index:02d}" * 32
    for index in range(40)
}
MISSING = f"{REGISTRY}/shop/svc-99:9.9.9"


# the app every candidate serves ----------------------------------------------------------------


def review_answer(body: bytes) -> tuple[int, bytes]:
    """The webhook's work for one review body: (HTTP status, JSON answer)."""
    try:
        request = json.loads(body)["request"]
        uid = request["uid"]
        found = discover_images([request["object"]])
    except (ValueError, KeyError, TypeError):
        return 400, b'{"error":"not an AdmissionReview"}'
    missing = [image.image for image in found if image.image not in CACHED]
    response: dict[str, Any] = {"uid": uid, "allowed": not missing}
    if missing:
        response["status"] = {
            "code": 403,
            "message": f"image {missing[0]} is not in {REGISTRY}: promote it first",
        }
    answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    return 200, json.dumps(answer, separators=(",", ":")).encode()


async def asgi_app(
    scope: Mapping[str, Any],
    receive: Callable[[], Any],
    send: Callable[[Mapping[str, Any]], Any],
) -> None:
    """The review app as ASGI 3 (uvicorn, hypercorn, granian), lifespan included."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        status, payload = review_answer(b"".join(chunks))
    else:
        status, payload = 200, b"ok"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The review app as WSGI (cheroot)."""
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        status, payload = review_answer(environ["wsgi.input"].read(length))
    else:
        status, payload = 200, b"ok"
    start_response(
        f"{status} {'OK' if status == 200 else 'Bad Request'}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


# the candidates, each run in a child process ----------------------------------------------------


def _serve_uvicorn(port: int, cert: str, key: str, *, http: str, loop: str) -> None:
    import uvicorn  # noqa: PLC0415 - each candidate is imported only in its own child

    config = uvicorn.Config(
        asgi_app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        http=http,
        loop=loop,
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=BACKLOG,
    )
    uvicorn.Server(config).run()


def _serve_hypercorn(port: int, cert: str, key: str, *, loop: str) -> None:
    from hypercorn.asyncio import serve  # noqa: PLC0415
    from hypercorn.config import Config  # noqa: PLC0415

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = cert
    config.keyfile = key
    config.backlog = BACKLOG
    config.accesslog = None
    config.loglevel = "WARNING"

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(asgi_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    if loop == "uvloop":
        import uvloop  # noqa: PLC0415

        uvloop.run(main())
    else:
        asyncio.run(main())


def _serve_cheroot(port: int, cert: str, key: str, *, threads: int) -> None:
    from cheroot import wsgi  # noqa: PLC0415
    from cheroot.ssl.builtin import BuiltinSSLAdapter  # noqa: PLC0415

    server = wsgi.Server(
        ("127.0.0.1", port), wsgi_app, numthreads=threads, request_queue_size=BACKLOG
    )
    server.ssl_adapter = BuiltinSSLAdapter(cert, key)
    # cheroot closes idle kept-alive connections beyond 10 by default: a client of 200 would see
    # 190 of them dropped between two requests. The API server keeps its connections, so do we.
    server.keep_alive_conn_limit = None
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


def _serve_granian(port: int, cert: str, key: str) -> None:
    from granian import Granian  # noqa: PLC0415

    Granian(
        "bench.webhook_servers:asgi_app",
        address="127.0.0.1",
        port=port,
        interface="asgi",  # type: ignore[arg-type]
        workers=1,
        ssl_cert=Path(cert),
        ssl_key=Path(key),
        backlog=BACKLOG,
        log_enabled=False,
        working_dir=ROOT,
    ).serve()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A server configuration: its name, the modules it needs and how to serve."""

    name: str
    needs: tuple[str, ...]
    serve: Callable[[int, str, str], None]
    note: str


def _candidates() -> list[Candidate]:
    def uvicorn(http: str, loop: str) -> Callable[[int, str, str], None]:
        return lambda port, cert, key: _serve_uvicorn(port, cert, key, http=http, loop=loop)

    def hypercorn(loop: str) -> Callable[[int, str, str], None]:
        return lambda port, cert, key: _serve_hypercorn(port, cert, key, loop=loop)

    def cheroot(threads: int) -> Callable[[int, str, str], None]:
        return lambda port, cert, key: _serve_cheroot(port, cert, key, threads=threads)

    return [
        Candidate(
            "uvicorn-httptools",
            ("uvicorn", "httptools"),
            uvicorn("httptools", "asyncio"),
            "asyncio loop",
        ),
        Candidate(
            "uvicorn-httptools-uvloop",
            ("uvicorn", "httptools", "uvloop"),
            uvicorn("httptools", "uvloop"),
            "uvloop",
        ),
        Candidate("uvicorn-h11", ("uvicorn", "h11"), uvicorn("h11", "asyncio"), "asyncio loop"),
        Candidate("hypercorn", ("hypercorn",), hypercorn("asyncio"), "asyncio loop, h11"),
        Candidate("hypercorn-uvloop", ("hypercorn", "uvloop"), hypercorn("uvloop"), "uvloop, h11"),
        Candidate("cheroot", ("cheroot",), cheroot(10), "WSGI, 10 threads (its default)"),
        Candidate("cheroot-200", ("cheroot",), cheroot(200), "WSGI, 200 threads"),
        Candidate("granian", ("granian",), _serve_granian, "ASGI, 1 worker, Rust HTTP and TLS"),
    ]


CANDIDATES = {candidate.name: candidate for candidate in _candidates()}


def installed(candidate: Candidate) -> bool:
    """Whether every module the candidate needs can be imported."""
    return all(importlib.util.find_spec(module) is not None for module in candidate.needs)


def versions(candidate: Candidate) -> str:
    """``name version`` of each package the candidate uses."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    parts = []
    for module in candidate.needs:
        try:
            parts.append(f"{module} {version(module)}")
        except PackageNotFoundError:
            parts.append(module)
    return ", ".join(parts)


# the parent: start each server, load it, stop it -------------------------------------------------


@dataclass
class ServerChild:
    """A candidate serving in a child process (``python bench/webhook_servers.py serve NAME``)."""

    candidate: Candidate
    port: int
    cert: Path
    key: Path
    ca: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "serve",
                    self.candidate.name,
                    "--port",
                    str(self.port),
                    "--cert",
                    str(self.cert),
                    "--key",
                    str(self.key),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"},
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.candidate.name} exited: {self.log.read_text()[-2000:]}")
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        raise RuntimeError(f"{self.candidate.name} did not answer within {START_TIMEOUT_S} s")

    def cpu_seconds(self) -> float:
        """User + system CPU of the child and every process under it, from /proc."""
        assert self.proc is not None
        return sum(_proc_cpu(pid) for pid in _tree(self.proc.pid))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (threads are counted in their process's stat)."""
    pids, todo = [], [pid]
    while todo and len(pids) < 1000:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return pids


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (a child binds it right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_reviews(count: int = 50) -> list[Review]:
    """Pod CREATE reviews of 1-3 cached images; every fifth also names the missing one."""
    reviews = []
    cached = sorted(CACHED)
    for index in range(count):
        images = [cached[(index * 3 + k) % len(cached)] for k in range(1 + index % 3)]
        denied = index % 5 == 4
        if denied:
            images.append(MISSING)
        document = pod_admission_review(
            f"00000000-0000-4000-8000-{index:012d}", images, name=f"svc-{index:02d}-5c9d8-abcde"
        )
        reviews.append(
            review(document, allowed=not denied, label="denied" if denied else "allowed")
        )
    return reviews


@dataclass
class Row:
    """One load against one server in one round, with the CPU time spent during it.

    ``other_cpu_s`` is the machine's busy time that neither the server nor the load generator
    used: other work on the machine, which moves the figures.
    """

    server: str
    load: str
    round: int
    result: LoadResult
    server_cpu_s: float
    other_cpu_s: float

    @property
    def sent(self) -> int:
        """Reviews this load sent (answered or failed)."""
        s = self.result.summary()
        if self.result.tool == "wrk":
            return max(1, round(s.throughput * self.result.wall_s))
        return max(1, s.count + s.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "load": self.load,
            "round": self.round,
            "server_cpu_s": round(self.server_cpu_s, 3),
            "other_cpu_s": round(self.other_cpu_s, 3),
            **self.result.to_json(),
        }


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Options:
    """What to run."""

    servers: list[Candidate]
    connections: int
    seconds: float
    fresh_requests: int
    use_wrk: bool
    rounds: int


def measure_server(
    candidate: Candidate,
    options: Options,
    certs: tuple[Path, Path, Path],
    scratch: Path,
    round_number: int,
) -> list[Row]:
    """Start one candidate, run the three loads against it, stop it."""
    ca, cert, key = certs
    reviews = make_reviews()
    child = ServerChild(candidate, free_port(), cert, key, ca, scratch / f"{candidate.name}.log")
    rows = []
    try:
        child.start()
        target = Target.parse(f"https://127.0.0.1:{child.port}/validate?timeout=10s", ca)
        loads: list[tuple[str, Callable[[], LoadResult]]] = [
            (
                "keep-alive",
                lambda: run_load(
                    target,
                    reviews,
                    total=10**9,
                    connections=options.connections,
                    duration_s=options.seconds,
                ),
            ),
        ]
        if options.use_wrk:
            loads.append(
                (
                    "wrk",
                    lambda: run_wrk(
                        target,
                        reviews,
                        connections=options.connections,
                        duration_s=options.seconds,
                    ),
                )
            )
        loads.append(
            (
                "fresh",
                lambda: run_load(
                    target,
                    reviews,
                    total=options.fresh_requests,
                    connections=options.connections,
                    mode="fresh",
                ),
            )
        )
        for name, load in loads:
            server_before, machine_before = child.cpu_seconds(), machine_busy_s()
            result = load()
            server_cpu = child.cpu_seconds() - server_before
            other = machine_busy_s() - machine_before - server_cpu - result.client_cpu_s
            rows.append(Row(candidate.name, name, round_number, result, server_cpu, other))
            print(f"  {candidate.name:<26} {name:<10} {_brief(rows[-1])}", flush=True)
    finally:
        child.stop()
    return rows


def _brief(row: Row) -> str:
    s = row.result.summary()
    return (
        f"p50 {s.p50 * 1000:6.1f} ms  p99 {s.p99 * 1000:6.1f} ms  {s.throughput:7.0f}/s  "
        f"errors {s.errors}  CPU: server {row.server_cpu_s:.2f} s, "
        f"load {row.result.client_cpu_s:.2f} s, other {row.other_cpu_s:.2f} s"
    )


def render(rows: Sequence[Row], options: Options) -> str:
    """The Markdown table for bench/README.md: per server and load, medians over the rounds.

    p50, p99 and reviews/s are medians of the rounds' figures, with the p99's range across
    rounds in brackets; errors are summed; CPU is per review sent (the server's whole process
    tree, and the load generator: this process or wrk) and, for other work on the machine, as a
    share of one CPU over the load's wall time.
    """
    header = (
        f"{dt.datetime.now(dt.UTC).date().isoformat()}, {os.cpu_count()} CPUs, {options.rounds} "
        f"round(s), order rotated each round, load average {os.getloadavg()[0]:.2f} at the end; "
        f"{options.connections} concurrent reviews; keep-alive and wrk: {options.seconds:g} s "
        f"each; fresh: {options.fresh_requests} reviews in bursts of {options.connections}."
    )
    lines = [
        header,
        "",
        "| server | load | p50 | p99 (range) | reviews/s | errors | CPU per review: server | load | other CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.server, row.load), []).append(row)
    for (server, load), group in groups.items():
        summaries = [row.result.summary() for row in group]
        p99s = [s.p99 * 1000 for s in summaries]
        median_p50 = statistics.median(s.p50 for s in summaries) * 1000
        median_p99 = statistics.median(p99s)
        rate = statistics.median(s.throughput for s in summaries)
        errors = sum(s.errors for s in summaries)
        per_review = statistics.median(row.server_cpu_s / row.sent for row in group) * 1e6
        load_per_review = (
            statistics.median(row.result.client_cpu_s / row.sent for row in group) * 1e6
        )
        other = statistics.median(
            max(0.0, row.other_cpu_s / row.result.wall_s) if row.result.wall_s else 0.0
            for row in group
        )
        spread = f" ({min(p99s):.0f}-{max(p99s):.0f})" if len(group) > 1 else ""
        lines.append(
            f"| {server} | {load} | {median_p50:.1f} ms | {median_p99:.1f} ms{spread} "
            f"| {rate:,.0f} | {errors} | {per_review:,.0f} µs | {load_per_review:,.0f} µs "
            f"| {other:.0%} |"
        )
    return "\n".join(lines)


def make_certs(scratch: Path) -> tuple[Path, Path, Path]:
    """A trustme CA and a server certificate for 127.0.0.1: (ca, cert, key) files."""
    import trustme  # noqa: PLC0415 - a dev dependency, only the parent needs it

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    ca, cert, key = scratch / "ca.pem", scratch / "tls.crt", scratch / "tls.key"
    authority.cert_pem.write_to_path(str(ca))
    issued.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as out:
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())
    return ca, cert, key


def run(options: Options) -> list[Row]:
    """Every chosen candidate, one after the other, in one run."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="webhook-servers-") as scratch_name:
        scratch = Path(scratch_name)
        certs = make_certs(scratch)
        for round_number in range(options.rounds):
            shift = round_number % len(options.servers)
            order = options.servers[shift:] + options.servers[:shift]
            print(f"round {round_number + 1} of {options.rounds}", flush=True)
            for candidate in order:
                print(f"{candidate.name} ({versions(candidate)}; {candidate.note})", flush=True)
                try:
                    rows += measure_server(candidate, options, certs, scratch, round_number)
                except RuntimeError as exc:
                    print(f"  {candidate.name}: skipped: {exc}", flush=True)
    order_of = {candidate.name: index for index, candidate in enumerate(options.servers)}
    loads = {"keep-alive": 0, "wrk": 1, "fresh": 2}
    return sorted(rows, key=lambda row: (order_of[row.server], loads[row.load], row.round))


def _names(text: str) -> list[Candidate]:
    chosen = []
    for name in text.split(","):
        if name.strip() not in CANDIDATES:
            raise argparse.ArgumentTypeError(
                f"unknown server {name!r} (known: {', '.join(CANDIDATES)})"
            )
        chosen.append(CANDIDATES[name.strip()])
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the candidates (or, with ``serve NAME``, be one of the servers)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        serve = argparse.ArgumentParser(prog="webhook_servers.py serve")
        serve.add_argument("name", choices=sorted(CANDIDATES))
        serve.add_argument("--port", type=int, required=True)
        serve.add_argument("--cert", required=True)
        serve.add_argument("--key", required=True)
        served = serve.parse_args(args_list[1:])
        CANDIDATES[served.name].serve(served.port, served.cert, served.key)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=_names, default=list(CANDIDATES.values()))
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of the keep-alive and wrk loads"
    )
    parser.add_argument(
        "--fresh-requests", type=int, default=1000, help="reviews of the fresh-connection load"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order rotated (1-20)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk load")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(args_list)
    servers = [c for c in args.servers if installed(c)]
    for skipped in (c for c in args.servers if not installed(c)):
        print(f"{skipped.name}: not installed ({', '.join(skipped.needs)}), skipped")
    use_wrk = not args.no_wrk and wrk_available()
    if not args.no_wrk and not use_wrk:
        print("wrk not found (apt-get install wrk): its load is skipped")
    options = Options(
        servers,
        args.connections,
        args.seconds,
        args.fresh_requests,
        use_wrk,
        max(1, min(args.rounds, 20)),
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: other work will move these figures")
    rows = run(options)
    print()
    print(render(rows, options))
    if args.json is not None:
        args.json.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")
    return 1 if any(row.result.summary().errors for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
