"""The referrers-API proxy (devtools/referrers_api.py) in front of the real Distribution registry:
it forwards the registry protocol unchanged and adds distribution-spec v1.1's referrers API, with
options to misbehave as real registries do. Promoter's tests of the API path stand on it."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.referrers_api import (
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    ReferrersApiProxy,
    RequestKind,
    route,
)
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push, skopeo

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 30.0
SBOM = "application/spdx+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
ACCEPT_ALL = ", ".join(
    [images.OCI_INDEX, images.OCI_MANIFEST, images.DOCKER_MANIFEST, images.DOCKER_MANIFEST_LIST]
)


# -- an independent client: http.client on one kept-alive connection ------------------------------


class Answer:
    """A response read whole: status, headers (case-insensitive lookup) and body."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Client:
    """Speaks just enough of the distribution API over one keep-alive connection to the proxy."""

    def __init__(self, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        self.headers = dict(headers or {})

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request on the kept-alive connection."""
        self.conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
        return Answer(self.conn.getresponse())

    def push_blobs(self, repo: str, image: images.Image) -> None:
        """Each blob of ``image`` as a POST that opens an upload and a PUT that completes it
        (Distribution 2.8 has no single-POST upload)."""
        for blob in image.all_blobs():
            started = self.call("POST", f"/v2/{repo}/blobs/uploads/")
            assert started.status == 202, started.body
            location = started.headers["Location"]
            assert location.startswith("http://127.0.0.1:"), location
            path = "/" + location.removeprefix("http://").partition("/")[2]
            separator = "&" if "?" in path else "?"
            done = self.call(
                "PUT",
                f"{path}{separator}digest={blob.digest}",
                blob.data,
                {"Content-Type": "application/octet-stream"},
            )
            assert done.status == 201, done.body

    def put_manifest(self, repo: str, image: images.Image, reference: str | None = None) -> Answer:
        """PUT ``image``'s manifest (by its digest unless a reference is given)."""
        return self.call(
            "PUT",
            f"/v2/{repo}/manifests/{reference or image.digest}",
            image.manifest,
            {"Content-Type": image.media_type},
        )

    def push(self, repo: str, image: images.Image, reference: str | None = None) -> Answer:
        """Blobs, children, then the manifest; the manifest PUT's answer."""
        self.push_blobs(repo, image)
        for child in image.all_manifests():
            if child.digest != image.digest:
                assert self.put_manifest(repo, child).status == 201
        answer = self.put_manifest(repo, image, reference)
        assert answer.status == 201, answer.body
        return answer

    def referrers(self, repo: str, subject: str, artifact_type: str | None = None) -> Answer:
        """GET the referrers API, optionally filtered."""
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        return self.call("GET", f"/v2/{repo}/referrers/{subject}{query}")


def referrer(
    subject: images.Image,
    seed: str,
    *,
    artifact_type: str | None = SBOM,
    config_media_type: str = images.OCI_EMPTY,
    annotations: Mapping[str, str] | None = None,
) -> images.Image:
    """An OCI 1.1 artifact manifest whose ``subject`` is ``subject`` (what cosign v3 and oras push)."""
    config = images.Blob(b"{}", config_media_type)
    content = images.Blob(f"content of {seed}".encode(), "application/octet-stream")
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": images.OCI_MANIFEST}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = config.descriptor()
    document["layers"] = [content.descriptor()]
    document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = dict(annotations)
    return images.Image(json.dumps(document).encode(), images.OCI_MANIFEST, (config, content))


def expected_descriptor(
    image: images.Image, artifact_type: str | None, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The descriptor distribution-spec v1.1 says the API lists for ``image``."""
    descriptor: dict[str, Any] = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": image.size,
    }
    if artifact_type is not None:
        descriptor["artifactType"] = artifact_type
    if annotations:
        descriptor["annotations"] = dict(annotations)
    return descriptor


@pytest.fixture
def proxy(source_registry: RegistryProcess) -> Iterator[ReferrersApiProxy]:
    """The proxy with default options in front of the session's source registry."""
    with ReferrersApiProxy(("127.0.0.1", source_registry.port)) as running:
        yield running


@pytest.fixture
def client(proxy: ReferrersApiProxy) -> Iterator[Client]:
    """A kept-alive connection to ``proxy``."""
    opened = Client(proxy.port)
    yield opened
    opened.close()


@pytest.fixture
def subject(client: Client, repo: str) -> images.Image:
    """A small image pushed through the proxy as ``repo:1.0``, for referrers to point at."""
    image = images.oci_image([images.layer(200, f"subject-{repo}")], seed=f"subject-{repo}")
    client.push(repo, image, "1.0")
    return image


# -- forwarding ------------------------------------------------------------------------------------


def test_image_pushed_and_pulled_through_the_proxy_keeps_its_digest(
    source_registry: RegistryProcess, proxy: ReferrersApiProxy, repo: str
) -> None:
    """A multi-arch image pushed through the proxy lands byte-exact in the registry, and skopeo
    and a blob GET read it back through the proxy unchanged."""
    image = images.multi_arch_index("through", layer_sizes=(300_000, 1000))
    digest = images.push_image(proxy.url, repo, image, "1.0")
    assert manifest_digest(source_registry, repo, "1.0") == digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{proxy.host}/{repo}:1.0")
    assert images.sha256_digest(raw.stdout.encode()) == digest
    big = max(image.all_blobs(), key=lambda blob: blob.size)
    reader = Client(proxy.port)
    try:
        answer = reader.call("GET", f"/v2/{repo}/blobs/{big.digest}")
    finally:
        reader.close()
    assert answer.status == 200
    assert images.sha256_digest(answer.body) == big.digest


def test_one_connection_carries_a_whole_chunked_upload_and_push(
    source_registry: RegistryProcess, proxy: ReferrersApiProxy, repo: str
) -> None:
    """Keep-alive works: a chunked PATCH upload, its PUT, a manifest PUT and reads all travel on one
    client connection, and the upload's Location names the proxy."""
    layer = images.layer(150_000, "chunked")
    image = images.oci_image([layer], seed="chunked")
    client = Client(proxy.port)
    try:
        config = image.blobs[0]
        client.push_blobs(repo, images.Image(b"", "", (config,)))
        started = client.call("POST", f"/v2/{repo}/blobs/uploads/")
        assert started.status == 202
        location = started.headers["Location"]
        assert location.startswith(proxy.url + "/"), location
        path = location.removeprefix(proxy.url)

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(layer), 40_000):
                yield layer[start : start + 40_000]

        client.conn.request(
            "PATCH",
            path,
            body=pieces(),
            headers={"Content-Type": "application/octet-stream"},
            encode_chunked=True,
        )
        patched = Answer(client.conn.getresponse())
        assert patched.status == 202, patched.body
        first_socket = client.conn.sock
        location = patched.headers["Location"].removeprefix(proxy.url)
        separator = "&" if "?" in location else "?"
        done = client.call("PUT", f"{location}{separator}digest={images.sha256_digest(layer)}", b"")
        assert done.status == 201, done.body
        assert client.put_manifest(repo, image, "1.0").status == 201
        read = client.call("GET", f"/v2/{repo}/manifests/1.0", headers={"Accept": ACCEPT_ALL})
        assert read.body == image.manifest
        assert client.conn.sock is first_socket
    finally:
        client.close()
    assert proxy.connections == 1
    assert manifest_digest(source_registry, repo, "1.0") == image.digest


def test_promoter_copies_through_the_proxy_on_pooled_connections(
    proxy: ReferrersApiProxy,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """promoter copy from the proxy works digest-exact, reusing connections (fewer than requests)."""
    image = images.multi_arch_index("pooled", layer_sizes=(2000, 1000, 500))
    digest = images.push_image(proxy.url, repo, image, "1.0")
    proxy.reset_counts()
    result = cli("copy", f"{proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    requests = proxy.count()
    assert requests >= len(image.all_blobs()) + len(image.all_manifests())
    assert proxy.connections < requests


def test_token_auth_challenge_and_realm_pass_through(
    token_registry: RegistryProcess, repo: str
) -> None:
    """Behind a token-auth registry: 401s carry the registry's challenge (realm, scope), a token
    fetched from that realm opens pushes and the referrers API, and OCI-Subject still comes back."""
    server = token_registry.token_server
    assert server is not None
    with ReferrersApiProxy(("127.0.0.1", token_registry.port)) as proxy:
        anonymous = Client(proxy.port)
        try:
            refused = anonymous.call("GET", "/v2/")
            assert refused.status == 401
            assert f'realm="{server.realm}"' in refused.headers["WWW-Authenticate"]
            pushing = Client(proxy.port, token_registry.push_headers(repo))
            try:
                image = images.oci_image([images.layer(100, "tok")], seed="tok")
                pushing.push(repo, image, "1.0")
                attached = pushing.push(repo, referrer(image, "tok-sbom"))
                assert attached.headers["OCI-Subject"] == image.digest
            finally:
                pushing.close()
            challenged = anonymous.referrers(repo, image.digest)
            assert challenged.status == 401
            challenge = challenged.headers["WWW-Authenticate"]
            assert f'realm="{server.realm}"' in challenge
            assert f'scope="repository:{repo}:pull"' in challenge
        finally:
            anonymous.close()
        token = _token_from_challenge(challenge, token_registry)
        reader = Client(proxy.port, {"Authorization": f"Bearer {token}"})
        try:
            listed = reader.referrers(repo, image.digest)
        finally:
            reader.close()
    assert listed.status == 200, listed.body
    assert [d["digest"] for d in listed.json()["manifests"]] == [referrer(image, "tok-sbom").digest]
    assert manifest_digest(token_registry, repo, "1.0") == image.digest


def _token_from_challenge(challenge: str, registry: RegistryProcess) -> str:
    """Follow a Bearer challenge the way a client does: GET the realm with service and scope."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = fields.pop("realm")
    assert realm.startswith("http://127.0.0.1:")
    host_port, _, path = realm.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    try:
        conn.request(
            "GET", f"/{path}?{urlencode(fields)}", headers={"Authorization": f"Basic {basic}"}
        )
        answer = Answer(conn.getresponse())
    finally:
        conn.close()
    assert answer.status == 200, answer.body
    token: str = answer.json()["token"]
    return token


# -- the referrers API -----------------------------------------------------------------------------


def test_referrer_push_gets_oci_subject_and_is_listed_as_the_spec_says(
    proxy: ReferrersApiProxy, client: Client, subject: images.Image, repo: str
) -> None:
    """A manifest with subject is answered with OCI-Subject and listed with mediaType, digest,
    size, artifactType (its own, else its config's; none for an index without one) and all its
    annotations, in push order, as an OCI index."""
    annotated = {"org.opencontainers.image.created": "2026-01-01T00:00:00Z", "x": "1"}
    sbom = referrer(subject, "sbom", annotations=annotated)
    sig = referrer(subject, "sig", artifact_type=None, config_media_type=SIG)
    child = images.oci_artifact(content=b"index child", artifact_type="application/x-child")
    index_document = {
        "schemaVersion": 2,
        "mediaType": images.OCI_INDEX,
        "manifests": [child.descriptor()],
        "subject": subject.descriptor(),
        "annotations": {"kind": "bundle"},
    }
    index = images.Image(json.dumps(index_document).encode(), images.OCI_INDEX, (), (child,))
    answers = [client.push(repo, sbom), client.push(repo, sig), client.push(repo, index)]
    assert [a.headers["OCI-Subject"] for a in answers] == [subject.digest] * 3
    listed = client.referrers(repo, subject.digest)
    assert listed.status == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in listed.headers
    assert "Link" not in listed.headers
    assert listed.json() == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            expected_descriptor(sbom, SBOM, annotated),
            expected_descriptor(sig, SIG),
            expected_descriptor(index, None, {"kind": "bundle"}),
        ],
    }
    assert proxy.referrers(repo, subject.digest) == listed.json()["manifests"]


def test_no_referrers_is_an_empty_index_and_an_unknown_repository_the_registrys_404(
    client: Client, subject: images.Image, repo: str
) -> None:
    """A subject with no referrers (or a digest never pushed) lists an empty index; an unknown
    repository is the registry's NAME_UNKNOWN; a plain image push gets no OCI-Subject."""
    assert "OCI-Subject" not in client.put_manifest(repo, subject, "again").headers
    for digest in (subject.digest, images.sha256_digest(b"never pushed")):
        listed = client.referrers(repo, digest)
        assert listed.status == 200
        assert listed.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    unknown = client.referrers(f"{repo}-nothing-here", subject.digest)
    assert unknown.status == 404
    assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    malformed = client.call("GET", f"/v2/{repo}/referrers/not-a-digest")
    assert malformed.status == 400
    assert malformed.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_a_repository_of_untagged_manifests_is_found(
    source_registry: RegistryProcess, client: Client, repo: str
) -> None:
    """A repository holding only untagged manifests (a copy by digest, for which Distribution's
    tags/list says NAME_UNKNOWN) lists referrers: found by its subject, or by pushes seen."""
    image = images.oci_image([images.layer(10, f"untagged-{repo}")], seed=f"untagged-{repo}")
    push(source_registry, repo, image, tag=None)  # straight to the registry, by digest
    assert client.referrers(repo, image.digest).json()["manifests"] == []
    attached = referrer(image, "untagged-sbom")
    client.push(repo, attached)
    other = images.sha256_digest(b"not in the repository")
    assert client.referrers(repo, other).status == 200
    listed = client.referrers(repo, image.digest)
    assert [d["digest"] for d in listed.json()["manifests"]] == [attached.digest]


def test_referrers_are_kept_per_repository(
    client: Client, subject: images.Image, repo: str
) -> None:
    """The same subject digest in another repository lists only that repository's referrers."""
    other = f"{repo}-other"
    client.push(other, subject, "1.0")
    client.push(repo, referrer(subject, "here"))
    assert client.referrers(other, subject.digest).json()["manifests"] == []


def test_artifact_type_filter_is_applied_and_announced(
    client: Client, subject: images.Image, repo: str
) -> None:
    """?artifactType= lists only that type, with OCI-Filters-Applied: artifactType."""
    pushed = [
        referrer(subject, "a"),
        referrer(subject, "b", artifact_type=None, config_media_type=SIG),
        referrer(subject, "c"),
    ]
    for image in pushed:
        client.push(repo, image)
    listed = client.referrers(repo, subject.digest, SBOM)
    assert listed.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in listed.json()["manifests"]] == [
        pushed[0].digest,
        pushed[2].digest,
    ]
    none = client.referrers(repo, subject.digest, "application/x-nothing")
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert none.json()["manifests"] == []


def test_without_filtering_the_filter_is_ignored_and_not_announced(
    source_registry: RegistryProcess, repo: str
) -> None:
    """filtering=False lists every referrer for ?artifactType= and sends no OCI-Filters-Applied."""
    with ReferrersApiProxy(("127.0.0.1", source_registry.port), filtering=False) as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, "nofilter")], seed="nofilter")
            client.push(repo, image, "1.0")
            pushed = [referrer(image, "x"), referrer(image, "y", artifact_type="other/type")]
            for attached in pushed:
                client.push(repo, attached)
            listed = client.referrers(repo, image.digest, SBOM)
        finally:
            client.close()
    assert listed.status == 200
    assert "OCI-Filters-Applied" not in listed.headers
    assert [d["digest"] for d in listed.json()["manifests"]] == [p.digest for p in pushed]


