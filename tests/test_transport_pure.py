"""Pure parts of the transport: challenge parsing, Retry-After, backoff, Link pagination, the
watchdog's rules (on a local socket pair)."""

from __future__ import annotations

import email.utils
import socket
import time
import types

import pytest

from promoter.errors import RegistryError, RegistryUnreachableError
from promoter.remote.repository import _next_link
from promoter.transport.challenge import parse_challenge, scope_for
from promoter.transport.pools import _WatchedHTTPConnection
from promoter.transport.responses import origin as _origin
from promoter.transport.responses import redact
from promoter.transport.retry import RetryPolicy, is_retryable, parse_retry_after
from promoter.transport.watch import Broken, Exchange, Pace, sending_on_this_thread


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            (
                'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
                'scope="repository:a/b:pull,push"'
            ),
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:a/b:pull,push",
            },
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("basic", "basic", {}),
        (
            'Bearer realm="x\\"y", error="insufficient_scope"',
            "bearer",
            {"realm": 'x"y', "error": "insufficient_scope"},
        ),
        ('Basic realm="r", Bearer realm="https://t/token"', "bearer", {"realm": "https://t/token"}),
        (
            "Bearer realm=https://t/token,service=reg",
            "bearer",
            {"realm": "https://t/token", "service": "reg"},
        ),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    """WWW-Authenticate parses to scheme and unquoted params; Bearer is preferred when several."""
    challenge = parse_challenge(header)
    assert challenge is not None
    assert challenge.scheme == scheme
    assert challenge.params == params


def test_challenge_scopes_and_garbage() -> None:
    """Space-separated scopes split; an empty header gives None."""
    challenge = parse_challenge('Bearer realm="r",scope="repository:a:pull repository:b:pull"')
    assert challenge is not None
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull")
    assert parse_challenge("") is None
    assert scope_for("a/b", "pull", "push") == "repository:a/b:pull,push"


def test_retry_after_seconds_and_dates() -> None:
    """Retry-After is read as delta-seconds or as an HTTP date; garbage is ignored."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after(future)
    assert seconds is not None
    assert 25 <= seconds <= 31


def _error(status: int, retry_after: float | None = None) -> RegistryError:
    return RegistryError(
        "GET", "http://r/v2/", status, retryable=status in (429, 503), retry_after=retry_after
    )


def test_retry_policy_runs_until_success_and_honours_retry_after() -> None:
    """Retryable failures are retried with Retry-After honoured; the result is returned."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _error(429, retry_after=0)
        return "ok"

    assert RetryPolicy(attempts=5, base_delay=0.0).run(flaky) == "ok"
    assert len(calls) == 3


def test_retry_policy_is_bounded_and_skips_permanent_errors() -> None:
    """Attempts are bounded; a 404 or a DNS failure is not retried at all."""
    calls: list[int] = []

    def always(error: Exception) -> None:
        calls.append(1)
        raise error

    with pytest.raises(RegistryError) as exhausted:
        RetryPolicy(attempts=3, base_delay=0.0).run(lambda: always(_error(503)))
    assert len(calls) == 3
    assert not exhausted.value.retryable  # an outer retry will not start over
    calls.clear()
    with pytest.raises(RegistryError):
        RetryPolicy(attempts=3, base_delay=0.0).run(lambda: always(_error(429, retry_after=3600)))
    assert len(calls) == 1  # a wait longer than we honour fails at once
    calls.clear()
    with pytest.raises(RegistryError):
        RetryPolicy(attempts=3, base_delay=0.0).run(lambda: always(_error(404)))
    assert len(calls) == 1
    calls.clear()
    dns = RegistryUnreachableError("cannot resolve", retryable=False)
    with pytest.raises(RegistryUnreachableError):
        RetryPolicy(attempts=3, base_delay=0.0).run(lambda: always(dns))
    assert len(calls) == 1
    assert not is_retryable(ValueError())


def test_backoff_grows_and_is_capped() -> None:
    """Backoff doubles per attempt with jitter and stays under the cap; Retry-After is capped too."""
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, max_retry_after=10.0)
    assert 0.5 <= policy.delay(1, _error(503)) <= 1.0
    assert 2.0 <= policy.delay(3, _error(503)) <= 4.0
    assert 2.0 <= policy.delay(9, _error(503)) <= 4.0
    assert policy.delay(1, _error(429, retry_after=7)) == 7.0
    assert policy.delay(1, _error(429, retry_after=100)) is None


def test_next_link() -> None:
    """The rel="next" target of a Link header is followed; absent or other rels end paging."""
    assert _next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    assert _next_link(None) is None
    assert _next_link('</x>; rel="prev"') is None


def test_origin_compares_scheme_host_and_effective_port() -> None:
    """Credentials follow only the same scheme, host and port; default ports are normalised."""
    assert _origin("https://Reg.example.com/v2/") == _origin("https://reg.example.com:443/x")
    assert _origin("http://reg.example.com/v2/") != _origin("https://reg.example.com/v2/")
    assert _origin("https://reg.example.com:5000/") != _origin("https://reg.example.com/")


