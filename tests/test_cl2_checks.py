"""CL2 artifact parsing and SLO verdicts on every recorded sample (tests/data/samples/cl2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.checks import cl2
from pytest_perfci.collect.cl2 import load_report

SAMPLES = Path(__file__).parent / "data" / "samples" / "cl2"
PASS = SAMPLES / "ol-cl2-load-pass"
FAIL = SAMPLES / "ol-cl2-load-prom-fail"
STAMP = "2026-03-14T17:33:07+09:00"


def one(directory: Path, prefix: str) -> Path:
    [path] = [p for p in directory.iterdir() if p.name.startswith(prefix)]
    return path


def test_file_names_are_split_from_the_right() -> None:
    name = cl2.parse_report_name(f"PodStartupLatency_CreatePhasePodStartupLatency_load_{STAMP}.json")
    assert name is not None
    assert (name.summary, name.test, name.timestamp) == ("PodStartupLatency_CreatePhasePodStartupLatency", "load", STAMP)
    assert name.measurement == "PodStartupLatency" and name.identifier == "CreatePhasePodStartupLatency"
    assert name.time is not None and name.time.utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    api = cl2.parse_report_name(f"APIResponsivenessPrometheus_simple_load_{STAMP}.json")
    assert api is not None and (api.measurement, api.identifier, api.test) == ("APIResponsivenessPrometheus",
                                                                               "simple", "load")
    utc = cl2.parse_report_name("SchedulingThroughput_density_2024-01-02T03:04:05Z.json")
    assert utc is not None and utc.test == "density"
    for other in ("junit.xml", "generatedConfig_load.yaml", "cl2-metadata.json", "Foo_bar_notatime.json"):
        assert cl2.parse_report_name(other) is None


def test_junit_pass_counts_testcases_because_tests_attr_is_always_zero() -> None:
    junit = cl2.parse_junit((PASS / "junit.xml").read_text())
    assert junit.suite == "ClusterLoaderV2" and len(junit.cases) == 35 and junit.ok
    assert junit.overall is not None and junit.overall.name == "load overall (testing/load/config.yaml)"
    assert junit.cases[13].name == "load: [step: 05] Starting measurement for 'create objects' [00] - "  # &#39; decoded


def test_junit_fail_keeps_failure_text_without_cl2_framing() -> None:
    junit = cl2.parse_junit((FAIL / "junit.xml").read_text())
    assert not junit.ok and junit.failures_attr == 4 and len(junit.failed) == 4
    npl = next(c for c in junit.failed if "NetworkProgrammingLatency" in c.name)
    assert npl.message == ("measurement call NetworkProgrammingLatency - NetworkProgrammingLatency error: "
                           "got unexpected number of samples: 0")
    assert junit.overall is not None and junit.overall.message.count("measurement call") == 3  # type: ignore[union-attr]


def test_junit_that_is_not_xml_is_a_parse_error() -> None:
    with pytest.raises(cl2.Cl2ParseError):
        cl2.parse_junit("<testsuite")


def test_pod_startup_version_1_0_pod_startup_item_in_seconds() -> None:
    path = one(PASS, "PodStartupLatency_")
    version, items = cl2.parse_perfdata(path.read_text())
    assert version == "1.0" and [i.labels["Metric"] for i in items][-1] == "pod_startup"
    [m] = cl2.measurements_from(path.name, path.read_text())
    assert m.metric == "pod_startup_p99" and m.value == pytest.approx(76.277905)


def test_api_responsiveness_labels_are_strings_and_count_zero_is_skipped() -> None:
    path = one(PASS, "APIResponsivenessPrometheus_simple")
    version, items = cl2.parse_perfdata(path.read_text())
    assert version == "v1" and len(items) == 248
    assert sum(i.labels["Count"] == "0" for i in items) == 154
    found = cl2.measurements_from(path.name, path.read_text())
    assert all("/livez" not in m.what and "/readyz" not in m.what for m in found)  # Scope "" is not in the SLO
    assert len(found) == 248 - 154 - 2
    single = max((m for m in found if m.metric == "api_single_object_p99"), key=lambda m: m.value)
    assert single.value == pytest.approx(0.067999999) and single.what.startswith("POST deployments")
    assert {m.metric for m in found} == {"api_single_object_p99", "api_list_namespace_p99", "api_list_cluster_p99"}


def test_scheduling_throughput_both_variants() -> None:
    path = one(PASS, "SchedulingThroughputPrometheus_")
    assert cl2.parse_scheduling_throughput(path.read_text()) == {"max": 5.6}
    # The SchedulingThroughput measurement's own shape (perf-tests scheduling_throughput.go json tags).
    legacy = json.dumps({"perc50": 3.0, "perc90": 8.5, "perc99": 9.9, "max": 12.0})
    [m] = cl2.measurements_from(f"SchedulingThroughput_density_{STAMP}.json", legacy)
    assert (m.metric, m.value, m.unit) == ("scheduling_throughput_max", 12.0, "pods/s")


def test_network_programming_latency_over_the_default_threshold() -> None:
    path = one(PASS, "NetworkProgrammingLatency_")
    [m] = cl2.measurements_from(path.name, path.read_text())
    assert m.value == pytest.approx(63.960208359)


def test_verdict_cl2_passed_but_our_slos_fail() -> None:
    verdict = cl2.judge(load_report(PASS))
    assert verdict.junit is not None and verdict.junit.ok  # CL2 itself said "pass"
    assert not verdict.ok
    assert [r.name for r in verdict.violations] == ["pod_startup_p99", "network_programming_p99"]
    reasons = verdict.reasons()
    assert reasons[0].startswith("SLO violated: pod_startup_p99: 76.278 s > 5 s")
    by = {r.name: r for r in verdict.results}
    assert by["api_single_object_p99"].status == "pass" and by["api_list_cluster_p99"].status == "pass"
    assert by["scheduling_throughput_max"].status == "info"


def test_verdict_on_the_failed_run_names_cl2_failures_and_has_no_slo_data() -> None:
    verdict = cl2.judge(load_report(FAIL))
    assert not verdict.ok and verdict.cl2_failed and verdict.violations == []
    assert {r.status for r in verdict.results} == {"no data"}
    assert "CL2 reported 4 failure(s) in junit.xml" in verdict.reasons()


def test_perfdash_config_sample_is_not_a_report() -> None:
    assert not load_report(SAMPLES / "perfdash-config").is_cl2


def test_slo_overrides_and_off() -> None:
    overrides = cl2.parse_slo_overrides(["pod_startup_p99=90", "network_programming_p99=off",
                                         "api_single_object_p99=500ms"])
    assert overrides == {"pod_startup_p99": 90.0, "network_programming_p99": None, "api_single_object_p99": 0.5}
    verdict = cl2.judge(load_report(PASS), overrides)
    assert verdict.ok
    for bad, msg in (("pod=1", "unknown SLO"), ("pod_startup_p99", "NAME=VALUE"), ("pod_startup_p99=x", "not a number"),
                     ("pod_startup_p99=-1", ">= 0")):
        with pytest.raises(ValueError, match=msg):
            cl2.parse_slo_overrides([bad])


def test_floor_on_scheduling_throughput() -> None:
    verdict = cl2.judge(load_report(PASS), {"scheduling_throughput_max": 10, "pod_startup_p99": None,
                                            "network_programming_p99": None})
    [bad] = verdict.violations
    assert bad.line().startswith("scheduling_throughput_max: 5.6 pods/s < 10 pods/s")


def test_baseline_regression_beyond_tolerance_fails_even_within_the_limit() -> None:
    relaxed = {"pod_startup_p99": 100.0, "network_programming_p99": 100.0}
    base_doc = cl2.verdict_json(cl2.judge(load_report(PASS), relaxed))
    baseline = cl2.parse_baseline(json.dumps(base_doc))
    assert baseline["pod_startup_p99"] == pytest.approx(76.277905)
    assert cl2.judge(load_report(PASS), relaxed, baseline).ok  # same run: no regression
    faster = {**baseline, "pod_startup_p99": 50.0}
    verdict = cl2.judge(load_report(PASS), relaxed, faster)
    [reg] = verdict.violations
    assert reg.name == "pod_startup_p99" and reg.regression and "REGRESSION" in reg.line()
    assert cl2.judge(load_report(PASS), relaxed, faster, tolerance=0.6).ok
    assert cl2.parse_baseline('{"metrics": {"pod_startup_p99": 4}}') == {"pod_startup_p99": 4.0}
    with pytest.raises(ValueError):
        cl2.parse_baseline("[]")


def test_unreadable_summary_is_noted_not_fatal() -> None:
    report = cl2.read_report({f"PodStartupLatency_x_load_{STAMP}.json": "{not json",
                              "junit.xml": (PASS / "junit.xml").read_text()})
    verdict = cl2.judge(report)
    assert report.is_cl2 and verdict.notes and "not JSON" in verdict.notes[0]


# --- issue 14: CL2 outputs that were misread ---------------------------------------------------

DENSITY = SAMPLES / "ol-cl2-density-stateless"


def test_stateless_pod_startup_summaries_are_judged() -> None:
    """Real density run (ol-cl2): only Stateless*/Stateful* summaries. Before: pod_startup "no data"."""
    report = load_report(DENSITY)
    pods = [m for m in report.measurements if m.metric == "pod_startup_p99"]
    # the two Stateless files count; the Stateful ones (every percentile 0: no stateful pods) do not
    assert sorted(round(m.value, 6) for m in pods) == [1.793754, 46.459652]
    assert all(m.source.startswith("StatelessPodStartupLatency_") for m in pods)
    verdict = cl2.judge(report)
    assert [r.name for r in verdict.violations] == ["pod_startup_p99"]
    assert verdict.violations[0].what == "pod_startup P99 (Stateless SaturationPodStartupLatency)"


@pytest.mark.parametrize("kind", ["PodStartupLatency", "StatelessPodStartupLatency", "MatchAllPodStartupLatency"])
def test_every_pod_startup_summary_name_is_read(kind: str) -> None:
    text = (PASS / "PodStartupLatency_CreatePhasePodStartupLatency_load_2026-03-14T17:33:07+09:00.json").read_text()
    got = cl2.measurements_from(f"{kind}_CreatePhasePodStartupLatency_load_2026-03-14T17:33:07+09:00.json", text)
    assert [(m.metric, round(m.value, 6)) for m in got] == [("pod_startup_p99", 76.277905)]


def test_stateful_summary_is_not_the_stateless_slo() -> None:
    text = (PASS / "PodStartupLatency_CreatePhasePodStartupLatency_load_2026-03-14T17:33:07+09:00.json").read_text()
    assert cl2.measurements_from("StatefulPodStartupLatency_X_load_2026-03-14T17:33:07+09:00.json", text) == []


def test_pod_startup_zero_below_its_own_phases_is_not_a_pass() -> None:
    """P99 0 s while schedule_to_watch P99 is 70.5 s (the real file with pod_startup zeroed)."""
    verdict = cl2.judge(load_report(SAMPLES / "constructed-pod-startup-p99-zero"))
    pod = next(r for r in verdict.results if r.name == "pod_startup_p99")
    assert pod.status == "invalid" and pod.measured is None and not verdict.ok
    assert "below its own phase schedule_to_watch P99 70.535 s" in pod.what


def test_inconsistent_value_beside_a_sound_one_is_noted_not_used() -> None:
    good = (PASS / "PodStartupLatency_CreatePhasePodStartupLatency_load_2026-03-14T17:33:07+09:00.json").read_text()
    bad_dir = SAMPLES / "constructed-pod-startup-p99-zero"
    bad = next(bad_dir.iterdir()).read_text()
    report = cl2.read_report({"PodStartupLatency_A_load_2026-03-14T17:33:07+09:00.json": bad,
                              "PodStartupLatency_B_load_2026-03-14T17:33:07+09:00.json": good})
    verdict = cl2.judge(report, {"pod_startup_p99": 90.0})
    pod = next(r for r in verdict.results if r.name == "pod_startup_p99")
    assert pod.status == "pass" and pod.measured == pytest.approx(76.277905)
    assert any("PodStartupLatency_A_" in n and "internally inconsistent" in n for n in verdict.notes)


def test_junit_only_report_is_not_every_slo_holds() -> None:
    """A passing junit.xml and no summary: before, "every SLO holds" with exit 0."""
    verdict = cl2.judge(load_report(SAMPLES / "ol-cl2-density-junit-only"))
    assert verdict.junit is not None and verdict.junit.ok
    assert verdict.unmeasured and not verdict.ok
    assert any("nothing shows that the SLOs hold" in r for r in verdict.reasons())
