"""Layer 3 of cleanup: find perfci resources that outlived their run, and delete them.

Three ways to say what is an orphan:

* ``run_id``: every resource tagged ``perfci:run-id=<id>`` (after a SIGKILLed pytest);
* ``expired``: every perfci resource whose ``perfci:expires-at`` is past, and whose
  ``perfci:keep-until`` (if any) is past too (the scheduled janitor);
* ``ledger``: what a run's ledger still lists as created and not deleted.

A ``perfci:keep-until`` in the future protects a resource in every mode (that is what
``--perfci-keep`` promises); protected resources are reported as *skipped*, never deleted.

Selection is pure (:func:`select`, :func:`from_ledger`: described resources + now -> orphans and
why); only :func:`describe`, :func:`find` and :func:`reap` talk to EC2. Deletion is dispatched by
kind through a registry (:func:`register_deleter`) so that other providers (kops clusters) add
their own kind without touching this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from pydantic import BaseModel

from pytest_perfci.cleanup.ledger import Entry, Ledger
from pytest_perfci.retry import backoff
from pytest_perfci.tags import TAG_EXPIRES, TAG_KEEP, TAG_RUN_ID

INSTANCE = "instance"
KEY_PAIR = "key_pair"
SECURITY_GROUP = "security_group"
CLUSTER = "cluster"

# Instances in these states are gone or going; everything else may still cost money.
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- model ----------------------------------------------------------------------------------------


class Described(BaseModel):
    """One resource as EC2 described it, reduced to what selection needs."""

    kind: str
    id: str
    region: str | None = None
    tags: dict[str, str] = {}
    state: str | None = None


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
    token: str | None = None   # ledger intent this resource resolves (closed when it is deleted)
    key_path: str | None = None   # key pairs: the run's private key file, removed with the key pair


class Selection(BaseModel):
    chosen: list[Orphan] = []
    skipped: list[Orphan] = []   # matched the selector but protected (keep-until) or not judgeable


class Outcome(BaseModel):
    kind: str
    id: str
    region: str | None = None
    run_id: str | None = None
    status: str            # "deleted" | "already_gone" | "failed"
    detail: str = ""
    token: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class ReapReport(BaseModel):
    outcomes: list[Outcome] = []

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def merge(self, other: ReapReport) -> ReapReport:
        return ReapReport(outcomes=[*self.outcomes, *other.outcomes])


# --- pure selection -------------------------------------------------------------------------------


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
) -> Selection:
    """Orphans from a ledger's outstanding entries (see :meth:`Ledger.outstanding`).

    ``described`` is what EC2 says exists for the runs in the ledger (by run-id tag): it fills in
    state and tags, resolves intents that never got an id (the process died between the create
    call and the "created" line), and lets keep-until protect a resource. An entry whose resource
    EC2 no longer lists is still chosen: deleting it is then an idempotent no-op that records it
    as deleted in the ledger.
    """
    live = {(d.kind, d.id): d for d in described}
    by_run: dict[tuple[str, str | None], list[Described]] = {}
    for d in described:
        by_run.setdefault((d.kind, d.tags.get(TAG_RUN_ID)), []).append(d)
    out = Selection()
    seen: set[tuple[str, str]] = set()

    def add(res: Described, reason: str, token: str | None = None) -> None:
        if (res.kind, res.id) in seen:
            return
        seen.add((res.kind, res.id))
        kept = _kept(res, now)
        orphan = _orphan(res, kept or reason)
        orphan.token = token
        (out.skipped if kept else out.chosen).append(orphan)

    for e in entries:
        if region is not None and e.region is not None and e.region != region:
            continue
        if e.id:
            res = live.get((e.resource, e.id))
            if res is None:
                tags = {TAG_RUN_ID: e.run_id, **_str_tags(e.data.get("tags"))}
                res = Described(kind=e.resource, id=e.id, region=e.region or region, tags=tags,
                                state="not listed")
            add(res, f"ledger: created {e.ts}, no deleted line")
            if e.resource == KEY_PAIR and e.data.get("key_path"):
                for orphan in (*out.chosen, *out.skipped):
                    if orphan.kind == KEY_PAIR and orphan.id == e.id:
                        orphan.key_path = str(e.data["key_path"])
        else:
            # An intent only: whatever of this kind carries the run's tag is what it created.
            for res in by_run.get((e.resource, e.run_id), []):
                add(res, f"ledger: intent {e.ts}, found by {TAG_RUN_ID} tag", e.token)
    return out


def _str_tags(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):  # EC2 shape: [{"Key":..., "Value":...}]
        return {str(t["Key"]): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t}
    return {}


# --- describing (EC2 I/O) -------------------------------------------------------------------------


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in item.get("Tags", []) or []}


def _run_filter(run_id: str | None) -> list[dict[str, Any]]:
    if run_id is None:
        return [{"Name": "tag-key", "Values": [TAG_RUN_ID]}]
    return [{"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]}]


def _region(ec2: Any) -> str | None:
    return getattr(getattr(ec2, "meta", None), "region_name", None)


def describe_instances(ec2: Any, run_id: str | None) -> list[Described]:
    filters = [*_run_filter(run_id), {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}]
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                out.append(Described(kind=INSTANCE, id=inst["InstanceId"], region=_region(ec2),
                                     tags=_tags(inst), state=inst.get("State", {}).get("Name")))
    return out


def describe_key_pairs(ec2: Any, run_id: str | None) -> list[Described]:
    resp = ec2.describe_key_pairs(Filters=_run_filter(run_id))
    return [Described(kind=KEY_PAIR, id=k["KeyName"], region=_region(ec2), tags=_tags(k), state="available")
            for k in resp.get("KeyPairs", [])]


def describe_security_groups(ec2: Any, run_id: str | None) -> list[Described]:
    out = []
    for page in ec2.get_paginator("describe_security_groups").paginate(Filters=_run_filter(run_id)):
        for g in page.get("SecurityGroups", []):
            out.append(Described(kind=SECURITY_GROUP, id=g["GroupId"], region=_region(ec2), tags=_tags(g),
                                 state="exists"))
    return out


# kind -> function(ec2, run_id or None for "any perfci run") -> described resources.
Describer = Callable[[Any, "str | None"], list[Described]]
DESCRIBERS: dict[str, Describer] = {
    INSTANCE: describe_instances,
    KEY_PAIR: describe_key_pairs,
    SECURITY_GROUP: describe_security_groups,
}


def describe(ec2: Any, run_id: str | None = None, kinds: Sequence[str] | None = None) -> list[Described]:
    """Every perfci resource (of the run, or of any run) that EC2 lists in the client's region."""
    out: list[Described] = []
    for kind, fn in DESCRIBERS.items():
        if kinds is None or kind in kinds:
            out.extend(fn(ec2, run_id))
    return out


