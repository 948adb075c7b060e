"""The one verdict vocabulary every judge speaks: a state, a short reason code, and the sentence behind it.

Why one: the PMC, resctrl, CL2 and perf stat judges grew their own words ("unavailable", "usable",
"no data", "not_supported"). A reader of the matrix, the step summary, the terminal grid or Allure
should meet one set of states and one set of codes, whichever judge spoke. Each judge keeps its own
detailed enum (it says more, e.g. which resctrl part is missing) and maps it onto this vocabulary with
a `finding` property; the matrix, Allure's categories.json and the terminal read only this.

States are the matrix's states. A judge alone says what it observed (available, absent, zero, one
reader, partial) or FAILED when the evidence fails whatever was expected (readers disagree, an SLO
violated, a regression); the expectations file then turns an observed absence into an accepted one or
a failure. NOT_RUN is for cells no judge reached (a target that never came up, a skipped test).

Codes are stable short words shown in cells and keyed on by Allure's categories; the full sentence
(`detail`) is shown once. `reason_code` derives a code from a sentence: records written before judges
named their codes (and messages of tests that fail outside any judge) still get the same codes.

Pure: no I/O, no pytest.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict


class State(str, Enum):
    AVAILABLE = "available"
    ABSENT = "absent"  # not there: accepted when the test xfailed, passed on an "unavailable" expectation, or none
    FAILED = "FAILED"  # expected but missing, readers disagree, regression, SLO violated
    ZERO = "zero"  # counts, but reads zero (as expected, or with no expectation)
    ONE_READER = "one-reader"  # one of the two readers counts, the other cannot read at all
    PARTIAL = "partial"  # some of it is there (a partial PMU, some resources)
    NOT_RUN = "not-run"  # no judge reached it: the target never came up, or the test was skipped


# (pattern searched in the reason, short code): first hit wins, so specific phrases come first.
REASON_CODES: tuple[tuple[str, str], ...] = (
    (r"^regression\b|\bregression:", "REGRESSION"),
    (r"readers (disagree|inconsistent)|but perf_event_open does not", "DISAGREE"),
    # suites/gpu (checks/gpu.py Reason values)
    (r"no NVIDIA device|no GPU attached|CUDA sees no device", "NO-GPU"),
    (r"NVIDIA driver not loaded|driver parameters unreadable", "NO-DRIVER"),
    (r"nvidia-smi missing", "NO-SMI"),
    (r"nvidia-smi failed", "SMI-FAILED"),
    (r"\b(device count|model|memory) mismatch", "MISMATCH"),
    (r"ECC disabled|ECC change pending", "ECC-OFF"),
    (r"ECC not supported", "NO-HW"),
    (r"libcuda missing", "NO-CUDA"),
    (r"CUDA call failed", "CUDA-FAILED"),
    (r"restricted to admin users", "ADMIN-ONLY"),
    (r"one reader", "ONE-READER"),
    (r"\bpartial\b", "PARTIAL"),
    (r"no hardware PMU", "NO-PMU"),
    (r"perf_event_paranoid", "PARANOID"),
    (r"perf not installed", "NO-PERF"),
    (r"not supported", "UNSUPPORTED"),
    (r"SLO violated", "SLO"),
    (r"SLO not judged|invalid measurement", "INVALID"),
    (r"no SLO measurement|: no data\b", "NO-DATA"),
    (r"reads zero|\bzero\b", "ZERO"),
    (r"multiplexed", "MULTIPLEXED"),
    (r"not counted", "NOT-COUNTED"),
    (r"implausible", "IMPLAUSIBLE"),
    (r"not applicable", "N/A"),
    (r"no hardware support|no RDT|no MPAM", "NO-HW"),
    (r"kernel lacks|kernel lists no", "NO-KERNEL"),
    (r"mount failed|not mounted|unusable", "NO-MOUNT"),
    (r"\bno \w+ resource|resource missing", "NO-RESOURCE"),
    (r"unknown|not enough evidence", "UNKNOWN"),
    (r"did not (grow|move|change)|no effect|unchanged", "NO-EFFECT"),
)
_CODES = [(re.compile(p, re.IGNORECASE), code) for p, code in REASON_CODES]

# Every code a cell, a judge or Allure's categories.json may show, with what it means.
CODE_MEANINGS: dict[str, str] = {
    "REGRESSION": "a sample left its history band or baseline",
    "DISAGREE": "the two readers (perf stat, perf_event_open) disagree",
    "ONE-READER": "only one reader counts",
    "PARTIAL": "only part of it is there",
    "NO-PMU": "no hardware PMU exposed",
    "PARANOID": "blocked by perf_event_paranoid",
    "NO-PERF": "perf not installed",
    "UNSUPPORTED": "event not supported",
    "SLO": "a ClusterLoader2 SLO was violated",
    "INVALID": "an inconsistent measurement: neither a pass nor a violation",
    "NO-DATA": "nothing measured",
    "BELOW": "measured below the advertised figure (network throughput)",
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
    "CL2-FAILED": "ClusterLoader2 reported failures of its own",
    "NO-GPU": "no NVIDIA GPU (no driver entry and no nvidia-smi, none attached, or CUDA sees none)",
    "NO-DRIVER": "the NVIDIA driver is not loaded or does not answer",
    "NO-SMI": "nvidia-smi is not installed",
    "SMI-FAILED": "nvidia-smi failed",
    "MISMATCH": "the host's GPUs are not the ones its instance type has",
    "ECC-OFF": "GPU ECC disabled, or a change pending a reboot",
    "NO-CUDA": "libcuda cannot be loaded",
    "CUDA-FAILED": "a CUDA driver API call failed",
    "ADMIN-ONLY": "GPU performance counters restricted to admin users",
    "EXPECTED": "expected by the expectations file, observed otherwise",
    "SKIPPED": "the test was skipped",
    "DESELECTED": "the target's tests were all skipped or excluded by markers",
    "UNREACHABLE": "the target never came up (provisioning, boot or SSH failed)",
    "OTHER": "see the note",
}


def reason_code(reason: str) -> str:
    """A short, stable code for a reason sentence ("OTHER" when no pattern knows it)."""
    for pattern, code in _CODES:
        if pattern.search(reason):
            return code
    return "OTHER"


class Finding(BaseModel):
    """What every judge returns in the shared vocabulary: the state it observed, its code, the sentence."""

    model_config = ConfigDict(frozen=True)

    state: State
    code: str = ""  # "" when available; else a key of CODE_MEANINGS
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state is State.AVAILABLE

    @property
    def expectation_word(self) -> str:
        """The word the expectations file (and checks.expectations.decide) uses for this observation."""
        return EXPECTATION_WORDS[self.state]


# expectations.toml predates this vocabulary and stays as users wrote it: "unavailable" is ABSENT, and a
# FAILED observation is the one decide() always fails ("inconsistent").
EXPECTATION_WORDS: dict[State, str] = {
    State.AVAILABLE: "available", State.ABSENT: "unavailable", State.ZERO: "zero", State.PARTIAL: "partial",
    State.ONE_READER: "one-reader", State.FAILED: "inconsistent", State.NOT_RUN: "unavailable",
}


def found(state: State, code: str = "", detail: str = "") -> Finding:
    """A Finding, refusing a code nobody can look up (so categories.json and the legend know every code)."""
    if code and code not in CODE_MEANINGS:
        raise ValueError(f"unknown reason code {code!r}; known: {', '.join(CODE_MEANINGS)}")
    return Finding(state=state, code=code, detail=detail)
