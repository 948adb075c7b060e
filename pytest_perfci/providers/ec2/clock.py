"""AWS's "now", from a response's Date header: expires-at tags and the on-host deadline come from this
machine's clock, so a clock hours off would make every instance power itself off at boot (slow clock)
or live far too long (fast clock). A run refuses to start beyond :data:`MAX_SKEW`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

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


def check(ec2: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC),
          limit: timedelta = MAX_SKEW) -> timedelta:
    """This clock minus AWS's (one cheap DescribeRegions call); ClockSkew beyond ``limit``."""
    here = now()
    theirs = aws_now(ec2.describe_regions(RegionNames=[ec2.meta.region_name]))
    if theirs is None:
        return timedelta(0)
    skew = here - theirs
    if abs(skew) > limit:
        raise ClockSkew(
            f"this machine's clock is {abs(skew).total_seconds() / 60:.0f} min "
            f"{'ahead of' if skew > timedelta(0) else 'behind'} AWS's ({here:%Y-%m-%dT%H:%M:%SZ} here, "
            f"{theirs:%Y-%m-%dT%H:%M:%SZ} at AWS; at most {limit.total_seconds() / 60:.0f} min allowed): "
            "expires-at and the on-host deadline come from it; fix the clock (NTP) first"
        )
    return skew
