"""/proc helpers for tests that check no process outlives a timeout."""

from __future__ import annotations

from pathlib import Path


def process_state(pid: int) -> str | None:
    """'R', 'S', 'Z', ... or None when gone. A zombie counts as dead: PID 1 here may not reap orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]
