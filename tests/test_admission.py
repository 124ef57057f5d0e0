"""Admission decisions without a server: the review wire format, what an object brings, deadlines,
the positive cache, single flight, the copy limit, promoter.yaml's admission: keys and the CLI's
refusals before serving."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from devtools.webhook import Certificates, deployment, pod, review
from tests.conftest import CliRun

from promoter.app.admission import (
    AdmissionController,
    AdmissionRequest,
    Verdict,
    matches,
    new_images,
    parse_review,
    presence_key,
    written_name,
)
from promoter.app.presence import PositiveCache, Promotions, SingleFlight
from promoter.app.runtime import Runtime
from promoter.config.load import load_config
from promoter.config.values import AdmissionMode, ExternalImages
from promoter.deadline import Deadline
from promoter.errors import AdmissionReviewError, ConfigError, DeadlineExceededError
from promoter.reference import parse_reference, registry_identity
from promoter.webhook.server import listening_socket, parse_listen, review_deadline


def parsed(obj: dict[str, Any], **kwargs: Any) -> AdmissionRequest:
    return parse_review(json.dumps(review(obj, **kwargs)).encode())


def test_parse_review_reads_what_a_decision_needs() -> None:
    """uid, kind, operation, namespace, name, dry run and both objects come from the request; a
    Pod not yet named is shown by its generateName."""
    obj = pod("", "nginx:1")
    obj["metadata"] = {"generateName": "web-7d4b9-", "namespace": "shop"}
    request = parsed(obj, uid="u-1", dry_run=True)
    assert request.uid == "u-1"
    assert (request.kind, request.operation, request.namespace) == ("Pod", "CREATE", "shop")
    assert request.name == "web-7d4b9-*"
    assert request.dry_run is True
    assert request.subject == "Pod shop/web-7d4b9-*"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "the body is not JSON"),
        (b'"text"', "not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}', "got kind Pod apiVersion"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": 1}',
            "no request",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}',
            "no uid",
        ),
    ],
)
def test_parse_review_refuses_what_is_not_a_v1_review_in_one_line(
    body: bytes, message: str
) -> None:
    """Each refusal is one line saying what is wrong."""
    with pytest.raises(AdmissionReviewError, match=message) as caught:
        parse_review(body)
    assert "\n" not in str(caught.value)


def request_with(**fields: Any) -> bytes:
    """A Pod CREATE review whose request has ``fields`` replaced (None removes one)."""
    document = review(pod("p", "nginx:1"))
    for key, value in fields.items():
        if value is None:
            document["request"].pop(key, None)
        else:
            document["request"][key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"operation": "create"}, "request.operation is 'create'"),
        ({"operation": None}, "request.operation is None"),
        ({"object": ["x"]}, "request.object is not an object"),
        ({"object": None}, "a CREATE request has no object"),
        ({"oldObject": "x"}, "request.oldObject is not an object"),
        ({"kind": {"group": ""}}, "request.kind is not a GroupVersionKind"),
        ({"dryRun": "true"}, "request.dryRun is 'true', not true or false"),
        ({"uid": "u" * 200}, "uid is longer than 128"),
    ],
)
def test_parse_review_refuses_malformed_fields(fields: dict[str, Any], message: str) -> None:
    """Fields of the wrong type or value are a 400, never read as "no image" and allowed; a dryRun
    that is not a boolean is never taken for a real request."""
    with pytest.raises(AdmissionReviewError, match=re.escape(message)):
        parse_review(request_with(**fields))


def test_a_hostile_kind_is_shown_escaped_in_one_line() -> None:
    """Control characters of a request are escaped, never echoed raw."""
    body = json.dumps({"apiVersion": "x\n\x1b[31m", "kind": "AdmissionReview"}).encode()
    with pytest.raises(AdmissionReviewError) as caught:
        parse_review(body)
    assert "\x1b" not in str(caught.value)
    assert "\\n" in str(caught.value)


def test_new_images_of_an_update_are_those_the_old_object_lacked() -> None:
    """An UPDATE brings only new images; a CREATE every image once, in order; a DELETE and a
    status update none."""
    old = deployment("web", "r/a:1", "r/b:1")
    new = deployment("web", "r/a:1", "r/b:2", "r/b:2")
    found = new_images(parsed(new, operation="UPDATE", old=old))
    assert isinstance(found, list)
    assert [f.image for f in found] == ["r/b:2"]
    created = new_images(parsed(new))
    assert isinstance(created, list)
    assert [f.image for f in created] == ["r/a:1", "r/b:2"]
    assert new_images(parsed(new, operation="DELETE")) == "DELETE brings no image"
    assert new_images(parsed(new, operation="UPDATE", sub_resource="status")) == (
        "the status subresource brings no image"
    )


def test_presence_key_asks_for_the_digest_when_there_is_one() -> None:
    """tag@digest is looked up by digest, which is what the kubelet pulls."""
    digest = "sha256:" + "a" * 64
    assert presence_key(parse_reference(f"r.io/a/b:1@{digest}")) == f"r.io/a/b@{digest}"
    assert presence_key(parse_reference("r.io/a/b:1")) == "r.io/a/b:1"


def test_patterns_are_shell_style_over_registry_and_repository() -> None:
    """``*`` crosses ``/``; matching is case-sensitive as references are; the name as written is
    matched too."""
    assert matches(["registry.k8s.io/*"], "registry.k8s.io/sig/pause")
    assert not matches(["registry.k8s.io/*"], "docker.io/library/nginx")
    assert matches(["team/*"], "team/app/api")
    assert not matches([], "anything")
    assert matches(["nginx"], "docker.io/library/nginx", written_name("nginx:1.27"))
    assert written_name("r.io:5000/a/b:1@sha256:" + "a" * 64) == "r.io:5000/a/b"
    assert registry_identity("r.io:443") == "r.io"
    assert registry_identity("r.io:5000") == "r.io:5000"


def controller(tmp_path: Path, admission: str = "{}") -> AdmissionController:
    """A controller for production of config_text, whose registries are never asked."""
    path = tmp_path / "promoter.yaml"
    path.write_text(
        config_text(admission).replace("production:\n", "production:\n    allowImagesFrom: []\n")
    )
    return AdmissionController(Runtime(), load_config(path), "production")


def decide(controller: AdmissionController, *images: str) -> Verdict:
    """The verdict on a Pod of ``images`` that needs no registry request."""
    decision = controller.review(parsed(pod("p", *images)), Deadline.after(5), cached_only=True)
    assert decision is not None
    return decision.verdict


@pytest.mark.parametrize("port", [":443", ":0443", ":00443"])
def test_a_registry_spelled_with_its_https_port_is_the_same_registry(
    tmp_path: Path, port: str
) -> None:
    """``host:443`` (however the port is written) is the host: dev's registry with it is still
    dev's, denied even when external images are allowed."""
    verdict = decide(controller(tmp_path, "{external: allow}"), f"dev.example.com{port}/shop/web:1")
    assert verdict.allowed is False
    assert "is in dev's registry" in verdict.message
    assert registry_identity("r.io:05000") == "r.io:5000"
    assert registry_identity("[::1]:0443") == "[::1]"


