"""The `qemu` provider: target twins booted on this machine, nothing in any cloud.

`--provider=qemu --qemu-machine arm64-pmu --qemu-machine x86_64` names one target per machine (twins/machines.py);
the first host asked for builds the images (cached) and boots every guest at once, each reachable as
an SSHHost on 127.0.0.1 with a host key known before boot. release_all powers them off.

Guests are ledgered (resource "qemu_guest", id = QEMU's pid, with its -name marker) so that
`perfci reap` can find one whose run was killed so hard that even PR_SET_PDEATHSIG did not fire.
The marker also carries the run id and an expires-at (boot + --perfci-ttl), so `perfci reap --run-id`
and `--expired` find guests on this machine without a ledger, as they find instances by their tags.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pytest_perfci.cleanup.kinds import ResourceKind
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.hosts.ssh import SSHHost
from pytest_perfci.providers.base import Provider, ProviderContext, Target, WorkerHandle
from pytest_perfci.settings import Settings
from pytest_perfci.tags import TAG_EXPIRES, TAG_RUN_ID, stamp
from pytest_perfci.twins.guest import (
    Guest,
    TwinError,
    forget_initrd,
    marker,
    new_keypair,
    parse_marker,
    require_qemu,
    start_guest,
    write_private,
)
from pytest_perfci.twins.image import Image, ImageBuilder
from pytest_perfci.twins.machines import MACHINES, machine

RESOURCE = "qemu_guest"
DEFAULT_MACHINES = ("arm64-pmu",)
READY_TIMEOUT = 240.0
POWEROFF_TIMEOUT = 20.0


class QemuProvider(Provider):
    name = "qemu"
    # Workers of -n N connect to the guests the controller booted; nothing is booted twice.
    shares_hosts = True

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> QemuProvider:
        return cls(settings, ledger=Ledger(Path(settings.results) / "ledger.jsonl"), progress=context.progress)

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        progress: Callable[[str], None] = print,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.run_id = settings.run_id
        self.ledger = ledger
        self.progress = progress
        self.ready_timeout = ready_timeout
        self.machines = [machine(n) for n in (settings.qemu.machine or DEFAULT_MACHINES)]
        self.workdir = Path(settings.results).resolve() / "twins" / self.run_id
        self._lock = threading.Lock()
        self._started = False
        self._guests: dict[str, Guest] = {}
        self._errors: dict[str, str] = {}
        self._hosts: dict[str, SSHHost] = {}
        self._key_path = self.workdir / "id_ed25519"

    # -- naming and validation: nothing created --------------------------------------------------------

    def targets(self) -> list[Target]:
        return [Target(name=m.name, provider=self.name) for m in self.machines]

    def validate(self) -> None:
        """Missing emulator or a port in use: one line before any image is built or guest started."""
        for m in self.machines:
            require_qemu(m)
        if self.settings.qemu.port is not None:
            from pytest_perfci.twins.guest import port_free

            for i, m in enumerate(self.machines):
                port = self.settings.qemu.port + i
                if not port_free(port):
                    raise TwinError(f"--qemu-port: 127.0.0.1:{port} (for {m.name}) is in use; "
                                    "pick another base port or leave --qemu-port out")

    # -- bringing up ------------------------------------------------------------------------------------

    def _images(self) -> dict[tuple[str, bool], Image]:
        images: dict[tuple[str, bool], Image] = {}
        for arch, perf in dict.fromkeys((m.arch, m.perf) for m in self.machines):
            images[(arch, perf)] = ImageBuilder(arch, progress=self.progress, perf=perf).build()
        return images

    def _start(self) -> None:
        """Build images, start every guest (twins.guest starts them from its launcher thread), wait for all."""
        with self._lock:
            if self._started:
                return
            self._started = True
            images = self._images()
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.workdir.chmod(0o700)
            private, public = new_keypair()
            write_private(self._key_path, private)
            self.progress(f"booting {len(self.machines)} twin(s): {', '.join(m.name for m in self.machines)}")
            for i, m in enumerate(self.machines):
                port = None if self.settings.qemu.port is None else self.settings.qemu.port + i
                token = uuid.uuid4().hex
                self.ledger.record(self.run_id, "intent", RESOURCE, token=token, data={"machine": m.name})
                # No heartbeat: a guest dies with its pytest (PR_SET_PDEATHSIG), so expires-at only bounds
                # one whose run hung or whose death signal did not fire: TTL from boot.
                expires = stamp(datetime.now(UTC) + self.settings.ttl)
                try:
                    guest = start_guest(m, images[(m.arch, m.perf)], self.workdir / m.name, label=f"{self.run_id}-{m.name}",
                                        authorized_key=public, port=port, expires_at=expires)
                except TwinError as exc:
                    self._errors[m.name] = str(exc)
                    self.ledger.record(self.run_id, "deleted", RESOURCE, token=token, data={"error": str(exc)})
                    continue
                self.ledger.record(self.run_id, "created", RESOURCE, id=str(guest.pid), token=token, data={
                    "machine": m.name, "port": guest.port, "marker": marker(guest.name, expires),
                    "console": str(guest.console)})
                self._guests[m.name] = guest
            for name, guest in self._guests.items():
                try:
                    took = guest.wait_ready(self.ready_timeout)
                except TwinError as exc:
                    self._errors[name] = str(exc)
                    self._forget(guest)
                    continue
                forget_initrd(guest)
                self.progress(f"twin {name} SSH-ready on 127.0.0.1:{guest.port} after {took:.1f} s")

    def _ssh(self, target: Target, port: int, known_hosts: str | Path, key_path: str | Path) -> SSHHost:
        return SSHHost(target.name, "127.0.0.1", user="root", port=port, key_filename=key_path,
                       known_hosts=known_hosts, host_key_policy="reject", connect_timeout=30, twin=target.name)

    def acquire(self, target: Target) -> SSHHost:
        self._start()
        if target.name in self._errors:
            raise TwinError(self._errors[target.name])
        with self._lock:
            if target.name not in self._hosts:
                guest = self._guests[target.name]
                self._hosts[target.name] = self._ssh(target, guest.port, guest.known_hosts, self._key_path)
            return self._hosts[target.name]

    def export(self, target: Target) -> WorkerHandle:
        """xdist controller: boot here, hand workers how to reach the guest."""
        try:
            self.acquire(target)
        except TwinError as exc:
            return WorkerHandle(target=target.name, unavailable=str(exc))
        guest = self._guests[target.name]
        return WorkerHandle(target=target.name, address="127.0.0.1", port=guest.port, user="root",
                            key_path=str(self._key_path), known_hosts=str(guest.known_hosts))

    def attach(self, target: Target, handle: WorkerHandle) -> SSHHost:
        return self._ssh(target, handle.port, handle.known_hosts, handle.key_path)

    # -- tearing down -------------------------------------------------------------------------------------

    def _forget(self, guest: Guest) -> None:
        guest.kill()
        self.ledger.record(self.run_id, "deleted", RESOURCE, id=str(guest.pid), data={"machine": guest.machine.name})

    def release_all(self) -> None:
        """Power every guest off over SSH (kill it if it does not go), then remove keys and images copies."""
        with self._lock:
            for name, guest in list(self._guests.items()):
                host = self._hosts.pop(name, None)
                if guest.alive():
                    with contextlib.suppress(Exception):
                        host = host or self._ssh(Target(name=name, provider=self.name), guest.port,
                                                 guest.known_hosts, self._key_path)
                        host.run("touch /tmp/perfci-poweroff", timeout=10)
                    deadline = time.monotonic() + POWEROFF_TIMEOUT
                    while guest.alive() and time.monotonic() < deadline:
                        time.sleep(0.2)
                if host is not None:
                    with contextlib.suppress(Exception):
                        host.close()
                self._forget(guest)
                del self._guests[name]
            shutil.rmtree(self.workdir / "keys", ignore_errors=True)
            with contextlib.suppress(OSError):
                self._key_path.unlink()




class QemuGuestKind(ResourceKind):
    """Twin guests as a cleanup kind: QEMU processes on this machine, found by their `-name` marker.

    Used by session teardown and `perfci reap` alike (cleanup/engine.py). Only processes whose command
    line carries `-name perfci-twin:<run id>-<machine>[@<expires-at>]` are ever listed or killed, so a
    reused pid is never mistaken for a guest. By run id or expiry (no ledger), only guests of runs
    under the reap's results directory (`Context.results`: the guest's -initrd lies in
    <results>/twins/) are listed, so one user's janitor never ends another results tree's guests.
    Nothing here is in a cloud: `local` tells `perfci reap` it needs no region or credentials, and a
    survey of a cloud region (a context with an EC2 client) lists none.
    """

    name = RESOURCE
    order = 1
    local = True
    expires = True  # the marker's @<expires-at>

    def _guests(self) -> list[Described]:
        if self.ctx.ec2 is not None:
            return []  # a cloud region's survey: this machine's processes are not in it (see cli LOCAL)
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
            except OSError:
                continue
            opts = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i] in ("-name", "-initrd")}
            parsed = parse_marker(opts.get("-name", ""))
            if parsed is None:
                continue
            label, expires = parsed
            machine_name = next((m for m in MACHINES if label.endswith(f"-{m}")), None)
            run_id = label[: -len(machine_name) - 1] if machine_name else None
            tags = {TAG_RUN_ID: run_id} if run_id else {}
            if expires:
                tags[TAG_EXPIRES] = expires
            found.append(Described(kind=self.name, id=proc.name, state="running", tags=tags,
                                   data={"marker": opts["-name"], "initrd": opts.get("-initrd", "")}))
        return found

    def _in_results(self, d: Described) -> bool:
        if self.ctx.results is None:
            return True
        twins = (Path(self.ctx.results).resolve() / "twins").as_posix() + "/"
        return d.data.get("initrd", "").startswith(twins)

    def describe(self, run_id: str | None) -> list[Described]:
        return [d for d in self._guests()
                if TAG_RUN_ID in d.tags and run_id in (None, d.tags[TAG_RUN_ID]) and self._in_results(d)]

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        wanted = set(ids)
        return [d for d in self._guests() if d.id in wanted]

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        live = {d.id for d in self._guests()}
        out = []
        for o in orphans:
            if o.id not in live:
                out.append(self.outcome(o, "already_gone"))
                continue
            self.ctx.progress(f"killing twin guest QEMU {o.id} ({o.data.get('marker', '')})")
            try:
                os.kill(int(o.id), signal.SIGKILL)
            except ProcessLookupError:
                out.append(self.outcome(o, "already_gone"))
                continue
            deadline = time.monotonic() + 10
            while o.id in {d.id for d in self._guests()} and time.monotonic() < deadline:
                time.sleep(0.1)
            out.append(self.outcome(o, "deleted"))
        return out


__all__ = ["DEFAULT_MACHINES", "MACHINES", "RESOURCE", "QemuGuestKind", "QemuProvider"]
