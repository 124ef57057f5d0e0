"""Load generator for the admission webhook: AdmissionReviews as the API server sends them.

Given an HTTPS URL, a CA file and AdmissionReview bodies (each with the verdict it should get),
it sends N reviews over C connections and reports p50/p95/p99/max latency, errors and
throughput, per label (e.g. ``cached`` and ``uncached``) and overall. Two modes:

* **keep-alive** (the API server's way): C connections are opened and warmed with one review
  each (not counted), then every connection sends its next review as soon as the previous
  answer is read, until N reviews are answered. A connection the server closes is reopened.
* **fresh**: bursts of C new connections at once, each doing TCP connect, the TLS handshake and
  one review; its latency includes the connect and the handshake. A burst starts when the last
  one is done, until N reviews are answered.

Every request is timed from just before its bytes are written to its last byte read
(``time.perf_counter``). An error is a connection failure or timeout, a status other than 200, a
body that is not JSON or not an AdmissionReview answer, a ``response.uid`` other than the one
sent, or an ``allowed`` other than the one expected for that body.

**Why hand-written asyncio HTTP/1.1.** The API server sends small POSTs on kept-alive HTTP/1.1
connections (HTTP/2 only if the server offers it), and a client for that is a request line, four
headers and a read by Content-Length over ``asyncio.open_connection``, with no client library's
pool, retries or header machinery between the timer and the socket. Measured against one server
under 200 connections (bench/README.md, "Webhook HTTP server choice"), it spends 43 us of CPU
per review on uvloop (used when installed; ``--loop``) and 55 us on asyncio's own loop, against
31 us for wrk: under half a core at 10,000 reviews/s, while the server it loads is saturated at
one core. So on this 2-core machine it is not the bottleneck, and both load sources give the
same throughput within the run-to-run noise. An HTTP client library would only add CPU per
request (design.md measured httpx streaming at about a third of urllib3's rate), so none is used.

**wrk** (``--tool wrk``, Debian package ``wrk``) is supported as the independent load source: C,
a third less CPU per request, so it leaves a little more of the machine to the server. It keeps
connections alive only (it has no fresh-connection mode, and starts its clock after the
handshake), runs for a duration instead of a count, checks every answer in Lua (status, uid,
``allowed``) and does not verify the server's certificate. Use both: this generator for the
fresh-connection mode and per-label figures (cached and uncached reviews), wrk to confirm the
kept-alive figures.

Only loopback URLs are accepted; every connection, request and run has a time limit.

Usage::

    python bench/admission_load.py --url https://127.0.0.1:8443/validate --ca-file ca.pem \\
        --reviews reviews.jsonl --requests 5000 --connections 200 [--fresh] [--tool wrk]

``reviews.jsonl`` holds one object per line: ``{"review": {AdmissionReview}, "allowed": true,
"label": "cached"}`` (``allowed`` and ``label`` optional).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Mode = Literal["keepalive", "fresh"]
LoopName = Literal["auto", "asyncio", "uvloop"]

REQUEST_TIMEOUT_S = 30.0
"""Longest wait for one answer (or one connect and handshake) before it counts as an error."""
RUN_TIMEOUT_S = 600.0
"""Longest a whole run may take; what is still in flight then counts as timed out."""
MAX_RESPONSE_BYTES = 1024 * 1024
"""An answer larger than this is an error: AdmissionReview answers are a few hundred bytes."""


@dataclass(frozen=True, slots=True)
class Review:
    """One AdmissionReview body to send and what its answer should say.

    Attributes:
        body: the AdmissionReview JSON, as bytes.
        uid: its ``request.uid`` (the answer must carry the same).
        allowed: the expected ``response.allowed``; None checks nothing about the verdict.
        label: the class it is reported under (``cached``, ``uncached``...).
    """

    body: bytes
    uid: str
    allowed: bool | None = None
    label: str = "review"


def review(document: Mapping[str, Any], *, allowed: bool | None, label: str = "review") -> Review:
    """A :class:`Review` from an AdmissionReview document (its uid read from ``request.uid``).

    Raises:
        ValueError: the document has no ``request.uid`` string.
    """
    request = document.get("request")
    uid = request.get("uid") if isinstance(request, Mapping) else None
    if not isinstance(uid, str) or not uid:
        raise ValueError("AdmissionReview without request.uid")
    body = json.dumps(document, separators=(",", ":")).encode()
    return Review(body, uid, allowed, label)


def load_reviews(path: Path) -> list[Review]:
    """Reviews from a JSON-lines file: ``{"review": {...}, "allowed": bool, "label": str}``.

    Raises:
        ValueError: a line that is not such an object (the message names the line).
    """
    reviews = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            reviews.append(
                review(
                    entry["review"],
                    allowed=entry.get("allowed"),
                    label=entry.get("label", "review"),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a review line ({exc})") from exc
    if not reviews:
        raise ValueError(f"{path}: no reviews")
    return reviews


@dataclass(frozen=True, slots=True)
class Target:
    """Where reviews go: a loopback HTTPS URL and the CA that signed its certificate."""

    host: str
    port: int
    path: str
    ca_file: Path | None

    @classmethod
    def parse(cls, url: str, ca_file: Path | None) -> Target:
        """Parse ``https://127.0.0.1:PORT/PATH``.

        Raises:
            ValueError: not https, no port, or a host that is not loopback.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" or parts.port is None:
            raise ValueError(f"expected https://HOST:PORT/PATH, got {url!r}")
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            raise ValueError(f"{host!r} is not a loopback address: load goes to this machine only")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host, parts.port, path, ca_file)

    @property
    def url(self) -> str:
        """The URL again."""
        return f"https://{self.host}:{self.port}{self.path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against ``ca_file`` (no session reuse,
        like the API server's client: every new connection is a full handshake)."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.set_alpn_protocols(["http/1.1"])
        return context

    def request_head(self, review: Review) -> bytes:
        """The request line and headers the API server would send for ``review``."""
        return (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "User-Agent: kube-apiserver-admission\r\n"
            "Accept: application/json, */*\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(review.body)}\r\n\r\n"
        ).encode()


