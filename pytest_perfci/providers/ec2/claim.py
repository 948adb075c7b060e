"""One run id, one live run: refuse a --perfci-run-id another run is using, before anything is created.

Two checks, because each misses what the other sees:

* a lock file ``<results>/.locks/<run id>.lock`` held (flock) for the life of the process: two runs
  on this machine with the same results directory (the same ledger) cannot both start, even in the
  window before either has created anything; the kernel drops the lock when the holder dies, even
  by SIGKILL, so a stale file never blocks a later run;
* EC2 itself: any live instance, key pair or security group tagged with the run id (a run on
  another machine, another results directory, or a killed run not yet reaped) means the id is taken.

Whatever still slips through (two machines starting in the same second) is harmless: names that
collide fail their create call, whose intent is then closed as never created, and a teardown only
deletes what its own process recorded (the ledger lines' pid).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context

CLAIMED_KINDS = ("instance", "key_pair", "security_group")


class RunIdInUse(RuntimeError):
    """str() is one line naming the run id, who uses it, and what to do."""


class RunLockUnwritable(RuntimeError):
    """The lock file cannot be written (a full disk); str() is one line."""


class RunLock:
    """An exclusive, non-blocking flock on ``<results>/.locks/<run id>.lock``, held until release()."""

    def __init__(self, results: Path, run_id: str) -> None:
        self.path = Path(results) / ".locks" / f"{run_id}.lock"
        self.run_id = run_id
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunIdInUse(
                f"run id {self.run_id!r} is in use by {holder} (lock {self.path}); "
                "pick another --perfci-run-id or wait for that run to finish"
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}\n")
            fh.flush()
        except OSError as exc:  # a full disk: nothing is created yet, so say it and stop here
            with contextlib.suppress(OSError):  # closing flushes the same unwritable buffer
                fh.close()
            raise RunLockUnwritable(f"cannot write the run lock {self.path} ({type(exc).__name__}: "
                             f"{exc.strerror or exc}); free space in --perfci-results first") from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None


def live_resources(ctx: Context, run_id: str) -> list[str]:
    """'<kind> <id>' of every live EC2 resource tagged with run_id (the cleanup engine's own listing)."""
    return [f"{d.kind} {d.id}" for d in engine.describe(ctx, run_id, list(CLAIMED_KINDS))]


def refuse_if_live(ctx: Context, run_id: str) -> None:
    found = live_resources(ctx, run_id)
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise RunIdInUse(
            f"run id {run_id!r} is in use: {shown} tagged with it in {ctx.region}; pick another "
            f"--perfci-run-id, or if that run is dead: perfci reap --run-id {run_id} --yes"
        )