def test_pages_are_linked_with_rel_next_until_the_last(
    source_registry: RegistryProcess, repo: str
) -> None:
    """More referrers than page_size come in pages of page_size joined by Link rel="next" (the
    filter kept in the link); the pages together list each referrer once, in push order."""
    with ReferrersApiProxy(("127.0.0.1", source_registry.port), page_size=2) as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, "pages")], seed="pages")
            client.push(repo, image, "1.0")
            pushed = [referrer(image, f"page-{n}") for n in range(5)]
            for attached in pushed:
                client.push(repo, attached)
            client.push(repo, referrer(image, "other", artifact_type="other/type"))
            seen: list[str] = []
            sizes: list[int] = []
            answer = client.referrers(repo, image.digest, SBOM)
            while True:
                assert answer.status == 200
                assert answer.headers["OCI-Filters-Applied"] == "artifactType"
                manifests = answer.json()["manifests"]
                sizes.append(len(manifests))
                seen += [d["digest"] for d in manifests]
                link = answer.headers.get("Link")
                if link is None:
                    break
                match = re.fullmatch(r'<(/v2/[^>]+)>; rel="next"', link)
                assert match is not None, link
                assert "artifactType=application%2Fspdx%2Bjson" in match[1]
                answer = client.call("GET", match[1])
        finally:
            client.close()
    assert sizes == [2, 2, 1]
    assert seen == [p.digest for p in pushed]


