"""The project's one retry policy, on tenacity: capped exponential backoff bounded by a deadline or a
number of attempts, with a progress line before each wait.

Why one place: a resource that is "still in use", a kops delete that failed transiently, SSH that is
not up yet, and a lock another controller is taking are all "try again a bit later, but not forever",
and each used to hand-roll its loop with slightly different stop rules. API throttling is not
handled here: botocore's adaptive retry mode does that inside every call (aws/clients.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    stop_never,
    wait_exponential,
)
from tenacity.stop import stop_base

# (the error that will be retried, the seconds about to be slept, the attempt number that failed)
OnRetry = Callable[[BaseException, float, int], None]


def backoff(
    retry_on: Callable[[BaseException], bool],
    *,
    first: float,
    cap: float = 15.0,
    within: float | None = None,
    attempts: int | None = None,
    on_retry: OnRetry | None = None,
    before: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """Call again while ``retry_on(error)``: waits ``first``, ``2*first``, ... up to ``cap`` seconds.

    ``within``: stop instead of waiting when the wait would end more than that many seconds after
    the first attempt started (so a 300 s budget never sleeps past 300 s). ``attempts``: at most
    that many calls. When it stops, the last error is raised as it was (not wrapped).
    ``before(n)`` runs before attempt n; ``on_retry`` before each wait (the progress line).
    """
    stops: list[stop_base] = []
    if within is not None:
        stops.append(stop_before_delay(within))
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            assert error is not None
            on_retry(error, state.upcoming_sleep, state.attempt_number)

    def before_attempt(state: RetryCallState) -> None:
        if before is not None:
            before(state.attempt_number)

    return Retrying(
        retry=retry_if_exception(retry_on),
        wait=wait_exponential(multiplier=first, max=cap),
        stop=stop_any(*stops) if stops else stop_never,
        before=before_attempt,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


class LookAgain(Exception):
    """Raised inside :func:`polling`: the state is in flux, look again after ``delay`` seconds."""

    def __init__(self, delay: float, why: str = "") -> None:
        super().__init__(why or f"look again in {delay}s")
        self.delay = delay


def polling(attempts: int, *, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """Call again, at most ``attempts`` times, while it raises :class:`LookAgain` (waiting its delay).

    For short protocol races (another process between two steps), where the caller knows how long to
    wait; when the attempts run out the last LookAgain is raised.
    """

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return error.delay if isinstance(error, LookAgain) else 0.0

    return Retrying(
        retry=retry_if_exception_type(LookAgain),
        wait=wait,
        stop=stop_after_attempt(attempts),
        sleep=sleep,
        reraise=True,
    )