def survey(
    ec2: Any,
    *,
    run_id: str | None = None,
    expired: bool = False,
    ledger: Ledger | None = None,
    now: datetime | None = None,
) -> Selection:
    """Describe and select: what :func:`find` would return, plus what was skipped and why."""
    now = now or datetime.now(UTC)
    if ledger is not None:
        if expired:
            raise ValueError("pass either ledger= or expired=True, not both")
        entries = ledger.outstanding(run_id)
        region = _region(ec2)
        kinds = sorted({e.resource for e in entries if e.resource in DESCRIBERS})
        described: list[Described] = []
        for rid in sorted({e.run_id for e in entries}):
            described.extend(describe(ec2, rid, kinds))
        return from_ledger(entries, region=region, described=described, now=now)
    return select(describe(ec2, run_id), now=now, run_id=run_id, expired=expired)


def find(
    ec2: Any,
    *,
    run_id: str | None = None,
    expired: bool = False,
    ledger: Ledger | None = None,
    now: datetime | None = None,
) -> list[Orphan]:
    """The orphans to delete in the client's region (see :func:`survey` for the skipped ones too)."""
    return survey(ec2, run_id=run_id, expired=expired, ledger=ledger, now=now).chosen


# --- deleting -------------------------------------------------------------------------------------


@dataclass
class ReapContext:
    """What a deleter gets besides its orphans; kinds that need other clients read them from here."""

    ec2: Any
    progress: Progress
    waiter_delay: float = 5.0
    waiter_max_attempts: int = 120
    dependency_timeout: float = 120.0
    # Where a run keeps its private keys (<results>/.keys): a reaped key pair's local file goes too.
    key_dir: Path | None = None


