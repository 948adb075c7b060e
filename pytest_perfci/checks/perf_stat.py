"""Parse whatever `perf stat` printed into counters, without I/O.

perf stat output reaches us in many shapes: `-x<sep>` CSV from several perf generations, `-j` JSON
lines, and the human table pasted into CI logs and mailing-list threads with workload output, shell
prompts and log timestamps around it. The suites judge capability from these numbers, so the
parser is tolerant of everything around the counters (it is skipped, never a crash) and strict
about the counter lines themselves (a line that does not have the shape of one is not one).

Recognised shapes (tested on recorded real outputs under tests/data/samples/pmc):

* CSV, any separator: ``[interval,][aggr-id,[aggr-nr,]]value,unit,event[,variance%][,run-time,
  pcnt-running[,metric-value,metric-unit]]``. That covers the modern 7-field layout, the old
  5-field one (no metric columns), ``-r N`` (variance after the event), ``-I`` (space-padded
  timestamp first) and ``--per-core``/``-A`` prefixes. Metric-only lines (empty event) are skipped.
* JSON lines (``-j``): ``counter-value`` as string or number, ``metric-value`` as number or quoted
  string, per-core keys (``core``, ``aggregate-number``, ``cpu``...), metric-only lines skipped.
* The human table, including ``-I`` interval output, ``(xx.xx%)`` multiplexing, ``( +- x% )``
  variance, ``# metric`` comments, thousands separators and old ``cpu-clock (msec)`` units.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["counted", "not_supported", "not_counted"]

__all__ = [
    "Counter",
    "PerfStat",
    "PerfStatParseError",
    "normalise_event",
    "parse_perf_stat",
    "perf_stat_command",
]


class PerfStatParseError(ValueError):
    """The text holds no perf stat counter line at all (perf failed, or this is not perf output)."""


class Counter(BaseModel):
    """One counter line as perf printed it, with the event name normalised for lookup."""

    model_config = ConfigDict(frozen=True)

    event: str
    name: str
    value: float | None
    unit: str = ""
    status: Status
    running_pct: float | None = None
    variance_pct: float | None = None
    interval: float | None = None
    pmu: str | None = None
    metric_value: float | None = None
    metric_unit: str = ""
    # Extensions beyond the brief: where a line came from when one text holds several of them.
    aggregate: str | None = None  # --per-core / -A id such as "S0-D0-C15" or "CPU3"
    run: int = 0  # index of the perf stat invocation within the text (pasted logs may hold several)


class PerfStat(BaseModel):
    """All counter lines of one text; `get` answers "what did perf count for this event"."""

    model_config = ConfigDict(frozen=True)

    format: Literal["csv", "json", "human"]
    counters: list[Counter]

    @property
    def runs(self) -> list[int]:
        """Run indexes present, in order. More than one only when several invocations were pasted."""
        return sorted({c.run for c in self.counters})

    def select(self, run: int) -> PerfStat:
        """The counters of one perf stat invocation."""
        return PerfStat(format=self.format, counters=[c for c in self.counters if c.run == run])

    def get(self, name: str, run: int | None = None) -> Counter | None:
        """One aggregated counter for a normalised event name, or None if perf never printed it.

        Aggregation exists because one logical event is often printed as several lines: hybrid
        PMUs (``cpu_core/cycles/`` + ``cpu_atom/cycles/``), per-core/per-CPU lines and ``-I``
        intervals. Each is a disjoint slice of the same count, so:

        * value: the sum of the counted lines (None when no line counted);
        * status: ``counted`` if any line counted, else ``not_counted`` if any line was supported
          but never scheduled, else ``not_supported``;
        * running_pct: the minimum over the counted lines, because the most multiplexed slice
          bounds how much of the total is an estimate;
        * variance_pct: the maximum; metric_value is kept only for a single line (metrics such
          as GHz or IPC do not add up);
        * event / pmu: joined with ``+`` when the lines differ.

        Separate perf invocations (``run``) are not slices of one count, so they are never summed:
        without ``run`` the last run that printed the event is used.
        """
        key = normalise_event(name)[0]
        lines = [c for c in self.counters if c.name == key]
        if not lines:
            return None
        chosen_run = lines[-1].run if run is None else run
        lines = [c for c in lines if c.run == chosen_run]
        if not lines:
            return None
        if len(lines) == 1:
            return lines[0]
        counted = [c for c in lines if c.status == "counted"]
        status: Status
        if counted:
            status = "counted"
        elif any(c.status == "not_counted" for c in lines):
            status = "not_counted"
        else:
            status = "not_supported"
        pcts = [c.running_pct for c in counted if c.running_pct is not None]
        variances = [c.variance_pct for c in lines if c.variance_pct is not None]
        return Counter(
            event=_join_unique(c.event for c in lines) or key,
            name=key,
            value=sum(c.value or 0.0 for c in counted) if counted else None,
            unit=lines[0].unit,
            status=status,
            running_pct=min(pcts) if pcts else None,
            variance_pct=max(variances) if variances else None,
            interval=None,
            pmu=_join_unique(c.pmu for c in lines if c.pmu),
            run=chosen_run,
        )


def _join_unique(items: Iterable[str | None]) -> str | None:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return "+".join(seen) if seen else None


# --- event names -------------------------------------------------------------------------------

# Aliases of the generic hardware events, so a lookup for "cycles" finds what every PMU calls it.
_ALIASES = {
    "cpu-cycles": "cycles",
    "cpu_cycles": "cycles",  # Arm PMU event name (armv8_pmuv3_0/cpu_cycles/)
    "inst_retired": "instructions",  # Arm PMU event name
    "branch-instructions": "branches",
    "cache_misses": "cache-misses",
}
# perf event modifiers (tools/perf/util/parse-events.l): u k h I G H p P S D W e b R.
_MODIFIERS = re.compile(r"^[ukhIGHpPSDWebR]+$")


def normalise_event(event: str) -> tuple[str, str | None]:
    """(normalised name, pmu) for an event as printed.

    ``cpu_core/cycles/u`` -> ("cycles", "cpu_core"); ``cycles:u`` -> ("cycles", None). Tracepoints
    (``sched:sched_switch``) keep their colon: only a suffix made of modifier letters is dropped.
    A raw PMU term list (``cpu/event=0x3c,umask=0x0/``) keeps its ``name=`` if it has one.
    """
    event = event.strip()
    pmu: str | None = None
    m = re.fullmatch(r"([\w.\-]+)/(.*)/([\w:]*)", event)
    if m:
        pmu, terms = m.group(1), m.group(2)
        named = re.search(r"(?:^|,)name=([^,]+)", terms)
        if named:
            body = named.group(1)
        elif "=" in terms:
            body = event  # raw encoding: the whole text is the only stable name
        else:
            body = terms.split(",")[0]
    else:
        body = event
        head, sep, tail = body.rpartition(":")
        if sep and head and _MODIFIERS.match(tail):
            body = head
    return _ALIASES.get(body, body), pmu


# --- value fields ------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_NOT = {"<not supported>": "not_supported", "<not counted>": "not_counted"}
_EVENT = re.compile(r"^[A-Za-z_{\[][^\s]*$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def _is_value(text: str) -> bool:
    t = text.strip()
    return t in _NOT or _is_number(t)


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    t = str(text).strip().replace(",", "")
    if not t:
        return None
    try:
        v = float(t)
    except ValueError:
        return None
    return None if math.isnan(v) else v  # NaN ("nan %" metrics) carries no information


def _counter(
    event: str,
    value_text: str,
    unit: str = "",
    running_pct: float | None = None,
    variance_pct: float | None = None,
    interval: float | None = None,
    metric_value: float | None = None,
    metric_unit: str = "",
    aggregate: str | None = None,
    run: int = 0,
) -> Counter:
    name, pmu = normalise_event(event)
    v = value_text.strip()
    status: Status = _NOT.get(v, "counted")  # type: ignore[assignment]
    return Counter(
        event=event.strip(),
        name=name,
        value=_float(v) if status == "counted" else None,
        unit=unit.strip(),
        status=status,
        running_pct=running_pct,
        variance_pct=variance_pct,
        interval=interval,
        pmu=pmu,
        metric_value=metric_value,
        metric_unit=metric_unit.strip(),
        aggregate=aggregate,
        run=run,
    )


# --- text clean-up -----------------------------------------------------------------------------

# GitHub Actions (and similar CI) prefix every log line with an ISO-8601 timestamp.
_CI_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_STARTED_ON = re.compile(r"^#\s*started on\b")


def _lines(text: str) -> list[str]:
    return [_CI_STAMP.sub("", line.rstrip("\r")) for line in text.splitlines()]


# --- CSV ---------------------------------------------------------------------------------------


def _merge_pmu_terms(fields: list[str], sep: str) -> list[str]:
    """Re-join an event like ``cpu/event=0x3c,umask=0x0/`` that the separator split apart."""
    out: list[str] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        if f.count("/") == 1 and re.match(r"^[\w.\-]+/", f):
            j = i + 1
            while j < len(fields) and "/" not in fields[j]:
                j += 1
            if j < len(fields):
                out.append(sep.join(fields[i : j + 1]))
                i = j + 1
                continue
        out.append(f)
        i += 1
    return out


def _csv_line(line: str, sep: str, run: int) -> Counter | None:
    """One CSV counter line, or None. The event column is found by shape, not position.

    The event is the first field that has a value two columns to its left (value, unit, event)
    and is followed by nothing, a variance (``x%``) or a number (run time). Whatever precedes the
    value is the ``-I`` timestamp and/or the ``--per-core``/``-A`` aggregation id.
    """
    if sep not in line:
        return None
    fields = _merge_pmu_terms(line.split(sep), sep)
    for i in range(2, len(fields)):
        event = fields[i].strip()
        if not _EVENT.match(event) or event.endswith("%") or _is_number(event):
            continue
        if not _is_value(fields[i - 2]):
            continue
        rest = [f.strip() for f in fields[i + 1 :]]
        if rest and rest[0] and not (rest[0].endswith("%") or _is_number(rest[0])):
            continue
        prefix = [f.strip() for f in fields[: i - 2]]
        interval: float | None = None
        if prefix and _is_number(prefix[0]) and "." in prefix[0]:
            interval = float(prefix[0])
            prefix = prefix[1:]
        aggregate = prefix[0] if prefix and prefix[0] and not _is_number(prefix[0]) else None
        variance: float | None = None
        if rest and rest[0].endswith("%"):
            variance = _float(rest[0][:-1])
            rest = rest[1:]
        # rest: run-time, pcnt-running, metric-value, metric-unit (any suffix may be missing)
        running = _float(rest[1]) if len(rest) > 1 else None
        metric_value = _float(rest[2]) if len(rest) > 2 else None
        metric_unit = sep.join(rest[3:]) if len(rest) > 3 else ""
        return _counter(
            event,
            fields[i - 2],
            unit=fields[i - 1],
            running_pct=running,
            variance_pct=variance,
            interval=interval,
            metric_value=metric_value,
            metric_unit=metric_unit,
            aggregate=aggregate,
            run=run,
        )
    return None


def _parse_csv(lines: list[str], sep: str) -> list[Counter]:
    counters: list[Counter] = []
    run = 0
    for line in lines:
        if _STARTED_ON.match(line):
            if counters and counters[-1].run == run:
                run += 1  # `--append` writes one header per invocation
            continue
        c = _csv_line(line, sep, run)
        if c is not None:
            counters.append(c)
    return counters


def _candidate_seps(lines: list[str]) -> list[str]:
    """Separators worth trying: the usual ones plus whatever follows a leading value."""
    seps = [",", ";", "\t", "|"]
    for line in lines:
        m = re.match(r"^\s*(?:<not (?:supported|counted)>|\d[\d.]*)([^\w\s.<>\-])", line)
        if m and m.group(1) not in seps:
            seps.append(m.group(1))
    return seps


# --- JSON --------------------------------------------------------------------------------------

_AGGR_KEYS = ("core", "cpu", "die", "socket", "node", "thread", "cgroup")


def _parse_json(lines: list[str]) -> list[Counter]:
    counters: list[Counter] = []
    run = 0
    for line in lines:
        s = line.strip()
        if _STARTED_ON.match(s):
            if counters and counters[-1].run == run:
                run += 1
            continue
        if not s.startswith("{"):
            continue
        try:
            obj: Any = json.loads(s)
        except json.JSONDecodeError:
            continue  # truncated paste or interleaved output
        if not isinstance(obj, dict) or not obj.get("event") or "counter-value" not in obj:
            continue  # metric-only and metricgroup lines have no event
        value = obj["counter-value"]
        aggregate = next((str(obj[k]) for k in _AGGR_KEYS if k in obj), None)
        variance = obj.get("variance")
        counters.append(
            _counter(
                str(obj["event"]),
                str(value),
                unit=str(obj.get("unit") or ""),
                running_pct=_float(obj.get("pcnt-running")),
                variance_pct=_float(str(variance).rstrip("%")) if variance is not None else None,
                interval=_float(obj.get("interval")),
                metric_value=_float(obj.get("metric-value")),
                metric_unit=str(obj.get("metric-unit") or ""),
                aggregate=aggregate,
                run=run,
            )
        )
    return counters


# --- human table -------------------------------------------------------------------------------

_HUMAN = re.compile(
    r"""^\s*
    (?:(?P<ts>\d+\.\d+)\s+(?=[\d<]))?                       # -I timestamp
    (?P<value><not\ supported>|<not\ counted>|\d[\d,]*(?:\.\d+)?)\s+
    (?P<words>[^#(\s][^#(]*?)\s*                            # [unit] event
    (?P<rest>[#(].*)?$""",
    re.VERBOSE,
)
_PCNT = re.compile(r"\((\d+(?:\.\d+)?)%\)\s*$")
_VARIANCE = re.compile(r"\(\s*\+-\s*(\d+(?:\.\d+)?)%\s*\)")
_PAREN_UNIT = re.compile(r"^\(([A-Za-z]+)\)")
_METRIC = re.compile(r"#\s*(?P<mv>-?\d[\d,]*(?:\.\d+)?|nan)\s*(?P<mu>[^(]*?)\s*(?:\(|$)")
_HEADER = re.compile(r"Performance counter stats for\b")
_FOOTER = re.compile(r"seconds time elapsed")


def _human_line(line: str, run: int) -> Counter | None:
    m = _HUMAN.match(line)
    if not m:
        return None
    words = m.group("words").split()
    if len(words) == 1:
        unit, event = "", words[0]
    elif len(words) == 2:
        unit, event = words
    else:
        return None
    if unit == "seconds" or not _EVENT.match(event) or not re.match(r"^[A-Za-z]*$", unit):
        return None
    rest = m.group("rest") or ""
    pu = _PAREN_UNIT.match(rest)
    if pu and not unit:
        unit = pu.group(1)  # old perf: "cpu-clock (msec)"
    pcnt = _PCNT.search(rest)
    variance = _VARIANCE.search(rest)
    metric = _METRIC.search(rest)
    status_text = m.group("value")
    # perf prints "(xx.xx%)" only when the counter ran for less than it was enabled, so a counted
    # line without it ran 100% of the time.
    running = float(pcnt.group(1)) if pcnt else (100.0 if status_text not in _NOT else None)
    return _counter(
        event,
        status_text,
        unit=unit,
        running_pct=running,
        variance_pct=float(variance.group(1)) if variance else None,
        interval=float(m.group("ts")) if m.group("ts") else None,
        metric_value=_float(metric.group("mv")) if metric else None,
        metric_unit=metric.group("mu") if metric else "",
        run=run,
    )


def _parse_human(lines: list[str]) -> list[Counter]:
    """Counter lines of the human table.

    When the text has ``Performance counter stats for`` headers, only the lines between a header
    and its ``seconds time elapsed`` footer count, so workload output such as "42 items" cannot
    pass for a counter; each header starts a new run. Header-less pastes (``-I`` output, log
    excerpts) are scanned line by line.
    """
    has_header = any(_HEADER.search(line) for line in lines)
    counters: list[Counter] = []
    run = -1 if has_header else 0
    inside = not has_header
    for line in lines:
        if _HEADER.search(line):
            run += 1
            inside = True
            continue
        if has_header and _FOOTER.search(line):
            inside = False
            continue
        if not inside or line.lstrip().startswith(("#", "$")):
            continue
        c = _human_line(line, run)
        if c is not None:
            counters.append(c)
    return counters


# --- entry points ------------------------------------------------------------------------------


def parse_perf_stat(text: str, sep: str | None = None) -> PerfStat:
    """Counters from perf stat output of any supported shape.

    Every parser is tried and the one that recognises the most counter lines wins (ties: JSON,
    then CSV, then human), so the caller need not know how perf was invoked. `sep` pins the CSV
    separator (perf's ``-x`` argument, which may be any string); without it ``,``, ``;``, tab,
    ``|`` and any other punctuation seen right after a leading value are tried.

    Raises PerfStatParseError when no counter line is found: that is perf failing (bad event,
    permission error, perf missing), not a measurement, and must not be judged as one.
    """
    lines = _lines(text)
    candidates: list[tuple[str, list[Counter]]] = [("json", _parse_json(lines))]
    for s in [sep] if sep else _candidate_seps(lines):
        candidates.append(("csv", _parse_csv(lines, s)))
    candidates.append(("human", _parse_human(lines)))
    fmt, counters = max(candidates, key=lambda fc: len(fc[1]))  # max keeps the first of equals
    if not counters:
        first = next((line.strip() for line in lines if line.strip()), "")
        hint = f" (first line: {first[:80]!r})" if first else " (empty input)"
        raise PerfStatParseError(f"no perf stat counter line found{hint}")
    return PerfStat(format=fmt, counters=counters)  # type: ignore[arg-type]


def perf_stat_command(
    events: Sequence[str], workload: Sequence[str] | str, sep: str = ",", output: str | None = None
) -> str:
    """Shell command running the workload under ``perf stat -x<sep>``.

    perf writes its counters to stderr, after the workload has exited; the workload's stdout stays
    on stdout. Capture stderr for `parse_perf_stat`, or pass `output` to have perf write the
    counters to that file (``-o``) so the workload's own stderr cannot interleave with them. A
    string workload is a shell command line and runs under ``sh -c`` so that perf counts all of it
    (a bare ``a && b`` would leave ``b`` outside perf).
    """
    if not events:
        raise ValueError("perf_stat_command needs at least one event")
    if not sep or "\n" in sep:
        raise ValueError(f"unusable perf stat separator {sep!r}")
    argv = ["perf", "stat", f"-x{sep}", "-e", ",".join(events)]
    if output:
        argv += ["-o", output]
    argv.append("--")
    argv += ["sh", "-c", workload] if isinstance(workload, str) else list(workload)
    return shlex.join(argv)
