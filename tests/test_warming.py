"""Connection warming (issue 14): while a run waits for something else (an overlay's render), the
connections its first requests will use are opened; counted in the real registry's access log."""

from __future__ import annotations

import threading

from bench.farlink import AccessLog
from devtools import images
from devtools.latency_proxy import LatencyProxy
from devtools.registry import RegistryProcess
from tests.registry_checks import push

from promoter.reference import parse_reference
from promoter.remote.repository import Repository
from promoter.transport.pools import TransportOptions
from promoter.transport.session import Transport

WAIT_S = 20.0


def test_warmed_connections_serve_the_first_lookups(
    source_registry: RegistryProcess, repo: str
) -> None:
    """warm() opens the connections (one ping each) and the lookups that follow, four at once,
    open none of their own: every one comes on a warmed connection. Through a 20 ms latency proxy,
    as over a far link, so that requests sent together are in flight together."""
    image = images.oci_image([images.layer(100, "warm")], seed="warm")
    push(source_registry, repo, image)
    log = AccessLog(source_registry)
    with (
        LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=20) as proxy,
        Transport(TransportOptions(pool_size=8)) as transport,
    ):
        host = f"127.0.0.1:{proxy.port}"
        log.mark()
        assert transport.warm([host], 4).done.wait(WAIT_S)
        warmed = log.since_mark()
        together = threading.Barrier(4, timeout=WAIT_S)
        repository = Repository.of(transport, parse_reference(f"{host}/{repo}:1.0"))

        def look() -> None:
            together.wait()
            assert repository.head_manifest("1.0") is not None

        threads = [threading.Thread(target=look) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        looked = log.since_mark()
    assert warmed.requests["GET ping"] == 6  # the scheme's probe, one timed, one per connection
    assert warmed.connections == 4
    assert looked.requests["HEAD manifest"] == 4
    assert looked.clients <= warmed.clients


def test_warming_an_unreachable_registry_ends_quietly() -> None:
    """Nothing listens: the pings fail, the event is set, nothing is raised (the run's own
    requests meet the failure and report it)."""
    with Transport() as transport:
        assert transport.warm(["127.0.0.1:9"], 3).done.wait(WAIT_S)


def test_no_connection_is_opened_ahead_where_a_round_trip_costs_nothing(
    source_registry: RegistryProcess,
) -> None:
    """On loopback a round trip takes well under WARM_MIN_ROUND_TRIP: warm() learns the
    registry's scheme, times one more ping, and opens nothing more."""
    log = AccessLog(source_registry)
    with Transport() as transport:
        log.mark()
        assert transport.warm([source_registry.host], 8).done.wait(WAIT_S)
        warmed = log.since_mark()
    assert warmed.requests["GET ping"] == 2
    assert warmed.connections == 1


def test_warming_stopped_as_the_lookups_begin_starts_no_further_ping(
    source_registry: RegistryProcess,
) -> None:
    """The render was quick: stop() comes while the scheme is still being learned (two round
    trips over the 20 ms link), and no connection is opened ahead after it (the timed ping goes
    on the probe's own connection)."""
    log = AccessLog(source_registry)
    with (
        LatencyProxy(("127.0.0.1", source_registry.port), rtt_ms=20) as proxy,
        Transport() as transport,
    ):
        log.mark()
        warming = transport.warm([f"127.0.0.1:{proxy.port}"], 8)
        warming.stop()
        assert warming.done.wait(WAIT_S)
        warmed = log.since_mark()
    assert warmed.requests["GET ping"] == 2  # the scheme's probe and the timed ping
    assert warmed.connections == 1
