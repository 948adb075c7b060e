"""What a matrix cell says: one state from a small vocabulary, a short reason code, and the full reason.

Why a vocabulary of its own: "not available" means three different things to a reader. On a VM
without a vPMU it is the accepted answer (the test xfailed or the expectations file says so); on a
metal host that should count cycles it is a failure; and a cell no test reached is neither. A
FAILED cell therefore never shares a mark, colour or word with an accepted absence, in Markdown,
HTML, the step summary or the terminal.

Pure: derives the state from a capability record (ok, detail, the test's outcome and the line of
the test's failure or xfail message that names the capability); no pytest, no I/O.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel

from pytest_perfci.results.model import ResultRecord


class State(str, Enum):
    AVAILABLE = "available"
    ABSENT = "absent"  # absent as expected: the test xfailed, passed on an "unavailable" expectation, or none
    FAILED = "FAILED"  # expected but missing, readers disagree, regression
    ZERO = "zero"  # counts, but reads zero (as expected, or with no expectation)
    ONE_READER = "one-reader"  # one of the two readers counts, the other cannot read at all
    PARTIAL = "partial"  # some of it is there (a partial PMU, some resources)
    NOT_RUN = "not-run"


class Style(BaseModel):
    emoji: str  # GitHub renders these in colour in a step summary
    symbol: str  # for HTML: in every common font (an offline page cannot count on an emoji font)
    mark: str  # plain text, for terminals and places without emoji
    label: str  # what the legend calls it
    css: str
    meaning: str


STYLES: dict[State, Style] = {
    State.AVAILABLE: Style(emoji="✅", symbol="✓", mark="ok", label="available", css="ok", meaning="measured and working"),
    State.FAILED: Style(emoji="❌", symbol="✗", mark="FAIL", label="FAILED", css="failed",
                        meaning="expected but missing, readers disagree, or regression: the run failed here"),
    State.ABSENT: Style(emoji="⚪", symbol="○", mark="--", label="absent as expected", css="absent",
                        meaning="not there, and accepted: xfail, an expectation, or none"),
    State.ZERO: Style(emoji="🟡", symbol="0", mark="zero", label="reads zero", css="zero", meaning="opens, but counts zero"),
    State.ONE_READER: Style(emoji="🟠", symbol="½", mark="1rdr", label="one reader only", css="onereader",
                            meaning="one reader counts, the other cannot"),
    State.PARTIAL: Style(emoji="🔷", symbol="◐", mark="part", label="partial", css="partial",
                         meaning="some of it is there"),
    State.NOT_RUN: Style(emoji="⏭️", symbol="·", mark="·", label="not run", css="notrun", meaning="no test reached this cell"),
}
ORDER: tuple[State, ...] = (State.FAILED, State.AVAILABLE, State.ZERO, State.ONE_READER, State.PARTIAL,
                            State.ABSENT, State.NOT_RUN)

# (pattern searched in the reason, short code): first hit wins, so specific phrases come first. Codes
# are what a cell shows; the full reason is printed once, as a footnote or tooltip.
REASON_CODES: tuple[tuple[str, str], ...] = (
    (r"^regression\b|\bregression:", "REGRESSION"),
    (r"readers (disagree|inconsistent)|but perf_event_open does not", "DISAGREE"),
    (r"one reader", "ONE-READER"),
    (r"\bpartial\b", "PARTIAL"),
    (r"no hardware PMU", "NO-PMU"),
    (r"perf_event_paranoid", "PARANOID"),
    (r"perf not installed", "NO-PERF"),
    (r"not supported", "UNSUPPORTED"),
    (r"reads zero|\bzero\b", "ZERO"),
    (r"multiplexed", "MULTIPLEXED"),
    (r"not counted", "NOT-COUNTED"),
    (r"implausible", "IMPLAUSIBLE"),
    (r"not applicable", "N/A"),
    (r"no hardware support|no RDT|no MPAM", "NO-HW"),
    (r"kernel lacks|kernel lists no", "NO-KERNEL"),
    (r"mount failed|not mounted|unusable", "NO-MOUNT"),
    (r"\bno \w+ resource|resource missing", "NO-RESOURCE"),
    (r"unknown", "UNKNOWN"),
    (r"did not (grow|move|change)|no effect|unchanged", "NO-EFFECT"),
)
_CODES = [(re.compile(p, re.IGNORECASE), code) for p, code in REASON_CODES]
CODE_MEANINGS: dict[str, str] = {
    "REGRESSION": "a sample left its history band or baseline",
    "DISAGREE": "the two readers (perf stat, perf_event_open) disagree",
    "ONE-READER": "only one reader counts",
    "PARTIAL": "only part of it is there",
    "NO-PMU": "no hardware PMU exposed",
    "PARANOID": "blocked by perf_event_paranoid",
    "NO-PERF": "perf not installed",
    "UNSUPPORTED": "event not supported",
    "ZERO": "counter reads zero",
    "MULTIPLEXED": "multiplexed away",
    "NOT-COUNTED": "not counted",
    "IMPLAUSIBLE": "implausible value or ratio",
    "N/A": "not applicable on this architecture",
    "NO-HW": "no hardware support",
    "NO-KERNEL": "the kernel lacks it",
    "NO-MOUNT": "not mounted or unusable",
    "NO-RESOURCE": "resource missing",
    "UNKNOWN": "could not be determined",
    "NO-EFFECT": "configured, but no measurable effect",
    "EXPECTED": "expected by the expectations file, observed otherwise",
    "SKIPPED": "the test was skipped",
    "OTHER": "see the note",
}


def reason_code(reason: str) -> str:
    """A short, stable code for a reason sentence ("OTHER" when no pattern knows it)."""
    for pattern, code in _CODES:
        if pattern.search(reason):
            return code
    return "OTHER"


class CellVerdict(BaseModel):
    state: State
    code: str = ""  # "" for an available cell
    reason: str = ""  # the full sentence, shown once (footnote, tooltip)


def _mentions(line: str, capability: str) -> bool:
    """Does a failure/xfail line concern this capability? decide() lines start with "<capability>: "."""
    head = line.strip().removeprefix("reason: ")
    return head.startswith((f"{capability}:", f"{capability} "))


_JOINED = re.compile(r"; (?=[\w.-]+: (available|unavailable|zero|inconsistent|expected|readers)\b)")


def concerning(text: str, capability: str) -> str:
    """The lines of a failure or xfail message that name this capability (or a regression), joined."""
    # conclude() joins xfail reasons with "; " -- split there only where the next part names something
    parts = [p.strip() for chunk in text.splitlines() for p in _JOINED.split(chunk) if p.strip()]
    # without the leading "<capability>: ": the row says which, and equal reasons then share one note
    own = [p.removeprefix("reason: ").removeprefix(f"{capability}: ") for p in parts if _mentions(p, capability)]
    if own:
        return "\n".join(own)
    return "\n".join(p for p in parts if reason_code(p) == "REGRESSION")


def _observed(detail: str) -> State:
    code = reason_code(detail)
    return {"ZERO": State.ZERO, "ONE-READER": State.ONE_READER, "PARTIAL": State.PARTIAL}.get(code, State.ABSENT)


_EXPECTED = re.compile(r"expected [\w-]+( \[[^\]]*\])?, observed [\w-]+:?\s*")


def _failure_code(message: str, detail: str, ok: bool) -> str:
    """Why a cell failed, as a code: the observation behind "expected X, observed Y: ..." (so a metal
    host without a PMU reads NO-PMU), else EXPECTED for a mismatch with nothing more specific."""
    code = reason_code(_EXPECTED.sub("", message))
    if code == "OTHER" and not ok:
        code = reason_code(detail)
    if code == "OTHER" and _EXPECTED.search(message):
        code = "EXPECTED"
    return code


def cell_verdict(record: ResultRecord) -> CellVerdict:
    """The state of one capability record. The test's outcome decides between FAILED and an accepted
    absence; the line of the test's message that names the capability (metadata "message", written by
    the results plugin) is the full reason when there is one."""
    ok = record.verdict == "pass"
    detail = str(record.metadata.get("detail", "") or "")
    message = str(record.metadata.get("message", "") or "")
    outcome = record.outcome
    if outcome == "failed":
        if message:
            return CellVerdict(state=State.FAILED, code=_failure_code(message, detail, ok), reason=message)
        if not ok:
            return CellVerdict(state=State.FAILED, code=reason_code(detail), reason=detail or "test failed")
        return CellVerdict(state=State.AVAILABLE, reason=detail)
    if ok:
        return CellVerdict(state=State.AVAILABLE, reason=detail)
    if outcome == "skipped":
        return CellVerdict(state=State.NOT_RUN, code="SKIPPED", reason=message or detail)
    # xfailed, passed (the expectation said so), or unknown (records written before outcomes were kept)
    reason = message or detail
    return CellVerdict(state=_observed(detail), code=reason_code(detail or message), reason=reason)
