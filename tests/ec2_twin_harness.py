"""A pytest plugin for runs under test (-p tests.ec2_twin_harness): moto instances reached as their architecture.

An arm64 instance (c7g, m7g, ...) is reached as an arm64-pmu target twin booted for it, with the run's
freshly created key authorised in the guest: a real arm64 kernel with a PMU the perf driver drives.
An x86_64 instance goes to the loopback sshd, i.e. this x86 VM without a PMU (tests.ec2_harness).
The guests stand in for the instances: they are killed when the run under test ends (and die with it
if it is killed: twins.guest's launcher gives them PR_SET_PDEATHSIG).

PERFCI_TEST_TWIN_PIDS=FILE: one line "instance-id pid" per guest, so the test can check none is left.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from pytest_perfci.twins.guest import Guest, forget_initrd, start_guest
from pytest_perfci.twins.image import ImageBuilder
from pytest_perfci.twins.machines import MACHINES
from tests import ec2_harness

_lock = threading.Lock()
_guests: dict[str, Guest] = {}
# Graviton families: a generation digit then 'g' (c7g, m7gd, c6gn, t4g, x2gd, im4gn).
_GRAVITON = re.compile(r"^[a-z]+\d+g")


def architecture(instance: dict[str, Any]) -> str:
    arch = instance.get("Architecture")
    if arch:
        return str(arch)
    return "arm64" if _GRAVITON.match(str(instance.get("InstanceType", ""))) else "x86_64"


def pytest_perfci_host_address(instance: dict[str, Any]) -> str:
    if architecture(instance) != "arm64":
        return ec2_harness.pytest_perfci_host_address(instance)
    results = Path(os.environ["PERFCI_TEST_RESULTS"])
    key = results / ".keys" / f"{instance['KeyName']}.pem"
    pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True).stdout
    iid = instance["InstanceId"]
    with _lock:
        guest = _guests.get(iid)
        if guest is None:
            image = ImageBuilder("arm64").build()
            guest = start_guest(MACHINES["arm64-pmu"], image, results / "twins" / iid, label=iid, authorized_key=pub)
            _guests[iid] = guest
            pids = os.environ.get("PERFCI_TEST_TWIN_PIDS")
            if pids:
                with open(pids, "a") as fh:
                    fh.write(f"{iid} {guest.pid}\n")
    guest.wait_ready(300)
    forget_initrd(guest)
    return f"127.0.0.1:{guest.port}"


def pytest_unconfigure(config: Any) -> None:
    """The run's instances are terminated by now (moto); their stand-ins go too."""
    if hasattr(config, "workerinput"):
        return
    with _lock:
        for guest in _guests.values():
            guest.kill()
        _guests.clear()
