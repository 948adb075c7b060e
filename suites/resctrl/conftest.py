"""resctrl suite fixtures: the prober on the host, the state guard, the verdict, and test groups.

Lifecycle: `resctrl_state` snapshots the host's resctrl state, mounts resctrl only if it is
registered and not mounted, and on teardown removes every perfci group still present, unmounts only
what it mounted, snapshots again and fails the session (a teardown error) if the state differs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_perfci.checks.resctrl import Observation
from pytest_perfci.collect.probes import installed_probe
from pytest_perfci.collect.resctrl import ProbeFailed, Prober
from pytest_perfci.hosts.base import Host

EFFECT_MARKER = (
    "resctrl_effect: measures the effect of a resctrl control with a workload (seconds of CPU and memory "
    "bandwidth per test); deselect on busy hosts with -m 'not resctrl_effect'"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", EFFECT_MARKER)


@pytest.fixture(scope="session")
def resctrl_prober(host: Host) -> Iterator[Prober]:
    with installed_probe(host, "resctrl_probe.py") as path:
        yield Prober(host, path)


def _leftovers(snapshot: dict[str, Any]) -> list[str]:
    return [g for g in snapshot.get("groups") or [] if g.rsplit("/", 1)[-1].startswith("perfci-")]


@pytest.fixture(scope="session")
def resctrl_state(resctrl_prober: Prober) -> Iterator[dict[str, Any]]:
    """The host's resctrl state before the suite; checked equal after it."""
    before = resctrl_prober.snapshot()
    mounted_here = False
    mount: dict[str, Any] = {"mounted_by_probe": False, "already": before["mounted"], "error": None}
    if before["listed"] and not before["mounted"]:
        mount = resctrl_prober.mount()
        mounted_here = bool(mount["mounted_by_probe"])
    try:
        yield {"before": before, "mount": mount}
    finally:
        problems = []
        try:
            current = resctrl_prober.snapshot()
            for group in _leftovers(current):  # a test's own teardown failed: clean up, and say so
                mon = "/mon_groups/" in f"/{group}"
                resctrl_prober.rmgroup(group.rsplit("/", 1)[-1], mon=mon)
                problems.append(f"group {group} was left behind and removed at session end")
            if mounted_here:
                resctrl_prober.umount()
            after = resctrl_prober.snapshot()
        except ProbeFailed as exc:
            pytest.fail(f"resctrl state could not be restored/checked: {exc}", pytrace=False)
        if after != before:
            problems.append(f"resctrl state changed: before {before}, after {after}")
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def resctrl(host: Host, resctrl_prober: Prober, resctrl_state: dict[str, Any]) -> Observation:
    """The three-part verdict and parsed capabilities of this host (resctrl mounted if it can be)."""
    observation, _ = resctrl_prober.gather(mount_if_needed=False, virtualised=host.facts.virtualised)
    error = resctrl_state["mount"].get("error")
    if error and observation.tree is None and observation.availability.kernel.ok:
        from pytest_perfci.checks.resctrl import judge_availability

        a = judge_availability(observation.cpu, observation.filesystems, None, mount_error=error,
                               kernel_config=observation.kernel_config or None,
                               virtualised=host.facts.virtualised)
        observation = observation.model_copy(update={"availability": a, "mount_error": error})
    return observation


_names = itertools.count()


@pytest.fixture
def resctrl_group(resctrl_prober: Prober) -> Iterator[Callable[..., str]]:
    """make(mon=False) -> name of a new perfci group; every group made is removed at teardown, even on failure."""
    made: list[tuple[str, bool]] = []

    def make(mon: bool = False) -> str:
        name = f"perfci-{os.getpid()}-{next(_names)}"
        result = resctrl_prober.mkgroup(name, mon=mon)
        if not result["ok"]:
            pytest.fail(f"cannot create resctrl group {name}: {result['error']} "
                        f"(last_cmd_status: {(result.get('last_cmd_status') or '').strip()})", pytrace=False)
        made.append((name, mon))
        return name

    yield make
    failures = []
    for name, mon in reversed(made):
        result = resctrl_prober.rmgroup(name, mon=mon)
        if not result["ok"]:
            failures.append(f"{name}: {result['error']}")
    if failures:
        pytest.fail(f"could not remove resctrl groups: {'; '.join(failures)}", pytrace=False)
