"""The one cleanup engine: session teardown and every `perfci reap` selector run through here.

    survey(ctx, selector)  describe every kind involved, then select (cleanup/select.py, pure)
    reap(ctx, selection)   kind by kind in order: delete (batched), verify, ledger "deleted" lines
    teardown(ctx, ledger, run_id)  = survey(ledger of that run) + reap; raises when anything is left

The engine knows no cloud: kinds (cleanup/kinds.py) do. Already-gone is success, so every step is
safe to run twice; a kind that fails does not stop the others, except that a kind is not tried while
a kind it needs gone first (a security group's instances) failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pytest_perfci.cleanup.kinds import KINDS, Context, ResourceKind, UnknownKind, kind_class, ordered
from pytest_perfci.cleanup.ledger import Entry, Kind, Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome, Report, Selection, outcome
from pytest_perfci.cleanup.select import from_ledger, select


class TeardownError(RuntimeError):
    """Something could not be destroyed; str() names it (the session adds the reap command)."""


Kinds = Mapping[str, ResourceKind]


def _kind(ctx: Context, name: str, kinds: Kinds | None) -> ResourceKind:
    if kinds is not None and name in kinds:
        return kinds[name]
    return kind_class(name)(ctx)


def describe(
    ctx: Context, run_id: str | None, names: Sequence[str], kinds: Kinds | None = None,
    errors: list[str] | None = None,
) -> list[Described]:
    """What every named kind lists for the run. With ``errors``, a kind whose listing fails is noted
    there and skipped (the ledger alone then says what to delete); without, the error propagates."""
    out: list[Described] = []
    for name in ordered(names, dict(kinds or {})):
        try:
            kind = _kind(ctx, name, kinds)
        except UnknownKind:
            continue  # nothing to list; reap() reports its orphans as failed
        try:
            out.extend(kind.describe(run_id))
        except Exception as exc:
            if errors is None:
                raise
            errors.append(name)
            ctx.progress(f"could not list {name} resources ({type(exc).__name__}: {exc}); going by the ledger")
    return out


def survey(
    ctx: Context,
    *,
    run_id: str | None = None,
    expired: bool = False,
    ledger: Ledger | None = None,
    now: datetime | None = None,
    kinds: Kinds | None = None,
    pid: int | None = None,
    only: Callable[[Entry], bool] | None = None,
) -> Selection:
    """Describe and select: what to delete, what is protected and why (exactly one selector;
    with ``ledger``, ``run_id`` narrows it to that run). ``kinds`` restricts the survey to those
    kind objects (e.g. a kops cluster's own, configured kind). ``only`` narrows the ledger entries
    further (one target released early); every other outstanding entry of the run then counts as
    accounted for, so an intent of the narrowed set never claims another live resource."""
    now = now or datetime.now(UTC)
    names = list(kinds) if kinds is not None else None
    if ledger is not None:
        if expired:
            raise ValueError("pass either ledger= or expired=True, not both")
        entries = [e for e in ledger.outstanding(run_id, pid)
                   if (names is None or e.resource in names) and (only is None or only(e))]
        involved = sorted({e.resource for e in entries})
        described: list[Described] = []
        unlisted: list[str] = []
        for rid in sorted({e.run_id for e in entries}):
            described.extend(describe(ctx, rid, involved, kinds, unlisted))
        others = [e for e in ledger.outstanding(run_id)
                  if (pid is not None and e.pid != pid) or (only is not None and e not in entries)]
        selection = from_ledger(entries, region=ctx.region, described=described, now=now, accounted=others)
        # An intent of a kind that could not be listed may have created something: never close it.
        selection.unlisted = sorted(set(unlisted))
        selection.unresolved = [e for e in selection.unresolved if e.resource not in unlisted]
        return selection
    return select(describe(ctx, run_id, names or list(KINDS), kinds), now=now, run_id=run_id, expired=expired)


def find(
    ctx: Context, *, run_id: str | None = None, expired: bool = False, ledger: Ledger | None = None,
    now: datetime | None = None,
) -> list[Orphan]:
    """The orphans to delete in the context's region (see :func:`survey` for the skipped ones too)."""
    return survey(ctx, run_id=run_id, expired=expired, ledger=ledger, now=now).chosen


def _run_kind(ctx: Context, name: str, group: list[Orphan], kinds: Kinds | None) -> list[Outcome]:
    try:
        kind = _kind(ctx, name, kinds)
    except UnknownKind:
        return [outcome(o, "failed", f"no resource kind registered as {name!r}") for o in group]
    try:
        done = kind.delete(group)
        return kind.verify(done) if ctx.wait else done
    except Exception as exc:  # noqa: BLE001 - one kind's breakage must not stop the others
        return [outcome(o, "failed", f"{type(exc).__name__}: {exc}") for o in group]


def reap(
    ctx: Context,
    orphans: Selection | Sequence[Orphan],
    *,
    ledger: Ledger | None = None,
    kinds: Kinds | None = None,
) -> Report:
    """Delete the orphans kind by kind (clusters, instances, key pairs, security groups).

    With ``ledger``, every resource deleted or found gone gets a ``deleted`` line (and so does the
    intent it resolved), and intents a Selection could not resolve are closed once their kind of
    the run is clean; the ledger's outstanding list shrinks to what really failed.
    """
    selection = orphans if isinstance(orphans, Selection) else Selection(chosen=list(orphans))
    by_kind: dict[str, list[Orphan]] = {}
    for o in selection.chosen:
        by_kind.setdefault(o.kind, []).append(o)
    report = Report()
    failed_kinds: set[str] = set()
    overrides = dict(kinds or {})
    for name in ordered(list(by_kind), overrides):
        group = by_kind[name]
        blocking = _blocking(ctx, name, kinds, failed_kinds)
        if ctx.remaining() == 0.0:
            outcomes = [outcome(o, "failed", "not tried: the teardown deadline passed") for o in group]
        elif blocking:
            outcomes = [outcome(o, "failed", f"not tried: {blocking} of the run still there") for o in group]
        else:
            outcomes = _run_kind(ctx, name, group, kinds)
        if any(not oc.ok for oc in outcomes):
            failed_kinds.add(name)
        report.outcomes.extend(outcomes)
        if ledger is not None:
            _record(ctx, ledger, outcomes, report)
    if ledger is not None:
        report.closed_intents = _close_intents(ctx, ledger, selection, report)
    return report


def _write(ledger: Ledger, report: Report, what: str, run_id: str, kind: Kind, resource: str, **fields: Any) -> bool:
    """One ledger line; a failed write (full disk) is noted in the report and never stops the deleting."""
    try:
        ledger.record(run_id, kind, resource, **fields)
    except OSError as exc:
        report.unrecorded.append(what)
        report.ledger_error = report.ledger_error or f"{type(exc).__name__}: {exc.strerror or exc}"
        return False
    return True


def _blocking(ctx: Context, name: str, kinds: Kinds | None, failed: set[str]) -> str:
    try:
        needs = _kind(ctx, name, kinds).needs_gone
    except UnknownKind:
        return ""
    return ", ".join(sorted(n for n in needs if n in failed))


def _record(ctx: Context, ledger: Ledger, outcomes: list[Outcome], report: Report) -> None:
    for oc in outcomes:
        if oc.ok and oc.run_id:
            data = {"by": ctx.actor, "status": oc.status}
            _write(ledger, report, f"{oc.kind} {oc.id}", oc.run_id, "deleted", oc.kind, id=oc.id, token=oc.token,
                   region=oc.region, data=data)
            if oc.token and oc.resolves_intent:  # also close the intent that never got its "created" line
                _write(ledger, report, f"{oc.kind} intent {oc.token}", oc.run_id, "deleted", oc.kind,
                       token=oc.token, region=oc.region, data=data)


def _close_intents(ctx: Context, ledger: Ledger, selection: Selection, report: Report) -> list[str]:
    """Intents nothing answered to are closed when no resource of their kind and run failed or was kept."""
    unclean = {(o.kind, o.run_id) for o in report.failed} | {(o.kind, o.run_id) for o in selection.skipped}
    closed = []
    for e in selection.unresolved:
        if (e.resource, e.run_id) in unclean:
            continue
        if _write(ledger, report, f"{e.resource} intent {e.token}", e.run_id, "deleted", e.resource,
                  token=e.token, region=e.region,
                  data={"by": ctx.actor, "never_created": "not found by client token or tag"}):
            closed.append(str(e.token))
    return closed


def teardown(
    ctx: Context,
    ledger: Ledger,
    run_id: str,
    *,
    kinds: Kinds | None = None,
    prefix: str = "teardown: ",
    pid: int | None = None,
    only: Callable[[Entry], bool] | None = None,
) -> Report:
    """Destroy every outstanding resource of ``run_id`` in the ledger: `perfci reap --ledger` for one
    run, with the provider's own client. Idempotent; raises TeardownError after doing everything it
    could if anything is left (the message says what). With ``pid``, only what that process recorded;
    with ``only``, only the entries it accepts (see :func:`survey`)."""
    say = ctx.progress
    ctx = dataclasses.replace(ctx, actor="teardown", progress=lambda line: say(f"{prefix}{line}"))
    selection = survey(ctx, ledger=ledger, run_id=run_id, kinds=kinds, pid=pid, only=only)
    for o in selection.skipped:
        ctx.progress(f"{o.kind} {o.id}: {o.reason}; not deleted")
    report = reap(ctx, selection, ledger=ledger, kinds=kinds)
    problems = [f"{o.kind} {o.id}: {o.detail}" for o in report.failed]
    problems += [f"{name} resources could not be listed: an unanswered intent may remain"
                 for name in selection.unlisted if any(e.resource == name and (only is None or only(e))
                                                       for e in ledger.outstanding(run_id, pid))]
    if report.unrecorded:
        problems.append(f"ledger {ledger.path} not written ({report.ledger_error}) for "
                        f"{', '.join(report.unrecorded)}: deleted all the same; a later reap finds them gone")
    if problems:
        raise TeardownError(f"teardown of {run_id} incomplete: " + "; ".join(problems))
    if report.outcomes:
        ctx.progress(f"{run_id}: {report.summary()}")
    return report
