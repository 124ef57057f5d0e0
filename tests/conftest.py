"""Shared fixtures. Every test is hermetic: no user config, proxies, cloud or cluster settings leak in."""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from devtools import images, signing
from devtools.registry import RegistryProcess
from tests.registry_checks import push

from promoter.cli.main import main

_CLEARED_PREFIXES = ("AWS_", "DOCKER_", "REGISTRY_AUTH_FILE", "XDG_", "KUBECONFIG", "CONTAINERS_")
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def hermetic_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear credentials, proxies, AWS and kube settings; HOME points at an empty folder."""
    for name in list(os.environ):
        if name.upper().startswith(_CLEARED_PREFIXES) or name.upper() in _PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


# -- real registries (Debian's docker-registry, the CNCF Distribution registry) -------------------


def _start(factory: pytest.TempPathFactory, name: str, **kwargs: object) -> RegistryProcess:
    registry = RegistryProcess(factory.mktemp(name), name=name, **kwargs)  # type: ignore[arg-type]
    registry.start()
    return registry


@pytest.fixture(scope="session")
def source_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A plain-HTTP registry on loopback standing in for the dev registry."""
    registry = _start(tmp_path_factory, "source")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def dest_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A second plain-HTTP registry standing in for the production registry."""
    registry = _start(tmp_path_factory, "dest")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry behind htpasswd Basic auth."""
    registry = _start(tmp_path_factory, "basic", auth="basic")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry that wants Bearer tokens from a token server in the tests (JWTs it verifies)."""
    registry = _start(tmp_path_factory, "token", auth="token")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry serving HTTPS with a certificate from a test CA, behind Basic auth."""
    registry = _start(tmp_path_factory, "tls", auth="basic", tls=True)
    yield registry
    registry.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    """Start registries of one's own, for tests that stop, restart or corrupt them."""
    started: list[RegistryProcess] = []

    def make(**kwargs: object) -> RegistryProcess:
        registry = RegistryProcess(
            tmp_path / f"reg{len(started)}", name=f"reg{len(started)}", **kwargs
        )  # type: ignore[arg-type]
        registry.start()
        started.append(registry)
        return registry

    yield make
    for registry in started:
        registry.stop()


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"team/app-{uuid.uuid4().hex[:10]}"


def login(registries: Sequence[RegistryProcess], config_dir: Path) -> None:
    """Write a docker config with credentials for the registries that need them."""
    auths = {
        r.host: {"auth": base64.b64encode(f"{r.username}:{r.password}".encode()).decode()}
        for r in registries
        if r.username
    }
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps({"auths": auths}))


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Log in to registries through $DOCKER_CONFIG, as a user would with docker login."""
    config_dir = tmp_path / "docker"

    def use(*registries: RegistryProcess) -> Path:
        login(registries, config_dir)
        monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
        return config_dir

    return use


def credential_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, name: str, script: str
) -> Path:
    """A real ``docker-credential-<name>`` shell script on PATH (in ``tmp_path/bin``), configured in
    ``$DOCKER_CONFIG`` (``tmp_path/docker``) as ``host``'s credential helper."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / f"docker-credential-{name}"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = tmp_path / "docker"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps({"credHelpers": {host: name}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return program


@dataclass
class CliRun:
    """The outcome of one in-process CLI run."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        """The single JSON object printed on stdout."""
        loaded = json.loads(self.out)
        assert isinstance(loaded, dict)
        return loaded

    def json_lines(self) -> list[dict[str, object]]:
        """One JSON object per stdout line (batch copies)."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``promoter ...`` in-process through main(argv) and capture what it prints."""

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


# -- a GitOps repository wired to the test registries ---------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gitops"
DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"


@dataclass
class GitOpsRepo:
    """A copy of examples/gitops wired to the test registries, with its own repository names."""

    root: Path
    dev: RegistryProcess
    prod: RegistryProcess
    prefix: str

    def repo(self, module: str) -> str:
        """The registry repository of a module in this test."""
        return f"{self.prefix}/{module}"

    def kustomization(self, env: str) -> Path:
        """An overlay's kustomization.yaml."""
        return self.root / "infra" / "overlays" / env / "kustomization.yaml"

    def add_chart(self, name: str, manifest: str) -> None:
        """A chart folder ``infra/charts/NAME`` rendering ``manifest`` (YAML text)."""
        chart = self.root / "infra" / "charts" / name
        chart.mkdir()
        (chart / "kustomization.yaml").write_text(f"resources:\n  - {name}.yaml\n")
        (chart / f"{name}.yaml").write_text(manifest)

    def deploy(self, env: str, chart: str, entry: tuple[str, str] | None = None) -> None:
        """ENV's overlay deploys ``chart``; with ``entry`` (registry host, tag), an ``images:``
        entry named like the chart sets the chart's module to that registry and tag."""
        kustomization = self.kustomization(env)
        text = kustomization.read_text().replace(
            "resources:\n", f"resources:\n  - ../../charts/{chart}\n", 1
        )
        if entry is not None:
            registry, tag = entry
            text += f"  - name: {chart}\n    newName: {registry}/{self.repo(chart)}\n    newTag: {tag}\n"
        kustomization.write_text(text)

    def seed(
        self, registry: RegistryProcess, module: str, tag: str, seed: str | None = None
    ) -> str:
        """Push a small multi-arch image for a module under a tag; returns its digest."""
        image = images.multi_arch_index(
            seed or f"{self.prefix}-{module}-{tag}", layer_sizes=(300, 200)
        )
        return push(registry, self.repo(module), image, tag=tag)


def _point_at(root: Path, dev_url: str, prod_url: str, prefix: str) -> None:
    """Rewrite the example's endpoints and repository paths for this test."""
    config = root / "promoter.yaml"
    text = config.read_text().replace("http://127.0.0.1:5101", dev_url)
    config.write_text(text.replace("http://127.0.0.1:5102", prod_url))
    for path in (root / "infra").rglob("*.yaml"):
        path.write_text(path.read_text().replace("/shop/", f"/{prefix}/"))


@pytest.fixture
def gitops(
    tmp_path: Path,
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> GitOpsRepo:
    """examples/gitops copied to tmp, its dev and production registries being the test registries."""
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    prefix = f"shop{uuid.uuid4().hex[:8]}"
    _point_at(root, source_registry.url, dest_registry.url, prefix)
    monkeypatch.chdir(root / "infra")  # promoter.yaml is found in a parent folder
    return GitOpsRepo(root, source_registry, dest_registry, prefix)


@pytest.fixture(scope="session")
def key() -> signing.KeyPair:
    """One signing key for the whole session (scrypt makes each key cost ~0.1 s)."""
    return signing.sigstore_key_pair(b"correct horse battery staple")


@pytest.fixture(scope="session")
def skopeo_signs(
    source_registry: RegistryProcess, key: signing.KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> bool:
    """Whether this machine's skopeo can sign (False for Debian's sigstore-disabled 1.9.3)."""
    image = images.oci_image([images.layer(64, "probe")], seed="skopeo-probe")
    digest = push(source_registry, "probe/skopeo", image, "v1")
    return signing.sign_with_skopeo(
        source_registry.host,
        "probe/skopeo",
        digest,
        f"{source_registry.host}/probe/skopeo:v1",
        key,
        workdir=tmp_path_factory.mktemp("skopeo-probe"),
    )
