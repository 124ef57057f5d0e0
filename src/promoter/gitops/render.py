"""Rendering an environment's manifests: the real ``kustomize build``, or manifests given as a file.

promoter never reimplements Kustomize: patches, components, generators and the ``images:``
transformer must mean exactly what Argo CD will apply, so the overlay is built by the same tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from promoter.errors import ConfigError

#: Seconds a build may take; 500 Deployments render in about half a second, so this only ends a
#: build stuck on something outside our control (a remote resource that never answers).
RENDER_TIMEOUT: Final = 120.0

# kubectl reports through klog: `E1127 15:36:48.611558   22121 run.go:72] "command failed" err="..."`.
_KLOG_LINE = re.compile(r"[EWIF]\d{4} [\d:.]+\s+\d+ [^\]]+\] (?P<rest>.*)")
_KLOG_ERR = re.compile(r'\berr="(?P<text>(?:[^"\\]|\\.)*)"')


def render_overlay(overlay: Path, *, timeout: float = RENDER_TIMEOUT) -> str:
    """Build a Kustomize overlay and return the rendered multi-document YAML.

    Uses the ``kustomize`` binary when it is on PATH, otherwise ``kubectl kustomize`` (kubectl
    embeds a Kustomize), which is what Argo CD users usually have.

    Args:
        overlay: the overlay folder (the one holding ``kustomization.yaml``).
        timeout: seconds before the build is stopped.

    Raises:
        ConfigError: the folder is missing, no Kustomize is installed, the build timed out, or
            Kustomize failed; the message carries Kustomize's own first line of explanation.
    """
    rendering = start_render(overlay, timeout=timeout)
    try:
        return rendering.result()
    except BaseException:
        rendering.cancel()  # no kustomize left running after Ctrl-C
        raise


def start_render(overlay: Path, *, timeout: float = RENDER_TIMEOUT) -> Rendering:
    """Start building an overlay in the background (see :func:`render_overlay`).

    The CLI starts the build before it has loaded what validating promoter.yaml needs, so the two
    overlap: rendering is the floor of every plan.

    Raises:
        ConfigError: the folder is missing or no Kustomize is installed.
    """
    return Rendering(overlay, timeout)


class Rendering:
    """One ``kustomize build`` running as a child process."""

    def __init__(self, overlay: Path, timeout: float) -> None:
        if not overlay.is_dir():
            what = "is not a folder" if overlay.exists() else "does not exist"
            raise ConfigError(f"overlay {overlay} {what}; check the overlay path in promoter.yaml")
        self.overlay = overlay
        self._timeout = timeout
        command = _build_command(overlay)
        try:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8"
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc

    def result(self) -> str:
        """Wait for the build and return its output.

        Raises:
            ConfigError: the build timed out or failed, with Kustomize's own explanation.
        """
        try:
            stdout, stderr = self._process.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired as exc:
            self.cancel()
            raise ConfigError(
                f"kustomize build {self.overlay} did not finish within {self._timeout:g} s"
            ) from exc
        if self._process.returncode != 0:
            reason = _first_error_line(stderr) or f"exit status {self._process.returncode}"
            raise ConfigError(f"kustomize build {self.overlay} failed: {reason}")
        return stdout

    def cancel(self) -> None:
        """Stop the build if it still runs (its result is not wanted after all)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()


def read_manifests(source: str) -> str:
    """Read already rendered manifests (``helm template`` output, say) from a file, or stdin for ``-``.

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 text.
    """
    if source == "-":
        try:
            return sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read manifests from standard input: {exc}") from exc
    try:
        return Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read manifests from {source}: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read manifests from {source}: {exc.strerror or exc.__class__.__name__}"
        ) from exc


def _build_command(overlay: Path) -> list[str]:
    """``kustomize build DIR`` or ``kubectl kustomize DIR``, with the program's full path."""
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(overlay)]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(overlay)]
    raise ConfigError(
        "neither kustomize nor kubectl is on PATH; install kustomize "
        "(https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl to render overlays"
    )


def _first_error_line(stderr: str) -> str:
    """The first message on stderr that explains the failure, as one line.

    Kustomize writes deprecation warnings (``# Warning: 'bases' is deprecated...``) before its
    error, standalone kustomize prefixes the error with ``Error:``, and kubectl wraps it in a klog
    line whose ``err="..."`` field holds Kustomize's message as a quoted string, or, when the
    message has several lines, an ``err=<`` block of tab-indented lines closed by ``>``.
    """
    lines = iter(stderr.splitlines())
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("# Warning:"):
            continue
        klog = _KLOG_LINE.fullmatch(line)
        if klog is not None:
            rest = klog.group("rest")
            if rest.endswith("err=<"):
                block = []
                for part in lines:
                    if part.strip() == ">":
                        break
                    block.append(part.strip())
                line = " ".join(part for part in block if part)
            else:
                line = _klog_message(rest)
        return " ".join(line.removeprefix("Error: ").split())
    return ""


def _klog_message(rest: str) -> str:
    """The ``err`` field of a klog structured line, unquoted; the whole rest when there is none."""
    found = _KLOG_ERR.search(rest)
    if found is None:
        return rest
    try:
        # Go's %q quoting agrees with JSON string escapes for the text Kustomize writes.
        text = json.loads(f'"{found.group("text")}"')
    except json.JSONDecodeError:
        return found.group("text")
    return str(text)
