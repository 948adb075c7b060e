"""Results through pytest: NDJSON per run, baseline and history verdicts failing a test, S3 (moto), xdist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.cli import main
from pytest_perfci.results.model import Infrastructure, NdjsonWriter, ResultRecord, read_local
from tests.moto_server import MotoServer

SUITE = """
import os

def test_speed(host, perfci_sample, perfci_capability):
    perfci_sample("mini.speed", float(os.environ.get("MINI_SPEED", "100")), "MiB/s", "pass", direction="higher",
                  note="copy loop")
    perfci_capability("mba", True, "trend ok", host=host)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_mini=SUITE)
    return pytester


def run(p: pytest.Pytester, run_id: str, *args: str) -> pytest.RunResult:
    return p.runpytest("-p", "no:cacheprovider", "--perfci-results=results", f"--perfci-run-id={run_id}", *args)


def local_key(p: pytest.Pytester) -> str:
    return read_local([p.path / "results"])[0].infrastructure.key


def seed_history(directory: Path, key: str, values: list[float]) -> None:
    hostname = key.removeprefix("host:")
    infra = Infrastructure(provider="local", target="local", hostname=hostname)
    NdjsonWriter(directory / "old.ndjson").write(
        ResultRecord(name="mini.speed", value=v, unit="MiB/s", verdict="pass", run_id=f"old-{i}",
                     infrastructure=infra) for i, v in enumerate(values))


def test_every_sample_is_one_ndjson_line_with_its_infrastructure(suite: pytest.Pytester) -> None:
    run(suite, "perfci-run-1").assert_outcomes(passed=1)
    lines = (suite.path / "results" / "perfci-run-1" / "results.ndjson").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert [(d["kind"], d["name"]) for d in docs] == [("measurement", "mini.speed"), ("capability", "mba")]
    speed = docs[0]
    assert (speed["value"], speed["unit"], speed["verdict"], speed["metadata"]) == (
        100.0, "MiB/s", "pass", {"note": "copy loop"})
    assert speed["run_id"] == "perfci-run-1" and speed["outcome"] == "passed"
    assert speed["test_started"] <= speed["recorded_at"] <= speed["test_finished"]
    infra = speed["infrastructure"]
    assert infra["provider"] == "local" and infra["kernel"] and infra["arch"] and infra["hostname"]
    assert set(infra) >= {"instance_type", "region", "availability_zone", "ami", "os", "cpu_model", "metal",
                          "run_id", "git_commit"}
    run_dir = suite.path / "results" / "perfci-run-1"
    assert "| MBA | ✅ |" in (run_dir / "matrix.md").read_text().splitlines()
    assert (run_dir / "matrix.html").read_text().count('title="available: trend ok') == 1


def test_history_regression_fails_a_passing_test_with_band_and_size(suite: pytest.Pytester,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run(suite, "perfci-run-0")
    key = local_key(suite)
    seed_history(suite.path / "history", key, [100, 101, 99, 100, 102, 98])
    ok = run(suite, "perfci-run-1", "--perfci-history=history")
    ok.assert_outcomes(passed=1)
    monkeypatch.setenv("MINI_SPEED", "60")
    bad = run(suite, "perfci-run-2", "--perfci-history=history")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines([
        ("*regression: mini.speed = 60 MiB/s on * outside history band [[]95.5522, -[]] MiB/s "
        "(median 100 ± 3·1.4826·MAD (1), higher is better; n=6 from 6 runs)*"),
        "REGRESSION test_mini.py::test_speed*",
    ])
    doc = json.loads((suite.path / "results" / "perfci-run-2" / "results.ndjson").read_text().splitlines()[0])
    assert doc["history"]["verdict"] == "fail" and doc["history"]["n"] == 6 and doc["outcome"] == "failed"


def test_too_little_history_is_reported_not_judged(suite: pytest.Pytester) -> None:
    run(suite, "perfci-run-0")
    seed_history(suite.path / "history", local_key(suite), [100, 101])
    result = run(suite, "perfci-run-1", "--perfci-history=history", "--perfci-history-min=3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 sample(s) with too little history*(n=2 < 3), no regression verdict"])


def test_baseline_file_gives_pass_fail(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    (suite.path / "baseline.toml").write_text(
        '[[baseline]]\nmetric = "mini.speed"\nexpected = 100\ntolerance = "10%"\ndirection = "higher"\n')
    run(suite, "perfci-run-1", "--perfci-baseline=baseline.toml").assert_outcomes(passed=1)
    monkeypatch.setenv("MINI_SPEED", "89")
    bad = run(suite, "perfci-run-2", "--perfci-baseline=baseline.toml")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines([("*mini.speed = 89 MiB/s outside baseline 100 MiB/s ± 10%: must be >= 90 "
                              "(higher is better)*")])
    (suite.path / "broken.toml").write_text('[[baseline]]\nmetric = "x"\n')
    usage = run(suite, "perfci-run-3", "--perfci-baseline=broken.toml")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    usage.stderr.fnmatch_lines(["ERROR: --perfci-baseline: baseline broken.toml: entry 1 (expected): Field required"])


def test_s3_upload_history_from_s3_and_matrix_from_s3(suite: pytest.Pytester, moto: MotoServer,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="perf-results")  # type: ignore[attr-defined]
    for i in range(5):
        run(suite, f"perfci-run-{i}", "--perfci-s3=s3://perf-results/weekly").assert_outcomes(passed=1)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="perf-results")["Contents"])  # type: ignore[attr-defined]
    assert "weekly/perfci-run-0/results.ndjson" in keys and "weekly/perfci-run-4/matrix.html" in keys
    assert len([k for k in keys if k.endswith("results.ndjson")]) == 5
    result = run(suite, "perfci-run-5", "--perfci-history=s3://perf-results/weekly")
    result.assert_outcomes(passed=1)
    doc = json.loads((suite.path / "results" / "perfci-run-5" / "results.ndjson").read_text().splitlines()[0])
    assert doc["history"]["verdict"] == "pass" and doc["history"]["n"] == 5
    capsys.readouterr()
    assert main(["matrix", "s3://perf-results/weekly"]) == 0
    assert "| MBA | ✅<br><sub>" in capsys.readouterr().out  # one cell, from the newest of the merged runs
    missing = run(suite, "perfci-run-6", "--perfci-s3=s3://no-such-bucket/x")
    assert missing.ret == pytest.ExitCode.TESTS_FAILED  # tests passed, results did not land: not green
    missing.stdout.fnmatch_lines(["perfci: upload to s3://no-such-bucket/x failed: *NoSuchBucket*"])
    bad = run(suite, "perfci-run-7", "--perfci-s3=http://x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_samples_travel_from_xdist_workers(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_more=SUITE.replace("test_speed", "test_speed2"))
    result = run(suite, "perfci-xdist-1", "-n", "2")
    result.assert_outcomes(passed=2)
    records = read_local([suite.path / "results" / "perfci-xdist-1"])
    assert sorted(r.test.split("::")[1] for r in records if r.kind == "measurement") == [
        "test_speed2[local]", "test_speed[local]"]
    assert all(r.infrastructure.kernel for r in records)
