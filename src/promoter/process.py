"""Child processes (``kustomize build``, ``docker-credential-*`` helpers): started tracked, so that an
interrupt stops them, and read as they print, kept under a cap. Standard library only, besides
:mod:`promoter.errors`.

A pipe read whole with ``subprocess.run(capture_output=True)`` holds everything the child prints: a
broken or hostile program that prints without end grows promoter without bound. Here each pipe is read
by a thread that keeps at most its limit; past the limit of the output that matters, the child is killed.

Every child is started by :func:`start_child` and known until it has been waited for. A front end that
owns the process (the CLI on Ctrl-C or SIGTERM) calls :func:`stop_children`: every child still running
is killed at once (a build stuck on a remote resource would otherwise run to its end, or outlive
promoter), none is started afterwards, and whoever waits for one raises
:class:`~promoter.errors.RunInterruptedError`, so that the operation undoes what it wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Final

from promoter.errors import RunInterruptedError

#: Bytes asked of a pipe per read.
_READ_SIZE: Final = 256 * 1024
#: Seconds to wait for a pipe to close after its child was stopped.
CLOSE_WAIT: Final = 5.0


#: The signals that stop a run (the CLI's handlers: ``promoter.cli.common.stop_on_signals``).
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def signals_to_main_thread() -> None:
    """Block :data:`STOP_SIGNALS` in the calling thread: for every worker thread promoter starts
    (a pool's ``initializer``, a reader's first step).

    Python runs signal handlers on the main thread only, and only when that thread runs Python
    code. The kernel delivers a signal sent to the process to any thread that does not block it; a
    main thread blocked on a lock (waiting for a future) is then not woken, and the handler waits
    as long as the worker does (a credential helper that never answers: the interrupt was lost).
    With the workers blocking them, the signals reach the main thread, whose wait they interrupt.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


#: The children started and not yet waited for, each with whether it leads its own process group.
_RUNNING: dict[subprocess.Popen[bytes], bool] = {}
#: Guards ``_RUNNING`` and the stop; re-entrant, since :func:`stop_children` runs in a signal
#: handler on the main thread, which may be inside :func:`start_child` at that moment.
_LOCK = threading.RLock()
_STOPPED = threading.Event()


