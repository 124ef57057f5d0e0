"""The admission webhook as a real HTTPS server (``promoter webhook serve`` in a child process) answering
AdmissionReview v1 bodies shaped as the API server sends them, against real registries."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from devtools import images, signing
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from devtools.webhook import Certificates, WebhookProcess, deployment, pod, review
from tests.conftest import login
from tests.registry_checks import manifest_digest, push, skopeo_raw_digest

ENV = "production"


def seed(registry: RegistryProcess, repository: str, tag: str, content: str = "") -> str:
    """Push a small image; its digest."""
    key = content or f"{repository}:{tag}"
    return push(registry, repository, images.oci_image([images.layer(7, key)], seed=key), tag=tag)


def write_config(
    folder: Path, dev: str, production: str, admission: str = "", extra_env: str = ""
) -> Path:
    """promoter.yaml with dev -> production, production's ``admission:`` given as flow YAML."""
    for name in ("dev", "production"):
        (folder / "overlays" / name).mkdir(parents=True, exist_ok=True)
    path = folder / "promoter.yaml"
    path.write_text(
        "environments:\n"
        f'  dev: {{overlay: overlays/dev, registry: "{dev}"}}\n'
        "  production:\n"
        "    overlay: overlays/production\n"
        f'    registry: "{production}"\n'
        "    promotesFrom: dev\n"
        + (f"    admission: {admission}\n" if admission else "")
        + extra_env
    )
    return path


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[Callable[..., WebhookProcess]]:
    """Start webhooks for production (stopped at the end of the test)."""
    started: list[WebhookProcess] = []

    def start(
        config: Path, *args: str, env: dict[str, str] | None = None, ready: bool = True
    ) -> WebhookProcess:
        certificates = Certificates(tmp_path / f"tls{len(started)}")
        webhook = WebhookProcess(config, ENV, certificates, extra_args=args, env=env)
        started.append(webhook)
        return webhook.start(wait_ready=ready)

    yield start
    for webhook in started:
        webhook.stop()


def module_webhook(
    factory: pytest.TempPathFactory,
    source: RegistryProcess,
    destination: RegistryProcess,
    admission: str,
    *args: str,
) -> Iterator[WebhookProcess]:
    """A webhook for production shared by a module's tests, with ``admission:`` and ``args``."""
    folder = factory.mktemp("webhook")
    config = write_config(folder, source.host, destination.host, admission)
    with WebhookProcess(config, ENV, Certificates(folder / "tls"), extra_args=args) as webhook:
        yield webhook


@pytest.fixture(scope="module")
def guard(
    tmp_path_factory: pytest.TempPathFactory,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
) -> Iterator[WebhookProcess]:
    """One guard-mode webhook for production, external images denied but registry.k8s.io."""
    admission = "{external: deny, allowExternal: ['registry.k8s.io/*'], cacheSeconds: 60}"
    yield from module_webhook(tmp_path_factory, source_registry, dest_registry, admission)


def denied(response: dict[str, Any]) -> str:
    """The message of a denial (fails when the review was allowed)."""
    assert response["allowed"] is False, response
    assert response["status"]["code"] == 403
    message: str = response["status"]["message"]
    assert "\n" not in message
    return message


# -- guard ------------------------------------------------------------------------------------------


