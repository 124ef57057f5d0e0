"""Deadlines: a point in time by which a whole operation must be over. Pure (standard library only).

A deadline bounds an operation as a whole, retries and backoff waits included, where a timeout bounds one
read. The admission webhook has at most 30 s per review (Kubernetes ``timeoutSeconds``), the hook Job its
Job's ``activeDeadlineSeconds``; every operation that talks to registries takes one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from promoter.errors import DeadlineExceededError

#: The longest deadline a run takes, in seconds (11.6 days): longer ones overflow the platform's
#: timers (``threading.TIMEOUT_MAX`` is about 49 days on Linux, less elsewhere). The CLI's
#: ``--timeout`` and the hook Job's derived timeout stay at or below it.
LONGEST_RUN_TIMEOUT = 1_000_000


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment on the monotonic clock (``time.monotonic()`` seconds).

    Attributes:
        at: the monotonic time after which the operation has failed.
        seconds: the budget it was made with, for messages.
        of: for a phase's share (:meth:`share`), the whole budget it was taken from.
    """

    at: float
    seconds: float
    of: float | None = None

    @property
    def name(self) -> str:
        """How messages name it: ``the 120 s deadline``, or for a phase's share ``the 120 s
        deadline (this step's share of the run's 480 s)``, so that a user who gave 480 s is not
        told of a deadline of 120 s that they never set."""
        if self.of is None:
            return f"the {self.seconds:g} s deadline"
        return f"the {self.seconds:g} s deadline (this step's share of the run's {self.of:g} s)"

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now.

        Raises:
            ValueError: ``seconds`` is not a positive, finite number.
        """
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"a deadline needs a positive number of seconds, got {seconds!r}")
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        """Whether the moment has passed."""
        return time.monotonic() >= self.at

    def check(self, what: str) -> None:
        """Raise if the deadline has passed.

        Raises:
            DeadlineExceededError: naming ``what`` and the budget.
        """
        if self.expired:
            raise DeadlineExceededError(f"{what}: gave up after {self.name}")

    def share(self, fraction: float) -> Deadline:
        """A deadline ``fraction`` (0 < fraction <= 1) of the time left from now: the part of an
        operation's budget one phase may use, so that a stuck phase leaves time for the next."""
        seconds = max(0.001, round(self.remaining() * fraction, 1))  # rounded: messages name it
        return Deadline(time.monotonic() + seconds, seconds, self.of or self.seconds)

    def cap(self, seconds: float) -> float:
        """``seconds``, or what is left of the deadline when that is less (at least a millisecond,
        so that a timeout of zero never means "wait forever" to a library)."""
        return max(0.001, min(seconds, self.remaining()))


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


@contextmanager
def hold(lock: _Lock, deadline: Deadline | None, what: str) -> Iterator[None]:
    """Hold ``lock``, waiting for it no longer than the deadline allows (for ever without one).

    Another thread may hold the lock across a slow request (scheme discovery, a token fetch); a caller
    with a deadline gives up waiting instead of inheriting that thread's wait.

    Raises:
        DeadlineExceededError: the lock was not free before the deadline.
    """
    if deadline is None:
        lock.acquire()
    elif not lock.acquire(timeout=deadline.cap(threading.TIMEOUT_MAX)):
        raise DeadlineExceededError(
            f"{what}: gave up after {deadline.name} (waiting for another "
            "request to the same registry)"
        )
    try:
        yield
    finally:
        lock.release()


_CURRENT: ContextVar[Deadline | None] = ContextVar("promoter_deadline", default=None)


@contextmanager
def bounded_by(deadline: Deadline | None) -> Iterator[None]:
    """Make ``deadline`` the current one for code called in the block that takes no deadline of its
    own: credential sources (a ``docker-credential-*`` helper, the ECR token call) behind a
    provider interface that names only the registry."""
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline set by the innermost :func:`bounded_by` of this thread (or task), if any."""
    return _CURRENT.get()


class KeyedLocks:
    """One lock per key (a registry host), made on first use, each held no longer than the current
    deadline (:func:`current_deadline`) allows: one slow credential source for one registry never holds
    up another registry, and a caller with a deadline gives up waiting for it. Thread-safe."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def hold(self, key: str, what: str) -> AbstractContextManager[None]:
        """Hold ``key``'s lock (see :func:`hold`).

        Raises:
            DeadlineExceededError: the lock was not free before the current deadline.
        """
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        return hold(lock, current_deadline(), what)
