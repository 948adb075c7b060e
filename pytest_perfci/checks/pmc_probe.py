"""The controller's view of the pmc_reader probe: its JSON contract and the argv that runs it.

The probe (pytest_perfci/probes/pmc_reader.py) runs on the host under test and prints one JSON
document. This module is the only place that knows that document's shape, so a change of the
probe's output is a change here plus a version bump there. Pure: no I/O, no subprocess.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Local path of the probe script, for the code that copies it to a host.
PROBE_SCRIPT = Path(__file__).resolve().parent.parent / "probes" / "pmc_reader.py"


class ProbeEvent(BaseModel):
    """One counter of one run: the raw read (value, time_enabled, time_running) or the open's errno.

    ``value`` is None when perf_event_open (or the read) failed; ``errno``/``error`` then say why
    (e.g. errno 2 ENOENT for a hardware event on a VM without a vPMU).
    """

    model_config = ConfigDict(frozen=True)

    value: int | None = Field(default=None, ge=0)
    time_enabled: int | None = Field(default=None, ge=0)
    time_running: int | None = Field(default=None, ge=0)
    errno: int | None = None
    error: str | None = None

    @property
    def counted(self) -> bool:
        """True when the counter was opened and actually ran (perf stat would not say <not counted>)."""
        return self.value is not None and bool(self.time_running)

    @property
    def running_pct(self) -> float | None:
        """Share of the enabled time the counter was on a PMU, in percent (perf stat's last column).

        Below 100 means it was multiplexed and ``scaled_value`` is an estimate.
        """
        if self.value is None or not self.time_enabled or self.time_running is None:
            return None
        return 100.0 * self.time_running / self.time_enabled

    @property
    def scaled_value(self) -> float | None:
        """value * time_enabled / time_running: the multiplexing-corrected count perf stat prints.

        None when the counter never ran (time_running 0): there is nothing to scale.
        """
        if not self.counted:
            return None
        assert self.value is not None and self.time_running  # narrowed by counted
        enabled = self.time_enabled or self.time_running
        return self.value * enabled / self.time_running


class ProbeRun(BaseModel):
    """One execution of the workload: its exit status (-N = killed by signal N) and its counters."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    wall_seconds: float = Field(ge=0)
    events: dict[str, ProbeEvent]


class ProbeReport(BaseModel):
    """The whole probe output. ``version`` is pinned: an unknown layout is rejected, not guessed at."""

    model_config = ConfigDict(frozen=True)

    probe: Literal["pmc_reader"]
    version: Literal[1]
    arch: str
    pid_scope: str = "workload from exec to exit, inherit"
    user_only: bool
    cpu: int | None = None
    runs: list[ProbeRun] = Field(min_length=1)

    def median(self, event: str) -> float | None:
        """Median over the runs where ``event`` counted, of the scaled value (= value unless multiplexed).

        The median, not the mean, because one run disturbed by the noisy neighbour of a cloud host
        should not move the number that verdicts compare. None if the event never counted.
        """
        values = [
            scaled
            for run in self.runs
            if (ev := run.events.get(event)) is not None and (scaled := ev.scaled_value) is not None
        ]
        return statistics.median(values) if values else None

    def first_errno(self, event: str) -> int | None:
        """errno of the first run in which opening or reading ``event`` failed; None if it never failed."""
        for run in self.runs:
            ev = run.events.get(event)
            if ev is not None and ev.errno is not None:
                return ev.errno
        return None


def _one_line(exc: ValidationError) -> str:
    """pydantic's message spans lines; verdicts and logs want one line naming each bad field."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_probe_output(text: str) -> ProbeReport:
    """Parse the probe's stdout into a ProbeReport; ValueError with a one-line message on anything else.

    Strict on purpose: the probe guarantees that stdout holds only its JSON (the workload's output
    goes to stderr), so text around it means something went wrong and must not be skipped silently.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("pmc_reader output is empty")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        head = stripped[:60].replace("\n", "\\n")
        raise ValueError(f"pmc_reader output is not JSON ({exc.msg} at char {exc.pos}): {head!r}") from None
    if not isinstance(data, dict):
        # ValueError, not TypeError: the contract is "garbage text -> ValueError", whatever its shape.
        raise ValueError(  # noqa: TRY004
            f"pmc_reader output is JSON {type(data).__name__}, expected an object"
        )
    try:
        return ProbeReport.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"pmc_reader output does not match version 1: {_one_line(exc)}") from None


def probe_command(
    python: str,
    remote_path: str,
    events: Sequence[str] | str,
    workload: Sequence[str],
    user_only: bool = True,
    repeat: int = 1,
    cpu: int | None = None,
) -> list[str]:
    """argv that runs the probe on a host: ``[python, remote_path, --events ..., --, *workload]``.

    ``user_only`` defaults to True because an unprivileged user under the common
    ``perf_event_paranoid=2`` may only count user space; the comparison with perf stat must then
    use the ``:u`` events. ``workload`` must be an argv list: a single shell string would be exec'd
    as one file name, so it is refused here (TypeError) rather than failing on the host. Bad values
    raise ValueError.
    """
    names = events.split(",") if isinstance(events, str) else list(events)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("probe_command: no events given")
    bad = [n for n in names if "," in n or ":" in n]
    if bad:
        raise ValueError(f"probe_command: event names may not contain ',' or ':' (use user_only): {bad}")
    if isinstance(workload, str):
        raise TypeError("probe_command: workload must be an argv list, not a shell string")
    argv_workload = list(workload)
    if not argv_workload:
        raise ValueError("probe_command: empty workload")
    if repeat < 1:
        raise ValueError(f"probe_command: repeat must be >= 1, got {repeat}")
    argv = [python, remote_path, "--events", ",".join(names)]
    if user_only:
        argv.append("--user-only")
    if repeat != 1:
        argv += ["--repeat", str(repeat)]
    if cpu is not None:
        if cpu < 0:
            raise ValueError(f"probe_command: cpu must be >= 0, got {cpu}")
        argv += ["--cpu", str(cpu)]
    return [*argv, "--", *argv_workload]
