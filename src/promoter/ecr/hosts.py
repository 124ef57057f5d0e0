"""Recognise ECR registries by their host name, the only thing a reference tells us about them."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Private ECR registry hosts (ECR user guide, "Private registry concepts"): the account id, then
# dkr.ecr, the region, and the partition's domain (amazonaws.com, amazonaws.com.cn in China).
# FIPS endpoints insert "-fips" after "ecr"; they name the same registry.
_ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.(?P<domain>amazonaws\.com(?:\.cn)?)"
)


@dataclass(frozen=True, slots=True)
class EcrRegistry:
    """A private ECR registry, as named by its host.

    Attributes:
        host: the registry host as written in image references.
        account: the 12-digit AWS account id that owns the registry.
        region: the AWS region, e.g. ``us-east-1``.
        partition: ``aws``, or ``aws-cn`` for the China regions; ARNs need it.
    """

    host: str
    account: str
    region: str
    partition: str

    @property
    def account_root(self) -> str:
        """The ARN that names the whole account as a policy principal."""
        return f"arn:{self.partition}:iam::{self.account}:root"


def parse_ecr_host(host: str) -> EcrRegistry | None:
    """The ECR registry a host names, or None when it is not an ECR host.

    A port is not part of an ECR host; ``host:443`` is not recognised, as ECR never shows one.
    """
    match = _ECR_HOST.fullmatch(host.lower())
    if match is None:
        return None
    partition = "aws-cn" if match["domain"].endswith(".cn") else "aws"
    return EcrRegistry(
        host=host.lower(), account=match["account"], region=match["region"], partition=partition
    )


def is_ecr_host(host: str) -> bool:
    """Whether ``host`` names a private ECR registry."""
    return parse_ecr_host(host) is not None


# An IAM role's ARN (IAM user guide, "IAM identifiers"): arn:PARTITION:iam::ACCOUNT:role/PATH/NAME,
# the path "/" or "/segments/" of printable ASCII, the name 1-64 of letters, digits and +=,.@_-.
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\x21-\x7e]{1,510}/)?[A-Za-z0-9+=,.@_-]{1,64}"
)


def is_role_arn(text: str) -> bool:
    """Whether ``text`` is an IAM role's ARN (``arn:aws:iam::123456789012:role/promoter``), as
    promoter.yaml's ``ecr.roleArn`` and the hook's ``PROMOTER_ROLE_ARN`` must be."""
    return _ROLE_ARN.fullmatch(text) is not None
