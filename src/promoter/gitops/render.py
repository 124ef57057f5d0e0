"""Rendering an environment's manifests: the real ``kustomize build``, or manifests given as a file.

promoter never reimplements Kustomize: patches, components, generators and the ``images:``
transformer must mean exactly what Argo CD will apply, so the overlay is built by the same tool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from promoter.config.input_files import MANIFESTS_CAP, InputCap, decode_text, read_input_text
from promoter.deadline import Deadline
from promoter.errors import ConfigError, DeadlineExceededError, RunInterruptedError
from promoter.gitops.hookfile import component_hint
from promoter.process import (
    CLOSE_WAIT,
    PipeReader,
    children_stopped,
    forget_child,
    kill_child,
    start_child,
)

#: Seconds a build may take; 500 Deployments render in about half a second, so this only ends a
#: build stuck on something outside our control (a remote resource that never answers).
RENDER_TIMEOUT: Final = 120.0

# kubectl reports through klog: `E1127 15:36:48.611558   22121 run.go:72] "command failed" err="..."`.
_KLOG_LINE = re.compile(r"[EWIF]\d{4} [\d:.]+\s+\d+ [^\]]+\] (?P<rest>.*)")
_KLOG_ERR = re.compile(r'\berr="(?P<text>(?:[^"\\]|\\.)*)"')


def render_overlay(
    overlay: Path,
    *,
    options: Sequence[str] = (),
    timeout: float = RENDER_TIMEOUT,
    deadline: Deadline | None = None,
) -> str:
    """Build a Kustomize overlay and return the rendered multi-document YAML.

    Uses the ``kustomize`` binary when it is on PATH, otherwise ``kubectl kustomize`` (kubectl
    embeds a Kustomize), which is what Argo CD users usually have.

    Args:
        overlay: the overlay folder (the one holding ``kustomization.yaml``).
        options: arguments added after the folder (the environment's ``kustomize_build_options``,
            checked by :func:`~promoter.config.kustomize_options.build_arguments`), e.g.
            ``--enable-helm``.
        timeout: seconds before the build is stopped.
        deadline: the run's deadline, which stops the build when it comes first.

    Raises:
        ConfigError: the folder is missing, no Kustomize is installed, the build timed out, or
            Kustomize failed; the message carries Kustomize's own first line of explanation.
        DeadlineExceededError: the build was stopped at ``deadline``.
        RunInterruptedError: the run was interrupted; the build was stopped.
    """
    rendering = start_render(overlay, options=options, timeout=timeout)
    try:
        return rendering.result(deadline)
    except BaseException:
        rendering.cancel()  # no kustomize left running after Ctrl-C
        raise


def start_render(
    overlay: Path, *, options: Sequence[str] = (), timeout: float = RENDER_TIMEOUT
) -> Rendering:
    """Start building an overlay in the background (see :func:`render_overlay`).

    The CLI starts the build before it has loaded what validating promoter.yaml needs, so the two
    overlap: rendering is the floor of every plan.

    Raises:
        ConfigError: the folder is missing or no Kustomize is installed.
        RunInterruptedError: the run was interrupted already.
    """
    return Rendering(overlay, timeout, options=options)


class Rendering:
    """One ``kustomize build`` running as a child process.

    Its output is read as it is printed, by a thread per pipe, so the build never blocks on a full
    pipe and never hands promoter more than :data:`~promoter.config.input_files.MANIFESTS_CAP`: a build
    that prints more is stopped as soon as it passes the cap.

    The build runs in a process group of its own (:func:`promoter.process.start_child`), so that
    stopping it stops what it started too (``git`` fetching a remote base), and with Git's terminal
    prompts off: a remote base that asks for a password fails with Git's message instead of
    waiting on a terminal it cannot read.

    Args:
        overlay: the overlay folder.
        timeout: seconds from the start after which the build is stopped.
        cap: the most output accepted.
        options: build options after the folder (see :func:`render_overlay`); kept as
            :attr:`options`, so that a build started early is used only for the same options.

    Raises:
        ConfigError: the folder is missing or no Kustomize is installed.
        RunInterruptedError: the run was interrupted already.
    """

    def __init__(
        self,
        overlay: Path,
        timeout: float,
        cap: InputCap = MANIFESTS_CAP,
        *,
        options: Sequence[str] = (),
    ) -> None:
        if not overlay.is_dir():
            what = "is not a folder" if overlay.exists() else "does not exist"
            raise ConfigError(f"overlay {overlay} {what}; check the overlay path in promoter.yaml")
        self.overlay = overlay
        self.options = tuple(options)
        self._timeout = timeout
        self._cap = cap
        command = _build_command(overlay, self.options)
        self._started = time.monotonic()
        try:
            self._process = start_child(
                command, own_group=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
        except RunInterruptedError:
            raise RunInterruptedError(f"kustomize build {overlay}: interrupted") from None
        stdout, stderr = self._process.stdout, self._process.stderr
        assert stdout is not None  # noqa: S101 - Popen with PIPE always gives one
        assert stderr is not None  # noqa: S101 - Popen with PIPE always gives one
        process = self._process
        self._stdout = PipeReader(
            stdout, cap.limit, on_overflow=lambda: kill_child(process), name="kustomize-output"
        )
        self._stderr = PipeReader(stderr, _STDERR_KEPT, name="kustomize-errors")

    def result(self, deadline: Deadline | None = None) -> str:
        """Wait for the build and return its output (again on a later call).

        Args:
            deadline: the caller's deadline: the build is stopped when it comes before the
                build's own timeout.

        Raises:
            ConfigError: the build timed out, failed (with Kustomize's own explanation), or printed
                more than the cap or something other than UTF-8.
            DeadlineExceededError: ``deadline`` came first; the message says how long the build
                ran.
            RunInterruptedError: the run was interrupted (:func:`promoter.process.stop_children`);
                the build was stopped, and its output, complete or not, is not used.
        """
        ends = self._started + self._timeout
        by_deadline = deadline is not None and deadline.at < ends
        if deadline is not None and by_deadline:
            ends = deadline.at
        finished = self._finished_by(ends)
        # Stopped, or ended: either way no member of its process group runs on.
        self.cancel()
        if children_stopped():
            raise RunInterruptedError(f"kustomize build {self.overlay}: interrupted")
        if not finished:
            if deadline is not None and by_deadline:
                raise DeadlineExceededError(
                    f"kustomize build {self.overlay}: stopped after "
                    f"{time.monotonic() - self._started:.1f} s, at the {deadline.seconds:g} s "
                    "deadline"
                )
            raise ConfigError(
                f"kustomize build {self.overlay} did not finish within {self._timeout:g} s"
            )
        name = f"the output of kustomize build {self.overlay}"
        if self._stdout.overflowed:
            raise self._cap.exceeded(name)
        if self._process.returncode != 0:
            stderr = self._stderr.data.decode("utf-8", "replace")
            reason = _tidy(_first_error_line(stderr)) or f"exit status {self._process.returncode}"
            raise ConfigError(
                f"kustomize build {self.overlay} failed: {reason}",
                hint=component_hint(reason) or build_option_hint(reason),
            )
        return decode_text(self._stdout.data, name)

    def _finished_by(self, ends: float) -> bool:
        """Whether the build ended and its output was read by ``ends`` (monotonic time); it ends
        sooner when stopped by an interrupt."""
        # The end of the output is waited for first, on its reading thread, which wakes the
        # moment the pipe closes; Popen.wait with a timeout polls in sleeps of up to 50 ms, which
        # a render (every plan, sync and hook run) would pay on top of the build (issue 14).
        self._stdout.join(max(0.0, ends - time.monotonic()))
        try:
            self._process.wait(timeout=max(0.0, ends - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        if children_stopped():
            return True  # killed by the stop: nothing more to wait for
        for reader in (self._stdout, self._stderr):
            # kustomize may have ended while something it started still holds its output open
            reader.join(max(_OUTPUT_GRACE, ends - time.monotonic()))
        return not (self._stdout.is_alive() or self._stderr.is_alive())

    def cancel(self) -> None:
        """Stop the build and what it started, if still running (its result is not wanted after
        all); once it is waited for, an interrupt no longer counts it as running."""
        kill_child(self._process)
        self._process.wait()
        forget_child(self._process)
        for reader in (self._stdout, self._stderr):
            reader.join(CLOSE_WAIT)


#: Seconds the rest of a build's output may take to be read once the build has ended, even past
#: the deadline: a build that ended in time is not failed for the reading thread's lag.
_OUTPUT_GRACE: Final = 1.0

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


def _build_command(overlay: Path, options: Sequence[str] = ()) -> list[str]:
    """``kustomize build DIR OPTIONS`` or ``kubectl kustomize DIR OPTIONS``, with the program's
    full path; both take the same build flags."""
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(overlay), *options]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(overlay), *options]
    raise ConfigError(
        "neither kustomize nor kubectl is on PATH; install kustomize "
        "(https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl to render overlays"
    )


#: What Kustomize says about ``helmCharts:`` in a build without ``--enable-helm``.
_HELM_DISABLED: Final = "must specify --enable-helm"
#: What Kustomize says about a file outside the kustomization's folder under the default
#: ``--load-restrictor LoadRestrictionsRootOnly`` (a shared chart home, a values file).
_OUTSIDE_ROOT: Final = re.compile(r"security; file '[^']*' is not in or below")


def build_option_hint(kustomize_error: str) -> str:
    """What to do about a failed ``kustomize build`` that a missing build option caused, or "".

    The options go in promoter.yaml, which every front end reads (the Argo CD plugin too: Argo
    CD's own ``kustomize.buildOptions`` do not reach the overlays it renders)."""
    if _HELM_DISABLED in kustomize_error:
        return (
            "the overlay uses helmCharts: add kustomizeBuildOptions: [--enable-helm] to the "
            "environment in promoter.yaml; rendering then runs helm, which must be on PATH"
        )
    if _OUTSIDE_ROOT.search(kustomize_error):
        return (
            "the overlay reads a file outside its folder: if that is meant (a shared chart home "
            "or values file), add kustomizeBuildOptions: [--load-restrictor "
            "LoadRestrictionsNone] to the environment in promoter.yaml"
        )
    return ""


# Kustomize's Helm generator echoes its whole configuration (values included) and helm's
# environment in its errors: neither says what went wrong, and values can be long.
_ECHOED_CONFIG = re.compile(r" with config: `.*?`:")
_HELM_ENV = re.compile(r" with env=\[[^\]]*\]")


def _tidy(reason: str) -> str:
    """Kustomize's error line without the echoes :data:`_ECHOED_CONFIG` and :data:`_HELM_ENV`."""
    return _HELM_ENV.sub("", _ECHOED_CONFIG.sub(":", reason))


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
