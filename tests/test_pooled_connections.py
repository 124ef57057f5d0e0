"""Answers and their pooled connections, against the real registry: an answer is closed on the thread
that owns it before its connection can serve another thread's request, and a body whose socket file is
closed under its reader ends in promoter's own error.

The flaky ``ValueError: I/O operation on closed file`` of a copy through the fault proxy came from a
HEAD answer given back to the pool unclosed: ``http.client`` keeps a connection's last answer until it
is closed, so the next request on that connection, on another thread, failed (``ResponseNotReady``,
retried) and urllib3 then closed the connection and with it that answer, while the thread holding the
answer closed it too; two ``close()`` calls at once on one ``http.client`` answer raise that
``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import urllib3
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.latency_proxy import LatencyProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import push

from promoter.errors import RegistryError, RegistryUnreachableError
from promoter.oci.digest import parse_digest
from promoter.remote.repository import MANIFEST_ACCEPT, Repository
from promoter.transport.body import iter_body, release
from promoter.transport.pools import TransportOptions
from promoter.transport.responses import error_from
from promoter.transport.retry import RetryPolicy
from promoter.transport.session import Transport

#: One connection per host and no retry: a request that meets a spoilt connection fails at once.
ONE_CONNECTION = TransportOptions(pool_size=1, retry=RetryPolicy(attempts=1))


def _close_socket_file(response: urllib3.BaseHTTPResponse) -> None:
    """Close the socket file under a response, as another thread's ``close()`` does when it lands
    between two reads of the owner."""
    response._fp.fp.close()  # type: ignore[attr-defined]  # the http.client answer's socket file


def test_a_head_answer_its_caller_still_holds_leaves_its_connection_clean(
    source_registry: RegistryProcess, repo: str
) -> None:
    """A HEAD answer still held by its caller was closed before its connection went back to the
    pool: the next request on that connection, from another thread, is answered at its first try."""
    digest = push(source_registry, repo, images.oci_image([images.layer(100, "held")], seed="held"))
    with Transport(ONE_CONNECTION) as transport:
        repository = Repository(transport.session(source_registry.host), repo)
        held = repository.session.request(
            "HEAD",
            f"/v2/{repo}/manifests/1.0",
            scopes=repository.scopes,
            headers={"Accept": MANIFEST_ACCEPT},
            what="check manifest",
        )
        with ThreadPoolExecutor(1, thread_name_prefix="other") as other:
            fetched = other.submit(repository.get_manifest, "1.0").result()
        assert str(fetched.digest) == digest
        assert held.status == 200
        assert held.headers["Docker-Content-Digest"] == digest
        assert held.data == b""  # the held answer reads no socket: it has none any more


def test_a_streamed_body_closed_under_its_reader_fails_as_a_lost_connection(
    source_registry: RegistryProcess, repo: str
) -> None:
    """A blob body whose socket file is closed between two reads ends in promoter's retryable
    RegistryUnreachableError, never a bare ValueError."""
    blob = images.layer(600_000, "closed-mid-read", gzip=False)
    push(source_registry, repo, images.oci_image([blob], seed="closed-mid-read"))
    with Transport() as transport:
        repository = Repository(transport.session(source_registry.host), repo)
        response = repository.open_blob(parse_digest(images.sha256_digest(blob)))
        try:
            chunks = iter_body(response, 64 * 1024, "pull blob")
            next(chunks)
            _close_socket_file(response)
            with pytest.raises(RegistryUnreachableError, match=r"connection to .* lost") as caught:
                for _ in chunks:
                    pass
        finally:
            release(response)
    assert caught.value.retryable


def test_an_error_body_closed_under_its_reader_still_gives_the_registry_error(
    source_registry: RegistryProcess, repo: str
) -> None:
    """A streamed GET answered 503 whose socket file is closed before its error body is read still
    becomes a RegistryError with that status (without the body's codes), and its connection is
    given back without a ValueError."""
    with FaultProxy(source_registry.url) as proxy, Transport() as transport:
        proxy.add_rule("GET", "/blobs/", status=503)
        session = transport.session(proxy.host)
        url = f"{session.base()}/v2/{repo}/blobs/sha256:{'0' * 64}"
        response = session.raw("GET", url, headers={}, body=None, what="pull blob", stream=True)
        assert response.status == 503
        _close_socket_file(response)
        error = error_from(response, "GET", url, "pull blob", RegistryError, preloaded=False)
    assert error.status == 503
    assert error.retryable
    assert error.details == ()


def test_a_batch_within_one_registry_over_a_far_link_keeps_every_connection(
    source_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
    cli: Callable[..., CliRun],
) -> None:
    """Source and destination in one registry: every worker of a batch asks that one host at once.
    The pool keeps a connection for each (urllib3 would otherwise discard the surplus after each
    burst, "Connection pool is full", and open it again: a round trip each over a far link)."""
    lines = []
    with LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=80) as proxy:
        host = f"127.0.0.1:{proxy.port}"
        base = images.layer(2 * 1024 * 1024, "pool-base", gzip=False)
        for n in range(20):
            own = [images.layer(size, f"pool-{n}-{size}", gzip=False) for size in (65536, 16384)]
            image = images.oci_image([base, *own], seed=f"pool-{n}")
            push(source_registry, f"{repo}/src{n}", image)
            lines.append(f"{host}/{repo}/src{n}:1.0 {host}/{repo}/dst{n}:1.0")
        batch = tmp_path / "batch.txt"
        batch.write_text("\n".join(lines) + "\n")
        result = cli("copy", "--batch", str(batch))
    assert result.code == 0, result.err
    assert "Connection pool is full" not in result.err
