"""This machine, inside one network namespace: a client or server of a local topology.

Every command runs under `ip netns exec NAME`, so a server binds and a client connects only on the
namespace's own interfaces (the veth pair a run created); nothing reaches the machine's real network.
Facts are the machine's own: a namespace isolates the network, not the CPU or the kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.hosts.result import CommandFailed, Result, as_shell


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
        # Through sh even for an argv: a missing program is exit 127 as from a shell (`ip netns exec`
        # itself says 1), and the Result names the command as given, as every Host's does.
        inner = ["sh", "-c", cmd] if isinstance(cmd, str) else ["sh", "-c", 'exec "$@"', "sh", *cmd]
        result = super().run(["ip", "netns", "exec", self.netns, *inner], timeout=timeout, check=False, env=env)
        result = dataclasses.replace(result, command=as_shell(cmd))
        if check and result.failed:
            raise CommandFailed(result)
        return result

    def __repr__(self) -> str:
        return f"NamespaceHost({self.name!r}, netns={self.netns!r})"
