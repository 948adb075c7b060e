"""The embedded default: this very machine, no cloud account, nothing to create or destroy."""

from __future__ import annotations

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.providers.base import Provider, Target


class LocalProvider(Provider):
    name = "local"

    def __init__(self) -> None:
        self._host: LocalHost | None = None

    def targets(self) -> list[Target]:
        return [Target(name="local", provider=self.name)]

    def acquire(self, target: Target) -> Host:
        if self._host is None:
            self._host = LocalHost(target.name)
        return self._host

    def release_all(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