@dataclass(frozen=True, slots=True)
class Summary:
    """Latency percentiles (seconds), errors and throughput of one label or of the whole run."""

    count: int
    errors: int
    p50: float
    p95: float
    p99: float
    max: float
    throughput: float  # answered reviews per second of the run's wall time

    def to_json(self) -> dict[str, float | int]:
        """Milliseconds, rounded, for reports."""
        return {
            "count": self.count,
            "errors": self.errors,
            "p50_ms": round(self.p50 * 1000, 2),
            "p95_ms": round(self.p95 * 1000, 2),
            "p99_ms": round(self.p99 * 1000, 2),
            "max_ms": round(self.max * 1000, 2),
            "per_s": round(self.throughput, 1),
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100] of already sorted values; 0.0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """What one run measured.

    Attributes:
        tool: ``python`` (this generator) or ``wrk``.
        mode: ``keepalive`` or ``fresh``.
        connections: concurrent connections.
        latencies: seconds per answered review, by label (wrk gives only percentiles, see
            ``fixed``).
        errors: count per kind (``status 503``, ``allowed mismatch``, ``connect
            ConnectionRefusedError``...).
        wall_s: from the first request written to the last answer read.
        client_cpu_s: CPU time of the load generator itself during the run.
        fixed: a summary computed elsewhere (wrk's), used instead of ``latencies``.
    """

    tool: str
    mode: Mode
    connections: int
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    fixed: Summary | None = None

    @property
    def answered(self) -> int:
        """Reviews answered correctly (errors excluded)."""
        if self.fixed is not None:
            return self.fixed.count
        return sum(len(values) for values in self.latencies.values())

    def summary(self, label: str | None = None) -> Summary:
        """Figures for one label, or for every review when ``label`` is None."""
        if self.fixed is not None and label is None:
            return self.fixed
        if label is None:
            values = sorted(itertools.chain.from_iterable(self.latencies.values()))
            errors = sum(self.errors.values())
        else:
            values = sorted(self.latencies.get(label, []))
            errors = self.errors.get(f"{label}: allowed mismatch", 0)
        rate = len(values) / self.wall_s if self.wall_s > 0 else 0.0
        return Summary(
            count=len(values),
            errors=errors,
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            max=values[-1] if values else 0.0,
            throughput=rate,
        )

    def to_json(self) -> dict[str, Any]:
        """Everything but the raw latencies."""
        return {
            "tool": self.tool,
            "mode": self.mode,
            "connections": self.connections,
            "wall_s": round(self.wall_s, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "all": self.summary().to_json(),
            "labels": {label: self.summary(label).to_json() for label in sorted(self.latencies)},
            "errors": dict(self.errors),
        }


class _AnswerError(Exception):
    """An answer that counts as an error; its text is the error's kind."""


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 response: (status, body, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise _AnswerError("bad status line")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and lines[0].startswith("HTTP/1.1")
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_RESPONSE_BYTES:
            raise _AnswerError("answer too large")
        body = await reader.readexactly(length)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            total += size
            if total > MAX_RESPONSE_BYTES:
                raise _AnswerError("answer too large")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.read(MAX_RESPONSE_BYTES)
        keep = False
    return status, body, keep


def _check(review: Review, status: int, body: bytes) -> None:
    """Raise ``_AnswerError`` unless the answer is a 200 AdmissionReview for this review."""
    if status != 200:
        raise _AnswerError(f"status {status}")
    try:
        answer = json.loads(body)
        response = answer["response"]
        uid, allowed = response["uid"], response["allowed"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _AnswerError("not an AdmissionReview answer") from exc
    if uid != review.uid:
        raise _AnswerError("uid mismatch")
    if review.allowed is not None and allowed is not review.allowed:
        raise _AnswerError(f"{review.label}: allowed mismatch")


class _Run:
    """State shared by the connections of one run (one asyncio loop, so no locks)."""

    def __init__(self, target: Target, reviews: Sequence[Review], total: int, result: LoadResult):
        self.target = target
        self.reviews = reviews
        self.heads = [target.request_head(r) for r in reviews]
        self.total = total
        self.result = result
        self.next_index = itertools.count()
        self.context = target.ssl_context()
        self.deadline = time.monotonic() + RUN_TIMEOUT_S
        self.stop_at = math.inf  # set when the clock starts, for a run of a given duration
        self.warm = 0
        self.all_warm = asyncio.Event()

    def warmed(self) -> None:
        """One more connection is ready (or gave up); the last one releases the start."""
        self.warm += 1
        if self.warm >= self.result.connections:
            self.all_warm.set()

    def take(self) -> int | None:
        """The index of the next review to send, or None when the run has sent them all (or
        its time is up)."""
        index = next(self.next_index)
        if index >= self.total or time.monotonic() > min(self.deadline, self.stop_at):
            return None
        return index

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(
                self.target.host,
                self.target.port,
                ssl=self.context,
                server_hostname=self.target.host,
                limit=MAX_RESPONSE_BYTES,
            ),
            REQUEST_TIMEOUT_S,
        )

    async def exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> bool:
        """Send review ``index`` and read its answer; record it. Returns whether to keep the
        connection."""
        review = self.reviews[index % len(self.reviews)]
        started = time.perf_counter()
        writer.write(self.heads[index % len(self.reviews)] + review.body)
        status, body, keep = await asyncio.wait_for(_read_answer(reader), REQUEST_TIMEOUT_S)
        elapsed = time.perf_counter() - started
        self.record(review, status, body, elapsed)
        return keep

    def record(self, review: Review, status: int, body: bytes, elapsed: float) -> None:
        try:
            _check(review, status, body)
        except _AnswerError as exc:
            self.result.errors[str(exc)] += 1
            return
        self.result.latencies.setdefault(review.label, []).append(elapsed)

    def failed(self, exc: BaseException, where: str) -> None:
        kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        if isinstance(exc, _AnswerError):
            kind = str(exc)
        self.result.errors[f"{where} {kind}"] += 1


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 5.0)


async def _keepalive_connection(run: _Run, start: asyncio.Event) -> None:
    """One kept-alive connection: warm it with one uncounted review, then send until done."""
    try:
        reader, writer = await run.connect()
        await asyncio.wait_for(_read_warmup(run, reader, writer), REQUEST_TIMEOUT_S)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, _AnswerError) as exc:
        run.failed(exc, "connect")
        run.warmed()
        return
    run.warmed()
    await start.wait()
    try:
        while (index := run.take()) is not None:
            try:
                keep = await run.exchange(reader, writer, index)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, _AnswerError) as exc:
                run.failed(exc, "request")
                keep = False
            if not keep:
                await _close(writer)
                try:
                    reader, writer = await run.connect()
                except (OSError, TimeoutError) as exc:
                    run.failed(exc, "connect")
                    return
    finally:
        await _close(writer)


