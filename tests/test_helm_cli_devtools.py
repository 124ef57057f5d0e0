"""devtools/helm_cli.py, the helm that kustomize --enable-helm runs in the tests and the demo: the calls
kustomize makes, answered as Helm answers them, on Helm's own SDK."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from devtools import helm_cli

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "tag: '1.0.0'\nport: 80\n",
    "crds/widget.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    "metadata: {name: widgets.example.com}\n",
    "templates/_helpers.tpl": '{{- define "web.name" -}}web{{- end -}}\n',
    "templates/NOTES.txt": "Installed {{ .Release.Name }}\n",
    "templates/empty.yaml": "{{- if .Values.never }}\nkind: Never\n{{- end }}\n",
    "templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
    '  name: {{ .Release.Name }}-{{ include "web.name" . }}\n'
    "  namespace: {{ .Release.Namespace }}\nspec:\n  template:\n    spec:\n"
    "      containers: [{name: web, image: 'web:{{ .Values.tag }}'}]\n",
    "templates/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
    "spec: {ports: [{port: {{ .Values.port }}}]}\n---\n"
    "# kube {{ .Capabilities.KubeVersion.Version }}\n",
    "templates/hooks.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n"
    "  annotations: {helm.sh/hook: pre-install}\n---\napiVersion: v1\nkind: Pod\n"
    "metadata:\n  name: smoke\n  annotations: {helm.sh/hook: test}\n",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A chart with a CRD, a partial, NOTES.txt, an empty template, two documents in one file,
    a comment-only document, a hook and a test hook."""
    root = tmp_path / "web"
    for name, text in CHART.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_template_prints_what_helm_template_prints(
    chart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CRDs first, then documents by Helm's install order (Service before Deployment, a kindless
    one last), each after '---' and '# Source:'; partials, NOTES.txt and empty files left out;
    hooks after, test hooks dropped with --skip-tests; -f files merged in order."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("tag: '2.0.0'\nport: 81\n")
    second.write_text("port: 8080\n")
    code = helm_cli.main(
        ["template", "shop", str(chart), "--namespace", "prod", "-f", str(first), "-f",
         str(second), "--kube-version", "1.31.0", "--include-crds", "--skip-tests"]
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out == (
        "---\n# Source: web/crds/widget.yaml\n" + CHART["crds/widget.yaml"] + "\n"
        "---\n# Source: web/templates/service.yaml\napiVersion: v1\nkind: Service\n"
        "metadata: {name: web}\nspec: {ports: [{port: 8080}]}\n"
        "---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n"
        "metadata:\n  name: shop-web\n  namespace: prod\nspec:\n  template:\n    spec:\n"
        "      containers: [{name: web, image: 'web:2.0.0'}]\n"
        "---\n# Source: web/templates/service.yaml\n# kube v1.31.0\n"
        "---\n# Source: web/templates/hooks.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n"
        "  name: migrate\n  annotations: {helm.sh/hook: pre-install}\n"
    )


def test_the_installed_command_answers_kustomize_without_any_environment(
    chart: Path, tmp_path: Path
) -> None:
    """Kustomize runs helm with only HELM_* set (no PATH, no PYTHONPATH): the installed helm still
    answers 'version -c --short' as Helm 3 (kustomize 5.5 requires it) and renders; a call it
    does not know is Helm's 'Error: ...' with exit 1."""
    helm = helm_cli.install(tmp_path)
    version = subprocess.run(
        [helm, "version", "-c", "--short"], env={}, capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("v3.")
    rendered = subprocess.run(
        [helm, "template", "--generate-name", str(chart), "--no-hooks"],
        env={},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "name: web-" in rendered.stdout
    assert "migrate" not in rendered.stdout
    unknown = subprocess.run(
        [helm, "install", "x"], env={}, capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("Error: unknown command 'install'")
