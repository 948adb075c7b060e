"""One verdict vocabulary (checks.verdict) across the PMC, resctrl, CL2 and perf stat judges, on recorded
real outputs: each judge's finding has the state and code the matrix and Allure's categories.json show."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfci import allure_meta
from pytest_perfci.checks import cl2, gpu
from pytest_perfci.checks import pmc as p
from pytest_perfci.checks import resctrl as r
from pytest_perfci.checks.expectations import decide
from pytest_perfci.checks.net import Advertised, judge_latency, judge_throughput, parse_iperf3, parse_sockperf
from pytest_perfci.checks.perf_stat import parse_perf_stat
from pytest_perfci.checks.verdict import CODE_MEANINGS, Finding, State, found, reason_code
from pytest_perfci.collect.cl2 import load_report
from pytest_perfci.models.cpuinfo import parse_cpuinfo
from pytest_perfci.results.model import Infrastructure, ResultRecord
from pytest_perfci.results.states import cell_verdict, message_code

SAMPLES = Path(__file__).parent / "data" / "samples"
FC = SAMPLES / "pmc/local-firecracker-amd-vm-nopmu"
NO_RESCTRL = ("sysfs", "proc", "ext4", "xfs")


@pytest.mark.parametrize("reason", [*p.Reason, *r.Reason, *gpu.Reason],
                         ids=lambda x: f"{type(x).__module__.split('.')[-1]}:{x.name}")
def test_every_judge_reason_has_a_known_code_that_its_sentence_also_reads_as(
        reason: p.Reason | r.Reason | gpu.Reason) -> None:
    """A record written before judges named codes carries only the sentence: it must read as the same code."""
    assert reason.code in CODE_MEANINGS
    assert reason_code(reason.value) == reason.code


def test_categories_json_has_a_category_for_every_code() -> None:
    names = " ".join(c["name"] for c in allure_meta.categories())
    missing = [code for code in CODE_MEANINGS if code not in names]
    assert missing == []


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reason code 'NOPE'"):
        found(State.ABSENT, "NOPE")


# --- PMC on recorded perf stat outputs ------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "event", "state", "code"), [
    ("pmc/public/ravel-844-ec2-r6a-4xlarge-not-supported.txt", "cycles", State.ABSENT, "UNSUPPORTED"),
    ("pmc/public/netdata-3232-perf-stat-I-multiplexed-std.txt", "cycles", State.ABSENT, "MULTIPLEXED"),
    ("pmc/public/benchkit-109-perf-stat-j-o-file-multiplexed-truncated.jsonl", "cpu-migrations", State.ZERO, "ZERO"),
    ("pmc/public/aws-graviton-c6g-2xlarge-perf-stat-std.txt", "cycles", State.AVAILABLE, ""),
])
def test_pmc_findings_on_recorded_perf_stat(rel: str, event: str, state: State, code: str) -> None:
    stat = parse_perf_stat((SAMPLES / rel).read_text()).select(0)
    v = p.judge_counter(stat.get(event), event)
    assert (v.finding.state, v.finding.code) == (state, code)
    assert v.finding.detail == v.line()


def test_pmc_no_pmu_on_the_recorded_firecracker_vm() -> None:
    ctx = p.PmcContext(core_pmu=False, perf_event_paranoid=2, is_root=True,
                       pmu_devices=("breakpoint", "msr", "software", "tracepoint", "uprobe"))
    stat = parse_perf_stat((FC / "perf-stat-x-cycles-instructions.stderr").read_text())
    findings = [v.finding for v in p.judge_perf_stat(stat, ctx=ctx)]
    assert [(f.state, f.code) for f in findings] == [(State.ABSENT, "NO-PMU")] * 2
    # the expectations file's words: an absence is "unavailable", so a metal expectation fails naming both
    out = decide("cycles", findings[0], findings[0].detail, ("available", "metal"))
    assert out.action == "fail" and "expected available [metal], observed unavailable" in out.message


def test_pmc_readers_that_disagree_fail_whatever_was_expected() -> None:
    v = p.compare_readers("instructions", 1_000_000.0, 1_500_000.0, tolerance=0.02)
    assert (v.finding.state, v.finding.code) == (State.FAILED, "DISAGREE")
    assert decide("instructions", v.finding, v.detail, None).action == "fail"


def test_pmc_partial_pmu_and_one_reader() -> None:
    ns = p.Verdict(event="cycles", status=p.Status.UNAVAILABLE, reason=p.Reason.NOT_SUPPORTED)
    ok = p.Verdict(event="instructions", status=p.Status.AVAILABLE, value=5.0)
    pmu = p.judge_pmu([ns, ok])
    assert (pmu.finding.state, pmu.finding.code, pmu.finding.expectation_word) == (State.PARTIAL, "PARTIAL", "partial")
    one = p.one_reader("cycles", 1e6, p.PmcContext(perf_installed=False))
    assert (one.finding.state, one.finding.code) == (State.ONE_READER, "ONE-READER")


def test_perf_stat_counter_words_map_onto_the_vocabulary() -> None:
    stat = parse_perf_stat((FC / "perf-stat-x-interval.stderr").read_text())
    slept = next(c for c in stat.counters if c.status == "not_counted")
    assert (slept.finding.state, slept.finding.code) == (State.ABSENT, "NOT-COUNTED")
    counted = next(c for c in stat.counters if c.status == "counted")
    assert counted.finding.ok
    unsupported = parse_perf_stat((FC / "perf-stat-x-cycles-instructions.stderr").read_text()).get("cycles")
    assert unsupported is not None and unsupported.finding.code == "UNSUPPORTED"


# --- resctrl on recorded cpuinfo and selftest runs ----------------------------------------------------------


@pytest.mark.parametrize(("rel", "filesystems", "code"), [
    ("pmc/cpuinfo/ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt", NO_RESCTRL, "NO-HW"),
    ("resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt", NO_RESCTRL, "NO-KERNEL"),
    ("resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt", (*NO_RESCTRL, "resctrl"), "NO-MOUNT"),
    ("pmc/cpuinfo/ec2-graviton3-c7g-head-cpuinfo.txt", NO_RESCTRL, "N/A"),
])
def test_resctrl_availability_findings(rel: str, filesystems: tuple[str, ...], code: str) -> None:
    a = r.judge_availability(parse_cpuinfo((SAMPLES / rel).read_text()), filesystems)
    assert (a.finding.state, a.finding.code, a.finding.detail) == (State.ABSENT, code, a.line())
    assert decide("resctrl", a.finding, a.line(), None).action == "xfail"  # an absence, accepted without expectation


@pytest.mark.parametrize(("rel", "filesystems", "codes"), [
    # (rdt_hardware, resctrl_kernel, resctrl_mount)
    ("pmc/cpuinfo/ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt", NO_RESCTRL, ("NO-HW", "NO-KERNEL", "NO-KERNEL")),
    ("resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt", NO_RESCTRL, ("", "NO-KERNEL", "NO-KERNEL")),
    ("resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt", (*NO_RESCTRL, "resctrl"), ("", "", "NO-MOUNT")),
    ("resctrl/cpuinfo/intel-cmt-cat-108-bare-metal-xeon-gold-6252-truncated.txt", None, ("", "UNKNOWN", "UNKNOWN")),
    ("pmc/cpuinfo/ec2-graviton3-c7g-head-cpuinfo.txt", NO_RESCTRL, ("N/A", "N/A", "N/A")),
])
def test_resctrl_parts_on_recorded_cpuinfo(rel: str, filesystems: tuple[str, ...] | None,
                                           codes: tuple[str, str, str]) -> None:
    a = r.judge_availability(parse_cpuinfo((SAMPLES / rel).read_text()), filesystems)
    parts = a.parts
    assert list(parts) == ["rdt_hardware", "resctrl_kernel", "resctrl_mount"]
    assert tuple(f.code for f in parts.values()) == codes
    for f in parts.values():
        assert f.state is (State.AVAILABLE if not f.code else State.ABSENT)
        assert f.detail, "every part says why"
        if f.code:  # a record written before parts had findings reads the same code from its sentence
            assert reason_code(f.detail) == f.code, f.detail


def test_resctrl_effects_from_recorded_selftests() -> None:
    busy = r.parse_selftest_tap((SAMPLES / "resctrl/selftests/resctrl_tests-6.18-rc1-busy-system-cmt-fail.tap")
                                .read_text()).case("CMT")
    nums = r.selftest_numbers(busy)
    cmt = r.judge_cmt(nums["Average LLC val"][0], nums["Cache span (bytes)"][0])
    assert (cmt.finding.state, cmt.finding.code) == (State.FAILED, "IMPLAUSIBLE")
    flat = r.judge_mba_trend([(10, 6400.0), (50, 6400.0), (100, 6400.0)])
    assert (flat.finding.state, flat.finding.code) == (State.FAILED, "NO-EFFECT")
    pair = r.judge_bandwidth_pair(1000.0, 2000.0)
    assert (pair.finding.state, pair.finding.code) == (State.FAILED, "DISAGREE")


# --- CL2 on recorded reports --------------------------------------------------------------------------------


def test_cl2_findings_on_recorded_reports() -> None:
    passing = cl2.judge(load_report(SAMPLES / "cl2/ol-cl2-load-pass"))
    by = {x.name: x.finding for x in passing.results}
    assert (by["pod_startup_p99"].state, by["pod_startup_p99"].code) == (State.FAILED, "SLO")
    assert by["api_single_object_p99"].ok and by["scheduling_throughput_max"].ok  # info: measured, no limit
    assert (passing.finding.state, passing.finding.code) == (State.FAILED, "SLO")
    failed = cl2.judge(load_report(SAMPLES / "cl2/ol-cl2-load-prom-fail"))
    assert {x.finding.code for x in failed.results} == {"NO-DATA"}
    assert (failed.finding.state, failed.finding.code) == (State.FAILED, "CL2-FAILED")
    zero = cl2.judge(load_report(SAMPLES / "cl2/constructed-pod-startup-p99-zero"))
    assert next(x.finding for x in zero.results if x.name == "pod_startup_p99").code == "INVALID"
    junit_only = cl2.judge(load_report(SAMPLES / "cl2/ol-cl2-density-junit-only"))
    assert (junit_only.finding.state, junit_only.finding.code) == (State.FAILED, "NO-DATA")


def test_cl2_regression_alone_reads_regression() -> None:
    report = load_report(SAMPLES / "cl2/ol-cl2-load-pass")
    relaxed = {"pod_startup_p99": 1000.0, "network_programming_p99": 1000.0}
    base = {x.name: x.measured for x in cl2.judge(report, relaxed).results if x.measured}
    faster = {k: v / 2 for k, v in base.items()}
    verdict = cl2.judge(report, relaxed, faster)
    assert (verdict.finding.state, verdict.finding.code) == (State.FAILED, "REGRESSION")


# --- network judges on recorded iperf3/sockperf outputs -----------------------------------------------------


def test_net_findings_on_recorded_outputs() -> None:
    one = parse_iperf3((SAMPLES / "net/iperf3-netns-1stream.json").read_text())
    assert judge_throughput(one, None, cluster_placement=False).finding.ok  # no advertised figure: recorded
    four = parse_iperf3((SAMPLES / "net/iperf3-netns-4streams.json").read_text())
    fast = Advertised(instance_type="x.large", baseline_gbps=four.received_gbps * 10)  # held to the baseline
    below = judge_throughput(four, fast, cluster_placement=True).finding
    assert (below.state, below.code) == (State.FAILED, "BELOW") and "below" in below.detail
    rtt = parse_sockperf((SAMPLES / "net/sockperf-netns-tcp-rtt.txt").read_text())
    assert judge_latency(rtt).finding.ok
    broken = judge_latency(rtt.model_copy(update={"observations": 0}))
    assert (broken.finding.state, broken.finding.code) == (State.FAILED, "INVALID")


# --- the matrix takes the judge's finding -------------------------------------------------------------------


def _cell(finding: Finding | None, outcome: str, detail: str, message: str = "") -> ResultRecord:
    meta: dict[str, object] = {"detail": detail}
    if finding is not None:
        meta |= {"state": finding.state.value, "code": finding.code}
    if message:
        meta["message"] = message
    return ResultRecord(name="cycles", kind="capability", verdict="pass" if finding and finding.ok else "unavailable",
                        outcome=outcome, metadata=meta, infrastructure=Infrastructure(target="t"))


def test_matrix_cell_uses_the_judges_state_and_code() -> None:
    # a sentence the patterns cannot read ("OTHER", "absent"): the judge's finding says zero
    f = found(State.ZERO, "ZERO", "cycles: 0 over 3 runs")
    v = cell_verdict(_cell(f, "xfailed", "0 over 3 runs"))
    assert (v.state, v.code) == (State.ZERO, "ZERO")
    without = cell_verdict(_cell(None, "xfailed", "0 over 3 runs"))
    assert (without.state, without.code) == (State.ABSENT, "OTHER")  # old records: what the sentence says


def test_matrix_failed_cell_takes_the_judges_code_over_expected() -> None:
    f = found(State.ABSENT, "NO-MOUNT", "odd words")
    v = cell_verdict(_cell(f, "failed", "odd words", "expected available [metal], observed unavailable: odd words"))
    assert (v.state, v.code) == (State.FAILED, "NO-MOUNT")


def test_allure_code_reads_like_a_failed_cell_and_falls_back_to_the_judge() -> None:
    # the expected side must not name the code: "expected zero" observed available is a mismatch, not ZERO
    assert message_code("cache-misses: expected zero [intel docs], observed available: 12 counted", []) == "EXPECTED"
    assert message_code("cycles: expected available [metal], observed unavailable: no hardware PMU exposed: x",
                        ["NO-PMU"]) == "NO-PMU"
    assert message_code("resctrl: expected available, observed unavailable: odd words", ["NO-MOUNT"]) == "NO-MOUNT"
    assert message_code("cycles: unavailable and no expectation for this target: no hardware PMU exposed", []) == "NO-PMU"
    assert message_code("something nobody knows", []) == "OTHER"
