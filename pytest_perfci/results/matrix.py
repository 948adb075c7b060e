"""The capability matrix: instance type x capability -> state (results.states), as Markdown and HTML.

Rows are capabilities (a fixed, readable order for the ones the suites know, then any other
alphabetically) and columns are instance types (or host names for lab/local machines): the list of
capabilities is long and stable, the list of types is short, so this orientation stays readable in a
GitHub step summary. The newest record of a cell wins; a cell no test recorded reads "not run".
Columns are grouped by architecture and metal/VM; a cell shows its state and a short reason code, and
the full reason appears once (a numbered note in Markdown, a tooltip in HTML).
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pytest_perfci.results.model import Infrastructure, ResultRecord
from pytest_perfci.results.sources import UnreadableResults, add_source_arguments, read_all
from pytest_perfci.results.states import ORDER, STYLES, State, cell_verdict

# (capability name as recorded, label shown)
KNOWN: tuple[tuple[str, str], ...] = (
    ("cycles", "PMC cycles"),
    ("instructions", "PMC instructions"),
    ("cpi", "PMC cycles/instructions plausible (CPI)"),
    ("cache-references", "PMC cache-references"),
    ("cache-misses", "PMC cache-misses"),
    ("branches", "PMC branches"),
    ("branch-misses", "PMC branch-misses"),
    ("ref-cycles", "PMC ref-cycles"),
    ("stalled-cycles-frontend", "PMC stalled-cycles-frontend"),
    ("stalled-cycles-backend", "PMC stalled-cycles-backend"),
    ("rdt_hardware", "resctrl: hardware (RDT/MPAM)"),
    ("resctrl_kernel", "resctrl: kernel support"),
    ("resctrl_mount", "resctrl: mounted"),
    ("resctrl", "resctrl: usable"),
    ("l3_cat", "CAT L3"),
    ("l2_cat", "CAT L2"),
    ("mba", "MBA"),
    ("llc_occupancy", "monitoring: LLC occupancy (CMT)"),
    ("mbm", "monitoring: memory bandwidth (MBM)"),
    ("target", "target came up"),
)
_ORDER = {name: i for i, (name, _) in enumerate(KNOWN)}
_LABEL = dict(KNOWN)


class Cell(BaseModel):
    state: State
    code: str = ""  # short reason code shown in the cell ("" for an available cell)
    reason: str = ""  # the full reason, shown once (footnote / tooltip)
    test: str = ""
    outcome: str | None = None
    run_id: str = ""
    recorded_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.state is State.AVAILABLE


class Matrix(BaseModel):
    columns: list[str] = []  # instance types / host names, grouped by architecture and metal/VM
    hosts: dict[str, Infrastructure] = {}
    capabilities: list[str] = []
    cells: dict[str, dict[str, Cell]] = {}  # capability -> column -> cell
    run_ids: list[str] = []

    def cell(self, capability: str, column: str) -> Cell | None:
        return self.cells.get(capability, {}).get(column)

    def group(self, column: str) -> str:
        """The column's group: architecture and metal/VM ("x86_64 · metal")."""
        infra = self.hosts[column]
        return f"{infra.arch} · {infra.kind}"

    def groups(self) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        for column in self.columns:
            g = self.group(column)
            if out and out[-1][0] == g:
                out[-1][1].append(column)
            else:
                out.append((g, [column]))
        return out

    @property
    def merged(self) -> bool:
        """Several runs: each cell says which run and day it comes from."""
        return len(self.run_ids) > 1

    def counts(self) -> dict[State, int]:
        """Cells per state; a cell no test recorded counts as not run."""
        out = dict.fromkeys(ORDER, 0)
        for cap in self.capabilities:
            for column in self.columns:
                cell = self.cell(cap, column)
                out[cell.state if cell is not None else State.NOT_RUN] += 1
        return out

    def notes(self) -> dict[str, int]:
        """Full reason -> footnote number, each reason once, in reading order (available cells' details
        are tooltips only)."""
        out: dict[str, int] = {}
        for cap in self.capabilities:
            for column in self.columns:
                cell = self.cell(cap, column)
                if cell is not None and not cell.ok and cell.reason and cell.reason not in out:
                    out[cell.reason] = len(out) + 1
        return out


