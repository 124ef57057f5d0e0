"""Rendering an environment's manifests: the real ``kustomize build``, or manifests given as a file.

promoter never reimplements Kustomize: patches, components, generators and the ``images:``
transformer must mean exactly what Argo CD will apply, so the overlay is built by the same tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Final

from promoter.config.input_files import MANIFESTS_CAP, InputCap, decode_text, read_input_text
from promoter.errors import ConfigError
from promoter.gitops.hookfile import component_hint
from promoter.process import CLOSE_WAIT, PipeReader

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
    """One ``kustomize build`` running as a child process.

    Its output is read as it is printed, by a thread per pipe, so the build never blocks on a full
    pipe and never hands promoter more than :data:`~promoter.config.input_files.MANIFESTS_CAP`: a build
    that prints more is stopped as soon as it passes the cap.
    """

    def __init__(self, overlay: Path, timeout: float, cap: InputCap = MANIFESTS_CAP) -> None:
        if not overlay.is_dir():
            what = "is not a folder" if overlay.exists() else "does not exist"
            raise ConfigError(f"overlay {overlay} {what}; check the overlay path in promoter.yaml")
        self.overlay = overlay
        self._timeout = timeout
        self._cap = cap
        command = _build_command(overlay)
        try:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
        stdout, stderr = self._process.stdout, self._process.stderr
        assert stdout is not None  # noqa: S101 - Popen with PIPE always gives one
        assert stderr is not None  # noqa: S101 - Popen with PIPE always gives one
        self._stdout = PipeReader(
            stdout, cap.limit, on_overflow=self._process.kill, name="kustomize-output"
        )
        self._stderr = PipeReader(stderr, _STDERR_KEPT, name="kustomize-errors")

    def result(self) -> str:
        """Wait for the build and return its output.

        Raises:
            ConfigError: the build timed out, failed (with Kustomize's own explanation), or printed
                more than the cap or something other than UTF-8.
        """
        if not self._finished_in_time():
            self.cancel()
            raise ConfigError(
                f"kustomize build {self.overlay} did not finish within {self._timeout:g} s"
            )
        name = f"the output of kustomize build {self.overlay}"
        if self._stdout.overflowed:
            raise self._cap.exceeded(name)
        if self._process.returncode != 0:
            stderr = self._stderr.data.decode("utf-8", "replace")
            reason = _first_error_line(stderr) or f"exit status {self._process.returncode}"
            raise ConfigError(
                f"kustomize build {self.overlay} failed: {reason}", hint=component_hint(reason)
            )
        return decode_text(self._stdout.data, name)

    def _finished_in_time(self) -> bool:
        """Whether the build ended and its output was read within the timeout."""
        deadline = time.monotonic() + self._timeout
        try:
            self._process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            return False
        for reader in (self._stdout, self._stderr):
            # kustomize may have ended while something it started still holds its output open
            reader.join(max(0.0, deadline - time.monotonic()))
        return not (self._stdout.is_alive() or self._stderr.is_alive())

    def cancel(self) -> None:
        """Stop the build if it still runs (its result is not wanted after all)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for reader in (self._stdout, self._stderr):
            reader.join(CLOSE_WAIT)


#: The most of Kustomize's error output kept for the message; the rest is read and dropped.
_STDERR_KEPT: Final = 64 * 1024


def read_manifests(source: str) -> str:
    """Read already rendered manifests (``helm template`` output, say) from a file, or stdin for ``-``.

    At most :data:`~promoter.config.input_files.MANIFESTS_CAP` is read.

    Raises:
        ConfigError: the file cannot be read, is over the cap, is not UTF-8 text, or holds no
            document at all (an empty pipe: the renderer before it failed, and a plan of nothing
            would report success).
    """
    name = "manifests from standard input" if source == "-" else f"manifests from {source}"
    text = read_input_text(source, name=name, cap=MANIFESTS_CAP)
    meaningful = (
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    if all(line.strip() in ("---", "...") for line in meaningful):
        raise ConfigError(
            f"{name}: no manifests at all; check the command that renders them "
            "(e.g. helm template ... | promoter plan ENV --manifests -)"
        )
    return text


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
