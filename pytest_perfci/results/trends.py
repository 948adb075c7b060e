"""Series over time: one per metric and instance type, each point with the band it was judged against.

Pure (no I/O, no drawing): `perfci report` draws these (results.charts) and the step summary turns
them into Mermaid xycharts. The band at a point is the one results.history would have judged it by:
median ± k·1.4826·MAD (or mean ± k·σ) of the earlier runs' values of the same metric on the same
instance type, one-sided by the sample's direction, none with fewer than `min_history` earlier values.
A point is a regression when it left that band, or when the run itself recorded a failed baseline or
history verdict for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from pytest_perfci.results.baseline import fmt
from pytest_perfci.results.history import DEFAULT_K, DEFAULT_MIN, Method, band_judgement
from pytest_perfci.results.model import Direction, ResultRecord


class Point(BaseModel):
    at: datetime
    value: float
    run_id: str = ""
    low: float | None = None
    high: float | None = None
    center: float | None = None
    n: int = 0  # earlier values the band was computed from (0: no band)
    regressed: bool = False
    why: str = ""


class Series(BaseModel):
    metric: str
    where: str  # Infrastructure.key: instance type, or host:NAME
    unit: str = ""
    direction: Direction = "both"
    points: list[Point] = []

    @property
    def label(self) -> str:
        return self.where.removeprefix("host:")

    @property
    def regressions(self) -> list[Point]:
        return [p for p in self.points if p.regressed]


def build_series(records: Iterable[ResultRecord], *, k: float = DEFAULT_K, min_history: int = DEFAULT_MIN,
                 method: Method = "mad") -> list[Series]:
    groups: dict[tuple[str, str], list[ResultRecord]] = defaultdict(list)
    seen: set[tuple[str, str, str, str, datetime]] = set()  # the same run read twice (local copy and S3)
    for r in records:
        if r.kind == "measurement" and r.value is not None and r.verdict != "unavailable":
            once = (r.run_id, r.name, r.infrastructure.key, r.test, r.recorded_at)
            if once not in seen:
                seen.add(once)
                groups[(r.name, r.infrastructure.key)].append(r)
    out = []
    for (metric, where), recs in sorted(groups.items()):
        recs.sort(key=lambda r: r.recorded_at)
        last = recs[-1]
        series = Series(metric=metric, where=where, unit=last.unit, direction=last.direction)
        for i, r in enumerate(recs):
            assert r.value is not None
            earlier = [e.value for e in recs[:i] if e.run_id != r.run_id and e.verdict != "fail" and e.value is not None]
            point = Point(at=r.recorded_at, value=r.value, run_id=r.run_id)
            if len(earlier) >= min_history:
                j = band_judgement(metric, r.value, earlier, k=k, method=method, direction=r.direction,
                                   unit=r.unit, where=series.label)
                point = point.model_copy(update={"low": j.low, "high": j.high, "center": j.center, "n": len(earlier),
                                                 "regressed": j.failed, "why": j.message if j.failed else ""})
            recorded = [j for j in (r.baseline, r.history) if j is not None and j.failed]
            if recorded:
                point = point.model_copy(update={"regressed": True, "why": recorded[0].message})
            series.points.append(point)
        out.append(series)
    return out


# --- Mermaid (the step summary) ---------------------------------------------------------------------

MERMAID_POINTS = 20  # the newest points of a series; a step summary is read, not explored


def _num(value: float) -> str:
    return f"{value:.4g}"


def mermaid(series: Series) -> str:
    """A Mermaid xychart of the newest points, with the current band as two flat lines (GitHub renders
    ```mermaid blocks in step summaries); regressions are listed under it, since xychart cannot mark one."""
    points = series.points[-MERMAID_POINTS:]
    days = [f"{p.at:%m-%d}" for p in points]
    # short labels or they overlap: the day, or the run's ordinal when runs share a day
    labels = ", ".join(f'"{d}"' for d in (days if len(set(days)) == len(days) else
                                           [str(i) for i in range(1, len(points) + 1)]))
    values = [p.value for p in points]
    current = next((p for p in reversed(points) if p.n), None)
    lows = [current.low for _ in points] if current is not None and current.low is not None else []
    highs = [current.high for _ in points] if current is not None and current.high is not None else []
    everything = values + [v for v in lows + highs if v is not None]
    top, bottom = max(everything), min(everything)
    pad = (top - bottom) * 0.1 or abs(top) * 0.1 or 1.0
    unit = f" ({series.unit})" if series.unit else ""
    palette = '{"themeVariables": {"xyChart": {"plotColorPalette": "#1f2937, #2563eb, #2563eb"}}}'
    lines = ["```mermaid", f"%%{{init: {palette}}}%%", "xychart-beta", f'    title "{series.metric} on {series.label}"',
             f"    x-axis [{labels}]", f'    y-axis "{series.metric}{unit}" {_num(bottom - pad)} --> {_num(top + pad)}',
             f"    line [{', '.join(_num(v) for v in values)}]"]
    if lows:
        lines.append(f"    line [{', '.join(_num(v) for v in lows if v is not None)}]")
    if highs:
        lines.append(f"    line [{', '.join(_num(v) for v in highs if v is not None)}]")
    lines.append("```")
    return "\n".join(lines)


def summary_markdown(series_list: list[Series], *, limit: int = 12) -> str:
    """The trends section of a step summary: regressions first, then one xychart per series."""
    if not series_list:
        return ""
    regressed = [s for s in series_list if s.points and s.points[-1].regressed]
    ordered = regressed + [s for s in series_list if s not in regressed]
    out = ["### perfci trends", ""]
    if regressed:
        out += [f"**❌ {len(regressed)} series regressed in the newest run:**", ""]
        out += [f"- ❌ `{s.metric}` on `{s.label}`: {s.points[-1].why}" for s in regressed]
    else:
        out.append("✅ no series regressed in the newest run")
    out += ["", ("Dark line: the values (x: day, or run number when runs share a day); blue flat lines: the current "
            "history band (low, high) where there is one."), ""]
    for s in ordered[:limit]:
        out += [mermaid(s), ""]
        newest = s.points[-1]
        band = (f"band [{fmt(newest.low)}, {fmt(newest.high)}] from n={newest.n}" if newest.n
                else "too little history for a band")
        out += [f"{'❌' if newest.regressed else '✅'} newest {fmt(newest.value)} {s.unit} ({band})".rstrip()]
        earlier = [p for p in s.regressions if p is not newest]
        if earlier:  # xychart cannot mark a point, so the regressions are named under it
            out.append("regressed earlier: " + ", ".join(f"{p.at:%Y-%m-%d} ({p.run_id}, {fmt(p.value)})"
                                                         for p in earlier[-5:]))
        out.append("")
    if len(ordered) > limit:
        out += [f"... and {len(ordered) - limit} more series in the HTML report.", ""]
    return "\n".join(out)