# The row a run shows when no target recorded any capability (every target's column is "not run").
TARGET_ROW = "target"


def build_matrix(records: Iterable[ResultRecord]) -> Matrix:
    records = list(records)
    caps = [r for r in records if r.kind == "capability"]
    caps.sort(key=lambda r: r.recorded_at)
    m = Matrix()
    for r in caps:
        column = r.infrastructure.label
        m.hosts[column] = r.infrastructure
        v = cell_verdict(r)
        m.cells.setdefault(r.name, {})[column] = Cell(
            state=v.state, code=v.code, reason=v.reason, test=r.test, outcome=r.outcome, run_id=r.run_id,
            recorded_at=r.recorded_at)
        if r.run_id and r.run_id not in m.run_ids:
            m.run_ids.append(r.run_id)
    _not_run_columns(m, [r for r in records if r.kind == "target"])
    m.capabilities = sorted(m.cells, key=lambda c: (_ORDER.get(c, len(_ORDER)), c))
    m.columns = sorted(m.hosts, key=lambda c: (m.hosts[c].arch, m.hosts[c].kind, c))
    return m


def _not_run_columns(m: Matrix, targets: list[ResultRecord]) -> None:
    """A target no test ran on: its column, every cell "not run" with the target's reason code and the
    full reason (once, as a note). A column that has cells of its own (another run merged in) keeps them."""
    for r in targets:
        column = r.infrastructure.label
        v = cell_verdict(r)
        if column not in m.hosts:
            m.hosts[column] = r.infrastructure
        if r.run_id and r.run_id not in m.run_ids:
            m.run_ids.append(r.run_id)
        for cap in list(m.cells) or [TARGET_ROW]:
            row = m.cells.setdefault(cap, {})
            if column not in row:
                row[column] = Cell(state=State.NOT_RUN, code=v.code, reason=v.reason, test=r.test, run_id=r.run_id,
                                   recorded_at=r.recorded_at)


def label(capability: str) -> str:
    return _LABEL.get(capability, capability)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _when(cell: Cell) -> str:
    day = cell.recorded_at.strftime("%Y-%m-%d") if cell.recorded_at else "?"
    return f"{day} · {cell.run_id or '?'}"


def headline(m: Matrix, symbols: bool = False) -> str:
    """One line a reader sees first: FAILED cells lead, so a failing run never looks like a healthy one."""
    counts = m.counts()
    parts = []
    for state in ORDER:
        if counts[state]:
            style = STYLES[state]
            text = f"{style.symbol if symbols else style.emoji} {counts[state]} {style.label}"
            parts.append(f"**{text}**" if state is State.FAILED else text)
    if not counts[State.FAILED]:
        parts.insert(0, "**no FAILED cell**")
    return " · ".join(parts)


def legend_markdown(m: Matrix) -> str:
    present = {c.state for row in m.cells.values() for c in row.values()} | {State.FAILED, State.AVAILABLE}
    if any(m.cell(cap, col) is None for cap in m.capabilities for col in m.columns):
        present.add(State.NOT_RUN)
    return "Legend: " + " · ".join(f"{STYLES[s].emoji} {STYLES[s].label} ({STYLES[s].meaning})"
                                   for s in ORDER if s in present)