def test_a_deleted_referrer_is_forgotten(
    source_registry: RegistryProcess, client: Client, subject: images.Image, repo: str
) -> None:
    """DELETE of a referrer manifest by digest (accepted by the registry) drops it from the list."""
    kept, deleted = referrer(subject, "kept"), referrer(subject, "deleted")
    client.push(repo, kept)
    client.push(repo, deleted)
    answer = client.call("DELETE", f"/v2/{repo}/manifests/{deleted.digest}")
    assert answer.status == 202, answer.body
    assert manifest_digest(source_registry, repo, deleted.digest) is None
    listed = client.referrers(repo, subject.digest)
    assert [d["digest"] for d in listed.json()["manifests"]] == [kept.digest]


# -- misbehaviour options --------------------------------------------------------------------------


def test_api_absent_answers_as_distribution_does_until_switched_on(
    source_registry: RegistryProcess, repo: str
) -> None:
    """api="absent": the referrers request gets Distribution's own plain-text 404 and a PUT with
    subject no OCI-Subject; switched to "ok" while running, the referrer pushed meanwhile is listed."""
    direct = http.client.HTTPConnection("127.0.0.1", source_registry.port, timeout=TIMEOUT_S)
    with ReferrersApiProxy(("127.0.0.1", source_registry.port), api="absent") as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, "absent")], seed="absent")
            client.push(repo, image, "1.0")
            attached = referrer(image, "absent-sbom")
            assert "OCI-Subject" not in client.push(repo, attached).headers
            missing = client.referrers(repo, image.digest)
            direct.request("GET", f"/v2/{repo}/referrers/{image.digest}")
            real = Answer(direct.getresponse())
            assert (
                (missing.status, missing.body)
                == (real.status, real.body)
                == (
                    404,
                    b"404 page not found\n",
                )
            )
            assert missing.headers["Content-Type"] == real.headers["Content-Type"]
            assert missing.headers["Content-Type"].startswith("text/plain")
            proxy.configure(api="ok")
            listed = client.referrers(repo, image.digest)
        finally:
            client.close()
            direct.close()
    assert [d["digest"] for d in listed.json()["manifests"]] == [attached.digest]