def test_the_object_is_read_as_the_kind_the_api_server_admits(tmp_path: Path) -> None:
    """An object without ``kind`` (or with another) is read as request.kind: a Pod's images are
    checked, not passed over as "no image"."""
    document = review(pod("p", "dev.example.com/shop/web:1"))
    del document["request"]["object"]["kind"]
    request = parse_review(json.dumps(document).encode())
    decision = controller(tmp_path).review(request, Deadline.after(5), cached_only=True)
    assert decision is not None
    assert decision.verdict.allowed is False


def test_allow_external_matches_the_name_as_written_and_a_denial_names_the_pattern(
    tmp_path: Path,
) -> None:
    """``nginx`` in allowExternal allows ``nginx:1.27``; a denied external image names the
    pattern that would allow it."""
    allowing = controller(tmp_path, "{external: deny, allowExternal: [nginx, docker.io/redis]}")
    for image in ("nginx:1.27", "docker.io/library/nginx:1.27", "redis:7", "library/redis:7"):
        assert decide(allowing, image).allowed is True, image
    verdict = decide(allowing, "busybox:1.36")
    assert "add 'docker.io/library/busybox' (or 'docker.io/*') to admission.allowExternal" in (
        verdict.message
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", 8.0),
        (b"timeout=10s", 8.0),
        (b"timeout=5s", 4.5),
        (b"timeout=500ms", 0.25),
        (b"timeout=x", 8.0),
    ],
)
def test_a_review_deadline_leaves_room_before_the_api_servers_timeout(
    query: bytes, expected: float
) -> None:
    """The deadline is the setting, or the API server's timeout less a margin when that is less."""
    assert review_deadline(8.0, query).seconds == pytest.approx(expected)


