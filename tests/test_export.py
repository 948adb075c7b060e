"""`perfci export --format github-action-benchmark` on results of real pytest runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.cli import main

SUITE = """
import os
import pytest

def test_copy(host, perfci_sample):
    perfci_sample("mini.copy", float(os.environ["MINI_COPY"]), "MiB/s", "pass", direction="higher")

@pytest.mark.parametrize("i", [0, 1, 2])
def test_latency(host, perfci_sample, i):
    perfci_sample("mini.latency", float(os.environ["MINI_LAT"]) + i, "us", "pass", direction="lower")

def test_count(host, perfci_sample):
    perfci_sample("mini.instructions", 21000123, "count", "pass")
"""


def test_github_action_benchmark_files_by_direction(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytester.makepyfile(test_bench=SUITE)
    for run, (copy, lat) in enumerate([("100", "10"), ("90", "20")]):
        monkeypatch.setenv("MINI_COPY", copy)
        monkeypatch.setenv("MINI_LAT", lat)
        pytester.runpytest("-p", "no:cacheprovider", "--perfci-results=results",
                           f"--perfci-run-id=bench-{run}").assert_outcomes(passed=5)
    out = tmp_path / "bench"
    assert main(["export", "--format", "github-action-benchmark", str(pytester.path / "results"), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "bigger-is-better.json (tool: customBiggerIsBetter)" in printed.out
    assert "smaller-is-better.json (tool: customSmallerIsBetter)" in printed.out
    assert "1 metric(s) with direction 'both' left out" in printed.err and "mini.instructions [" in printed.err
    (bigger,) = json.loads((out / "bigger-is-better.json").read_text())
    (smaller,) = json.loads((out / "smaller-is-better.json").read_text())
    # the newest run only; three samples of one metric in it: their median, the spread as range
    assert bigger["name"].startswith("mini.copy [") and (bigger["unit"], bigger["value"]) == ("MiB/s", 90.0)
    assert (smaller["unit"], smaller["value"], smaller["range"]) == ("us", 21.0, "20 .. 22 (n=3)")
    assert smaller["extra"].startswith("run bench-1; ")
    for entry in (bigger, smaller):  # what the action's custom tools read: name, unit, numeric value
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert isinstance(entry["value"], float)
        assert set(entry) <= {"name", "unit", "value", "range", "extra"}


def test_nothing_to_export_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.ndjson").write_text("")
    assert main(["export", "--format", "github-action-benchmark", str(tmp_path / "r.ndjson"), "-o",
                 str(tmp_path / "o")]) == 2
    assert "no sample with direction higher or lower" in capsys.readouterr().err
    assert main(["export", "--format", "csv", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