def test_content_type_override_answers_200_that_is_not_an_oci_index(
    source_registry: RegistryProcess, repo: str
) -> None:
    """content_type="application/json": 200 with the list but the wrong Content-Type, as a
    registry that does not really support the API may answer."""
    with ReferrersApiProxy(
        ("127.0.0.1", source_registry.port), content_type="application/json"
    ) as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, "ctype")], seed="ctype")
            client.push(repo, image, "1.0")
            client.push(repo, referrer(image, "ctype-sbom"))
            listed = client.referrers(repo, image.digest)
        finally:
            client.close()
    assert listed.status == 200
    assert listed.headers["Content-Type"] == "application/json"
    assert len(listed.json()["manifests"]) == 1


@pytest.mark.parametrize("status", [400, 405, 406, 500])
def test_status_override_refuses_referrers_requests_only(
    source_registry: RegistryProcess, repo: str, status: int
) -> None:
    """status=N answers referrers requests with N and a distribution-style JSON error; pushes and
    pulls are untouched."""
    with ReferrersApiProxy(("127.0.0.1", source_registry.port), status=status) as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, f"status{status}")], seed=f"s{status}")
            client.push(repo, image, "1.0")
            assert client.push(repo, referrer(image, "s")).headers["OCI-Subject"] == image.digest
            refused = client.referrers(repo, image.digest)
            read = client.call("GET", f"/v2/{repo}/manifests/1.0", headers={"Accept": ACCEPT_ALL})
        finally:
            client.close()
    assert refused.status == status
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["errors"][0]["code"]
    assert read.body == image.manifest