Deleter = Callable[[ReapContext, list[Orphan]], list[Outcome]]
# kind -> (order, deleter). Lower order runs first: instances before what they depend on.
_DELETERS: dict[str, tuple[int, Deleter]] = {}


def register_deleter(kind: str, *, order: int) -> Callable[[Deleter], Deleter]:
    """Register how to delete one kind of resource (e.g. ``cluster`` for kops, order < 10)."""

    def deco(fn: Deleter) -> Deleter:
        _DELETERS[kind] = (order, fn)
        return fn

    return deco


def deleter_kinds() -> list[str]:
    return [k for k, _ in sorted(_DELETERS.items(), key=lambda kv: kv[1][0])]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _outcome(o: Orphan, status: str, detail: str = "") -> Outcome:
    return Outcome(kind=o.kind, id=o.id, region=o.region, run_id=o.run_id, status=status, detail=detail,
                   token=o.token)


_BATCH = 500  # TerminateInstances takes up to 1000 ids; stay well under.


@register_deleter(INSTANCE, order=10)
def delete_instances(ctx: ReapContext, orphans: list[Orphan]) -> list[Outcome]:
    """Terminate in batched calls, then wait with botocore's instance_terminated waiter."""
    ids = [o.id for o in orphans]
    states: dict[str, str] = {}
    for i in range(0, len(ids), _BATCH):
        # A filter (unlike InstanceIds=) does not fail the whole call when one id no longer exists.
        page_ids = ids[i:i + _BATCH]
        for page in ctx.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": page_ids}]
        ):
            for r in page.get("Reservations", []):
                for inst in r.get("Instances", []):
                    states[inst["InstanceId"]] = inst.get("State", {}).get("Name", "")
    live = [i for i in ids if states.get(i) in LIVE_INSTANCE_STATES]
    going = [i for i in ids if states.get(i) == "shutting-down"]
    errors: dict[str, str] = {}
    for i in range(0, len(live), _BATCH):
        batch = live[i:i + _BATCH]
        ctx.progress(f"terminating {len(batch)} instance(s): {' '.join(batch)}")
        try:
            ctx.ec2.terminate_instances(InstanceIds=batch)
        except ClientError as exc:
            for iid in batch:
                errors[iid] = f"{_code(exc)}: {exc}"
    waiting = [i for i in [*live, *going] if i not in errors]
    if waiting:
        ctx.progress(f"waiting for {len(waiting)} instance(s) to terminate")
        started = time.monotonic()
        try:
            ctx.ec2.get_waiter("instance_terminated").wait(
                InstanceIds=waiting,
                WaiterConfig={"Delay": ctx.waiter_delay, "MaxAttempts": ctx.waiter_max_attempts},
            )
            ctx.progress(f"{len(waiting)} instance(s) terminated after {time.monotonic() - started:.0f}s")
        except WaiterError as exc:
            for iid in waiting:
                errors[iid] = f"not terminated after {time.monotonic() - started:.0f}s: {exc}"
    out = []
    for o in orphans:
        if o.id in errors:
            out.append(_outcome(o, "failed", errors[o.id]))
        elif o.id in live:
            out.append(_outcome(o, "deleted", "terminated"))
        else:
            out.append(_outcome(o, "already_gone", states.get(o.id) or "not found"))
    return out


@register_deleter(KEY_PAIR, order=20)
def delete_key_pairs(ctx: ReapContext, orphans: list[Orphan]) -> list[Outcome]:
    out = []
    for o in orphans:
        try:
            # DeleteKeyPair succeeds for a missing name on AWS: look first to say what really happened.
            exists = ctx.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [o.id]}])["KeyPairs"]
            if not exists:
                out.append(_outcome(o, "already_gone", "not found"))
            else:
                ctx.ec2.delete_key_pair(KeyName=o.id)
                ctx.progress(f"deleted key pair {o.id}")
                out.append(_outcome(o, "deleted"))
        except ClientError as exc:
            if _code(exc) != "InvalidKeyPair.NotFound":
                out.append(_outcome(o, "failed", f"{_code(exc)}: {exc}"))
                continue
            out.append(_outcome(o, "already_gone", "not found"))
        _remove_private_key(ctx, o)
    return out


