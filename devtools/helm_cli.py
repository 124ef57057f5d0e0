"""A ``helm`` command for the tests and the demo, made of Helm's own engine (helm-python-sdk).

Kustomize renders ``helmCharts:`` (with ``--enable-helm``) by running a ``helm`` program. No helm
binary can be installed on the machines this project is built on (no Debian package, no PyPI
wheel with a Linux binary), but Helm's Go SDK is on PyPI as ``helm-python-sdk`` (``libhelm_c``,
Helm v4), so this module is the ``helm`` Kustomize calls, for exactly the calls it makes
(Kustomize v5.5, read from its argv):

- ``helm version -c --short``: Kustomize checks the major version, and v5.5 accepts only 3, so the
  answer is ``v3.999.0+helm-sdk.<SDK version>``: a Helm 3 command line, rendered by the SDK.
- ``helm template NAME|--generate-name CHART [--namespace NS] [--name-template NAME] [-f FILE]...
  [--api-versions V]... [--kube-version V] [--include-crds] [--skip-tests] [--no-hooks]
  [--debug]``: prints what ``helm template`` prints: ``---\\n# Source: chart/templates/x.yaml\\n``
  before each document, CRDs first (``--include-crds``), the rest in Helm's install order by kind,
  then the hooks (unless ``--no-hooks``; test hooks left out with ``--skip-tests``).
- ``helm pull --untar --untardir DIR (--repo URL NAME | oci://HOST/PATH/NAME) --version V``: a
  chart of a repository, unpacked in ``DIR/NAME``.

Anything else is refused with Helm's own kind of message (``Error: ...``, exit 1), so a new call
by a newer Kustomize shows up at once. Users install a real ``helm`` (v3 for the Kustomize kubectl
1.32 embeds), as Argo CD's repo-server has; ``make test`` and ``make demo`` install this one as
``.venv/bin/helm`` only when no ``helm`` is on PATH (``python -m devtools.helm_cli --install-into
.venv/bin``).

Kustomize runs helm with nothing but ``HELM_*`` variables in its environment (no PATH, no
PYTHONPATH), so the installed command names its interpreter and this checkout by absolute paths.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

#: Kinds in the order Helm installs them (``releaseutil.InstallOrder``); other kinds come after,
#: by name.
INSTALL_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
_RANK = {kind: rank for rank, kind in enumerate(INSTALL_ORDER)}

#: Helm's document separator (``releaseutil.SplitManifests``).
_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")

_HOOK_ANNOTATION = "helm.sh/hook"
_TEST_HOOKS = frozenset({"test", "test-success"})


class HelmUsageError(Exception):
    """A call this ``helm`` does not make sense of (printed as ``Error: ...``, exit 1)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One rendered document, as Helm's manifest sorter keeps it.

    Attributes:
        source: the template's path (``chart/templates/x.yaml``), shown after ``# Source:``.
        content: the document, trimmed of surrounding whitespace.
        kind: its ``kind`` ("" for none, a comment-only document say).
        hook: its ``helm.sh/hook`` events, empty for an ordinary document.
    """

    source: str
    content: str
    kind: str
    hook: tuple[str, ...]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one helm command; Helm's exit codes (0, 1 with ``Error: ...`` on standard error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _run(args)
    except HelmUsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from helm_python import HelmError  # noqa: PLC0415 - the native library only when needed

        if not isinstance(exc, HelmError):
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return 0


def _run(args: list[str]) -> None:
    if args[:1] == ["--install-into"] and len(args) == 2:
        print(install(Path(args[1])))
        return
    if not args:
        raise HelmUsageError("no command; this helm knows version, template and pull")
    command, rest = args[0], args[1:]
    if command == "version":
        sys.stdout.write(version_text(rest))
    elif command == "template":
        sys.stdout.write(template(rest))
    elif command == "pull":
        pull(rest)
    else:
        raise HelmUsageError(
            f"unknown command {command!r} for this helm (helm-python-sdk): it knows "
            "version, template and pull, what kustomize --enable-helm calls"
        )


def version_text(args: Sequence[str]) -> str:
    """``helm version [-c] [--short]``: a Helm 3 version (see the module docstring)."""
    unknown = [a for a in args if a not in ("-c", "--client", "--short")]
    if unknown:
        raise HelmUsageError(f"unknown flag: {unknown[0]}")
    import helm_python  # noqa: PLC0415 - the native library only when needed

    answer = f"v3.999.0+helm-sdk.{helm_python.helm_sdk_version()}"
    if "--short" in args:
        return f"{answer}\n"
    return f'version.BuildInfo{{Version:"{answer}", GitCommit:"", GitTreeState:"", GoVersion:""}}\n'


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors read as Helm's."""

    def error(self, message: str) -> NoReturn:
        raise HelmUsageError(message)