def test_oci_subject_off_sends_no_header_but_still_lists(
    source_registry: RegistryProcess, repo: str
) -> None:
    """oci_subject=False: the PUT carries no OCI-Subject, yet the API lists the referrer."""
    with ReferrersApiProxy(("127.0.0.1", source_registry.port), oci_subject=False) as proxy:
        client = Client(proxy.port)
        try:
            image = images.oci_image([images.layer(10, "nosubj")], seed="nosubj")
            client.push(repo, image, "1.0")
            attached = referrer(image, "nosubj-sbom")
            answer = client.push(repo, attached)
            listed = client.referrers(repo, image.digest)
        finally:
            client.close()
    assert "OCI-Subject" not in answer.headers
    assert [d["digest"] for d in listed.json()["manifests"]] == [attached.digest]


@pytest.mark.parametrize(
    "options",
    [{"api": "maybe"}, {"page_size": 0}, {"status": 200}, {"content_type": " "}],
    ids=["api", "page_size", "status", "content_type"],
)
def test_invalid_options_are_refused(
    proxy: ReferrersApiProxy, options: dict[str, Any], source_registry: RegistryProcess
) -> None:
    """An invalid option is a ValueError at construction and from configure, which then keeps
    the options in force."""
    with pytest.raises(ValueError, match=next(iter(options))):
        ReferrersApiProxy(("127.0.0.1", source_registry.port), **options)
    before = proxy.options
    with pytest.raises(ValueError, match=next(iter(options))):
        proxy.configure(**options)
    assert proxy.options == before


