"""Regression verdicts from history: is a value inside the band of its own earlier values?

History is every earlier NDJSON record (local directory or S3 prefix) of the same metric on the same
instance type (or, for lab and local machines, the same host), excluding the current run. Two bands:

- "mad" (default, robust): median ± k · 1.4826 · MAD. One wild earlier run barely moves it.
- "sigma": mean ± k · standard deviation (sample stdev), the classic control chart.

With fewer than `min_history` earlier values there is no verdict: the judgement says
"too little history (n=3 < 5)" instead of guessing. A sample's direction makes the band one-sided
("higher" is better: only values below the band regress; "lower": only values above).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from pytest_perfci.results.baseline import fmt
from pytest_perfci.results.model import Direction, Judgement, ResultRecord
from pytest_perfci.results.sources import read_records

Method = Literal["mad", "sigma"]
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this estimates its standard deviation
DEFAULT_K = 3.0
DEFAULT_MIN = 5


class History:
    def __init__(self, records: Iterable[ResultRecord], *, exclude_run: str | None = None,
                 k: float = DEFAULT_K, min_history: int = DEFAULT_MIN, method: Method = "mad") -> None:
        if k <= 0:
            raise ValueError(f"k must be positive, not {k}")
        if min_history < 2:
            raise ValueError(f"min_history must be at least 2, not {min_history}")
        self.k = k
        self.min_history = min_history
        self.method = method
        self.values: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.runs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in records:
            if r.kind != "measurement" or r.value is None or r.verdict in ("fail", "unavailable"):
                continue  # a failed or missing measurement is not a reference
            if exclude_run is not None and r.run_id == exclude_run:
                continue
            key = (r.infrastructure.key, r.name)
            self.values[key].append(r.value)
            self.runs[key].add(r.run_id)

    def __len__(self) -> int:
        return sum(len(v) for v in self.values.values())

    def judge(self, metric: str, value: float, where: str, direction: Direction = "both",
              unit: str = "") -> Judgement:
        """`where` is Infrastructure.key (instance type, or host:NAME)."""
        values = self.values.get((where, metric), [])
        n = len(values)
        runs = len(self.runs.get((where, metric), ()))
        u = f" {unit}".rstrip()
        label = where.removeprefix("host:")
        if n < self.min_history:
            return Judgement(
                source="history", verdict="insufficient", value=value, n=n,
                message=(f"{metric} = {fmt(value)}{u} on {label}: too little history (n={n} < {self.min_history}), "
                         "no regression verdict"),
            )
        return band_judgement(metric, value, values, k=self.k, method=self.method, direction=direction,
                              unit=unit, where=label, runs=runs)


def band(values: list[float], k: float, method: Method) -> tuple[float, float, str]:
    """(center, half-width, description) of the band."""
    if method == "mad":
        center = statistics.median(values)
        mad = statistics.median(abs(v - center) for v in values)
        return center, k * MAD_TO_SIGMA * mad, f"median {fmt(center)} ± {k:g}·1.4826·MAD ({fmt(mad)})"
    center = statistics.fmean(values)
    sd = statistics.stdev(values)
    return center, k * sd, f"mean {fmt(center)} ± {k:g}·σ ({fmt(sd)})"


def band_judgement(metric: str, value: float, values: list[float], *, k: float, method: Method,
                   direction: Direction = "both", unit: str = "", where: str = "", runs: int | None = None) -> Judgement:
    center, half, how = band(values, k, method)
    low = None if direction == "lower" else center - half
    high = None if direction == "higher" else center + half
    ok = (low is None or value >= low) and (high is None or value <= high)
    u = f" {unit}".rstrip()
    side = {"both": "", "higher": ", higher is better", "lower": ", lower is better"}[direction]
    size = f"n={len(values)}" + (f" from {runs} run{'s' if runs != 1 else ''}" if runs is not None else "")
    on = f" on {where}" if where else ""
    message = (f"{metric} = {fmt(value)}{u}{on} {'inside' if ok else 'outside'} history band "
               f"[{fmt(low)}, {fmt(high)}]{u} ({how}{side}; {size})")
    if not ok:
        message = f"regression: {message}"
    return Judgement(source="history", verdict="pass" if ok else "fail", message=message, value=value,
                     low=low, high=high, center=center, n=len(values))


def load_history(source: str, *, endpoint_url: str | None = None, region: str | None = None,
                 **kwargs: object) -> History:
    """History from a directory of NDJSON files or an s3://bucket/prefix (none yet: no history)."""
    records = read_records(source, endpoint_url=endpoint_url, region=region, missing_ok=True)
    return History(records, **kwargs)  # type: ignore[arg-type]
