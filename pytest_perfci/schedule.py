"""When each target is up: the order tests run in, which test is each target's last, and when the
pipeline schedule starts booting the next target. Pure: target names, indices and seconds in,
decisions out (the session and the plugin do the I/O).

Every schedule releases a target right after its last test (a machine nobody will use again is
money burning). They differ in when a target comes up:

* parallel: all at the first test that needs one (fastest wall clock; the idle is the time a target
  waits for its turn);
* pipeline: the first target when its first test needs it; the next one is booted in the background
  while the current one runs, started late enough that it is ready about when the current one's
  tests end (see :func:`start_next`), so neither machine idles and the boot is hidden;
* serial: a target comes up only after the one before it was released: never two alive at once.

Tests are run grouped by target, in the order the provider names its targets, so that all of this
works in one process without xdist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Schedule = Literal["parallel", "pipeline", "serial"]
SCHEDULES: tuple[Schedule, ...] = ("parallel", "pipeline", "serial")


def rank(uses: frozenset[str], targets: Sequence[str]) -> int:
    """Sort key of one test: 0 for a test that needs no target or several (the `hosts` fixture: they
    run first, while every target is up anyway), else 1 + the position of its target."""
    if len(uses) != 1:
        return 0
    (name,) = uses
    return 1 + targets.index(name) if name in targets else 0


def order(uses: Sequence[frozenset[str]], targets: Sequence[str]) -> list[int]:
    """The run order as a permutation of test indices: grouped by target, stable within a group."""
    return sorted(range(len(uses)), key=lambda i: rank(uses[i], targets))


def target_of_id(nodeid: str, targets: Sequence[str]) -> str | None:
    """The target in a test id's parameters (`test_x[m7i.metal-24xl-3]` -> m7i.metal-24xl), or None.

    For the xdist controller, which sees only test ids: pytest joins parameter ids with '-', and a
    target name may itself contain '-', so the longest target name that is a whole '-'-delimited
    part of the parameters wins."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[") + 1 : -1]
    found = [t for t in targets
             if params == t or params.startswith(f"{t}-") or params.endswith(f"-{t}") or f"-{t}-" in params]
    return max(found, key=len) if found else None


@dataclass
class Usage:
    """Which tests use which target, in run order: what decides each target's last test."""

    targets: list[str]                   # the targets tests use, in the order their tests first run
    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, uses: Sequence[frozenset[str]]) -> Usage:
        usage = cls(targets=[])
        for i, names in enumerate(uses):
            for name in sorted(names):
                if name not in usage.first:
                    usage.first[name] = i
                    usage.targets.append(name)
                usage.last[name] = i
                usage.count[name] = usage.count.get(name, 0) + 1
        return usage

    def done_after(self, index: int) -> list[str]:
        """Targets whose last test is the test at `index`: release them once it is torn down."""
        return [t for t in self.targets if self.last[t] == index]

    def next_after(self, name: str) -> str | None:
        """The target whose tests come after `name`'s, if any."""
        at = self.targets.index(name) if name in self.targets else -1
        return self.targets[at + 1] if 0 <= at < len(self.targets) - 1 else None


def start_next(remaining: int, mean_test_s: float | None, boot_s: float | None) -> bool:
    """Pipeline: start booting the next target now?

    Yes once the current target's remaining tests (count x mean duration so far) would take no longer
    than the next target is expected to take to boot (the mean of the boots seen so far): it is
    then ready about when the current one is done, and neither waits for the other for long.
    Without a duration yet (no test of this target finished) the answer is no; the caller asks
    again after each test, and at the latest when the current target's last test has run."""
    if remaining <= 0:
        return True
    if mean_test_s is None or boot_s is None:
        return False
    return remaining * mean_test_s <= boot_s


@dataclass
class Tracker:
    """What the run has done so far, per target: which test releases a target, and (pipeline) when to
    start the next one. Fed test by test from the reports, by the process that owns the targets."""

    schedule: str
    uses: dict[str, frozenset[str]]                 # test id -> the targets it uses
    usage: Usage
    done: dict[str, int] = field(default_factory=dict)
    test_s: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, schedule: str, uses: dict[str, frozenset[str]]) -> Tracker:
        return cls(schedule, dict(uses), Usage.of(list(uses.values())))

    def ran(self, nodeid: str, seconds: float) -> None:
        """A test's body took `seconds` (its call phase: acquisition is not test time)."""
        for name in self.uses.get(nodeid, ()):
            self.test_s.setdefault(name, []).append(seconds)

    def mean_test_s(self, name: str) -> float | None:
        own = self.test_s.get(name) or [s for v in self.test_s.values() for s in v]
        return sum(own) / len(own) if own else None

    def torn_down(self, nodeid: str, boot_s: float | None) -> tuple[list[str], str | None]:
        """A test finished: (targets to release now, the target to start booting now or None)."""
        names = self.uses.get(nodeid, frozenset())
        release = []
        for name in sorted(names):
            self.done[name] = self.done.get(name, 0) + 1
            if self.done[name] == self.usage.count.get(name):
                release.append(name)
        start = None
        if self.schedule == "pipeline" and len(names) == 1:
            (name,) = names
            after = self.usage.next_after(name)
            remaining = self.usage.count[name] - self.done[name]
            if after is not None and start_next(remaining, self.mean_test_s(name), boot_s):
                start = after
        return release, start