def test_only_a_loopback_upstream_is_accepted() -> None:
    """The proxy forwards to loopback only."""
    with pytest.raises(ValueError, match="loopback"):
        ReferrersApiProxy(("10.0.0.1", 5000))


def test_an_oversized_manifest_put_is_refused_without_reaching_the_registry(
    source_registry: RegistryProcess, proxy: ReferrersApiProxy, repo: str
) -> None:
    """A manifest PUT announcing more than MAX_MANIFEST_BYTES gets 413 and a closed connection
    before its body is read (chunked: once the cap is passed); nothing reaches the registry."""
    head = (
        f"PUT /v2/{repo}/manifests/big HTTP/1.1\r\nHost: {proxy.host}\r\n"
        f"Content-Type: {images.OCI_MANIFEST}\r\n"
    ).encode()
    announced = head + f"Content-Length: {MAX_MANIFEST_BYTES + 1}\r\n\r\n".encode()
    piece = 1024 * 1024
    chunk = b"%x\r\n%s\r\n" % (piece, b" " * piece)
    # Exactly one byte over the cap, so the proxy has read all that was sent when it answers:
    # closing a socket with unread input would reset the connection under the answer.
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 4 + b"1\r\n "
    for request in (announced, chunked):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(request)
            answer = b""
            while data := sock.recv(65536):
                answer += data
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"\r\nConnection: close\r\n" in rest
    assert proxy.count("PUT", RequestKind.MANIFEST) == 2
    assert manifest_digest(source_registry, repo, "big") is None


# -- the request counter ---------------------------------------------------------------------------


