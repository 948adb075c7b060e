"""This machine, inside one network namespace: a client or server of a local topology.

Every command runs under `ip netns exec NAME`, so a server binds and a client connects only on the
namespace's own interfaces (the veth pair a run created); nothing reaches the machine's real network.
Facts are the machine's own: a namespace isolates the network, not the CPU or the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.hosts.result import Result


class NamespaceHost(LocalHost):
    """A LocalHost whose commands run in network namespace `netns` (needs root, as `ip netns exec` does)."""

    def __init__(self, name: str, netns: str, **known: str | None) -> None:
        super().__init__(name, **known)
        self.netns = netns

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        inner = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return super().run(["ip", "netns", "exec", self.netns, *inner], timeout=timeout, check=check, env=env)

    def __repr__(self) -> str:
        return f"NamespaceHost({self.name!r}, netns={self.netns!r})"
