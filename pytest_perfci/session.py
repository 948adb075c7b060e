"""The run's provider, its hosts and their capabilities, shared by every fixture of the session.

One object owns acquisition and release so that teardown has a single place to happen, whatever
fixture first asked for a host, and is idempotent when the unconfigure backstop runs it again.
"""

from __future__ import annotations

import threading
from functools import cached_property

from pytest_perfci.capabilities import detect
from pytest_perfci.hosts.base import Host
from pytest_perfci.providers import Provider, Target
from pytest_perfci.settings import Settings


class ProviderSession:
    def __init__(self, settings: Settings, provider: Provider) -> None:
        self.settings = settings
        self.provider = provider
        self._hosts: dict[str, Host] = {}
        self._capabilities: dict[tuple[str, str], tuple[bool, str]] = {}
        self._lock = threading.Lock()
        self.closed = False

    @cached_property
    def targets(self) -> list[Target]:
        return self.provider.targets()

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(f"no target named {name!r}; targets: {', '.join(t.name for t in self.targets)}")

    def host(self, name: str) -> Host:
        with self._lock:
            if name not in self._hosts:
                self._hosts[name] = self.provider.acquire(self.target(name))
            return self._hosts[name]

    def capability(self, name: str, capability: str) -> tuple[bool, str]:
        key = (name, capability)
        if key not in self._capabilities:
            self._capabilities[key] = detect(self.host(name), capability)
        return self._capabilities[key]

    def close(self) -> None:
        """Release everything; a kept run leaves resources up (the provider prints how to reach them)."""
        if self.closed:
            return
        self.closed = True
        if not self.settings.keep:
            self.provider.release_all()
