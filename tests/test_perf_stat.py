"""perf stat parser on every recorded perf output under tests/data/samples/pmc (real machines)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.checks.perf_stat import (
    Counter,
    PerfStat,
    PerfStatParseError,
    normalise_event,
    parse_perf_stat,
    perf_stat_command,
)

PMC = Path(__file__).parent / "data" / "samples" / "pmc"
FC = "local-firecracker-amd-vm-nopmu"

# file -> (format, number of counter lines, {event: {field: expected}}); "absent" = get() is None.
NS: dict[str, Any] = {"status": "not_supported", "value": None}
EXPECTED: dict[str, tuple[str, int, dict[str, Any]]] = {
    f"{FC}/perf-stat-human-cycles-instructions.stderr": (
        "human", 2, {"cycles": {**NS, "running_pct": None}, "instructions": NS},
    ),
    f"{FC}/perf-stat-j-cycles-instructions.stderr": (
        "json", 2, {"cycles": {**NS, "running_pct": 100.0, "metric_value": 0.0}, "instructions": NS},
    ),
    f"{FC}/perf-stat-j-default.stderr": (
        "json", 8,
        {
            "task-clock": {"value": 0.653970, "unit": "msec", "metric_value": 0.542683, "metric_unit": "CPUs utilized"},
            "page-faults": {"value": 48.0, "metric_unit": "K/sec"},
            "context-switches": {"value": 0.0, "status": "counted"},
            "cycles": NS, "instructions": NS, "branches": NS, "branch-misses": NS,
        },
    ),
    f"{FC}/perf-stat-j-o-file.txt": (
        "json", 2, {"task-clock": {"value": 0.636205}, "cycles": NS, "instructions": "absent"},
    ),
    f"{FC}/perf-stat-v-cycles.stderr": ("csv", 1, {"cycles": NS, "instructions": "absent"}),
    f"{FC}/perf-stat-x-cycles-instructions.stderr": (
        "csv", 2, {"cycles": {**NS, "running_pct": 100.0}, "instructions": NS},
    ),
    f"{FC}/perf-stat-x-default.stderr": (
        "csv", 8,
        {"task-clock": {"value": 0.66, "unit": "msec", "metric_value": 0.475}, "page-faults": {"value": 48.0},
         "cycles": NS, "branch-misses": NS},
    ),
    f"{FC}/perf-stat-x-interval.stderr": (
        "csv", 8,
        # 0.74 + 0.07 msec from the two counted intervals; the two <not counted> ones add nothing.
        {"task-clock": {"value": pytest.approx(0.81), "status": "counted", "running_pct": 100.0}, "cycles": NS},
    ),
    f"{FC}/perf-stat-x-o-file.txt": (
        "csv", 3, {"task-clock": {"value": 0.70, "metric_value": 0.487}, "cycles": NS, "instructions": NS},
    ),
    f"{FC}/perf-stat-x-repeat3.stderr": (
        "csv", 3,
        {"task-clock": {"value": 0.60, "variance_pct": 10.40, "running_pct": 100.0, "metric_value": 0.626},
         "cycles": {**NS, "variance_pct": 0.0}, "instructions": NS},
    ),
    f"{FC}/perf-stat-x-semicolon.stderr": (
        "csv", 2, {"task-clock": {"value": 0.69, "unit": "msec", "metric_value": 0.521}, "cycles": NS},
    ),
    f"{FC}/perf-stat-x-user-modifier.stderr": (
        "csv", 2, {"cycles": {**NS, "event": "cycles:u"}, "instructions": {**NS, "event": "instructions:u"}},
    ),
    f"{FC}/perf-stat-x-workload-exit7.stderr": ("csv", 1, {"task-clock": {"value": 0.91}, "cycles": "absent"}),
    f"{FC}/perf-stat-x-workload-false.stderr": ("csv", 1, {"task-clock": {"value": 0.73}, "cycles": "absent"}),
    "public/aws-graviton-c6g-2xlarge-perf-stat-std.txt": (
        "human", 12,
        # two invocations in one paste: get() answers from the last one that printed the event
        {"cycles": {"value": 161469308.0, "running_pct": 80.01, "run": 1},
         "instructions": {"value": 120685678.0, "running_pct": 79.97, "metric_value": 0.75},
         "cache-misses": {"value": 2001520.0, "metric_value": 4.750, "metric_unit": "% of all cache refs"},
         "bus-cycles": {"value": 160016796.0, "running_pct": 60.00},
         "cpu-clock": {"value": 87692.26, "unit": "msec", "metric_value": 8.0, "run": 0}},
    ),
    "public/benchkit-109-perf-stat-j-o-file-multiplexed-truncated.jsonl": (
        "json", 6,
        {"cycles": {"value": 1419380.0, "running_pct": 10.00, "metric_value": 1.015317, "metric_unit": "GHz"},
         "stalled-cycles-frontend": {"value": 141415.0, "running_pct": 100.0}, "instructions": "absent"},
    ),
    "public/gerryyang-blog-2021-perf-stat-x-date-vm.csv": (
        "csv", 8,
        {"task-clock": {"value": 0.524149, "unit": "", "running_pct": 100.0}, "page-faults": {"value": 66.0},
         "context-switches": {"value": 3.0, "metric_unit": "M/sec"}, "cycles": NS, "instructions": NS},
    ),
    "public/jmh-132-github-actions-runner-perf-stat-std-not-supported.txt": (
        "human", 1, {"cycles": NS, "instructions": "absent"},
    ),
    "public/lkml-2020-kan-liang-topdown-group-not-counted.csv": (
        "csv", 6,
        {"slots": {"status": "not_counted", "value": None, "running_pct": 0.0},
         "topdown-bad-spec": {"status": "not_counted", "running_pct": 0.0},
         "cycles": {"status": "not_counted", "running_pct": 0.0}},
    ),
    "public/lkml-2022-acme-perf-stat-j-per-core-tail.jsonl": (
        "json", 4,
        {"instructions": {"value": 233533.0, "aggregate": "S0-D0-C15", "metric_unit": "insn per cycle"},
         "branch-misses": {"value": 1513.0, "running_pct": 54.00},
         "stalled-cycles-backend": {"value": 2675.0}, "cycles": "absent"},
    ),
    "public/lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt": (
        "human", 12,
        {"cycles": {"value": 6313960.0 + 257711907.0, "running_pct": 54.18, "pmu": "cpu_core+cpu_atom"},
         "instructions": {"value": 4477162.0 + 37721481.0, "running_pct": 63.33},
         "branch-misses": {"value": 39667.0 + 1032146.0, "running_pct": 63.33},
         "cpu-clock": {"value": 32127.99, "unit": "msec", "metric_value": 31.992}},
    ),
    "public/lkml-2023-kan-liang-spr-perf-stat-j.jsonl": (
        "json", 8,
        {"cycles": {"value": 48433482.0, "running_pct": 100.0, "metric_value": 0.000214},
         "instructions": {"value": 38620409.0, "metric_value": 0.797391, "metric_unit": "insn per cycle"},
         "cpu-clock": {"value": 225904.823297, "metric_value": 224.456872}},
    ),
    "public/lkml-2023-kan-liang-spr-perf-stat-std.txt": (
        "human", 8,
        {"cycles": {"value": 45940682.0, "running_pct": 100.0, "metric_unit": "GHz"},
         "instructions": {"value": 36676047.0, "metric_value": 0.80},
         "cpu-clock": {"value": 226054.13, "unit": "msec"},
         "branch-misses": {"value": 62169.0, "metric_value": 0.88, "metric_unit": "% of all branches"}},
    ),
    "public/lkml-2023-kan-liang-spr-perf-stat-x.csv": (
        "csv", 8,
        {"cycles": {"value": 52288305.0, "running_pct": 100.0, "metric_unit": "GHz"},
         "instructions": {"value": 37977214.0, "metric_value": 0.73, "metric_unit": "insn per cycle"},
         "cpu-clock": {"value": 225851.20, "unit": "msec", "metric_value": 224.431}},
    ),
    "public/netdata-3232-perf-stat-I-multiplexed-std.txt": (
        "human", 11,
        {"cycles": {"value": 5109360888.0, "running_pct": 38.46, "interval": 123.100852112},
         "instructions": {"value": 5574865332.0, "running_pct": 46.15},
         "LLC-loads": {"value": 14361199.0, "running_pct": 30.77},
         "cpu-clock": {"value": 8008.478891, "unit": "msec"},  # old "cpu-clock (msec)" layout
         "context-switches": {"value": 4702.0, "metric_value": 0.587}},
    ),
    # Hybrid task (not -a) in a de_DE locale: "(0,68%)" is 0.68 %, the task's residency on cpu_atom.
    # The count is the sum of unscaled counts: 3,642,649,330 x 0.0068 + 4,963,414,681 x 0.7879.
    "public/kargjonas-tiled-matmul-hybrid-de-locale-main.profile": (
        "human", 23,
        {"cycles": {"value": float(round(3642649330 * 0.0068 + 4963414681 * 0.7879)), "running_pct": 79.47,
                    "residency": True, "pmu_pct": {"cpu_atom": 0.68, "cpu_core": 78.79}},
         "instructions": {"value": float(round(4778497246 * 0.0085 + 11012810078 * 0.8871)), "running_pct": 89.56},
         "task-clock": {"value": 1101.01, "unit": "msec", "metric_value": 0.999},
         "context-switches": {"value": 11.0, "metric_value": 9.991},
         "LLC-load-misses": {"value": float(round(11006799 * 0.8879)), "running_pct": 89.62}},
    ),
    # Multi-threaded hybrid task: 58.73 % + 57.96 % > 100 % cannot be residency shares of one
    # timeline; each is that PMU's multiplexing, so the scaled values add up.
    "public/kargjonas-tiled-matmul-hybrid-de-locale-main.parallel2.profile": (
        "human", 23,
        {"cycles": {"value": 39293025980.0 + 36246187668.0, "running_pct": 57.96, "residency": False,
                    "pmu_pct": {"cpu_atom": 58.73, "cpu_core": 57.96}},
         "task-clock": {"value": 19730.56}, "context-switches": {"value": 2909.0}},
    ),
    # Three pasted -x runs (no header between them): split where cpu_atom/instructions/ repeats.
    "public/pgcolumnar-869-hybrid-x-three-runs-pasted.csv": (
        "csv", 6,
        {"instructions": {"value": float(round(6720143357 * 0.02 + 20875198260 * 0.97)), "running_pct": 99.0,
                          "run": 2, "residency": True, "pmu_pct": {"cpu_atom": 2.0, "cpu_core": 97.0}}},
    ),
    # -x/ in fr_FR: "0,31" msec and a pcnt-running of "100,00" (100 %, not 10000 %).
    "public/mesos-391-fr_FR-perf-stat-x-slash.csv": (
        "csv", 8,
        {"task-clock": {"value": 0.31, "unit": "msec", "running_pct": 100.0, "metric_value": 0.0},
         "cycles": {"value": 788234.0, "running_pct": 100.0, "metric_value": 2.0, "metric_unit": "GHz"},
         "branches": {"value": 106749.0, "metric_value": 348.0}},
    ),
    # -G (8 fields: a cgroup column after the event) with -x, in fr_FR: "100,00" split in two
    "public/mesos-391-fr_FR-perf-stat-x-comma-cgroup-line.csv": (
        "csv", 1,
        {"cycles": {"value": 6376827291.0, "running_pct": 100.0, "aggregate": "mesos_test", "metric_value": 3.0,
                    "metric_unit": "GHz"}},
    ),
    "public/ravel-844-ec2-r6a-4xlarge-not-supported.txt": (
        # the reversed "cache-misses  <not supported>" lines are the reporter's summary, not perf's
        "human", 2, {"cycles": NS, "instructions": NS, "cache-misses": "absent"},
    ),
}  # fmt: skip
# Recorded on this project's machine with its real perf 6.1 (record.sh in that folder): locales
# compiled with localedef, -I with --summary, three runs appended to one log. Software events only
# (the VM has no PMU), which is all number formats and run boundaries need.
RL = "recorded-locales-intervals"
EXPECTED.update({
    f"{RL}/perf-stat-human-de_DE.txt": (
        "human", 3, {"task-clock": {"value": 2345.21, "unit": "msec", "metric_value": 0.995},
                     "page-faults": {"value": 188873.0, "metric_value": 80.536, "metric_unit": "K/sec"}, "cycles": NS},
    ),
    f"{RL}/perf-stat-human-fr_FR.txt": (  # thousands grouped with U+202F NARROW NO-BREAK SPACE
        "human", 3, {"task-clock": {"value": 2068.73, "metric_value": 0.979}, "page-faults": {"value": 188913.0}},
    ),
    f"{RL}/perf-stat-human-en_IN.txt": (  # Indian grouping 1,88,825
        "human", 3, {"task-clock": {"value": 1943.20, "metric_value": 0.983}, "page-faults": {"value": 188825.0}},
    ),
    f"{RL}/perf-stat-x-semicolon-de_DE.csv": (
        "csv", 3, {"task-clock": {"value": 2190.07, "running_pct": 100.0}, "page-faults": {"value": 188885.0}},
    ),
    f"{RL}/perf-stat-x-semicolon-fr_FR.csv": (
        "csv", 3, {"task-clock": {"value": 1760.38, "running_pct": 100.0}, "page-faults": {"value": 188885.0}},
    ),
    f"{RL}/perf-stat-x-semicolon-en_IN.csv": (
        "csv", 3, {"task-clock": {"value": 1776.65, "running_pct": 100.0, "metric_value": 0.994}},
    ),
    # -x, in de_DE: the decimal comma collides with the separator ("1762,72,msec,...,100,00,...")
    f"{RL}/perf-stat-x-comma-de_DE.csv": (
        "csv", 3, {"task-clock": {"value": 1762.72, "unit": "msec", "running_pct": 100.0, "metric_value": 0.0,
                                  "metric_unit": "CPUs utilized"},
                   "page-faults": {"value": 188899.0, "running_pct": 100.0, "metric_value": 107.0}, "cycles": NS},
    ),
    # -j in de_DE writes "pcnt-running" : 100,00 (not JSON) and "counter-value" : "2407,848170"
    f"{RL}/perf-stat-j-de_DE.jsonl": (
        "json", 3, {"task-clock": {"value": 2407.848170, "running_pct": 100.0, "metric_value": 0.969067},
                    "page-faults": {"value": 188899.0, "metric_value": 78.451375}, "cycles": NS},
    ),
    # -I + --summary: the summary line is the total; the five intervals are not added to it
    f"{RL}/perf-stat-I-summary-x.csv": (
        "csv", 18, {"task-clock": {"value": 1853.28, "interval": None}, "page-faults": {"value": 187811.0}},
    ),
    f"{RL}/perf-stat-I-summary-no-csv-summary-x.csv": (
        "csv", 18, {"task-clock": {"value": 1751.76, "interval": None}, "page-faults": {"value": 187784.0}},
    ),
    f"{RL}/perf-stat-I-summary-j.jsonl": (
        "json", 18, {"task-clock": {"value": 1890.806113, "interval": None}, "page-faults": {"value": 187805.0}},
    ),
    f"{RL}/perf-stat-I-summary-human.txt": (
        "human", 3, {"task-clock": {"value": 1760.58}, "page-faults": {"value": 187757.0}},
    ),
    f"{RL}/perf-stat-I-summary-human-de_DE.txt": (
        "human", 3, {"task-clock": {"value": 1781.92}, "page-faults": {"value": 188930.0}},
    ),
    # three runs, no header between them: get() answers from the last run, never the sum
    f"{RL}/perf-stat-x-three-runs-pasted.csv": (
        "csv", 9, {"task-clock": {"value": 1742.70, "run": 2}, "page-faults": {"value": 187764.0, "run": 2}},
    ),
})  # fmt: skip
BAD = {f"{FC}/perf-stat-x-bad-event.stderr"}


def _perf_outputs() -> list[str]:
    files = (
        sorted(PMC.glob(f"{FC}/perf-stat-*"))
        + sorted((PMC / "public").iterdir())
        + sorted(PMC.glob(f"{RL}/perf-stat-*"))
    )
    return [str(p.relative_to(PMC)) for p in files]


def test_every_recorded_output_has_an_expectation() -> None:
    """A new sample file must come with asserted values, not silently join the parametrization."""
    assert set(_perf_outputs()) == set(EXPECTED) | BAD


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_recorded_output(samples: Path, rel: str) -> None:
    fmt, n, checks = EXPECTED[rel]
    stat = parse_perf_stat((samples / "pmc" / rel).read_text())
    assert stat.format == fmt
    assert len(stat.counters) == n
    for event, fields in checks.items():
        got = stat.get(event)
        if fields == "absent":
            assert got is None, (event, got)
            continue
        assert got is not None, event
        for key, want in fields.items():
            assert getattr(got, key) == want, (event, key, getattr(got, key))


def test_bad_event_raises_one_line_error(samples: Path) -> None:
    text = (samples / "pmc" / FC / "perf-stat-x-bad-event.stderr").read_text()
    with pytest.raises(PerfStatParseError) as exc:
        parse_perf_stat(text)
    assert isinstance(exc.value, ValueError)
    assert "\n" not in str(exc.value)
    assert "event syntax error" in str(exc.value)


@pytest.mark.parametrize("text", ["", "\n\n", "hello world\n42 apples and 3 pears\n"])
def test_no_counter_line_raises(text: str) -> None:
    with pytest.raises(PerfStatParseError):
        parse_perf_stat(text)


def test_spr_csv_skips_metric_only_lines(samples: Path) -> None:
    stat = parse_perf_stat((samples / "pmc/public/lkml-2023-kan-liang-spr-perf-stat-x.csv").read_text())
    assert [c.event for c in stat.counters][-2:] == ["branches", "branch-misses"]
    assert all(c.name for c in stat.counters)


def test_spr_json_metric_value_as_quoted_string(samples: Path) -> None:
    """perf >= 6.4 quotes metric-value; 6.1 (the firecracker VM) prints a bare number."""
    spr = parse_perf_stat((samples / "pmc/public/lkml-2023-kan-liang-spr-perf-stat-j.jsonl").read_text())
    assert (
        '"metric-value" : "0.797391"'
        in (samples / "pmc/public/lkml-2023-kan-liang-spr-perf-stat-j.jsonl").read_text()
    )
    assert spr.get("instructions").metric_value == 0.797391  # type: ignore[union-attr]
    fc = parse_perf_stat((samples / "pmc" / FC / "perf-stat-j-default.stderr").read_text())
    assert fc.get("page-faults").metric_value == 73.397862  # type: ignore[union-attr]


def test_hybrid_lines_keep_pmu_and_percentages(samples: Path) -> None:
    stat = parse_perf_stat(
        (samples / "pmc/public/lkml-2023-kan-liang-hybrid-perf-stat-std-multiplexed.txt").read_text()
    )
    cycles = [c for c in stat.counters if c.name == "cycles"]
    assert [(c.event, c.pmu, c.value, c.running_pct) for c in cycles] == [
        ("cpu_core/cycles/", "cpu_core", 6313960.0, 100.0),
        ("cpu_atom/cycles/", "cpu_atom", 257711907.0, 54.18),
    ]
    # perf's own "insn per cycle" for cpu_atom divides by cpu_core cycles: 37,721,481 / 6,313,960
    atom_ins = next(c for c in stat.counters if c.event == "cpu_atom/instructions/")
    assert atom_ins.metric_value == 5.97
    assert round(37721481 / 6313960, 2) == 5.97


def test_interval_csv_keeps_each_slice(samples: Path) -> None:
    stat = parse_perf_stat((samples / "pmc" / FC / "perf-stat-x-interval.stderr").read_text())
    task = [c for c in stat.counters if c.name == "task-clock"]
    assert [c.interval for c in task] == [0.100197005, 0.200574226, 0.300840107, 0.352117674]
    assert [c.status for c in task] == ["counted", "not_counted", "not_counted", "counted"]
    # <not counted> here comes with pcnt 100.00: the task slept through the interval
    assert task[1].running_pct == 100.0 and task[1].value is None


def test_semicolon_explicit_and_detected_agree(samples: Path) -> None:
    text = (samples / "pmc" / FC / "perf-stat-x-semicolon.stderr").read_text()
    assert parse_perf_stat(text) == parse_perf_stat(text, sep=";")


def test_explicit_wrong_separator_finds_nothing_in_csv(samples: Path) -> None:
    text = (samples / "pmc" / FC / "perf-stat-x-semicolon.stderr").read_text()
    with pytest.raises(PerfStatParseError):
        parse_perf_stat(text, sep="|")


def test_github_actions_timestamps_are_stripped(samples: Path) -> None:
    stat = parse_perf_stat(
        (samples / "pmc/public/jmh-132-github-actions-runner-perf-stat-std-not-supported.txt").read_text()
    )
    assert [(c.event, c.status) for c in stat.counters] == [("cycles", "not_supported")]


def test_graviton_runs_are_separate(samples: Path) -> None:
    stat = parse_perf_stat((samples / "pmc/public/aws-graviton-c6g-2xlarge-perf-stat-std.txt").read_text())
    assert stat.runs == [0, 1]
    assert stat.get("cycles", run=0).value == 25115021.0  # type: ignore[union-attr]
    assert stat.select(0).get("instructions").value == 28853592.0  # type: ignore[union-attr]
    assert stat.get("bus-cycles", run=0) is None


def test_o_file_header_is_ignored(samples: Path) -> None:
    o = parse_perf_stat((samples / "pmc" / FC / "perf-stat-x-o-file.txt").read_text())
    assert o.runs == [0] and [c.event for c in o.counters] == ["task-clock", "cycles", "instructions"]


# --- shapes not among the recordings, built from the recordings' own lines ----------------------


def _one(text: str, **kw: Any) -> Counter:
    stat = parse_perf_stat(text, **kw)
    assert len(stat.counters) == 1, stat.counters
    return stat.counters[0]


def test_old_five_field_layout() -> None:
    c = _one("52288305,,cycles,225850188531,100.00\n")
    assert (c.value, c.running_pct, c.metric_value) == (52288305.0, 100.0, None)


def test_per_core_csv_prefix() -> None:
    c = _one("S0-D0-C15,2,233533,,instructions,2865528,100.00,0.30,insn per cycle\n")
    assert (c.aggregate, c.value, c.running_pct, c.metric_unit) == (
        "S0-D0-C15",
        233533.0,
        100.0,
        "insn per cycle",
    )


def test_raw_event_with_commas_survives_comma_separator() -> None:
    c = _one("1234,,cpu/event=0x3c,umask=0x00/u,5000,100.00,,\n")
    assert c.event == "cpu/event=0x3c,umask=0x00/u" and c.value == 1234.0 and c.pmu == "cpu"


def test_tab_and_multichar_separators() -> None:
    assert _one("52288305\t\tcycles\t1\t100.00\t\t\n").value == 52288305.0
    assert _one("52288305::::cycles::1::100.00::::\n", sep="::").value == 52288305.0


def test_human_variance_and_not_counted_with_unit() -> None:
    text = (
        " Performance counter stats for 'true' (3 runs):\n\n"
        "              0.60 msec task-clock                #    0.626 CPUs utilized            ( +- 10.40% )\n"
        "     <not counted>      cycles                                                        (0.00%)\n\n"
        "        0.00095 +- 0.00010 seconds time elapsed  ( +- 10.00% )\n"
    )
    stat = parse_perf_stat(text)
    t, c = stat.counters
    assert (t.value, t.unit, t.variance_pct, t.metric_value) == (0.60, "msec", 10.40, 0.626)
    assert (c.status, c.running_pct) == ("not_counted", 0.0)


def test_human_header_excludes_workload_output() -> None:
    text = "42 apples\n\n Performance counter stats for 'x':\n\n     1,234,567      cycles\n\n 1.0 seconds time elapsed\n"
    stat = parse_perf_stat(text)
    assert [(c.name, c.value) for c in stat.counters] == [("cycles", 1234567.0)]


def test_get_aggregates_per_core_json() -> None:
    text = (
        '{"core" : "S0-D0-C0", "aggregate-number" : 2, "counter-value" : "100.000000", "unit" : "", '
        '"event" : "cycles", "event-runtime" : 1, "pcnt-running" : 100.00, "metric-value" : 0, "metric-unit" : ""}\n'
        '{"core" : "S0-D0-C1", "aggregate-number" : 2, "counter-value" : "<not counted>", "unit" : "", '
        '"event" : "cycles", "event-runtime" : 0, "pcnt-running" : 0.00, "metric-value" : 0, "metric-unit" : ""}\n'
        '{"core" : "S0-D0-C2", "aggregate-number" : 2, "counter-value" : "50.000000", "unit" : "", '
        '"event" : "cycles", "event-runtime" : 1, "pcnt-running" : 70.00, "metric-value" : 0, "metric-unit" : ""}\n'
    )
    c = parse_perf_stat(text).get("cycles")
    assert c is not None
    assert (c.value, c.status, c.running_pct, c.metric_value) == (150.0, "counted", 70.0, None)


@pytest.mark.parametrize(
    ("event", "name", "pmu"),
    [
        ("cpu_core/cycles/", "cycles", "cpu_core"),
        ("cpu_atom/instructions/", "instructions", "cpu_atom"),
        ("cpu_core/cycles/u", "cycles", "cpu_core"),
        ("cycles:u", "cycles", None),
        ("cycles:ppp", "cycles", None),
        ("cpu-cycles", "cycles", None),
        ("armv8_pmuv3_0/cpu_cycles/", "cycles", "armv8_pmuv3_0"),
        ("sched:sched_switch", "sched:sched_switch", None),
        ("cpu/event=0x3c,umask=0x0,name=my_cycles/", "my_cycles", "cpu"),
        ("L1-dcache-load-misses", "L1-dcache-load-misses", None),
    ],
)
def test_normalise_event(event: str, name: str, pmu: str | None) -> None:
    assert normalise_event(event) == (name, pmu)


def test_get_by_alias(samples: Path) -> None:
    stat = parse_perf_stat((samples / "pmc/public/lkml-2023-kan-liang-spr-perf-stat-x.csv").read_text())
    assert stat.get("cpu-cycles") == stat.get("cycles")


def test_counter_is_frozen() -> None:
    stat = PerfStat(format="csv", counters=[_one("1,,cycles,1,100.00,,\n")])
    with pytest.raises(ValueError):
        stat.counters[0].value = 2.0  # type: ignore[misc]


def test_perf_stat_command_argv() -> None:
    cmd = perf_stat_command(["cycles:u", "instructions:u"], ["awk", "BEGIN { print 1 }"])
    assert shlex.split(cmd) == [
        "perf", "stat", "-x,", "-e", "cycles:u,instructions:u", "--", "awk", "BEGIN { print 1 }",
    ]  # fmt: skip


def test_perf_stat_command_string_workload_and_output() -> None:
    cmd = perf_stat_command(["cycles"], "make -j4 && ./bench", sep=";", output="/tmp/c.txt")
    assert shlex.split(cmd) == [
        "perf", "stat", "-x;", "-e", "cycles", "-o", "/tmp/c.txt", "--", "sh", "-c", "make -j4 && ./bench",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        perf_stat_command([], ["true"])
