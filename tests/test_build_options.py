"""Kustomize build options (kustomizeBuildOptions, --kustomize-build-option, --enable-helm): overlays
with helmCharts rendered by the real kubectl kustomize and a helm made of Helm's SDK
(devtools/helm_cli.py), through plan, status, promote, prune's history and the Argo CD plugin."""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import helm_python
import pytest
import yaml
from devtools import helm_cli
from tests.conftest import DEV, PROD, CliRun, GitOpsRepo
from tests.test_prune import _git

from promoter.cli.gitops import _start_rendering_early, add_commands
from promoter.config.kustomize_options import build_arguments
from promoter.config.load import load_config
from promoter.errors import ConfigError
from promoter.gitops.discover import discover_images, parse_manifests
from promoter.gitops.render import render_overlay

CHART_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: "web:{{ .Values.tag }}"
"""


def _write_chart(folder: Path) -> Path:
    """A Helm chart ``web`` in ``folder/web`` whose Deployment runs ``web:<values.tag>``."""
    chart = folder / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("tag: '0.0.1'\n")
    (chart / "templates" / "deployment.yaml").write_text(CHART_TEMPLATE)
    return chart


@pytest.fixture(scope="session")
def helm_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``helm``: devtools/helm_cli.py (a real helm on PATH wins, as in make)."""
    found = shutil.which("helm")
    if found is not None:
        return Path(found).parent
    folder = tmp_path_factory.mktemp("helm-bin")
    helm_cli.install(folder)
    return folder


@pytest.fixture
def helm(helm_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``helm`` on PATH for kustomize."""
    monkeypatch.setenv("PATH", f"{helm_bin}{os.pathsep}{os.environ['PATH']}")


def _use_chart(gitops: GitOpsRepo, env: str, registry: str, tag: str) -> None:
    """ENV's overlay inflates the shared chart ``infra/helm/web`` (outside the overlay's folder)
    and its ``images:`` entry sets the chart's image to REGISTRY/PREFIX/web:TAG."""
    path = gitops.kustomization(env)
    text = path.read_text()
    text += (
        f"  - name: web\n    newName: {registry}/{gitops.repo('web')}\n    newTag: {tag}\n"
        "helmGlobals:\n  chartHome: ../../helm\n"
        "helmCharts:\n  - name: web\n    releaseName: shop\n    valuesInline: {tag: '1.0.0'}\n"
    )
    path.write_text(text)


def _set_options(gitops: GitOpsRepo, env: str, line: str) -> None:
    """promoter.yaml: ``line`` (``kustomizeBuildOptions: [...]``) under environment ENV."""
    config = gitops.root / "promoter.yaml"
    text = config.read_text()
    anchor = f"  {env}:\n"
    config.write_text(text.replace(anchor, f"{anchor}    {line}\n", 1))


#: What both environments need for a chart home outside their folder, as Argo CD would be told.
HELM_OPTIONS = "kustomizeBuildOptions: ['--enable-helm --load-restrictor LoadRestrictionsNone']"


@pytest.fixture
def charted(gitops: GitOpsRepo, helm: None) -> GitOpsRepo:
    """The example with both overlays inflating the chart web (dev 1.2.0, production 1.1.0), and
    the build options that takes in promoter.yaml."""
    _write_chart(gitops.root / "infra" / "helm")
    _use_chart(gitops, "dev", DEV, "1.2.0")
    _use_chart(gitops, "production", PROD, "1.1.0")
    for env in ("dev", "production"):
        _set_options(gitops, env, HELM_OPTIONS)
    return gitops


def _statuses(run: CliRun) -> dict[str, str]:
    return {str(i["image"]): str(i["status"]) for i in run.json()["images"]}  # type: ignore[union-attr]


