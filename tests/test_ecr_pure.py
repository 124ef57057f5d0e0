"""ECR's pure parts: host recognition, token decoding, renewal time, the token source's caching and
naming (with a stub of the AWS side), and policy merging."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from promoter.authn.store import Credential
from promoter.ecr.credentials import EcrTokenSource, decode_token, renew_time
from promoter.ecr.hosts import EcrRegistry, is_ecr_host, parse_ecr_host
from promoter.ecr.policy import PULL_ACTIONS, merge_pull_statement, pull_statement
from promoter.ecr.settings import EcrSettings
from promoter.errors import CredentialError, InputError


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (
            "111111111111.dkr.ecr.us-east-1.amazonaws.com",
            EcrRegistry(
                "111111111111.dkr.ecr.us-east-1.amazonaws.com", "111111111111", "us-east-1", "aws"
            ),
        ),
        (
            "222222222222.dkr.ecr.cn-north-1.amazonaws.com.cn",
            EcrRegistry(
                "222222222222.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "222222222222",
                "cn-north-1",
                "aws-cn",
            ),
        ),
        (
            "333333333333.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            EcrRegistry(
                "333333333333.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                "333333333333",
                "us-gov-west-1",
                "aws",
            ),
        ),
        ("public.ecr.aws", None),
        ("11111111111.dkr.ecr.us-east-1.amazonaws.com", None),
        ("111111111111.dkr.ecr.us-east-1.amazonaws.com:443", None),
        ("111111111111.dkr.ecr.us-east-1.amazonaws.com.evil.example", None),
        ("docker.io", None),
        ("127.0.0.1:5000", None),
    ],
)
def test_parse_ecr_host(host: str, expected: EcrRegistry | None) -> None:
    """Private ECR hosts (both partitions, FIPS) are recognised with account and region; others not."""
    assert parse_ecr_host(host) == expected


def test_account_root_uses_the_partition() -> None:
    """The principal ARN of an account names the host's partition (aws-cn in China)."""
    china = parse_ecr_host("222222222222.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert china is not None
    assert china.account_root == "arn:aws-cn:iam::222222222222:root"


def test_decode_token() -> None:
    """An authorization token is base64 of AWS:<password>; other forms fail without showing it."""
    token = base64.b64encode(b"AWS:s3cr3t-pass:word").decode()
    credential = decode_token(token, "host")
    assert (credential.username, credential.password) == ("AWS", "s3cr3t-pass:word")
    with pytest.raises(CredentialError) as raised:
        decode_token(base64.b64encode(b"nocolon").decode(), "host")
    assert "nocolon" not in str(raised.value)


ISSUED = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expires_at", "renew_at"),
    [
        # ECR's 12 hours: five minutes before expiry.
        (ISSUED + dt.timedelta(hours=12), ISSUED + dt.timedelta(hours=11, minutes=55)),
        # Twenty minutes: a quarter would be five minutes as well.
        (ISSUED + dt.timedelta(minutes=20), ISSUED + dt.timedelta(minutes=15)),
        # Shorter tokens: at three quarters of their life, still before they expire.
        (ISSUED + dt.timedelta(minutes=8), ISSUED + dt.timedelta(minutes=6)),
        (ISSUED + dt.timedelta(seconds=2), ISSUED + dt.timedelta(seconds=1.5)),
        # An expiry that is not in the future (clocks disagree; moto's fixed 2015 date): the
        # documented 12 hours from the answer, less five minutes.
        (ISSUED, ISSUED + dt.timedelta(hours=11, minutes=55)),
        (dt.datetime(2015, 1, 1, tzinfo=dt.UTC), ISSUED + dt.timedelta(hours=11, minutes=55)),
        # A naive expiresAt is read as UTC.
        (dt.datetime(2030, 1, 1, 12, 0), ISSUED + dt.timedelta(hours=11, minutes=55)),  # noqa: DTZ001
    ],
)
def test_renew_time(expires_at: dt.datetime, renew_at: dt.datetime) -> None:
    """A token is replaced a quarter of its lifetime, at most five minutes, before its expiresAt."""
    assert renew_time(expires_at, ISSUED) == renew_at


