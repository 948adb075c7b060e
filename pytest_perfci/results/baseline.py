"""Baselines: per metric an expected value, a tolerance and a direction give pass/fail.

A baseline file is TOML (or JSON with the same shape)::

    [[baseline]]
    metric = "pmc.cpi"              # the sample name
    expected = 0.9
    tolerance = "15%"               # relative to expected, or an absolute number in the metric's unit
    direction = "lower"             # lower is better: only a value above expected + tolerance fails

    [[baseline]]
    metric = "pmc.cpi"
    instance_type = "c7g.metal"     # optional: only for this instance type (or host name); wins over
    expected = 0.6                  # an entry without one
    tolerance = 0.05

Directions: "higher" (throughput: fail below expected - tolerance), "lower" (latency, CPI: fail above
expected + tolerance), "both" (default: fail outside expected +/- tolerance).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from pytest_perfci.results.model import Direction, Infrastructure, Judgement


class BaselineError(ValueError):
    """An unreadable or invalid baseline file (one line naming file and entry)."""


class BaselineEntry(BaseModel):
    metric: str
    expected: float
    tolerance: float | str = 0.0
    direction: Direction = "both"
    instance_type: str | None = None
    unit: str = ""

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            text = value.strip()
            if not text.endswith("%"):
                raise ValueError(f"tolerance {value!r}: a number, or a percentage like '5%'")
            try:
                pct = float(text[:-1])
            except ValueError:
                raise ValueError(f"tolerance {value!r}: not a percentage") from None
            if pct < 0:
                raise ValueError(f"tolerance {value!r} is negative")
            return text
        if value < 0:
            raise ValueError(f"tolerance {value} is negative")
        return value

    @property
    def absolute_tolerance(self) -> float:
        if isinstance(self.tolerance, str):
            return abs(self.expected) * float(self.tolerance[:-1]) / 100.0
        return float(self.tolerance)

    def describe_tolerance(self) -> str:
        return self.tolerance if isinstance(self.tolerance, str) else f"{self.tolerance:g}"

    def band(self) -> tuple[float | None, float | None]:
        tol = self.absolute_tolerance
        low = None if self.direction == "lower" else self.expected - tol
        high = None if self.direction == "higher" else self.expected + tol
        return low, high


class Baselines(BaseModel):
    entries: list[BaselineEntry] = []

    def find(self, metric: str, infra: Infrastructure) -> BaselineEntry | None:
        """The entry for this metric on this machine: an instance-type/host match wins over a general one."""
        names = {n for n in (infra.instance_type, infra.hostname, infra.target) if n}
        general = None
        for entry in self.entries:
            if entry.metric != metric:
                continue
            if entry.instance_type is None:
                general = general or entry
            elif entry.instance_type in names:
                return entry
        return general

    def judge(self, metric: str, value: float, unit: str, infra: Infrastructure) -> Judgement | None:
        entry = self.find(metric, infra)
        return judge_baseline(entry, value, unit) if entry is not None else None


def judge_baseline(entry: BaselineEntry, value: float, unit: str = "") -> Judgement:
    low, high = entry.band()
    ok = (low is None or value >= low) and (high is None or value <= high)
    u = f" {unit or entry.unit}".rstrip()
    rule = {
        "both": f"{fmt(low)} .. {fmt(high)}",
        "higher": f">= {fmt(low)} (higher is better)",
        "lower": f"<= {fmt(high)} (lower is better)",
    }[entry.direction]
    where = f" for {entry.instance_type}" if entry.instance_type else ""
    message = (f"{entry.metric} = {fmt(value)}{u} {'within' if ok else 'outside'} baseline{where} "
               f"{fmt(entry.expected)}{u} ± {entry.describe_tolerance()}: must be {rule}")
    return Judgement(source="baseline", verdict="pass" if ok else "fail", message=message, value=value,
                     low=low, high=high, center=entry.expected)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.6g}"


def load_baselines(path: Path) -> Baselines:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"baseline {path}: {exc.strerror or exc}") from None
    try:
        doc: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise BaselineError(f"baseline {path}: not {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("baseline", []), list):
        raise BaselineError(f"baseline {path}: expected a list of [[baseline]] entries")
    entries = []
    for i, raw in enumerate(doc.get("baseline", []), 1):
        try:
            entries.append(BaselineEntry.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(x) for x in first["loc"]) or "entry"
            raise BaselineError(f"baseline {path}: entry {i} ({field}): {first['msg']}") from None
    return Baselines(entries=entries)
