"""`perfci report RESULTS_OR_HISTORY... -o DIR`: one static page people look at, plus its step summary.

DIR/index.html: the capability matrix (states, reason codes, tooltips) and, per metric and instance
type, its history as a chart with the band shaded and regressions marked -- a single self-contained
file (inline CSS and SVG, no script, no network), so it opens from an artifact, a mail or GitHub Pages
alike. DIR/summary.md: the same matrix in Markdown and the same series as Mermaid xycharts, for
$GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from pytest_perfci.results.baseline import fmt
from pytest_perfci.results.history import DEFAULT_K, DEFAULT_MIN, MAD_TO_SIGMA, Method
from pytest_perfci.results.matrix import (
    _CSS,
    append_step_summary,
    build_matrix,
    hosts_html,
    render_markdown,
    render_table_html,
)
from pytest_perfci.results.model import ResultRecord
from pytest_perfci.results.sources import UnreadableResults, add_source_arguments, read_all
from pytest_perfci.results.trends import Series, build_series, summary_markdown

MISSING = ("perfci report draws its charts with Vega-Altair and vl-convert-python, which are not installed: "
           "pip install 'pytest-perfci[report]'")


def render_page(records: list[ResultRecord], *, title: str, sources: list[str], k: float = DEFAULT_K,
                min_history: int = DEFAULT_MIN, method: Method = "mad",
                allure: dict[str, str] | None = None) -> tuple[str, list[Series]]:
    import jinja2

    from pytest_perfci.results import charts

    m = build_matrix(records)
    series = build_series(records, k=k, min_history=min_history, method=method)
    drawn = [(s, charts.svg(s)) for s in series]
    by_metric = [(metric, list(items)) for metric, items in groupby(drawn, key=lambda d: d[0].metric)]
    band_text = (f"median ± {k:g}·{MAD_TO_SIGMA}·MAD" if method == "mad" else f"mean ± {k:g}·σ")
    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_perfci.results", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    page = env.get_template("report.html.j2").render(
        title=title, css=_CSS, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), sources=sources,
        n_records=len(records), n_runs=len({r.run_id for r in records}),
        matrix_html=render_table_html(m, allure) if m.columns else "", hosts_html=hosts_html(m) if m.columns else "",
        series=series, by_metric=by_metric, band_text=band_text, min_history=min_history, fmt=fmt,
        band_colour=charts.BAND, regression_colour=charts.REGRESSION,
    )
    return page, series


def summary(records: list[ResultRecord], series: list[Series], title: str,
            allure: dict[str, str] | None = None) -> str:
    parts = []
    m = build_matrix(records)
    if m.columns:
        parts.append(render_markdown(m, title, allure))
    trends = summary_markdown(series)
    if trends:
        parts.append(trends)
    return "\n".join(parts) if parts else f"### {title}\n\nNo record to report.\n"


def write_report(records: list[ResultRecord], directory: Path, *, title: str, sources: list[str],
                 allure: dict[str, str] | None = None, markdown_allure: dict[str, str] | None = None,
                 **options: Any) -> tuple[Path, Path, list[Series]]:
    """`allure` links cells in the page (relative links work wherever the two reports sit together);
    `markdown_allure` in the step summary, which needs absolute URLs."""
    page, series = render_page(records, title=title, sources=sources, allure=allure, **options)
    directory.mkdir(parents=True, exist_ok=True)
    index = directory / "index.html"
    index.write_text(page, encoding="utf-8")
    md = directory / "summary.md"
    md.write_text(summary(records, series, title, markdown_allure), encoding="utf-8")
    return index, md, series


# --- perfci report ------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="static HTML report: capability matrix and history charts (band, regressions)",
        description=(
            "Read perfci NDJSON results and history (files, directories searched for *.ndjson, or "
            "s3://bucket/prefix) and write DIR/index.html -- the capability matrix and, per metric and "
            "instance type, its history with the band shaded and regressions marked, all inline (works "
            "offline) -- and DIR/summary.md, the same as Markdown with Mermaid charts for a GitHub step "
            "summary. Exit 0 when written, 2 when the input is unreadable or empty."
        ),
    )
    add_source_arguments(p, metavar="RESULTS_OR_HISTORY")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for index.html and summary.md")
    p.add_argument("--title", default="perfci report")
    p.add_argument("--k", type=float, default=DEFAULT_K, help=f"band half-width (default {DEFAULT_K:g})")
    p.add_argument("--min-history", type=int, default=DEFAULT_MIN,
                   help=f"earlier values needed for a band (default {DEFAULT_MIN})")
    p.add_argument("--band", choices=("mad", "sigma"), default="mad", help="mad (default) or sigma")
    p.add_argument("--step-summary", action="store_true",
                   help="append summary.md to $GITHUB_STEP_SUMMARY (error when it is not set)")
    p.add_argument("--allure-report", metavar="DIR",
                   help="a generated Allure report: each matrix cell links to its test there")
    p.add_argument("--allure-url", metavar="URL",
                   help="where that report is published (default: a link relative to -o, for the page only; "
                        "with a URL the step summary links too)")
    p.set_defaults(func=run_cli)


def _allure_links(args: Any) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    import os

    from pytest_perfci.allure_meta import test_links

    if not args.allure_report:
        return None, None
    report = Path(args.allure_report)
    if not (report / "data" / "test-cases").is_dir():
        raise ValueError(f"--allure-report {report}: not a generated Allure report (no data/test-cases/)")
    if args.allure_url:
        links = test_links(report, args.allure_url.rstrip("/") + "/")
        return links, links
    relative = Path(os.path.relpath(report, Path(args.output))).as_posix()
    return test_links(report, f"{relative}/index.html"), None


def run_cli(args: Any) -> int:
    if args.k <= 0 or args.min_history < 2:
        print(f"perfci report: --k {args.k:g} / --min-history {args.min_history}: k must be > 0 and "
              "min-history at least 2", file=sys.stderr)
        return 2
    try:
        import altair  # noqa: F401
        import vl_convert  # noqa: F401
    except ImportError:
        print(f"perfci report: {MISSING}", file=sys.stderr)
        return 2
    try:
        records = read_all(args.results, endpoint_url=args.endpoint_url)
    except UnreadableResults as exc:
        print(f"perfci report: {exc}", file=sys.stderr)
        return 2
    if not records:
        print(f"perfci report: no perfci record in {' '.join(args.results)}", file=sys.stderr)
        return 2
    try:
        page_links, md_links = _allure_links(args)
    except ValueError as exc:
        print(f"perfci report: {exc}", file=sys.stderr)
        return 2
    index, md, series = write_report(records, Path(args.output), title=args.title, sources=list(args.results),
                                     k=args.k, min_history=args.min_history, method=args.band,
                                     allure=page_links, markdown_allure=md_links)
    regressed = sum(1 for s in series if s.points[-1].regressed)
    print(f"perfci report: {index} ({len(series)} series, {regressed} regressed in the newest run), {md}")
    if args.step_summary and append_step_summary(md.read_text(encoding="utf-8")) is None:
        print("perfci report: --step-summary: GITHUB_STEP_SUMMARY is not set", file=sys.stderr)
        return 2
    return 0
