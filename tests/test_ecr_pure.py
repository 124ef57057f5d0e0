"""ECR's pure parts: host recognition, token decoding, renewal time and policy merging."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from promoter.ecr.credentials import decode_token, renew_time
from promoter.ecr.hosts import EcrRegistry, parse_ecr_host
from promoter.ecr.policy import PULL_ACTIONS, merge_pull_statement, pull_statement
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


def test_tokens_are_renewed_five_minutes_before_expiry() -> None:
    """A cached token is replaced five minutes before its expiresAt."""
    expires = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert renew_time(expires) == dt.datetime(2030, 1, 1, 11, 55, tzinfo=dt.UTC)


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
