"""Child processes the framework starts itself (kops, clusterloader2): stopping them without leaks."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Terminate a child that is still running, and kill it if it ignores that for `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
