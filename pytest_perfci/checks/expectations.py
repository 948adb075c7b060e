"""What a target is expected to offer, and the rule that turns observed vs expected into an outcome.

An observation alone is not a verdict: "cycles unavailable" is a pass on a VM known to lack a vPMU
and a failure on a metal host. The expectations file says which, per instance-type pattern.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_perfci.checks.verdict import Finding

# "partial" is for the capability "pmu" only: some core events count and others are not supported.
# The file's words predate checks.verdict and stay as users write them: "unavailable" is State.ABSENT
# there (Finding.expectation_word maps a judge's state onto these).
State = Literal["available", "unavailable", "zero", "partial"]
STATES: tuple[str, ...] = ("available", "unavailable", "zero", "partial")


class GpuExpectation(BaseModel):
    """The GPUs a type has, as AWS's instance-type pages state them (for hosts without a catalogue:
    local and inventory machines known by their DMI instance type). The EC2 provider uses
    DescribeInstanceTypes GpuInfo instead."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(gt=0)
    model: str = Field(min_length=1)  # AWS's name: A10G, L4, A100, H100, T4g
    memory_gib: float = Field(gt=0)  # per GPU


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: list[str] = Field(min_length=1)
    source: str = ""
    expect: dict[str, State] = {}
    # How far apart perf stat and the perf_event_open probe may be, per event, as a fraction
    # (0.0001 = 0.01 %); events not listed use the suite's default.
    tolerance: dict[str, float] = {}
    # The cycles/instructions ratio this target must show exactly (a twin at -icount shift=0: 1.0).
    cpi: float | None = Field(default=None, gt=0)
    # suites/gpu: the GPUs of the type (count, model, memory per GPU)
    gpu: GpuExpectation | None = None

    @field_validator("tolerance")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for event, tol in value.items():
            if not 0 <= tol < 1:
                raise ValueError(f"tolerance for {event} is {tol}; give a fraction in [0, 1), e.g. 0.0001 for 0.01 %")
        return value


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: list[Expectation] = []

    def for_target(self, key: str | None) -> dict[str, tuple[State, str]]:
        """capability -> (expected state, source) for a target key (instance type, or 'local').

        Broad patterns apply first and more specific ones override them (an exact name beats any
        glob; a longer glob beats a shorter one), so a family default can carry per-size exceptions.
        """
        merged: dict[str, tuple[State, str]] = {}
        for entry in self._entries(key):
            merged.update({cap: (state, entry.source) for cap, state in entry.expect.items()})
        return merged

    def _entries(self, key: str | None) -> list[Expectation]:
        """Entries matching key, broadest first (later ones override earlier ones)."""
        if key is None:
            return []
        hits: list[tuple[int, int, int, Expectation]] = []
        for i, entry in enumerate(self.target):
            for pattern in entry.match:
                if fnmatch.fnmatchcase(key, pattern):
                    exact = int(not any(ch in pattern for ch in "*?["))
                    hits.append((exact, len(pattern), i, entry))
        return [h[3] for h in sorted(hits, key=lambda h: (h[0], h[1], h[2]))]

    def tolerance_for(self, key: str | None, event: str) -> tuple[float, str] | None:
        """(reader tolerance, source) for one event of a target, None when no entry sets one."""
        found = None
        for entry in self._entries(key):
            if event in entry.tolerance:
                found = (entry.tolerance[event], entry.source)
        return found

    def gpu_for(self, key: str | None) -> tuple[GpuExpectation, str] | None:
        """(the type's GPUs, source) for a target, None when no entry states them."""
        found = None
        for entry in self._entries(key):
            if entry.gpu is not None:
                found = (entry.gpu, entry.source)
        return found

    def cpi_for(self, key: str | None) -> tuple[float, str] | None:
        """(exact CPI, source) a target must show, None when no entry sets one."""
        found = None
        for entry in self._entries(key):
            if entry.cpi is not None:
                found = (entry.cpi, entry.source)
        return found


class ExpectationsError(ValueError):
    pass


def load_expectations(path: Path) -> Expectations:
    try:
        with path.open("rb") as fh:
            return Expectations.model_validate(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExpectationsError(f"{path}: cannot read expectations: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ExpectationsError(f"{path}: {loc}: {err['msg']} (allowed states: {', '.join(STATES)})") from None


class Outcome(BaseModel):
    """pass, fail or xfail, with the sentence a human reads in the report."""

    action: Literal["pass", "fail", "xfail"]
    message: str


def decide(capability: str, observed: State | Literal["inconsistent", "one-reader"] | Finding, detail: str,
           expected: tuple[State, str] | None) -> Outcome:
    """Observed matches expected -> pass; mismatch -> fail with both sides; no expectation and
    not available -> xfail with the reason, visible in the report instead of a silent skip.

    "one-reader" (counted by perf_event_open, perf absent so nothing compared) meets an "available"
    expectation: the counter works. It contradicts "unavailable"/"zero" like any count would.

    `observed` may be a judge's Finding (checks.verdict): its state in this file's words."""
    if isinstance(observed, Finding):
        observed = observed.expectation_word  # type: ignore[assignment]
    if observed == "inconsistent":
        return Outcome(action="fail", message=f"{capability}: readers inconsistent: {detail}")
    if observed == "one-reader":
        if expected is not None and expected[0] == "available":
            return Outcome(action="pass", message=f"{capability}: available as expected, one reader only: {detail}")
        if expected is None:
            return Outcome(action="xfail",
                           message=f"{capability}: one reader only and no expectation for this target: {detail}")
        origin = f" [{expected[1]}]" if expected[1] else ""
        return Outcome(action="fail",
                       message=f"{capability}: expected {expected[0]}{origin}, observed one reader counting: {detail}")
    if expected is None:
        if observed == "available":
            return Outcome(action="pass", message=f"{capability}: available ({detail})")
        return Outcome(action="xfail", message=f"{capability}: {observed} and no expectation for this target: {detail}")
    state, source = expected
    if state == observed:
        return Outcome(action="pass", message=f"{capability}: {observed} as expected ({detail})")
    origin = f" [{source}]" if source else ""
    return Outcome(
        action="fail", message=f"{capability}: expected {state}{origin}, observed {observed}: {detail}"
    )