async def _read_warmup(
    run: _Run, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(run.heads[0] + run.reviews[0].body)
    status, body, _ = await _read_answer(reader)
    _check(run.reviews[0], status, body)


async def _fresh_connection(run: _Run, index: int) -> None:
    """One review on a new connection, timed from the connect to the answer."""
    review = run.reviews[index % len(run.reviews)]
    started = time.perf_counter()
    try:
        reader, writer = await run.connect()
    except (OSError, TimeoutError) as exc:
        run.failed(exc, "connect")
        return
    try:
        writer.write(run.heads[index % len(run.reviews)] + review.body)
        status, body, _ = await asyncio.wait_for(_read_answer(reader), REQUEST_TIMEOUT_S)
        run.record(review, status, body, time.perf_counter() - started)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, _AnswerError) as exc:
        run.failed(exc, "request")
    finally:
        await _close(writer)


async def run_load_async(
    target: Target,
    reviews: Sequence[Review],
    *,
    total: int,
    connections: int,
    mode: Mode = "keepalive",
    duration_s: float | None = None,
) -> LoadResult:
    """Send ``total`` reviews (cycling through ``reviews``) over ``connections`` connections.

    See the module docstring for the two modes. With ``duration_s`` no review is sent after that
    many seconds (the ones in flight are still answered), whatever ``total`` says. Errors are
    counted, never raised.

    Raises:
        ValueError: no reviews, or a count below 1.
    """
    if not reviews or total < 1 or connections < 1:
        raise ValueError("need at least one review, one request and one connection")
    result = LoadResult("python", mode, connections)
    run = _Run(target, reviews, total, result)
    if mode == "keepalive":
        start = asyncio.Event()
        tasks = [asyncio.create_task(_keepalive_connection(run, start)) for _ in range(connections)]
        # Start the clock once every connection is open and has read its warm-up answer (or
        # failed to): each one waits for ``start`` after telling ``run.warmed``.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.all_warm.wait(), REQUEST_TIMEOUT_S * 2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if duration_s is not None:
            run.stop_at = time.monotonic() + duration_s
        start.set()
        await asyncio.gather(*tasks)
    else:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if duration_s is not None:
            run.stop_at = time.monotonic() + duration_s
        for first in range(0, total, connections):
            if time.monotonic() > min(run.deadline, run.stop_at):
                result.errors["run timeout"] += total - first
                break
            burst = range(first, min(first + connections, total))
            await asyncio.gather(*(_fresh_connection(run, index) for index in burst))
    result.wall_s = time.perf_counter() - wall0
    result.client_cpu_s = time.process_time() - cpu0
    return result


