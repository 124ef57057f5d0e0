"""Run a command and measure its peak resident memory from outside the process.

``python -m devtools.peak_rss OUT -- COMMAND...`` runs COMMAND with this process's standard streams,
writes the child's peak RSS in KiB (``getrusage(RUSAGE_CHILDREN).ru_maxrss``: this wrapper's only child)
to the file OUT, and exits with the child's exit code. Tests use :func:`run_measured`.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    """A finished command: exit code, output, and peak RSS in MiB."""

    returncode: int
    stdout: str
    stderr: str
    peak_mib: float


def run_measured(
    argv: Sequence[str],
    *,
    out_dir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> Measured:
    """Run ``argv`` under the wrapper and return what it did and its peak RSS."""
    out = out_dir / "peak-rss"
    done = subprocess.run(
        [sys.executable, "-m", "devtools.peak_rss", str(out), "--", *argv],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return Measured(done.returncode, done.stdout, done.stderr, int(out.read_text().strip()) / 1024)


def main(args: Sequence[str]) -> int:
    out, separator, *command = args
    if separator != "--" or not command:
        print("usage: python -m devtools.peak_rss OUT -- COMMAND...", file=sys.stderr)
        return 2
    code = subprocess.run(command, check=False).returncode
    Path(out).write_text(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