def _template_parser() -> _Parser:
    parser = _Parser(prog="helm template", add_help=False, allow_abbrev=False)
    parser.add_argument("positional", nargs="*")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--name-template")
    parser.add_argument("-g", "--generate-name", action="store_true")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("-a", "--api-versions", action="append", default=[])
    parser.add_argument("--kube-version")
    parser.add_argument("--include-crds", action="store_true")
    parser.add_argument("--skip-crds", action="store_true")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--no-hooks", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser


def template(args: Sequence[str]) -> str:
    """``helm template``: the chart rendered offline, in ``helm template``'s output form.

    Raises:
        HelmUsageError: arguments this helm does not take, or no release name.
        helm_python.HelmError: the chart does not load, a values file does not parse, or a
            template fails (Helm's own message).
    """
    import helm_python  # noqa: PLC0415 - the native library only when needed
    from helm_python import _native  # noqa: PLC0415 - see _render

    options = _template_parser().parse_args(args)
    positional = list(options.positional)
    if len(positional) == 2:
        name, chart_path = positional
    elif len(positional) == 1:
        chart_path = positional[0]
        name = _release_name(options, chart_path)
    else:
        raise HelmUsageError("expected at most two arguments: NAME CHART")
    values: dict[str, Any] = {}
    for path in options.values:
        text = Path(path).read_text(encoding="utf-8")
        values = _merged(values, helm_python.values_from_yaml(text) if text.strip() else {})
    with helm_python.Chart.load(chart_path) as chart:
        render_options: dict[str, Any] = {
            "name": name,
            "namespace": options.namespace,
            "is_install": True,  # helm template is an install's dry run
        }
        if options.kube_version:
            render_options["kube_version"] = options.kube_version
        if options.api_versions:
            render_options["api_versions"] = [
                v for item in options.api_versions for v in item.split(",") if v
            ]
        # Chart.render takes no kube_version or api_versions; the library's own call does.
        rendered: dict[str, str] = json.loads(
            _native.call_string(
                "helm_render", chart._raw(), json.dumps(values), json.dumps(render_options)
            )
        )
        crds = chart.crds if options.include_crds and not options.skip_crds else []
    manifests, hooks = sort_manifests(rendered)
    out = [f"---\n# Source: {crd['filename']}\n{crd['data']}\n" for crd in crds]
    out += [f"---\n# Source: {m.source}\n{m.content}\n" for m in manifests]
    text = "".join(out).strip() + "\n"
    if not options.no_hooks:
        for hook in hooks:
            if options.skip_tests and _TEST_HOOKS & set(hook.hook):
                continue
            text += f"---\n# Source: {hook.source}\n{hook.content}\n"
    return text


def _release_name(options: argparse.Namespace, chart_path: str) -> str:
    if options.name_template:
        if "{{" in options.name_template:
            raise HelmUsageError("this helm takes --name-template as a plain name only")
        return str(options.name_template)
    if options.generate_name:
        # Helm: the chart's base name and the time in seconds.
        return f"{Path(chart_path).name}-{int(time.time())}"
    raise HelmUsageError("must either provide a name or specify --generate-name")