def start_child(
    command: Sequence[str],
    *,
    stdin: int | None = subprocess.DEVNULL,
    own_group: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output on pipes, known to :func:`stop_children` until
    :func:`forget_child` (the caller waits for it, then forgets it).

    Args:
        command: the program and its arguments.
        stdin: ``subprocess.PIPE`` to write its input, else what it reads (nothing by default).
        own_group: start it in a process group of its own, which is killed as a whole: what it
            starts in turn (``git`` for a remote base) stops with it. A terminal's Ctrl-C then
            reaches promoter only, which stops the child itself. Not for a program that may ask
            on the terminal (a credential helper's PIN prompt): a background group cannot read it.
        env: its environment, else promoter's.

    Raises:
        RunInterruptedError: the run was stopped already: no child starts after an interrupt.
        OSError: the command cannot be started (FileNotFoundError when it does not exist).
    """
    with _LOCK:
        if _STOPPED.is_set():
            raise RunInterruptedError(f"{command[0]}: interrupted before it started")
        process = subprocess.Popen(
            list(command),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            process_group=0 if own_group else None,
        )
        _RUNNING[process] = own_group
    if _STOPPED.is_set():  # the stop came as it started, and could not see it yet
        kill_child(process)
    return process


def kill_child(process: subprocess.Popen[bytes]) -> None:
    """Kill a child of :func:`start_child` (its whole group when it has one) unless it was
    waited for already. Safe in a signal handler, and for a child that has ended."""
    own_group = _RUNNING.get(process)
    if own_group is None:
        return  # waited for and forgotten: its pid may belong to another process now
    try:
        if own_group:
            # The group outlives its leader while a member runs, and its id is not reused
            # meanwhile: a leader that ended but was not waited for still names it.
            os.killpg(process.pid, signal.SIGKILL)
        elif process.returncode is None:
            process.kill()
    except ProcessLookupError:
        pass  # every member has ended


def forget_child(process: subprocess.Popen[bytes]) -> None:
    """The caller has waited for ``process``: no stop kills it from now on."""
    with _LOCK:
        _RUNNING.pop(process, None)


def stop_children() -> None:
    """Stop every child process for good: kill each one running (see :func:`kill_child`) and
    start none from now on. For a front end that owns the process (the CLI on an interrupt, and
    before it exits at once on a second one, so that no child is left without its parent)."""
    _STOPPED.set()
    with _LOCK:
        running = list(_RUNNING)
    for process in running:
        kill_child(process)


#: What to put back if the process is stopped at once (:func:`undo_on_sudden_exit`), newest last.
_UNDO: list[Callable[[], None]] = []


@contextmanager
def undo_on_sudden_exit(undo: Callable[[], None]) -> Iterator[None]:
    """While the block runs, ``undo`` is what :func:`run_undo` calls before the process ends at
    once (a second Ctrl-C: ``os._exit``, which runs no ``finally``). For a write that must not be
    left half-done: promote's edit while its check render runs. ``undo`` must be safe at any
    moment of the block (promote's compares the file with what it wrote before restoring it)."""
    with _LOCK:
        _UNDO.append(undo)
    try:
        yield
    finally:
        with _LOCK:
            _UNDO.remove(undo)


def run_undo() -> None:
    """Call every registered undo, newest first, each once, ignoring failures: the process is about
    to end at once (see :func:`undo_on_sudden_exit`)."""
    with _LOCK:
        pending = list(reversed(_UNDO))
        _UNDO.clear()
    for undo in pending:
        # Best effort on the way out: there is nobody left to report a failure to.
        with suppress(Exception):
            undo()


def children_stopped() -> bool:
    """Whether :func:`stop_children` was called: a child that ended did not end on its own."""
    return _STOPPED.is_set()


def children_running() -> bool:
    """Whether a child of :func:`start_child` was started and not yet waited for."""
    return bool(_RUNNING)


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
        signals_to_main_thread()
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
    env: Mapping[str, str] | None = None,
    own_group: bool = False,
) -> Finished:
    """Run ``command`` with ``stdin`` as its input, keeping at most ``stdout_limit`` bytes of its
    output (killing it past that) and ``stderr_limit`` of its error output; ``env`` is its
    environment, else promoter's; ``own_group`` runs it in a process group of its own, killed
    as a whole (see :func:`start_child`), so that what it started (``git`` a remote helper)
    ends with it.

    Raises:
        OSError: the command cannot be started (FileNotFoundError when it does not exist).
        subprocess.TimeoutExpired: it did not finish within ``timeout`` seconds; it was killed. The
            exception carries none of its output.
        RunInterruptedError: the run was interrupted (:func:`stop_children`) before it ended; it was
            killed, or not started.
    """
    process = start_child(command, stdin=subprocess.PIPE, env=env, own_group=own_group)
    try:
        return _finish_capped(
            process, command, stdin=stdin, timeout=timeout, limits=(stdout_limit, stderr_limit)
        )
    finally:
        kill_child(process)  # ended already, or abandoned: by a timeout, an interrupt, an error
        process.wait()
        forget_child(process)


def _finish_capped(
    process: subprocess.Popen[bytes],
    command: Sequence[str],
    *,
    stdin: bytes,
    timeout: float,
    limits: tuple[int, int],
) -> Finished:
    """Feed and read a child of :func:`run_capped` until it ends (see there); ``limits`` are the
    bytes of its output and its error output kept."""
    assert process.stdin is not None  # noqa: S101 - Popen with PIPE always gives one
    assert process.stdout is not None  # noqa: S101
    assert process.stderr is not None  # noqa: S101
    started = time.monotonic()
    out = PipeReader(process.stdout, limits[0], on_overflow=lambda: kill_child(process))
    err = PipeReader(process.stderr, limits[1])
    try:
        process.stdin.write(stdin)
        process.stdin.close()
    except OSError:
        pass  # it does not read its input (or ended already): its exit status will say
    # The end of the output first, on its reading thread, which wakes the moment the pipe
    # closes; Popen.wait with a timeout polls in sleeps of up to 50 ms (every git call paid them).
    out.join(timeout)
    try:
        process.wait(timeout=max(0.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        kill_child(process)  # its group too: nothing it started holds the pipes open
        process.wait()
        if children_stopped():
            raise RunInterruptedError(f"{command[0]}: interrupted") from None
        for reader in (out, err):
            reader.join(CLOSE_WAIT)
        raise subprocess.TimeoutExpired(list(command), timeout) from None
    if children_stopped():
        # Killed by the stop (or ended as it came): its output is not wanted, nor waited for.
        raise RunInterruptedError(f"{command[0]}: interrupted")
    for reader in (out, err):
        # Something the child started may still hold its output open.
        reader.join(max(0.0, timeout - (time.monotonic() - started)))
    return Finished(process.returncode, out.data, err.data, out.overflowed)
