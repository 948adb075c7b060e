"""`perfci export --format github-action-benchmark`: samples as benchmark-action/github-action-benchmark input.

That action charts one value per benchmark per commit on GitHub Pages and alerts when one gets worse
than the previous by a threshold; it takes custom results as a JSON list of {name, unit, value,
range?, extra?} under one of two tools, customBiggerIsBetter or customSmallerIsBetter. A sample's
direction picks the file: "higher" -> bigger-is-better.json, "lower" -> smaller-is-better.json.
"both" (a count that should not move either way) has no tool there and is left out, said so.

Per metric and instance type the newest sample is exported (several samples of it in that run: their
median, the spread as `range`), named "metric [instance type]" so two types never share a chart.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_perfci.results.baseline import fmt
from pytest_perfci.results.model import ResultRecord
from pytest_perfci.results.sources import UnreadableResults, add_source_arguments, read_all

FILES = {"higher": "bigger-is-better.json", "lower": "smaller-is-better.json"}
TOOLS = {"higher": "customBiggerIsBetter", "lower": "customSmallerIsBetter"}


def benchmark_entries(records: Iterable[ResultRecord]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """({"higher": [...], "lower": [...]}, names left out because their direction is "both")."""
    groups: dict[tuple[str, str], list[ResultRecord]] = defaultdict(list)
    for r in records:
        if r.kind == "measurement" and r.value is not None and r.verdict not in ("unavailable", "fail"):
            groups[(r.name, r.infrastructure.key)].append(r)
    out: dict[str, list[dict[str, Any]]] = {"higher": [], "lower": []}
    skipped: list[str] = []
    for (metric, where), recs in sorted(groups.items()):
        newest = max(recs, key=lambda r: r.recorded_at)
        run = [r.value for r in recs if r.run_id == newest.run_id and r.value is not None]
        name = f"{metric} [{where.removeprefix('host:')}]"
        if newest.direction not in out:
            skipped.append(name)
            continue
        entry: dict[str, Any] = {"name": name, "unit": newest.unit or "value", "value": statistics.median(run)}
        if len(run) > 1:
            entry["range"] = f"{fmt(min(run))} .. {fmt(max(run))} (n={len(run)})"
        infra = newest.infrastructure
        entry["extra"] = f"run {newest.run_id}; {infra.summary()}; {newest.test}".strip("; ")
        out[newest.direction].append(entry)
    return out, skipped


def write_benchmark_files(records: Iterable[ResultRecord], directory: Path) -> tuple[list[Path], list[str]]:
    entries, skipped = benchmark_entries(records)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for direction, items in entries.items():
        path = directory / FILES[direction]
        if items:
            path.write_text(json.dumps(items, indent=2) + "\n", encoding="utf-8")
            written.append(path)
        elif path.exists():
            path.unlink()  # an old file would be charted again as if it were this run's
    return written, skipped


# --- perfci export ----------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="samples for other tools (github-action-benchmark)",
        description=(
            "Read perfci NDJSON results (files, directories, s3://bucket/prefix) and write, per sample "
            "direction, DIR/bigger-is-better.json (tool customBiggerIsBetter) and DIR/smaller-is-better.json "
            "(customSmallerIsBetter) for benchmark-action/github-action-benchmark: the newest value per "
            "metric and instance type. Exit 0 when a file was written, 2 when nothing could be exported."
        ),
    )
    add_source_arguments(p)
    p.add_argument("--format", required=True, choices=("github-action-benchmark",), help="output format")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    try:
        records = read_all(args.results, endpoint_url=args.endpoint_url)
    except UnreadableResults as exc:
        print(f"perfci export: {exc}", file=sys.stderr)
        return 2
    written, skipped = write_benchmark_files(records, Path(args.output))
    if skipped:
        print(f"perfci export: {len(skipped)} metric(s) with direction 'both' left out (github-action-benchmark "
              f"alerts one way only): {', '.join(skipped)}", file=sys.stderr)
    if not written:
        print(f"perfci export: no sample with direction higher or lower in {' '.join(args.results)} "
              f"({len(records)} record(s) read)", file=sys.stderr)
        return 2
    for path in written:
        tool = next(TOOLS[d] for d, f in FILES.items() if path.name == f)
        print(f"perfci export: {path} (tool: {tool})")
    return 0