def render_markdown(m: Matrix, title: str = "perfci capability matrix", allure: dict[str, str] | None = None) -> str:
    """GitHub Markdown (step summary, matrix.md): emoji states, short codes, full reasons once below."""
    if not m.columns:
        return f"### {title}\n\nNo capability was recorded.\n"
    lines = [f"### {title}", "", headline(m), ""]
    if m.run_ids:
        lines += [f"Run{'s' if m.merged else ''}: {', '.join(f'`{r}`' for r in m.run_ids)}", ""]
    notes = m.notes()
    lines.append("| capability | " + " | ".join(
        f"`{_md_escape(c)}`<br>{_md_escape(m.group(c))}" for c in m.columns) + " |")
    lines.append("|---|" + ":---:|" * len(m.columns))
    for cap in m.capabilities:
        row = [_md_escape(label(cap))]
        for column in m.columns:
            cell = m.cell(cap, column)
            if cell is None:
                row.append(STYLES[State.NOT_RUN].emoji)
                continue
            text = STYLES[cell.state].emoji
            if cell.state is State.FAILED:
                text += " **FAILED**"
            if cell.code:
                text += f" {cell.code}"
            if cell.reason in notes and not cell.ok:
                text += str(notes[cell.reason]).translate(_SUPERSCRIPT)
            link = (allure or {}).get(cell.test)
            if link:
                text = f"[{text}]({link})"
            if m.merged:
                text += f"<br><sub>{_md_escape(_when(cell))}</sub>"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", legend_markdown(m), ""]
    if notes:
        lines += ["Notes:", ""]
        lines += [f"{n}. {_md_escape(' '.join(reason.split()))}" for reason, n in notes.items()]
        lines.append("")
    lines += ["Hosts:", ""]
    for column in m.columns:
        infra = m.hosts[column]
        commit = f", code {infra.git_commit[:12]}" if infra.git_commit else ""
        lines.append(f"- `{_md_escape(column)}` ({infra.provider}): {_md_escape(infra.summary())}{commit}")
    lines.append("")
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table.matrix { border-collapse: collapse; }
.matrix th, .matrix td { border: 1px solid #ccc; padding: .35em .6em; vertical-align: top; text-align: left; }
.matrix th { background: #f4f4f4; }
.matrix th.group { text-align: center; background: #e8e8ef; }
.matrix td { text-align: center; white-space: nowrap; }
td.ok { background: #e6f4ea; }
td.failed { background: #d93025; color: #fff; font-weight: bold; }
td.failed a { color: #fff; }
td.absent { background: #f1f3f4; color: #5f6368; }
td.zero { background: #fef7e0; }
td.onereader { background: #feefe3; }
td.partial { background: #e8f0fe; }
td.notrun { color: #9aa0a6; }
.code { font-family: ui-monospace, monospace; font-size: .85em; }
.when { display: block; font-size: .75em; font-weight: normal; }
.legend span { display: inline-block; margin: .2em .8em .2em 0; padding: .1em .4em; border: 1px solid #ccc; }
.headline { font-size: 1.1em; }
"""


def _cell_html(m: Matrix, cell: Cell | None, cap: str, column: str, allure: dict[str, str]) -> str:
    e = html.escape
    if cell is None:
        return f'<td class="notrun" title="not run: no test recorded {e(cap)} on {e(column)}">{STYLES[State.NOT_RUN].symbol}</td>'
    style = STYLES[cell.state]
    tip = f"{style.label}: {cell.reason}" if cell.reason else style.label
    if cell.test:
        tip += f"\n{cell.test}" + (f" ({cell.outcome})" if cell.outcome else "")
    body = f"{style.symbol} " + ("FAILED " if cell.state is State.FAILED else "")
    if cell.code:
        body += f'<span class="code">{e(cell.code)}</span>'
    if m.merged:
        body += f'<span class="when">{e(_when(cell))}</span>'
    link = allure.get(cell.test)
    if link:
        body = f'<a href="{e(link)}">{body}</a>'
    return f'<td class="{style.css}" data-state="{cell.state.value}" title="{e(tip)}">{body}</td>'


def render_table_html(m: Matrix, allure: dict[str, str] | None = None) -> str:
    """The matrix as an HTML fragment (for matrix.html and `perfci report`): column groups by
    architecture and metal/VM, full reasons as tooltips, a legend; cells link to their Allure test
    when `allure` maps test node ids to URLs."""
    e = html.escape
    out = [f'<p class="headline">{_md_inline(headline(m, symbols=True))}</p>', '<table class="matrix">',
           '<tr><th rowspan="2">capability</th>' + "".join(
               f'<th class="group" colspan="{len(cols)}">{e(g)}</th>' for g, cols in m.groups()) + "</tr>",
           "<tr>" + "".join(f'<th title="{e(m.hosts[c].summary())}">{e(c)}</th>' for c in m.columns) + "</tr>"]
    for cap in m.capabilities:
        row = [f'<th title="{e(cap)}">{e(label(cap))}</th>']
        row += [_cell_html(m, m.cell(cap, column), cap, column, allure or {}) for column in m.columns]
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</table>")
    out.append('<p class="legend">' + "".join(
        f'<span class="{STYLES[s].css}" title="{e(STYLES[s].meaning)}">{STYLES[s].symbol} {e(STYLES[s].label)}</span>'
        for s in ORDER) + "</p>")
    return "\n".join(out)


def _md_inline(text: str) -> str:
    """The headline's **bold** as <strong>, the rest escaped."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def hosts_html(m: Matrix) -> str:
    e = html.escape
    out = ["<h2>Hosts</h2>", "<ul>"]
    for column in m.columns:
        infra = m.hosts[column]
        commit = f", code <code>{e(infra.git_commit)}</code>" if infra.git_commit else ""
        out.append(f"<li><code>{e(column)}</code> ({e(infra.provider)}): {e(infra.summary())}{commit}</li>")
    out.append("</ul>")
    return "\n".join(out)


def render_html(m: Matrix, title: str = "perfci capability matrix", allure: dict[str, str] | None = None) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{e(title)}</h1>"]
    if m.run_ids:
        out.append(f"<p>Runs: {', '.join(f'<code>{e(r)}</code>' for r in m.run_ids)}</p>")
    if not m.columns:
        out += ["<p>No capability was recorded.</p>", "</body>", "</html>"]
        return "\n".join(out) + "\n"
    out += [render_table_html(m, allure), hosts_html(m), "</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_matrix(records: Iterable[ResultRecord], directory: Path, title: str = "perfci capability matrix",
                 step_summary: bool = True) -> tuple[Path, Path, Matrix]:
    """matrix.md and matrix.html in directory; the Markdown is appended to $GITHUB_STEP_SUMMARY when set."""
    m = build_matrix(records)
    directory.mkdir(parents=True, exist_ok=True)
    md = render_markdown(m, title)
    md_path = directory / "matrix.md"
    html_path = directory / "matrix.html"
    md_path.write_text(md, encoding="utf-8")
    html_path.write_text(render_html(m, title), encoding="utf-8")
    if step_summary:
        append_step_summary(md)
    return md_path, html_path, m


def append_step_summary(markdown: str) -> Path | None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


# --- perfci matrix RESULTS... ---------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "matrix",
        help="capability matrix (instance type x capability) from NDJSON results",
        description=(
            "Read perfci NDJSON results (files, directories searched for *.ndjson, or s3://bucket/prefix) "
            "and print the capability matrix as Markdown: instance type x capability -> ✔ / ✘ reason; the "
            "newest record of a cell wins. Exit 0 when a matrix was rendered, 2 when the input is unreadable "
            "or holds no capability record."
        ),
    )
    add_source_arguments(p)
    p.add_argument("--html", metavar="FILE", help="also write the standalone HTML page here")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown here instead of stdout")
    p.add_argument("--step-summary", action="store_true",
                   help="append the Markdown to $GITHUB_STEP_SUMMARY (error when it is not set)")
    p.add_argument("--title", default="perfci capability matrix")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    try:
        records = read_all(args.results, endpoint_url=args.endpoint_url)
    except UnreadableResults as exc:
        print(f"perfci matrix: {exc}", file=sys.stderr)
        return 2
    m = build_matrix(records)
    if not m.columns:
        print(f"perfci matrix: no capability record in {' '.join(args.results)} "
              f"({len(records)} record(s) read)", file=sys.stderr)
        return 2
    md = render_markdown(m, args.title)
    if args.markdown:
        Path(args.markdown).write_text(md, encoding="utf-8")
    else:
        sys.stdout.write(md)
    if args.html:
        Path(args.html).write_text(render_html(m, args.title), encoding="utf-8")
    if args.step_summary and append_step_summary(md) is None:
        print("perfci matrix: --step-summary: GITHUB_STEP_SUMMARY is not set", file=sys.stderr)
        return 2
    return 0
