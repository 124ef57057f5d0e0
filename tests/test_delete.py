"""Deleting manifests and tags through the registry API (distribution-spec "Content Management"),
against the real Distribution registry with deletion enabled and disabled; answers Distribution 2.8
never gives (a tag deleted by name, a 400 for disabled deletion) come from the scripted registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.hostile_registry import HostileRegistry, respond
from devtools.registry import RegistryProcess
from tests.registry_checks import manifest_digest, push

from promoter.cli.exit_codes import EXIT_FAILED, cli_message, exit_code_for
from promoter.deadline import Deadline
from promoter.errors import DeadlineExceededError, DeletionDisabledError, RegistryError
from promoter.oci.digest import Digest, parse_digest
from promoter.remote.repository import Repository
from promoter.transport.session import Transport

ABSENT = parse_digest("sha256:" + "0" * 64)


@pytest.fixture
def transport() -> Iterator[Transport]:
    """A transport for one test, closed after it."""
    made = Transport()
    yield made
    made.close()


def seed(registry: RegistryProcess, repo: str, *tags: str, salt: str = "") -> Digest:
    """One small image under each of ``tags`` (the harness's own pusher); returns its digest."""
    image = images.oci_image([images.layer(200, repo + salt)], seed=repo + salt)
    digest = ""
    for tag in tags:
        digest = push(registry, repo, image, tag=tag)
    return parse_digest(digest)


def test_delete_by_digest_removes_the_manifest_and_every_tag_on_it(
    dest_registry: RegistryProcess, repo: str, transport: Transport
) -> None:
    """A DELETE by digest answers 202: the digest and both tags on it then answer 404."""
    digest = seed(dest_registry, repo, "1.0", "stable")
    other = seed(dest_registry, repo, "2.0", salt="other")

    deleted = Repository(transport.session(dest_registry.host), repo).delete_manifest(digest)

    assert deleted is True
    assert manifest_digest(dest_registry, repo, str(digest)) is None
    assert manifest_digest(dest_registry, repo, "1.0") is None
    assert manifest_digest(dest_registry, repo, "stable") is None
    assert manifest_digest(dest_registry, repo, "2.0") == str(other)


def test_deleting_what_is_gone_already_is_no_error(
    dest_registry: RegistryProcess, repo: str, transport: Transport
) -> None:
    """A second DELETE of the same digest, and one in a repository that does not exist, answer
    404: both are done, not failed (a re-run after a fault finishes the job)."""
    digest = seed(dest_registry, repo, "1.0")
    repository = Repository(transport.session(dest_registry.host), repo)
    assert repository.delete_manifest(digest) is True

    assert repository.delete_manifest(digest) is False
    nowhere = Repository(transport.session(dest_registry.host), f"{repo}-never-pushed")
    assert nowhere.delete_manifest(ABSENT) is False


def test_a_delete_whose_answer_was_lost_is_retried_and_done(
    dest_registry: RegistryProcess, repo: str, transport: Transport
) -> None:
    """The registry deletes, but its 202 never arrives: the retried DELETE finds 404, and the
    manifest is gone without an error."""
    digest = seed(dest_registry, repo, "1.0")
    with FaultProxy(dest_registry.url) as proxy:
        lost = proxy.add_rule("DELETE", "/manifests/", lose_answer=True)
        deleted = Repository(transport.session(proxy.host), repo).delete_manifest(digest)
        statuses = [hit.status for hit in proxy.hits if hit.method == "DELETE"]
    assert lost.fired == 1
    assert deleted is False
    assert statuses[-1] == 404
    assert manifest_digest(dest_registry, repo, str(digest)) is None


def test_disabled_deletion_is_one_line_naming_the_registry_and_the_setting(
    fresh_registry: Callable[..., RegistryProcess], repo: str, transport: Transport
) -> None:
    """Distribution without storage.delete.enabled answers 405 UNSUPPORTED: one line naming the
    registry and the setting to change, exit code 1, and the manifest is still there."""
    registry = fresh_registry(delete_enabled=False)
    digest = seed(registry, repo, "1.0")

    with pytest.raises(DeletionDisabledError) as caught:
        Repository(transport.session(registry.host), repo).delete_manifest(digest)

    line = cli_message(caught.value)
    assert "\n" not in line
    assert f"delete manifest {registry.host}/{repo}@{digest}" in line
    assert "405" in line
    assert "UNSUPPORTED" in line
    assert f"deletion is disabled on {registry.host}" in line
    assert "storage.delete.enabled: true" in line
    assert exit_code_for(caught.value) == EXIT_FAILED
    assert manifest_digest(registry, repo, "1.0") == str(digest)


def test_distribution_2_8_does_not_delete_a_tag_by_name(
    dest_registry: RegistryProcess,
    fresh_registry: Callable[..., RegistryProcess],
    repo: str,
    transport: Transport,
) -> None:
    """Distribution 2.8 answers a DELETE by tag 400 DIGEST_INVALID (deletion on) or 405
    (deletion off): delete_tag says False, and the tag still holds its image."""
    digest = seed(dest_registry, repo, "1.0")
    disabled = fresh_registry(delete_enabled=False)
    seed(disabled, repo, "1.0")

    assert Repository(transport.session(dest_registry.host), repo).delete_tag("1.0") is False
    assert Repository(transport.session(disabled.host), repo).delete_tag("1.0") is False

    assert manifest_digest(dest_registry, repo, "1.0") == str(digest)
    assert manifest_digest(disabled, repo, "1.0") == str(digest)


def test_a_registry_that_deletes_tags_reports_them_gone(transport: Transport) -> None:
    """Where the registry deletes a tag by name (202) or has no such tag (404), delete_tag says
    True, having sent one DELETE of /manifests/<tag> each."""
    with HostileRegistry() as registry:
        registry.misbehave("DELETE", r"/manifests/old$", respond(202, b""))
        registry.misbehave(
            "DELETE",
            r"/manifests/gone$",
            respond(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}'),
        )
        repository = Repository(transport.session(registry.host), "app")
        assert repository.delete_tag("old") is True
        assert repository.delete_tag("gone") is True
        sent = [seen.path for seen in registry.requests("DELETE", "/manifests/")]
    assert sent == ["/v2/app/manifests/old", "/v2/app/manifests/gone"]


@pytest.mark.parametrize(
    ("body", "disabled"),
    [
        (b'{"errors":[{"code":"UNSUPPORTED","message":"deletes are off"}]}', True),
        (b"", True),
        (b'{"errors":[{"code":"NAME_INVALID","message":"bad name"}]}', False),
    ],
)
def test_a_400_means_disabled_deletion_only_without_another_error_code(
    transport: Transport, body: bytes, *, disabled: bool
) -> None:
    """The spec lets a registry answer 400 for disabled deletion: a 400 with UNSUPPORTED or no
    code is that; a 400 naming another error is that error."""
    with HostileRegistry() as registry:
        registry.misbehave("DELETE", r"/manifests/", respond(400, body))
        with pytest.raises(RegistryError) as caught:
            Repository(transport.session(registry.host), "app").delete_manifest(ABSENT)
    assert isinstance(caught.value, DeletionDisabledError) is disabled
    assert caught.value.status == 400


def test_delete_asks_a_token_registry_for_the_delete_action(
    token_registry: RegistryProcess,
    repo: str,
    transport: Transport,
    docker_config: Callable[..., object],
) -> None:
    """Distribution's token auth wants repository:<name>:delete for a DELETE (pull,push is
    refused with insufficient_scope): the token is asked for that scope and the delete succeeds."""
    docker_config(token_registry)
    digest = seed(token_registry, repo, "1.0")
    assert token_registry.token_server is not None
    token_registry.token_server.requests.clear()

    deleted = Repository(transport.session(token_registry.host), repo).delete_manifest(digest)

    assert deleted is True
    scopes = [s for r in token_registry.token_server.requests for s in r.query.get("scope", [])]
    assert f"repository:{repo}:delete" in scopes
    assert manifest_digest(token_registry, repo, str(digest)) is None


def test_a_delete_past_the_deadline_is_not_sent(
    dest_registry: RegistryProcess, repo: str, transport: Transport
) -> None:
    """With the repository's deadline passed, neither delete sends a request: the manifest and
    its tag stay."""
    digest = seed(dest_registry, repo, "1.0")
    with FaultProxy(dest_registry.url) as proxy:
        late = Repository(
            transport.session(proxy.host), repo, deadline=Deadline(time.monotonic() - 1, 1.0)
        )
        with pytest.raises(DeadlineExceededError):
            late.delete_manifest(digest)
        with pytest.raises(DeadlineExceededError):
            late.delete_tag("1.0")
        deletes = [hit for hit in proxy.hits if hit.method == "DELETE"]
    assert deletes == []
    assert manifest_digest(dest_registry, repo, "1.0") == str(digest)


def test_delete_tag_refuses_a_digest(
    dest_registry: RegistryProcess, repo: str, transport: Transport
) -> None:
    """delete_tag given a digest raises instead of deleting the manifest it names."""
    digest = seed(dest_registry, repo, "1.0")
    with pytest.raises(ValueError, match="not a tag"):
        Repository(transport.session(dest_registry.host), repo).delete_tag(str(digest))
    assert manifest_digest(dest_registry, repo, "1.0") == str(digest)
