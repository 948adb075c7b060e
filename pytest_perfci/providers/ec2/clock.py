"""AWS's "now", from a response's Date header: expires-at tags and the on-host deadline come from this
machine's clock, so a clock hours off would make every instance power itself off at boot (slow clock)
or live far too long (fast clock). A run refuses to start beyond :data:`MAX_SKEW` (:func:`check`).

`perfci reap --expired` compares perfci:expires-at with "now": a fast clock would reap live runs, a
slow one would keep expired ones. The reaper corrects instead of refusing (:func:`reaper_now`): beyond
:data:`MAX_SKEW` it takes AWS's time and says so in one line, since a janitor must still work on a
machine whose clock it cannot fix."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MAX_SKEW = timedelta(minutes=5)


class ClockSkew(RuntimeError):
    """str() is one line: both times and what to do."""


def aws_now(response: dict[str, Any]) -> datetime | None:
    """The Date header of a boto3 response (botocore ResponseMetadata.HTTPHeaders['date']), or None."""
    raw = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def aws_time(ec2: Any) -> datetime | None:
    """AWS's now, from one cheap DescribeRegions call's Date header (None when the answer has none)."""
    return aws_now(ec2.describe_regions(RegionNames=[ec2.meta.region_name]))


def describe_skew(skew: timedelta) -> str:
    return f"{abs(skew).total_seconds() / 60:.0f} min {'ahead of' if skew > timedelta(0) else 'behind'} AWS's"


def reaper_now(ec2: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC),
               limit: timedelta = MAX_SKEW, say: Callable[[str], None] = print) -> datetime:
    """"Now" for selecting by perfci:expires-at / keep-until: this clock within ``limit`` of AWS's,
    else AWS's (one line through ``say``). Without an answer from AWS (denied, no Date header) this
    clock, also said in one line: the listing that follows reports any real connection failure."""
    here = now()
    try:
        theirs = aws_time(ec2)
    except (ClientError, BotoCoreError) as exc:
        say(f"could not read AWS's time ({type(exc).__name__}); using this machine's clock "
            f"({here:%Y-%m-%dT%H:%M:%SZ}) for expiry")
        return here
    if theirs is None:
        return here
    skew = here - theirs
    if abs(skew) <= limit:
        return here
    say(f"this machine's clock is {describe_skew(skew)} ({here:%Y-%m-%dT%H:%M:%SZ} here, "
        f"{theirs:%Y-%m-%dT%H:%M:%SZ} at AWS; at most {limit.total_seconds() / 60:.0f} min allowed): "
        "expiry is judged by AWS's time")
    return theirs


def check(ec2: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC),
          limit: timedelta = MAX_SKEW) -> timedelta:
    """This clock minus AWS's (one cheap DescribeRegions call); ClockSkew beyond ``limit``."""
    here = now()
    theirs = aws_time(ec2)
    if theirs is None:
        return timedelta(0)
    skew = here - theirs
    if abs(skew) > limit:
        raise ClockSkew(
            f"this machine's clock is {describe_skew(skew)} ({here:%Y-%m-%dT%H:%M:%SZ} here, "
            f"{theirs:%Y-%m-%dT%H:%M:%SZ} at AWS; at most {limit.total_seconds() / 60:.0f} min allowed): "
            "expires-at and the on-host deadline come from it; fix the clock (NTP) first"
        )
    return skew
