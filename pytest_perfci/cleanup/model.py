"""What cleanup talks about, cloud-agnostic: a described resource, an orphan chosen for deletion (and
why), what happened to it, and the one report both session teardown and `perfci reap` return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from pytest_perfci.cleanup.ledger import Entry

Status = Literal["deleted", "already_gone", "failed"]


class Described(BaseModel):
    """One resource as its cloud lists it, reduced to what selection needs.

    ``data`` holds kind-specific facts a later step needs: ``token`` (what a ledger intent's token
    would be: an instance's ClientToken, a key pair's or group's name), ``key_pair_id``, a kops
    cluster's ``state`` store.
    """

    kind: str
    id: str
    region: str | None = None
    tags: dict[str, str] = {}
    state: str | None = None
    data: dict[str, str] = {}


class Orphan(BaseModel):
    """A resource selected for deletion (or skipped), and why."""

    kind: str
    id: str
    region: str | None = None
    run_id: str | None = None
    expires_at: datetime | None = None
    keep_until: datetime | None = None
    state: str | None = None
    reason: str
    token: str | None = None   # the ledger's token for it (ClientToken or name), carried to its deleted line
    resolves_intent: bool = False  # found for an intent with no created line: that intent is closed too
    data: dict[str, str] = {}  # Described.data plus the ledger's facts (key_path, key_pair_id, state)


class Selection(BaseModel):
    chosen: list[Orphan] = []
    skipped: list[Orphan] = []   # matched the selector but protected (keep-until) or not judgeable
    # Ledger intents no resource answered to by client token; closed once their kind of the run is clean.
    unresolved: list[Entry] = []
    unlisted: list[str] = []     # kinds whose listing failed (ledger mode went on by the ledger alone)


class Outcome(BaseModel):
    kind: str
    id: str
    region: str | None = None
    run_id: str | None = None
    status: Status
    detail: str = ""
    token: str | None = None
    resolves_intent: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def outcome(o: Orphan, status: Status, detail: str = "") -> Outcome:
    return Outcome(kind=o.kind, id=o.id, region=o.region, run_id=o.run_id, status=status, detail=detail,
                   token=o.token, resolves_intent=o.resolves_intent)


class Report(BaseModel):
    """What one cleanup did: one outcome per resource, in the order the kinds ran."""

    outcomes: list[Outcome] = []
    closed_intents: list[str] = []   # tokens of ledger intents closed as never created
    # Ledger lines that could not be written (full disk, read-only mount): the deletions happened,
    # the bookkeeping did not; a later `perfci reap --ledger` finds those resources already gone.
    unrecorded: list[str] = []
    ledger_error: str = ""           # the first such write's error

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def ids(self, status: Status, kind: str | None = None) -> list[str]:
        return [o.id for o in self.outcomes if o.status == status and (kind is None or o.kind == kind)]

    def counts(self) -> dict[str, int]:
        return {s: len(self.ids(s)) for s in ("deleted", "already_gone", "failed")}  # type: ignore[arg-type]

    def summary(self) -> str:
        c = self.counts()
        return f"{c['deleted']} deleted, {c['already_gone']} already gone, {c['failed']} failed"

    def merge(self, other: Report) -> Report:
        return Report(outcomes=[*self.outcomes, *other.outcomes],
                      closed_intents=[*self.closed_intents, *other.closed_intents],
                      unrecorded=[*self.unrecorded, *other.unrecorded],
                      ledger_error=self.ledger_error or other.ledger_error)