def test_verdict_answers_are_admission_reviews_with_one_line_messages() -> None:
    """A denial carries code 403 and a one-line message; warnings are cut to what the API server
    keeps."""
    answer = Verdict(False, "bad\nimage", ("w" * 1000,)).answer("uid-9")
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "uid-9"
    assert response["allowed"] is False
    assert response["status"] == {"code": 403, "reason": "Forbidden", "message": "bad\\nimage"}
    assert len(response["warnings"][0]) < 300
    assert Verdict(True).answer("u")["response"] == {"uid": "u", "allowed": True}


def test_the_positive_cache_forgets_after_its_ttl_and_keeps_a_bounded_size() -> None:
    """An entry is trusted for ttl seconds of the clock; past capacity the oldest goes first; a
    ttl of 0 keeps nothing."""
    now = [0.0]
    cache = PositiveCache(10, capacity=2, clock=lambda: now[0])
    cache.add("a")
    now[0] = 9.9
    assert "a" in cache
    now[0] = 10.0
    assert "a" not in cache
    for key in ("b", "c", "d"):
        cache.add(key)
    assert "b" not in cache
    assert "c" in cache
    assert "d" in cache
    off = PositiveCache(0)
    off.add("x")
    assert "x" not in off


def test_single_flight_runs_one_lookup_for_concurrent_callers() -> None:
    """Callers arriving while a key's lookup runs share its answer; one lookup in all."""
    flight: SingleFlight[str] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    calls = []

    def work() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "found"

    answers: list[Any] = []
    first = threading.Thread(
        target=lambda: answers.append(flight.run("k", work, Deadline.after(10)))
    )
    first.start()
    assert started.wait(10)
    waiters = [
        threading.Thread(target=lambda: answers.append(flight.run("k", work, Deadline.after(10))))
        for _ in range(5)
    ]
    for waiter in waiters:
        waiter.start()
    release.set()
    for thread in (first, *waiters):
        thread.join(10)
    assert len(calls) == 1
    assert sorted(a.shared for a in answers) == [False] + [True] * 5
    assert {a.value for a in answers} == {"found"}


def test_single_flight_waiters_give_up_at_their_deadline() -> None:
    """A waiter whose deadline passes while another caller's lookup hangs gets a deadline error."""
    flight: SingleFlight[str] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def stuck() -> str:
        started.set()
        release.wait(10)
        return "late"

    owner = threading.Thread(target=lambda: flight.run("k", stuck, Deadline.after(10)))
    owner.start()
    assert started.wait(10)
    with pytest.raises(DeadlineExceededError):
        flight.run("k", stuck, Deadline.after(0.05))
    release.set()
    owner.join(10)


def test_promotions_run_once_per_key_and_refuse_past_their_limit() -> None:
    """A second start of a running key joins it; a new key past the limit is refused; after
    close nothing starts."""
    release = threading.Event()
    promotions: Promotions[str] = Promotions(limit=1)
    started = promotions.start("a", lambda: release.wait(10) and "done")
    assert started is not None
    future, mine = started
    again = promotions.start("a", lambda: "other")
    assert again is not None
    assert again[0] is future
    assert mine is True
    assert again[1] is False
    assert promotions.start("b", lambda: "b") is None
    release.set()
    assert future.result(10) == "done"
    assert promotions.close(1) == 0
    assert promotions.start("c", lambda: "c") is None


def config_text(admission: str, *, source: bool = True) -> str:
    source_line = "    promotesFrom: dev\n" if source else ""
    return (
        "environments:\n"
        "  dev: {overlay: d, registry: dev.example.com}\n"
        "  production:\n"
        "    overlay: p\n"
        "    registry: prod.example.com\n"
        f"{source_line}"
        f"    admission: {admission}\n"
    )


def test_patterns_with_a_tag_digest_or_scheme_are_warned_about(tmp_path: Path) -> None:
    """allowExternal patterns match REGISTRY/REPOSITORY: one with a tag, a digest or a URL scheme
    allows nothing, and loading says so; ports and plain patterns are fine."""
    path = tmp_path / "promoter.yaml"
    patterns = "['busybox:1.36', 'nginx@sha256:abc', 'https://quay.io/*', 'r.io:5000/a', 'nginx']"
    path.write_text(config_text(f"{{external: deny, allowExternal: {patterns}}}"))
    warnings = [w for w in load_config(path).warnings if "allowExternal" in w]
    assert len(warnings) == 3
    assert "'busybox:1.36' names a tag, a digest or a URL scheme" in warnings[0]