def test_guard_allows_a_promoted_tag_and_denies_an_unpromoted_one_naming_what_to_do(
    guard: WebhookProcess,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """A Pod whose image is in production's registry is allowed; one whose tag is not is denied
    with the image, the container and what to do: a sync when dev has it (it may have been
    promoted and deleted since), a build when dev lacks it too."""
    seed(dest_registry, repo, "1.0")
    seed(source_registry, repo, "2.0")
    image = f"{dest_registry.host}/{repo}"
    assert guard.review(review(pod("ok", f"{image}:1.0")))["allowed"] is True
    message = denied(guard.review(review(pod("bad", f"{image}:2.0"))))
    assert f"image {image}:2.0 (container c0) is not in production's registry" in message
    assert "dev has it: promoter sync production copies it" in message
    assert f"otherwise set {repo} to that version in production's overlay in Git" in message
    message = denied(guard.review(review(pod("bad", f"{image}:3.0"))))
    assert f"nor in dev's registry {source_registry.host}: check the tag" in message


def test_guard_checks_digests_and_tag_at_digest_by_the_digest_the_kubelet_pulls(
    guard: WebhookProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """By digest and by tag@digest the digest must be there; a tag@digest whose tag exists but
    whose digest does not is denied."""
    digest = seed(dest_registry, repo, "1.0")
    other = "sha256:" + "0" * 64
    image = f"{dest_registry.host}/{repo}"
    assert guard.review(review(pod("d", f"{image}@{digest}")))["allowed"] is True
    assert guard.review(review(pod("td", f"{image}:1.0@{digest}")))["allowed"] is True
    assert "is not in production's registry" in denied(
        guard.review(review(pod("x", f"{image}@{other}")))
    )
    message = denied(guard.review(review(pod("tx", f"{image}:1.0@{other}"))))
    assert f"{image}:1.0@{other}" in message


def test_guard_denies_the_source_environments_registry_and_other_registries_by_setting(
    guard: WebhookProcess,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """An image of dev's registry is denied even though it exists there (production must not pull
    from dev); with external: deny an image of another registry is denied unless a pattern of
    allowExternal allows it."""
    seed(source_registry, repo, "1.0")
    message = denied(guard.review(review(pod("dev", f"{source_registry.host}/{repo}:1.0"))))
    assert "is in dev's registry" in message
    assert f"use {dest_registry.host}/{repo}:1.0, which promoter sync production copies" in message
    assert "admission.external is deny" in denied(guard.review(review(pod("hub", "nginx:1.27"))))
    allowed = guard.review(review(pod("k8s", "registry.k8s.io/pause:3.10")))
    assert allowed["allowed"] is True
    assert "warnings" not in allowed


def test_guard_checks_init_containers_and_every_pod_template_kind(
    guard: WebhookProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """Init containers, a Deployment, a CronJob and an unknown kind with a pod template (an Argo
    Rollout) are all checked: a bad image fails the apply, not a ReplicaSet later."""
    seed(dest_registry, repo, "1.0")
    good, bad = f"{dest_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:9.9"
    assert "container init0" in denied(guard.review(review(pod("p", good, init=[bad]))))
    denied(guard.review(review(deployment("web", bad))))
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": pod("n", bad)["spec"]}}},
        },
    }
    denied(guard.review(review(cron)))
    rollout = {**deployment("canary", bad), "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}
    denied(guard.review(review(rollout)))
    assert guard.review(review(deployment("web", good)))["allowed"] is True


def test_guard_checks_only_what_an_update_brings(
    guard: WebhookProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """A Deployment UPDATE that keeps a missing image (a label change) is allowed: it was admitted
    before; an UPDATE that changes the image to a missing one is denied."""
    seed(dest_registry, repo, "1.0")
    gone, good = f"{dest_registry.host}/{repo}:0.9", f"{dest_registry.host}/{repo}:1.0"
    old = deployment("web", gone)
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"team": "shop"}}}
    assert guard.review(review(relabelled, operation="UPDATE", old=old))["allowed"] is True
    changed = deployment("web", f"{dest_registry.host}/{repo}:2.0")
    denied(guard.review(review(changed, operation="UPDATE", old=deployment("web", good))))


def test_guard_checks_ephemeral_containers_added_to_a_running_pod(
    guard: WebhookProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """``kubectl debug`` updates the ephemeralcontainers subresource: its new image is checked."""
    seed(dest_registry, repo, "1.0")
    running = pod("api", f"{dest_registry.host}/{repo}:1.0")
    debugged = json.loads(json.dumps(running))
    debugged["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox:1.36"}]
    response = guard.review(
        review(debugged, operation="UPDATE", old=running, sub_resource="ephemeralcontainers")
    )
    assert "busybox:1.36 (ephemeral container debugger)" in denied(response)


def test_requests_without_images_are_allowed_without_asking_a_registry(
    guard: WebhookProcess,
) -> None:
    """A DELETE, a status update and a ConfigMap are allowed at once."""
    assert guard.review(review(pod("x", "nginx:1"), operation="DELETE"))["allowed"] is True
    status = review(pod("x", "nginx:1"), operation="UPDATE", sub_resource="status")
    assert guard.review(status)["allowed"] is True
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    assert guard.review(review(config_map))["allowed"] is True


def test_a_positive_answer_is_cached_and_counted(
    guard: WebhookProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """The second review of a present image is answered from the cache: the cache-hit counter
    grows; a denial is logged as one JSON line with its uid, images and reason."""
    seed(dest_registry, repo, "1.0")
    image = f"{dest_registry.host}/{repo}:1.0"
    before = metric(guard, "promoter_admission_cache_hits_total")
    for name in ("first", "second"):
        assert guard.review(review(pod(name, image), uid=f"{repo}-{name}"))["allowed"] is True
    assert metric(guard, "promoter_admission_cache_hits_total") == before + 1
    missing = f"{dest_registry.host}/{repo}:0.1"
    denied(guard.review(review(pod("third", image, missing), uid=f"{repo}-third")))
    line = guard.wait_for_log(lambda e: e.get("uid") == f"{repo}-third", 10)
    assert line["event"] == "review"
    assert line["allowed"] is False
    assert line["images"] == [
        {"image": image, "state": "present", "cached": True},
        {"image": missing, "state": "missing", "cached": False},
    ]
    assert "is not in production's registry" in line["reason"]


def metric(webhook: WebhookProcess, name: str) -> float:
    """A metric's value (0 when absent)."""
    for line in webhook.metrics().splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_missing_image_is_never_cached(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """An image denied as missing is admitted at once after it is promoted (no negative cache),
    and with cacheSeconds: 0 an image deleted since is denied at once."""
    config = write_config(tmp_path, source_registry.host, dest_registry.host, "{cacheSeconds: 0}")
    webhook = start_webhook(config)
    image = f"{dest_registry.host}/{repo}:1.0"
    denied(webhook.review(review(pod("a", image))))
    digest = seed(dest_registry, repo, "1.0")
    assert webhook.review(review(pod("a", image)))["allowed"] is True
    delete = http.client.HTTPConnection("127.0.0.1", dest_registry.port, timeout=10)
    try:
        delete.request("DELETE", f"/v2/{repo}/manifests/{digest}")
        status = delete.getresponse().status
    finally:
        delete.close()
    assert status == 202
    denied(webhook.review(review(pod("a", image))))


# -- bad requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}
            ).encode(),
            "expected kind AdmissionReview apiVersion admission.k8s.io/v1",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "has no request object",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": ""},
                }
            ).encode(),
            "has no uid",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not JSON"),
    ],
    ids=["not-json", "array", "v1beta1", "no-request", "no-uid", "deep-nesting"],
)
def test_malformed_requests_get_400_with_one_line_and_the_server_keeps_serving(
    guard: WebhookProcess, body: bytes, reason: str
) -> None:
    """Not JSON, wrong apiVersion or kind, no request or uid: HTTP 400 with one line, never a
    crash."""
    status, answer = guard.post(body)
    assert status == 400
    text = answer.decode()
    assert text.startswith("bad request: ")
    assert reason in text
    assert text.count("\n") == 1
    assert guard.get("/healthz")[0] == 200


