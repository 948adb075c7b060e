"""PMC verdicts: from what perf (or the perf_event_open probe) observed to "can these counters be trusted".

Pure functions over parsed data, so every verdict is tested on recorded outputs of real machines.
A verdict names the most specific reason the evidence allows: "event not supported" is true on a
VM without a virtual PMU, but "no hardware PMU exposed" tells the engineer what to change (the
instance type or hypervisor, not perf).
"""

from __future__ import annotations

import errno as errno_mod
import re
from collections.abc import Iterable, Sequence
from enum import Enum

from pydantic import BaseModel, ConfigDict

from pytest_perfci.checks.perf_stat import Counter, PerfStat, normalise_event
from pytest_perfci.checks.verdict import Finding, State, found
from pytest_perfci.models.facts import Facts

__all__ = [
    "Finding",
    "PmcContext",
    "Reason",
    "Status",
    "Verdict",
    "compare_readers",
    "judge_counter",
    "judge_cpi",
    "judge_errno",
    "judge_multiplexing",
    "judge_perf_stat",
    "judge_pmu",
    "judge_probe_alone",
    "one_reader",
    "trustworthy",
]


class Status(str, Enum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    INCONSISTENT = "inconsistent"
    ONE_READER = "one-reader"  # counted by perf_event_open; perf stat could not run, nothing compared


class Reason(str, Enum):
    NO_PMU = "no hardware PMU exposed"
    PARANOID = "blocked by perf_event_paranoid"
    PERF_MISSING = "perf not installed"
    NOT_SUPPORTED = "event not supported"
    ZERO = "counter reads zero"
    MULTIPLEXED = "multiplexed away"
    NOT_COUNTED = "not counted"
    DISAGREE = "readers disagree"
    ONE_READER = "one reader only"
    IMPLAUSIBLE = "implausible ratio"  # beyond the brief: CPI outside what hardware can do
    PARTIAL_PMU = "partial PMU"  # some core events count, others are not supported by this PMU

    @property
    def code(self) -> str:
        """The shared reason code (checks.verdict) the matrix and Allure show for this reason."""
        return _REASON_CODES[self]


_REASON_CODES: dict[Reason, str] = {
    Reason.NO_PMU: "NO-PMU", Reason.PARANOID: "PARANOID", Reason.PERF_MISSING: "NO-PERF",
    Reason.NOT_SUPPORTED: "UNSUPPORTED", Reason.ZERO: "ZERO", Reason.MULTIPLEXED: "MULTIPLEXED",
    Reason.NOT_COUNTED: "NOT-COUNTED", Reason.DISAGREE: "DISAGREE", Reason.ONE_READER: "ONE-READER",
    Reason.IMPLAUSIBLE: "IMPLAUSIBLE", Reason.PARTIAL_PMU: "PARTIAL",
}


class Verdict(BaseModel):
    """One event's verdict; `detail` is the sentence a human reads in a failed assertion."""

    model_config = ConfigDict(frozen=True)

    event: str
    status: Status
    reason: Reason | None = None
    detail: str = ""
    value: float | None = None
    other_value: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.AVAILABLE

    @property
    def finding(self) -> Finding:
        """This verdict in the shared vocabulary: readers that disagree fail whatever was expected; a
        counter that reads zero or a partial PMU say so; any other unavailability is an absence."""
        if self.status is Status.AVAILABLE:
            state = State.PARTIAL if self.reason is Reason.PARTIAL_PMU else State.AVAILABLE
        elif self.status is Status.INCONSISTENT:
            state = State.FAILED
        elif self.status is Status.ONE_READER:
            state = State.ONE_READER
        else:
            state = (State.ZERO if self.reason is Reason.ZERO
                     else State.PARTIAL if self.reason is Reason.PARTIAL_PMU else State.ABSENT)
        code = self.reason.code if self.reason is not None and state is not State.AVAILABLE else ""
        return found(state, code, self.line())

    def line(self) -> str:
        """``cycles: unavailable (no hardware PMU exposed: ...)``: fits one log or assert line."""
        if self.reason is not None:
            inner = f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value
            return f"{self.event}: {self.status.value} ({inner})"
        return f"{self.event}: {self.status.value}" + (f" ({self.detail})" if self.detail else "")


class PmcContext(BaseModel):
    """What is known about the host beyond the perf output; None means "not known"."""

    model_config = ConfigDict(frozen=True)

    core_pmu: bool | None = None
    perf_event_paranoid: int | None = None
    perf_installed: bool = True
    is_root: bool = False
    # Beyond the brief: needed to name the paranoid level that blocks, and to show the PMU list.
    system_wide: bool = False
    pmu_devices: tuple[str, ...] = ()
    # Why perf is absent when preparation tried and could not install it ("apt: no package ..."), or the
    # command that would install it; "" when nobody tried.
    perf_absent: str = ""

    @property
    def perf_missing_why(self) -> str:
        return self.perf_absent or "no `perf --version` on the host; install linux-perf (linux-tools)"

    @classmethod
    def from_facts(cls, facts: Facts, is_root: bool, system_wide: bool = False) -> PmcContext:
        """Context from gathered Facts. An empty PMU list means the listing failed, not "no PMU"."""
        failed = [u.removeprefix("perf: ") for u in facts.unprepared if u.startswith("perf: ")]
        return cls(
            perf_absent=f"could not be installed: {failed[0]}" if failed else "",
            core_pmu=facts.core_pmu if facts.pmu_devices else None,
            perf_event_paranoid=facts.perf_event_paranoid,
            perf_installed=facts.perf_version is not None,
            is_root=is_root,
            system_wide=system_wide,
            pmu_devices=facts.pmu_devices,
        )


# Events served by the kernel itself (software PMU): a missing core PMU cannot explain them.
_SOFTWARE_EVENTS = {
    "cpu-clock", "task-clock", "page-faults", "faults", "minor-faults", "major-faults",
    "context-switches", "cs", "cpu-migrations", "migrations", "alignment-faults",
    "emulation-faults", "dummy", "bpf-output", "cgroup-switches",
}  # fmt: skip
_CORE_PMU_PREFIXES = ("cpu", "armv8_", "arm_cortex_", "armv7_")


def _is_core_event(event: str) -> bool:
    """True for events only a core PMU can count (cycles, instructions, cpu_core/..., raw rNNN)."""
    name, pmu = normalise_event(event)
    if pmu is not None:
        return pmu.startswith(_CORE_PMU_PREFIXES)
    return name not in _SOFTWARE_EVENTS and ":" not in name  # tracepoints are sys:name


def _modifiers(event: str) -> str:
    """The modifier letters of ``cycles:uk`` or ``cpu/cycles/k`` ("" for none or a tracepoint)."""
    head, sep, tail = event.rpartition(":") if "/" not in event else event.rpartition("/")
    return tail if sep and head and re.fullmatch(r"[ukhIGHpPSDWebR]+", tail) else ""


def _pmu_shares(counter: Counter) -> str:
    """``cpu_core 97.00%, cpu_atom 2.00%`` for a hybrid counter, largest share first ("" otherwise)."""
    return ", ".join(f"{pmu} {p:.2f}%" for pmu, p in sorted(counter.pmu_pct.items(), key=lambda kv: -kv[1]))


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _paranoid_block(event: str, ctx: PmcContext) -> str | None:
    """What perf_event_paranoid forbids this caller, or None when it does not explain a failure.

    Kernel levels: >=1 forbids system-wide (CPU) events, >=2 kernel-mode counting, and the
    Debian/Android level 3 any unprivileged use. Root (or CAP_PERFMON) is never blocked.
    """
    p = ctx.perf_event_paranoid
    if ctx.is_root or p is None:
        return None
    if p > 2:
        return "any perf_event_open by unprivileged users"
    if p >= 2 and "k" in _modifiers(event):
        return "kernel-mode counting for unprivileged users"
    if p >= 1 and ctx.system_wide:
        return "system-wide (per-CPU) counting for unprivileged users"
    return None


def _unavailable_why(event: str, ctx: PmcContext, observed: str) -> tuple[Reason, str]:
    """The most specific reason for a missing event: perf > core PMU > paranoid > not supported."""
    if not ctx.perf_installed:
        return Reason.PERF_MISSING, ctx.perf_missing_why
    if ctx.core_pmu is False and _is_core_event(event):
        listed = ", ".join(ctx.pmu_devices) if ctx.pmu_devices else "nothing"
        return Reason.NO_PMU, (
            f"/sys/bus/event_source/devices has no cpu PMU (only {listed}); a VM without a virtual "
            "PMU logs 'Performance Events: PMU not available due to virtualization' in dmesg"
        )
    blocked = _paranoid_block(event, ctx)
    if blocked:
        return Reason.PARANOID, (
            f"kernel.perf_event_paranoid={ctx.perf_event_paranoid} forbids {blocked}; "
            "run as root, grant CAP_PERFMON or lower the sysctl"
        )
    return Reason.NOT_SUPPORTED, observed


def judge_counter(
    counter: Counter | None, event: str, ctx: PmcContext | None = None, min_running_pct: float = 50.0
) -> Verdict:
    """Verdict for one perf stat counter (None: perf printed no line for the event).

    Multiplexing below `min_running_pct` makes the printed value an extrapolation from a minority
    of the run, which is not a measurement a test should trust; 50% is where most of the value
    is still observed rather than scaled.
    """
    ctx = ctx or PmcContext()
    if counter is None or counter.status == "not_supported":
        observed = (
            f"perf stat printed no line for {event}"
            if counter is None
            else f"perf stat printed <not supported> for {counter.event}"
        )
        reason, detail = _unavailable_why(event if counter is None else counter.event, ctx, observed)
        return Verdict(event=event, status=Status.UNAVAILABLE, reason=reason, detail=detail)
    pct = counter.running_pct
    if counter.status == "not_counted" or pct == 0 or counter.value is None:
        if pct == 0:
            return Verdict(
                event=event, status=Status.UNAVAILABLE, reason=Reason.MULTIPLEXED,
                detail="<not counted> with 0.00% running: its group never got a hardware counter",
            )  # fmt: skip
        ran = f" (running {pct:.2f}%)" if pct is not None else ""
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.NOT_COUNTED,
            detail=f"perf stat printed <not counted>{ran}: enabled but never ran",
        )  # fmt: skip
    shares = _pmu_shares(counter)
    if pct is not None and pct < min_running_pct:
        if counter.residency:
            return Verdict(
                event=event, status=Status.UNAVAILABLE, reason=Reason.MULTIPLEXED, value=counter.value,
                detail=(
                    f"the core types' counters together saw only {pct:.2f}% of the task's time "
                    f"(< {min_running_pct:g}%; residency {shares}), so the rest was multiplexed away"
                ),
            )  # fmt: skip
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.MULTIPLEXED, value=counter.value,
            detail=(
                f"on a counter only {pct:.2f}% of the time (< {min_running_pct:g}%), "
                f"so {_fmt(counter.value)} is an extrapolation"
            ),
        )  # fmt: skip
    if counter.value == 0:
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.ZERO, value=0.0,
            detail="perf stat counted 0 over a workload that ran: the counter is not wired to the core",
        )  # fmt: skip
    running = f", running {pct:.2f}%" if pct is not None else ""
    if counter.residency:
        running = (
            f" on the task's core types (sum of the unscaled per-PMU counts), residency {shares}"
            f" = {pct:.2f}% of the task's time"
            if pct is not None
            else ""
        )
    elif shares:
        running += f" (per-PMU multiplexing {shares})"
    return Verdict(
        event=event, status=Status.AVAILABLE, value=counter.value,
        detail=f"{_fmt(counter.value)} counted{running}",
    )  # fmt: skip


