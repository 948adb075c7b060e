"""Does this target count cycles and instructions, and do two independent readers agree?

Thin by design: gather on the host (collect.pmc), judge with pure checks (checks.pmc,
checks.expectations), assert with a sentence a human understands.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest

from pytest_perfci.checks.expectations import Expectations, decide
from pytest_perfci.checks.pmc import (
    PmcContext,
    Reason,
    Status,
    Verdict,
    compare_readers,
    judge_counter,
    judge_cpi,
    judge_errno,
    judge_pmu,
    judge_probe_alone,
    one_reader,
)
from pytest_perfci.collect.pmc import run_perf_stat, run_probe
from pytest_perfci.hosts.base import Host
from pytest_perfci.outcomes import conclude, target_key
from pytest_perfci.results.plugin import Recorder

CORE = ("cycles", "instructions")
WIDER = (
    "cache-references",
    "cache-misses",
    "branches",
    "branch-misses",
    "ref-cycles",
    "stalled-cycles-frontend",
    "stalled-cycles-backend",
)
RUNS = 3
# Both readers count the same user-mode instructions of the same deterministic awk loop, run apart.
# Its retired-instruction count varies by well under 0.1 % between runs (valgrind --tool=callgrind,
# see README "PMC suite"); 2 % leaves room for perf's own exec path and still catches a reader that
# counts a different scope (a thread window, kernel mode) or a broken virtual PMU.
INSTRUCTION_TOLERANCE = 0.02
# Cycles depend on frequency, cache state and co-tenants, so they are not compared between readers
# tighter than this; CPI plausibility (checks.pmc.judge_cpi) is the real check on cycles.
CYCLES_TOLERANCE = 0.25

# perf is installed on hosts the run creates, and on local/inventory hosts with --perfci-prepare.
pytestmark = pytest.mark.perfci_needs("perf")



def explain(verdict: Verdict) -> str:
    """The reason first (short, for tables), then the evidence behind it."""
    if verdict.reason is None:
        return verdict.detail
    return f"{verdict.reason.value}: {verdict.detail}" if verdict.detail else verdict.reason.value


def cell(verdict: Verdict) -> str:
    if verdict.status is Status.ONE_READER:  # the count and why it stands alone, in the matrix note
        return explain(verdict)
    return verdict.detail if verdict.ok else (verdict.reason.value if verdict.reason else verdict.status.value)


def record_sample(record: Recorder, event: str, verdict: Verdict, **metadata: object) -> None:
    """The counted value as a typed sample (user-mode count of the fixed awk workload); none when not counted."""
    if verdict.value is not None and verdict.status is not Status.UNAVAILABLE:
        counted = verdict.ok or verdict.status is Status.ONE_READER
        record.sample(f"pmc.{event}", verdict.value, "count", "pass" if counted else "fail",
                      workload="awk loop (collect.pmc.WORKLOAD)", **metadata)



def test_cpi_count(
    host: Host,
    pmc_context: PmcContext,
    probe_path: str,
    expectations: Expectations,
    perfci_capability: Callable[..., None],
    perfci_record: Recorder,
) -> None:
    """cycles and instructions of one workload, counted by perf stat and by perf_event_open."""
    runs = [run_perf_stat(host, [f"{e}:u" for e in CORE]) for _ in range(RUNS)]
    stats = [stat for stat, _ in runs]
    probe, probe_raw = run_probe(host, probe_path, CORE, repeat=RUNS, user_only=True)
    for i, (_, raw) in enumerate(runs, 1):
        perfci_record.attach(f"perf stat run {i}", f"$ {raw.command}\n{raw.stdout}\n--- stderr ---\n{raw.stderr}")
    perfci_record.attach("perf_event_open probe", f"{probe_raw.stdout}\n--- stderr ---\n{probe_raw.stderr}")
    key = target_key(host)
    expected = expectations.for_target(key)
    verdicts: dict[str, Verdict] = {}
    for event in CORE:
        by_perf = [judge_counter(s.get(event), event, pmc_context) for s in stats]
        errno = probe.first_errno(event)
        by_probe = judge_errno(event, errno, pmc_context) if errno is not None else None
        perf_ok = all(v.ok for v in by_perf)
        probe_value = probe.median(event)
        if perf_ok and by_probe is None and probe_value:
            perf_value = statistics.median(v.value or 0.0 for v in by_perf)
            tol = INSTRUCTION_TOLERANCE if event == "instructions" else CYCLES_TOLERANCE
            tol = (expectations.tolerance_for(key, event) or (tol, ""))[0]  # a target may be held tighter
            verdicts[event] = compare_readers(event, perf_value, probe_value, tolerance=tol)
        elif not pmc_context.perf_installed and by_probe is None and probe_value:
            verdicts[event] = one_reader(event, probe_value, pmc_context)
        elif perf_ok:
            why = by_probe.line() if by_probe else f"perf_event_open read {probe_value}"
            verdicts[event] = Verdict(
                event=event, status=Status.INCONSISTENT, reason=Reason.DISAGREE,
                detail=f"perf stat counts {event} but perf_event_open does not: {why}",
            )
        else:
            verdicts[event] = next(v for v in by_perf if not v.ok)
    if all(v.ok or v.status is Status.ONE_READER for v in verdicts.values()):
        exact = expectations.cpi_for(key)
        cpi = judge_cpi(verdicts["cycles"].value or 0.0, verdicts["instructions"].value or 0.0,
                        exact=exact[0] if exact else None)
        perfci_capability("cpi", cpi.ok, cpi.detail, host=host, finding=cpi.finding)
        if verdicts["instructions"].value:
            perfci_record.sample("pmc.cpi", (verdicts["cycles"].value or 0.0) / verdicts["instructions"].value,
                                 "cycles/instruction", "pass" if cpi.ok else "fail", direction="lower")
        if not cpi.ok:
            pytest.fail(cpi.line(), pytrace=False)
    outcomes = []
    pmu = judge_pmu(verdicts.values())
    if "pmu" in expected or pmu.reason is Reason.PARTIAL_PMU:
        # Only where it says more than the two events do: a partial PMU, or a target that expects one.
        perfci_capability("pmu", pmu.ok, cell(pmu), host=host, finding=pmu.finding)
        outcomes.append(decide("pmu", pmu.finding, explain(pmu), expected.get("pmu")))  # type: ignore[arg-type]
    for event, verdict in verdicts.items():
        perfci_capability(event, verdict.ok, cell(verdict), host=host, finding=verdict.finding)
        reader = ("perf_event_open only (perf absent), median of 3 runs" if verdict.status is Status.ONE_READER
                  else "perf stat, median of 3 runs")
        record_sample(perfci_record, event, verdict, reader=reader, probe=verdict.other_value)
        outcomes.append(decide(event, verdict.finding, explain(verdict), expected.get(event)))  # type: ignore[arg-type]
    conclude(outcomes)


@pytest.mark.parametrize("event", WIDER)
def test_counters(
    host: Host,
    event: str,
    pmc_context: PmcContext,
    probe_path: str,
    expectations: Expectations,
    perfci_capability: Callable[..., None],
    perfci_record: Recorder,
) -> None:
    """A wider set of generic hardware events: counted, not supported, or stuck at zero.

    Read by perf stat; by perf_event_open alone when perf is absent (one reader, never "unavailable")."""
    if pmc_context.perf_installed:
        stat, raw = run_perf_stat(host, [f"{event}:u"])
        perfci_record.attach("perf stat", f"$ {raw.command}\n{raw.stdout}\n--- stderr ---\n{raw.stderr}")
        verdict = judge_counter(stat.get(event), event, pmc_context)
    else:
        probe, raw = run_probe(host, probe_path, [event], repeat=1, user_only=True)
        perfci_record.attach("perf_event_open probe", f"{raw.stdout}\n--- stderr ---\n{raw.stderr}")
        verdict = judge_probe_alone(event, probe.first_errno(event), probe.median(event), pmc_context)
    perfci_capability(event, verdict.ok, cell(verdict), host=host, finding=verdict.finding)
    record_sample(perfci_record, event, verdict,
                  reader="perf stat" if pmc_context.perf_installed else "perf_event_open only (perf absent)")
    expected = expectations.for_target(target_key(host)).get(event)
    conclude([decide(event, verdict.finding, explain(verdict), expected)])  # type: ignore[arg-type]
