"""ECR end to end: the AWS API served by moto's server mode, the registry API by a real Distribution
registry behind htpasswd (user AWS, password from moto's GetAuthorizationToken), reached through
promoter.yaml's endpoint under real-looking ECR host names."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push
from werkzeug.serving import make_server

from promoter.app.prune import PrunePlan, RepositoryPrune, _recent, carry_out_prune
from promoter.app.runtime import Runtime, RuntimeSettings
from promoter.config.values import RegistrySettings
from promoter.ecr.api import EcrApi
from promoter.ecr.hosts import parse_ecr_host
from promoter.ecr.images import ImageId, batch_delete_images, pushed_at
from promoter.ecr.settings import EcrSettings
from promoter.errors import AwsApiError
from promoter.oci.digest import parse_digest
from promoter.planning.prune import PruneAction, PruneEntry
from promoter.reference import parse_reference
from promoter.remote.copy import Copier
from promoter.transport.session import Transport

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
REGION = "us-east-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
READY_TIMEOUT_S = 10.0
_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Moto:
    """moto's server on loopback: the ECR and STS APIs."""

    url: str

    def reset(self) -> None:
        """Forget every repository, policy and role of earlier tests."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback http only
            pass

    def ecr(self, **keys: str) -> Any:
        """A boto3 ECR client for checking what promoter did (ambient test keys by default)."""
        return boto3.client("ecr", region_name=REGION, endpoint_url=self.url, **(keys or _KEYS))


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """moto's server mode on a kernel-chosen loopback port, ready within a bounded wait."""
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):  # noqa: S310
                break
        except OSError:
            if time.monotonic() > deadline:
                server.shutdown()
                raise
            time.sleep(0.05)
    yield Moto(url)
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def ecr_registry(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """The data plane of account 111111111111: Basic auth with the password moto's token carries."""
    token = moto.ecr().get_authorization_token(registryIds=[ACCOUNT])["authorizationData"][0]
    user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    registry = RegistryProcess(
        tmp_path_factory.mktemp("ecr"), name="ecr", auth="basic", username=user, password=password
    )
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture
def aws(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """Ambient AWS credentials for this test only, moto emptied, account 111111111111."""
    moto.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    return moto


def write_config(path: Path, registries: dict[str, Any]) -> Path:
    """A promoter.yaml (JSON is YAML) with one environment and the given registry settings."""
    document = {
        "environments": {
            "dev": {"overlay": "dev", "registry": HOST},
            "production": {
                "overlay": "prod",
                "registry": f"{OTHER_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
                "promotesFrom": "dev",
            },
        },
        "registries": registries,
    }
    path.write_text(json.dumps(document))
    return path


def seed(registry: RegistryProcess, repo: str, tag: str = "1.0", salt: str = "") -> str:
    """A small image in the source registry; returns its digest."""
    image = images.oci_image([images.layer(300, repo + salt)], seed=repo + salt)
    return push(registry, repo, image, tag=tag)


def sync(cli: Callable[..., CliRun], source: RegistryProcess, config: Path, *refs: str) -> CliRun:
    """``promoter sync --from-registry SRC --image REF... --config FILE -o json`` (a ``--`` word
    among ``refs`` is passed as an option)."""
    images_args = [
        arg for ref in refs for arg in ((ref,) if ref.startswith("--") else ("--image", ref))
    ]
    return cli(
        "sync", "--from-registry", source.host, *images_args, "--config", str(config), "-o", "json"
    )


SETTINGS = {
    "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
    "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
    "imageScanningConfiguration": {"scanOnPush": True},
    "encryptionConfiguration": {"encryptionType": "AES256"},
    "tags": [{"Key": "team", "Value": "shop"}],
    "repositoryPolicy": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ci",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                "Action": ["ecr:BatchGetImage"],
            }
        ],
    },
    "lifecyclePolicy": {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "imageCountMoreThan",
                    "countNumber": 5,
                },
                "action": {"type": "expire"},
            }
        ]
    },
}