_ERRNO_MEANING: dict[int, tuple[Reason, str]] = {
    errno_mod.EOPNOTSUPP: (Reason.NOT_SUPPORTED, "the PMU cannot count this event with these attributes"),
    errno_mod.EINVAL: (Reason.NOT_SUPPORTED, "the kernel rejected the event encoding or attributes"),
    errno_mod.E2BIG: (Reason.NOT_SUPPORTED, "perf_event_attr size unknown to this kernel"),
    errno_mod.ENODEV: (Reason.NO_PMU, "no such PMU or CPU"),
    errno_mod.ENOSYS: (
        Reason.NO_PMU,
        "perf_event_open is not implemented (kernel without CONFIG_PERF_EVENTS)",
    ),
    errno_mod.EBUSY: (Reason.NOT_COUNTED, "the counter is held exclusively by another user"),
}


def judge_errno(event: str, errno: int, ctx: PmcContext | None = None) -> Verdict:
    """Verdict for a perf_event_open result (errno 0 = the open worked).

    ENOENT on a hardware event means "this PMU has no such generic event", which on a host with no
    core PMU at all is the VM-without-vPMU case. EACCES/EPERM is the paranoid policy (EPERM can
    also be a seccomp filter, e.g. a container runtime's default profile).
    """
    ctx = ctx or PmcContext()
    if errno == 0:
        return Verdict(event=event, status=Status.AVAILABLE, detail="perf_event_open succeeded")
    name = errno_mod.errorcode.get(errno, f"errno {errno}")
    tag = f"perf_event_open failed with {name} ({errno})"
    if errno == errno_mod.ENOENT:
        if ctx.core_pmu is False and _is_core_event(event):
            reason, why = _unavailable_why(event, ctx.model_copy(update={"perf_installed": True}), "")
            return Verdict(event=event, status=Status.UNAVAILABLE, reason=reason, detail=f"{tag}; {why}")
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.NOT_SUPPORTED,
            detail=f"{tag}: the PMU has no such event",
        )  # fmt: skip
    if errno in (errno_mod.EACCES, errno_mod.EPERM):
        p = ctx.perf_event_paranoid
        level = f"kernel.perf_event_paranoid={p}" if p is not None else "kernel.perf_event_paranoid"
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.PARANOID,
            detail=f"{tag}: {level} (or a seccomp filter) denies this caller; run as root or grant CAP_PERFMON",
        )  # fmt: skip
    reason, why = _ERRNO_MEANING.get(errno, (Reason.NOT_SUPPORTED, "unexpected error"))
    return Verdict(event=event, status=Status.UNAVAILABLE, reason=reason, detail=f"{tag}: {why}")


