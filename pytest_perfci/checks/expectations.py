"""What a target is expected to offer, and the rule that turns observed vs expected into an outcome.

An observation alone is not a verdict: "cycles unavailable" is a pass on a VM known to lack a vPMU
and a failure on a metal host. The expectations file says which, per instance-type pattern.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

State = Literal["available", "unavailable", "zero"]
STATES: tuple[str, ...] = ("available", "unavailable", "zero")


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: list[str] = Field(min_length=1)
    source: str = ""
    expect: dict[str, State]


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: list[Expectation] = []

    def for_target(self, key: str | None) -> dict[str, tuple[State, str]]:
        """capability -> (expected state, source) for a target key (instance type, or 'local').

        Broad patterns apply first and more specific ones override them (an exact name beats any
        glob; a longer glob beats a shorter one), so a family default can carry per-size exceptions.
        """
        if key is None:
            return {}
        hits: list[tuple[int, int, Expectation]] = []
        for entry in self.target:
            for pattern in entry.match:
                if fnmatch.fnmatchcase(key, pattern):
                    exact = int(not any(ch in pattern for ch in "*?["))
                    hits.append((exact, len(pattern), entry))
        merged: dict[str, tuple[State, str]] = {}
        for _, _, entry in sorted(hits, key=lambda h: (h[0], h[1])):
            merged.update({cap: (state, entry.source) for cap, state in entry.expect.items()})
        return merged


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


def decide(capability: str, observed: State | Literal["inconsistent"], detail: str,
           expected: tuple[State, str] | None) -> Outcome:
    """Observed matches expected -> pass; mismatch -> fail with both sides; no expectation and
    not available -> xfail with the reason, visible in the report instead of a silent skip."""
    if observed == "inconsistent":
        return Outcome(action="fail", message=f"{capability}: readers inconsistent: {detail}")
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
