"""Child processes (``kustomize build``, ``docker-credential-*`` helpers) whose output is read as it is
printed and kept under a cap. Standard library only.

A pipe read whole with ``subprocess.run(capture_output=True)`` holds everything the child prints: a
broken or hostile program that prints without end grows promoter without bound. Here each pipe is read
by a thread that keeps at most its limit; past the limit of the output that matters, the child is killed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Final

#: Bytes asked of a pipe per read.
_READ_SIZE: Final = 256 * 1024
#: Seconds to wait for a pipe to close after its child was stopped.
CLOSE_WAIT: Final = 5.0


class PipeReader(threading.Thread):
    """Reads one pipe of a child process to its end, keeping at most ``limit`` bytes.

    Past the limit it calls ``on_overflow`` (which stops the child) and stops reading; without one it
    keeps reading and drops the rest, so the child can still finish.

    Args:
        pipe: the child's stdout or stderr (a buffered binary pipe).
        limit: the most bytes kept.
        on_overflow: called once when the output passes ``limit``.
        name: the thread's name.
    """

    def __init__(
        self,
        pipe: IO[bytes],
        limit: int,
        *,
        on_overflow: Callable[[], None] | None = None,
        name: str = "child-output",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._pipe = pipe
        self._limit = limit
        self._on_overflow = on_overflow
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False
        self.start()

    @property
    def data(self) -> bytes:
        """What was kept (read only after the thread has ended)."""
        return b"".join(self._chunks)

    def run(self) -> None:
        try:
            while chunk := self._pipe.read1(_READ_SIZE):  # type: ignore[attr-defined]  # a BufferedReader
                if self._size + len(chunk) > self._limit:
                    self.overflowed = True
                    self._chunks.append(chunk[: self._limit - self._size])
                    self._size = self._limit
                    if self._on_overflow is not None:
                        self._on_overflow()
                        return
                    continue
                self._chunks.append(chunk)
                self._size += len(chunk)
        except (OSError, ValueError):
            return  # the pipe was closed under us: the child was stopped
        finally:
            self._pipe.close()


@dataclass(frozen=True, slots=True)
class Finished:
    """A child process that ended.

    Attributes:
        returncode: its exit status (negative: the signal that ended it).
        stdout: what it printed, at most the limit.
        stderr: what it printed on standard error, at most the limit.
        overflowed: it printed more than the stdout limit and was killed for it.
    """

    returncode: int
    stdout: bytes
    stderr: bytes
    overflowed: bool


def run_capped(
    command: Sequence[str],
    *,
    stdin: bytes,
    timeout: float,
    stdout_limit: int,
    stderr_limit: int,
) -> Finished:
    """Run ``command`` with ``stdin`` as its input, keeping at most ``stdout_limit`` bytes of its
    output (killing it past that) and ``stderr_limit`` of its error output.

    Raises:
        OSError: the command cannot be started (FileNotFoundError when it does not exist).
        subprocess.TimeoutExpired: it did not finish within ``timeout`` seconds; it was killed. The
            exception carries none of its output.
    """
    process = subprocess.Popen(
        list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdin is not None  # noqa: S101 - Popen with PIPE always gives one
    assert process.stdout is not None  # noqa: S101
    assert process.stderr is not None  # noqa: S101
    started = time.monotonic()
    out = PipeReader(process.stdout, stdout_limit, on_overflow=process.kill)
    err = PipeReader(process.stderr, stderr_limit)
    try:
        process.stdin.write(stdin)
        process.stdin.close()
    except OSError:
        pass  # it does not read its input (or ended already): its exit status will say
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        for reader in (out, err):
            reader.join(CLOSE_WAIT)
        raise subprocess.TimeoutExpired(list(command), timeout) from None
    for reader in (out, err):
        # Something the child started may still hold its output open.
        reader.join(max(0.0, timeout - (time.monotonic() - started)))
    return Finished(process.returncode, out.data, err.data, out.overflowed)