def test_a_body_over_the_cap_is_refused_unread(guard: WebhookProcess) -> None:
    """A body announced larger than the cap is answered 400 before it is read; one sent in chunks
    without a length is cut off at the cap with a 400; the webhook goes on serving."""
    conn = guard.connect()
    conn.putrequest("POST", "/validate")
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400
    assert b"more than the" in response.read()
    conn.close()
    chunked = guard.connect()
    try:
        chunked.putrequest("POST", "/validate")
        chunked.putheader("Transfer-Encoding", "chunked")
        chunked.endheaders()
        with contextlib.suppress(ConnectionError, ssl.SSLError):  # closed while we still send
            for _ in range(6 * 16):
                chunked.send(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
        answer = b""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while chunked.sock is not None and (chunk := chunked.sock.recv(4096)):
                answer += chunk
    finally:
        chunked.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"more than the" in answer
    assert guard.get("/healthz")[0] == 200


def test_other_paths_and_methods_are_refused(guard: WebhookProcess) -> None:
    """GET /validate is 405; an unknown path 404; the probes answer."""
    assert guard.get("/validate")[0] == 405
    assert guard.get("/mutate")[0] == 404
    assert guard.get("/healthz") == (200, b"ok\n")
    assert guard.get("/readyz") == (200, b"ready\n")


# -- promote mode -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promoter_hook(
    tmp_path_factory: pytest.TempPathFactory,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
) -> Iterator[WebhookProcess]:
    """A promote-mode webhook for production, limited to repositories under team/."""
    admission = "{mode: promote, promoteRepositories: ['team/*']}"
    yield from module_webhook(tmp_path_factory, source_registry, dest_registry, admission)