def test_plan_and_status_find_the_images_of_a_helm_chart(
    charted: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A chart inflated with --enable-helm is planned like any resource, its image as the
    overlay's images: entry rewrites it; status shows the module in both environments."""
    charted.seed(charted.dev, "web", "1.1.0")
    charted.seed(charted.dev, "web", "1.2.0")
    planned = cli("plan", "production", "-o", "json")
    assert planned.code == 3, planned.err  # other modules are missing in the source: blocking
    assert _statuses(planned)[f"{PROD}/{charted.repo('web')}:1.1.0"] == "copy"
    status = cli("status", "-o", "json")
    assert status.code == 0, status.err
    rows = {row["module"]: row["environments"] for row in status.json()["modules"]}  # type: ignore[union-attr]
    web = rows[charted.repo("web")]
    assert (web["dev"]["tag"], web["production"]["tag"]) == ("1.2.0", "1.1.0")
    assert web["production"]["drift"] == "behind"


def test_promote_edits_and_checks_an_overlay_that_inflates_a_chart(
    charted: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """promote renders source and target with their options, writes the chart's images: entry and
    checks the edited overlay, rendered again with them."""
    charted.seed(charted.dev, "web", "1.2.0")
    result = cli("promote", charted.repo("web"), "--to", "production")
    assert result.code == 0, result.err
    assert "newTag: 1.2.0" in charted.kustomization("production").read_text()
    options = ("--enable-helm", "--load-restrictor=LoadRestrictionsNone")
    rendered = render_overlay(charted.kustomization("production").parent, options=options)
    images = {found.image for found in discover_images(parse_manifests(rendered))}
    assert f"{PROD}/{charted.repo('web')}:1.2.0" in images


def test_without_enable_helm_the_error_says_which_option_to_add(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], helm: None
) -> None:
    """An overlay with helmCharts and no --enable-helm fails in one line that names
    kustomizeBuildOptions: [--enable-helm]; the command's --enable-helm adds it to the
    environment's own options (here the load restrictor), and the overlay renders; without the
    load restrictor, the error names that option."""
    _write_chart(gitops.root / "infra" / "helm")
    _use_chart(gitops, "production", PROD, "1.1.0")
    _set_options(
        gitops, "production", "kustomizeBuildOptions: [--load-restrictor=LoadRestrictionsNone]"
    )
    failed = cli("plan", "production")
    assert failed.code == 2
    errors = [line for line in failed.err.splitlines() if line.startswith("promoter: error:")]
    assert len(errors) == 1, failed.err
    assert "must specify --enable-helm" in errors[0]
    assert "add kustomizeBuildOptions: [--enable-helm] to the environment" in errors[0]
    assert "valuesInline" not in errors[0]  # kustomize's echo of the chart's config is cut
    flagged = cli("plan", "production", "--enable-helm", "-o", "json")
    assert f"{PROD}/{gitops.repo('web')}:1.1.0" in _statuses(flagged), flagged.err
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace("[--load-restrictor=LoadRestrictionsNone]", "[--enable-helm]", 1)
    )
    outside = cli("plan", "production")  # the chart home is outside the overlay's folder
    assert outside.code == 2
    assert "add kustomizeBuildOptions: [--load-restrictor LoadRestrictionsNone]" in outside.err


