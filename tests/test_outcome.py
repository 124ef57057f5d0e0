"""Outcomes, exit codes, remedies and deadlines: pure tables, no registry."""

from __future__ import annotations

import time

import pytest

from promoter.cli.exit_codes import cli_message, exit_code_for, exit_code_of
from promoter.deadline import Deadline
from promoter.errors import (
    ConfigError,
    DeadlineExceededError,
    ImmutableTagError,
    InputError,
    PromoterError,
    RegistryError,
    RegistryUnreachableError,
    Remedy,
    TagConflictError,
)
from promoter.outcome import Outcome, outcome_of, worst
from promoter.planning.plan import PlanItem, PlanStatus, plan_outcome
from promoter.transport.retry import RetryPolicy

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], Outcome.DONE),
        ([Outcome.DONE, Outcome.DONE], Outcome.DONE),
        ([Outcome.REFUSED, Outcome.DONE], Outcome.REFUSED),
        ([Outcome.REFUSED, Outcome.FAILED, Outcome.REFUSED], Outcome.FAILED),
        ([Outcome.FAILED, Outcome.DONE], Outcome.FAILED),
    ],
)
def test_worst_orders_done_before_refused_before_failed(
    outcomes: list[Outcome], expected: Outcome
) -> None:
    """One real failure outranks any number of refusals; nothing at all is done."""
    assert worst(outcomes) is expected


@pytest.mark.parametrize(
    ("error", "outcome", "code"),
    [
        (None, Outcome.DONE, 0),
        (TagConflictError("r/x:1", D, D), Outcome.REFUSED, 3),
        (ImmutableTagError("r/x:1", "TAG_INVALID"), Outcome.REFUSED, 3),
        (RegistryError("GET", "http://r/v2/", 500), Outcome.FAILED, 1),
        (RegistryUnreachableError("no answer"), Outcome.FAILED, 1),
        (DeadlineExceededError("too slow"), Outcome.FAILED, 1),
        (InputError("bad reference"), Outcome.FAILED, 2),
        (ConfigError("bad file"), Outcome.FAILED, 2),
    ],
)
def test_errors_map_to_one_outcome_and_one_exit_code(
    error: PromoterError | None, outcome: Outcome, code: int
) -> None:
    """Refusals exit 3, input errors 2, every other failure 1; no error is done (0)."""
    assert outcome_of(error) is outcome
    assert (exit_code_for(error) if error is not None else exit_code_of(outcome)) == code


def test_plan_items_carry_their_outcome() -> None:
    """A conflict or missing source refuses a sync, an unanswered registry fails it."""

    def item(status: PlanStatus) -> PlanItem:
        return PlanItem("r/x:1", None, None, None, status)

    assert plan_outcome([item(PlanStatus.PRESENT), item(PlanStatus.COPY)]) is Outcome.DONE
    assert plan_outcome([item(PlanStatus.CONFLICT), item(PlanStatus.COPY)]) is Outcome.REFUSED
    assert plan_outcome([item(PlanStatus.MISSING_SOURCE)]) is Outcome.REFUSED
    assert plan_outcome([item(PlanStatus.CONFLICT), item(PlanStatus.ERROR)]) is Outcome.FAILED


def test_library_messages_carry_hints_and_the_cli_turns_remedies_into_flags() -> None:
    """The library never names a CLI flag; the CLI says --force and --ca-file for those remedies."""
    conflict = TagConflictError("r/x:1", D, D)
    assert "--" not in str(conflict)
    assert str(conflict).endswith("; forcing the copy moves it")
    assert cli_message(conflict).endswith(" (use --force to move it)")
    tls = RegistryUnreachableError(
        "TLS failure", retryable=False, hint="trust its CA", remedy=Remedy.TRUST_CA
    )
    assert cli_message(tls) == "TLS failure (use --ca-file for a private CA)"
    plain = ConfigError("bad file", hint="fix it")
    assert cli_message(plain) == str(plain) == "bad file; fix it"
    immutable = TagConflictError("r/x:1", D, D, hint="the tag is immutable", remedy=None)
    assert "--force" not in cli_message(immutable)


def test_a_deadline_counts_down_and_caps_timeouts() -> None:
    """remaining() shrinks, cap() never exceeds what is left, check() raises once it has passed."""
    deadline = Deadline.after(30)
    assert 29 < deadline.remaining() <= 30
    assert deadline.cap(120.0) <= 30
    assert deadline.cap(5.0) == 5.0
    deadline.check("still fine")
    past = Deadline(time.monotonic() - 1, 2.0)
    assert past.expired
    assert past.cap(10.0) == pytest.approx(0.001)
    with pytest.raises(DeadlineExceededError, match="copy x: gave up after the 2 s deadline"):
        past.check("copy x")
    with pytest.raises(ValueError, match="positive"):
        Deadline.after(0)


def test_retries_never_wait_past_the_deadline() -> None:
    """A retry whose backoff would outlast the deadline fails at once instead of sleeping."""
    calls: list[float] = []

    def always_busy() -> None:
        calls.append(time.monotonic())
        raise RegistryError("GET", "http://r/v2/", 503, retryable=True, retry_after=5.0)

    policy = RetryPolicy(attempts=5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        policy.run(always_busy, deadline=Deadline.after(1.0), what="pull x")
    assert time.monotonic() - started < 0.5
    assert len(calls) == 1
    assert isinstance(caught.value.__cause__, RegistryError)
    assert "pull x: gave up, the next try (in 5.0 s) would pass the 1 s deadline" in str(
        caught.value
    )


def test_a_phase_s_share_of_the_deadline_is_named_as_one() -> None:
    """A sync's lookups get a quarter of the run's time: a message about that deadline says so,
    instead of naming a number the user never gave (`--timeout 8`, "the 2 s deadline")."""
    from promoter.deadline import Deadline  # noqa: PLC0415

    share = Deadline.after(8).share(0.25)
    assert share.name == "the 2 s deadline (this step's share of the run's 8 s)"
    assert share.share(0.5).name.endswith("share of the run's 8 s)")  # the run's, not the step's
    assert Deadline.after(8).name == "the 8 s deadline"
    with pytest.raises(DeadlineExceededError, match=r"share of the run's 8 s\)"):
        Deadline(at=0.0, seconds=2, of=8).check("lookup x")
