"""Whether images are present in a registry, asked once however many callers ask at the same time,
and remembered for a short while: what the admission webhook asks for every image of every Pod.

Two rules from the design's "code that runs for weeks": a positive answer carries a TTL (a lifecycle
rule or a prune may delete the image later, and a Pod scaled up then must be denied, not admitted on
an old memory), and a negative answer is never remembered (an image promoted a second later must be
admitted at once). Concurrent lookups of one image share one registry request (single flight): a
Deployment scaled to 200 replicas asks once, not 200 times.

The same single-flight rule holds for on-demand copies (:class:`Promotions`): many Pods of one missing
image start one copy, and a copy that outlives the review that started it goes on in the background
so that the controller's retry finds the image.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Generic, TypeVar

from promoter.deadline import Deadline
from promoter.errors import DeadlineExceededError

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Lookup(Generic[_T]):
    """One answer of a :class:`SingleFlight`.

    Attributes:
        value: what the work returned.
        shared: whether this caller waited for another caller's work instead of doing it.
    """

    value: _T
    shared: bool


class SingleFlight(Generic[_T]):
    """Runs one piece of work per key at a time; callers that ask for a key being worked on wait for
    that work's answer instead of starting their own. Thread-safe.

    The first caller does the work in its own thread (no hand-off, no pool to size), so a key's work
    is bounded by that caller's deadline; the others wait at most their own deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[_T]] = {}

    def run(self, key: str, work: Callable[[], _T], deadline: Deadline) -> Lookup[_T]:
        """``work()``'s answer for ``key``, shared with concurrent callers of the same key.

        Raises:
            DeadlineExceededError: ``deadline`` passed while waiting for another caller's work.
            Whatever ``work`` raises (the waiting callers get the same exception).
        """
        with self._lock:
            running = self._running.get(key)
            if running is None:
                mine: Future[_T] = Future()
                self._running[key] = mine
        if running is not None:
            try:
                return Lookup(running.result(timeout=deadline.cap(deadline.seconds)), shared=True)
            except FutureTimeoutError:
                raise DeadlineExceededError(f"{key}: gave up after {deadline.name}") from None
        try:
            value = work()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(value)
            return Lookup(value, shared=False)
        finally:
            with self._lock:
                del self._running[key]


class PositiveCache:
    """Keys known to be present, each for ``ttl`` seconds from when it was learned. Thread-safe.

    Bounded: past ``capacity`` keys the oldest learned is forgotten first (it would be asked again,
    never wrongly answered).

    Args:
        ttl: seconds an entry is trusted; 0 remembers nothing.
        capacity: the most entries kept.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, ttl: float, *, capacity: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._until: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        now = self._clock()
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if until <= now:
                del self._until[key]
                return False
            return True

    def add(self, key: str) -> None:
        """Remember ``key`` as present for ``ttl`` seconds from now."""
        if self.ttl <= 0:
            return
        until = self._clock() + self.ttl
        with self._lock:
            self._until[key] = until
            self._until.move_to_end(key)
            while len(self._until) > self.capacity:
                self._until.popitem(last=False)

    def forget(self, key: str) -> None:
        """Stop trusting ``key`` (a copy found it missing after all)."""
        with self._lock:
            self._until.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


class Promotions(Generic[_T]):
    """On-demand copies by key, each run once in a background thread however many callers ask for
    it while it runs; a caller waits up to its own deadline and is told when the copy goes on
    without it. Thread-safe.

    Copies run in daemon threads: a process told to stop (SIGTERM) does not wait for them. That is
    safe because a copy writes its tag last: a copy cut short leaves only unreferenced blobs, and
    the next request starts it again.

    Args:
        limit: the most copies running at once; a request for another is refused until one ends
            (a flood of distinct missing images must not start a flood of copies).
    """

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._running: dict[str, Future[_T]] = {}
        self._closed = False

    def start(self, key: str, copy: Callable[[], _T]) -> tuple[Future[_T], bool] | None:
        """The running copy for ``key``, or a new one started with ``copy``; with whether this
        call started it. None when :attr:`limit` copies are running already or the controller is
        closing."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running, False
            if self._closed or len(self._running) >= self.limit:
                return None
            future: Future[_T] = Future()
            self._running[key] = future
        thread = threading.Thread(
            target=self._run, args=(key, copy, future), name=f"promote {key}", daemon=True
        )
        thread.start()
        return future, True

    def _run(self, key: str, copy: Callable[[], _T], future: Future[_T]) -> None:
        # The copy leaves the running set before its future is done: whoever the future tells
        # (a waiting review, a done-callback that logs it) sees it ended.
        try:
            result = copy()
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller, not lost
            with self._lock:
                self._running.pop(key, None)
            future.set_exception(exc)
        else:
            with self._lock:
                self._running.pop(key, None)
            future.set_result(result)

    @property
    def running(self) -> int:
        """Copies running now."""
        with self._lock:
            return len(self._running)

    def close(self, grace: float) -> int:
        """Refuse new copies and wait up to ``grace`` seconds for the running ones; returns how
        many were still running (they are abandoned: see the class docstring)."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
        end = time.monotonic() + max(0.0, grace)
        for future in running:
            try:
                future.exception(timeout=max(0.0, end - time.monotonic()))
            except FutureTimeoutError:
                break
        return self.running
