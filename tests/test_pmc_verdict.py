"""PMC verdicts on recorded perf outputs and the recorded environment of the no-vPMU Firecracker VM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_perfci.checks.perf_stat import Counter, PerfStat, parse_perf_stat
from pytest_perfci.checks.pmc import (
    PmcContext,
    Reason,
    Status,
    Verdict,
    compare_readers,
    judge_counter,
    judge_cpi,
    judge_errno,
    judge_perf_stat,
    trustworthy,
)
from pytest_perfci.models.facts import Facts, parse_facts

FC = "pmc/local-firecracker-amd-vm-nopmu"


def _stat(samples: Path, rel: str) -> PerfStat:
    return parse_perf_stat((samples / rel).read_text())


def _value(stat: PerfStat, event: str) -> float:
    c = stat.get(event)
    assert c is not None and c.value is not None, event
    return c.value


@pytest.fixture
def fc_facts(samples: Path) -> Facts:
    """Facts of the Firecracker VM, rebuilt from its recorded files in FACTS_SCRIPT's section format."""
    d = samples / FC
    sections = {
        "cpuinfo": (d / "proc-cpuinfo-cpu0.txt").read_text(),
        "nproc": (d / "nproc.txt").read_text(),
        "perf": (d / "perf-version.stdout").read_text(),
        "paranoid": (d / "perf_event_paranoid.txt").read_text(),
        "pmus": (d / "sys-bus-event_source-devices.txt").read_text(),
    }
    text = "".join(f"@@perfci:{k}\n{v}\n" for k, v in sections.items()) + "@@perfci:end\n"
    return parse_facts(text)


@pytest.fixture
def fc_ctx(fc_facts: Facts) -> PmcContext:
    return PmcContext.from_facts(fc_facts, is_root=True)  # the samples were recorded as root


def test_fc_context_from_facts(fc_facts: Facts, fc_ctx: PmcContext) -> None:
    assert fc_facts.pmu_devices == ("breakpoint", "msr", "software", "tracepoint", "uprobe")
    assert fc_ctx.core_pmu is False
    assert fc_ctx.perf_event_paranoid == 2
    assert fc_ctx.perf_installed is True
    assert fc_ctx.is_root is True


@pytest.mark.parametrize(
    "name",
    [
        "perf-stat-x-cycles-instructions.stderr",
        "perf-stat-x-default.stderr",
        "perf-stat-j-cycles-instructions.stderr",
        "perf-stat-j-default.stderr",
        "perf-stat-human-cycles-instructions.stderr",
        "perf-stat-x-repeat3.stderr",
        "perf-stat-x-user-modifier.stderr",
        "perf-stat-x-o-file.txt",
    ],
)
def test_firecracker_no_pmu(samples: Path, fc_ctx: PmcContext, name: str) -> None:
    verdicts = judge_perf_stat(_stat(samples, f"{FC}/{name}"), ctx=fc_ctx)
    assert [v.event for v in verdicts] == ["cycles", "instructions"]  # no CPI without counts
    for v in verdicts:
        assert (v.status, v.reason) == (Status.UNAVAILABLE, Reason.NO_PMU)
        assert "breakpoint, msr, software, tracepoint, uprobe" in v.detail
    assert verdicts[0].line().startswith("cycles: unavailable (no hardware PMU exposed: ")
    assert not trustworthy(verdicts)


def test_firecracker_software_events_still_count(samples: Path, fc_ctx: PmcContext) -> None:
    """task-clock is served by the kernel: a missing core PMU must not be blamed for it."""
    stat = _stat(samples, f"{FC}/perf-stat-x-default.stderr")
    v = judge_counter(stat.get("task-clock"), "task-clock", fc_ctx)
    assert v.ok and v.value == 0.66
    # page-faults 48 counted; context-switches 0 -> ZERO (the check does not know the event's meaning)
    assert judge_counter(stat.get("page-faults"), "page-faults", fc_ctx).ok
    assert judge_counter(stat.get("context-switches"), "context-switches", fc_ctx).reason is Reason.ZERO


def test_firecracker_without_context_says_not_supported(samples: Path) -> None:
    v = judge_perf_stat(_stat(samples, f"{FC}/perf-stat-x-cycles-instructions.stderr"))[0]
    assert (v.status, v.reason) == (Status.UNAVAILABLE, Reason.NOT_SUPPORTED)
    assert v.detail == "perf stat printed <not supported> for cycles"


