"""The run's provider, its hosts and their capabilities, shared by every fixture of the session.

One object owns acquisition and release so that teardown has a single place to happen, whatever
fixture first asked for a host, and is idempotent when the unconfigure backstop runs it again.

Under xdist the controller is the only process that creates or destroys anything: providers that
that share hosts (`Provider.shares_hosts`) are brought up by the controller, which hands workers a
typed `WorkerHandle` to `attach` to; workers only connect and disconnect. So -n 8 costs what -n 1 costs, and one process
(the one that outlives a crashed worker) tears down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pytest_perfci.capabilities import detect
from pytest_perfci.cleanup.signals import shielded
from pytest_perfci.hosts.base import Host
from pytest_perfci.keep import freeze, provider_region, reap_command
from pytest_perfci.models.preparation import Preparation
from pytest_perfci.providers.base import Pair, Provider, Target, TargetUnavailable, WorkerHandle
from pytest_perfci.settings import Settings


class TeardownIncomplete(RuntimeError):
    """Release failed for good; the message says what is left and how to finish the job."""


class ProviderSession:
    def __init__(self, settings: Settings, provider: Provider, handles: dict[str, WorkerHandle] | None = None):
        self.settings = settings
        self.provider = provider
        # Set in xdist workers: target name -> handle exported by the controller.
        self.handles = handles
        self._hosts: dict[str, Host] = {}
        self._pairs: dict[str, Pair] = {}
        self._capabilities: dict[tuple[str, str], tuple[bool, str]] = {}
        self._lock = threading.Lock()
        self._exported: dict[str, WorkerHandle] | None = None
        self.closed = False
        # Host preparation (set by the plugin): what collected tests need, how to prepare a host once
        # before its first test, and how to reset it after its last; what each preparation did.
        self.needs: tuple[str, ...] = ()
        self.on_prepare: Callable[[Host], Preparation] | None = None
        self.on_last: Callable[[Host], None] | None = None
        self.preparations: dict[str, Preparation] = {}

    @property
    def is_worker(self) -> bool:
        return self.handles is not None

    @property
    def shares_hosts(self) -> bool:
        """Whether the controller brings targets up for workers (only providers that create things)."""
        return self.provider.shares_hosts

    @property
    def targets(self) -> list[Target]:
        if not hasattr(self, "_targets"):
            self._targets = self.provider.targets()
        return self._targets

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(f"no target named {name!r}; targets: {', '.join(t.name for t in self.targets)}")

    def host(self, name: str) -> Host:
        with self._lock:
            if name not in self._hosts:
                target = self.target(name)
                handle = (self.handles or {}).get(name)
                if handle is not None and handle.unavailable is not None:
                    raise TargetUnavailable(handle.unavailable)
                if handle is not None:
                    host = self.provider.attach(target, handle)
                else:
                    host = self.provider.acquire(target)
                self._hosts[name] = host
                if self.on_prepare is not None:
                    self.preparations[name] = self.on_prepare(host)
            return self._hosts[name]

    def pair(self, name: str) -> Pair:
        """The target's client/server pair (Provider.pair, the `topology` fixture), made once after the
        target's own host; its client and server are prepared like any host (by their host names)."""
        self.host(name)
        with self._lock:
            if name not in self._pairs:
                pair = self.provider.pair(self.target(name))
                self._pairs[name] = pair
                if self.on_prepare is not None:
                    for h in (pair.client, pair.server):
                        if h.name not in self.preparations and h is not self._hosts.get(name):
                            self.preparations[h.name] = self.on_prepare(h)
            return self._pairs[name]

    def preparation(self, name: str) -> Preparation:
        """What preparing this target's host did (empty before, or when nothing was needed)."""
        return self.preparations.get(name) or Preparation(host=name)

    def reset_all(self) -> None:
        """After the last test: each prepared host's reset, once; a failing reset never stops teardown."""
        on_last, self.on_last = self.on_last, None
        if on_last is None:
            return
        for host in list(self._hosts.values()):
            on_last(host)

    def export_all(self) -> dict[str, WorkerHandle]:
        """Controller side: bring every target up once and describe how workers reach each."""
        with self._lock:
            if self._exported is None:
                exported: dict[str, WorkerHandle] = {}
                for target in self.targets:
                    try:
                        exported[target.name] = self.provider.export(target)
                    except TargetUnavailable as exc:
                        exported[target.name] = WorkerHandle(target=target.name, unavailable=str(exc))
                self._exported = exported
            return self._exported

    def zone(self, name: str) -> str | None:
        """The availability zone of a target: from the controller's handle on a worker, else the provider."""
        handle = (self.handles or {}).get(name)
        if handle is not None:
            return handle.zone
        try:
            return self.provider.zone(self.target(name))
        except KeyError:
            return None

    def capability(self, name: str, capability: str) -> tuple[bool, str]:
        key = (name, capability)
        if key not in self._capabilities:
            self._capabilities[key] = detect(self.host(name), capability)
        return self._capabilities[key]

    def close(self) -> None:
        """Release everything; a worker only disconnects, a kept run leaves resources up."""
        if self.closed:
            return
        self.closed = True
        try:
            self.reset_all()
        except Exception as exc:  # noqa: BLE001 - a users' reset hook must not keep machines alive
            import sys

            sys.stderr.write(f"perfci: pytest_perfci_reset_host failed: {exc}\n")
        if self.is_worker and self.shares_hosts:
            for host in [*self._hosts.values(), *(p.server for p in self._pairs.values())]:
                host.close()
        elif self.settings.keep:
            freeze(self.provider)  # nothing torn down; the heartbeat stops, so the self-destruct still fires
        else:
            reap = reap_command(self.settings, provider_region(self.provider)) \
                if self.provider.creates_resources else None
            try:
                with shielded(self.settings.run_id, reap=reap):
                    self.provider.release_all()
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                hint = f"; finish it with: {reap}" if reap else ""
                raise TeardownIncomplete(
                    f"perfci: teardown of run {self.settings.run_id} incomplete: {first}{hint}"
                ) from exc