def test_sync_creates_the_repository_with_settings_and_reruns_read_only(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """With credentials only from the AWS identity, a missing repository is created with the
    configured settings and policies before the push; a re-run sends only HEADs and one token call."""
    digest = seed(source_registry, repo)
    settings = {"apiEndpoint": aws.url, "repository": SETTINGS}
    config = write_config(
        tmp_path / "promoter.yaml", {HOST: {"endpoint": ecr_registry.url, "ecr": settings}}
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 0, result.err
    assert manifest_digest(ecr_registry, repo, "1.0") == digest
    assert ecr_registry.password is not None
    assert ecr_registry.password not in result.out + result.err

    ecr = aws.ecr()
    [made] = ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    assert made["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert made["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "latest"}
    ]
    assert made["imageScanningConfiguration"] == {"scanOnPush": True}
    assert made["encryptionConfiguration"]["encryptionType"] == "AES256"
    tags = ecr.list_tags_for_resource(resourceArn=made["repositoryArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "shop"}]
    policy = json.loads(ecr.get_repository_policy(repositoryName=repo)["policyText"])
    assert policy["Statement"][0]["Sid"] == "ci"
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"]["tagStatus"] == "untagged"

    with FaultProxy(ecr_registry.url) as registry_proxy, FaultProxy(aws.url) as api_proxy:
        settings["apiEndpoint"] = api_proxy.url
        write_config(config, {HOST: {"endpoint": registry_proxy.url, "ecr": settings}})
        again = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
        registry_methods = {hit.method for hit in registry_proxy.hits}
        api_calls = len(api_proxy.hits)
    assert again.code == 0, again.err
    assert [i["status"] for i in again.json()["images"]] == ["present"]  # type: ignore[index]
    assert registry_methods <= {"GET", "HEAD"}
    assert api_calls == 1  # GetAuthorizationToken only: no repository call when nothing is written


def test_blobs_are_not_asked_for_in_a_repository_the_run_created(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Into a repository the run just created nothing is there: its blobs are uploaded without a
    HEAD each first; into one that existed, each blob is asked for (it may be there)."""
    seed(source_registry, repo)
    seed(source_registry, repo, tag="2.0", salt="two")
    with FaultProxy(ecr_registry.url) as registry_proxy:
        settings = {"apiEndpoint": aws.url}
        config = write_config(
            tmp_path / "promoter.yaml", {HOST: {"endpoint": registry_proxy.url, "ecr": settings}}
        )
        first = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
        assert first.code == 0, first.err
        new_repository = list(registry_proxy.hits)
        registry_proxy.hits.clear()
        second = sync(cli, source_registry, config, f"{HOST}/{repo}:2.0")
        assert second.code == 0, second.err
        existing_repository = list(registry_proxy.hits)

    def blob_heads(hits: list[Any]) -> int:
        return sum(1 for hit in hits if hit.method == "HEAD" and "/blobs/" in hit.path)

    assert blob_heads(new_repository) == 0
    assert sum(1 for hit in new_repository if hit.method == "POST") == 2  # config and layer
    assert blob_heads(existing_repository) == 2


def test_an_existing_repository_is_left_as_it_is(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """A destination repository that exists keeps its own settings; the image is pushed into it."""
    aws.ecr().create_repository(repositoryName=repo, imageTagMutability="MUTABLE")
    digest = seed(source_registry, repo)
    settings = {"apiEndpoint": aws.url, "repository": SETTINGS}
    config = write_config(
        tmp_path / "promoter.yaml", {HOST: {"endpoint": ecr_registry.url, "ecr": settings}}
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 0, result.err
    assert manifest_digest(ecr_registry, repo, "1.0") == digest
    [kept] = aws.ecr().describe_repositories(repositoryNames=[repo])["repositories"]
    assert kept["imageTagMutability"] == "MUTABLE"
    assert aws.ecr().list_tags_for_resource(resourceArn=kept["repositoryArn"])["tags"] == []
    with pytest.raises(aws.ecr().exceptions.RepositoryPolicyNotFoundException):
        aws.ecr().get_repository_policy(repositoryName=repo)


def test_immutable_repository_reruns_succeed_and_a_moved_tag_is_refused(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Into an IMMUTABLE repository a re-run writes nothing and succeeds; a source tag that now
    names other content leaves the hook green (diverged, a warning), and under --fail-on-diverged
    is refused with a message saying the destination tag is immutable."""
    seed(source_registry, repo)
    config = write_config(
        tmp_path / "promoter.yaml",
        {
            HOST: {
                "endpoint": ecr_registry.url,
                "ecr": {"apiEndpoint": aws.url, "repository": {"imageTagMutability": "IMMUTABLE"}},
            }
        },
    )
    assert sync(cli, source_registry, config, f"{HOST}/{repo}:1.0").code == 0
    again = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert again.code == 0, again.err

    seed(source_registry, repo, salt="rebuilt")  # CI moved the source tag
    moved = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert moved.code == 0, moved.err
    [entry] = moved.json()["images"]  # type: ignore[misc]
    assert entry["status"] == "diverged"
    assert "pushed again" in entry["warning"]
    strict = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0", "--fail-on-diverged")
    assert strict.code == 3
    [entry] = strict.json()["images"]  # type: ignore[misc]
    assert entry["status"] == "diverged"
    assert "immutable" in entry["error"]


def test_force_reports_the_registrys_immutable_tag_refusal(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """copy --force onto a tag the registry keeps immutable fails with exit 3 and says the tag is
    immutable (ECR's 400 TAG_INVALID answer to the manifest PUT, replayed in front of a registry)."""
    seed(source_registry, repo)
    seed(dest_registry, repo, salt="older")
    ecr_answer = json.dumps(
        {
            "errors": [
                {
                    "code": "TAG_INVALID",
                    "message": f"The image tag '1.0' already exists in the '{repo}' repository and "
                    "cannot be overwritten because the tag is immutable.",
                }
            ]
        }
    ).encode()
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/1\.0$", status=400, body=ecr_answer)
        result = cli(
            "copy", "--force", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0"
        )
    assert result.code == 3
    assert "tag is immutable" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_docker_config_credentials_are_used_before_aws(
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials for an ECR host in the docker config are used as for any registry; with no AWS
    identity at all and repository creation off, the copy needs no AWS call."""
    digest = seed(source_registry, repo)
    auth = base64.b64encode(f"{ecr_registry.username}:{ecr_registry.password}".encode()).decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {HOST: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    settings = {"apiEndpoint": "http://127.0.0.1:9", "createRepositories": False}
    config = write_config(
        tmp_path / "promoter.yaml", {HOST: {"endpoint": ecr_registry.url, "ecr": settings}}
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 0, result.err
    assert manifest_digest(ecr_registry, repo, "1.0") == digest


def test_role_arn_is_assumed(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ecr.roleArn, ECR calls use the assumed role: the repository lands in the role's account,
    not in the ambient identity's."""
    monkeypatch.delenv("MOTO_ACCOUNT_ID")  # the ambient keys are moto's default account now
    seed(source_registry, repo)
    role = f"arn:aws:iam::{ACCOUNT}:role/promoter"
    settings = {"apiEndpoint": aws.url, "roleArn": role}
    config = write_config(
        tmp_path / "promoter.yaml", {HOST: {"endpoint": ecr_registry.url, "ecr": settings}}
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 0, result.err
    sts = boto3.client("sts", region_name=REGION, endpoint_url=aws.url, **_KEYS)
    keys = sts.assume_role(RoleArn=role, RoleSessionName="check")["Credentials"]
    as_role = aws.ecr(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )
    [made] = as_role.describe_repositories(repositoryNames=[repo])["repositories"]
    assert made["registryId"] == ACCOUNT
    assert aws.ecr().describe_repositories()["repositories"] == []


def test_missing_aws_credentials_are_one_line(
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No AWS identity (and no docker config) is a one-line credential error, exit 1."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    seed(source_registry, repo)
    config = write_config(
        tmp_path / "promoter.yaml",
        {HOST: {"endpoint": ecr_registry.url, "ecr": {"apiEndpoint": "http://127.0.0.1:9"}}},
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 1
    [entry] = result.json()["images"]  # type: ignore[misc]
    assert "no AWS credentials found" in entry["error"]


def test_unreachable_aws_api_is_one_line(
    aws: Moto,
    ecr_registry: RegistryProcess,
    source_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """An AWS endpoint nobody listens on is reported as unreachable, naming the endpoint."""
    seed(source_registry, repo)
    config = write_config(
        tmp_path / "promoter.yaml",
        {HOST: {"endpoint": ecr_registry.url, "ecr": {"apiEndpoint": "http://127.0.0.1:9"}}},
    )
    result = sync(cli, source_registry, config, f"{HOST}/{repo}:1.0")
    assert result.code == 1
    [entry] = result.json()["images"]  # type: ignore[misc]
    assert "cannot reach the AWS API at http://127.0.0.1:9" in entry["error"]


# -- grant-pull ------------------------------------------------------------------------------------


def _policy(aws: Moto, repository: str) -> dict[str, Any] | None:
    try:
        return json.loads(aws.ecr().get_repository_policy(repositoryName=repository)["policyText"])  # type: ignore[no-any-return]
    except aws.ecr().exceptions.RepositoryPolicyNotFoundException:
        return None


def test_grant_pull_merges_and_is_idempotent(
    aws: Moto, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grant-pull adds the destination account's pull statement to every repository of the source
    registry named by promoter.yaml, keeps other statements, and changes nothing when re-run."""
    ecr = aws.ecr()
    for name in ("shop/cart", "shop/catalog"):
        ecr.create_repository(repositoryName=name)
    other = {
        "Sid": "ci",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
        "Action": ["ecr:BatchGetImage"],
    }
    ecr.set_repository_policy(
        repositoryName="shop/cart",
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [other]}),
    )
    write_config(tmp_path / "promoter.yaml", {HOST: {"ecr": {"apiEndpoint": aws.url}}})
    monkeypatch.chdir(tmp_path)
    result = cli("ecr", "grant-pull", "--account", OTHER_ACCOUNT)
    assert result.code == 0, result.err
    assert result.out.count("granted") == 2
    cart, catalog = _policy(aws, "shop/cart"), _policy(aws, "shop/catalog")
    assert cart is not None
    assert catalog is not None
    assert cart["Statement"][0] == other
    ours = cart["Statement"][1]
    assert ours["Sid"] == f"promoter-pull-{OTHER_ACCOUNT}"
    assert ours["Principal"] == {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}
    assert sorted(ours["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:ListImages",
    ]
    assert catalog["Statement"] == [ours]

    again = cli("ecr", "grant-pull", "--account", OTHER_ACCOUNT, "--registry", HOST)
    assert again.code == 0, again.err
    assert again.out.count("unchanged") == 2
    assert _policy(aws, "shop/cart") == cart


def test_grant_pull_starts_no_aws_call_past_the_run_timeout(
    aws: Moto, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--timeout holds for the AWS side too: no ECR call starts once it has passed."""
    aws.ecr().create_repository(repositoryName="shop/cart")
    write_config(tmp_path / "promoter.yaml", {HOST: {"ecr": {"apiEndpoint": aws.url}}})
    monkeypatch.chdir(tmp_path)
    result = cli("--timeout", "0.000001", "ecr", "grant-pull", "--account", OTHER_ACCOUNT)
    assert result.code == 1
    assert "ecr:" in result.err
    assert "deadline" in result.err
    assert result.err.count("\n") == 1
    assert _policy(aws, "shop/cart") is None


def test_grant_pull_dry_run_prints_and_changes_nothing(
    aws: Moto, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--dry-run prints the policies grant-pull would set, as JSON, and sets none of them."""
    aws.ecr().create_repository(repositoryName="shop/cart")
    aws.ecr().create_repository(repositoryName="shop/other")
    config = write_config(tmp_path / "promoter.yaml", {HOST: {"ecr": {"apiEndpoint": aws.url}}})
    result = cli(
        "ecr",
        "grant-pull",
        "--account",
        OTHER_ACCOUNT,
        "--repository",
        "shop/cart",
        "--registry",
        HOST,
        "--config",
        str(config),
        "--dry-run",
    )
    assert result.code == 0, result.err
    document = result.json()
    [entry] = document["repositories"]  # type: ignore[misc]
    assert entry["repository"] == "shop/cart"
    assert entry["changed"] is True
    assert entry["policy"]["Statement"][0]["Sid"] == f"promoter-pull-{OTHER_ACCOUNT}"
    assert _policy(aws, "shop/cart") is None


def test_grant_pull_needs_a_registry(
    cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --registry and without a promoter.yaml naming one source ECR registry, exit 2."""
    monkeypatch.chdir(tmp_path)
    result = cli("ecr", "grant-pull", "--account", OTHER_ACCOUNT)
    assert result.code == 2
    assert "--registry" in result.err


@pytest.mark.parametrize(
    ("ecr", "message"),
    [
        ({"roleARN": "x"}, "ecr: unknown key 'roleARN'"),
        ({"repository": {"imageTagMutability": "FROZEN"}}, "imageTagMutability: expected one of"),
        (
            {
                "repository": {
                    "imageTagMutability": "IMMUTABLE",
                    "imageTagMutabilityExclusionFilters": [
                        {"filterType": "WILDCARD", "filter": "x"}
                    ],
                }
            },
            "imageTagMutabilityExclusionFilters: required with",
        ),
        ({"repository": {"tags": {"team": "shop"}}}, "repository.tags: expected a list"),
        ({"createRepositories": "yes"}, "createRepositories: expected a boolean"),
        ({"roleArn": "promoter"}, "roleArn: expected a role ARN"),
        ({"apiEndpoint": "localhost:5000"}, "apiEndpoint: expected an http"),
        ({"repository": {"repositoryPolicy": "{not json"}}, "repositoryPolicy: not valid JSON"),
    ],
)
def test_bad_ecr_settings_exit_2(
    ecr: dict[str, Any], message: str, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """A wrong key or value under registries.<host>.ecr is one line naming it, exit 2."""
    config = write_config(tmp_path / "promoter.yaml", {HOST: {"ecr": ecr}})
    result = cli(
        "ecr", "grant-pull", "--account", OTHER_ACCOUNT, "--config", str(config), "--dry-run"
    )
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_ecr_section_only_for_ecr_hosts(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """An ecr section under a registry that is not an ECR host is refused, exit 2."""
    config = write_config(tmp_path / "promoter.yaml", {"registry.example.com": {"ecr": {}}})
    result = cli(
        "ecr", "grant-pull", "--account", OTHER_ACCOUNT, "--config", str(config), "--registry", HOST
    )
    assert result.code == 2
    assert "is not an ECR registry host" in result.err


def test_prepare_destination_runs_once_per_repository_before_writes(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """The copier calls its prepare_destination hook once per destination repository, however many
    images go there concurrently, and not at all for an image that is already present."""
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def prepare(registry: str, repository: str) -> None:
        with lock:
            calls.append((registry, repository))
        time.sleep(0.05)  # let the other images arrive while the first prepares

    pairs = []
    for tag in ("1", "2", "3"):
        seed(source_registry, repo, tag=tag, salt=tag)
        pairs.append(
            (
                parse_reference(f"{source_registry.host}/{repo}:{tag}"),
                parse_reference(f"{dest_registry.host}/{repo}:{tag}"),
            )
        )
    transport = Transport()
    try:
        with Copier(transport, prepare_destination=prepare) as copier:
            outcomes = copier.copy_all(pairs)
        assert all(not isinstance(o, Exception) for o in outcomes), outcomes
        assert calls == [(dest_registry.host, repo)]
        calls.clear()
        with Copier(transport, prepare_destination=prepare) as copier:
            copier.copy(*pairs[0])
        assert calls == []
    finally:
        transport.close()


# -- images through the AWS API: batch delete, push times (ecr/images.py) ------------------------


def ecr_api(endpoint: str) -> EcrApi:
    """promoter's AWS side for account 111111111111's registry, calling ``endpoint``."""
    return EcrApi({HOST: EcrSettings(api_endpoint=endpoint)})


def put_images(ecr: Any, repo: str, count: int, *, tags: tuple[str, ...] = ()) -> list[str]:
    """``count`` distinct manifests put into moto's ``repo`` as ``v0``, ``v1``... (plus ``tags`` on
    the first); returns their digests as ECR names them."""
    digests = []
    for number in range(count):
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{number:064x}",
                    "size": 2,
                },
                # moto names an image by its layers' digests: one layer of its own each
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{number + 1:064x}",
                        "size": 1,
                    }
                ],
            }
        )
        for tag in (f"v{number}", *(tags if number == 0 else ())):
            answer = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=tag)
        digests.append(answer["image"]["imageId"]["imageDigest"])
    return digests


def test_batch_delete_sends_at_most_100_images_per_call_and_reports_failures(
    aws: Moto, repo: str
) -> None:
    """250 images and 2 that are not there (one id repeated) go in 3 BatchDeleteImage calls: all
    250 are deleted, and the 2 come back as ImageNotFound failures instead of an error."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    digests = put_images(ecr, repo, 250)
    absent_digest = ImageId(digest=parse_digest("sha256:" + "f" * 64))
    absent_tag = ImageId(tag="never-pushed")
    wanted = [ImageId(digest=parse_digest(d)) for d in digests]
    registry = parse_ecr_host(HOST)
    assert registry is not None

    with FaultProxy(aws.url) as api_proxy:
        result = batch_delete_images(
            ecr_api(api_proxy.url),
            registry,
            repo,
            [*wanted, absent_digest, wanted[0], absent_tag],
        )
        calls = len(api_proxy.hits)

    assert calls == 3
    assert result.calls == 3
    assert {str(image.digest) for image in result.deleted} == set(digests)
    assert {(f.image, f.code, f.gone) for f in result.failures} == {
        (absent_digest, "ImageNotFound", True),
        (absent_tag, "ImageNotFound", True),
    }
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []


def test_batch_delete_by_tag_removes_the_tag_and_the_image_with_its_last_tag(
    aws: Moto, repo: str
) -> None:
    """Deleting one of two tags of an image keeps the image under the other; deleting a single
    tag deletes its image."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    first, second = put_images(ecr, repo, 2, tags=("stable",))
    registry = parse_ecr_host(HOST)
    assert registry is not None

    result = batch_delete_images(
        ecr_api(aws.url), registry, repo, [ImageId(tag="v0"), ImageId(tag="v1")]
    )

    assert result.failures == ()
    details = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(first, ["stable"])]
    assert second not in {d["imageDigest"] for d in details}


def test_pushed_at_names_every_tag_and_digest_with_its_push_time(aws: Moto, repo: str) -> None:
    """pushed_at gives each tag and each digest the imagePushedAt DescribeImages reports, in UTC."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    digests = put_images(ecr, repo, 3, tags=("stable",))
    registry = parse_ecr_host(HOST)
    assert registry is not None

    times = pushed_at(ecr_api(aws.url), registry, repo)

    reported = {
        d["imageDigest"]: d["imagePushedAt"]
        for d in ecr.describe_images(repositoryName=repo)["imageDetails"]
    }
    assert set(times) == {"v0", "v1", "v2", "stable", *digests}
    assert times["stable"] == times["v0"] == times[digests[0]] == reported[digests[0]]
    assert times["v2"] == reported[digests[2]]
    assert all(moment.utcoffset() == dt.timedelta(0) for moment in times.values())


def test_pushed_at_follows_next_token_pages(aws: Moto, repo: str) -> None:
    """A DescribeImages answer with a nextToken is followed by a call for the next page, whose
    images count too (the first page here is scripted: moto answers in one page)."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    [digest] = put_images(ecr, repo, 1)
    early = "sha256:" + "e" * 64
    first_page = {
        "imageDetails": [{"imageDigest": early, "imageTags": ["old"], "imagePushedAt": 1.7e9}],
        "nextToken": "page-2",
    }
    registry = parse_ecr_host(HOST)
    assert registry is not None

    with FaultProxy(aws.url) as api_proxy:
        api_proxy.add_rule(
            "POST",
            "^/$",
            status=200,
            body=json.dumps(first_page).encode(),
            headers={"Content-Type": "application/x-amz-json-1.1"},
        )
        times = pushed_at(ecr_api(api_proxy.url), registry, repo)
        calls = len(api_proxy.hits)

    assert calls == 2
    assert times["old"] == times[early] == dt.datetime.fromtimestamp(1.7e9, dt.UTC)
    assert set(times) == {"old", early, "v0", digest}


def test_a_page_token_given_twice_is_an_error_not_a_loop(aws: Moto, repo: str) -> None:
    """An API that hands out the same nextToken again is refused with one line, not followed for
    ever."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    page = {"imageDetails": [], "nextToken": "again"}
    registry = parse_ecr_host(HOST)
    assert registry is not None

    with FaultProxy(aws.url) as api_proxy:
        api_proxy.add_rule(
            "POST",
            "^/$",
            status=200,
            body=json.dumps(page).encode(),
            headers={"Content-Type": "application/x-amz-json-1.1"},
            times=5,
        )
        with pytest.raises(AwsApiError, match="page token it gave before"):
            pushed_at(ecr_api(api_proxy.url), registry, repo)
        calls = len(api_proxy.hits)
    assert calls == 2


def test_prune_on_ecr_deletes_through_batch_delete_and_keeps_the_most_recent(
    aws: Moto, repo: str
) -> None:
    """A prune plan carried out on ECR deletes by digest with BatchDeleteImage (its tags go with
    it), and --keep-recent keeps the N tags pushed last, from DescribeImages."""
    ecr = aws.ecr()
    ecr.create_repository(repositoryName=repo)
    digests = put_images(ecr, repo, 3)
    settings = RuntimeSettings(
        registries={HOST: RegistrySettings(ecr=EcrSettings(api_endpoint=aws.url))}
    )
    with Runtime(settings) as runtime:
        recent = _recent(runtime, HOST, repo, 1)
        deleted = [
            PruneEntry(repo, tag, parse_digest(d), PruneAction.DELETE, "test")
            for number, d in enumerate(digests[:2])
            for tag in (f"v{number}", None)
        ]
        kept = PruneEntry(repo, "v2", parse_digest(digests[2]), PruneAction.KEEP, "kept")
        entries = (*deleted, kept)
        plan = PrunePlan("dev", HOST, ("dev",), (RepositoryPrune(repo, entries),))
        outcome = carry_out_prune(runtime, plan)
    assert len(recent) == 1  # which one: moto stamps whole seconds (most_recent is table-tested)
    assert {str(e.digest) for e in outcome.deleted if e.tag is None} == set(digests[:2])
    left = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert [d["imageDigest"] for d in left] == [digests[2]]
