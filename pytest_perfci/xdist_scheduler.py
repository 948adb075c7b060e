"""xdist: one target's tests to one worker, so that every machine is busy from its first test to its last.

Why: pytest-xdist's default `--dist load` hands tests out in collection order, and perfci orders tests by
target (so each target can be released after its last one): at -n 4 with four targets, all four workers
worked on the first target while the other three stood billed and unused (and every worker set up every
target's fixtures: probe installs, SSH connections). With as many targets as workers or more, perfci
schedules by target instead: xdist's own LoadScopeScheduling with the target as the scope (the extension
point xdist documents for loadfile), so each worker takes whole targets and each target is in use from
its first test to its release. With fewer targets than workers, `load` stays (a scope per target would
leave workers idle); any `--dist` the user chose other than `load` is left alone.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

from pytest_perfci.schedule import target_of_id


class TargetScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no stubs for it
    """LoadScopeScheduling whose scope is the target a test id names (a test naming none is its own)."""

    def __init__(self, config: Any, log: Any, names: list[str]) -> None:
        super().__init__(config, log)
        self.names = names

    def _split_scope(self, nodeid: str) -> str:
        return target_of_id(nodeid, self.names) or nodeid


def by_target(dist: str, workers: int, names: list[str], releases_early: bool) -> bool:
    """Whether to schedule by target: only in place of xdist's default, only where a target goes after its
    last test, and only when every worker can have a target of its own."""
    return dist == "load" and releases_early and workers > 1 and len(names) >= workers