@pytest.mark.parametrize(
    ("rel", "events"),
    [
        ("pmc/public/ravel-844-ec2-r6a-4xlarge-not-supported.txt", ("cycles", "instructions")),
        ("pmc/public/jmh-132-github-actions-runner-perf-stat-std-not-supported.txt", ("cycles",)),
        ("pmc/public/gerryyang-blog-2021-perf-stat-x-date-vm.csv", ("cycles", "instructions")),
    ],
)
def test_public_vms_not_supported(samples: Path, rel: str, events: tuple[str, ...]) -> None:
    verdicts = judge_perf_stat(_stat(samples, rel), events)
    assert [(v.status, v.reason) for v in verdicts] == [(Status.UNAVAILABLE, Reason.NOT_SUPPORTED)] * len(
        events
    )
    assert not trustworthy(verdicts)


def test_jmh_runner_never_printed_instructions(samples: Path) -> None:
    v = judge_perf_stat(
        _stat(samples, "pmc/public/jmh-132-github-actions-runner-perf-stat-std-not-supported.txt")
    )[1]
    assert (v.event, v.reason, v.detail) == (
        "instructions",
        Reason.NOT_SUPPORTED,
        "perf stat printed no line for instructions",
    )


@pytest.mark.parametrize(
    ("rel", "cycles", "instructions"),
    [
        ("pmc/public/lkml-2023-kan-liang-spr-perf-stat-x.csv", 52288305.0, 37977214.0),
        ("pmc/public/lkml-2023-kan-liang-spr-perf-stat-j.jsonl", 48433482.0, 38620409.0),
        ("pmc/public/lkml-2023-kan-liang-spr-perf-stat-std.txt", 45940682.0, 36676047.0),
        ("pmc/public/aws-graviton-c6g-2xlarge-perf-stat-std.txt", 161469308.0, 120685678.0),
        ("pmc/public/lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt", 264025867.0, 42198643.0),
    ],
)
def test_available(samples: Path, rel: str, cycles: float, instructions: float) -> None:
    verdicts = judge_perf_stat(_stat(samples, rel))
    cyc, ins, cpi = verdicts
    assert (cyc.status, cyc.value) == (Status.AVAILABLE, cycles)
    assert (ins.status, ins.value) == (Status.AVAILABLE, instructions)
    assert (cpi.event, cpi.status) == ("cpi", Status.AVAILABLE)
    assert trustworthy(verdicts)


def test_graviton_first_run(samples: Path) -> None:
    stat = _stat(samples, "pmc/public/aws-graviton-c6g-2xlarge-perf-stat-std.txt").select(0)
    cyc, ins, cpi = judge_perf_stat(stat)
    assert cyc.line() == "cycles: available (25,115,021 counted, running 100.00%)"
    assert ins.value == 28853592.0
    assert "CPI 0.87" in cpi.detail


def test_topdown_group_not_counted_is_multiplexed(samples: Path) -> None:
    stat = _stat(samples, "pmc/public/lkml-2020-kan-liang-topdown-group-not-counted.csv")
    for event in ("slots", "topdown-retiring", "cycles"):
        v = judge_counter(stat.get(event), event)
        assert (v.status, v.reason) == (Status.UNAVAILABLE, Reason.MULTIPLEXED)
        assert "0.00% running" in v.detail


def test_interval_not_counted_slice_with_full_running(samples: Path) -> None:
    """A <not counted> line at pcnt 100.00 (task slept through the interval) is NOT_COUNTED."""
    stat = _stat(samples, f"{FC}/perf-stat-x-interval.stderr")
    slept = next(c for c in stat.counters if c.status == "not_counted")
    v = judge_counter(slept, "task-clock")
    assert (v.reason, v.detail) == (
        Reason.NOT_COUNTED,
        "perf stat printed <not counted> (running 100.00%): enabled but never ran",
    )
    assert judge_counter(stat.get("task-clock"), "task-clock").ok  # the whole run did count


@pytest.mark.parametrize(
    ("rel", "event", "pct"),
    [
        ("pmc/public/netdata-3232-perf-stat-I-multiplexed-std.txt", "cycles", "38.46%"),
        ("pmc/public/netdata-3232-perf-stat-I-multiplexed-std.txt", "instructions", "46.15%"),
        ("pmc/public/benchkit-109-perf-stat-j-o-file-multiplexed-truncated.jsonl", "cycles", "10.00%"),
    ],
)
def test_heavy_multiplexing(samples: Path, rel: str, event: str, pct: str) -> None:
    v = judge_counter(_stat(samples, rel).get(event), event)
    assert (v.status, v.reason) == (Status.UNAVAILABLE, Reason.MULTIPLEXED)
    assert pct in v.detail and "extrapolation" in v.detail


