"""Which resources to delete and why, from what the cloud lists and what a ledger says: pure.

Three selectors, one rule set:

* ``run_id``: every resource tagged ``perfci:run-id=<id>`` (after a SIGKILLed pytest);
* ``expired``: every perfci resource whose ``perfci:expires-at`` is past, and whose
  ``perfci:keep-until`` (if any) is past too (the scheduled janitor);
* ledger (:func:`from_ledger`): what a run's ledger still lists as created and not deleted; session
  teardown is this selector for its own run.

A ``perfci:keep-until`` in the future protects a resource in every mode; protected resources are
reported as *skipped*, never deleted. Resources without a perfci run-id tag are never selected.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pytest_perfci.cleanup.ledger import Entry
from pytest_perfci.cleanup.model import Described, Orphan, Selection
from pytest_perfci.tags import TAG_EXPIRES, TAG_KEEP, TAG_RUN_ID


def parse_time(value: str | None) -> datetime | None:
    """A tag's UTC ISO8601 time ('2024-05-01T12:00:00Z', '+00:00', naive = UTC); None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _orphan(res: Described, reason: str) -> Orphan:
    return Orphan(
        kind=res.kind,
        id=res.id,
        region=res.region,
        run_id=res.tags.get(TAG_RUN_ID),
        expires_at=parse_time(res.tags.get(TAG_EXPIRES)),
        keep_until=parse_time(res.tags.get(TAG_KEEP)),
        state=res.state,
        reason=reason,
        data=dict(res.data),
    )


def _kept(res: Described, now: datetime) -> str | None:
    """Why a keep-until tag protects this resource now, or None."""
    raw = res.tags.get(TAG_KEEP)
    if raw is None:
        return None
    keep = parse_time(raw)
    if keep is None:
        return f"{TAG_KEEP}={raw!r} is not a UTC ISO8601 time; kept to be safe"
    if keep > now:
        return f"kept until {_iso(keep)}"
    return None


def select(
    resources: Iterable[Described],
    *,
    now: datetime,
    run_id: str | None = None,
    expired: bool = False,
) -> Selection:
    """Which described resources to delete, and why; which matched but are protected, and why.

    Exactly one of ``run_id`` / ``expired`` must be given. Resources without a perfci run-id tag
    are never selected, whatever the selector.
    """
    if (run_id is None) == (not expired):
        raise ValueError("select needs exactly one of run_id= or expired=True")
    out = Selection()
    for res in resources:
        tagged_run = res.tags.get(TAG_RUN_ID)
        if not tagged_run:
            continue  # not ours: never touched
        if run_id is not None:
            if tagged_run != run_id:
                continue
            kept = _kept(res, now)
            if kept:
                out.skipped.append(_orphan(res, kept))
            else:
                out.chosen.append(_orphan(res, f"tagged {TAG_RUN_ID}={run_id}"))
            continue
        raw_exp = res.tags.get(TAG_EXPIRES)
        exp = parse_time(raw_exp)
        if raw_exp is None:
            out.skipped.append(_orphan(res, f"no {TAG_EXPIRES} tag; reap it with --run-id {tagged_run}"))
            continue
        if exp is None:
            out.skipped.append(_orphan(res, f"{TAG_EXPIRES}={raw_exp!r} is not a UTC ISO8601 time"))
            continue
        if exp > now:
            continue  # alive and well: not even worth listing
        kept = _kept(res, now)
        if kept:
            out.skipped.append(_orphan(res, f"expired {_iso(exp)} but {kept}"))
            continue
        reason = f"expired {_iso(exp)}"
        keep = parse_time(res.tags.get(TAG_KEEP))
        if keep is not None:
            reason += f", keep-until {_iso(keep)} past too"
        out.chosen.append(_orphan(res, reason))
    return out


def from_ledger(
    entries: Iterable[Entry],
    *,
    region: str | None = None,
    described: Iterable[Described] = (),
    now: datetime,
    accounted: Iterable[Entry] = (),
) -> Selection:
    """Orphans from a ledger's outstanding entries (see :meth:`Ledger.outstanding`).

    ``described`` is what the cloud lists for the runs in the ledger (by run-id tag): it fills in
    state and tags and lets keep-until protect a resource. An entry with an id whose resource is no
    longer listed is still chosen: deleting it is then an idempotent no-op that records it as
    deleted in the ledger.

    An intent without an id (the process died between the create call and its "created" line) is
    resolved by client token AND tag: a listed resource of that kind carrying the run's tag whose
    token (ClientToken, or the deterministic name) is the intent's; failing that, every tagged
    resource of that kind of the run that no ledger line accounts for. An intent no token answers
    is returned in ``unresolved``: the engine closes it once that kind of the run is clean.
    ``accounted``: other outstanding entries (another process's, same run id) whose ids are
    therefore not this intent's to claim.
    """
    entries = [e for e in entries if region is None or e.region is None or e.region == region]
    live = {(d.kind, d.id): d for d in described}
    by_run: dict[tuple[str, str | None], list[Described]] = {}
    for d in described:
        by_run.setdefault((d.kind, d.tags.get(TAG_RUN_ID)), []).append(d)
    known_ids = {(e.resource, e.id) for e in [*entries, *accounted] if e.id}
    out = Selection()
    seen: dict[tuple[str, str], Orphan] = {}

    def add(res: Described, reason: str, entry: Entry, token: str | None = None, intent: bool = False) -> bool:
        """Choose (or skip) res for entry; True when entry's token now rides on the orphan."""
        extra = {k: str(v) for k, v in entry.data.items() if isinstance(v, str | int | float)}
        orphan = seen.get((res.kind, res.id))
        if orphan is None:
            kept = _kept(res, now)
            orphan = seen[(res.kind, res.id)] = _orphan(res, kept or reason)
            (out.skipped if kept else out.chosen).append(orphan)
        orphan.data = {**extra, **orphan.data}
        if token and orphan.token in (None, token):
            orphan.token = token
            orphan.resolves_intent = intent
            return True
        return False

    for e in entries:
        if e.id:
            res = live.get((e.resource, e.id))
            if res is None:
                tags = {TAG_RUN_ID: e.run_id, **_str_tags(e.data.get("tags"))}
                res = Described(kind=e.resource, id=e.id, region=e.region or region, tags=tags,
                                state="not listed")
            add(res, f"ledger: {'intent' if e.kind == 'intent' else 'created'} {e.ts}, no deleted line", e,
                e.token, intent=e.kind == "intent")
            continue
        tagged = by_run.get((e.resource, e.run_id), [])
        by_token = [d for d in tagged if e.token and d.data.get("token") == e.token]
        attached = False
        for res in by_token:
            attached |= add(res, f"ledger: intent {e.ts}, found by client token and {TAG_RUN_ID} tag", e, e.token,
                            intent=True)
        if not by_token:
            for res in tagged:
                if (res.kind, res.id) not in known_ids:
                    attached |= add(res, f"ledger: intent {e.ts}, found by {TAG_RUN_ID} tag", e, e.token,
                                    intent=True)
        if not attached:
            out.unresolved.append(e)
    return out


def _str_tags(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):  # EC2 shape: [{"Key":..., "Value":...}]
        return {str(t["Key"]): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t}
    return {}
