"""A small process that runs the benchmark's measured commands, so their peak RSS is their own.

Linux carries a process's memory high-water mark across ``exec``: a child forked (or vforked, as
``subprocess`` does) from a parent holding hundreds of MiB of test layers reports at least the
parent's peak in ``ru_maxrss``, whatever the program it then runs. bench/run.py therefore starts
this script first, while it is still small, and asks it over a pipe to run each command. Only the
standard library is imported here, which keeps this process, and so that floor, at about 10 MiB.

Protocol: one JSON request per line on stdin (``argv``, ``env``, ``timeout``, and optionally
``cwd``: the folder to run in, default this process's), one JSON reply per
line on stdout (``seconds``, ``max_rss_kib``, ``cpu_seconds``, ``returncode``, ``stdout``,
``stderr``). The loop ends at end of input, that is when bench/run.py closes the pipe or exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any


def run(
    argv: list[str], env: dict[str, str], timeout: float, cwd: str | None = None
) -> dict[str, Any]:
    """Run ``argv``; wall time from spawn to reaping, peak RSS from ``os.wait4`` of that child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return {
            "seconds": seconds,
            "max_rss_kib": usage.ru_maxrss,  # KiB on Linux
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "returncode": proc.returncode,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = run(
                request["argv"], request["env"], float(request["timeout"]), request.get("cwd")
            )
        except OSError as exc:  # e.g. the program is missing: report instead of dying
            reply = {
                "seconds": 0.0,
                "max_rss_kib": 0,
                "cpu_seconds": 0.0,
                "returncode": 127,
                "stdout": "",
                "stderr": f"spawn failed: {exc}",
            }
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