def run_load(
    target: Target,
    reviews: Sequence[Review],
    *,
    total: int,
    connections: int,
    mode: Mode = "keepalive",
    duration_s: float | None = None,
    loop: LoopName = "auto",
) -> LoadResult:
    """:func:`run_load_async` on a fresh event loop (uvloop when ``loop`` allows and it is
    installed)."""
    coroutine = run_load_async(
        target, reviews, total=total, connections=connections, mode=mode, duration_s=duration_s
    )
    if loop != "asyncio":
        try:
            import uvloop  # noqa: PLC0415 - optional, only for the generator's own loop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


# bodies as the API server sends them -----------------------------------------------------------


def pod_admission_review(
    uid: str,
    images: Sequence[str],
    *,
    namespace: str = "shop",
    name: str = "api-7d4b9c6f58-x2x9q",
    operation: str = "CREATE",
    dry_run: bool = False,
) -> dict[str, Any]:
    """An AdmissionReview v1 for a Pod that a ReplicaSet creates, as kube-apiserver sends it.

    The Pod is what the API server has after defaulting: managedFields, the projected service
    account volume, tolerations, one container per image (4-5 KB of JSON for two images), so a
    server's parse cost is that of a real review.
    """
    app = name.rsplit("-", 2)[0]
    containers = [
        {
            "name": f"c{index}",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080 + index, "name": f"http{index}", "protocol": "TCP"}],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {
                    "name": "POD_NAME",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                },
            ],
            "resources": {
                "limits": {"memory": "256Mi"},
                "requests": {"cpu": "100m", "memory": "128Mi"},
            },
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": 8080 + index, "scheme": "HTTP"},
                "periodSeconds": 10,
                "timeoutSeconds": 1,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [
                {
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "name": "kube-api-access-4xk2p",
                    "readOnly": True,
                }
            ],
        }
        for index, image in enumerate(images)
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": name.rsplit("-", 1)[0] + "-",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": app, "pod-template-hash": "7d4b9c6f58"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": name.rsplit("-", 1)[0],
                    "uid": "5f0c2f7e-1b7a-4c4e-9c39-3c7f3f1e9a10",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-30T10:00:01Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:generateName": {},
                            "f:labels": {
                                ".": {},
                                "f:app.kubernetes.io/name": {},
                                "f:pod-template-hash": {},
                            },
                            "f:ownerReferences": {
                                ".": {},
                                'k:{"uid":"5f0c2f7e-1b7a-4c4e-9c39-3c7f3f1e9a10"}': {},
                            },
                        },
                        "f:spec": {
                            "f:containers": {
                                f'k:{{"name":"c{i}"}}': {".": {}, "f:image": {}, "f:name": {}}
                                for i in range(len(images))
                            },
                            "f:dnsPolicy": {},
                            "f:restartPolicy": {},
                            "f:schedulerName": {},
                            "f:securityContext": {},
                        },
                    },
                }
            ],
        },
        "spec": {
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {"fsGroup": 10001, "runAsUser": 10001},
            "serviceAccount": app,
            "serviceAccountName": app,
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {
                    "effect": "NoExecute",
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "tolerationSeconds": 300,
                },
                {
                    "effect": "NoExecute",
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "tolerationSeconds": 300,
                },
            ],
            "volumes": [
                {
                    "name": "kube-api-access-4xk2p",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                    "name": "kube-root-ca.crt",
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                            "path": "namespace",
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                }
            ],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "0b8e8a64-8f5a-4b8f-9d1e-5b9c1c6f4a77",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