def one_reader(event: str, probe_value: float, ctx: PmcContext | None = None) -> Verdict:
    """perf is absent but perf_event_open counted: the counter works, yet the two readers were not compared.

    Never "unavailable" (the PMU counts) and never "available" (nothing cross-checked the number): a
    state of its own, which the matrix shows as "one reader only"."""
    ctx = ctx or PmcContext()
    return Verdict(
        event=event, status=Status.ONE_READER, reason=Reason.ONE_READER, value=probe_value,
        detail=(f"counted by perf_event_open ({_fmt(probe_value)}); the two readers were not compared "
                f"because perf is absent ({ctx.perf_missing_why})"),
    )  # fmt: skip


def judge_probe_alone(event: str, errno: int | None, value: float | None, ctx: PmcContext | None = None) -> Verdict:
    """The verdict from the perf_event_open probe alone (perf is absent): its errno, zero, or one reader."""
    if errno is not None and errno != 0:
        return judge_errno(event, errno, ctx)
    if value is None:
        return Verdict(event=event, status=Status.UNAVAILABLE, reason=Reason.NOT_COUNTED,
                       detail="perf_event_open opened the counter but it never ran")
    if value == 0:
        return Verdict(event=event, status=Status.UNAVAILABLE, reason=Reason.ZERO, value=0.0,
                       detail="perf_event_open counted 0 over a workload that ran (perf absent, nothing to compare)")
    return one_reader(event, value, ctx)