def _remove_private_key(ctx: ReapContext, o: Orphan) -> None:
    """A key pair that is gone in EC2 leaves no use for its private key file: remove it (never read it)."""
    candidates = [Path(o.key_path)] if o.key_path else []
    if ctx.key_dir is not None:
        candidates.append(ctx.key_dir / f"{o.id}.pem")
    for path in candidates:
        if path.is_file():
            path.unlink()
            ctx.progress(f"removed private key file {path}")


def delete_security_group(
    ec2: Any, group: str, *, timeout: float, progress: Progress = _quiet, sleep: Callable[[float], None] = time.sleep
) -> str:
    """Delete one group; 'deleted' or 'already_gone'. DependencyViolation (an instance still shutting
    down holds it) is retried with backoff until ``timeout``; any other error is raised."""
    kwargs = {"GroupId": group} if group.startswith("sg-") else {"GroupName": group}

    def in_use(exc: BaseException) -> bool:
        return isinstance(exc, ClientError) and _code(exc) == "DependencyViolation"

    def waiting(_: BaseException, delay: float, _n: int) -> None:
        progress(f"security group {group} still in use; retrying in {delay:.0f}s")

    try:
        backoff(in_use, first=2.0, cap=15.0, within=timeout, on_retry=waiting, sleep=sleep)(
            ec2.delete_security_group, **kwargs)
        return "deleted"
    except ClientError as exc:
        if _code(exc) in ("InvalidGroup.NotFound", "InvalidGroupId.NotFound"):
            return "already_gone"
        raise


@register_deleter(SECURITY_GROUP, order=30)
def delete_security_groups(ctx: ReapContext, orphans: list[Orphan]) -> list[Outcome]:
    out = []
    for o in orphans:
        try:
            status = delete_security_group(ctx.ec2, o.id, timeout=ctx.dependency_timeout, progress=ctx.progress)
            if status == "deleted":
                ctx.progress(f"deleted security group {o.id}")
            out.append(_outcome(o, status, "" if status == "deleted" else "not found"))
        except ClientError as exc:
            out.append(_outcome(o, "failed", f"{_code(exc)}: {exc}"))
    return out


def reap(
    ec2: Any,
    orphans: Sequence[Orphan],
    *,
    progress: Progress = _quiet,
    ledger: Ledger | None = None,
    context: ReapContext | None = None,
) -> ReapReport:
    """Delete the orphans kind by kind (instances first, then key pairs, then security groups).

    Already-gone counts as success, so running it again is harmless. With ``ledger``, every
    resource that is deleted or found gone gets a ``deleted`` line, so the ledger's outstanding
    list shrinks to what really failed. A kind with no registered deleter is reported as failed,
    never silently skipped.
    """
    ctx = context or ReapContext(ec2=ec2, progress=progress)
    by_kind: dict[str, list[Orphan]] = {}
    for o in orphans:
        by_kind.setdefault(o.kind, []).append(o)
    report = ReapReport()
    order = {k: _DELETERS[k][0] for k in by_kind if k in _DELETERS}
    for kind in sorted(by_kind, key=lambda k: (order.get(k, 1_000), k)):
        group = by_kind[kind]
        if kind not in _DELETERS:
            outcomes = [_outcome(o, "failed", f"no deleter registered for kind {kind!r}") for o in group]
        else:
            try:
                outcomes = _DELETERS[kind][1](ctx, group)
            except Exception as exc:  # noqa: BLE001 - one kind's breakage must not stop the others
                outcomes = [_outcome(o, "failed", f"{type(exc).__name__}: {exc}") for o in group]
        report.outcomes.extend(outcomes)
        if ledger is not None:
            for oc in outcomes:
                if oc.ok and oc.run_id:
                    data = {"by": "perfci reap", "status": oc.status}
                    ledger.record(oc.run_id, "deleted", oc.kind, id=oc.id, region=oc.region, data=data)
                    if oc.token:  # also close the intent that never got its "created" line
                        ledger.record(oc.run_id, "deleted", oc.kind, token=oc.token, region=oc.region,
                                      data=data)
    return report