# -- the token source, with a stub of the AWS side --------------------------------------------------

HOST = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
ARN = "arn:aws:iam::111111111111:user/ci"
ROLE = "arn:aws:iam::111111111111:role/promoter"


class StubApi:
    """EcrApi's surface that the token source uses: numbered tokens of a set lifetime, a caller ARN,
    the calls made."""

    def __init__(
        self, lifetime: dt.timedelta, *, role_arn: str | None = None, identity: str | None = ARN
    ) -> None:
        self.lifetime = lifetime
        self.role_arn = role_arn
        self.identity = identity
        self.token_calls: list[dict[str, Any]] = []
        self.identity_calls = 0

    def settings(self, registry: EcrRegistry) -> EcrSettings:  # noqa: ARG002 - EcrApi's shape
        """The registry's settings: only roleArn matters here."""
        return EcrSettings(role_arn=self.role_arn)

    def now(self) -> dt.datetime:
        """The wall clock: always the moment of issue."""
        return ISSUED

    def call(self, registry: EcrRegistry, operation: str, **params: Any) -> dict[str, Any]:  # noqa: ARG002
        """GetAuthorizationToken: token-1, token-2, ... expiring ``lifetime`` after ISSUED."""
        assert operation == "get_authorization_token"
        self.token_calls.append(params)
        password = f"token-{len(self.token_calls)}"
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return {
            "authorizationData": [
                {"authorizationToken": token, "expiresAt": ISSUED + self.lifetime}
            ]
        }

    def caller_arn(self, registry: EcrRegistry) -> str:  # noqa: ARG002 - EcrApi's shape
        """The identity, or a credential error when it is None."""
        self.identity_calls += 1
        if self.identity is None:
            raise CredentialError("sts:GetCallerIdentity: AWS refused the credentials")
        return self.identity