def test_min_running_pct_is_a_parameter(samples: Path) -> None:
    c = _stat(samples, "pmc/public/netdata-3232-perf-stat-I-multiplexed-std.txt").get("cycles")
    assert judge_counter(c, "cycles", min_running_pct=30.0).ok
    hybrid = _stat(samples, "pmc/public/lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt").get(
        "cycles"
    )
    assert judge_counter(hybrid, "cycles").ok  # cpu_atom at 54.18%
    assert judge_counter(hybrid, "cycles", min_running_pct=60.0).reason is Reason.MULTIPLEXED


def test_zero_counter(samples: Path) -> None:
    stat = _stat(samples, "pmc/public/benchkit-109-perf-stat-j-o-file-multiplexed-truncated.jsonl")
    v = judge_counter(stat.get("cpu-migrations"), "cpu-migrations")
    assert (v.status, v.reason, v.value) == (Status.UNAVAILABLE, Reason.ZERO, 0.0)
    zero_cycles = Counter(event="cycles", name="cycles", value=0.0, status="counted", running_pct=100.0)
    assert judge_counter(zero_cycles, "cycles").reason is Reason.ZERO


def test_reason_priority() -> None:
    missing = None
    ns = Counter(event="cycles", name="cycles", value=None, status="not_supported")
    assert (
        judge_counter(ns, "cycles", PmcContext(perf_installed=False, core_pmu=False)).reason
        is Reason.PERF_MISSING
    )
    assert (
        judge_counter(ns, "cycles", PmcContext(core_pmu=False, perf_event_paranoid=3)).reason is Reason.NO_PMU
    )
    assert (
        judge_counter(missing, "cycles", PmcContext(core_pmu=True, perf_event_paranoid=3)).reason
        is Reason.PARANOID
    )
    root = PmcContext(core_pmu=True, perf_event_paranoid=3, is_root=True)
    assert judge_counter(ns, "cycles", root).reason is Reason.NOT_SUPPORTED


@pytest.mark.parametrize(
    ("event", "paranoid", "system_wide", "blocked"),
    [
        ("cycles:u", 2, False, False),  # user-mode counting of one's own process: allowed at 2
        ("cycles", 2, False, False),  # perf falls back to :u by itself
        ("cycles:k", 2, False, True),
        ("cycles:u", 2, True, True),
        ("cycles:u", 1, True, True),
        ("cycles:u", 0, True, False),
        ("cycles:u", 3, False, True),  # Debian/Android: no unprivileged perf at all
        ("cpu_core/cycles/k", 2, False, True),
    ],
)
def test_paranoid_levels(event: str, paranoid: int, system_wide: bool, blocked: bool) -> None:
    ctx = PmcContext(core_pmu=True, perf_event_paranoid=paranoid, system_wide=system_wide)
    v = judge_counter(None, event, ctx)
    assert (v.reason is Reason.PARANOID) is blocked, v.line()
    if blocked:
        assert f"kernel.perf_event_paranoid={paranoid}" in v.detail


def test_no_pmu_only_blames_core_events() -> None:
    ctx = PmcContext(core_pmu=False)
    assert judge_counter(None, "task-clock", ctx).reason is Reason.NOT_SUPPORTED
    assert judge_counter(None, "sched:sched_switch", ctx).reason is Reason.NOT_SUPPORTED
    assert judge_counter(None, "uncore_imc/cas_count_read/", ctx).reason is Reason.NOT_SUPPORTED
    assert judge_counter(None, "cpu_atom/instructions/", ctx).reason is Reason.NO_PMU


# --- perf_event_open probe ----------------------------------------------------------------------

_PROBE = re.compile(
    r"^PERF_TYPE_(\w+)/PERF_COUNT_(?:HW|SW)_(\w+): (?:perf_event_open -> -1 errno=(\d+)|fd ok.* value=(\d+))"
)
_EVENT_NAMES = {
    "CPU_CYCLES": "cycles",
    "INSTRUCTIONS": "instructions",
    "CPU_CLOCK": "cpu-clock",
    "PAGE_FAULTS": "page-faults",
}


def _probe_lines(samples: Path) -> list[tuple[str, int, int | None]]:
    out = []
    for line in (samples / FC / "perf_event_open-probe.txt").read_text().splitlines():
        m = _PROBE.match(line)
        assert m, line
        out.append((_EVENT_NAMES[m.group(2)], int(m.group(3) or 0), int(m.group(4)) if m.group(4) else None))
    return out


