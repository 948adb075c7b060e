"""`perfci pmc judge` on recorded perf outputs: text, JSON, exit codes, stdin, the installed script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfci.cli import main

PUB = "pmc/public"
FC = "pmc/local-firecracker-amd-vm-nopmu"


def test_spr_csv_is_trustworthy(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-x.csv"
    assert main(["pmc", "judge", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{f} (csv): trustworthy"
    assert "52,288,305  counted       running 100.00%" in out[1]
    assert "ok  cycles: available (52,288,305 counted, running 100.00%)" in out[3]
    assert out[-1] == "overall: PMC trustworthy in all 1 file(s)"


def test_several_formats_all_available(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-j.jsonl",
        samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-std.txt",
        samples / PUB / "lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt",
        samples / PUB / "aws-graviton-c6g-2xlarge-perf-stat-std.txt",
    ]
    assert main(["pmc", "judge", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "(json): trustworthy" in out and "(human): trustworthy" in out
    assert "run 2 of 2:" in out  # the graviton paste holds two perf invocations
    assert "264,025,867  counted       running 54.18%" in out  # cpu_core + cpu_atom cycles
    assert out.rstrip().endswith("overall: PMC trustworthy in all 4 file(s)")


def test_firecracker_not_supported_exits_1(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = samples / FC / "perf-stat-x-cycles-instructions.stderr"
    assert main(["pmc", "judge", str(f)]) == 1
    out = capsys.readouterr().out
    assert (
        "BAD cycles: unavailable (event not supported: perf stat printed <not supported> for cycles)" in out
    )
    assert "overall: PMC trustworthy in 0 of 1 judged file(s)" in out


def test_firecracker_with_host_context_says_no_pmu(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devices = (samples / FC / "sys-bus-event_source-devices.txt").read_text()
    f = samples / FC / "perf-stat-x-semicolon.stderr"
    assert (
        main(["pmc", "judge", str(f), "--sep", ";", "--pmu-devices", devices, "--paranoid", "2", "--root"])
        == 1
    )
    out = capsys.readouterr().out
    assert "cycles: unavailable (no hardware PMU exposed: /sys/bus/event_source/devices has no cpu PMU" in out
    assert ["instructions", "-", "missing"] in [line.split() for line in out.splitlines()]


def test_mixed_files_exit_1(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-x.csv"
    bad = samples / PUB / "netdata-3232-perf-stat-I-multiplexed-std.txt"
    assert main(["pmc", "judge", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "multiplexed away: on a counter only 38.46% of the time" in out
    assert out.rstrip().endswith("overall: PMC trustworthy in 1 of 2 judged file(s)")


def test_json_output(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hybrid = samples / PUB / "lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt"
    topdown = samples / PUB / "lkml-2020-kan-liang-topdown-group-not-counted.csv"
    assert main(["pmc", "judge", "--json", str(hybrid), str(topdown)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["exit_code"], doc["events"]) == (False, 1, ["cycles", "instructions"])
    h, t = doc["files"]
    assert (h["format"], h["ok"]) == ("human", True)
    cycles = h["runs"][0]["counters"]["cycles"]
    assert (cycles["value"], cycles["running_pct"], cycles["pmu"]) == (
        264025867.0,
        54.18,
        "cpu_core+cpu_atom",
    )
    assert [v["event"] for v in h["runs"][0]["verdicts"]] == ["cycles", "instructions", "cpi"]
    assert (t["format"], t["ok"]) == ("csv", False)
    v = t["runs"][0]["verdicts"][0]
    assert (v["status"], v["reason"], v["ok"]) == ("unavailable", "multiplexed away", False)
    assert t["runs"][0]["counters"]["instructions"] is None


def test_extra_events(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = samples / PUB / "aws-graviton-c6g-2xlarge-perf-stat-std.txt"
    assert main(["pmc", "judge", "--json", "--events", "cache-misses", str(f)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["events"] == ["cycles", "instructions", "cache-misses"]
    run0, run1 = doc["files"][0]["runs"]
    assert run0["counters"]["cache-misses"] is None  # the first paste did not ask for it
    assert run1["counters"]["cache-misses"]["value"] == 2001520.0 and run1["ok"] is True


def test_stdin(samples: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = (samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-j.jsonl").read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["pmc", "judge", "-"]) == 0
    assert capsys.readouterr().out.startswith("<stdin> (json): trustworthy")


def test_missing_file_exits_2(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    good = samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-x.csv"
    assert main(["pmc", "judge", str(missing), str(good)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"perfci pmc judge: {missing}: No such file or directory"


def test_bad_event_output_exits_2(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = samples / FC / "perf-stat-x-bad-event.stderr"
    assert main(["pmc", "judge", "--json", str(f)]) == 2
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert first.startswith(f"perfci pmc judge: {f}: no perf stat counter line found")
    assert "event syntax error" in first
    assert json.loads(captured.out)["files"][0]["error"].startswith("no perf stat counter line found")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["pmc", "judge"]) == 2
    assert "required: FILE" in capsys.readouterr().err


def test_installed_script(samples: Path) -> None:
    script = Path(sys.executable).parent / "perfci"
    assert script.exists(), "the console script is declared in pyproject: reinstall the package"
    spr = samples / PUB / "lkml-2023-kan-liang-spr-perf-stat-x.csv"
    ravel = samples / PUB / "ravel-844-ec2-r6a-4xlarge-not-supported.txt"
    bad = samples / FC / "perf-stat-x-bad-event.stderr"
    ok = subprocess.run(
        [script, "pmc", "judge", spr], capture_output=True, text=True, timeout=60, check=False
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert "overall: PMC trustworthy in all 1 file(s)" in ok.stdout
    no = subprocess.run(
        [script, "pmc", "judge", ravel], capture_output=True, text=True, timeout=60, check=False
    )
    assert no.returncode == 1
    assert "cycles: unavailable (event not supported" in no.stdout
    err = subprocess.run(
        [script, "pmc", "judge", bad], capture_output=True, text=True, timeout=60, check=False
    )
    assert err.returncode == 2
    assert err.stderr.startswith(f"perfci pmc judge: {bad}: no perf stat counter line found")


# --- issue 14: classes of real output that were misread ------------------------------------------


def test_hybrid_task_counts_unscaled_sum_and_reports_residency(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run 3 of the pasted pgcolumnar #869 runs: atom 2.00 %, core 97.00 % of the task's time.

    Before: one run of 70,092,360,935 instructions (three runs x two PMUs, scaled values added)
    judged "multiplexed away" at 2.00 %. The task did ~20.4e9, like its pinned runs.
    """
    f = samples / PUB / "pgcolumnar-869-hybrid-x-three-runs-pasted.csv"
    assert main(["pmc", "judge", "--events", "instructions", str(f)]) == 1  # no cycles line at all
    out = capsys.readouterr().out
    assert "run 3 of 3:" in out
    assert "ok  instructions: available (20,383,345,179 counted on the task's core types" in out
    assert "residency cpu_core 97.00%, cpu_atom 2.00% = 99.00% of the task's time" in out
    assert "multiplexed away" not in out and "70,092,360,935" not in out