class Clock:
    """Monotonic seconds that move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _source(api: StubApi, clock: Clock, is_ecr: Any = is_ecr_host) -> EcrTokenSource:
    return EcrTokenSource(api, is_ecr=is_ecr, clock=clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lifetime", "kept"),
    [(dt.timedelta(hours=12), 12 * 3600 - 300), (dt.timedelta(seconds=2), 1.5)],
)
def test_tokens_are_cached_until_their_renewal_time(lifetime: dt.timedelta, kept: float) -> None:
    """lookup fetches a token for the registry's account once and hands it out until renew_at,
    which is on the monotonic clock; after that it fetches a new one."""
    api, clock = StubApi(lifetime), Clock()
    source = _source(api, clock)
    first = source.lookup(HOST)
    assert first == Credential("AWS", "token-1")
    assert first is not None
    assert (first.source, first.renew_at) == ("AWS identity", pytest.approx(1000.0 + kept))
    assert api.token_calls == [{"unreachable": CredentialError, "registryIds": ["111111111111"]}]
    clock.now += kept - 0.01
    assert source.lookup(HOST) == first
    clock.now += 0.01
    assert source.lookup(HOST) == Credential("AWS", "token-2")


def test_renew_ignores_the_cache() -> None:
    """renew fetches a new token although the cached one is not due; lookup then hands that out."""
    api, clock = StubApi(dt.timedelta(hours=12)), Clock()
    source = _source(api, clock)
    assert source.lookup(HOST) == Credential("AWS", "token-1")
    assert source.renew(HOST) == Credential("AWS", "token-2")
    assert source.lookup(HOST) == Credential("AWS", "token-2")
    assert len(api.token_calls) == 2


@pytest.mark.parametrize(
    ("host", "is_ecr"),
    [
        ("registry.example.com", is_ecr_host),
        ("127.0.0.1:5000", is_ecr_host),
        (HOST, lambda _host: False),  # an ECR name served by a mirror: no AWS treatment
    ],
)
def test_other_hosts_get_nothing(host: str, is_ecr: Any) -> None:
    """Hosts that are not ECR registries (as is_ecr says) get None from lookup and renew, and no
    AWS call is made."""
    api = StubApi(dt.timedelta(hours=12))
    source = _source(api, Clock(), is_ecr)
    assert source.lookup(host) is None
    assert source.renew(host) is None
    assert api.token_calls == []


@pytest.mark.parametrize(
    ("role_arn", "identity", "label", "identity_calls"),
    [
        (None, ARN, f"AWS identity {ARN}", 1),  # from sts:GetCallerIdentity, asked once
        (ROLE, ARN, f"AWS identity {ROLE}", 0),  # the configured role, without a call
        (None, None, "AWS identity", 1),  # STS failed: the bare name, asked once all the same
        (
            None,
            "arn:aws:iam::1:user/a\nb  c",
            "AWS identity arn:aws:iam::1:user/a b c",
            1,
        ),  # one line
    ],
)
def test_describe_names_the_aws_identity(
    role_arn: str | None, identity: str | None, label: str, identity_calls: int
) -> None:
    """A refused token is described as the AWS identity by its ARN (one line), cached per host;
    a failing STS call never fails the description."""
    api = StubApi(dt.timedelta(hours=12), role_arn=role_arn, identity=identity)
    source = _source(api, Clock())
    credential = source.lookup(HOST)
    assert credential is not None
    assert source.describe(HOST, credential) == label
    assert source.describe(HOST, credential) == label
    assert api.identity_calls == identity_calls
    assert credential.source == (f"AWS identity {role_arn}" if role_arn else "AWS identity")


OTHER = {
    "Sid": "ci",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::999:root"},
    "Action": "ecr:*",
}


@pytest.mark.parametrize(
    ("existing", "statements"),
    [
        (None, [pull_statement("222222222222")]),
        ("", [pull_statement("222222222222")]),
        (
            json.dumps({"Version": "2012-10-17", "Statement": [OTHER]}),
            [OTHER, pull_statement("222222222222")],
        ),
        (
            json.dumps({"Version": "2012-10-17", "Statement": OTHER}),
            [OTHER, pull_statement("222222222222")],
        ),
        (
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Sid": "promoter-pull-222222222222", "Effect": "Allow", "Action": "x"},
                        OTHER,
                    ],
                }
            ),
            [pull_statement("222222222222"), OTHER],
        ),
    ],
)
def test_merge_pull_statement(existing: str | None, statements: list[object]) -> None:
    """Our statement is added or replaced in place under its Sid; other statements stay as they are."""
    merged = merge_pull_statement(existing, "222222222222")
    assert merged["Version"] == "2012-10-17"
    assert merged["Statement"] == statements


def test_merge_is_idempotent() -> None:
    """Merging into an already merged policy gives the same policy."""
    once = merge_pull_statement(json.dumps({"Statement": [OTHER]}), "222222222222")
    assert merge_pull_statement(json.dumps(once), "222222222222") == once


def test_pull_statement_grants_exactly_pull() -> None:
    """The statement allows the account root the three pull actions and nothing else."""
    statement = pull_statement("222222222222")
    assert statement["Principal"] == {"AWS": "arn:aws:iam::222222222222:root"}
    assert statement["Action"] == list(PULL_ACTIONS)
    assert statement["Sid"] == "promoter-pull-222222222222"


@pytest.mark.parametrize("existing", ["not json", "[]", '{"Statement": 3}'])
def test_merge_refuses_unreadable_policies(existing: str) -> None:
    """A policy that is not an object with statements is an input error, not a silent overwrite."""
    with pytest.raises(InputError):
        merge_pull_statement(existing, "222222222222")
