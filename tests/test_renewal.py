"""Credentials that renew (issue 7, item 4).

End to end against real Distribution registries made to answer like ECR (devtools/ecr_fake.py: a fake
AWS API handing out short-lived tokens, an ECR-like proxy refusing what ECR refuses): tokens renewed
before they expire and when the registry calls them expired, a stale docker login falling back to the
AWS identity, and the message when every source is refused. Then the credential chain's rules as
tables, with fake sources and a fake clock.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from devtools import images
from devtools.ecr_fake import DEFAULT_ARN, EcrRegistryProxy, FakeAwsApi
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push, skopeo_raw_digest

from promoter.authn.chain import REFUSED_RECHECK, CredentialChain, docker_sources
from promoter.authn.store import Credential
from promoter.ecr.api import EcrApi
from promoter.ecr.credentials import EcrTokenSource
from promoter.ecr.hosts import is_ecr_host
from promoter.ecr.settings import EcrSettings
from promoter.errors import AuthenticationError, CredentialError
from promoter.reference import parse_reference
from promoter.remote.copy import Copier, CopyOptions, CopyResult
from promoter.remote.repository import Repository
from promoter.transport.session import Transport, TransportOptions

REGION = "us-east-1"
SOURCE_ACCOUNT = "111111111111"
DEST_ACCOUNT = "222222222222"
SOURCE_HOST = f"{SOURCE_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
DEST_HOST = f"{DEST_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
#: Short tokens (renewed 0.6 s before they expire); the copy below outlives more than two of them.
TOKEN_SECONDS = 2.5
#: Ten layers of this many random bytes (7 pieces and the end: 8 reads), downloaded in pieces of PIECE
#: bytes, each after DRIP seconds, two at a time: at least 1.2 s a layer, 6 s for the image.
LAYERS = 10
LAYER_BYTES = 192 * 1024
PIECE = 32 * 1024
DRIP = 0.15
STALE_PASSWORD = "stale-docker-login-password"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def aws_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ambient AWS keys for boto3 (the fake does not check signatures), no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fake_api(aws_identity: None) -> Iterator[FakeAwsApi]:
    """The fake ECR/STS API on loopback, handing out 12-hour tokens unless a test says otherwise."""
    with FakeAwsApi() as api:
        yield api


@dataclass
class EcrPair:
    """Two ECR-like registries behind proxies: the source account's and the destination's."""

    api: FakeAwsApi
    source: EcrRegistryProxy
    dest: EcrRegistryProxy
    source_registry: RegistryProcess
    dest_registry: RegistryProcess
    secrets: set[str] = field(default_factory=set)

    def transport(self, *, jobs: int = 2) -> tuple[Transport, CredentialChain, Copier]:
        """An engine-level copier: docker config and auth.json first, then the AWS identity."""
        settings = {
            host: EcrSettings(api_endpoint=self.api.url) for host in (SOURCE_HOST, DEST_HOST)
        }
        chain = CredentialChain(
            [*docker_sources(), EcrTokenSource(EcrApi(settings), is_ecr=is_ecr_host)],
            remember=lambda *found: self.secrets.update(found),
        )
        endpoints = {SOURCE_HOST: self.source.url, DEST_HOST: self.dest.url}
        transport = Transport(TransportOptions(endpoints=endpoints), credentials=chain)
        return transport, chain, Copier(transport, CopyOptions(jobs=jobs))


@pytest.fixture
def ecr(
    fake_api: FakeAwsApi, source_registry: RegistryProcess, dest_registry: RegistryProcess
) -> Iterator[EcrPair]:
    """The source and destination registries made to answer like two ECR accounts."""
    source = EcrRegistryProxy(source_registry.url, fake_api, host=SOURCE_HOST)
    dest = EcrRegistryProxy(dest_registry.url, fake_api, host=DEST_HOST)
    with source, dest:
        yield EcrPair(fake_api, source, dest, source_registry, dest_registry)


@pytest.fixture
def stale_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker config (in $DOCKER_CONFIG) whose auths entry for the destination ECR host holds a
    password from an old login, as conftest's docker_config fixture writes entries."""
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"AWS:{STALE_PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {DEST_HOST: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    return config_dir / "config.json"