def test_probe_errnos_on_firecracker(samples: Path, fc_ctx: PmcContext) -> None:
    lines = _probe_lines(samples)
    assert lines == [
        ("cycles", 2, None),
        ("instructions", 2, None),
        ("cpu-clock", 0, 2588120),
        ("page-faults", 0, 0),
    ]
    cyc, ins, clock, faults = (judge_errno(event, errno, fc_ctx) for event, errno, _ in lines)
    assert (cyc.status, cyc.reason) == (Status.UNAVAILABLE, Reason.NO_PMU)
    assert cyc.detail.startswith(
        "perf_event_open failed with ENOENT (2); /sys/bus/event_source/devices has no cpu PMU"
    )
    assert ins.reason is Reason.NO_PMU
    assert clock.ok and faults.ok
    # the same ENOENT without knowing the PMU list: the PMU simply lacks the event
    assert judge_errno("cycles", 2).reason is Reason.NOT_SUPPORTED


@pytest.mark.parametrize(
    ("errno", "reason"),
    [(13, Reason.PARANOID), (1, Reason.PARANOID), (95, Reason.NOT_SUPPORTED), (22, Reason.NOT_SUPPORTED),
     (19, Reason.NO_PMU), (38, Reason.NO_PMU), (16, Reason.NOT_COUNTED), (999, Reason.NOT_SUPPORTED)],
)  # fmt: skip
def test_errno_table(errno: int, reason: Reason) -> None:
    v = judge_errno("cycles", errno, PmcContext(core_pmu=True, perf_event_paranoid=2))
    assert (v.status, v.reason) == (Status.UNAVAILABLE, reason)
    assert f"({errno})" in v.detail


# --- two readers, CPI ---------------------------------------------------------------------------


def test_compare_readers_spr_runs(samples: Path) -> None:
    """The SPR CSV and JSON are two runs of the same command: instructions 1.67% apart, cycles 7.37%."""
    x = _stat(samples, "pmc/public/lkml-2023-kan-liang-spr-perf-stat-x.csv")
    j = _stat(samples, "pmc/public/lkml-2023-kan-liang-spr-perf-stat-j.jsonl")
    ins = compare_readers(
        "instructions", _value(x, "instructions"), _value(j, "instructions"), a_name="csv", b_name="json"
    )
    assert ins.ok and ins.detail == "csv read 37,977,214, json read 38,620,409: 1.67% apart (tolerance 2.00%)"
    cyc = compare_readers("cycles", _value(x, "cycles"), _value(j, "cycles"))
    assert (cyc.status, cyc.reason) == (Status.INCONSISTENT, Reason.DISAGREE)
    assert (cyc.value, cyc.other_value) == (52288305.0, 48433482.0)
    assert "7.37% apart" in cyc.detail
    assert not trustworthy(
        [
            Verdict(event="cycles", status=Status.AVAILABLE),
            Verdict(event="instructions", status=Status.AVAILABLE),
            cyc,
        ]
    )


def test_compare_readers_edges() -> None:
    assert compare_readers("cycles", 100.0, 98.0).ok  # exactly 2%
    assert not compare_readers("cycles", 100.0, 97.9).ok
    assert compare_readers("cycles", 97.9, 100.0).status is Status.INCONSISTENT  # symmetric
    assert compare_readers("cycles", 0.0, 0.0).reason is Reason.ZERO
    with pytest.raises(ValueError):
        compare_readers("cycles", 1.0, 1.0, tolerance=-0.1)


def test_cpi_bounds(samples: Path) -> None:
    hybrid = _stat(samples, "pmc/public/lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt")
    v = judge_cpi(_value(hybrid, "cycles"), _value(hybrid, "instructions"))
    assert v.ok and "CPI 6.26" in v.detail
    low = judge_cpi(1_000.0, 20_000.0)
    assert (low.status, low.reason) == (Status.INCONSISTENT, Reason.IMPLAUSIBLE)
    assert "CPI 0.05" in low.detail
    assert judge_cpi(25_000.0, 1_000.0).status is Status.INCONSISTENT
    assert judge_cpi(0.0, 1_000.0).reason is Reason.ZERO


def test_trustworthy_needs_both() -> None:
    ok = Verdict(event="cycles", status=Status.AVAILABLE)
    assert not trustworthy([ok])
    assert trustworthy([ok, Verdict(event="instructions:u", status=Status.AVAILABLE)])
    assert not trustworthy([ok, Verdict(event="instructions", status=Status.UNAVAILABLE, reason=Reason.ZERO)])


def test_verdict_line_and_frozen() -> None:
    v = Verdict(event="cycles", status=Status.UNAVAILABLE, reason=Reason.ZERO, detail="x")
    assert v.line() == "cycles: unavailable (counter reads zero: x)"
    assert Verdict(event="cycles", status=Status.AVAILABLE).line() == "cycles: available"
    with pytest.raises(ValueError):
        v.detail = "y"  # type: ignore[misc]
