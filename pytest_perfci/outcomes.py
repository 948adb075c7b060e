"""Where a suite's judged outcomes become pytest results; shared by every suite in suites/.

Kept out of checks/ (pure, no pytest) because failing and xfailing is the one thing only pytest does.
"""

from __future__ import annotations

import pytest

from pytest_perfci.checks.expectations import Outcome
from pytest_perfci.hosts.base import Host


def target_key(host: Host) -> str:
    """The name expectations are looked up by: the EC2 instance type when known, else the target name."""
    return host.facts.instance_type or host.name


def conclude(outcomes: list[Outcome]) -> None:
    """Any failure fails the test with every failing sentence; otherwise any xfail xfails it with the reasons."""
    failed = [o.message for o in outcomes if o.action == "fail"]
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    xfailed = [o.message for o in outcomes if o.action == "xfail"]
    if xfailed:
        pytest.xfail("; ".join(xfailed))