def ten_layers(registry: RegistryProcess, repo: str) -> str:
    """A 10-layer image pushed to ``registry`` directly (not through promoter); returns its digest."""
    layers = [images.layer(LAYER_BYTES, f"{repo}-{i}") for i in range(LAYERS)]
    return push(registry, repo, images.oci_image(layers, seed=repo))


def copy(copier: Copier, repo: str) -> CopyResult:
    """Copy repo:1.0 from the source ECR host to the destination ECR host."""
    with copier:
        return copier.copy(
            parse_reference(f"{SOURCE_HOST}/{repo}:1.0"), parse_reference(f"{DEST_HOST}/{repo}:1.0")
        )


# -- end to end ------------------------------------------------------------------------------------


def test_tokens_are_renewed_before_they_expire(ecr: EcrPair, repo: str) -> None:
    """A copy that outlives several 2.5 s tokens succeeds exactly: each token is replaced before it
    expires, and neither registry ever sees an expired one."""
    digest = ten_layers(ecr.source_registry, repo)
    ecr.api.token_lifetime = TOKEN_SECONDS
    ecr.source.blob_chunk_size, ecr.source.blob_chunk_delay = PIECE, DRIP
    transport, _, copier = ecr.transport()
    started = time.monotonic()
    try:
        result = copy(copier, repo)
    finally:
        transport.close()
    elapsed = time.monotonic() - started

    assert str(result.digest) == digest
    assert manifest_digest(ecr.dest_registry, repo, "1.0") == digest
    assert skopeo_raw_digest(ecr.dest_registry, f"{repo}:1.0") == digest
    assert elapsed > 2 * TOKEN_SECONDS
    for account, proxy in ((SOURCE_ACCOUNT, ecr.source), (DEST_ACCOUNT, ecr.dest)):
        assert len(ecr.api.tokens(account)) > 1, account
        assert len(proxy.accepted) > 1, account  # requests went in with several tokens...
        assert proxy.refusals["expired"] == 0, account  # ...and never with an expired one


def test_tokens_the_registry_calls_expired_are_renewed(ecr: EcrPair, repo: str) -> None:
    """Tokens that declare 12 hours but are refused 2.5 s after issue (ECR's 403 "token has expired")
    are renewed on the refusal and the copy succeeds exactly."""
    digest = ten_layers(ecr.source_registry, repo)
    for proxy in (ecr.source, ecr.dest):
        proxy.refuse_after = TOKEN_SECONDS
    ecr.source.blob_chunk_size, ecr.source.blob_chunk_delay = PIECE, DRIP
    transport, _, copier = ecr.transport()
    started = time.monotonic()
    try:
        result = copy(copier, repo)
    finally:
        transport.close()

    assert str(result.digest) == digest
    assert skopeo_raw_digest(ecr.dest_registry, f"{repo}:1.0") == digest
    assert time.monotonic() - started > 2 * TOKEN_SECONDS
    assert ecr.source.refusals["expired"] + ecr.dest.refusals["expired"] >= 1
    assert len(ecr.api.tokens(SOURCE_ACCOUNT)) > 1
    assert len(ecr.api.tokens(DEST_ACCOUNT)) > 1


def test_a_head_refused_without_a_reason_renews_the_token(ecr: EcrPair, repo: str) -> None:
    """A HEAD answered 403 without a body (it cannot say "expired") gets the token renewed once and
    the request answered, instead of giving up on the AWS identity."""
    digest = ten_layers(ecr.dest_registry, repo)
    now = [1000.0]
    ecr.api.clock = lambda: now[0]
    transport, chain, _ = ecr.transport()
    try:
        dest = Repository.of(transport, parse_reference(f"{DEST_HOST}/{repo}:1.0"))
        first = dest.head_manifest("1.0")
        ecr.dest.refuse_after = 60.0
        now[0] += 61.0  # the registry now holds the token for expired; HEAD answers carry no body
        second = dest.head_manifest("1.0")
    finally:
        transport.close()

    assert first is not None
    assert second is not None
    assert str(second.digest) == digest
    assert ecr.dest.refusals["expired"] == 1
    assert len(ecr.api.tokens(DEST_ACCOUNT)) == 2
    assert chain.refusals(DEST_HOST) == []


