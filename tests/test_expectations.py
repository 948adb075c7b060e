"""Expectations: pattern precedence, the pass/fail/xfail rule, and the shipped file against its evidence."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import (
    Expectation,
    Expectations,
    ExpectationsError,
    decide,
    load_expectations,
)

SHIPPED = Path(__file__).parents[1] / "suites" / "pmc" / "expectations.toml"
MATRIX_NAMES = {  # perf's generic names in the Intel matrix -> our capability names
    "cpu-cycles": "cycles",
    "instructions": "instructions",
    "ref-cycles": "ref-cycles",
    "branch-instructions": "branches",
    "branch-misses": "branch-misses",
    "cache-references": "cache-references",
    "cache-misses": "cache-misses",
}
MATRIX_STATES = {"Successful": "available", "Zero value": "zero", "Not supported": "unavailable"}


def test_specific_patterns_override_broad_ones() -> None:
    exp = Expectations(
        target=[
            Expectation(match=["m7i.*"], source="family", expect={"cycles": "available", "cache-misses": "available"}),
            Expectation(match=["m7i.2xl*"], source="size glob", expect={"cache-misses": "zero"}),
            Expectation(match=["m7i.2xlarge"], source="exact", expect={"cycles": "unavailable"}),
        ]
    )
    assert exp.for_target("m7i.2xlarge") == {"cycles": ("unavailable", "exact"), "cache-misses": ("zero", "size glob")}
    assert exp.for_target("m7i.large") == {"cycles": ("available", "family"), "cache-misses": ("available", "family")}
    assert exp.for_target("c7g.metal") == {}
    assert exp.for_target(None) == {}


def test_decide_rule() -> None:
    assert decide("cycles", "available", "counted", ("available", "x")).action == "pass"
    assert decide("cycles", "available", "counted", None).action == "pass"
    miss = decide("cycles", "unavailable", "no hardware PMU exposed", ("available", "evidence.csv"))
    assert miss.action == "fail"
    assert miss.message == "cycles: expected available [evidence.csv], observed unavailable: no hardware PMU exposed"
    unknown = decide("cycles", "unavailable", "no hardware PMU exposed", None)
    assert unknown.action == "xfail" and "no hardware PMU exposed" in unknown.message
    assert decide("cache-misses", "zero", "reads 0", ("zero", "")).action == "pass"
    assert decide("instructions", "inconsistent", "1 vs 2", ("available", "")).action == "fail"


def test_bad_file_names_the_place_and_allowed_states(tmp_path: Path) -> None:
    bad = tmp_path / "expectations.toml"
    bad.write_text('[[target]]\nmatch = ["x.y"]\nexpect = { cycles = "maybe" }\n')
    with pytest.raises(ExpectationsError, match=r"target\.0\.expect\.cycles: .*allowed states: available, unavailable, zero"):
        load_expectations(bad)
    bad.write_text("[[target]\n")
    with pytest.raises(ExpectationsError, match="cannot read expectations"):
        load_expectations(bad)


@pytest.mark.parametrize(
    ("instance_type", "matrix_file"),
    [
        ("m7i.2xlarge", "m7i.2xlarge.events.csv"),
        ("m7i.24xlarge", "m7i.24xlarge.events.csv"),
        ("i7i.24xlarge", "i7i.24xlarge.events.csv"),
        ("m7i.metal-24xl", "m7i.metal.24xlarge.events.csv"),
    ],
)
def test_shipped_expectations_agree_with_intel_matrix(samples: Path, instance_type: str, matrix_file: str) -> None:
    path = samples / "pmc" / "intel-optimization-zone-aws-pmu-matrix" / matrix_file
    with path.open() as fh:
        matrix = {row["Event Name"]: row["Status"] for row in csv.DictReader(fh)}
    expected = load_expectations(SHIPPED).for_target(instance_type)
    for perf_name, ours in MATRIX_NAMES.items():
        assert expected[ours][0] == MATRIX_STATES[matrix[perf_name]], (instance_type, ours)
        assert matrix_file.split(".events")[0] in expected[ours][1]
