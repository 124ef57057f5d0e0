"""Bounded retries with exponential backoff for transient registry failures.

Retried: 408, 429 (honouring ``Retry-After``), 500, 502, 503, 504, connection refused/reset and
timeouts. Not retried: other 4xx, DNS failures, TLS verification failures (retrying cannot fix them).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from promoter.deadline import Deadline
from promoter.errors import (
    DeadlineExceededError,
    PromoterError,
    RegistryError,
    RegistryUnreachableError,
    RunInterruptedError,
)
from promoter.transport.watch import cleaning_up_on_this_thread, interrupted, pause

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The status a registry answers when it gets more requests than it takes (RFC 6585).
TOO_MANY_REQUESTS = 429
RETRYABLE_STATUSES = frozenset({408, TOO_MANY_REQUESTS, 500, 502, 503, 504})
#: A 429 (Too Many Requests) may be tried this many times the policy's attempts: the registry is
#: up, only busy, and the transport's throttle sends it fewer requests meanwhile; the deadline
#: still bounds the waits.
THROTTLED_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attributes:
        attempts: total tries including the first (1 disables retries).
        base_delay: seconds before the first retry; doubled each time, with jitter.
        max_delay: upper bound of one computed backoff.
        max_retry_after: the longest ``Retry-After`` we honour; longer waits fail instead of hanging a
            sync Job for minutes.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``; None when the
        registry asks for a longer wait than we honour (better to fail than to hang a sync Job)."""
        if isinstance(error, RegistryError) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return float(error.retry_after)
        backoff = min(self.base_delay * (2.0 ** (attempt - 1)), self.max_delay)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    def run(
        self,
        operation: Callable[[], T],
        *,
        deadline: Deadline | None = None,
        what: str = "operation",
    ) -> T:
        """Call ``operation`` until it succeeds, fails for good, or attempts or time run out.

        An error that ran out of attempts is marked not retryable before it propagates, so an outer
        retry (a whole blob transfer around its requests) does not multiply the attempts. A 429
        gets :data:`THROTTLED_ATTEMPTS` times the attempts; a ``Retry-After`` longer than
        ``max_retry_after`` is not waited for, and the error's hint says so. With a deadline, no
        wait goes past it: a retry that could not start in time fails at once with
        :class:`~promoter.errors.DeadlineExceededError`, carrying the last error as its cause. After
        an interrupt (:func:`promoter.transport.watch.interrupt`) no retry starts, except for a
        clean-up (:func:`~promoter.transport.watch.cleaning_up`: cancelling an upload session),
        which keeps trying within its own deadline.

        Raises:
            RegistryError, RegistryUnreachableError: the last attempt's error.
            DeadlineExceededError: the deadline passed.
            RunInterruptedError: the run was interrupted.
        """
        attempt = 1
        last: PromoterError | None = None
        while True:
            try:
                return operation()
            except DeadlineExceededError as exc:
                if last is None:
                    raise
                # The deadline cut a retry: say what the tries before it ran into (a stall, a 503).
                raise DeadlineExceededError(f"{exc.message}; before that: {last}") from exc
            except (RegistryError, RegistryUnreachableError) as exc:
                if not is_retryable(exc):
                    raise
                # A clean-up (cancelling an upload session) is still tried again after an
                # interrupt, within its own short deadline.
                cleaning = cleaning_up_on_this_thread()
                if interrupted() and not cleaning:
                    raise RunInterruptedError(f"{what}: interrupted") from exc
                # A registry that throttles (429) is waited for: the transport sends it fewer
                # requests at once meanwhile (transport.throttle), so more tries are allowed.
                throttled = isinstance(exc, RegistryError) and exc.status == TOO_MANY_REQUESTS
                most = self.attempts * THROTTLED_ATTEMPTS if throttled else self.attempts
                wait = self.delay(attempt, exc) if attempt < most else None
                if wait is None:
                    exc.retryable = False
                    if (
                        isinstance(exc, RegistryError)
                        and (exc.retry_after or 0) > self.max_retry_after
                    ):
                        exc.hint = exc.hint or (
                            f"the registry asked to wait {exc.retry_after:.0f} s (Retry-After), "
                            f"longer than promoter waits ({self.max_retry_after:g} s): try later"
                        )
                    raise
                if deadline is not None and wait >= deadline.remaining():
                    exc.retryable = False
                    raise DeadlineExceededError(
                        f"{what}: gave up, the next try (in {wait:.1f} s) would pass "
                        f"{deadline.name}; last error: {exc}"
                    ) from exc
                log.debug("retry %d/%d in %.2fs after: %s", attempt, most - 1, wait, exc)
                if cleaning:
                    time.sleep(wait)  # bounded by the clean-up's own deadline, checked above
                elif not pause(wait):
                    raise RunInterruptedError(f"{what}: interrupted") from exc
                last = exc
                attempt += 1


def is_retryable(error: BaseException) -> bool:
    """Whether trying again later may succeed."""
    if isinstance(error, RegistryError | RegistryUnreachableError):
        return error.retryable
    return False


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # noqa: PLC0415 - the date form is rare; start-up should not pay for it

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
