"""A pytest plugin for runs under test (-p tests.ec2_twin_harness): moto instances reached as their architecture.

An arm64 instance (c7g, m7g, ...) is reached as an arm64-pmu target twin booted for it by the twin
launcher (tests/twin_launcher.py, PERFCI_TEST_TWIN_LAUNCHER=SPOOL), a process the test started outside
this pytest: the guest runs the instance's user data at boot, outlives this pytest if it is killed (as
an instance would), powers off into TerminateInstances and goes when moto terminates its instance.
The run's freshly created key is authorised in the guest: a real arm64 kernel with a PMU the perf
driver drives. An x86_64 instance goes to the loopback sshd, i.e. this x86 VM without a PMU
(tests.ec2_harness, whose PERFCI_TEST_MARKERS files this hook writes too).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests import ec2_harness
from tests.twin_launcher import wait_file, write_json

# Graviton families: a generation digit then 'g' (c7g, m7gd, c6gn, t4g, x2gd, im4gn).
_GRAVITON = re.compile(r"^[a-z]+\d+g")
MACHINE = "arm64-pmu"


def architecture(instance: dict[str, Any]) -> str:
    arch = instance.get("Architecture")
    if arch:
        return str(arch)
    return "arm64" if _GRAVITON.match(str(instance.get("InstanceType", ""))) else "x86_64"


def pytest_perfci_host_address(instance: dict[str, Any]) -> str:
    if architecture(instance) != "arm64":
        return ec2_harness.pytest_perfci_host_address(instance)
    ec2_harness._mark("address-called")
    spool = Path(os.environ["PERFCI_TEST_TWIN_LAUNCHER"])
    key = Path(os.environ["PERFCI_TEST_RESULTS"]) / ".keys" / f"{instance['KeyName']}.pem"
    pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True).stdout
    iid = instance["InstanceId"]
    write_json(spool / f"{iid}.request", {"instance_id": iid, "authorized_key": pub.strip(), "machine": MACHINE})
    ready = wait_file(spool / f"{iid}.ready", 360, spool / "launcher.log")
    ec2_harness._mark("address-returned")
    return f"127.0.0.1:{ready['port']}"


__all__ = ["architecture", "pytest_perfci_host_address"]