def test_a_late_cut_never_reaches_a_connection_now_serving_another_exchange() -> None:
    """urllib3 gives a connection back to its pool as soon as a body is read to its end; an exchange
    that is not finished yet must not cut it once another request has taken it."""
    ours, peer = socket.socketpair()
    with ours, peer:
        connection = types.SimpleNamespace(sock=ours)
        first = Exchange(Pace(answer_seconds=0.01), None)
        first.attach(connection)
        second = Exchange(Pace(answer_seconds=0.01), None)
        second.attach(connection)  # the pool handed the connection on
        assert first.check(time.monotonic() + 1) is None
        assert first.broken is Broken.NO_ANSWER
        ours.sendall(b"x")
        assert peer.recv(1) == b"x"  # still open: the cut did not reach it
        assert second.check(time.monotonic() + 1) is None
        assert second.broken is Broken.NO_ANSWER
        assert peer.recv(1) == b""  # its own exchange cut it


def test_nothing_is_sent_on_an_exchange_cut_before_it_sends() -> None:
    """An exchange cut while it connects (an interrupt) sends no request afterwards: the watched
    connection refuses to send for it."""
    exchange = Exchange(Pace(), None)
    exchange.cut(Broken.INTERRUPTED)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        connection = _WatchedHTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=5)
        with sending_on_this_thread(exchange), pytest.raises(ConnectionAbortedError):
            connection.request("PUT", "/v2/app/manifests/1.0", body=b"{}")
        assert connection.sock is None  # never even connected
        connection.close()


def test_redacted_urls_keep_no_credentials_query_or_fragment() -> None:
    """A redirect to ``http://user:pass@host/path?sig#frag`` is shown as ``http://***@host/path``:
    error messages name the URL, and a registry (or an attacker's redirect) chooses it."""
    shown = redact("http://user:PASSINURL@127.0.0.1:18600/s3/blob?X-Amz-Signature=s#frag-SECRET")
    assert shown == "http://***@127.0.0.1:18600/s3/blob"
    assert (
        redact("https://r.example/v2/a/blobs/sha256:0") == "https://r.example/v2/a/blobs/sha256:0"
    )


def test_a_throttle_halves_on_429_grows_back_and_lifts_at_its_ceiling() -> None:
    """No limit until a 429; then half of what was in flight; +1 per limit's worth of answers;
    lifted at the ceiling."""
    from promoter.transport.throttle import CEILING, Throttle  # noqa: PLC0415

    throttle = Throttle("registry.example")
    assert throttle.limit is None
    slots = [throttle.slot(None, "request") for _ in range(8)]
    for slot in slots:
        slot.__enter__()
    throttle.too_many()
    assert throttle.limit == 4
    throttle.too_many()
    assert throttle.limit == 2
    for slot in slots:
        slot.__exit__(None, None, None)
    for _ in range(3):
        throttle.answered()
    assert throttle.limit == 3  # 2 + 1/2 + 1/2.5 + 1/2.9
    for _ in range(CEILING * CEILING):
        throttle.answered()
        if throttle.limit is None:
            break
    assert throttle.limit is None


def test_a_request_waits_for_a_slot_no_longer_than_its_deadline() -> None:
    """At the limit, a request waits; past its deadline it fails naming the registry's 429s."""
    from promoter.deadline import Deadline  # noqa: PLC0415
    from promoter.errors import DeadlineExceededError  # noqa: PLC0415
    from promoter.transport.throttle import Throttle  # noqa: PLC0415

    throttle = Throttle("registry.example")
    held = throttle.slot(None, "first")
    held.__enter__()
    throttle.too_many()
    assert throttle.limit == 1
    with (
        pytest.raises(DeadlineExceededError, match="answered 429 Too Many Requests"),
        throttle.slot(Deadline.after(0.2), "second"),
    ):
        pass
    held.__exit__(None, None, None)
    with throttle.slot(Deadline.after(1), "third"):
        pass


def test_a_clean_up_does_not_wait_for_a_throttled_slot() -> None:
    """Cancelling an upload session (a clean-up) goes out at once even with the registry's limit
    reached: waiting behind throttled requests, its few seconds would run out and the session
    would stay open."""
    from promoter.deadline import Deadline  # noqa: PLC0415
    from promoter.transport.throttle import Throttle  # noqa: PLC0415
    from promoter.transport.watch import cleaning_up  # noqa: PLC0415

    throttle = Throttle("registry.example")
    held = throttle.slot(None, "first")
    held.__enter__()
    throttle.too_many()
    assert throttle.limit == 1
    started = time.monotonic()
    with cleaning_up(), throttle.slot(Deadline.after(5), "cancel upload"):
        waited = time.monotonic() - started
    held.__exit__(None, None, None)
    assert waited < 1.0  # no wait for the held slot (it is never given back meanwhile)
