"""Outcomes of an operation, in one order, for every front end.

A copy, a batch, a plan, a sync and (later) an admission review each end in one of three outcomes, ordered
by how bad they are: done < refused < failed. A batch's outcome is the worst of its parts, so one real
failure outranks any number of refusals. The CLI turns an outcome into an exit code
(``promoter.cli.exit_codes``); the webhook will turn it into allow or deny.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from promoter.errors import SafetyError


class Outcome(IntEnum):
    """How an operation ended; larger is worse."""

    DONE = 0  #: everything asked for holds now (copied, or already present)
    REFUSED = 1  #: a safety rule stopped something on purpose (a tag that would move)
    FAILED = 2  #: something could not be done (a registry error, a timeout, bad content)

    def __str__(self) -> str:
        return self.name.lower()


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The worst of ``outcomes``; :attr:`Outcome.DONE` for none."""
    return max(outcomes, default=Outcome.DONE)


def outcome_of(error: BaseException | None) -> Outcome:
    """The outcome an error stands for: refused for a :class:`~promoter.errors.SafetyError`, failed for
    any other error, done for None."""
    if error is None:
        return Outcome.DONE
    return Outcome.REFUSED if isinstance(error, SafetyError) else Outcome.FAILED
