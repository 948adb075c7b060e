"""Property: one set of counts rendered in every layout perf writes parses back to the same counts.

The renderers follow perf's own printf formats (tools/perf/util/stat-display.c): CSV ``-x<sep>``
with 5 or 7 fields and ``-r`` variance, ``-I`` interval prefixes with and without ``--summary``,
``-j`` JSON lines, the human table with ``%'`` thousands grouping, and the locales perf inherits
through ``setlocale`` (decimal comma, ``.``/U+202F/Indian grouping). The layouts themselves are
checked against real recordings in tests/data/samples/pmc/recorded-locales-intervals; here the
numbers vary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_perfci.checks.perf_stat import parse_perf_stat

EVENTS = ("cycles", "instructions", "branches", "branch-misses", "cache-misses", "page-faults")


@dataclass(frozen=True)
class Locale:
    decimal: str
    group: str  # thousands separator of the human table
    indian: bool = False


LOCALES = {
    "C": Locale(".", ","),
    "de_DE": Locale(",", "."),
    "fr_FR": Locale(",", "\u202f"),
    "en_IN": Locale(".", ",", indian=True),
}


@dataclass(frozen=True)
class Ev:
    name: str
    count: int  # what the task really did (the unscaled count when there is no multiplexing)
    pct: float  # pcnt-running, 2 decimals
    variance: float
    hybrid_share: float | None  # None: one PMU; else the task's residency on cpu_core (0.01..0.99)


def _grouped(n: int, loc: Locale) -> str:
    digits = str(n)
    if loc.indian and len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        pairs = []
        while len(head) > 2:
            pairs.insert(0, head[-2:])
            head = head[:-2]
        return loc.group.join([head, *pairs, tail])
    parts = []
    while len(digits) > 3:
        parts.insert(0, digits[-3:])
        digits = digits[:-3]
    return loc.group.join([digits, *parts])


def _dec(x: float, places: int, loc: Locale) -> str:
    return f"{x:.{places}f}".replace(".", loc.decimal)


def _lines_of(ev: Ev) -> list[tuple[str, int, float]]:
    """(event text, printed scaled value, pct) per PMU line, as perf prints them."""
    if ev.hybrid_share is None:
        scaled = round(ev.count / (ev.pct / 100))
        return [(ev.name, scaled, ev.pct)]
    out = []
    for pmu, share in (("cpu_core", ev.hybrid_share), ("cpu_atom", 1 - ev.hybrid_share)):
        pct = round(share * 100, 2)
        raw = round(ev.count * share)
        out.append((f"{pmu}/{ev.name}/", round(raw / (pct / 100)), pct))
    return out


def render_csv(evs: list[Ev], sep: str, loc: Locale, fields: int, repeat: bool, prefix: str = "") -> str:
    """fields: 5 (old, no metric), 7 (metric columns), 8 (7 + the -G cgroup column after the event)."""
    rows = []
    for ev in evs:
        for text, value, pct in _lines_of(ev):
            cols = [str(value), "", text]
            if repeat:
                cols.append(_dec(ev.variance, 2, loc) + "%")
            if fields == 8:
                cols.append("system.slice/bench.service")
            cols += ["1000", _dec(pct, 2, loc)]
            if fields >= 7:
                cols += [_dec(1.5, 2, loc), "GHz"]
            rows.append(prefix + sep.join(cols))
    return "\n".join(rows) + "\n"


def render_json(evs: list[Ev], loc: Locale, interval: float | None = None) -> str:
    rows = []
    for ev in evs:
        for text, value, pct in _lines_of(ev):
            doc = {
                "counter-value": f"{value:.6f}".replace(".", loc.decimal),
                "unit": "",
                "event": text,
                "event-runtime": 1000,
                "pcnt-running": "PCT",
                "metric-value": 1.5,
                "metric-unit": "GHz",
            }
            if interval is not None:
                doc = {"interval": interval, **doc}
            # perf prints the number with %.2f in the locale: `100,00` (not valid JSON) in de_DE
            rows.append(json.dumps(doc).replace('"PCT"', _dec(pct, 2, loc)))
    return "\n".join(rows) + "\n"


def render_human(evs: list[Ev], loc: Locale, repeat: bool, ts: str = "", header: bool = True) -> str:
    rows = [" Performance counter stats for './workload':", ""] if header else []
    for ev in evs:
        for text, value, pct in _lines_of(ev):
            line = f"{ts}{_grouped(value, loc):>18}      {text:<25} #    {_dec(1.5, 3, loc)} GHz"
            if repeat:
                line += f"   ( +- {_dec(ev.variance, 2, loc):>5}% )"
            if pct < 100:
                line += f"  ({_dec(pct, 2, loc)}%)"
            rows.append(line)
    if header:
        rows += ["", f"       {_dec(1.004244114, 9, loc)} seconds time elapsed", ""]
    return "\n".join(rows) + "\n"


def _pct() -> st.SearchStrategy[float]:
    return st.integers(min_value=5000, max_value=10000).map(lambda n: n / 100)


@st.composite
def event_sets(draw: st.DrawFn, hybrid: bool = False) -> list[Ev]:
    names = draw(st.lists(st.sampled_from(EVENTS), min_size=1, max_size=len(EVENTS), unique=True))
    evs = []
    for name in names:
        share = draw(st.integers(min_value=1, max_value=99).map(lambda n: n / 100)) if hybrid else None
        evs.append(Ev(
            name=name,
            count=draw(st.integers(min_value=1_000, max_value=10**12)),
            pct=100.0 if hybrid else draw(_pct()),
            variance=draw(st.integers(min_value=0, max_value=9999).map(lambda n: n / 100)),
            hybrid_share=share,
        ))  # fmt: skip
    return evs


def _scaled_total(ev: Ev) -> float:
    return float(sum(v for _, v, _ in _lines_of(ev)))


def _check(text: str, evs: list[Ev], runs: int = 1) -> None:
    stat = parse_perf_stat(text)
    assert stat.runs == list(range(runs)), text
    for run in range(runs):
        for ev in evs:
            got = stat.get(ev.name, run=run)
            assert got is not None, (ev, text)
            if ev.hybrid_share is None:
                assert got.value == _scaled_total(ev), (ev, got, text)
                assert got.running_pct == ev.pct
            else:
                # each PMU's raw count is recovered to within perf's rounding of value and pct
                assert got.value == pytest.approx(ev.count, abs=3, rel=1e-4), (ev, got, text)
                assert got.residency and got.running_pct == pytest.approx(100.0, abs=0.02)
                assert got.pmu_pct["cpu_core"] == round(ev.hybrid_share * 100, 2)


SEPS = [",", ";", "\t", "|", "!"]
PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(
    evs=event_sets(),
    sep=st.sampled_from(SEPS),
    loc=st.sampled_from(sorted(LOCALES)),
    fields=st.sampled_from([5, 7]),
    repeat=st.booleans(),
)
def test_csv_any_separator_locale_and_width(
    evs: list[Ev], sep: str, loc: str, fields: int, repeat: bool
) -> None:
    _check(render_csv(evs, sep, LOCALES[loc], fields, repeat), evs)


@PROPERTY
@given(evs=event_sets(), loc=st.sampled_from(sorted(LOCALES)))
def test_json_lines(evs: list[Ev], loc: str) -> None:
    _check(render_json(evs, LOCALES[loc]), evs)


@PROPERTY
@given(evs=event_sets(), loc=st.sampled_from(sorted(LOCALES)), repeat=st.booleans())
def test_human_table(evs: list[Ev], loc: str, repeat: bool) -> None:
    _check(render_human(evs, LOCALES[loc], repeat), evs)


@PROPERTY
@given(
    evs=event_sets(hybrid=True),
    layout=st.sampled_from(["csv", "json", "human"]),
    loc=st.sampled_from(sorted(LOCALES)),
)
def test_hybrid_task_counts_are_unscaled_sums(evs: list[Ev], layout: str, loc: str) -> None:
    text = {
        "csv": lambda: render_csv(evs, ";", LOCALES[loc], 7, False),
        "json": lambda: render_json(evs, LOCALES[loc]),
        "human": lambda: render_human(evs, LOCALES[loc], False),
    }[layout]()
    _check(text, evs)


@PROPERTY
@given(
    evs=event_sets(),
    runs=st.integers(min_value=2, max_value=3),
    layout=st.sampled_from(["csv", "json"]),
    sep=st.sampled_from(SEPS),
)
def test_pasted_runs_without_header_are_split_not_summed(
    evs: list[Ev], runs: int, layout: str, sep: str
) -> None:
    one = render_csv(evs, sep, LOCALES["C"], 7, False) if layout == "csv" else render_json(evs, LOCALES["C"])
    _check(one * runs, evs, runs=runs)


@PROPERTY
@given(
    evs=event_sets(),
    n=st.integers(min_value=1, max_value=4),
    summary=st.sampled_from(["csv", "plain", "none"]),
    layout=st.sampled_from(["csv", "json", "human"]),
)
def test_intervals_then_summary_are_not_summed_twice(
    evs: list[Ev], n: int, summary: str, layout: str
) -> None:
    """Intervals split each count in n parts; with --summary the total is printed once more."""
    parts = [
        [Ev(e.name, e.count // n + (e.count % n if i == 0 else 0), e.pct, e.variance, None) for e in evs]
        for i in range(n)
    ]
    loc = LOCALES["C"]
    chunks = []
    for i, part in enumerate(parts):
        ts = f"{(i + 1) * 1.000123456:.9f}"
        if layout == "csv":
            chunks.append(render_csv(part, ",", loc, 7, False, prefix=f"{ts:>16},"))
        elif layout == "json":
            chunks.append(render_json(part, loc, interval=float(ts)))
        else:
            chunks.append(render_human(part, loc, False, ts=f"{ts:>16} ", header=False))
    if summary != "none":
        if layout == "csv":
            chunks.append(
                render_csv(evs, ",", loc, 7, False, prefix=f"{'summary':>16}," if summary == "csv" else "")
            )
        elif layout == "json":
            chunks.append(render_json(evs, loc))
        else:
            chunks.append(render_human(evs, loc, False))
    stat = parse_perf_stat("".join(chunks))
    assert stat.runs == [0]
    for ev in evs:
        got = stat.get(ev.name)
        assert got is not None
        if summary == "none" and layout != "human":
            # no summary: the intervals are disjoint slices and add up to the whole
            assert got.value == sum(_scaled_total(p) for part in parts for p in part if p.name == ev.name)
        elif summary != "none":
            assert got.value == _scaled_total(ev)