def compare_readers(
    event: str,
    a: float,
    b: float,
    tolerance: float = 0.02,
    a_name: str = "perf stat",
    b_name: str = "perf_event_open",
) -> Verdict:
    """Do two readers of the same scope agree? Relative difference against the larger reading.

    Dividing by the larger makes the measure symmetric and bounded by 100%, so swapping the
    readers never changes the verdict.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    both = f"{a_name} read {_fmt(a)}, {b_name} read {_fmt(b)}"
    larger = max(abs(a), abs(b))
    if larger == 0:
        return Verdict(
            event=event, status=Status.UNAVAILABLE, reason=Reason.ZERO, value=a, other_value=b,
            detail=f"{both}: both zero, nothing to compare",
        )  # fmt: skip
    diff = abs(a - b) / larger
    text = f"{both}: {diff * 100:.2f}% apart (tolerance {tolerance * 100:.2f}%)"
    if diff <= tolerance:
        return Verdict(event=event, status=Status.AVAILABLE, value=a, other_value=b, detail=text)
    return Verdict(
        event=event, status=Status.INCONSISTENT, reason=Reason.DISAGREE, value=a, other_value=b, detail=text
    )


def judge_cpi(
    cycles: float, instructions: float, low: float = 0.1, high: float = 20.0, exact: float | None = None
) -> Verdict:
    """Is cycles/instructions something a real core can produce?

    The widest cores shipping today retire about 4-8 instructions per cycle, so CPI cannot go
    much below 0.12; below 0.1 one counter is mis-scaled or counts a different scope than the
    other. Above 20 a compute loop would be stalled on nearly every instruction, which points at
    cycles including time that is not the workload (halted or other contexts) or instructions
    missing most of it. Both bounds are loose on purpose: they catch broken counters, not slow code.

    `exact` is for a target whose CPI is fixed by construction (a twin at -icount shift=0 counts one
    cycle per instruction): anything else there means the two counters do not count the same thing.
    """
    if cycles <= 0 or instructions <= 0:
        return Verdict(
            event="cpi", status=Status.UNAVAILABLE, reason=Reason.ZERO, value=cycles, other_value=instructions,
            detail=f"cycles {_fmt(cycles)}, instructions {_fmt(instructions)}: no ratio without both",
        )  # fmt: skip
    cpi = cycles / instructions
    nums = f"CPI {cpi:.3g} = {_fmt(cycles)} cycles / {_fmt(instructions)} instructions"
    if exact is not None:
        if abs(cpi - exact) <= 1e-9 * exact:
            return Verdict(event="cpi", status=Status.AVAILABLE, value=cycles, other_value=instructions,
                           detail=f"{nums}, exactly the expected {exact:g}")
        return Verdict(
            event="cpi", status=Status.INCONSISTENT, reason=Reason.IMPLAUSIBLE, value=cycles,
            other_value=instructions, detail=f"{nums}, not the {exact:g} this target counts by construction",
        )  # fmt: skip
    if cpi < low:
        return Verdict(
            event="cpi", status=Status.INCONSISTENT, reason=Reason.IMPLAUSIBLE, value=cycles,
            other_value=instructions, detail=f"{nums}, below {low:g}: no core retires that many per cycle",
        )  # fmt: skip
    if cpi > high:
        return Verdict(
            event="cpi", status=Status.INCONSISTENT, reason=Reason.IMPLAUSIBLE, value=cycles,
            other_value=instructions, detail=f"{nums}, above {high:g}: cycles and instructions disagree on scope",
        )  # fmt: skip
    return Verdict(
        event="cpi", status=Status.AVAILABLE, value=cycles, other_value=instructions,
        detail=f"{nums}, within [{low:g}, {high:g}]",
    )  # fmt: skip


def judge_perf_stat(
    stat: PerfStat,
    events: Sequence[str] = ("cycles", "instructions"),
    ctx: PmcContext | None = None,
    min_running_pct: float = 50.0,
) -> list[Verdict]:
    """One verdict per event, plus a CPI plausibility verdict when cycles and instructions both count."""
    # Known -a: hybrid percentages are per-PMU multiplexing, never a task's residency.
    wide = True if ctx is not None and ctx.system_wide else None
    verdicts = [judge_counter(stat.get(e, system_wide=wide), e, ctx, min_running_pct) for e in events]
    by_name = {normalise_event(v.event)[0]: v for v in verdicts}
    cyc, ins = by_name.get("cycles"), by_name.get("instructions")
    if cyc and ins and cyc.ok and ins.ok and cyc.value is not None and ins.value is not None:
        verdicts.append(judge_cpi(cyc.value, ins.value))
    return verdicts


def trustworthy(verdicts: Iterable[Verdict]) -> bool:
    """cycles and instructions are both available and nothing judged contradicts them."""
    vs = list(verdicts)
    core = [v for v in vs if normalise_event(v.event)[0] in ("cycles", "instructions")]
    seen = {normalise_event(v.event)[0] for v in core}
    return (
        seen == {"cycles", "instructions"}
        and all(v.ok for v in core)
        and not any(v.status is Status.INCONSISTENT for v in vs)
    )


def judge_pmu(verdicts: Iterable[Verdict]) -> Verdict:
    """The core PMU as a whole, from the cycles and instructions verdicts.

    "partial PMU" is its own answer: when cycles count and instructions are not supported (QEMU's
    PMUv3 without -icount, some hypervisors' vPMUs), neither "available" nor "no PMU" is true, and
    a CPI check cannot run.
    """
    core = {normalise_event(v.event)[0]: v for v in verdicts if normalise_event(v.event)[0] in ("cycles", "instructions")}
    counted = sorted(e for e, v in core.items() if v.ok or v.status is Status.ONE_READER)
    missing = sorted(e for e, v in core.items() if e not in counted)
    alone = [v for v in core.values() if v.status is Status.ONE_READER]
    if not missing and alone:  # counted, by perf_event_open only (perf absent)
        return Verdict(event="pmu", status=Status.ONE_READER, reason=Reason.ONE_READER,
                       detail=f"{' and '.join(counted)} count; {alone[0].detail.split('; ', 1)[-1]}")
    if not missing:
        return Verdict(event="pmu", status=Status.AVAILABLE, detail=f"{' and '.join(counted)} count")
    if counted and all(core[e].reason is Reason.NOT_SUPPORTED for e in missing):
        return Verdict(
            event="pmu", status=Status.UNAVAILABLE, reason=Reason.PARTIAL_PMU,
            detail=f"{', '.join(counted)} count{'s' if len(counted) == 1 else ''}; "
                   f"{', '.join(missing)} not supported by this PMU",
        )  # fmt: skip
    first = core[missing[0]]
    return Verdict(event="pmu", status=first.status, reason=first.reason, detail=first.line())


def judge_multiplexing(stat: PerfStat) -> Verdict:
    """Did perf have to share the PMU's counters between the events of one run, and does it say so?

    With more events than counters the kernel rotates them and perf scales each count by
    enabled/running time; the honest report names the share of time each event really counted.
    """
    counted = [c for c in stat.counters if c.status not in ("not_supported", "not_counted") and c.value is not None]
    if not counted:
        return Verdict(event="multiplexing", status=Status.UNAVAILABLE, reason=Reason.NOT_SUPPORTED,
                       detail=f"none of {len(stat.counters)} events counted")
    pcts = [c.running_pct for c in counted if c.running_pct is not None]
    if pcts and min(pcts) < 100.0:
        return Verdict(
            event="multiplexing", status=Status.AVAILABLE, reason=Reason.MULTIPLEXED,
            detail=f"{len(counted)} events shared the PMU's counters: each counted {min(pcts):.2f}-{max(pcts):.2f}% "
                   "of the time and perf scaled the rest",
        )  # fmt: skip
    return Verdict(event="multiplexing", status=Status.AVAILABLE,
                   detail=f"{len(counted)} events each had a counter the whole run: no multiplexing")