def test_promote_mode_copies_a_missing_image_before_answering(
    promoter_hook: WebhookProcess,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    key: signing.KeyPair,
) -> None:
    """A missing image that dev holds is copied digest-exact, with its signature, before the review
    is allowed, with a warning saying so (checked with skopeo, an independent client)."""
    digest = seed(source_registry, repo, "2.0")
    signature = signing.sign_image(source_registry.url, repo, digest, "dev/app:2.0", key)
    response = promoter_hook.review(review(pod("p", f"{dest_registry.host}/{repo}:2.0")))
    assert response["allowed"] is True
    assert response["warnings"] == [
        f"image {dest_registry.host}/{repo}:2.0 was promoted from dev on demand"
    ]
    assert manifest_digest(dest_registry, repo, "2.0") == digest
    assert skopeo_raw_digest(dest_registry, f"{repo}:2.0") == digest
    assert manifest_digest(dest_registry, repo, f"sha256-{digest.split(':')[1]}.sig") == signature


def test_promote_mode_denies_what_dev_lacks_and_repositories_outside_its_patterns(
    promoter_hook: WebhookProcess,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """A tag dev does not hold either is denied saying so; a repository outside
    promoteRepositories is not copied even though dev has it."""
    message = denied(promoter_hook.review(review(pod("p", f"{dest_registry.host}/{repo}:7.0"))))
    assert f"nor in dev's registry {source_registry.host}" in message
    outside = f"other/{repo.rsplit('/', 1)[1]}"
    seed(source_registry, outside, "1.0")
    message = denied(promoter_hook.review(review(pod("o", f"{dest_registry.host}/{outside}:1.0"))))
    assert "admission.promoteRepositories" in message
    assert manifest_digest(dest_registry, outside, "1.0") is None


def test_a_dry_run_copies_nothing_and_is_allowed_when_a_real_request_would_promote(
    promoter_hook: WebhookProcess,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """dryRun (sideEffects: NoneOnDryRun): nothing is copied; the review is allowed with a
    warning, so that Argo CD's server-side dry run does not fail where the apply would promote."""
    seed(source_registry, repo, "3.0")
    response = promoter_hook.review(
        review(deployment("d", f"{dest_registry.host}/{repo}:3.0"), dry_run=True)
    )
    assert response["allowed"] is True
    assert "dry run: nothing copied" in response["warnings"][0]
    assert manifest_digest(dest_registry, repo, "3.0") is None


def test_many_reviews_of_one_missing_image_start_one_copy(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """Twenty concurrent reviews of one missing image (a Deployment scaled up) write its manifest
    once, and every review is allowed."""
    with FaultProxy(dest_registry.url) as proxy:
        config = write_config(
            tmp_path,
            source_registry.host,
            dest_registry.host,
            "{mode: promote}",
            extra_env=f'registries:\n  "{dest_registry.host}": {{endpoint: "{proxy.url}"}}\n',
        )
        webhook = start_webhook(config)
        seed(source_registry, repo, "4.0")
        image = f"{dest_registry.host}/{repo}:4.0"
        with ThreadPoolExecutor(20) as pool:
            responses = list(
                pool.map(lambda i: webhook.review(review(pod(f"p{i}", image))), range(20))
            )
        assert all(r["allowed"] for r in responses)
        puts = [h for h in proxy.hits if h.method == "PUT" and "/manifests/" in h.path]
        assert len(puts) == 1


def test_a_copy_past_the_deadline_goes_on_and_a_retry_is_allowed(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """A copy slower than the deadline: the review is denied with "being promoted, retry"; the
    copy finishes in the background and the retry (as a controller's) is allowed."""
    release = threading.Event()
    with FaultProxy(source_registry.url) as proxy:
        proxy.add_rule("GET", r"/blobs/", before=lambda: release.wait(30), times=100)
        config = write_config(
            tmp_path,
            source_registry.host,
            dest_registry.host,
            "{mode: promote, deadlineSeconds: 0.5}",
            extra_env=f'registries:\n  "{source_registry.host}": {{endpoint: "{proxy.url}"}}\n',
        )
        webhook = start_webhook(config)
        digest = seed(source_registry, repo, "5.0")
        image = f"{dest_registry.host}/{repo}:5.0"
        message = denied(webhook.review(review(pod("p", image))))
        assert "is being promoted from dev" in message
        assert "retry" in message
        assert metric(webhook, "promoter_admission_promotions_running") == 1
        release.set()
        webhook.wait_for_log(lambda e: e.get("event") == "promoted", 30)
        assert metric(webhook, "promoter_admission_promotions_running") == 0
        assert webhook.review(review(pod("p", image)))["allowed"] is True
        assert manifest_digest(dest_registry, repo, "5.0") == digest


# -- failures, operations ---------------------------------------------------------------------------


def test_a_registry_that_does_not_answer_is_a_denial_within_the_deadline(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
) -> None:
    """A registry that accepts connections and never answers: the review is denied with a clear
    reason before the API server's timeout, never a hang."""
    silent = socket.create_server(("127.0.0.1", 0))
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        config = write_config(tmp_path, source_registry.host, host, "{deadlineSeconds: 1}")
        webhook = start_webhook(config, ready=False)
        conn = webhook.connect(timeout=10)  # the API server's timeoutSeconds
        try:
            response = webhook.review(review(pod("p", f"{host}/team/app:1.0")), connection=conn)
        finally:
            conn.close()
        message = denied(response)
        assert f"could not ask {host} about image {host}/team/app:1.0" in message
        assert "retry when the registry answers" in message
        assert webhook.get("/readyz")[0] == 503
    finally:
        silent.close()


def test_the_certificate_is_reloaded_when_its_files_change(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
) -> None:
    """cert-manager rotates the Secret: new connections get the new certificate without a restart,
    and a connection opened before keeps working."""
    config = write_config(tmp_path, source_registry.host, dest_registry.host)
    webhook = start_webhook(config, "--tls-check-seconds", "0.1")
    kept = webhook.connect()
    webhook.post(json.dumps(review(pod("a", "nginx:1"))).encode(), connection=kept)
    first = served_certificate(webhook)
    fresh = webhook.certificates.issue()
    assert fresh != first
    webhook.wait_for_log(lambda e: e.get("event") == "tls-reload", 20)
    assert served_certificate(webhook) == fresh
    status, _ = webhook.post(json.dumps(review(pod("b", "nginx:1"))).encode(), connection=kept)
    assert status == 200
    kept.close()


def served_certificate(webhook: WebhookProcess) -> bytes:
    """The DER certificate the webhook serves to a new connection."""
    context = webhook.certificates.client_context()
    with (
        socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sigterm_answers_the_reviews_in_flight_and_exits_0(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """SIGTERM while a review waits for the registry, longer than --shutdown-grace: the review is
    answered (never cancelled into a 500), then the process exits 0."""
    seed(dest_registry, repo, "1.0")
    arrived, release = threading.Event(), threading.Event()

    def hold() -> None:
        arrived.set()
        release.wait(30)

    with FaultProxy(dest_registry.url) as proxy:
        config = write_config(
            tmp_path,
            source_registry.host,
            dest_registry.host,
            "{deadlineSeconds: 20}",
            extra_env=f'registries:\n  "{dest_registry.host}": {{endpoint: "{proxy.url}"}}\n',
        )
        webhook = start_webhook(config, "--shutdown-grace", "1")
        proxy.add_rule("HEAD", r"/manifests/", before=hold)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                webhook.review, review(pod("p", f"{dest_registry.host}/{repo}:1.0"))
            )
            assert arrived.wait(20)
            assert webhook.process is not None
            webhook.process.send_signal(15)
            webhook.wait_for_log(lambda e: "Shutting down" in str(e.get("message")), 20)
            release.set()
            assert pending.result(30)["allowed"] is True
        assert webhook.process.wait(30) == 0


def test_logs_and_answers_carry_no_credential(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    basic_registry: RegistryProcess,
    repo: str,
) -> None:
    """With a password-protected registry that echoes the Authorization header in its error, no
    form of the password reaches the answer or the JSON logs."""
    with FaultProxy(basic_registry.url) as proxy:
        proxy.add_rule("HEAD", r"/manifests/", status=500, echo="plain", times=100)
        proxy.add_rule("GET", r"/manifests/", status=500, echo="plain", times=100)
        config = write_config(
            tmp_path,
            source_registry.host,
            basic_registry.host,
            "{deadlineSeconds: 3}",
            extra_env=f'registries:\n  "{basic_registry.host}": {{endpoint: "{proxy.url}"}}\n',
        )
        docker = tmp_path / "docker"
        login([basic_registry], docker)
        env = {**_environ(), "DOCKER_CONFIG": str(docker)}
        webhook = start_webhook(config, "--retries", "0", env=env)
        response = webhook.review(review(pod("p", f"{basic_registry.host}/{repo}:1.0")))
        text = json.dumps(response) + "\n".join(webhook.lines)
        assert "could not ask" in denied(response)
        username, password = str(basic_registry.creds).split(":", 1)
        assert password not in text
        assert base64.b64encode(f"{username}:{password}".encode()).decode() not in text


def _environ() -> dict[str, str]:
    import os  # noqa: PLC0415 - the hermetic environment of the test

    return dict(os.environ)


# -- hostile clients --------------------------------------------------------------------------------


def tls_connection(webhook: WebhookProcess) -> ssl.SSLSocket:
    """A TLS connection to the webhook that has sent nothing yet."""
    raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=20)
    return webhook.certificates.client_context().wrap_socket(raw, server_hostname="localhost")


def read_all(connection: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError, ssl.SSLEOFError):
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(connection: ssl.SSLSocket) -> bool:
    """Whether the server closes the connection (read returns end of stream or a reset) before the
    socket's timeout."""
    try:
        return connection.recv(1) == b""
    except (ConnectionResetError, ssl.SSLEOFError):
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
) -> Iterator[WebhookProcess]:
    """A guard webhook with a one-second idle limit and at most 4 connections."""
    yield from module_webhook(
        tmp_path_factory,
        source_registry,
        dest_registry,
        "",
        "--idle-seconds",
        "1",
        "--max-connections",
        "4",
    )


def test_silent_and_half_sent_requests_are_closed(strict: WebhookProcess) -> None:
    """A connection that sends nothing, one that stops in the middle of its head and one that never
    sends the body it announced are closed (the last with a 400), instead of being held forever."""
    with tls_connection(strict) as silent:
        assert closed_by_server(silent)
    with tls_connection(strict) as half:
        half.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Le")
        assert closed_by_server(half)
    with tls_connection(strict) as no_body:
        no_body.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = read_all(no_body)
        assert answer.startswith(b"HTTP/1.1 400")
        assert b"the body did not arrive within 1 s" in answer
    assert strict.get("/healthz")[0] == 200


@pytest.mark.parametrize("ended", [False, True], ids=["unfinished", "whole"])
def test_a_head_larger_than_the_limit_is_refused(strict: WebhookProcess, ended: bool) -> None:
    """A request head over 64 KiB gets 431 and the connection is closed, whether it is still
    coming or arrived whole in one write."""
    head = b"POST /validate HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * 70_000
    with tls_connection(strict) as connection:
        connection.sendall(head + (b"\r\nContent-Length: 2\r\n\r\n{}" if ended else b""))
        answer = read_all(connection)
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_connection_that_never_completes_its_handshake_is_closed(strict: WebhookProcess) -> None:
    """A TCP connection that sends nothing, not even a TLS ClientHello, is closed after the idle
    time instead of asyncio's 60 s."""
    with (
        socket.create_connection(("127.0.0.1", strict.port), timeout=20) as raw,
        contextlib.suppress(ConnectionResetError),
    ):
        assert raw.recv(1) == b""


def test_connections_beyond_the_limit_are_closed_at_once(strict: WebhookProcess) -> None:
    """With --max-connections 4, a fifth connection is closed while four idle ones are open; the
    webhook serves again once they go."""
    held = [tls_connection(strict) for _ in range(4)]
    try:
        try:
            extra = tls_connection(strict)
        except (ssl.SSLError, ConnectionError):
            pass  # closed during the handshake: as good
        else:
            with extra:
                assert closed_by_server(extra)
    finally:
        for connection in held:
            connection.close()
    assert strict.review(review(pod("p", "nginx:1")))["allowed"] is True
    assert metric(strict, "promoter_admission_connections_refused_total") >= 1
    strict.wait_for_log(lambda e: e.get("event") == "connections-refused", 10)


def test_sigterm_during_an_on_demand_copy_exits_promptly_leaving_no_tag(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """A copy still running at SIGTERM is cut (its tag, written last, never appears) and the process
    exits 0 within the grace, not at the copy's own deadline."""
    release = threading.Event()
    with FaultProxy(source_registry.url) as proxy:
        proxy.add_rule("GET", r"/blobs/", before=lambda: release.wait(60), times=100)
        config = write_config(
            tmp_path,
            source_registry.host,
            dest_registry.host,
            "{mode: promote, deadlineSeconds: 0.5}",
            extra_env=f'registries:\n  "{source_registry.host}": {{endpoint: "{proxy.url}"}}\n',
        )
        webhook = start_webhook(config, "--shutdown-grace", "2")
        seed(source_registry, repo, "6.0")
        message = denied(webhook.review(review(pod("p", f"{dest_registry.host}/{repo}:6.0"))))
        assert "is being promoted" in message
        assert webhook.process is not None
        webhook.process.send_signal(15)
        try:
            assert webhook.process.wait(25) == 0
        finally:
            release.set()
    assert manifest_digest(dest_registry, repo, "6.0") is None


def test_refused_credentials_are_named_as_such_not_retry(
    start_webhook: Callable[..., WebhookProcess],
    tmp_path: Path,
    source_registry: RegistryProcess,
    basic_registry: RegistryProcess,
    repo: str,
) -> None:
    """A registry that refuses the webhook (no credentials for a password-protected one) denies
    with that reason: a retry would not help, the webhook's access needs fixing."""
    config = write_config(tmp_path, source_registry.host, basic_registry.host)
    webhook = start_webhook(config, ready=False)
    message = denied(webhook.review(review(pod("p", f"{basic_registry.host}/{repo}:1.0"))))
    assert "the registry refused the webhook's credentials" in message
    assert "retrying will not help" in message
    assert "promoter login" not in message
