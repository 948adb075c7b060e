"""CL2 runner against the clusterloader2 stand-in, and the perfdash-layout export (local and S3)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.collect.cl2 import (
    Cl2InfrastructureError,
    PacedEmitter,
    cl2_command,
    export_perfdash,
    load_report,
    run_cl2,
    upload_tree,
    write_overrides,
)
from pytest_perfci.models.s3url import parse_s3_url
from tests.moto_server import MotoServer

STANDINS = Path(__file__).parent / "standins"
SAMPLES = Path(__file__).parent / "data" / "samples" / "cl2"
STAMP = "2026-03-14T17:33:07+09:00"


@pytest.fixture
def cl2_env(tmp_path: Path) -> dict[str, Any]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    testconfig = tmp_path / "config.yaml"
    testconfig.write_text("name: load\n")
    overrides = write_overrides({"CL2_PODS_PER_NODE": 5, "CL2_ENABLE_PVS": False}, tmp_path / "overrides.yaml")
    env = {**os.environ, "PATH": f"{STANDINS}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = cl2_command("clusterloader2", testconfig, kubeconfig=kubeconfig, nodes=3, report_dir=tmp_path / "report",
                      overrides=[overrides])
    return {"env": env, "cmd": cmd, "report": tmp_path / "report", "log": tmp_path / "cl2.log"}


def test_overrides_file_is_yaml_scalars(tmp_path: Path) -> None:
    path = write_overrides({"CL2_A": 5, "CL2_B": False, "CL2_C": "x y"}, tmp_path / "o.yaml")
    assert path.read_text() == 'CL2_A: 5\nCL2_B: false\nCL2_C: "x y"\n'
    with pytest.raises(ValueError):
        write_overrides({"bad-name": 1}, tmp_path / "p.yaml")


def test_command_has_the_real_flags(tmp_path: Path) -> None:
    cmd = cl2_command("cl2", "cfg.yaml", kubeconfig=tmp_path / "k", nodes=100, report_dir=tmp_path / "r",
                      overrides=[tmp_path / "o.yaml"])
    for flag in ("--testconfig=cfg.yaml", f"--testoverrides={tmp_path / 'o.yaml'}", "--provider=aws",
                 f"--kubeconfig={tmp_path / 'k'}", "--nodes=100", f"--report-dir={tmp_path / 'r'}",
                 "--enable-prometheus-server=true", "--tear-down-prometheus-server=true"):
        assert flag in cmd


def test_successful_run_streams_at_a_readable_pace(cl2_env: dict[str, Any]) -> None:
    lines: list[str] = []
    run = run_cl2(cl2_env["cmd"], report_dir=cl2_env["report"], log_path=cl2_env["log"], emit=lines.append,
                  env=cl2_env["env"])
    assert run.exit_code == 0 and run.has_junit
    logged = cl2_env["log"].read_text().splitlines()
    assert len(lines) < len(logged)  # the chatty wait lines are held back, not lost
    assert any("Step \"create objects\" started" in ln for ln in lines)
    assert any("line(s) in the log" in ln for ln in lines)
    assert "CL2_PODS_PER_NODE: 5" in (cl2_env["report"] / "generatedConfig_load.yaml").read_text()
    report = load_report(cl2_env["report"])
    assert report.junit is not None and report.junit.ok and len(report.measurements) > 90


def test_exit_1_with_junit_is_returned_for_judging(cl2_env: dict[str, Any]) -> None:
    env = {**cl2_env["env"], "PERFCI_STANDIN_CL2_SAMPLE": "ol-cl2-load-prom-fail"}
    run = run_cl2(cl2_env["cmd"], report_dir=cl2_env["report"], log_path=cl2_env["log"], emit=lambda _: None, env=env)
    assert run.exit_code == 1 and run.has_junit
    assert any("tests have failed" in ln for ln in run.tail)


def test_crash_without_junit_is_an_infrastructure_error(cl2_env: dict[str, Any]) -> None:
    env = {**cl2_env["env"], "PERFCI_STANDIN_CL2_MODE": "crash"}
    with pytest.raises(Cl2InfrastructureError, match="exited 2 without writing") as info:
        run_cl2(cl2_env["cmd"], report_dir=cl2_env["report"], log_path=cl2_env["log"], emit=lambda _: None, env=env)
    assert "panic: runtime error" in str(info.value)


def test_bad_flag_and_missing_binary_are_infrastructure_errors(cl2_env: dict[str, Any]) -> None:
    with pytest.raises(Cl2InfrastructureError, match="exited 2"):
        run_cl2([*cl2_env["cmd"], "--no-such-flag"], report_dir=cl2_env["report"], log_path=cl2_env["log"],
                emit=lambda _: None, env=cl2_env["env"])
    assert "flag provided but not defined: -no-such-flag" in cl2_env["log"].read_text()
    with pytest.raises(Cl2InfrastructureError, match="could not start"):
        run_cl2(["/nonexistent/clusterloader2"], report_dir=cl2_env["report"], log_path=cl2_env["log"],
                emit=lambda _: None)


def test_paced_emitter_holds_chatter_and_passes_errors() -> None:
    now = [0.0]
    out: list[str] = []
    paced = PacedEmitter(out.append, interval=2.0, clock=lambda: now[0])
    paced("I0101 first")
    paced("I0101 chatter")
    paced("E0101 something broke")
    now[0] = 5.0
    paced("I0101 later")
    assert out == ["cl2: I0101 first", "cl2: E0101 something broke (+1 line(s) in the log)", "cl2: I0101 later"]


def test_export_layout_names_unchanged_and_job_yaml(tmp_path: Path) -> None:
    src = SAMPLES / "ol-cl2-load-pass"
    artifacts = export_perfdash(src, tmp_path / "out", "scale-100-main", 20260314173307)
    assert artifacts == tmp_path / "out" / "logs" / "scale-100-main" / "20260314173307" / "artifacts"
    assert sorted(p.name for p in artifacts.iterdir()) == sorted(p.name for p in src.iterdir())
    assert (artifacts / f"PodStartupLatency_CreatePhasePodStartupLatency_load_{STAMP}.json").read_bytes() == \
        (src / f"PodStartupLatency_CreatePhasePodStartupLatency_load_{STAMP}.json").read_bytes()
    job = (tmp_path / "out" / "perfdash-config" / "scale-100-main.yaml").read_text()
    # the same shape as cilium/scaffolding's perfdash config (sample perfdash-config/tests.yaml)
    sample = (SAMPLES / "perfdash-config" / "tests.yaml").read_text()
    assert job.splitlines()[0] == sample.splitlines()[0]
    assert '  - "perfDashPrefix: scale-100-main" # Just the name what to display in perfdash' in job
    assert '  - "perfDashJobType: performance" # Type of metrics to display' in sample.splitlines()
    assert '  - "perfDashJobType: performance" # Type of metrics to display' in job.splitlines()
    with pytest.raises(ValueError):
        export_perfdash(src, tmp_path / "out", "../escape", 1)


def test_upload_to_s3_keeps_the_layout(moto: MotoServer, tmp_path: Path) -> None:
    s3: Any = moto.client("s3")
    s3.create_bucket(Bucket="perfdash-bucket")
    export_perfdash(SAMPLES / "ol-cl2-load-pass", tmp_path / "out", "perfci-cl2", 7)
    keys = upload_tree(tmp_path / "out", "s3://perfdash-bucket/ci", s3)
    assert f"ci/logs/perfci-cl2/7/artifacts/APIResponsivenessPrometheus_simple_load_{STAMP}.json" in keys
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="perfdash-bucket")["Contents"]]
    assert sorted(listed) == sorted(keys) and "ci/perfdash-config/perfci-cl2.yaml" in listed
    assert parse_s3_url("s3://b-1") == ("b-1", "")
    with pytest.raises(ValueError):
        parse_s3_url("https://example.com/x")
