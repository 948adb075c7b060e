"""An append-only, fsynced record of every resource a run creates.

Intent is written before each create call and the id right after it, so that whatever kills the
process, the ledger says what may exist: an intent without a created line means "look it up by its
client token / tags", a created line without a deleted line means "still to destroy".
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

Kind = Literal["intent", "created", "deleted", "kept"]
# instance, key_pair, security_group, cluster (kops), or anything a provider adds.
Resource = str


class Entry(BaseModel):
    ts: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    run_id: str
    kind: Kind
    resource: Resource
    id: str | None = None       # provider id (i-..., key name, sg-..., cluster name)
    token: str | None = None    # idempotency token / ClientToken linking intent and created
    region: str | None = None
    pid: int = Field(default_factory=os.getpid)
    data: dict[str, Any] = {}   # tags, instance type, address: whatever helps a later reaper


class Ledger:
    """One JSON line per event; safe for threads in one process and for xdist workers appending together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entry: Entry) -> Entry:
        line = entry.model_dump_json() + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            # O_APPEND writes of one short line are atomic between processes; fsync makes the line
            # survive a power cut or SIGKILL right after the create call returns.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def record(self, run_id: str, kind: Kind, resource: Resource, **fields: Any) -> Entry:
        return self.append(Entry(run_id=run_id, kind=kind, resource=resource, **fields))

    def entries(self) -> Iterator[Entry]:
        if not self.path.exists():
            return
        with self.path.open() as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        yield Entry.model_validate(json.loads(line))
                    except ValueError:
                        continue  # a line torn by a crash mid-write is skipped, not fatal

    def outstanding(self, run_id: str | None = None, pid: int | None = None) -> list[Entry]:
        """Resources created (or only intended) and not yet deleted, oldest first.

        With ``pid``, only what that process recorded (its intents and creates; a deleted line
        from any process still counts): a session tears down its own resources, never those of
        another process that used the same run id and results directory.

        An intent with no created line stays outstanding (the create may have succeeded before the
        process died); reapers resolve it by token or tags.
        """
        state: dict[tuple[str, str], Entry] = {}
        for e in self.entries():
            if run_id is not None and e.run_id != run_id:
                continue
            key = (e.resource, e.id or f"token:{e.token}")
            if e.kind == "intent":
                state.setdefault(key, e)
            elif e.kind == "created":
                state.pop((e.resource, f"token:{e.token}"), None)
                state[key] = e
            elif e.kind in ("deleted", "kept"):
                state.pop(key, None)
        return [e for e in state.values() if pid is None or e.pid == pid]

    def damage(self) -> str | None:
        """Why this file is not a ledger, or None. Only the last line may be torn (a crash mid-write);
        a bad line before it, or no entry at all in a non-empty file, means it is something else, and
        a reaper reading it would say "nothing to reap" about resources it never saw."""
        try:
            lines = [(n, line.strip()) for n, line in enumerate(self.path.open(errors="replace"), 1)
                     if line.strip()]
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        good = 0
        for i, (n, line) in enumerate(lines):
            try:
                Entry.model_validate(json.loads(line))
                good += 1
            except ValueError:
                if i < len(lines) - 1:
                    return f"line {n} is not a perfci ledger entry"
        if lines and not good:
            return "it holds no perfci ledger entry"
        return None
