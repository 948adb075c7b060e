"""suites/cl2 end to end: pytest in a subprocess, kops and clusterloader2 stand-ins first on PATH,
kops state, node instances and the perfdash export in a moto server. The cluster must be deleted
in every case: SLO pass, SLO fail, CL2 failure, CL2 crash, SIGTERM while validating."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.cleanup.ledger import Ledger
from tests.moto_server import MotoServer

ROOT = Path(__file__).resolve().parent.parent
STANDINS = Path(__file__).parent / "standins"
BUCKET = "perfci-cl2-suite"


@pytest.fixture
def suite(moto: MotoServer, tmp_path: Path) -> dict[str, Any]:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    testconfig = tmp_path / "config.yaml"
    testconfig.write_text("name: load\nsteps: []\n")
    env = {**os.environ, **moto.env(),
           "PATH": f"{STANDINS}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PERFCI_STANDIN_LOG": str(tmp_path / "calls.jsonl"), "PERFCI_STANDIN_KOPS_INTERVAL": "0.05"}
    env.pop("KOPS_STATE_STORE", None)
    results = tmp_path / "results"
    args = [sys.executable, "-m", "pytest", "suites/cl2", "-p", "no:cacheprovider", "-q", "-rA",
            "--provider=kops", "--node-size=c7i.2xlarge", "--nodes=2", "--zones=us-east-1a",
            f"--perfci-kops-state=s3://{BUCKET}/state", f"--cl2-testconfig={testconfig}",
            f"--perfci-results={results}", "--perfci-run-id=perfci-suite-1", "--region=us-east-1"]
    return {"env": env, "args": args, "results": results, "s3": s3, "log": tmp_path / "calls.jsonl"}


def run(suite: dict[str, Any], *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*suite["args"], *extra], cwd=ROOT, env={**suite["env"], **env}, capture_output=True,
                          text=True, timeout=240, check=False)


def kops_verbs(suite: dict[str, Any]) -> list[str]:
    lines = suite["log"].read_text().splitlines() if suite["log"].exists() else []
    return [" ".join(e["argv"][:2]) for e in map(json.loads, lines) if e["prog"] == "kops"]


def assert_cluster_gone(suite: dict[str, Any]) -> None:
    keys = [o["Key"] for o in suite["s3"].list_objects_v2(Bucket=BUCKET, Prefix="state/").get("Contents", [])]
    assert keys == []
    assert Ledger(suite["results"] / "ledger.jsonl").outstanding() == []
    assert kops_verbs(suite)[-1] == "delete cluster"


def test_load_passes_with_relaxed_slos_exports_for_perfdash_and_deletes(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load", "--cl2-slo=pod_startup_p99=90,network_programming_p99=70",
               f"--perfci-results-s3=s3://{BUCKET}/perfdash")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert kops_verbs(suite) == ["create cluster", "validate cluster", "export kubecfg", "delete cluster"]
    assert "validate attempt 1" in proc.stdout and "did not have enough nodes" in proc.stdout
    assert_cluster_gone(suite)
    keys = [o["Key"] for o in suite["s3"].list_objects_v2(Bucket=BUCKET, Prefix="perfdash/").get("Contents", [])]
    pod = [k for k in keys if "PodStartupLatency_CreatePhasePodStartupLatency_load_2026-03-14T17:33:07+09:00" in k]
    assert pod and pod[0].startswith("perfdash/logs/perfci-cl2/") and pod[0].split("/")[3].isdigit()
    assert "perfdash/perfdash-config/perfci-cl2.yaml" in keys
    local = list((suite["results"] / "perfdash" / "logs" / "perfci-cl2").glob("*/artifacts/junit.xml"))
    assert len(local) == 1
    cl2_argv = next(json.loads(ln)["argv"] for ln in suite["log"].read_text().splitlines()
                if json.loads(ln)["prog"] == "clusterloader2")
    assert "--provider=aws" in cl2_argv and "--nodes=2" in cl2_argv
    assert any(a.startswith("--kubeconfig=") and "kubeconfig-perfci-suite-1.k8s.local" in a for a in cl2_argv)


def test_cl2_passes_but_our_pod_startup_slo_fails(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SLO violated: pod_startup_p99: 76.278 s > 5 s" in proc.stdout
    assert "CL2: passed (35 testcases, 0 failed)" in proc.stdout
    assert_cluster_gone(suite)


def test_cl2_exit_1_with_junit_is_a_verdict(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load", PERFCI_STANDIN_CL2_SAMPLE="ol-cl2-load-prom-fail")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CL2 reported 4 failure(s) in junit.xml" in proc.stdout
    assert "got unexpected number of samples: 0" in proc.stdout
    assert "infrastructure failure" not in proc.stdout
    assert_cluster_gone(suite)


def test_cl2_crash_without_junit_is_an_infrastructure_failure(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load", PERFCI_STANDIN_CL2_MODE="crash")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "infrastructure failure, not a verdict: clusterloader2 exited 2 without writing" in proc.stdout
    assert "panic: runtime error" in proc.stdout
    assert "SLO violated" not in proc.stdout
    assert_cluster_gone(suite)


def test_validate_never_succeeding_errors_the_tests_and_still_deletes(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load", PERFCI_STANDIN_KOPS_NOT_READY="never")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ClusterNotReady" in proc.stdout and "did not have enough nodes 0 vs 2" in proc.stdout
    assert "clusterloader2" not in suite["log"].read_text()
    assert_cluster_gone(suite)


def test_create_failing_half_way_still_deletes(suite: dict[str, Any]) -> None:
    proc = run(suite, "-k", "load", PERFCI_STANDIN_KOPS_CREATE="fail-half")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "quota exceeded" in proc.stdout
    assert kops_verbs(suite) == ["create cluster", "delete cluster"]
    assert_cluster_gone(suite)


def test_sigterm_during_validate_deletes_the_cluster(suite: dict[str, Any]) -> None:
    env = {**suite["env"], "PERFCI_STANDIN_KOPS_NOT_READY": "never", "PERFCI_STANDIN_KOPS_MAX_ATTEMPTS": "100000",
           "PERFCI_STANDIN_KOPS_INTERVAL": "0.2"}
    proc = subprocess.Popen([*suite["args"], "-k", "load"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "validate cluster" not in kops_verbs(suite):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(1.0)  # a few failing attempts in
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out
    assert "SIGTERM" in out or "KeyboardInterrupt" in out or "Interrupted" in out, out
    assert_cluster_gone(suite)


def test_without_kops_provider_the_suite_skips_and_creates_nothing(suite: dict[str, Any]) -> None:
    args = [a for a in suite["args"] if not a.startswith(("--provider", "--node-size"))]
    proc = subprocess.run([*args, "-k", "load"], cwd=ROOT, env=suite["env"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "needs a Kubernetes cluster: run with --provider=kops" in proc.stdout
    assert kops_verbs(suite) == []


def test_bad_settings_are_usage_errors_before_anything_exists(suite: dict[str, Any]) -> None:
    proc = run(suite, "--cl2-slo=pod_startup=5")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unknown SLO 'pod_startup'" in proc.stderr
    args = [a for a in suite["args"] if not a.startswith("--perfci-kops-state")]
    proc = subprocess.run(args, cwd=ROOT, env=suite["env"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 4 and "needs a state store" in proc.stderr
    assert kops_verbs(suite) == []
