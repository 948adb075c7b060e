"""Resource kinds: what the cleanup engine needs from each kind of cloud resource, and where to find them.

A kind knows its cloud's API; the engine (cleanup/engine.py) knows none. Each kind describes its
resources by run id and by ids, deletes a batch (one call per batch where the API allows), verifies
they are gone, and reports one :class:`Outcome` per resource with one status vocabulary:
``deleted``, ``already_gone`` (success: cleanup is idempotent), ``failed``.

Kinds are found by name in :data:`KINDS` ("module:Class", imported on first use, as pytest-testinfra
finds its backends): adding a kind is one class and one line here, and importing a module never
registers anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

from pytest_perfci.cleanup.model import Described, Orphan, Outcome, outcome

Progress = Callable[[str], None]

# name -> "module:Class". The name is the ledger's `resource` field and the reaper's KIND column.
KINDS: dict[str, str] = {
    "cluster": "pytest_perfci.providers.kops:ClusterKind",
    "instance": "pytest_perfci.providers.ec2.resources:InstanceKind",
    "key_pair": "pytest_perfci.providers.ec2.resources:KeyPairKind",
    "placement_group": "pytest_perfci.providers.ec2.resources:PlacementGroupKind",
    "security_group": "pytest_perfci.providers.ec2.resources:SecurityGroupKind",
    "qemu_guest": "pytest_perfci.providers.qemu:QemuGuestKind",
    "netns": "pytest_perfci.providers.netns:NetnsKind",
}


def _quiet(_: str) -> None:
    pass


@dataclass
class Context:
    """What every kind gets: the region's client, where to say what it does, how long to wait."""

    ec2: Any = None                    # EC2 client of the region; None: nothing EC2 can be listed
    progress: Progress = _quiet
    key_dir: Path | None = None        # <results>/.keys: a deleted key pair's private key file goes too
    results: Path | None = None        # the runs' results directory: local kinds (twin guests) list only its runs
    actor: str = "perfci reap"         # who deleted it, for the ledger's deleted lines
    wait: bool = True                  # verify deletions (waiters, describe) before reporting them
    waiter_delay: int = 5
    waiter_max_attempts: int = 120
    dependency_timeout: float = 300.0  # a group still used by a terminating instance: retry this long
    sleep: Callable[[float], None] = field(default=time.sleep)
    deadline: float | None = None      # time.monotonic() after which no kind is started and no wait goes on

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative); None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    @property
    def region(self) -> str | None:
        return getattr(getattr(self.ec2, "meta", None), "region_name", None)


class ResourceKind:
    """One kind of cloud resource. Subclasses set ``name`` and ``order`` and implement the four steps."""

    name: ClassVar[str]
    order: ClassVar[int]                  # lower runs first: clusters, instances, then what they use
    needs_gone: ClassVar[tuple[str, ...]] = ()  # kinds that must be fully gone before this one is tried
    local: ClassVar[bool] = False         # lives on this machine (twin guests): reaping needs no region
    expires: ClassVar[bool] = False       # a local kind that carries perfci:expires-at (`perfci reap --expired`)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def describe(self, run_id: str | None) -> list[Described]:
        """Every live resource of this kind tagged with run_id (None: with any perfci run id)."""
        raise NotImplementedError

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        """Those of ``ids`` that still exist; ids that do not are simply absent (never an error)."""
        raise NotImplementedError

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        """Delete them, batched where the API allows; one outcome each, in any order."""
        raise NotImplementedError

    def verify(self, outcomes: list[Outcome]) -> list[Outcome]:
        """After delete: those reported deleted that are still listed become failed."""
        deleted = [o.id for o in outcomes if o.status == "deleted"]
        if not deleted:
            return outcomes
        left = {d.id for d in self.describe_ids(deleted)}
        for o in outcomes:
            if o.status == "deleted" and o.id in left:
                o.status, o.detail = "failed", f"still listed after delete {o.detail}".strip()
        return outcomes

    def outcome(self, o: Orphan, status: Any, detail: str = "") -> Outcome:
        return outcome(o, status, detail)


class UnknownKind(KeyError):
    pass


def kind_class(name: str) -> type[ResourceKind]:
    """The class registered for ``name``, imported now; UnknownKind when there is none."""
    target = KINDS.get(name)
    if target is None:
        raise UnknownKind(name)
    module, _, cls = target.partition(":")
    found: type[ResourceKind] = getattr(import_module(module), cls)
    return found


def ordered(names: Sequence[str], overrides: dict[str, ResourceKind] | None = None) -> list[str]:
    """Kind names in the order the engine runs them; unknown names last (they fail, loudly)."""

    def order(name: str) -> tuple[int, str]:
        if overrides and name in overrides:
            return overrides[name].order, name
        try:
            return kind_class(name).order, name
        except UnknownKind:
            return 1_000_000, name

    return sorted(set(names), key=order)


def local_kinds(ctx: Context, *, expired: bool = False) -> dict[str, ResourceKind]:
    """Kinds that live on this machine (twin guests), as the engine's ``kinds=``: what a survey of the
    pseudo-region "local" describes when no ledger names the kinds (`perfci reap --run-id/--expired`).
    For --expired only those that carry an expiry (a network namespace has none: --run-id finds it)."""
    classes = {name: kind_class(name) for name in KINDS}
    return {name: cls(ctx) for name, cls in classes.items() if cls.local and (cls.expires or not expired)}
