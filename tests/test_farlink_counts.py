"""The far-link benchmark's request counter (bench/farlink.py) against the real Distribution registry.

bench/farlink.py reports where promoter's round trips go from the registries' own access logs; these
tests hold that instrument to exact counts of requests and connections made through the latency
proxy, and to the kinds it sorts requests into.
"""

from __future__ import annotations

import http.client
from collections import Counter

import pytest
from bench.farlink import AccessLog, request_kind
from devtools.latency_proxy import LatencyProxy
from devtools.registry import RegistryProcess

TIMEOUT_S = 10.0


def test_access_log_counts_each_request_and_connection_through_the_proxy(
    source_registry: RegistryProcess, repo: str
) -> None:
    """Four requests on one kept-alive connection and one on another: 5 requests (404s apart), 2 connections."""
    log = AccessLog(source_registry)
    with LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=5) as proxy:
        log.mark()
        first = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT_S)
        second = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT_S)
        try:
            for method, path in (
                ("GET", "/v2/"),
                ("HEAD", f"/v2/{repo}/manifests/absent"),
                ("GET", f"/v2/{repo}/blobs/sha256:{'0' * 64}"),
                ("GET", f"/v2/{repo}/referrers/sha256:{'0' * 64}"),
            ):
                first.request(method, path)
                first.getresponse().read()
            second.request("GET", "/v2/")
            second.getresponse().read()
        finally:
            first.close()
            second.close()
        traffic = log.since_mark()
    assert traffic.requests == Counter(
        {"GET ping": 2, "HEAD manifest 404": 1, "GET blob 404": 1, "GET referrers 404": 1}
    )
    assert traffic.connections == 2
    assert traffic.errors == 3  # the absent manifest, blob and referrers list


def test_access_log_window_excludes_requests_before_the_mark(
    source_registry: RegistryProcess,
) -> None:
    """Requests answered before mark() are not counted; the next window starts empty."""
    log = AccessLog(source_registry)
    conn = http.client.HTTPConnection("127.0.0.1", source_registry.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/v2/")
        conn.getresponse().read()
        log.mark()
        assert log.since_mark().total == 0
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "uri", "kind"),
    [
        ("GET", "/v2/", "GET ping"),
        ("HEAD", "/v2/a/b/manifests/1.0", "HEAD manifest"),
        ("GET", "/v2/a/blobs/sha256:ab", "GET blob"),
        ("POST", "/v2/a/blobs/uploads/?mount=sha256:ab&from=b", "POST upload"),
        ("PATCH", "/v2/a/blobs/uploads/5e1f?_state=x", "PATCH upload"),
        ("GET", "/v2/a/tags/list?n=100", "GET tags"),
        ("GET", "/v2/a/referrers/sha256:ab", "GET referrers"),
        ("GET", "/v2/_catalog", "GET other"),
    ],
)
def test_request_kinds(method: str, uri: str, kind: str) -> None:
    """Registry requests are sorted by what they touch: ping, manifest, blob, upload, tags, referrers."""
    assert request_kind(method, uri) == kind