def test_admission_settings_load_with_their_defaults(tmp_path: Path) -> None:
    """Given keys are read; the others default to guard, external allow, 60 s cache, 8 s."""
    path = tmp_path / "promoter.yaml"
    path.write_text(config_text("{mode: promote, external: warn, allowExternal: ['a/*']}"))
    settings = load_config(path).environments["production"].admission
    assert settings.mode is AdmissionMode.PROMOTE
    assert settings.external is ExternalImages.WARN
    assert settings.allow_external == ("a/*",)
    assert (settings.cache_seconds, settings.deadline_seconds) == (60.0, 8.0)
    assert load_config(path).environments["dev"].admission.mode is AdmissionMode.GUARD


@pytest.mark.parametrize(
    ("admission", "source", "message"),
    [
        ("{mode: promote}", False, "admission.mode: promote copies missing images"),
        (
            "{deadlineSeconds: 31}",
            True,
            "deadlineSeconds: must be above 0 and at most 29 seconds, got 31",
        ),
        ("{cacheSeconds: -1}", True, "cacheSeconds: -1 is not between 0"),
        ("{allowExternal: ['']}", True, "allowExternal: '' is not a pattern"),
        ("{mode: mutate}", True, "mode"),
        ("{external: block}", True, "external"),
        ("{cache: 5}", True, "cache"),
        (
            "{deadlineSeconds: 0}",
            True,
            "deadlineSeconds: must be above 0 and at most 29 seconds, got 0",
        ),
    ],
)
def test_bad_admission_settings_are_one_line_naming_the_key(
    tmp_path: Path, admission: str, source: bool, message: str
) -> None:
    """Each mistake names the key and what to do."""
    path = tmp_path / "promoter.yaml"
    path.write_text(config_text(admission, source=source))
    with pytest.raises(ConfigError, match="admission") as caught:
        load_config(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parse_listen_takes_host_port_ipv6_and_bare_port() -> None:
    """Addresses as Kubernetes users write them; anything else is one line."""
    assert parse_listen("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
    assert parse_listen(":8443") == ("", 8443)
    with pytest.raises(Exception, match="is not HOST:PORT"):
        parse_listen("8443")
    with pytest.raises(Exception, match="is not HOST:PORT"):
        parse_listen("host:99999")


def test_webhook_serve_refuses_bad_input_before_serving(
    cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """An unknown environment, a bad address and a key that does not match its certificate are
    exit 2 with one line, and nothing is served."""
    path = tmp_path / "promoter.yaml"
    path.write_text(config_text("{}"))
    certificates = Certificates(tmp_path / "tls")
    tls = ["--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key)]
    base = [
        "webhook",
        "serve",
        "--config",
        str(path),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
    ]
    unknown = cli(*base, "--environment", "qa", *tls)
    assert unknown.code == 2
    assert "unknown environment 'qa'" in unknown.err
    bad_address = cli(*base[:-4], "--listen", "nowhere", "--environment", "production", *tls)
    assert bad_address.code == 2
    assert "--listen: 'nowhere' is not HOST:PORT" in bad_address.err
    other = Certificates(tmp_path / "other")
    mismatched = cli(
        *base,
        "--environment",
        "production",
        "--tls-cert",
        str(certificates.cert),
        "--tls-key",
        str(other.key),
    )
    assert mismatched.code == 2
    assert "TLS certificate" in mismatched.err
    timeout = cli(*base, "--environment", "production", *tls, "--timeout", "5")
    assert timeout.code == 2
    assert "--timeout and -o do not apply" in timeout.err
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        taken = cli(
            *base[:-2], "--metrics-listen", f"127.0.0.1:{port}", "--environment", "production", *tls
        )
    assert taken.code == 2
    assert f"--metrics-listen: cannot listen on 127.0.0.1:{port}" in taken.err
    assert "Traceback" not in unknown.err + bad_address.err + mismatched.err + taken.err


def test_the_listening_socket_says_tcp_so_that_answers_are_not_held_back() -> None:
    """asyncio turns Nagle's algorithm off only on sockets whose protocol is IPPROTO_TCP; with 0,
    each small answer would wait for the client's delayed ACK (40 ms) under load."""
    listening = parse_listen("127.0.0.1:0")
    with listening_socket(*listening) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname()[:2], timeout=10):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
