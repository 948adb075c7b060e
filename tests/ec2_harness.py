"""A pytest plugin for runs under test: maps every moto instance to the local sshd (-p tests.ec2_harness).

It implements the public hook pytest_perfci_host_address exactly as a user's conftest would for a
bastion, and authorises the run's freshly created key at the sshd, so the key the EC2 provider made is
the one that logs in.

For the kill tests (tests/test_kill.py) it can also hold provisioning at the "instance is running,
how do I reach it" step, so that a signal lands while a provisioning thread is busy and the main
thread waits for it:

* ``PERFCI_TEST_MARKERS=DIR``: files written into DIR as things happen: ``address-called`` on the
  first call of the hook, ``teardown-active`` when, while the hook is held, the run's shielded
  teardown has begun (``signals.teardown_active()``), ``address-returned`` when the hook returns;
* ``PERFCI_TEST_ADDRESS_DELAY=SECONDS``: hold the hook that long (default 0);
* ``PERFCI_TEST_TEARDOWN_HOLD=SECONDS``: once teardown is active, keep holding this much longer at
  most (default 0: return at once). The teardown waits for provisioning threads, so this is how a
  test makes teardown last long enough to send it a second signal.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pytest_perfci.cleanup import signals

_lock = threading.Lock()


def _mark(name: str) -> None:
    markers = os.environ.get("PERFCI_TEST_MARKERS")
    if markers:
        path = Path(markers) / name
        if not path.exists():
            path.write_text(f"{time.time()}\n")


def _hold() -> None:
    """Sleep up to PERFCI_TEST_ADDRESS_DELAY; once teardown is active, at most PERFCI_TEST_TEARDOWN_HOLD more."""
    delay = float(os.environ.get("PERFCI_TEST_ADDRESS_DELAY") or 0)
    hold = float(os.environ.get("PERFCI_TEST_TEARDOWN_HOLD") or 0)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if signals.teardown_active():
            _mark("teardown-active")
            deadline = min(deadline, time.monotonic() + hold)
            hold = float("inf")  # the first sighting sets the bound; later ones only shorten it
        time.sleep(0.05)


def pytest_perfci_host_address(instance: dict[str, Any]) -> str:
    """Every instance -> the test sshd; with PERFCI_TEST_SERVER_SSHD_PORT (and ..._AUTHORIZED_KEYS), the
    servers of client/server pairs (tag perfci:role=server) -> a second sshd, so a pair is two machines."""
    _mark("address-called")
    _hold()
    key = Path(os.environ["PERFCI_TEST_RESULTS"]) / ".keys" / f"{instance['KeyName']}.pem"
    pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True).stdout
    tags = {t["Key"]: t.get("Value", "") for t in instance.get("Tags", []) or []}
    server = tags.get("perfci:role") == "server" and os.environ.get("PERFCI_TEST_SERVER_SSHD_PORT")
    auth = Path(os.environ["PERFCI_TEST_SERVER_AUTHORIZED_KEYS" if server else "PERFCI_TEST_AUTHORIZED_KEYS"])
    with _lock:
        if pub.strip() not in auth.read_text():
            with auth.open("a") as fh:
                fh.write(pub.strip() + "\n")
    _mark("address-returned")
    return f"127.0.0.1:{os.environ['PERFCI_TEST_SERVER_SSHD_PORT' if server else 'PERFCI_TEST_SSHD_PORT']}"