def test_requests_are_counted_by_method_and_kind(
    proxy: ReferrersApiProxy, client: Client, repo: str
) -> None:
    """Every request is counted by (method, kind) as the client sent it, failures included."""
    image = images.oci_image([images.layer(10, "count")], seed="count")
    proxy.reset_counts()
    client.call("GET", "/v2/")
    client.push(repo, image, "1.0")  # config and layer: a POST and a PUT each; a manifest PUT
    client.call("HEAD", f"/v2/{repo}/blobs/{image.blobs[0].digest}")
    client.call("GET", f"/v2/{repo}/tags/list")
    client.referrers(repo, image.digest)
    client.referrers(repo, image.digest)
    client.call("GET", f"/v2/{repo}/manifests/missing", headers={"Accept": ACCEPT_ALL})
    assert proxy.counts == {
        ("GET", RequestKind.OTHER): 1,
        ("POST", RequestKind.UPLOAD): 2,
        ("PUT", RequestKind.UPLOAD): 2,
        ("PUT", RequestKind.MANIFEST): 1,
        ("HEAD", RequestKind.BLOB): 1,
        ("GET", RequestKind.TAGS): 1,
        ("GET", RequestKind.REFERRERS): 2,
        ("GET", RequestKind.MANIFEST): 1,
    }
    assert proxy.count("GET", "referrers") == 2
    assert proxy.count(kind=RequestKind.UPLOAD) == 4
    assert proxy.count("get") == 5
    assert proxy.count() == 11
    proxy.reset_counts()
    assert proxy.count() == 0


@pytest.mark.parametrize(
    ("target", "kind", "repository", "reference"),
    [
        ("/v2/", RequestKind.OTHER, None, None),
        ("/v2/_catalog?n=10", RequestKind.OTHER, None, None),
        ("/v2/a/b/referrers/sha256:ab?artifactType=x", RequestKind.REFERRERS, "a/b", "sha256:ab"),
        ("/v2/a/b/manifests/1.0", RequestKind.MANIFEST, "a/b", "1.0"),
        ("/v2/a/blobs/sha256:ab", RequestKind.BLOB, "a", "sha256:ab"),
        ("/v2/a/b/c/blobs/uploads/", RequestKind.UPLOAD, "a/b/c", ""),
        ("/v2/a/blobs/uploads/u-1?_state=x", RequestKind.UPLOAD, "a", "u-1"),
        ("/v2/a/b/tags/list?n=5", RequestKind.TAGS, "a/b", "list"),
    ],
)
def test_paths_are_classified_by_endpoint(
    target: str, kind: RequestKind, repository: str | None, reference: str | None
) -> None:
    """route() names the endpoint, repository and reference of a request target."""
    found = route(target)
    assert (found.kind, found.repository, found.reference) == (kind, repository, reference)


# -- composition and the command line --------------------------------------------------------------


def test_a_fault_proxy_in_front_adds_faults_to_the_api_path(
    proxy: ReferrersApiProxy, client: Client, subject: images.Image, repo: str
) -> None:
    """FaultProxy(proxy.url) scripts a fault on a referrers request; the next one is answered."""
    client.push(repo, referrer(subject, "faulted"))
    with FaultProxy(proxy.url) as faults:
        faults.add_rule("GET", r"/referrers/", status=503)
        outer = Client(faults.port)
        try:
            first = outer.referrers(repo, subject.digest)
            second = outer.referrers(repo, subject.digest)
        finally:
            outer.close()
    assert first.status == 503
    assert second.status == 200
    assert len(second.json()["manifests"]) == 1
    assert proxy.count("GET", RequestKind.REFERRERS) == 1


def test_command_line_serves_the_api_until_terminated(source_registry: RegistryProcess) -> None:
    """`python -m devtools.referrers_api` prints where it listens, serves the API with its
    options, and exits 0 on SIGTERM."""
    repo = f"team/cli-{uuid.uuid4().hex[:8]}"
    image = images.oci_image([images.layer(10, "cli")], seed="cli")
    push(source_registry, repo, image)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.referrers_api",
            "--upstream",
            source_registry.host,
            "--listen",
            "0",
            "--content-type",
            "application/json",
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
        match = re.match(r"referrers api proxy 127\.0\.0\.1:(\d+) -> ", line)
        assert match is not None, line
        client = Client(int(match[1]))
        try:
            listed = client.referrers(repo, image.digest)
        finally:
            client.close()
        assert listed.status == 200
        assert listed.headers["Content-Type"] == "application/json"
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT_S)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_command_line_refuses_a_remote_upstream_in_one_line() -> None:
    """A non-loopback upstream is one line on stderr and exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools.referrers_api", "--upstream", "10.0.0.1:5000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "loopback" in result.stderr
