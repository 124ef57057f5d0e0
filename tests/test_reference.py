"""Image reference parsing: grammar, Docker Hub defaults in one place, round trips, clear errors."""

from __future__ import annotations

import pytest

from promoter.cli.exit_codes import exit_code_for
from promoter.errors import InvalidReferenceError
from promoter.oci.digest import parse_digest
from promoter.reference import (
    Reference,
    api_host,
    hide_credentials,
    is_loopback_host,
    parse_reference,
    parse_registry_host,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", Reference("docker.io", "library/nginx", "latest")),
        ("nginx:1.27", Reference("docker.io", "library/nginx", "1.27")),
        ("docker.io/nginx", Reference("docker.io", "library/nginx", "latest")),
        ("index.docker.io/bitnami/redis:7", Reference("docker.io", "bitnami/redis", "7")),
        ("bitnami/redis", Reference("docker.io", "bitnami/redis", "latest")),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("localhost:5000/app:v1", Reference("localhost:5000", "app", "v1")),
        ("127.0.0.1:5000/team/app:v1", Reference("127.0.0.1:5000", "team/app", "v1")),
        (f"ghcr.io/o/app@{D}", Reference("ghcr.io", "o/app", None, parse_digest(D))),
        (f"ghcr.io/o/app:v2@{D}", Reference("ghcr.io", "o/app", "v2", parse_digest(D))),
        (
            "111111111111.dkr.ecr.us-east-1.amazonaws.com/svc/api:2024.1",
            Reference("111111111111.dkr.ecr.us-east-1.amazonaws.com", "svc/api", "2024.1"),
        ),
        ("Registry/app", Reference("registry", "app", "latest")),  # hosts ignore case (RFC 4343)
        ("LOCALHOST:5000/app", Reference("localhost:5000", "app", "latest")),
        (
            "111111111111.DKR.ECR.us-east-1.amazonaws.com/a:1",
            Reference("111111111111.dkr.ecr.us-east-1.amazonaws.com", "a", "1"),
        ),
        ("a/b__c/d-e.f_g", Reference("docker.io", "a/b__c/d-e.f_g", "latest")),
        ("[::1]:5000/app:1", Reference("[::1]:5000", "app", "1")),
    ],
)
def test_parses_and_normalises(text: str, expected: Reference) -> None:
    """Each accepted form parses to the normalised value with Docker Hub defaults applied."""
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    ["nginx", "ghcr.io/o/app:v1", f"127.0.0.1:5000/a/b@{D}", f"ghcr.io/o/app:v2@{D}"],
)
def test_str_round_trips(text: str) -> None:
    """str() of a parsed reference parses back to an equal value."""
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty image reference"),
        ("https://ghcr.io/o/app", "drop the URL scheme"),
        ("ghcr.io/O/app", "invalid repository"),
        ("ghcr.io/o/app:-bad", "invalid tag"),
        ("ghcr.io/o/app@sha256:abc", "invalid digest"),
        ("ghcr.io/o/app@md5:" + "a" * 32, "invalid digest"),
        ("ghcr.io//app", "invalid repository"),
        ("ghcr.io/o/app:" + "t" * 129, "invalid tag"),
        ("bad_host.io:x/app", "invalid"),
        ("ghcr.io/" + "a" * 250, "too long"),
    ],
)
def test_rejects_with_a_message_naming_the_input(text: str, fragment: str) -> None:
    """Bad references raise InvalidReferenceError (exit 2) naming what is wrong."""
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert fragment in str(info.value)
    assert exit_code_for(info.value) == 2


def test_no_default_tag_when_asked() -> None:
    """default_tag=None leaves both tag and digest unset for the caller to decide."""
    ref = parse_reference("ghcr.io/o/app", default_tag=None)
    assert ref.tag is None
    assert ref.digest is None


def test_digest_wins_as_identifier() -> None:
    """A reference with tag and digest is fetched by digest, as docker does."""
    assert parse_reference(f"ghcr.io/o/app:v2@{D}").identifier == D


def test_docker_hub_api_host_and_loopback() -> None:
    """Docker Hub's API answers at registry-1.docker.io; loopback hosts are recognised."""
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("ghcr.io") == "ghcr.io"
    assert is_loopback_host("127.0.0.1:5000")
    assert is_loopback_host("localhost")
    assert is_loopback_host("[::1]:5000")
    assert not is_loopback_host("10.0.0.1:5000")
    assert not is_loopback_host("registry.example.com")
    assert not is_loopback_host("127.example.com:5000")
    assert is_loopback_host("127.0.0.2:5000")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("user:pw@host.io/app:1", "***@host.io/app:1"),
        ("https://u:pw@host.io/app", "https://***@host.io/app"),
        ("u:pa/ss@host.io/app", "***@host.io/app"),
        ("u:p@ss@host.io/app@sha256:abc", "***@host.io/app@sha256:abc"),
        ("u:pw@nginx:latest", "***@nginx:latest"),
        ("u:pw@127.0.0.1:5000", "***@127.0.0.1:5000"),
        ("host.io/app@sha256:abc", None),
        ("nginx@sha256:123", None),
        ("app@md5:aa", None),
        ("host.io/app:1", None),
    ],
)
def test_hide_credentials_hides_everything_before_the_host(text: str, shown: str | None) -> None:
    """Any '@' but a digest's ends typed credentials, which are hidden up to the host."""
    assert hide_credentials(text) == shown


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_port_outside_1_to_65535_does_not_parse(port: str) -> None:
    """host:0 and ports over 65535 are refused in references and registry hosts alike."""
    with pytest.raises(InvalidReferenceError, match=f"invalid port {port} "):
        parse_reference(f"host.io:{port}/app:1")
    with pytest.raises(InvalidReferenceError, match=f"invalid port {port} "):
        parse_registry_host(f"host.io:{port}")
    assert parse_reference("host.io:65535/app:1").registry == "host.io:65535"