def test_a_chart_that_fails_to_render_is_one_line_with_helms_message(
    charted: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A template error reaches the user as Helm says it, in render.py's one line (exit 2), without
    kustomize's echo of helm's environment."""
    broken = charted.root / "infra" / "helm" / "web" / "templates" / "broken.yaml"
    broken.write_text("{{ .Values.missing.deeper }}\n")
    failed = cli("plan", "production")
    assert failed.code == 2
    errors = [line for line in failed.err.splitlines() if line.startswith("promoter: error:")]
    assert len(errors) == 1, failed.err
    assert "web/templates/broken.yaml" in errors[0]
    assert "nil pointer evaluating interface {}.deeper" in errors[0]
    assert "HELM_CONFIG_HOME" not in errors[0]


@pytest.mark.parametrize(
    ("entries", "arguments"),
    [
        (["--enable-helm"], ("--enable-helm",)),
        (
            ["--enable-helm --load-restrictor LoadRestrictionsNone"],
            ("--enable-helm", "--load-restrictor=LoadRestrictionsNone"),
        ),
        (
            ["--load-restrictor", "LoadRestrictionsRootOnly"],
            ("--load-restrictor=LoadRestrictionsRootOnly",),
        ),
        (
            ["--helm-api-versions monitoring.coreos.com/v1 --helm-kube-version 1.31.0"],
            ("--helm-api-versions=monitoring.coreos.com/v1", "--helm-kube-version=1.31.0"),
        ),
        (["--enable-helm=false"], ("--enable-helm=false",)),
        ([" ", ""], ()),
    ],
)
def test_build_options_become_one_argument_per_flag(
    entries: list[str], arguments: tuple[str, ...]
) -> None:
    """Entries split on whitespace as Argo CD splits kustomize.buildOptions; each flag becomes one
    argument, its value joined by '=', so no value can be read as a flag."""
    assert build_arguments(entries, where="w") == arguments


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--kubeconfig /tmp/x",
            "unknown kustomize build option '--kubeconfig'; promoter passes only",
        ),
        ("--load-restrictor", "--load-restrictor needs a value (LoadRestrictionsRootOnly or"),
        (
            "--load-restrictor Everything",
            "--load-restrictor (LoadRestrictionsRootOnly or LoadRestrictionsNone), got 'Everything'",
        ),
        ("--load-restrictor --enable-helm", "--load-restrictor needs a value"),
        ("--helm-command ./evil.sh", "--helm-command lets the render run plugins"),
        ("--enable-helm=yes", "--enable-helm takes no value, got '--enable-helm=yes'"),
        ("-o out.yaml", "'-o' is refused: it writes the manifests to a file"),
        ("LoadRestrictionsNone", "'LoadRestrictionsNone' is no option"),
        ("--enable-alpha-plugins", "--enable-alpha-plugins lets the render run plugins"),
        ("--enable-exec", "set allowKustomizePlugins: true on the environment"),
        ("--mount type=bind,src=/,dst=/host", "--mount lets the render run plugins"),
        ("-e SECRET", "--env lets the render run plugins"),
    ],
)
def test_a_refused_build_option_is_one_line_naming_the_key(
    tmp_path: Path, option: str, message: str
) -> None:
    """Unknown, malformed and output flags are refused, and plugin flags without
    allowKustomizePlugins: one line naming promoter.yaml's key (exit 2 as a ConfigError)."""
    config = tmp_path / "promoter.yaml"
    config.write_text(
        "environments:\n  dev:\n    overlay: o\n    registry: r.example.com\n"
        f"    kustomizeBuildOptions: [{option!r}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert text.startswith(f"{config}: environments.dev.kustomizeBuildOptions: "), text
    assert message in text
    assert "\n" not in text


def test_plugin_flags_need_the_environments_switch_wherever_they_are_given(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """allowKustomizePlugins: true lets promoter.yaml's options hold plugin flags; a command's
    --kustomize-build-option with one is refused (exit 2, one line) for an environment without it,
    before anything renders."""
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(
            "  dev:\n",
            "  dev:\n    allowKustomizePlugins: true\n"
            "    kustomizeBuildOptions: ['--enable-alpha-plugins --env FOO=1']\n",
            1,
        )
    )
    loaded = load_config(config)
    assert loaded.environment("dev").kustomize_build_options == (
        "--enable-alpha-plugins",
        "--env=FOO=1",
    )
    allowed = build_arguments(
        ["--helm-command=/opt/helm/bin/helm"], where="w", plugins_allowed=True
    )
    assert allowed == ("--helm-command=/opt/helm/bin/helm",)
    refused = cli("status", "--kustomize-build-option=--enable-alpha-plugins")
    assert refused.code == 2
    assert refused.err.strip().splitlines() == [
        (
            "promoter: error: --kustomize-build-option (environment production): "
            "--enable-alpha-plugins lets the render run plugins (programs or containers of the "
            "repository); set allowKustomizePlugins: true on the environment in promoter.yaml to "
            "allow it"
        )
    ]
    unknown = cli("plan", "production", "--kustomize-build-option=--stack-trace")
    assert unknown.code == 2
    assert "unknown kustomize build option '--stack-trace'" in unknown.err


def _parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"), argparse.ArgumentParser(add_help=False))
    return parser.parse_args(list(argv))


def test_the_early_render_takes_the_environments_and_the_commands_options(
    gitops: GitOpsRepo,
) -> None:
    """plan starts building before promoter.yaml is validated: with the environment's options
    then the command's, and not at all when one is refused (the real load reports it)."""
    _set_options(
        gitops, "production", "kustomizeBuildOptions: [--load-restrictor=LoadRestrictionsNone]"
    )
    early = _start_rendering_early(_parsed("plan", "production", "--enable-helm"))
    assert early is not None
    try:
        assert early.options == ("--load-restrictor=LoadRestrictionsNone", "--enable-helm")
    finally:
        early.cancel()
    refused = _parsed("plan", "production", "--kustomize-build-option=--enable-exec")
    assert _start_rendering_early(refused) is None


def test_the_argocd_plugin_renders_with_the_environments_options(
    charted: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """argocd generate (the Config Management Plugin, which replaces Argo CD's own kustomize build)
    renders with the environment's kustomizeBuildOptions: the chart's Deployment is in the output
    and its image in the hook's list."""
    overlay = charted.kustomization("production").parent
    generated = cli("argocd", "generate", "--source-dir", str(overlay))
    assert generated.code == 0, generated.err
    documents = [d for d in yaml.safe_load_all(generated.out) if d]
    web = f"{PROD}/{charted.repo('web')}:1.1.0"
    deployment = next(d for d in documents if d["metadata"]["name"] == "shop-web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == web
    job = next(d for d in documents if d["kind"] == "Job")
    assert web in job["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 (index.yaml and the packaged chart web 0.1.0, made
    with Helm's SDK), served by Python's http.server; yields its URL."""
    served = tmp_path / "served" / "charts"
    served.mkdir(parents=True)
    helm_python.package(_write_chart(tmp_path / "source"), destination=served)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/charts"
    helm_python.repo_index_generate(served, base_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_chart_of_a_loopback_chart_repository_is_pulled_and_planned(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], helm: None, chart_repository: str
) -> None:
    """helmCharts with repo: a chart repository's URL (here on 127.0.0.1) is pulled by helm into the
    overlay's charts/ and planned like a local chart."""
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text()
        + f"  - name: web\n    newName: {PROD}/{gitops.repo('web')}\n    newTag: 1.1.0\n"
        + f"helmCharts:\n  - name: web\n    repo: {chart_repository}\n    version: 0.1.0\n"
        + "    releaseName: shop\n"
    )
    _set_options(gitops, "production", "kustomizeBuildOptions: [--enable-helm]")
    planned = cli("plan", "production", "-o", "json")
    assert f"{PROD}/{gitops.repo('web')}:1.1.0" in _statuses(planned), planned.err
    assert (path.parent / "charts" / "web-0.1.0" / "web" / "Chart.yaml").is_file()


def test_prune_renders_the_history_with_the_build_options(
    charted: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """prune's renders of older revisions take the environment's options too: the chart's version
    production deployed one commit ago is kept, an older one is not."""
    root = charted.root
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "production runs web 1.1.0")
    path = charted.kustomization("production")
    path.write_text(path.read_text().replace("newTag: 1.1.0", "newTag: 1.2.0"))
    _git(root, "commit", "-q", "-am", "production runs web 1.2.0")
    for module, tag in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2")):
        charted.seed(charted.prod, module, tag)
    for tag in ("1.0.0", "1.1.0", "1.2.0"):
        charted.seed(charted.prod, "web", tag)
    result = cli("prune", "production", "--keep-history", "2", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    actions = {
        e["tag"]: e["action"]
        for e in result.json()["entries"]  # type: ignore[union-attr]
        if str(e["repository"]).endswith("/web") and e["tag"] is not None
    }
    assert actions == {"1.2.0": "keep", "1.1.0": "keep", "1.0.0": "delete"}
