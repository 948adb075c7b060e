"""`perfci cl2 judge` on the recorded CL2 reports: table, JSON, exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_perfci.cli import main

SAMPLES = Path(__file__).parent / "data" / "samples" / "cl2"


def test_pass_sample_prints_the_table_and_fails_on_pod_startup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-load-pass")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["SLO", "MEASURED", "LIMIT", "BASELINE", "RESULT", "WORST", "/", "SOURCE"]
    assert "pod_startup_p99            76.278 s" in out and "FAIL" in out
    assert "CL2: passed (35 testcases, 0 failed)" in out
    assert "overall: 2 SLO(s) violated" in out


def test_overrides_make_it_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cl2", "judge", str(SAMPLES / "ol-cl2-load-pass"), "--slo", "pod_startup_p99=90",
                 "--slo", "network_programming_p99=off"])
    assert code == 0 and "overall: every SLO holds" in capsys.readouterr().out


def test_json_and_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-load-pass"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1 and doc["cl2"]["ok"] and doc["cl2"]["testcases"] == 35
    pod = next(s for s in doc["slos"] if s["name"] == "pod_startup_p99")
    assert pod["status"] == "fail" and pod["measured"] == pytest.approx(76.277905) and pod["limit"] == 5.0
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps({"metrics": {"api_single_object_p99": 0.01}}))
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-load-pass"), "--baseline", str(base),
                 "--slo", "pod_startup_p99=off", "--slo", "network_programming_p99=off"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (regression)" in out and "api_single_object_p99" in out


def test_failed_cl2_run_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-load-prom-fail")]) == 1
    out = capsys.readouterr().out
    assert "CL2: FAILED (35 testcases, 4 failed)" in out and "CL2 itself reported failures" in out


def test_not_a_report_and_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "perfdash-config")]) == 2
    assert "not a CL2 report" in capsys.readouterr().err
    assert main(["cl2", "judge", str(tmp_path / "missing")]) == 2
    report = tmp_path / "r"
    shutil.copytree(SAMPLES / "ol-cl2-load-pass", report)
    assert main(["cl2", "judge", str(report), "--slo", "nope=1"]) == 2
    assert "unknown SLO" in capsys.readouterr().err
    assert main(["cl2", "judge", str(report), "--baseline", str(tmp_path / "none.json")]) == 2


def test_junit_only_report_exits_1_not_every_slo_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-density-junit-only")]) == 1
    out = capsys.readouterr().out
    assert "overall: no SLO was measured, so none is shown to hold" in out and "every SLO holds" not in out


def test_inconsistent_pod_startup_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "constructed-pod-startup-p99-zero")]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "overall: 1 SLO(s) with an inconsistent measurement" in out


def test_stateless_only_report_fails_on_pod_startup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cl2", "judge", str(SAMPLES / "ol-cl2-density-stateless")]) == 1
    out = capsys.readouterr().out
    assert "pod_startup_p99            46.46 s" in out and "overall: 1 SLO(s) violated" in out
