"""The latency proxy (devtools/latency_proxy.py) against the real Distribution registry.

Benchmarks of round-trip-bound code (the admission webhook, far-link promotion) trust it to
charge what a real link charges and to pass bytes and closes through untouched. Timings here are
lower bounds only: a busy machine can make anything slower, never a delay shorter.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devtools import images, latency_proxy
from devtools.latency_proxy import LatencyProxy, loopback_address
from devtools.registry import RegistryProcess

RTT_MS = 40.0
RTT_S = RTT_MS / 1000
# asyncio may fire a timer a clock tick early; far below a millisecond.
SLACK_S = 0.001
TIMEOUT_S = 10.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def proxied_registry(source_registry: RegistryProcess) -> Iterator[LatencyProxy]:
    """The plain-HTTP test registry behind a 40 ms latency proxy."""
    with LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=RTT_MS) as proxy:
        yield proxy


@pytest.fixture
def bare_upstream() -> Iterator[socket.socket]:
    """A listening TCP socket on loopback, to watch what the proxy does to the upstream side."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(TIMEOUT_S)
    yield server
    server.close()


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    """GET ``path`` on ``conn``; (status, seconds from sending to the whole answer read)."""
    started = time.monotonic()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status, time.monotonic() - started


def test_v2_costs_a_handshake_then_one_round_trip_per_request(
    proxied_registry: LatencyProxy,
) -> None:
    """GET /v2/ takes at least 2 RTT on a fresh connection and at least 1 RTT on a kept-alive one."""
    conn = http.client.HTTPConnection("127.0.0.1", proxied_registry.port, timeout=TIMEOUT_S)
    try:
        started = time.monotonic()
        conn.connect()
        status, _ = timed_get(conn, "/v2/")
        first = time.monotonic() - started
        assert status == 200
        status, second = timed_get(conn, "/v2/")
        assert status == 200
    finally:
        conn.close()
    assert first >= 2 * RTT_S - SLACK_S, f"fresh connection answered in {first * 1000:.1f} ms"
    assert second >= RTT_S - SLACK_S, f"kept-alive request answered in {second * 1000:.1f} ms"


def test_blob_pushed_and_pulled_through_the_proxy_is_intact(
    source_registry: RegistryProcess,
    repo: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 6 MiB blob pushed and pulled by digest through the proxy (its queue capped at 64 KiB) keeps every byte."""
    monkeypatch.setattr(latency_proxy, "MAX_QUEUED_BYTES", 64 * 1024)
    payload = images.random_bytes(6 * 1024 * 1024, seed="latency-proxy")
    image = images.oci_image([payload], seed="latency-proxy")
    with LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=10) as proxy:
        digest = images.push_image(f"http://{proxy.host}", repo, image, "1.0")
        assert digest == image.digest
        layer_digest = images.sha256_digest(payload)
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT_S)
        try:
            conn.request("GET", f"/v2/{repo}/blobs/{layer_digest}")
            response = conn.getresponse()
            pulled = response.read()
        finally:
            conn.close()
    assert response.status == 200
    assert len(pulled) == len(payload)
    assert "sha256:" + hashlib.sha256(pulled).hexdigest() == layer_digest


def test_tls_passes_through_byte_for_byte(tls_registry: RegistryProcess) -> None:
    """An HTTPS registry answers through the proxy: its certificate for 127.0.0.1 still verifies."""
    with LatencyProxy(("127.0.0.1", tls_registry.port), rtt_ms=10) as proxy:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", proxy.port, context=tls_registry.ssl_context(), timeout=TIMEOUT_S
        )
        try:
            conn.request("GET", "/v2/", headers=tls_registry.push_headers("any"))
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
    assert response.status == 200


def test_upstream_close_reaches_the_client(proxied_registry: LatencyProxy) -> None:
    """When the registry closes after a Connection: close answer, the client reads the end of stream."""
    with socket.create_connection(("127.0.0.1", proxied_registry.port), TIMEOUT_S) as client:
        client.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        for _ in range(1000):  # bounded: the answer is a few hundred bytes
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
        else:
            pytest.fail("no end of stream after the registry closed")
    assert received.startswith(b"HTTP/1.1 200 ")


def test_client_half_close_reaches_upstream_and_answers_still_flow(
    bare_upstream: socket.socket,
) -> None:
    """A client's FIN reaches the upstream after its bytes; the upstream's answer and FIN still come back."""
    with LatencyProxy(bare_upstream.getsockname(), rtt_ms=10) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), TIMEOUT_S)
        try:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            upstream, _ = bare_upstream.accept()
            with upstream:
                upstream.settimeout(TIMEOUT_S)
                assert upstream.recv(100) == b"ping"
                assert upstream.recv(100) == b""
                upstream.sendall(b"pong")
                upstream.shutdown(socket.SHUT_WR)
                assert client.recv(100) == b"pong"
                assert client.recv(100) == b""
        finally:
            client.close()


def test_client_reset_reaches_upstream_as_a_reset(bare_upstream: socket.socket) -> None:
    """A client that vanishes with a reset makes the upstream's read fail with a reset too."""
    with LatencyProxy(bare_upstream.getsockname(), rtt_ms=10) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), TIMEOUT_S)
        client.sendall(b"x")
        upstream, _ = bare_upstream.accept()
        with upstream:
            upstream.settimeout(TIMEOUT_S)
            assert upstream.recv(100) == b"x"
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            with pytest.raises(ConnectionResetError):
                upstream.recv(100)


def test_refused_upstream_closes_the_client(bare_upstream: socket.socket) -> None:
    """When nothing listens upstream, the client's connection is reset instead of left hanging."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    with closed, LatencyProxy(closed.getsockname(), rtt_ms=10) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), TIMEOUT_S)
        with client:
            client.sendall(b"hello")
            with pytest.raises(ConnectionResetError):
                client.recv(100)  # a reset, as the refusing host sent one


def test_hundreds_of_concurrent_connections(proxied_registry: LatencyProxy) -> None:
    """300 connections open at once through the proxy each get their /v2/ answer."""
    conns = [
        http.client.HTTPConnection("127.0.0.1", proxied_registry.port, timeout=TIMEOUT_S)
        for _ in range(300)
    ]
    try:
        for conn in conns:
            conn.connect()
        for conn in conns:
            conn.request("GET", "/v2/")
        statuses = []
        for conn in conns:
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        for conn in conns:
            conn.close()
    assert statuses == [200] * 300
    assert proxied_registry.accepted == 300


def test_command_line_proxies_until_terminated(source_registry: RegistryProcess) -> None:
    """`python -m devtools.latency_proxy` prints where it listens, proxies, and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.latency_proxy",
            "--rtt-ms",
            "20",
            "--listen",
            "0",
            "--upstream",
            source_registry.host,
            "--max-seconds",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "round trip 20 ms" in line, line
        port = int(line.split()[2].rpartition(":")[2])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        try:
            status, elapsed = timed_get(conn, "/v2/")
        finally:
            conn.close()
        assert status == 200
        assert elapsed >= 0.020 - SLACK_S
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT_S)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("upstream", ["10.0.0.1:80", "example.com:443", "127.0.0.1", "::1:0"])
def test_only_loopback_upstreams_are_accepted(upstream: str) -> None:
    """An upstream outside loopback, or without a valid port, is refused before anything listens."""
    with pytest.raises(ValueError, match=r"loopback|HOST:PORT"):
        loopback_address(upstream)
