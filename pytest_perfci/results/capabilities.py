"""The end-of-run capability table: target x capability -> yes / no (reason)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel


class CapabilityRecord(BaseModel):
    target: str
    capability: str
    ok: bool
    detail: str = ""
    facts: str = ""
    # the judge's finding in the shared vocabulary (checks.verdict); "" in records written before it
    state: str = ""
    code: str = ""


def render_capabilities(records: Iterable[CapabilityRecord]) -> list[str]:
    """One block per target, headed by where it really ran; the last record of a cell wins."""
    cells: dict[str, dict[str, CapabilityRecord]] = {}
    heads: dict[str, str] = {}
    for rec in records:
        cells.setdefault(rec.target, {})[rec.capability] = rec
        if rec.facts:
            heads[rec.target] = rec.facts
    lines: list[str] = []
    for target, caps in cells.items():
        lines.append(f"{target}: {heads.get(target, '')}".rstrip(": "))
        width = max(len(c) for c in caps)
        for name, rec in caps.items():
            mark = "yes" if rec.ok else "no "
            detail = f"  {rec.detail}" if rec.detail else ""
            lines.append(f"  {name:<{width}}  {mark}{detail}")
    return lines


def write_capabilities(records: Iterable[CapabilityRecord], run_dir: Path) -> Path:
    """capabilities.json inside the run's directory, beside results.ndjson and the matrix: one place per run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "capabilities.json"
    path.write_text(json.dumps([r.model_dump() for r in records], indent=2) + "\n")
    return path
