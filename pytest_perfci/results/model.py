"""The result model: typed samples with the infrastructure they ran on, one NDJSON line each.

A line is self-contained (sample + verdicts + infrastructure + timestamps) so that a file can be
concatenated with others, filtered with jq, loaded with pandas.read_json(lines=True), and read back
by the history mode and `perfci matrix` without any other context.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_perfci.results.scrub import scrub_text

SCHEMA = "perfci.sample/1"

# pass/fail: the check judged the value; unavailable: nothing to measure (value None, reason in
# metadata); info: recorded for charts and history, no verdict of its own.
SampleVerdict = Literal["pass", "fail", "unavailable", "info"]
# Which way is good, for baselines and history bands: "higher" (throughput), "lower" (latency, CPI),
# "both" (a count that should not move either way).
Direction = Literal["higher", "lower", "both"]
# target: a target no test ran on (it never came up, or every test of it was skipped): one line with
# the reason (metadata state "not-run", code, detail), so the matrix shows its column as not run.
# Files written before this kind existed hold only the other two and read the same.
Kind = Literal["measurement", "capability", "target"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Infrastructure(BaseModel):
    """Where a sample was measured: every number is quoted with this, never without."""

    model_config = ConfigDict(frozen=True)

    provider: str = ""
    target: str = ""
    instance_type: str | None = None
    region: str | None = None
    availability_zone: str | None = None
    ami: str | None = None
    hostname: str = ""
    kernel: str = ""
    os: str = ""
    arch: str = "unknown"
    cpu_vendor: str = "unknown"
    cpu_model: str = ""
    nproc: int = 0
    metal: bool | None = None  # True metal, False VM, None unknown
    hypervisor: str | None = None
    run_id: str = ""
    git_commit: str | None = None
    perf_version: str | None = None
    prepared: tuple[str, ...] = ()  # what host preparation installed, with versions ("perf: linux-perf (...)")

    @property
    def key(self) -> str:
        """What history and the matrix group by: the instance type, else the host (lab/local machines)."""
        return self.instance_type or f"host:{self.hostname or self.target}"

    @property
    def label(self) -> str:
        """Column/suite name: the instance type, else the host name."""
        return self.instance_type or self.hostname or self.target or "?"

    @property
    def kind(self) -> str:
        return {True: "metal", False: "VM", None: "virt?"}[self.metal]

    def summary(self) -> str:
        where = f"{self.region}/{self.availability_zone or '?'}" if self.region else ""
        cpu = self.cpu_model or (self.cpu_vendor if self.cpu_vendor != "unknown" else "")
        parts = [self.arch, self.kind, cpu, f"kernel {self.kernel}" if self.kernel else "",
                 self.os, where, self.ami or ""]
        return ", ".join(p for p in parts if p)

    @classmethod
    def from_facts(cls, facts: Any, *, provider: str, target: str, run_id: str,
                   availability_zone: str | None = None, git_commit: str | None = None) -> Infrastructure:
        return cls(
            provider=provider, target=target, instance_type=facts.instance_type, region=facts.region,
            availability_zone=availability_zone, ami=facts.ami, hostname=facts.hostname, kernel=facts.kernel,
            os=facts.os, arch=facts.arch, cpu_vendor=facts.cpu_vendor, cpu_model=facts.cpu_model,
            nproc=facts.nproc, metal=None if facts.virtualised is None else not facts.virtualised,
            hypervisor=facts.hypervisor, run_id=run_id, git_commit=git_commit,
            perf_version=getattr(facts, "perf_version", None), prepared=tuple(getattr(facts, "prepared", ())),
        )


class Judgement(BaseModel):
    """A baseline or history verdict on one value, with the numbers behind it."""

    source: Literal["baseline", "history"]
    verdict: Literal["pass", "fail", "insufficient"]
    message: str
    value: float
    low: float | None = None  # the accepted band (None: open on that side)
    high: float | None = None
    center: float | None = None
    n: int | None = None  # history size the band was computed from

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


class Sample(BaseModel):
    """One typed measurement (or one capability cell) as a check recorded it."""

    name: str
    value: float | None = None
    unit: str = ""
    verdict: SampleVerdict = "info"
    direction: Direction = "both"
    kind: Kind = "measurement"
    metadata: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime = Field(default_factory=utcnow)

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a sample value is a number or None, not {type(value).__name__}")  # noqa: TRY004 - pydantic turns ValueError into a ValidationError
        if not math.isfinite(value):
            raise ValueError(f"a sample value must be finite, not {value}")
        return float(value)


class ResultRecord(Sample):
    """One NDJSON line: a sample, its verdicts, the test it came from and where it ran."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    run_id: str = ""
    test: str = ""
    suite: str = ""
    outcome: str | None = None  # the pytest outcome of the test's call phase
    test_started: datetime | None = None
    test_finished: datetime | None = None
    baseline: Judgement | None = None
    history: Judgement | None = None
    infrastructure: Infrastructure = Field(default_factory=Infrastructure)

    model_config = ConfigDict(populate_by_name=True)

    @property
    def regressed(self) -> bool:
        return any(j is not None and j.failed for j in (self.baseline, self.history))

    def line(self) -> str:
        """The NDJSON line, with anything that looks like a credential redacted."""
        return scrub_text(json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=False,
                                     separators=(",", ":")))


def git_commit(root: Path) -> str | None:
    """The commit of the code under test: PERFCI_GIT_COMMIT, GITHUB_SHA, else `git rev-parse HEAD`
    in root (with a -dirty suffix when the work tree has changes)."""
    for var in ("PERFCI_GIT_COMMIT", "GITHUB_SHA"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


# --- NDJSON ---------------------------------------------------------------------------------------


class NdjsonWriter:
    """Appends records as they arrive (a crashed session still leaves every finished test's lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def write(self, records: Iterable[ResultRecord]) -> None:
        lines = [r.line() for r in records]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(f"{line}\n" for line in lines))
            fh.flush()
        self.count += len(lines)


class ResultsFormatError(ValueError):
    """A results file that is not perfci NDJSON (named, with the line)."""


def parse_ndjson(text: str, source: str = "<text>") -> list[ResultRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResultsFormatError(f"{source}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise ResultsFormatError(f"{source}:{number}: not a {SCHEMA} record")
        records.append(ResultRecord.model_validate(doc))
    return records


def ndjson_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(path.rglob("*.ndjson"))
    else:
        yield path


def read_local(paths: Iterable[Path]) -> list[ResultRecord]:
    """Every record of every *.ndjson file under these files/directories."""
    records: list[ResultRecord] = []
    for path in paths:
        if not path.exists():
            raise ResultsFormatError(f"{path}: no such file or directory")
        for file in ndjson_files(path):
            records.extend(parse_ndjson(file.read_text(encoding="utf-8"), str(file)))
    return records
