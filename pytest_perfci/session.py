"""The run's provider, its hosts and their capabilities, shared by every fixture of the session.

One object owns acquisition and release so that teardown has a single place to happen, whatever
fixture first asked for a host, and is idempotent when the unconfigure backstop runs it again.

Under xdist the controller is the only process that creates or destroys anything: providers that
that share hosts (`Provider.shares_hosts`) are brought up by the controller, which hands workers a
typed `WorkerHandle` to `attach` to; workers only connect and disconnect. So -n 8 costs what -n 1 costs, and one process
(the one that outlives a crashed worker) tears down.

Each target is released right after its last test (`release`, called by the plugin, which knows the
run order), on a background thread so tests go on meanwhile; `close` waits for those and then runs
`release_all` for whatever is left, under the same signal shield as before. `--perfci-schedule` decides
when targets come up (pytest_perfci/schedule.py): `prefetch` boots the next one in the background
(pipeline), and under serial a target is acquired only once every other one was released.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_perfci.capabilities import detect
from pytest_perfci.cleanup.signals import name_reap, shielded
from pytest_perfci.handoff import ControllerError, HandoffClient, HandoffServer
from pytest_perfci.hosts.base import Host
from pytest_perfci.keep import freeze, provider_region, reap_command
from pytest_perfci.models.preparation import Preparation
from pytest_perfci.providers.base import Pair, Provider, Target, TargetUnavailable, WorkerHandle
from pytest_perfci.settings import Settings


class TeardownIncomplete(RuntimeError):
    """Release failed for good; the message says what is left and how to finish the job."""


@dataclass
class TargetLife:
    """When one target was asked for, first handed out and released (wall clock, time.time()), for the
    summary. `acquired` is when the session first got the ready host (under parallel a later target may
    have been ready well before its first test asked for it)."""

    name: str
    requested: float | None = None
    acquired: float | None = None
    released: float | None = None
    last_test: str | None = None  # the test after which it was released early (None: at the end)
    error: str | None = None      # why an early release failed (release_all at the end retries)

    @property
    def instance_seconds(self) -> float | None:
        """Seconds from asking for the target to its release: what a cloud bills, about."""
        if self.requested is None or self.released is None:
            return None
        return max(0.0, self.released - self.requested)


HOST_FIXTURE = "host fixture"  # the holder name of the `host` fixture (see ProviderSession.hold)


class ProviderSession:
    def __init__(self, settings: Settings, provider: Provider, handles: dict[str, WorkerHandle] | None = None):
        self.settings = settings
        self.provider = provider
        # Set in xdist workers: target name -> handle exported by the controller.
        self.handles = handles
        self._hosts: dict[str, Host] = {}
        self._pairs: dict[str, Pair] = {}
        self._capabilities: dict[tuple[str, str], tuple[bool, str]] = {}
        self._lock = threading.RLock()
        self._exported: dict[str, WorkerHandle] | None = None
        self.closed = False
        self.lives: dict[str, TargetLife] = {}
        self._target_locks: dict[str, threading.Lock] = {}
        self._released: set[str] = set()
        self._background: ThreadPoolExecutor | None = None
        self._releases: dict[str, Future[None]] = {}
        self._prefetches: dict[str, Future[None]] = {}
        # Who still holds a target (its `host` fixture here; an xdist worker, at the controller), and the
        # releases that wait for them: a machine goes only after the fixtures built on it were torn down.
        self._holders: dict[str, set[str]] = {}
        self._pending: dict[str, str | None] = {}
        # xdist: the controller's watcher of workers' asks; a worker's way of asking (handoff.py)
        self.handoff_server: HandoffServer | None = None
        self.handoff: HandoffClient | None = None
        # Host preparation (set by the plugin): what collected tests need, how to prepare a host once
        # before its first test, and how to reset it after its last; what each preparation did.
        self.needs: tuple[str, ...] = ()
        self.pairs_used = False  # collected tests use the `topology` fixture
        self.on_prepare: Callable[[Host], Preparation] | None = None
        self.on_last: Callable[[Host], None] | None = None
        self.preparations: dict[str, Preparation] = {}

    @cached_property
    def _reap(self) -> str | None:
        """The run's whole reap command (region, endpoint, results) where this process creates resources."""
        if not self.provider.creates_resources or self.is_worker or self.settings.keep:
            return None
        return reap_command(self.settings, provider_region(self.provider))

    def name_reap(self) -> None:
        """From now on every shield line of this run names its whole reap command, whichever phase of the
        run's end a signal lands in (the late shield after the last test, an early release, the teardown)."""
        if self._reap is not None:
            name_reap(self.settings.run_id, self._reap)

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

    @property
    def schedule(self) -> str:
        return self.settings.schedule

    @property
    def releases_early(self) -> bool:
        """Whether targets are released after their last test: the process that owns them, a run that is
        not kept, and a provider that can release one target (others release everything at the end)."""
        return (not self.is_worker and not self.settings.keep
                and type(self.provider).release is not Provider.release)

    def life(self, name: str) -> TargetLife:
        with self._lock:
            return self.lives.setdefault(name, TargetLife(name))

    def _target_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._target_locks.setdefault(name, threading.Lock())

    def host(self, name: str) -> Host:
        """The target's ready (and prepared) host, acquired on first use; one acquisition per target even
        when a prefetch thread and a test ask at once, without holding up other targets' callers."""
        host = self._hosts.get(name)
        if host is not None:
            return host
        with self._target_lock(name):
            if name in self._hosts:
                return self._hosts[name]
            if name in self._released:
                raise TargetUnavailable(f"{name} was already released after what was its last test "
                                        "(a plugin ran its tests out of order)")
            target = self.target(name)
            handle = self._worker_handle(name)
            if handle is not None and handle.unavailable is not None:
                raise TargetUnavailable(handle.unavailable)
            if handle is not None:
                host = self.provider.attach(target, handle)
            else:
                if self.schedule == "serial" and not self.is_worker:
                    self._one_at_a_time(name)
                now = time.time()
                # parallel asks for every target at the first acquire (EC2 launches them all then)
                for other in [t.name for t in self.targets] if self.schedule == "parallel" else [name]:
                    life = self.life(other)
                    life.requested = life.requested or now
                life = self.life(name)
                host = self.provider.acquire(target)
                life.acquired = life.acquired or time.time()
            try:
                if self.on_prepare is not None:
                    self.preparations[name] = self.on_prepare(host)
            finally:
                self._hosts[name] = host
            return host

    def _one_at_a_time(self, name: str) -> None:
        """Serial: before `name` comes up, every other target is released and its release finished."""
        for other in [n for n in list(self._hosts) if n != name and n not in self._released]:
            self.release(other, wait=True)  # serial's promise outranks a holder that is still around
        for future in list(self._releases.values()):
            with contextlib.suppress(Exception):
                future.result()

    def prefetch(self, name: str) -> None:
        """Pipeline: bring `name` up on a background thread, so it is ready when its first test starts.
        A failure is not reported here: the test that needs the target acquires it and sees the error."""
        if self.is_worker or name in self._hosts or name in self._released:
            return
        with self._lock:
            if name in self._prefetches:
                return
            self._prefetches[name] = self._executor().submit(self._prefetch, name)

    def _prefetch(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.host(name)

    def _executor(self) -> ThreadPoolExecutor:
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="perfci-session")
        return self._background

    def hold(self, name: str, holder: str) -> None:
        """`holder` still uses `name` (fixtures built on it are alive): a release waits for its unhold."""
        with self._lock:
            self._holders.setdefault(name, set()).add(holder)

    def unhold(self, name: str, holder: str) -> None:
        """`holder` is done with `name`; a release that was waiting only for it happens now."""
        with self._lock:
            holders = self._holders.get(name, set())
            holders.discard(holder)
            if holders or name not in self._pending:
                return
            after = self._pending.pop(name)
        self.release(name, after=after)

    def held_by(self, holder: str) -> list[str]:
        with self._lock:
            return [name for name, holders in self._holders.items() if holder in holders]

    def release(self, name: str, *, after: str | None = None, wait: bool = False) -> None:
        """Release one target (its last test ran): once nothing holds it (see `hold`), its reset hook
        here, then the provider's release on a background thread. A pytest session-scoped fixture on a
        parametrized target is torn down only when the next target's first test sets up, so releasing at
        the last test's teardown would pull the machine from under its fixtures' finalizers (a probe's
        `rm`, a user's log collection). Only where `releases_early`; once per target; close() waits."""
        if not self.releases_early or self.closed:
            return
        with self._lock:
            if name in self._released:
                return
            if self._holders.get(name) and not wait:
                self._pending[name] = after
                return
            self._pending.pop(name, None)
            self._released.add(name)
            prefetch = self._prefetches.get(name)
        life = self.life(name)
        life.last_test = after
        host = self._hosts.get(name)
        if host is not None and self.on_last is not None:
            try:
                self.on_last(host)
            except Exception as exc:  # noqa: BLE001 - a user's reset hook must not keep a machine alive
                sys.stderr.write(f"perfci: pytest_perfci_reset_host failed on {name}: {exc}\n")
        future = self._executor().submit(self._release_now, name, prefetch)
        with self._lock:
            self._releases[name] = future
        if wait:
            future.result()

    def _release_now(self, name: str, prefetch: Future[None] | None) -> None:
        if prefetch is not None:
            with contextlib.suppress(Exception):
                prefetch.result()
        life = self.life(name)
        try:
            self.provider.release(self.target(name))
        except Exception as exc:  # noqa: BLE001 - release_all at the end tries again, by the ledger
            life.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return
        life.released = time.time()
        host = self._hosts.get(name)
        if host is not None:
            with contextlib.suppress(Exception):
                host.close()

    def wait_releases(self) -> None:
        """Until every early release and prefetch started so far has finished (close, and tests)."""
        for future in [*self._prefetches.values(), *self._releases.values()]:
            with contextlib.suppress(Exception):
                future.result()

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
        for name, host in list(self._hosts.items()):
            if name not in self._released:  # reset already, before its early release
                on_last(host)

    def export_all(self) -> dict[str, WorkerHandle]:
        """Controller side: bring every target up once and describe how workers reach each."""
        with self._lock:
            if self._exported is None:
                now = time.time()
                for target in self.targets:
                    self.life(target.name).requested = self.life(target.name).requested or now
                self._exported = {target.name: self.export_one(target.name) for target in self.targets}
            return self._exported

    def export_one(self, name: str) -> WorkerHandle:
        """Controller side: bring one target up and describe how a worker reaches it (or why it cannot)."""
        life = self.life(name)
        life.requested = life.requested or time.time()
        try:
            handle = self.provider.export(self.target(name))
        except TargetUnavailable as exc:
            return WorkerHandle(target=name, unavailable=str(exc))
        life.acquired = life.acquired or time.time()
        return handle

    def asks_with(self, name: str) -> list[str]:
        """The targets one ask for `name` brings up: all of them under parallel (as the first acquire does
        without xdist), else just `name`."""
        if self.schedule != "parallel":
            return [name]
        now = time.time()
        names = [t.name for t in self.targets]
        for other in names:
            life = self.life(other)
            life.requested = life.requested or now
        return [name, *(n for n in names if n != name)]

    def serve_handoff(self, directory: Path) -> Path:
        """Controller side: hand targets to xdist workers as they ask (handoff.py), from now on."""
        with self._lock:
            if self.handoff_server is None:
                self.handoff_server = HandoffServer(directory, self.export_one, self.asks_with, self._workers_collected)
            return self.handoff_server.directory

    def _workers_collected(self, ask: dict[str, Any]) -> None:
        """Controller side: what the first asking worker collected, declared before anything boots (the
        controller collects nothing itself): the needs go into EC2 user data, pairs into placement groups."""
        needs = tuple(str(n) for n in ask.get("needs") or ())
        if needs:
            self.needs = needs
            self.provider.declare_needs(needs)
        if ask.get("pairs"):
            self.provider.declare_pairs()

    def _worker_handle(self, name: str) -> WorkerHandle | None:
        """Worker side: the controller's handle for `name`, asked for now if it was not handed over yet."""
        if self.handles is None:
            return None
        handle = self.handles.get(name)
        if handle is None and self.handoff is not None:
            handle = self.handles[name] = self.handoff.handle(
                name, ask={"needs": list(self.needs), "pairs": self.pairs_used})
        if handle is not None and handle.error is not None:
            raise ControllerError(f"the xdist controller could not bring {name} up: {handle.error}")
        return handle

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
        reap = self._reap
        try:
            with shielded(self.settings.run_id, reap=reap):  # releases in flight finish before release_all
                if self.handoff_server is not None:
                    self.handoff_server.close()  # no new bring-ups; release_all stops those in flight
                self.wait_releases()
        finally:
            if self._background is not None:
                self._background.shutdown(wait=False)
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
            try:
                with shielded(self.settings.run_id, reap=reap):
                    self.provider.release_all()
                now = time.time()
                for life in self.lives.values():
                    if life.released is None and life.requested is not None:
                        life.released = now
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                hint = f"; finish it with: {reap}" if reap else ""
                raise TeardownIncomplete(
                    f"perfci: teardown of run {self.settings.run_id} incomplete: {first}{hint}"
                ) from exc
