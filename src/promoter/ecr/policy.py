"""Repository policies that let another account pull: ``promoter ecr grant-pull``.

Each environment's account pulls from the account before it. Cross-account pulls need a statement
in every source repository's policy naming the destination account; a repository may already have
a policy (other consumers, CI roles), so ours is merged in under a stable ``Sid`` and everything else
is kept. Merging is pure and idempotent: merging twice gives what merging once gave, and a policy that
already holds our statement is not written again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from promoter.ecr.api import EcrApi
from promoter.ecr.hosts import EcrRegistry
from promoter.errors import AwsApiError, InputError

#: What a pull needs (ECR user guide, "Private repository policy examples": cross-account pull),
#: and ``ecr:ListImages``: the tag list tells promoter which signatures, attestations and SBOMs
#: (``sha256-<hex>`` tags) an image has, in one request per repository.
PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImages",
)
POLICY_VERSION = "2012-10-17"
_NO_POLICY = "RepositoryPolicyNotFoundException"


def pull_statement_id(account: str) -> str:
    """The ``Sid`` of promoter's statement for ``account``: stable, so re-runs find and keep it."""
    return f"promoter-pull-{account}"


def pull_statement(account: str, partition: str = "aws") -> dict[str, Any]:
    """The statement letting every principal of ``account`` that IAM allows it pull."""
    return {
        "Sid": pull_statement_id(account),
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
        "Action": list(PULL_ACTIONS),
    }


def merge_pull_statement(
    policy_text: str | None, account: str, partition: str = "aws"
) -> dict[str, Any]:
    """``policy_text`` (None for no policy) with promoter's pull statement for ``account`` in it.

    A statement with our ``Sid`` is replaced in place; every other statement is kept as it is.

    Raises:
        InputError: the existing policy is not a JSON object with a list of statements.
    """
    if policy_text is None or not policy_text.strip():
        document: dict[str, Any] = {"Version": POLICY_VERSION, "Statement": []}
    else:
        try:
            loaded = json.loads(policy_text)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"the existing repository policy is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError("the existing repository policy is not a JSON object")
        document = dict(loaded)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):  # IAM allows a single statement without the list
        statements = [statements]
    if not isinstance(statements, list):
        raise InputError(
            "the existing repository policy's Statement is neither a list nor an object"
        )
    ours = pull_statement(account, partition)
    merged = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == ours["Sid"])]
    position = next(
        (
            i
            for i, s in enumerate(statements)
            if isinstance(s, dict) and s.get("Sid") == ours["Sid"]
        ),
        len(merged),
    )
    merged.insert(position, ours)
    document["Statement"] = merged
    document.setdefault("Version", POLICY_VERSION)
    return document


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """The outcome for one repository.

    Attributes:
        repository: the repository name.
        policy: the policy it has after the grant (or would have, in a dry run).
        changed: whether the policy differs from the one it had.
    """

    repository: str
    policy: dict[str, Any]
    changed: bool


def grant_pull(
    api: EcrApi,
    registry: EcrRegistry,
    account: str,
    repositories: Sequence[str] = (),
    *,
    dry_run: bool = False,
) -> list[PolicyChange]:
    """Let ``account`` pull from ``repositories`` of ``registry`` (all of them when empty).

    Repositories whose policy already grants it are not written again.

    Raises:
        InputError: ``account`` is not a 12-digit account id, or a named repository is missing.
        CredentialError, AwsApiError: AWS refused or failed.
    """
    if not (len(account) == 12 and account.isdigit()):
        raise InputError(f"account {account!r} is not a 12-digit AWS account id")
    names = list(dict.fromkeys(repositories)) or list(_all_repositories(api, registry))
    changes = []
    for name in names:
        current = _policy_text(api, registry, name)
        wanted = merge_pull_statement(current, account, registry.partition)
        changed = current is None or json.loads(current) != wanted
        if changed and not dry_run:
            api.call(
                registry,
                "set_repository_policy",
                registryId=registry.account,
                repositoryName=name,
                policyText=json.dumps(wanted, indent=2),
            )
        changes.append(PolicyChange(name, wanted, changed))
    return changes


def _all_repositories(api: EcrApi, registry: EcrRegistry) -> Iterator[str]:
    token: str | None = None
    while True:
        extra: dict[str, Any] = {"nextToken": token} if token else {}
        page = api.call(
            registry, "describe_repositories", registryId=registry.account, maxResults=1000, **extra
        )
        for repository in page.get("repositories", []):
            yield str(repository["repositoryName"])
        token = page.get("nextToken")
        if not token:
            return


def _policy_text(api: EcrApi, registry: EcrRegistry, repository: str) -> str | None:
    try:
        answer = api.call(
            registry,
            "get_repository_policy",
            registryId=registry.account,
            repositoryName=repository,
        )
    except AwsApiError as exc:
        if exc.code == _NO_POLICY:
            return None
        if exc.code == "RepositoryNotFoundException":
            raise InputError(f"repository {repository} does not exist in {registry.host}") from None
        raise
    text = answer.get("policyText")
    return str(text) if text else None
