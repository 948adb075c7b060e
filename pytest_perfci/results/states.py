"""What a matrix cell says: one state from a small vocabulary, a short reason code, and the full reason.

Why a vocabulary of its own: "not available" means three different things to a reader. On a VM
without a vPMU it is the accepted answer (the test xfailed or the expectations file says so); on a
metal host that should count cycles it is a failure; and a cell no test reached is neither. A
FAILED cell therefore never shares a mark, colour or word with an accepted absence, in Markdown,
HTML, the step summary or the terminal.

The states and codes are the judges' own (checks.verdict); this module adds how each state looks
and how a recorded cell's state follows from the judge's finding and the test's outcome.

Pure: derives the state from a capability record (ok, detail, the test's outcome and the line of
the test's failure or xfail message that names the capability); no pytest, no I/O.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from pytest_perfci.checks.verdict import CODE_MEANINGS, REASON_CODES, State, reason_code
from pytest_perfci.results.model import ResultRecord

__all__ = ["CODE_MEANINGS", "ORDER", "REASON_CODES", "STYLES", "CellVerdict", "State", "Style", "cell_verdict",
           "concerning", "reason_code"]


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


def _judged(record: ResultRecord) -> tuple[State, str] | None:
    """The judge's own finding, when the cell carries one (metadata "state"/"code", written since the
    judges share checks.verdict); None for older records, whose state is read from the sentence."""
    raw = record.metadata.get("state")
    if not raw:
        return None
    try:
        state = State(str(raw))
    except ValueError:
        return None
    return state, str(record.metadata.get("code", "") or "")


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
    absence; the judge's finding (else the detail sentence) says what was observed; the line of the
    test's message that names the capability (metadata "message", written by the results plugin) is
    the full reason when there is one."""
    ok = record.verdict == "pass"
    detail = str(record.metadata.get("detail", "") or "")
    message = str(record.metadata.get("message", "") or "")
    judged = _judged(record)
    outcome = record.outcome
    if judged is not None and judged[0] is State.NOT_RUN:
        return CellVerdict(state=State.NOT_RUN, code=judged[1] or "OTHER", reason=message or detail)
    if outcome == "failed":
        if message:
            code = _failure_code(message, detail, ok)
            if code in ("OTHER", "EXPECTED") and judged is not None and judged[1]:
                code = judged[1]  # the judge named why ("expected available, observed unavailable: ...")
            return CellVerdict(state=State.FAILED, code=code, reason=message)
        if not ok:
            code = judged[1] if judged is not None and judged[1] else reason_code(detail)
            return CellVerdict(state=State.FAILED, code=code, reason=detail or "test failed")
        return CellVerdict(state=State.AVAILABLE, reason=detail)
    if ok:
        return CellVerdict(state=State.AVAILABLE, reason=detail)
    if outcome == "skipped":
        return CellVerdict(state=State.NOT_RUN, code="SKIPPED", reason=message or detail)
    # xfailed, passed (the expectation said so), or unknown (records written before outcomes were kept)
    reason = message or detail
    if judged is not None and judged[0] is not State.AVAILABLE:
        # a FAILED finding on a test that did not fail (an expectation accepted it) is shown as observed absent
        state = State.ABSENT if judged[0] is State.FAILED else judged[0]
        return CellVerdict(state=state, code=judged[1] or reason_code(detail or message), reason=reason)
    return CellVerdict(state=_observed(detail), code=reason_code(detail or message), reason=reason)


def not_run(target: str, skipped: list[str]) -> CellVerdict:
    """Why no test ran on a target, from the skip reasons of its tests: the target never came up
    (UNREACHABLE, the provider's own message) or every test of it was skipped (DESELECTED: markers
    excluded them, or a skip said why). Each distinct reason once, in the order the tests met them."""
    prefix = f"target {target} unavailable: "
    down = [s.removeprefix(prefix) for s in skipped if s.startswith(prefix)]
    if down:
        return CellVerdict(state=State.NOT_RUN, code="UNREACHABLE", reason=down[0])
    reasons = list(dict.fromkeys(s for s in skipped if s))
    return CellVerdict(state=State.NOT_RUN, code="DESELECTED",
                       reason="; ".join(reasons) or f"every test of {target} was skipped")


def message_code(message: str, judged: list[str]) -> str:
    """The code in front of a deliberate failure or xfail in Allure (and so its category): read like a
    FAILED cell's (the observation behind "expected X, observed Y: ..."), else the code the judges of
    the test's cells gave (`judged`, in recording order), so Allure and the matrix agree."""
    first = message.splitlines()[0] if message else ""
    code = reason_code(_EXPECTED.sub("", first))
    if code == "OTHER" and _EXPECTED.search(first):
        code = "EXPECTED"
    if code in ("OTHER", "EXPECTED") and judged:
        code = judged[0]
    return code
