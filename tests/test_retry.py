"""The one retry policy (pytest_perfci.retry, on tenacity): waits, stop rules, progress, what is raised."""

from __future__ import annotations

import pytest

from pytest_perfci.retry import LookAgain, backoff, polling


class Busy(Exception):
    pass


def flaky(failures: int, error: type[Exception] = Busy) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"busy {len(calls)}")
        return "done"

    return calls, fn


def test_backoff_doubles_from_first_up_to_cap_and_says_so_before_each_wait() -> None:
    sleeps: list[float] = []
    lines: list[str] = []
    calls, fn = flaky(5)
    policy = backoff(lambda e: isinstance(e, Busy), first=2.0, cap=10.0, sleep=sleeps.append,
                     on_retry=lambda e, d, n: lines.append(f"{n}: {e}; retrying in {d:.0f}s"))
    assert policy(fn) == "done"
    assert sleeps == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert len(calls) == 6
    assert lines[0] == "1: busy 1; retrying in 2s" and lines[-1] == "5: busy 5; retrying in 10s"


def test_backoff_stops_before_a_wait_that_would_pass_the_budget_and_reraises_the_error() -> None:
    sleeps: list[float] = []
    _, fn = flaky(99)
    with pytest.raises(Busy, match="busy 3"):  # the error itself, not a tenacity RetryError
        backoff(lambda e: isinstance(e, Busy), first=2.0, cap=15.0, within=7.0, sleep=sleeps.append)(fn)
    assert sleeps == [2.0, 4.0]  # the next wait (8 s) would end past 7 s


def test_backoff_attempts_and_before_hook() -> None:
    seen: list[int] = []
    calls, fn = flaky(99)
    with pytest.raises(Busy):
        backoff(lambda e: isinstance(e, Busy), first=0.0, attempts=3, before=seen.append, sleep=lambda _: None)(fn)
    assert len(calls) == 3 and seen == [1, 2, 3]


def test_backoff_does_not_retry_other_errors() -> None:
    calls, fn = flaky(1, ValueError)
    with pytest.raises(ValueError):
        backoff(lambda e: isinstance(e, Busy), first=1.0, sleep=lambda _: None)(fn)
    assert len(calls) == 1


def test_polling_waits_what_the_caller_asked_and_gives_up_with_the_last_look() -> None:
    sleeps: list[float] = []
    answers = iter([LookAgain(0.1), LookAgain(0.2), "got it"])

    def look() -> str:
        answer = next(answers)
        if isinstance(answer, LookAgain):
            raise answer
        return answer

    assert polling(5, sleep=sleeps.append)(look) == "got it"
    assert sleeps == [0.1, 0.2]
    with pytest.raises(LookAgain, match="in flux"):
        polling(2, sleep=sleeps.append)(lambda: (_ for _ in ()).throw(LookAgain(0.3, "in flux")))