def test_decimal_comma_hybrid_profile_is_trustworthy(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """de_DE human table of a hybrid task: every line was dropped before ("1.101,01 msec", "(0,68%)")."""
    f = samples / PUB / "kargjonas-tiled-matmul-hybrid-de-locale-main.profile"
    assert main(["pmc", "judge", str(f)]) == 0
    out = capsys.readouterr().out
    assert "residency cpu_core 78.79%, cpu_atom 0.68% = 79.47% of the task's time" in out
    assert "CPI 0.401" in out


def test_decimal_comma_percentage_is_not_ten_thousand(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = samples / PUB / "mesos-391-fr_FR-perf-stat-x-slash.csv"
    assert main(["pmc", "judge", "--sep", "/", str(f)]) == 0
    out = capsys.readouterr().out
    assert "running 100.00%" in out and "10000" not in out


def test_multiplexed_decimal_comma_below_floor_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`45,50` is 45.5 %: below the 50 % floor. Read as 4550 % it passed before."""
    f = tmp_path / "x.csv"
    f.write_text("1234567;;cycles;1000;45,50;;\n2345678;;instructions;1000;45,50;;\n")
    assert main(["pmc", "judge", str(f)]) == 1
    out = capsys.readouterr().out
    assert "only 45.50% of the time (< 50%)" in out


def test_interval_summary_and_pasted_runs_are_not_summed(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rl = samples / "pmc" / "recorded-locales-intervals"
    main(["pmc", "judge", "--json", "--events", "task-clock", str(rl / "perf-stat-I-summary-x.csv"),
          str(rl / "perf-stat-x-three-runs-pasted.csv")])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    summary, pasted = doc["files"]
    assert [r["counters"]["task-clock"]["value"] for r in summary["runs"]] == [1853.28]  # not 3,706.56
    assert [r["counters"]["task-clock"]["value"] for r in pasted["runs"]] == [1758.81, 1842.41, 1742.70]


def test_system_wide_flag_reads_hybrid_percentages_as_multiplexing(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With -a the cpu_atom 0.68 % is multiplexing of the atom CPUs' counter, not a task's residency."""
    f = samples / PUB / "kargjonas-tiled-matmul-hybrid-de-locale-main.profile"
    assert main(["pmc", "judge", "--system-wide", "--root", str(f)]) == 1
    out = capsys.readouterr().out
    assert "cycles: unavailable (multiplexed away: on a counter only 0.68% of the time" in out
