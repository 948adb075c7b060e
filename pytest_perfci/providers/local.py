"""The embedded default: this very machine, no cloud account.

A plain run creates nothing. Tests that use the `topology` fixture get a client and a server on this
machine: two network namespaces joined by a veth pair (providers/netns.py), created on first use,
ledgered, and deleted by the cleanup engine at teardown like any resource a run creates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.providers.base import Pair, Provider, ProviderContext, Target
from pytest_perfci.providers.netns import NamespacePair

if TYPE_CHECKING:
    from pytest_perfci.settings import Settings


class LocalProvider(Provider):
    name = "local"

    def __init__(self, *, run_id: str = "local", ledger: Ledger | None = None,
                 progress: Callable[[str], None] = print) -> None:
        self._host: LocalHost | None = None
        self.run_id = run_id
        self.ledger = ledger
        self.progress = progress
        self._pair: NamespacePair | None = None

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> LocalProvider:
        return cls(run_id=settings.run_id, ledger=Ledger(Path(settings.results) / "ledger.jsonl"),
                   progress=context.progress)

    def targets(self) -> list[Target]:
        return [Target(name="local", provider=self.name)]

    def acquire(self, target: Target) -> Host:
        if self._host is None:
            self._host = LocalHost(target.name)
        return self._host

    def pair(self, target: Target) -> Pair:
        """Two network namespaces joined by a veth pair, made on first use (root only)."""
        if self._pair is None:
            if self.ledger is None:
                raise RuntimeError("LocalProvider.pair needs a ledger (build it with from_settings)")
            self._pair = NamespacePair(self.run_id, self.ledger, target=target.name, progress=self.progress)
        return self._pair.create()

    def release_all(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
        self._pair = None
        if self.ledger is not None and self.ledger.outstanding(self.run_id, pid=os.getpid()):
            engine.teardown(Context(progress=self.progress), self.ledger, self.run_id, pid=os.getpid())
