"""A pytest plugin for runs under test: maps every moto instance to the local sshd (-p tests.ec2_harness).

It implements the public hook pytest_perfci_host_address exactly as a user's conftest would for a
bastion, and authorises the run's freshly created key at the sshd, so the key the EC2 provider made is
the one that logs in.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def pytest_perfci_host_address(instance: dict[str, Any]) -> str:
    key = Path(os.environ["PERFCI_TEST_RESULTS"]) / ".keys" / f"{instance['KeyName']}.pem"
    pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True).stdout
    auth = Path(os.environ["PERFCI_TEST_AUTHORIZED_KEYS"])
    with _lock:
        if pub.strip() not in auth.read_text():
            with auth.open("a") as fh:
                fh.write(pub.strip() + "\n")
    return f"127.0.0.1:{os.environ['PERFCI_TEST_SSHD_PORT']}"
