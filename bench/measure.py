"""Measuring the runs: wall time, peak RSS and CPU time of each copy, and the units they are in.

Every promoter and skopeo command runs through bench/spawn.py (``Spawner``), so its peak RSS is
its own; CPU time is taken for the copying tool, both registries, this harness and the whole
machine (``CpuMeter``); ``settle`` runs before each timed copy. A failed step raises ``BenchError``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.registry import RegistryProcess

MIB = 1024 * 1024
KIB = 1024


@dataclass
class Measured:
    """One subprocess run: wall time from spawn to reaping, and the child's peak RSS."""

    argv: list[str]
    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise BenchError(
                f"{what}: exit {self.returncode}\n$ {' '.join(self.argv)}\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
            )
        return self


class BenchError(RuntimeError):
    """A benchmark step failed (a copy failed or produced a wrong digest)."""


class Spawner:
    """Runs measured commands through bench/spawn.py, a process started while this one is small.

    A child inherits its parent's memory high-water mark across exec (see bench/spawn.py), so
    children spawned from this process, which holds the seeded layers, would all report its peak.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).with_name("spawn.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        self.pid = self._proc.pid

    def measure(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        timeout: float,
        cwd: Path | None = None,
    ) -> Measured:
        """Run ``argv`` to completion (in ``cwd``, default this process's folder): wall time and
        the child's own ``ru_maxrss``."""
        request = json.dumps(
            {
                "argv": list(argv),
                "env": env,
                "timeout": timeout,
                "cwd": None if cwd is None else str(cwd),
            }
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(request + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise BenchError("bench/spawn.py exited unexpectedly")
        reply = json.loads(line)
        return Measured(
            argv=list(argv),
            seconds=reply["seconds"],
            max_rss_kib=reply["max_rss_kib"],
            returncode=reply["returncode"],
            stdout=reply["stdout"],
            stderr=reply["stderr"],
            cpu_seconds=reply["cpu_seconds"],
        )

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) spent during one measured run."""

    tool: float  # the copying tool: promoter, skopeo, or the curl processes
    source: float  # source registry
    dest: float  # destination registry
    harness: float  # this script (its registry log pumps) and bench/spawn.py
    busy: float  # the whole machine, from /proc/stat (includes everything above)

    @property
    def other(self) -> float:
        """Kernel threads and anything else running on the machine: high means interference."""
        return self.busy - self.tool - self.source - self.dest - self.harness


def _pid_cpu(pid: int) -> float:
    """utime + stime of a live process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the machine has not been idle (or waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Snapshots of the registries' and the machine's CPU time around a measured run."""

    def __init__(self, source_pid: int, dest_pid: int, spawner_pid: int) -> None:
        self._pids = (source_pid, dest_pid, spawner_pid)

    def snapshot(self) -> tuple[float, ...]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (
            _pid_cpu(self._pids[0]),
            _pid_cpu(self._pids[1]),
            _machine_busy(),
            children.ru_utime + children.ru_stime,  # reaped children of this process: curl
            me.ru_utime + me.ru_stime + _pid_cpu(self._pids[2]),
        )

    def since(self, before: tuple[float, ...], tool: float | None = None) -> Cpu:
        """CPU used since ``before``; ``tool`` defaults to this process's reaped children."""
        after = self.snapshot()
        return Cpu(
            tool=after[3] - before[3] if tool is None else tool,
            source=after[0] - before[0],
            dest=after[1] - before[1],
            harness=after[4] - before[4],
            busy=after[2] - before[2],
        )


def settle() -> None:
    """Flush dirty pages left by the previous run so its writeback does not land in the next."""
    os.sync()
    time.sleep(0.3)


def registry_pid(registry: RegistryProcess) -> int:
    """The registry's process id (the harness keeps its Popen private)."""
    proc = registry._proc  # read only, for CPU accounting
    if proc is None:
        raise BenchError(f"{registry.name} is not running")
    return proc.pid


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (the registries' storage and the blob files)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