def sort_manifests(rendered: dict[str, str]) -> tuple[list[Document], list[Document]]:
    """Helm's manifest sorter (``releaseutil.SortManifests``): files in path order, partials
    (``_*``), empty files and every ``NOTES.txt`` left out, each file split into documents, then the
    ordinary ones and the hooks each sorted (stably) by kind in :data:`INSTALL_ORDER`.

    Returns:
        ``(manifests, hooks)``.
    """
    manifests: list[Document] = []
    hooks: list[Document] = []
    for path in sorted(rendered):
        content = rendered[path]
        base = path.rsplit("/", 1)[-1]
        if base.startswith("_") or base == "NOTES.txt" or not content.strip():
            continue
        for document in _documents(path, content):
            (hooks if document.hook else manifests).append(document)
    return sorted(manifests, key=_by_kind), sorted(hooks, key=_by_kind)


def _documents(path: str, content: str) -> Iterator[Document]:
    for part in _SEPARATOR.split(content.strip()):
        if not part:
            continue
        text = part.strip()
        head = yaml.safe_load(text)
        head = head if isinstance(head, dict) else {}
        metadata = head.get("metadata") if isinstance(head.get("metadata"), dict) else {}
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        hook = ""
        if isinstance(annotations, dict):
            hook = str(annotations.get(_HOOK_ANNOTATION) or "")
        events = tuple(e.strip() for e in hook.split(",") if e.strip())
        kind = head.get("kind")
        yield Document(path, text, kind if isinstance(kind, str) else "", events)


def _by_kind(document: Document) -> tuple[int, str]:
    """Known kinds by install order, then unknown kinds by name (Helm's ``lessByKind``)."""
    rank = _RANK.get(document.kind)
    return (rank, "") if rank is not None else (len(_RANK), document.kind)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``-f`` files merged as Helm merges them: maps recursively, anything else replaced."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def _pull_parser() -> _Parser:
    parser = _Parser(prog="helm pull", add_help=False, allow_abbrev=False)
    parser.add_argument("chart")
    parser.add_argument("--repo")
    parser.add_argument("--version")
    parser.add_argument("--untar", action="store_true")
    parser.add_argument("--untardir", default=".")
    parser.add_argument("-d", "--destination")
    parser.add_argument("--plain-http", action="store_true")
    return parser


def pull(args: Sequence[str]) -> None:
    """``helm pull``: download a chart of a repository (``--repo URL NAME``, or ``oci://...``),
    unpacked into ``--untardir`` with ``--untar``.

    Raises:
        HelmUsageError: arguments this helm does not take.
        helm_python.HelmError: the repository or chart cannot be had (Helm's message).
    """
    import helm_python  # noqa: PLC0415 - the native library only when needed

    options = _pull_parser().parse_args(args)
    if options.repo is None and not options.chart.startswith("oci://"):
        raise HelmUsageError("this helm pulls with --repo URL NAME or an oci:// reference only")
    helm_python.pull(
        options.chart,
        repo_url=options.repo,
        version=options.version,
        destination=options.destination,
        untar=options.untar,
        untar_dir=options.untardir if options.untar else None,
        plain_http=options.plain_http,
    )


def install(directory: Path) -> Path:
    """Write ``directory/helm``, running :func:`main` with this interpreter and this checkout
    (absolute: Kustomize gives helm no PATH and no PYTHONPATH); returns its path."""
    checkout = Path(__file__).resolve().parent.parent
    target = directory / "helm"
    target.write_text(
        f"#!{sys.executable}\n"
        '"""helm for kustomize --enable-helm, on helm-python-sdk: devtools/helm_cli.py."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(checkout)!r})\n"
        "from devtools.helm_cli import main\n"
        "sys.exit(main())\n",
        encoding="utf-8",
    )
    target.chmod(0o755)
    return target


if __name__ == "__main__":
    sys.exit(main())
