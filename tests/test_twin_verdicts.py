"""Verdicts on real outputs recorded on target twins (tests/data/samples/twins, README there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import Expectations, decide, load_expectations
from pytest_perfci.checks.perf_stat import PerfStat, parse_perf_stat
from pytest_perfci.checks.pmc import (
    PmcContext,
    Reason,
    Status,
    compare_readers,
    judge_counter,
    judge_cpi,
    judge_errno,
    judge_multiplexing,
    judge_pmu,
)
from pytest_perfci.checks.pmc_probe import parse_probe_output

SUITE_EXPECTATIONS = Path(__file__).parent.parent / "suites" / "pmc" / "expectations.toml"
CTX = PmcContext(core_pmu=True, perf_event_paranoid=3, is_root=True, pmu_devices=("armv8_pmuv3", "software"))


def _stat(samples: Path, rel: str) -> PerfStat:
    return parse_perf_stat((samples / "twins" / rel).read_text(), sep=",")


@pytest.fixture(scope="module")
def expectations() -> Expectations:
    return load_expectations(SUITE_EXPECTATIONS)


def test_arm64_pmu_readers_agree_within_the_twins_tolerance(samples: Path, expectations: Expectations) -> None:
    stat = _stat(samples, "arm64-pmu/perf-stat-core.csv")
    probe = parse_probe_output((samples / "twins/arm64-pmu/probe-core.json").read_text())
    tol, source = expectations.tolerance_for("arm64-pmu", "instructions") or (None, "")
    assert tol == 0.0001 and "twin" in source
    perf = stat.get("instructions")
    assert perf is not None and perf.value is not None
    verdict = compare_readers("instructions", perf.value, probe.median("instructions") or 0.0, tolerance=tol)
    assert verdict.ok, verdict.line()
    # The same recording is a disagreement under a tolerance ten times tighter than what it showed.
    apart = abs(perf.value - (probe.median("instructions") or 0.0)) / perf.value
    assert not compare_readers("instructions", perf.value, probe.median("instructions") or 0.0,
                               tolerance=apart / 10).ok


def test_arm64_pmu_cpi_is_exactly_one(samples: Path, expectations: Expectations) -> None:
    stat = _stat(samples, "arm64-pmu/perf-stat-core.csv")
    cycles, instructions = stat.get("cycles"), stat.get("instructions")
    assert cycles and instructions and cycles.value and instructions.value
    exact, _ = expectations.cpi_for("arm64-pmu") or (None, "")
    assert exact == 1.0
    verdict = judge_cpi(cycles.value, instructions.value, exact=exact)
    assert verdict.ok and "exactly the expected 1" in verdict.detail
    off = judge_cpi(cycles.value + 1000, instructions.value, exact=exact)
    assert off.status is Status.INCONSISTENT and off.reason is Reason.IMPLAUSIBLE
    assert judge_cpi(cycles.value + 1000, instructions.value).ok  # the loose default bounds would pass it


def test_arm64_pmu_misses_are_not_supported(samples: Path, expectations: Expectations) -> None:
    stat = _stat(samples, "arm64-pmu/perf-stat-misses.csv")
    expected = expectations.for_target("arm64-pmu")
    for event in ("branch-misses", "cache-misses"):
        verdict = judge_counter(stat.get(event), event, CTX)
        assert verdict.reason is Reason.NOT_SUPPORTED, verdict.line()
        assert decide(event, "unavailable", verdict.detail, expected[event]).action == "pass"


def test_arm64_pmu_multiplexing_is_named(samples: Path) -> None:
    stat = _stat(samples, "arm64-pmu/perf-stat-multiplex.csv")
    assert len(stat.counters) == 9
    verdict = judge_multiplexing(stat)
    assert verdict.reason is Reason.MULTIPLEXED
    assert "9 events shared the PMU's counters" in verdict.detail and "77.00-77.00%" in verdict.detail
    two = _stat(samples, "arm64-pmu/perf-stat-core.csv")
    assert judge_multiplexing(two).reason is None  # two events on seven counters: each ran the whole time
    none = _stat(samples, "arm64-pmu/perf-stat-misses.csv")
    assert judge_multiplexing(none).status is Status.UNAVAILABLE


def _partial_verdicts(samples: Path) -> dict[str, object]:
    stat = _stat(samples, "arm64-partial/perf-stat-core.csv")
    probe = parse_probe_output((samples / "twins/arm64-partial/probe-core.json").read_text())
    return {
        "cycles": judge_counter(stat.get("cycles"), "cycles", CTX),
        "instructions": judge_counter(stat.get("instructions"), "instructions", CTX),
        "probe_instructions": judge_errno("instructions", probe.first_errno("instructions") or 0, CTX),
    }


def test_arm64_partial_is_a_partial_pmu(samples: Path, expectations: Expectations) -> None:
    v = _partial_verdicts(samples)
    assert v["cycles"].ok  # type: ignore[attr-defined]
    assert v["instructions"].reason is Reason.NOT_SUPPORTED  # type: ignore[attr-defined]
    assert "ENOENT" in v["probe_instructions"].detail  # type: ignore[attr-defined]
    pmu = judge_pmu([v["cycles"], v["instructions"]])  # type: ignore[list-item]
    assert pmu.reason is Reason.PARTIAL_PMU and not pmu.ok
    assert pmu.detail == "cycles counts; instructions not supported by this PMU"
    state, source = expectations.for_target("arm64-partial")["pmu"]
    assert state == "partial" and "icount" in source
    assert decide("pmu", "partial", pmu.detail, (state, source)).action == "pass"
    assert decide("pmu", "partial", pmu.detail, expectations.for_target("arm64-pmu")["pmu"]).action == "fail"


def test_full_pmu_and_no_pmu_are_not_partial(samples: Path) -> None:
    stat = _stat(samples, "arm64-pmu/perf-stat-core.csv")
    full = judge_pmu([judge_counter(stat.get(e), e, CTX) for e in ("cycles", "instructions")])
    assert full.ok and full.detail == "cycles and instructions count"
    nopmu = PmcContext(core_pmu=False, pmu_devices=("software",), is_root=True)
    absent = judge_pmu([judge_counter(None, e, nopmu) for e in ("cycles", "instructions")])
    assert absent.reason is Reason.NO_PMU


def test_expectation_tolerance_must_be_a_fraction(tmp_path: Path) -> None:
    bad = tmp_path / "e.toml"
    bad.write_text('[[target]]\nmatch = ["x"]\ntolerance = { instructions = 2 }\n')
    with pytest.raises(ValueError, match="tolerance for instructions is 2.0; give a fraction"):
        load_expectations(bad)


def test_more_specific_entry_overrides_tolerance() -> None:
    exp = Expectations.model_validate({"target": [
        {"match": ["arm64-*"], "source": "broad", "tolerance": {"cycles": 0.5}},
        {"match": ["arm64-pmu"], "source": "exact", "tolerance": {"cycles": 0.001}, "cpi": 1.0},
    ]})
    assert exp.tolerance_for("arm64-pmu", "cycles") == (0.001, "exact")
    assert exp.tolerance_for("arm64-partial", "cycles") == (0.5, "broad")
    assert exp.tolerance_for("arm64-partial", "instructions") is None
    assert exp.cpi_for("arm64-partial") is None and exp.cpi_for("arm64-pmu") == (1.0, "exact")


def test_x86_64_twin_is_a_vm_without_a_pmu(samples: Path, expectations: Expectations) -> None:
    """The x86_64 twin (TCG, no PMU) recorded: every core event is "no PMU", by both readers, and the
    expectation says so with the kernel's own line as its evidence."""
    facts = (samples / "twins/x86_64/facts.txt").read_text().splitlines()
    kernel_line = next(ln for ln in facts if "Performance Events:" in ln).split("] ", 1)[1]
    assert kernel_line == "Performance Events: PMU not available due to virtualization, using software events only."
    devices = tuple(ln for ln in facts if re.fullmatch(r"[a-z_]+", ln))
    ctx = PmcContext(core_pmu=False, perf_event_paranoid=3, is_root=True, pmu_devices=devices)
    assert "cpu" not in devices and "software" in devices
    expected = expectations.for_target("x86_64")
    assert kernel_line in expected["pmu"][1]
    verdicts = []
    for rel, events in (("perf-stat-core.csv", ("cycles", "instructions")),
                        ("perf-stat-misses.csv", ("branch-misses", "cache-misses"))):
        stat = _stat(samples, f"x86_64/{rel}")
        for event in events:
            verdict = judge_counter(stat.get(event), event, ctx)
            assert verdict.reason is Reason.NO_PMU, verdict.line()
            assert decide(event, verdict.finding, verdict.detail, expected[event]).action == "pass"
            verdicts.append(verdict)
    unexpected = decide("cycles", verdicts[0].finding, verdicts[0].detail, None)  # a target with no entry
    assert unexpected.action == "xfail" and unexpected.message == (
        "cycles: unavailable and no expectation for this target: /sys/bus/event_source/devices has no cpu PMU "
        "(only breakpoint, kprobe, msr, software, tracepoint, uprobe); a VM without a virtual PMU logs "
        "'Performance Events: PMU not available due to virtualization' in dmesg")
    probe = parse_probe_output((samples / "twins/x86_64/probe-core.json").read_text())
    by_probe = judge_errno("instructions", probe.first_errno("instructions") or 0, ctx)
    assert by_probe.reason is Reason.NO_PMU and by_probe.detail.startswith("perf_event_open failed with ENOENT (2); ")
    pmu = judge_pmu(verdicts)
    assert pmu.reason is Reason.NO_PMU
    assert decide("pmu", pmu.finding, pmu.detail, expected["pmu"]).action == "pass"
    # The arm64-pmu twin's expectation would fail the same recording: the entry is what makes it pass.
    assert decide("pmu", pmu.finding, pmu.detail, expectations.for_target("arm64-pmu")["pmu"]).action == "fail"
