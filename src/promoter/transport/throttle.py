"""How many requests go to one registry at once, once it has said it gets too many.

A registry or its rate limiter answers ``429 Too Many Requests`` to bursts (ECR's per-action limits,
Docker Hub, a gateway in front of a registry: distribution spec, "Error Codes": ``TOOMANYREQUESTS``).
Each such request is retried after ``Retry-After`` (:mod:`promoter.transport.retry`), but a run with
dozens of requests in flight would keep meeting the limit and run out of retries. So each registry
session has a throttle: no limit until the registry answers 429; then at most half of what was in
flight then, growing by one for as many answers as the limit (additive increase, multiplicative
decrease, as TCP's congestion control, RFC 5681); unlimited again once past :data:`CEILING`. Requests
over the limit wait for a slot, within their deadline; an interrupt ends the wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from promoter.deadline import Deadline
from promoter.errors import DeadlineExceededError, RunInterruptedError
from promoter.transport.watch import cleaning_up_on_this_thread, interrupted

#: A limit grown back to this many requests in flight is lifted.
CEILING = 256
#: Seconds between looks at the interrupt while a request waits for a slot.
_LOOK = 0.1


class Throttle:
    """The requests in flight to one registry, and the limit its 429 answers set. Thread-safe.

    Args:
        registry: the registry's name, for messages.
    """

    def __init__(self, registry: str) -> None:
        self.registry = registry
        self._cond = threading.Condition()
        self._in_flight = 0
        self._limit: float | None = None

    @property
    def limit(self) -> int | None:
        """Requests allowed in flight now; None for no limit."""
        return None if self._limit is None else int(self._limit)

    @contextmanager
    def slot(self, deadline: Deadline | None, what: str) -> Iterator[None]:
        """Hold a slot for one request (waiting for one while the limit is reached). A clean-up
        (:func:`~promoter.transport.watch.cleaning_up`: cancelling an upload session, the look at
        a tag after an interrupt) does not wait: it has a short deadline of its own, and what it
        cleans up would stay otherwise.

        Raises:
            DeadlineExceededError: no slot came before ``deadline``.
            RunInterruptedError: the run was interrupted while waiting.
        """
        with self._cond:
            cleaning = cleaning_up_on_this_thread()
            while not cleaning and self._limit is not None and self._in_flight >= int(self._limit):
                if interrupted():
                    raise RunInterruptedError(f"{what}: interrupted")
                if deadline is not None and deadline.expired:
                    raise DeadlineExceededError(
                        f"{what}: gave up after {deadline.name} (waiting for "
                        f"{self.registry}, which answered 429 Too Many Requests, to take more)"
                    )
                wait = _LOOK if deadline is None else min(_LOOK, deadline.remaining())
                self._cond.wait(wait)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify()

    def too_many(self) -> None:
        """The registry answered 429: halve what may be in flight (at least one)."""
        with self._cond:
            ceiling = self._in_flight if self._limit is None else min(self._limit, self._in_flight)
            self._limit = max(1.0, ceiling / 2)

    def answered(self) -> None:
        """A request was answered without 429: the limit grows by one per limit's worth."""
        with self._cond:
            if self._limit is None:
                return
            self._limit += 1 / self._limit
            if self._limit >= CEILING:
                self._limit = None
            self._cond.notify()
