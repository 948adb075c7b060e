"""The capability matrix: instance type x capability -> ✔ / ✘ reason, as Markdown and standalone HTML.

Rows are capabilities (a fixed, readable order for the ones the suites know, then any other
alphabetically) and columns are instance types (or host names for lab/local machines): the list of
capabilities is long and stable, the list of types is short, so this orientation stays readable in a
GitHub step summary. The newest record of a cell wins; a cell no test recorded reads "–" (not run).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pytest_perfci.results.model import Infrastructure, ResultRecord

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
)
_ORDER = {name: i for i, (name, _) in enumerate(KNOWN)}
_LABEL = dict(KNOWN)
MARKDOWN_CELL = 90  # characters of reason shown in a Markdown cell (the HTML page shows all of it)


class Cell(BaseModel):
    ok: bool
    reason: str = ""
    test: str = ""
    recorded_at: datetime | None = None


class Matrix(BaseModel):
    columns: list[str] = []  # instance types / host names
    hosts: dict[str, Infrastructure] = {}
    capabilities: list[str] = []
    cells: dict[str, dict[str, Cell]] = {}  # capability -> column -> cell
    run_ids: list[str] = []

    def cell(self, capability: str, column: str) -> Cell | None:
        return self.cells.get(capability, {}).get(column)


def build_matrix(records: Iterable[ResultRecord]) -> Matrix:
    caps = [r for r in records if r.kind == "capability"]
    caps.sort(key=lambda r: r.recorded_at)
    m = Matrix()
    for r in caps:
        column = r.infrastructure.label
        if column not in m.hosts:
            m.columns.append(column)
        m.hosts[column] = r.infrastructure
        reason = str(r.metadata.get("detail", "") or "")
        m.cells.setdefault(r.name, {})[column] = Cell(ok=r.verdict == "pass", reason=reason, test=r.test,
                                                      recorded_at=r.recorded_at)
        if r.run_id and r.run_id not in m.run_ids:
            m.run_ids.append(r.run_id)
    m.capabilities = sorted(m.cells, key=lambda c: (_ORDER.get(c, len(_ORDER)), c))
    m.columns.sort()
    return m


def label(capability: str) -> str:
    return _LABEL.get(capability, capability)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(m: Matrix, title: str = "perfci capability matrix") -> str:
    if not m.columns:
        return f"### {title}\n\nNo capability was recorded.\n"
    lines = [f"### {title}", ""]
    if m.run_ids:
        lines += [f"Run{'s' if len(m.run_ids) > 1 else ''}: {', '.join(f'`{r}`' for r in m.run_ids)}", ""]
    lines.append("| capability | " + " | ".join(f"`{_md_escape(c)}`" for c in m.columns) + " |")
    lines.append("|---|" + "---|" * len(m.columns))
    for cap in m.capabilities:
        row = [_md_escape(label(cap))]
        for column in m.columns:
            cell = m.cell(cap, column)
            if cell is None:
                row.append("–")
            else:
                mark = "✔" if cell.ok else "✘"
                row.append(f"{mark} {_md_escape(_short(cell.reason, MARKDOWN_CELL))}".rstrip())
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Hosts:", ""]
    for column in m.columns:
        infra = m.hosts[column]
        commit = f", code {infra.git_commit[:12]}" if infra.git_commit else ""
        lines.append(f"- `{_md_escape(column)}` ({infra.provider}): {_md_escape(infra.summary())}{commit}")
    lines.append("")
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .35em .6em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td.ok { background: #e9f7ec; }
td.no { background: #fdecea; }
td.none { color: #999; text-align: center; }
.mark { font-weight: bold; margin-right: .4em; }
.reason { font-size: .9em; }
caption { text-align: left; font-weight: bold; margin-bottom: .5em; }
"""


def render_html(m: Matrix, title: str = "perfci capability matrix") -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{e(title)}</h1>"]
    if m.run_ids:
        out.append(f"<p>Runs: {', '.join(f'<code>{e(r)}</code>' for r in m.run_ids)}</p>")
    if not m.columns:
        out += ["<p>No capability was recorded.</p>", "</body>", "</html>"]
        return "\n".join(out) + "\n"
    out.append("<table>")
    out.append("<tr><th>capability</th>" + "".join(
        f'<th title="{e(m.hosts[c].summary())}">{e(c)}<br><small>{e(m.hosts[c].arch)} {e(m.hosts[c].kind)}</small></th>'
        for c in m.columns) + "</tr>")
    for cap in m.capabilities:
        row = [f'<th title="{e(cap)}">{e(label(cap))}</th>']
        for column in m.columns:
            cell = m.cell(cap, column)
            if cell is None:
                row.append('<td class="none" title="not run">–</td>')
            else:
                cls, mark = ("ok", "✔") if cell.ok else ("no", "✘")
                row.append(f'<td class="{cls}" title="{e(cell.test)}"><span class="mark">{mark}</span>'
                           f'<span class="reason">{e(cell.reason)}</span></td>')
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</table>")
    out.append("<h2>Hosts</h2>")
    out.append("<ul>")
    for column in m.columns:
        infra = m.hosts[column]
        commit = f", code <code>{e(infra.git_commit)}</code>" if infra.git_commit else ""
        out.append(f"<li><code>{e(column)}</code> ({e(infra.provider)}): {e(infra.summary())}{commit}</li>")
    out += ["</ul>", "</body>", "</html>"]
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
    p.add_argument("results", nargs="+", metavar="RESULTS", help="NDJSON file, directory or s3://bucket/prefix")
    p.add_argument("--html", metavar="FILE", help="also write the standalone HTML page here")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown here instead of stdout")
    p.add_argument("--step-summary", action="store_true",
                   help="append the Markdown to $GITHUB_STEP_SUMMARY (error when it is not set)")
    p.add_argument("--title", default="perfci capability matrix")
    p.add_argument("--endpoint-url", default=None, help="S3 endpoint override (default AWS_ENDPOINT_URL)")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    import sys

    from pytest_perfci.results.model import ResultsFormatError
    from pytest_perfci.results.plugin import iter_records
    from pytest_perfci.results.s3 import S3_ERRORS, S3UrlError

    try:
        records = list(iter_records(args.results, endpoint_url=args.endpoint_url))
    except (ResultsFormatError, S3UrlError) as exc:
        print(f"perfci matrix: {exc}", file=sys.stderr)
        return 2
    except S3_ERRORS as exc:  # S3: no such bucket, no credentials, endpoint refused
        print(f"perfci matrix: cannot read {' '.join(args.results)}: {exc}", file=sys.stderr)
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