# wrk ------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local bodies = {%(bodies)s}
local expect = {%(expect)s}
local path = %(path)s
local requests = {}
local index = 0
local thread_number = 0
local counter = 1
local threads = {}

function setup(thread)
  thread:set("thread_number", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json, */*",
      ["User-Agent"] = "kube-apiserver-admission",
    }, body)
  end
  index = (thread_number * 7) %% #requests
  bad_status = 0
  not_json = 0
  mismatch = 0
  checked = 0
end

function request()
  index = index %% #requests + 1
  return requests[index]
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    return
  end
  local uid = string.match(body, '"uid"%%s*:%%s*"([^"]*)"')
  local allowed = string.match(body, '"allowed"%%s*:%%s*(%%a+)')
  if uid == nil or allowed == nil then
    not_json = not_json + 1
    return
  end
  local want = expect[uid]
  if want ~= nil and want ~= allowed then
    mismatch = mismatch + 1
  end
  checked = checked + 1
end

function done(summary, latency, requests)
  local totals = {bad_status = 0, not_json = 0, mismatch = 0, checked = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d, ' ..
    '"bad_status": %%d, "not_json": %%d, "mismatch": %%d, "checked": %%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    totals.bad_status, totals.not_json, totals.mismatch, totals.checked))
end
"""


def _lua_string(text: str) -> str:
    """A Lua long-bracket string literal holding ``text`` unchanged."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_available() -> bool:
    """Whether the ``wrk`` program is on PATH (Debian package ``wrk``)."""
    return shutil.which("wrk") is not None


def run_wrk(
    target: Target,
    reviews: Sequence[Review],
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
) -> LoadResult:
    """Keep-alive load from wrk for ``duration_s``; every answer checked by its Lua script.

    wrk does not verify the certificate and starts each request's clock when it writes the
    request. Its latency histogram has microsecond resolution.

    Raises:
        RuntimeError: wrk is missing, failed, or printed no result line.
    """
    if not wrk_available():
        raise RuntimeError("wrk not found on PATH (apt-get install wrk)")
    bodies = ", ".join(_lua_string(r.body.decode()) for r in reviews)
    expect = ", ".join(
        f"[ {_lua_string(r.uid)} ] = {_lua_string(str(r.allowed).lower())}"
        for r in reviews
        if r.allowed is not None
    )
    script = _WRK_SCRIPT % {"bodies": bodies, "expect": expect, "path": _lua_string(target.path)}
    with tempfile.TemporaryDirectory(prefix="wrk-") as scratch:
        script_path = Path(scratch) / "admission.lua"
        script_path.write_text(script)
        seconds = max(1, round(duration_s))
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={int(REQUEST_TIMEOUT_S)}s",
            "-s",
            str(script_path),
            f"https://{target.host}:{target.port}/",
        ]
        before = os.times()
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        after = os.times()
    line = next((x for x in done.stdout.splitlines() if x.startswith('{"requests"')), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr[-500:]}")
    figures = json.loads(line)
    result = LoadResult("wrk", "keepalive", connections)
    result.wall_s = figures["duration_us"] / 1e6
    result.client_cpu_s = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    for name, kind in (
        ("connect", "connect error"),
        ("read", "read error"),
        ("write", "write error"),
        ("timeout", "timeout"),
        ("bad_status", "status not 200"),
        ("not_json", "not an AdmissionReview answer"),
        ("mismatch", "allowed mismatch"),
    ):
        if figures[name]:
            result.errors[kind] += figures[name]
    checked = figures["checked"] - figures["mismatch"]
    result.fixed = Summary(
        count=checked,
        errors=sum(result.errors.values()),
        p50=figures["p50"] / 1e6,
        p95=figures["p95"] / 1e6,
        p99=figures["p99"] / 1e6,
        max=figures["max"] / 1e6,
        throughput=figures["requests"] / result.wall_s if result.wall_s else 0.0,
    )
    return result


# the command line -----------------------------------------------------------------------------


def format_table(rows: Sequence[tuple[str, LoadResult]]) -> str:
    """A Markdown table: one row per (name, result), overall and per label."""
    lines = [
        "| run | tool | mode | conns | label | answered | errors | p50 | p95 | p99 | max | per s | client CPU |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in rows:
        labels: list[str | None] = [None]
        if result.fixed is None and len(result.latencies) > 1:
            labels += sorted(result.latencies)
        for label in labels:
            s = result.summary(label)
            lines.append(
                f"| {name} | {result.tool} | {result.mode} | {result.connections} "
                f"| {label or 'all'} | {s.count} | {s.errors} | {s.p50 * 1000:.1f} ms "
                f"| {s.p95 * 1000:.1f} ms | {s.p99 * 1000:.1f} ms | {s.max * 1000:.1f} ms "
                f"| {s.throughput:.0f} | {result.client_cpu_s:.2f} s |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load and print its table (and errors by kind) to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="https://127.0.0.1:PORT/validate")
    parser.add_argument("--ca-file", type=Path, help="CA that signed the server's certificate")
    parser.add_argument("--reviews", type=Path, required=True, help="JSON-lines file of reviews")
    parser.add_argument("--requests", type=int, default=2000, help="reviews to send (python)")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--fresh", action="store_true", help="a new connection per review")
    parser.add_argument("--tool", choices=("python", "wrk"), default="python")
    parser.add_argument(
        "--duration-s", type=float, help="stop sending after this long (wrk: default 6 s)"
    )
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        target = Target.parse(args.url, args.ca_file)
        reviews = load_reviews(args.reviews)
    except (ValueError, OSError) as exc:
        print(f"admission_load: {exc}", file=sys.stderr)
        return 2
    if args.tool == "wrk":
        if args.fresh:
            print("admission_load: wrk keeps connections alive; --fresh needs --tool python")
            return 2
        result = run_wrk(
            target, reviews, connections=args.connections, duration_s=args.duration_s or 6.0
        )
    else:
        result = run_load(
            target,
            reviews,
            total=args.requests,
            connections=args.connections,
            mode="fresh" if args.fresh else "keepalive",
            duration_s=args.duration_s,
            loop=args.loop,
        )
    print(format_table([(target.url, result)]))
    for kind, count in sorted(result.errors.items()):
        print(f"error: {kind}: {count}")
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
