"""Baseline and history verdicts: the measured value, the band and the history size, or why there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfci.results.baseline import BaselineEntry, BaselineError, judge_baseline, load_baselines
from pytest_perfci.results.history import History, band_judgement
from pytest_perfci.results.model import Infrastructure, ResultRecord

M7I = Infrastructure(provider="ec2", target="m7i.metal-24xl", instance_type="m7i.metal-24xl")
C7G = Infrastructure(provider="ec2", target="c7g.metal", instance_type="c7g.metal")


def test_baseline_directions_and_tolerances() -> None:
    both = BaselineEntry(metric="pmc.instructions", expected=1000.0, tolerance="2%")
    assert judge_baseline(both, 1019.0).verdict == "pass"
    j = judge_baseline(both, 1021.0, "count")
    assert j.verdict == "fail" and (j.low, j.high) == (980.0, 1020.0)
    assert j.message == ("pmc.instructions = 1021 count outside baseline 1000 count ± 2%: must be 980 .. 1020")
    lower = BaselineEntry(metric="pmc.cpi", expected=1.0, tolerance=0.1, direction="lower")
    assert judge_baseline(lower, 0.2).verdict == "pass"  # faster is never a regression
    assert judge_baseline(lower, 1.11).verdict == "fail"
    assert "must be <= 1.1 (lower is better)" in judge_baseline(lower, 1.11).message
    higher = BaselineEntry(metric="mba.mibps", expected=10000, tolerance="10%", direction="higher")
    assert judge_baseline(higher, 50000).verdict == "pass"
    assert judge_baseline(higher, 8999).verdict == "fail"


def test_baseline_file_instance_type_entry_wins(tmp_path: Path) -> None:
    path = tmp_path / "baseline.toml"
    path.write_text(
        '[[baseline]]\nmetric = "pmc.cpi"\nexpected = 1.0\ntolerance = "10%"\ndirection = "lower"\n\n'
        '[[baseline]]\nmetric = "pmc.cpi"\ninstance_type = "c7g.metal"\nexpected = 0.5\ntolerance = 0.05\n'
        'direction = "lower"\n'
    )
    b = load_baselines(path)
    assert b.judge("pmc.cpi", 0.9, "", M7I).verdict == "pass"  # type: ignore[union-attr]
    j = b.judge("pmc.cpi", 0.9, "", C7G)
    assert j is not None and j.verdict == "fail" and "for c7g.metal" in j.message
    assert b.judge("pmc.other", 1.0, "", M7I) is None  # no entry: no baseline verdict


@pytest.mark.parametrize(("text", "message"), [
    ('[[baseline]]\nmetric = "x"\n', r"entry 1 \(expected\): Field required"),
    ('[[baseline]]\nmetric = "x"\nexpected = 1\ntolerance = "5"\n', r"a number, or a percentage"),
    ('[[baseline]]\nmetric = "x"\nexpected = 1\ndirection = "up"\n', r"entry 1 \(direction\)"),
    ("[[baseline\n", r"not TOML"),
])
def test_bad_baseline_files_say_which_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(BaselineError, match=message):
        load_baselines(path)
    with pytest.raises(BaselineError, match="No such file"):
        load_baselines(tmp_path / "missing.toml")


def history_of(values: list[float], infra: Infrastructure = M7I, name: str = "pmc.cpi",
               run: str = "old") -> list[ResultRecord]:
    return [ResultRecord(name=name, value=v, run_id=f"{run}-{i}", infrastructure=infra) for i, v in enumerate(values)]


def test_too_little_history_says_so_instead_of_guessing() -> None:
    h = History(history_of([1.0, 1.01, 0.99]), min_history=5)
    j = h.judge("pmc.cpi", 9.0, "m7i.metal-24xl")
    assert j.verdict == "insufficient" and j.n == 3 and not j.failed
    assert j.message == ("pmc.cpi = 9 on m7i.metal-24xl: too little history (n=3 < 5), no regression verdict")
    # Another instance type's history is not this one's.
    assert History(history_of([1.0] * 10, C7G)).judge("pmc.cpi", 1.0, "m7i.metal-24xl").n == 0


def test_robust_band_ignores_one_wild_earlier_run_where_sigma_does_not() -> None:
    values = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 50.0]  # one broken run in the history
    mad = History(history_of(values), method="mad").judge("pmc.cpi", 1.3, "m7i.metal-24xl")
    sigma = History(history_of(values), method="sigma").judge("pmc.cpi", 1.3, "m7i.metal-24xl")
    assert mad.verdict == "fail" and sigma.verdict == "pass"
    assert mad.message.startswith("regression: pmc.cpi = 1.3 on m7i.metal-24xl outside history band [")
    assert "median 1 ± 3·1.4826·MAD (0.01)" in mad.message and "n=9 from 9 runs" in mad.message
    assert mad.n == 9 and mad.low == pytest.approx(1 - 3 * 1.4826 * 0.01)


def test_sigma_band_numbers() -> None:
    j = band_judgement("m", 13.0, [10.0, 11.0, 12.0, 9.0, 8.0], k=2, method="sigma")
    # mean 10, sample stdev 1.5811: band [6.84, 13.16]
    assert j.verdict == "pass" and j.center == 10.0 and j.high == pytest.approx(10 + 2 * 1.5811388, rel=1e-6)
    assert band_judgement("m", 13.5, [10.0, 11.0, 12.0, 9.0, 8.0], k=2, method="sigma").verdict == "fail"


def test_direction_makes_the_band_one_sided_and_current_run_is_excluded() -> None:
    records = history_of([100.0, 101.0, 99.0, 100.0, 100.0, 101.0]) + history_of([1.0] * 6, run="now")
    h = History(records, exclude_run="now-0")
    assert h.values[("m7i.metal-24xl", "pmc.cpi")].count(1.0) == 5  # only now-0 was excluded
    h = History(history_of([100.0, 101.0, 99.0, 100.0, 100.0, 101.0]))
    assert h.judge("bw", 1.0, "m7i.metal-24xl").verdict == "insufficient"
    assert h.judge("pmc.cpi", 500.0, "m7i.metal-24xl", direction="higher").verdict == "pass"
    assert h.judge("pmc.cpi", 50.0, "m7i.metal-24xl", direction="higher").verdict == "fail"
    assert h.judge("pmc.cpi", 50.0, "m7i.metal-24xl", direction="lower").verdict == "pass"


def test_failed_and_unavailable_samples_are_not_history() -> None:
    recs = history_of([1.0] * 5) + [ResultRecord(name="pmc.cpi", value=9.0, verdict="fail", infrastructure=M7I),
                                     ResultRecord(name="pmc.cpi", verdict="unavailable", infrastructure=M7I)]
    assert History(recs).judge("pmc.cpi", 1.0, "m7i.metal-24xl").n == 5