def test_a_stale_docker_login_falls_back_to_the_aws_identity(
    ecr: EcrPair, repo: str, stale_docker_login: Path
) -> None:
    """A docker config entry for the ECR host with an old password is refused once; the chain then
    takes the AWS identity and the copy succeeds."""
    digest = ten_layers(ecr.source_registry, repo)
    transport, chain, copier = ecr.transport()
    try:
        result = copy(copier, repo)
    finally:
        transport.close()

    assert str(result.digest) == digest
    assert manifest_digest(ecr.dest_registry, repo, "1.0") == digest
    assert ecr.dest.refusals["unknown"] == 1
    assert len(ecr.api.tokens(DEST_ACCOUNT)) == 1
    assert chain.refusals(DEST_HOST) == [f"docker config auths ({stale_docker_login})"]


def test_every_source_refused_names_each_source(
    ecr: EcrPair, repo: str, stale_docker_login: Path
) -> None:
    """A stale docker login and an AWS identity the registry refuses: the copy fails with an
    authentication error whose message names both sources and holds no secret."""
    ten_layers(ecr.source_registry, repo)
    ecr.dest.deny = True
    transport, chain, copier = ecr.transport()
    try:
        with pytest.raises(AuthenticationError) as raised:
            copy(copier, repo)
    finally:
        transport.close()

    message = str(raised.value)
    assert f"docker config auths ({stale_docker_login}), then AWS identity {DEFAULT_ARN}" in message
    assert chain.refusals(DEST_HOST) == [
        f"docker config auths ({stale_docker_login})",
        f"AWS identity {DEFAULT_ARN}",
    ]
    assert ecr.api.identity_calls == 1
    leaks = [s for s in ecr.secrets | set(ecr.api.secrets()) if s in message]
    assert leaks == []


