"""A client/server pair on this machine: two network namespaces joined by a veth pair.

The local provider's `topology`: the run creates `perfci_<run id>_<pid>_client` and `..._server`,
then one veth pair with an end in each (created straight inside them, so no end ever sits in the
machine's own namespace), addresses from one private /30 that exists only inside the two namespaces,
and loopback up. Traffic between them never touches a real interface.

Namespaces are ledgered (resource ``netns``, id = the namespace name) before they exist, and the one
cleanup engine deletes them (session teardown and `perfci reap` alike, as :class:`NetnsKind`).
Deleting a namespace destroys the veth end inside it, and with it the peer: nothing else to clean.
Creating needs root (CAP_NET_ADMIN), as `ip netns` does; without it the pair is unavailable and the
tests that need it skip with that reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_perfci.cleanup.kinds import ResourceKind
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.hosts.netns import NamespaceHost
from pytest_perfci.providers.base import Pair, TargetUnavailable
from pytest_perfci.tags import TAG_RUN_ID

RESOURCE = "netns"
PREFIX = "perfci_"
ROLES = ("client", "server")
# One /30 inside the two namespaces only: the machine's own routes never see it, so any private block
# works; this one is unlikely to confuse anyone reading `ip -n ... addr`.
SUBNET = ipaddress.ip_network("10.231.0.0/30")


def namespace_name(run_id: str, pid: int, role: str) -> str:
    """`perfci_<run id>_<pid>_<role>`: run ids use no '_', so the name splits back unambiguously; the
    pid keeps xdist workers of one run (same run id, each its own pair) apart."""
    return f"{PREFIX}{run_id}_{pid}_{role}"


def parse_name(name: str) -> tuple[str, str] | None:
    """(run id, role) of a namespace this code names, else None (never ours)."""
    if not name.startswith(PREFIX):
        return None
    rest, _, role = name[len(PREFIX):].rpartition("_")
    run_id, _, pid = rest.rpartition("_")
    return (run_id, role) if run_id and pid.isdigit() and role in ROLES else None


def veth_names(run_id: str, pid: int) -> tuple[str, str]:
    """Interface names fit IFNAMSIZ (15 characters): a hash of run id and pid, one letter per end."""
    digest = hashlib.sha256(f"{run_id}_{pid}".encode()).hexdigest()[:8]
    return f"pv{digest}c", f"pv{digest}s"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def list_namespaces() -> list[str]:
    """Names of this machine's named network namespaces (`ip netns list`; no iproute2: none)."""
    try:
        proc = _ip("-o", "netns", "list", check=False)
    except FileNotFoundError:
        return []
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


class NetnsError(RuntimeError):
    """A namespace pair could not be made; str() is one line."""


@dataclass
class NamespacePair:
    """The pair of one run on this machine: create once, hand out hosts, ledgered for the engine."""

    run_id: str
    ledger: Ledger
    target: str = "local"
    progress: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.pid = os.getpid()
        self.client_ns, self.server_ns = (namespace_name(self.run_id, self.pid, r) for r in ROLES)
        hosts = list(SUBNET.hosts())
        self.client_address, self.server_address = str(hosts[0]), str(hosts[1])
        self._pair: Pair | None = None
        self._error: BaseException | None = None

    def create(self) -> Pair:
        """The pair, made on the first call; a failure is remembered (what was made is ledgered and
        goes at teardown), so later tests get the same error instead of a half-made pair."""
        if self._pair is not None:
            return self._pair
        if self._error is not None:
            raise self._error
        try:
            self._pair = self._create()
        except BaseException as exc:
            self._error = exc
            raise
        return self._pair

    def _create(self) -> Pair:
        if os.geteuid() != 0:
            raise TargetUnavailable("a local client/server pair needs root (ip netns add); run as root")
        if any(ns in list_namespaces() for ns in (self.client_ns, self.server_ns)):
            raise NetnsError(f"network namespace {self.client_ns} or {self.server_ns} already exists: run id "
                             f"{self.run_id} is in use (or left over: perfci reap --run-id {self.run_id} --yes)")
        for ns in (self.client_ns, self.server_ns):
            token = ns  # an intent without its created line is found by the name (Described.data token)
            self.ledger.record(self.run_id, "intent", RESOURCE, token=token, data={"name": ns})
            proc = _ip("netns", "add", ns, check=False)
            if proc.returncode != 0:
                self.ledger.record(self.run_id, "deleted", RESOURCE, token=token,
                                   data={"never_created": proc.stderr.strip()[:200]})
                raise NetnsError(f"ip netns add {ns}: {proc.stderr.strip()}")
            self.ledger.record(self.run_id, "created", RESOURCE, id=ns, token=token, data={"name": ns})
        vc, vs = veth_names(self.run_id, self.pid)
        prefix = SUBNET.prefixlen
        _ip("link", "add", vc, "netns", self.client_ns, "type", "veth", "peer", "name", vs, "netns", self.server_ns)
        for ns, dev, addr in ((self.client_ns, vc, self.client_address), (self.server_ns, vs, self.server_address)):
            _ip("-n", ns, "addr", "add", f"{addr}/{prefix}", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        link = (f"veth {vc}/{vs} between network namespaces {self.client_ns} ({self.client_address}) and "
                f"{self.server_ns} ({self.server_address}/{prefix})")
        self.progress(f"{self.target}: client/server pair: {link}")
        return Pair(
            target=self.target,
            client=NamespaceHost(f"{self.target}-client", self.client_ns),
            server=NamespaceHost(f"{self.target}-server", self.server_ns),
            client_address=self.client_address, server_address=self.server_address, link=link,
        )


class NetnsKind(ResourceKind):
    """Network namespaces a run created, as a cleanup kind (session teardown and `perfci reap`).

    Only names this module makes (`perfci_<run id>_<pid>_client|server`) are ever listed or deleted, so a
    namespace anybody else made is never touched. It lives on this machine (`local`): reaping needs
    no region, and a survey of a cloud region (a context with an EC2 client) lists none.
    """

    name = RESOURCE
    order = 2
    local = True

    def _listed(self) -> list[Described]:
        if self.ctx.ec2 is not None:
            return []
        out = []
        for ns in list_namespaces():
            parsed = parse_name(ns)
            if parsed is not None:
                out.append(Described(kind=self.name, id=ns, state="exists", tags={TAG_RUN_ID: parsed[0]},
                                     data={"token": ns, "role": parsed[1]}))
        return out

    def describe(self, run_id: str | None) -> list[Described]:
        return [d for d in self._listed() if run_id in (None, d.tags[TAG_RUN_ID])]

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        wanted = set(ids)
        return [d for d in self._listed() if d.id in wanted]

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        live = {d.id for d in self._listed()}
        out = []
        for o in orphans:
            if parse_name(o.id) is None:
                out.append(self.outcome(o, "failed", f"{o.id!r} is not a name perfci gives a namespace"))
                continue
            if o.id not in live:
                out.append(self.outcome(o, "already_gone", "not listed"))
                continue
            proc = _ip("netns", "delete", o.id, check=False)
            if proc.returncode != 0 and o.id in list_namespaces():
                out.append(self.outcome(o, "failed", proc.stderr.strip()))
                continue
            self.ctx.progress(f"deleted network namespace {o.id} (and the veth end inside it)")
            out.append(self.outcome(o, "deleted"))
        return out


__all__ = ["RESOURCE", "NamespacePair", "NetnsError", "NetnsKind", "namespace_name", "parse_name", "veth_names"]
