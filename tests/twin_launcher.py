"""EC2's side of a target twin, for tests: boots the guest that stands in for a moto instance and keeps
the two in step. Test harness only; the product never runs it.

    python -m tests.twin_launcher SPOOL      (AWS_* variables of the moto server in the environment)

Why a process of its own: an instance outlives the pytest that launched it. The test starts this
launcher in its own session, outside the pytest under test, and the pytest asks it for guests
(tests/ec2_twin_harness.py), so a SIGKILLed pytest leaves its guests running, as it leaves its
instances. The launcher does what EC2 and cloud-init would:

* it hands the guest the instance's user data as moto holds it (DescribeInstanceAttribute userData,
  what IMDS serves), which the guest runs once at boot (twins/image.py's /init);
* a guest that powers itself off (QEMU exits 0: the self-destruct's `shutdown -h now`) becomes
  TerminateInstances (StopInstances) at moto, per the instance's InstanceInitiatedShutdownBehavior;
* an instance that moto lists as shutting-down, terminated, stopping or stopped loses its guest.

Files in SPOOL (each written whole, by rename):
  <iid>.request  {"instance_id", "authorized_key", "machine"}      from the harness
  <iid>.ready    {"port", "pid", "console"} once SSH-ready         or <iid>.error: one line
  <iid>.exit     {"returncode", "exited_at" (epoch s), "action"}   when QEMU is gone
  stop           asks the launcher to kill what is left and exit (so does SIGTERM)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

POLL = 0.2
MORTAL = {"shutting-down", "terminated", "stopping", "stopped"}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.rename(path)


class Launcher:
    def __init__(self, spool: Path) -> None:
        import boto3

        self.spool = spool
        self.ec2: Any = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        self.guests: dict[str, Any] = {}    # instance id -> twins.guest.Guest
        self.behaviour: dict[str, str] = {}  # instance id -> InstanceInitiatedShutdownBehavior
        self.taken: set[str] = set()
        self.killed: set[str] = set()        # guests the launcher ended (their exit is no power-off)
        self.lock = threading.Lock()
        self.image_lock = threading.Lock()
        self.images: dict[tuple[str, bool], Any] = {}
        self.stopping = threading.Event()

    def log(self, line: str) -> None:
        print(f"twin-launcher: {line}", flush=True)

    # -- a request: fetch user data, boot, report -----------------------------------------------------

    def boot(self, request: Path) -> None:
        from pytest_perfci.twins.guest import forget_initrd, start_guest
        from pytest_perfci.twins.image import ImageBuilder
        from pytest_perfci.twins.machines import machine

        req = json.loads(request.read_text())
        iid = req["instance_id"]
        try:
            m = machine(req["machine"])
            attr = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
            encoded = attr.get("UserData", {}).get("Value")
            user_data = base64.b64decode(encoded) if encoded else None
            self.behaviour[iid] = self.ec2.describe_instance_attribute(
                InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior",
            )["InstanceInitiatedShutdownBehavior"]["Value"]
            with self.image_lock:
                if (m.arch, m.perf) not in self.images:
                    self.images[(m.arch, m.perf)] = ImageBuilder(m.arch, progress=self.log, perf=m.perf).build()
                image = self.images[(m.arch, m.perf)]
            guest = start_guest(m, image, self.spool / iid, label=iid, authorized_key=req["authorized_key"],
                                user_data=user_data)
            with self.lock:
                self.guests[iid] = guest
            self.log(f"{iid}: QEMU {guest.pid} booting {m.name} with {len(user_data or b'')} bytes of user data")
            took = guest.wait_ready(300)
            forget_initrd(guest)
        except Exception as exc:  # noqa: BLE001 - reported to the harness, which fails the run
            (self.spool / f"{iid}.error").write_text(f"{type(exc).__name__}: {exc}".splitlines()[0])
            self.log(f"{iid}: {exc}")
            return
        self.log(f"{iid}: SSH-ready on 127.0.0.1:{guest.port} after {took:.1f} s")
        write_json(self.spool / f"{iid}.ready", {"port": guest.port, "pid": guest.pid,
                                                   "console": str(guest.console)})

    # -- keeping guest and instance in step -------------------------------------------------------------

    def states(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with contextlib.suppress(Exception):  # moto gone (the test is ending): nothing to mirror
            for r in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]:
                for i in r["Instances"]:
                    found[i["InstanceId"]] = i["State"]["Name"]
        return found

    def watch(self) -> None:
        with self.lock:
            guests = dict(self.guests)
        if not guests:
            return
        for iid, guest in guests.items():
            if guest.alive():
                continue
            exited_at = time.time()
            rc = guest.process.returncode
            action = "none"
            # QEMU exits 0 on SIGTERM too: a power-off is the guest's own only when the kernel said so.
            console = guest.console.read_text(errors="replace") if guest.console.exists() else ""
            if rc == 0 and iid not in self.killed and "reboot: Power down" in console:
                # the guest powered itself off: EC2 acts on InstanceInitiatedShutdownBehavior
                if self.behaviour.get(iid) == "terminate":
                    self.ec2.terminate_instances(InstanceIds=[iid])
                    action = "terminated"
                else:
                    self.ec2.stop_instances(InstanceIds=[iid])
                    action = "stopped"
            self.log(f"{iid}: QEMU {guest.pid} exited {rc}; instance {action}")
            write_json(self.spool / f"{iid}.exit", {"returncode": rc, "exited_at": exited_at, "action": action})
            with self.lock:
                del self.guests[iid]
        with self.lock:
            live = {iid: g for iid, g in self.guests.items() if g.alive()}
        for iid, state in self.states(list(live)).items():
            if state in MORTAL:
                self.log(f"{iid}: instance {state} at EC2: its guest goes too")
                self.killed.add(iid)
                live[iid].kill()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        self.log(f"ready, spool {self.spool}, pid {os.getpid()}")
        (self.spool / "launcher.pid").write_text(f"{os.getpid()}\n")
        while not self.stopping.is_set() and not (self.spool / "stop").exists():
            for request in sorted(self.spool.glob("*.request")):
                if request.name not in self.taken:
                    self.taken.add(request.name)
                    threading.Thread(target=self.boot, args=(request,), daemon=True).start()
            self.watch()
            time.sleep(POLL)
        with self.lock:
            for iid, guest in self.guests.items():
                self.log(f"{iid}: stopping, QEMU {guest.pid} killed")
                self.killed.add(iid)
                guest.kill()


@contextlib.contextmanager
def launched(spool: Path, env: dict[str, str]) -> Iterator[Path]:
    """Run a launcher (own session, output in SPOOL/launcher.log) for the with-block; stop it after."""
    spool.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).parents[1]
    with (spool / "launcher.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.twin_launcher", str(spool)], cwd=root, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield spool
    finally:
        (spool / "stop").touch()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_file(path: Path, timeout: float, log: Path | None = None) -> dict[str, Any]:
    """The JSON in `path` once it appears (an `.error` beside it is raised at once)."""
    error = path.with_suffix(".error")
    deadline = time.monotonic() + timeout
    while not path.exists():
        if error.exists():
            raise RuntimeError(f"twin launcher: {error.read_text()}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise TimeoutError(f"no {path.name} after {timeout:.0f} s\n{tail}")
        time.sleep(POLL)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


if __name__ == "__main__":
    Launcher(Path(sys.argv[1])).run()