def test_cli_names_both_refused_sources_in_one_line(
    fake_api: FakeAwsApi,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    stale_docker_login: Path,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """promoter copy --config with a stale docker login and a refused AWS identity exits 1 with one
    line naming both sources, and prints no password, token or base64 user:password."""
    ten_layers(source_registry, repo)
    with EcrRegistryProxy(dest_registry.url, fake_api, host=DEST_HOST) as proxy:
        proxy.deny = True
        config = tmp_path / "promoter.yaml"
        ecr_settings = {"apiEndpoint": fake_api.url, "createRepositories": False}
        config.write_text(
            json.dumps({"registries": {DEST_HOST: {"endpoint": proxy.url, "ecr": ecr_settings}}})
        )
        result = cli(
            "copy",
            f"{source_registry.host}/{repo}:1.0",
            f"{DEST_HOST}/{repo}:1.0",
            "--config",
            str(config),
        )

    assert result.code == 1, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "docker config auths" in result.err
    assert f"AWS identity {DEFAULT_ARN}" in result.err
    stale = base64.b64encode(f"AWS:{STALE_PASSWORD}".encode()).decode()
    secrets = [STALE_PASSWORD, stale, *fake_api.secrets()]
    assert fake_api.secrets()
    assert [s for s in secrets if s in result.out + result.err] == []


# -- the chain's rules ----------------------------------------------------------------------------


class FakeSource:
    """A credential source with a script: whether it has a credential, whether it can renew it, how
    long its credentials live (None: no expiry), all on the test's clock."""

    def __init__(
        self,
        name: str,
        *,
        has: bool = True,
        renews: bool = False,
        lifetime: float | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.name = name
        self.has = has
        self.renews = renews
        self.lifetime = lifetime
        self.clock = clock
        self.lookups = 0
        self.renewals = 0

    def _issue(self) -> Credential:
        issued = self.lookups + self.renewals
        renew_at = None if self.lifetime is None else self.clock() + self.lifetime
        return Credential(self.name, f"{self.name}-{issued}", source=self.name, renew_at=renew_at)

    def lookup(self, registry: str) -> Credential | None:  # noqa: ARG002 - the source protocol
        """The next credential, if the script says it has one."""
        self.lookups += 1
        return self._issue() if self.has else None

    def renew(self, registry: str) -> Credential | None:  # noqa: ARG002 - the source protocol
        """A new credential, if the script says it can renew."""
        if not self.renews:
            return None
        self.renewals += 1
        return self._issue()

    def describe(self, registry: str, credential: Credential) -> str:  # noqa: ARG002
        """The label messages use."""
        return f"{self.name} (described)"


class Clock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("has", "expected", "asked"),
    [
        ((True, True, True), "a-1", (1, 0, 0)),
        ((False, True, True), "b-1", (1, 1, 0)),
        ((False, False, True), "c-1", (1, 1, 1)),
        ((False, False, False), None, (1, 1, 1)),
    ],
)
def test_the_first_source_with_a_credential_wins(
    has: tuple[bool, bool, bool], expected: str | None, asked: tuple[int, int, int]
) -> None:
    """Sources are asked in order until one has a credential; later ones are not asked."""
    sources = [FakeSource(name, has=flag) for name, flag in zip("abc", has, strict=True)]
    found = CredentialChain(sources).get("r")
    assert (found.password if found else None) == expected
    assert tuple(s.lookups for s in sources) == asked


@pytest.mark.parametrize(
    ("lifetime", "advance", "lookups"),
    [
        (None, 299.0, 1),  # no expiry: kept for the TTL
        (None, 300.0, 2),  # then the source is read again (a rotated docker config)
        (10.0, 9.9, 1),  # an expiring token: kept until its renew_at...
        (10.0, 10.0, 2),  # ...then asked for again, well within the TTL
    ],
)
def test_credentials_are_read_again_after_ttl_or_renew_at(
    lifetime: float | None, advance: float, lookups: int
) -> None:
    """A credential is cached until its renew_at, or for the TTL when it has none."""
    clock = Clock()
    source = FakeSource("a", lifetime=lifetime, clock=clock)
    chain = CredentialChain([source], ttl=300.0, clock=clock)
    first = chain.get("r")
    clock.now += advance
    again = chain.get("r")
    assert source.lookups == lookups
    assert (again == first) == (lookups == 1)


@pytest.mark.parametrize(
    ("expired", "renews", "offered", "refusals"),
    [
        (True, True, "a-2", []),  # expired and renewable: a fresh one from the same source
        (True, False, "b-1", ["a (described)"]),  # expired, cannot renew: the next source
        (False, True, "b-1", ["a (described)"]),  # refused otherwise: the next source, no renewal
    ],
)
def test_a_refusal_renews_or_moves_to_the_next_source(
    expired: bool, renews: bool, offered: str, refusals: list[str]
) -> None:
    """A credential called expired is renewed by its source when it can be; any other refusal (or
    one it cannot renew) passes over the source and offers the next one's."""
    first, second = FakeSource("a", renews=renews), FakeSource("b")
    chain = CredentialChain([first, second])
    refused = chain.get("r")
    assert refused is not None
    replacement = chain.refused("r", refused, expired=expired)
    assert replacement is not None
    assert replacement.password == offered
    assert chain.get("r") == replacement
    assert chain.refusals("r") == refusals
    assert first.renewals == (1 if expired and renews else 0)


def test_refusals_are_listed_in_order_until_nothing_is_left() -> None:
    """When every source is refused there is no replacement, each refused source is listed once,
    oldest first, and the last refused credential stays on offer (never anonymous); after the TTL
    the first source is asked again."""
    clock = Clock()
    sources = [FakeSource("a", clock=clock), FakeSource("b", clock=clock)]
    chain = CredentialChain(sources, ttl=300.0, clock=clock)
    offered = chain.get("r")
    assert offered is not None
    offered = chain.refused("r", offered, expired=False)
    assert offered is not None
    assert chain.refused("r", offered, expired=False) is None
    assert chain.refusals("r") == ["a (described)", "b (described)"]
    assert chain.get("r") == offered
    clock.now += 300.0
    again = chain.get("r")
    assert again is not None
    assert again.password == "a-2"


def test_a_refusal_with_no_alternative_keeps_the_credential() -> None:
    """A 403 for one repository must not turn the rest of the run anonymous: with no other source,
    the refused credential stays on offer and the refusal is only listed."""
    only = FakeSource("a")
    chain = CredentialChain([only])
    offered = chain.get("r")
    assert offered is not None
    assert chain.refused("r", offered, expired=False) is None
    assert chain.get("r") == offered
    assert chain.refusals("r") == ["a (described)"]


def test_a_repaired_credential_is_picked_up_seconds_after_a_refusal() -> None:
    """After a refusal nothing could replace, the source is read again within seconds, not after
    the whole TTL: an operator's repaired docker login reaches a long-running process."""
    clock = Clock()
    source = FakeSource("docker", clock=clock)
    chain = CredentialChain([source], ttl=300.0, clock=clock)
    stale = chain.get("r")
    assert stale is not None
    assert chain.refused("r", stale, expired=False) is None
    assert chain.get("r") == stale
    clock.now += REFUSED_RECHECK
    repaired = chain.get("r")
    assert repaired is not None
    assert repaired.password != stale.password
    assert source.lookups == 2


def test_refusals_under_traffic_do_not_postpone_the_re_read() -> None:
    """A refusal every second does not push the re-read back: the sources are asked again
    REFUSED_RECHECK seconds after the first refusal."""
    clock = Clock()
    source = FakeSource("docker", clock=clock)
    chain = CredentialChain([source], ttl=300.0, clock=clock)
    offered = chain.get("r")
    for _ in range(int(REFUSED_RECHECK)):
        assert offered is not None
        chain.refused("r", offered, expired=False)
        clock.now += 1.0
        offered = chain.get("r")
    assert source.lookups == 2


def test_a_proven_credential_is_kept_and_unexplained_refusals_renew_once_a_minute() -> None:
    """A credential the registry accepted before is not passed over on a refusal; a refusal without
    a reason renews a token at most once a minute (a denied repository asked again and again)."""
    clock = Clock()
    renewing = FakeSource("aws", renews=True, clock=clock)
    chain = CredentialChain([renewing, FakeSource("other")], clock=clock)
    offered = chain.get("r")
    assert offered is not None
    assert chain.refused("r", offered, expired=False, proven=True) is None
    assert chain.get("r") == offered
    renewed = chain.refused("r", offered, expired=False, maybe_expired=True, proven=True)
    assert renewed is not None
    for _ in range(5):
        clock.now += 1.0
        assert chain.refused("r", renewed, expired=False, maybe_expired=True, proven=True) is None
    assert renewing.renewals == 1
    clock.now += 60.0
    assert chain.refused("r", renewed, expired=False, maybe_expired=True, proven=True) is not None
    assert renewing.renewals == 2


def test_a_source_that_fails_while_asked_after_a_refusal_is_named_with_its_reason() -> None:
    """A stale docker login with no AWS identity: the refusal and the missing identity both show."""

    class Broken:
        name = "AWS identity"

        def lookup(self, registry: str) -> Credential | None:
            raise CredentialError(f"no AWS credentials found for {registry}")

        def renew(self, registry: str) -> Credential | None:
            return self.lookup(registry)

        def describe(self, registry: str, credential: Credential) -> str:  # noqa: ARG002
            return f"AWS identity for {registry}"

    chain = CredentialChain([FakeSource("docker"), Broken()])
    offered = chain.get("r")
    assert offered is not None
    assert chain.refused("r", offered, expired=False) is None
    assert chain.refusals("r") == [
        "docker (described)",
        "AWS identity (no AWS credentials found for r)",
    ]


def test_a_renewed_credential_refused_at_once_is_not_renewed_again() -> None:
    """A fresh token called expired within a second of its renewal passes over its source."""
    clock = Clock()
    chain = CredentialChain(
        [FakeSource("a", renews=True, clock=clock), FakeSource("b")], clock=clock
    )
    offered = chain.get("r")
    assert offered is not None
    renewed = chain.refused("r", offered, expired=True)
    assert renewed is not None
    assert renewed.username == "a"
    following = chain.refused("r", renewed, expired=True)
    assert following is not None
    assert following.username == "b"


def test_a_refusal_of_a_credential_already_replaced_offers_the_current_one() -> None:
    """Two requests refused with the same credential move the chain on once: the second refusal gets
    the replacement the first one found, and the source is renewed only once."""
    source = FakeSource("a", renews=True)
    chain = CredentialChain([source])
    old = chain.get("r")
    assert old is not None
    first = chain.refused("r", old, expired=True)
    second = chain.refused("r", old, expired=True)
    assert first is not None
    assert second == first
    assert source.renewals == 1
