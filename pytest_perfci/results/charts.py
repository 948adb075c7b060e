"""History charts as inline SVG: Vega-Altair describes them, vl-convert renders them without a browser.

Why these two: a history chart is three layers (the band shaded, the values as a line, regressions as
red marks) and Altair says that declaratively in a few lines; vl-convert-python bundles the Vega
renderer in one wheel (no Node, no browser, no numpy/pandas stack) and returns plain SVG, so the
page stays a single self-contained file that works offline.
"""

from __future__ import annotations

from typing import Any

from pytest_perfci.results.trends import Series

VALUE = "#1f2937"
BAND = "#60a5fa"
REGRESSION = "#dc2626"


def _rows(series: Series) -> list[dict[str, Any]]:
    """One row per point; an open side of a one-sided band is shaded to the edge of the plotted values."""
    values = [p.value for p in series.points]
    bounds = [v for p in series.points for v in (p.low, p.high) if v is not None]
    top = max(values + bounds)
    bottom = min(values + bounds)
    pad = (top - bottom) * 0.08 or abs(top) * 0.08 or 1.0
    rows = []
    for p in series.points:
        low, high = p.low, p.high
        if p.n and low is None:
            low = bottom - pad
        if p.n and high is None:
            high = top + pad
        rows.append({"at": p.at.isoformat(), "value": p.value, "low": low, "high": high, "center": p.center,
                     "run": p.run_id, "regressed": p.regressed, "why": p.why})
    return rows


def chart_spec(series: Series, width: int = 560, height: int = 200) -> dict[str, Any]:
    import altair as alt

    data = alt.Data(values=_rows(series))
    unit = f" ({series.unit})" if series.unit else ""
    x = alt.X("at:T", title=None, axis=alt.Axis(labelAngle=-30))  # Vega picks days or hours by the span
    y_title = f"{series.metric}{unit}"
    base = alt.Chart(data).encode(x=x)
    band = base.transform_filter("datum.low != null && datum.high != null").mark_area(
        opacity=0.25, color=BAND, interpolate="step-after").encode(
        y=alt.Y("low:Q", title=y_title, scale=alt.Scale(zero=False)), y2="high:Q")
    center = base.transform_filter("datum.center != null").mark_line(
        color=BAND, strokeDash=[5, 3], interpolate="step-after").encode(y="center:Q")
    line = base.mark_line(color=VALUE, point=alt.OverlayMarkDef(color=VALUE, size=30)).encode(
        y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
        tooltip=["at:T", "value:Q", "run:N"])
    marks = base.transform_filter("datum.regressed").mark_point(
        shape="diamond", size=160, filled=True, color=REGRESSION, opacity=1).encode(
        y="value:Q", tooltip=["at:T", "value:Q", "run:N", "why:N"])
    direction = {"higher": "higher is better", "lower": "lower is better", "both": "should not move"}
    title = alt.TitleParams(f"{series.metric} on {series.label}", subtitle=direction[series.direction],
                            anchor="start")
    chart = alt.layer(band, center, line, marks).properties(width=width, height=height, title=title)
    spec: dict[str, Any] = chart.to_dict()
    return spec


def svg(series: Series) -> str:
    """The chart as an SVG element (no XML declaration), ready to inline in HTML."""
    import vl_convert

    out: str = vl_convert.vegalite_to_svg(chart_spec(series))
    return out[out.index("<svg"):]
