"""The end-of-run terminal view: one capability grid (capabilities x targets, the matrix's names and
states) and one table of recorded samples; each reason printed once, as a numbered note.

Rendering returns lines of (text, colour) segments and leaves writing to pytest's terminal writer,
which already honours NO_COLOR, FORCE_COLOR/PY_COLORS, --color and a non-TTY stdout.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_perfci.results.baseline import fmt
from pytest_perfci.results.matrix import Matrix, label
from pytest_perfci.results.model import ResultRecord
from pytest_perfci.results.states import STYLES, State

Segment = tuple[str, dict[str, bool]]
Line = list[Segment]

COLOURS: dict[State, dict[str, bool]] = {
    State.FAILED: {"red": True, "bold": True},
    State.AVAILABLE: {"green": True},
    State.ZERO: {"yellow": True},
    State.ONE_READER: {"yellow": True},
    State.PARTIAL: {"cyan": True},
    State.ABSENT: {},
    State.NOT_RUN: {},
}


def _cell_text(m: Matrix, cap: str, column: str, notes: dict[str, int]) -> tuple[str, State]:
    cell = m.cell(cap, column)
    if cell is None:
        return STYLES[State.NOT_RUN].mark, State.NOT_RUN
    text = STYLES[cell.state].mark
    if cell.code and cell.code != "OTHER":
        text += f" {cell.code}"
    if cell.reason in notes:
        text += f" [{notes[cell.reason]}]"
    return text, cell.state


def grid(m: Matrix, heads: dict[str, str] | None = None) -> list[Line]:
    """Rows: capabilities (matrix labels); columns: targets grouped by arch and metal/VM; then the
    notes, each reason (or an available cell's evidence) once; then where each target really ran (`heads`: target -> facts summary)."""
    notes: dict[str, int] = {}  # every cell's reason or evidence (an available count too), each once
    for cap in m.capabilities:
        for col in m.columns:
            cell = m.cell(cap, col)
            if cell is not None and cell.reason and cell.reason not in notes:
                notes[cell.reason] = len(notes) + 1
    cells = {(cap, col): _cell_text(m, cap, col, notes) for cap in m.capabilities for col in m.columns}
    first = max([len("capability"), *(len(label(c)) for c in m.capabilities)])
    widths = {col: max(len(col), len(m.group(col)), *(len(cells[(cap, col)][0]) for cap in m.capabilities))
              for col in m.columns}
    out: list[Line] = [
        [(f"{'':<{first}}  " + "  ".join(f"{m.group(c):<{widths[c]}}" for c in m.columns).rstrip(), {})],
        [(f"{'capability':<{first}}  " + "  ".join(f"{c:<{widths[c]}}" for c in m.columns).rstrip(),
          {"bold": True})],
    ]
    for cap in m.capabilities:
        line: Line = [(f"{label(cap):<{first}}", {})]
        for col in m.columns:
            text, state = cells[(cap, col)]
            padded = text if col == m.columns[-1] else f"{text:<{widths[col]}}"
            line += [("  ", {}), (padded, COLOURS[state])]
        out.append(line)
    counts = m.counts()
    summary: Line = []
    for state, n in counts.items():
        if n:
            summary += [("  " if summary else "", {}), (f"{n} {STYLES[state].label}", COLOURS[state])]
    out.append(summary)
    for reason, n in notes.items():
        out.append([(f"[{n}] {' '.join(reason.split())}", {})])
    for target, facts in (heads or {}).items():
        out.append([(f"{target}: {facts}".rstrip(": "), {})])
    return out


def _verdict(r: ResultRecord) -> tuple[str, dict[str, bool]]:
    judged = [j for j in (r.baseline, r.history) if j is not None]
    if any(j.failed for j in judged) or r.verdict == "fail":
        what = ", ".join(j.source for j in judged if j.failed)
        return (f"REGRESSION ({what})" if what else "fail"), {"red": True, "bold": True}
    if any(j.verdict == "pass" for j in judged):
        return f"{r.verdict}, in band", {"green": True}
    if any(j.verdict == "insufficient" for j in judged):
        return f"{r.verdict}, too little history", {}
    return r.verdict, {"green": True} if r.verdict == "pass" else {}


def samples_table(records: Iterable[ResultRecord]) -> list[Line]:
    """metric, target, value, verdict: one row per sample (regression details are printed above)."""
    rows = []
    for r in records:
        if r.kind != "measurement":
            continue
        value = "-" if r.value is None else f"{fmt(r.value)} {r.unit}".rstrip()
        rows.append((r.name, r.infrastructure.label, value, *_verdict(r)))
    if not rows:
        return []
    head = ("metric", "target", "value", "verdict")
    w = [max(len(head[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    out: list[Line] = [[(f"{head[0]:<{w[0]}}  {head[1]:<{w[1]}}  {head[2]:>{w[2]}}  {head[3]}", {"bold": True})]]
    for name, where, value, verdict, colour in rows:
        out.append([(f"{name:<{w[0]}}  {where:<{w[1]}}  {value:>{w[2]}}  ", {}), (verdict, colour)])
    return out
