"""Parse whatever `perf stat` printed into counters, without I/O.

perf stat output reaches us in many shapes: `-x<sep>` CSV from several perf generations, `-j` JSON
lines, and the human table pasted into CI logs and mailing-list threads with workload output, shell
prompts and log timestamps around it. The suites judge capability from these numbers, so the
parser is tolerant of everything around the counters (it is skipped, never a crash) and strict
about the counter lines themselves (a line that does not have the shape of one is not one).

Recognised shapes (tested on recorded real outputs under tests/data/samples/pmc):

* CSV, any separator: ``[interval,][aggr-id,[aggr-nr,]]value,unit,event[,variance%][,cgroup][,run-time,
  pcnt-running[,metric-value,metric-unit]]``. That covers the modern 7-field layout, the old
  5-field one (no metric columns), the 8-field one with ``-G`` cgroups, ``-r N`` (variance after the
  event), ``-I`` (space-padded timestamp first, ``summary`` for ``--summary`` totals) and
  ``--per-core``/``-A`` prefixes. Metric-only lines (empty event) are skipped.
* JSON lines (``-j``): ``counter-value`` as string or number, ``metric-value`` as number or quoted
  string, per-core keys (``core``, ``aggregate-number``, ``cpu``...), metric-only lines skipped.
* The human table, including ``-I`` interval output, ``(xx.xx%)`` multiplexing, ``( +- x% )``
  variance, ``# metric`` comments, thousands separators and old ``cpu-clock (msec)`` units.

Numbers follow the locale perf ran in (it calls ``setlocale``): a decimal comma (``100,00`` is
100 %), thousands grouped with ``.``, ``,``, a space, a no-break or narrow no-break space
(U+00A0/U+202F), and Indian grouping (``1,88,793``). The decimal mark is decided per text (human)
or per line (CSV), from marks only a decimal separator can make: a percentage ``(74,18%)``, a
``msec`` value ``515,84``, the elapsed time ``1,801081096 seconds``, a CSV pcnt-running ``100,00``.
A ``-x,`` CSV written in a decimal-comma locale splits its decimals into extra fields
(``1762,72,msec,task-clock,1762719172,100,00,...``); such lines are re-joined.

Runs: each ``# started on`` or ``Performance counter stats for`` header starts a run, and so does
an event printed a second time within a run (same event text, aggregation id and interval): that
is how pasted ``-x``/``-j`` runs without headers are told apart. ``-I`` interval lines followed
by ``--summary`` lines are one run whose total is the summary, never intervals + summary.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pytest_perfci.checks.verdict import Finding, State, found

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
    # Hybrid CPUs (cpu_core + cpu_atom): each PMU's percentage as perf printed it, and whether those
    # percentages are the task's residency on that core type (True) or multiplexing (False).
    pmu_pct: dict[str, float] = {}
    residency: bool = False

    @property
    def finding(self) -> Finding:
        """What perf's own word for this line says in the shared vocabulary (checks.verdict); only the
        line, without context: checks.pmc.judge_counter says why (no PMU, paranoid, multiplexed)."""
        if self.status == "counted":
            return found(State.AVAILABLE, "", f"{self.event}: {self.value:g}" if self.value is not None else self.event)
        code = "UNSUPPORTED" if self.status == "not_supported" else "NOT-COUNTED"
        return found(State.ABSENT, code, f"{self.event}: <{self.status.replace('_', ' ')}>")


class PerfStat(BaseModel):
    """All counter lines of one text; `get` answers "what did perf count for this event"."""

    model_config = ConfigDict(frozen=True)

    format: Literal["csv", "json", "human"]
    counters: list[Counter]
    # From a human header ("for 'system wide'", "for 'CPU(s) 0-3'"); None: the text does not say.
    system_wide: bool | None = None

    @property
    def runs(self) -> list[int]:
        """Run indexes present, in order. More than one only when several invocations were pasted."""
        return sorted({c.run for c in self.counters})

    def select(self, run: int) -> PerfStat:
        """The counters of one perf stat invocation."""
        return PerfStat(
            format=self.format,
            counters=[c for c in self.counters if c.run == run],
            system_wide=self.system_wide,
        )

    def get(self, name: str, run: int | None = None, system_wide: bool | None = None) -> Counter | None:
        """One aggregated counter for a normalised event name, or None if perf never printed it.

        Aggregation exists because one logical event is often printed as several lines: hybrid
        PMUs (``cpu_core/cycles/`` + ``cpu_atom/cycles/``), per-core/per-CPU lines and ``-I``
        intervals. Each is a disjoint slice of the same count, so:

        * ``-I`` intervals followed by ``--summary`` lines: the summary is the total (the
          intervals are not added to it);
        * hybrid PMUs of a task (not ``-a``): a PMU's percentage is the share of the task's time
          spent on that core type, not multiplexing. The count is the sum of the *unscaled*
          counts (value x running fraction), running_pct is the summed residency (how much of
          the task some counter saw) and ``pmu_pct`` keeps each PMU's share. When the
          percentages add up to more than 100 % (plus rounding) they cannot be shares of one
          timeline (system-wide counting, threads spread over both core types), so they are
          read as each PMU's own multiplexing, as below;
        * otherwise value is the sum of the counted lines (None when no line counted) and
          running_pct the minimum over them, because the most multiplexed slice bounds how much
          of the total is an estimate;
        * status: ``counted`` if any line counted, else ``not_counted`` if any line was supported
          but never scheduled, else ``not_supported``;
        * variance_pct: the maximum; metric_value is kept only for a single line (metrics such
          as GHz or IPC do not add up);
        * event / pmu: joined with ``+`` when the lines differ.

        Separate perf invocations (``run``) are not slices of one count, so they are never summed:
        without ``run`` the last run that printed the event is used. ``system_wide`` says whether
        perf ran with ``-a`` (None: as the text's header says, else unknown).
        """
        key = normalise_event(name)[0]
        lines = [c for c in self.counters if c.name == key]
        if not lines:
            return None
        chosen_run = lines[-1].run if run is None else run
        lines = [c for c in lines if c.run == chosen_run]
        if not lines:
            return None
        summary = [c for c in lines if c.interval is None]
        if summary and len(summary) < len(lines):
            lines = summary  # -I ... --summary: the summary already holds the intervals' total
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
        variances = [c.variance_pct for c in lines if c.variance_pct is not None]
        wide = self.system_wide if system_wide is None else system_wide
        pmu_pct = _pmu_shares(lines)
        residency = bool(pmu_pct) and not wide and sum(pmu_pct.values()) <= _RESIDENCY_SUM_MAX
        if residency:
            # perf printed value / fraction rounded to an integer; undoing it gives the raw count back
            value = float(round(sum((c.value or 0.0) * _fraction(c) for c in counted))) if counted else None
            running: float | None = round(min(100.0, sum(pmu_pct.values())), 2)
        else:
            value = sum(c.value or 0.0 for c in counted) if counted else None
            pcts = [c.running_pct for c in counted if c.running_pct is not None]
            running = min(pcts) if pcts else None
        return Counter(
            event=_join_unique(c.event for c in lines) or key,
            name=key,
            value=value,
            unit=lines[0].unit,
            status=status,
            running_pct=running,
            variance_pct=max(variances) if variances else None,
            interval=None,
            pmu=_join_unique(c.pmu for c in lines if c.pmu),
            run=chosen_run,
            pmu_pct=pmu_pct,
            residency=residency,
        )


# Residency shares of one task's time add up to 100 %; perf rounds each to 0.01 % and the kernel's
# enabled/running clocks are read a moment apart (rustc-perf #1480 saw 99.93 % + 0.22 %).
_RESIDENCY_SUM_MAX = 105.0


def _fraction(c: Counter) -> float:
    return 1.0 if c.running_pct is None else c.running_pct / 100.0


def _pmu_shares(lines: Sequence[Counter]) -> dict[str, float]:
    """{pmu: mean running %} when the lines are one event on two or more core PMUs, else {}.

    Only plain lines qualify: per-core/per-CPU lines (an aggregation id) are already split by
    CPU, so their PMU is implied and their percentages are multiplexing.
    """
    if any(c.pmu is None or c.aggregate is not None for c in lines):
        return {}
    by_pmu: dict[str, list[float]] = {}
    for c in lines:
        pct = c.running_pct if c.running_pct is not None else (100.0 if c.status == "counted" else 0.0)
        by_pmu.setdefault(c.pmu or "", []).append(pct)
    if len(by_pmu) < 2:
        return {}
    return {pmu: round(sum(v) / len(v), 2) for pmu, v in by_pmu.items()}


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

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$")
_NOT = {"<not supported>": "not_supported", "<not counted>": "not_counted"}
_EVENT = re.compile(r"^[A-Za-z_{\[][^\s]*$")
# Thousands separators perf's %' grouping writes in the locales seen: space, no-break space,
# narrow no-break space (glibc fr_FR), thin space, apostrophe (de_CH); "." and "," are decided
# by the decimal mark.
_GROUPING = " \u00a0\u202f\u2009'"


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def _is_value(text: str) -> bool:
    t = text.strip()
    return t in _NOT or _is_number(t)


def _float(text: object, decimal: str = ".") -> float | None:
    """A number as perf printed it in a locale whose decimal mark is `decimal`."""
    if text is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return None if math.isnan(text) else float(text)  # already a number (decoded JSON)
    t = str(text).strip()
    for ch in _GROUPING:
        t = t.replace(ch, "")
    t = t.replace(".", "").replace(",", ".") if decimal == "," else t.replace(",", "")
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
    decimal: str = ".",
) -> Counter:
    name, pmu = normalise_event(event)
    v = value_text.strip()
    status: Status = _NOT.get(v, "counted")  # type: ignore[assignment]
    return Counter(
        event=event.strip(),
        name=name,
        value=_float(v, decimal) if status == "counted" else None,
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


_TWO_DIGITS = re.compile(r"^\d\d$")
_TWO_DIGITS_PCT = re.compile(r"^\d\d%$")
# A perf -G cgroup column: a cgroup path or name (perf prints it relative to the cgroup mount).
_CGROUP = re.compile(r"^[\w./@:+-]+$")
_DIGITS = re.compile(r"^\d+$")


def _csv_line(line: str, sep: str, run: int) -> Counter | None:
    """One CSV counter line, or None. The event column is found by shape, not position.

    The event is the first field that has a value two columns to its left (value, unit, event)
    and is followed by nothing, a variance (``x%``) or a number (run time). Whatever precedes the
    value is the ``-I`` timestamp (or ``summary`` for ``--summary`` totals) and/or the
    ``--per-core``/``-A`` aggregation id.

    CSV never groups thousands, so a ``,`` inside a numeric field is the decimal mark of the
    locale perf ran in (``-x;`` in de_DE prints ``0,43;msec;task-clock;...;100,00``). With ``-x,``
    in such a locale the decimal comma is indistinguishable from the separator; the line shows
    it by a pcnt-running split in two (``...,1762719172,100,00,...``), and only then are the
    split value and percentage joined back.
    """
    if sep not in line:
        return None
    fields = _merge_pmu_terms(line.split(sep), sep)
    # A cgroup column is only considered when no plain reading fits: an -I line's "msec,task-clock"
    # must not pass for event "msec" in cgroup "task-clock".
    return _csv_fields(fields, sep, run, cgroups=False) or _csv_fields(fields, sep, run, cgroups=True)


def _csv_fields(fields: list[str], sep: str, run: int, cgroups: bool) -> Counter | None:
    for i in range(2, len(fields)):
        event = fields[i].strip()
        if not _EVENT.match(event) or event.endswith("%") or _is_number(event):
            continue
        if not _is_value(fields[i - 2]) or _is_number(fields[i - 1]):
            continue  # value, then a unit ("", "msec", "Joules"), never a number, then the event
        rest = [f.strip() for f in fields[i + 1 :]]
        cgroup: str | None = None
        if rest and rest[0] and not (rest[0].endswith("%") or _is_number(rest[0])):
            if not (
                cgroups
                and len(rest) > 2
                and _CGROUP.match(rest[0])
                and _DIGITS.match(rest[1])
                and _is_number(rest[2])
            ):
                continue
            cgroup = rest.pop(0)  # -G: value,unit,event,cgroup,run-time,pcnt-running,... (8 fields)
        prefix = [f.strip() for f in fields[: i - 2]]
        value_text = fields[i - 2].strip()
        variance_text: str | None = None
        decimal = "."
        if rest and rest[0].endswith("%"):
            variance_text = rest[0][:-1]
            rest = rest[1:]
        elif sep == "," and len(rest) > 1 and _DIGITS.match(rest[0]) and _TWO_DIGITS_PCT.match(rest[1]):
            variance_text = f"{rest[0]},{rest[1][:-1]}"  # -r variance "1,68%" split by -x,
            decimal = ","
            rest = rest[2:]
        if any("," in f for f in [value_text, variance_text or "", *rest[:3]] if _is_number(f)):
            decimal = ","
        if sep == "," and _split_decimal_comma(rest):
            decimal = ","
            rest = [rest[0], f"{rest[1]},{rest[2]}", *rest[3:]]
            if prefix and _DIGITS.match(prefix[-1]) and _DIGITS.match(value_text):
                value_text = f"{prefix.pop()},{value_text}"  # "1762,72,msec": 1762.72 msec
        interval: float | None = None
        if prefix and prefix[0] == "summary":
            prefix = prefix[1:]  # --summary after -I: the run's total, not an interval
        elif prefix and _is_number(prefix[0]) and "." in prefix[0]:
            interval = float(prefix[0])
            prefix = prefix[1:]
        aggregate = prefix[0] if prefix and prefix[0] and not _is_number(prefix[0]) else None
        if cgroup is not None:
            aggregate = f"{aggregate}:{cgroup}" if aggregate else cgroup  # each cgroup is its own slice
        # rest: run-time, pcnt-running, metric-value, metric-unit (any suffix may be missing)
        running = _float(rest[1], decimal) if len(rest) > 1 else None
        metric_value = _float(rest[2], decimal) if len(rest) > 2 else None
        metric_unit = sep.join(rest[3:]) if len(rest) > 3 else ""
        return _counter(
            event,
            value_text,
            unit=fields[i - 1],
            running_pct=running,
            variance_pct=_float(variance_text, decimal) if variance_text is not None else None,
            interval=interval,
            metric_value=metric_value,
            metric_unit=metric_unit,
            aggregate=aggregate,
            run=run,
            decimal=decimal,
        )
    return None


def _split_decimal_comma(rest: list[str]) -> bool:
    """run-time, pcnt-running as two fields ("100", "00") and more: ``-x,`` in a decimal-comma locale."""
    return (
        len(rest) >= 3
        and bool(_DIGITS.match(rest[0]))
        and bool(_DIGITS.match(rest[1]))
        and int(rest[1]) <= 100
        and bool(_TWO_DIGITS.match(rest[2]))
    )


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


# perf -j in a decimal-comma locale writes bare numbers such as `"pcnt-running" : 100,00,`, which is
# not JSON; such a number is re-joined before decoding.
_JSON_DECIMAL_COMMA = re.compile(r"(:\s*-?\d+),(\d+)(?=\s*[,}])")


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
            decimal = "."
        except json.JSONDecodeError:
            try:
                obj = json.loads(_JSON_DECIMAL_COMMA.sub(r"\1.\2", s))
                decimal = ","
            except json.JSONDecodeError:
                continue  # truncated paste or interleaved output
        if not isinstance(obj, dict) or not obj.get("event") or "counter-value" not in obj:
            continue  # metric-only and metricgroup lines have no event
        value = str(obj["counter-value"])
        if "," in value and value not in _NOT:
            decimal = ","  # -j never groups thousands: a comma in a number is the decimal mark
        aggregate = next((str(obj[k]) for k in _AGGR_KEYS if k in obj), None)
        variance = obj.get("variance")
        counters.append(
            _counter(
                str(obj["event"]),
                value,
                unit=str(obj.get("unit") or ""),
                running_pct=_float(obj.get("pcnt-running"), decimal),
                variance_pct=_float(str(variance).rstrip("%"), decimal) if variance is not None else None,
                interval=_float(obj.get("interval")),
                metric_value=_float(obj.get("metric-value"), decimal),
                metric_unit=str(obj.get("metric-unit") or ""),
                aggregate=aggregate,
                run=run,
                decimal=decimal,
            )
        )
    return counters


# --- human table -------------------------------------------------------------------------------

_HUMAN = re.compile(
    r"""^\s*
    (?:(?P<ts>\d+[.,]\d+)\s+(?=[\d<]))?                    # -I timestamp
    (?P<value><not\ supported>|<not\ counted>|\d+(?:[,.\u00a0\u202f\u2009'\ ]\d+)*)\s+
    (?P<words>[^#(\s][^#(]*?)\s*                            # [unit] event
    (?P<rest>[#(].*)?$""",
    re.VERBOSE,
)
_PCNT = re.compile(r"\((\d+(?:[.,]\d+)?)%\)\s*$")
_VARIANCE = re.compile(r"\(\s*\+-\s*(\d+(?:[.,]\d+)?)%\s*\)")
_PAREN_UNIT = re.compile(r"^\(([A-Za-z]+)\)")
_METRIC = re.compile(r"#\s*(?P<mv>-?\d[\d,.]*|nan)\s*(?P<mu>[^(]*?)\s*(?:\(|$)")
_HEADER = re.compile(r"Performance counter stats for\b")
_SYSTEM_WIDE = re.compile(r"Performance counter stats for '(?:system wide|CPU\(s\))")
_FOOTER = re.compile(r"seconds time elapsed")
# Marks only a decimal comma makes in the human table (perf prints msec with 2 decimals, the elapsed
# time with 9, percentages and metrics ungrouped): "(74,18%)", "( +-  1,68% )", "515,84 msec",
# "1,801081096 seconds time elapsed", "#    0,528 CPUs utilized".
_DECIMAL_COMMA_HINTS = (
    re.compile(r"\(\s*(?:\+-\s*)?\d+,\d+%\s*\)"),
    re.compile(r",\d\d\s+msec\b"),
    re.compile(r"^\s*\d+,\d+\s+(?:\+-\s+\S+\s+)?seconds time elapsed"),
    re.compile(r"#\s+-?\d+,\d+\s"),
)


def _human_decimal(lines: Sequence[str]) -> str:
    """The decimal mark of a human table: "," when any line has a mark only a decimal comma makes."""
    return "," if any(h.search(line) for line in lines for h in _DECIMAL_COMMA_HINTS) else "."


def _human_line(line: str, run: int, decimal: str = ".") -> Counter | None:
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
    running = _float(pcnt.group(1), decimal) if pcnt else (100.0 if status_text not in _NOT else None)
    ts = m.group("ts")
    return _counter(
        event,
        status_text,
        unit=unit,
        running_pct=running,
        variance_pct=_float(variance.group(1), decimal) if variance else None,
        interval=float(ts.replace(",", ".")) if ts else None,  # never grouped: either mark is the decimal
        metric_value=_float(metric.group("mv"), decimal) if metric else None,
        metric_unit=metric.group("mu") if metric else "",
        run=run,
        decimal=decimal,
    )


def _parse_human(lines: list[str]) -> list[Counter]:
    """Counter lines of the human table.

    When the text has ``Performance counter stats for`` headers, only the lines between a header
    and its ``seconds time elapsed`` footer count, so workload output such as "42 items" cannot
    pass for a counter; each header starts a new run. Header-less pastes (``-I`` output, log
    excerpts) are scanned line by line.
    """
    has_header = any(_HEADER.search(line) for line in lines)
    decimal = _human_decimal(lines)
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
        c = _human_line(line, run, decimal)
        if c is not None:
            counters.append(c)
    return counters


def _split_runs(counters: list[Counter]) -> list[Counter]:
    """Renumber runs so that an event printed again within a run starts the next run.

    perf prints each (event, aggregation id, interval) once per invocation, so a repeat can only
    be a further invocation pasted below without a header (several ``-x`` runs appended to one
    log). ``--summary`` totals after ``-I`` intervals have no interval and do not repeat one.
    Headers still separate runs: a header-given run is never merged with its neighbour.
    """
    out: list[Counter] = []
    seen: set[tuple[str, str | None, float | None]] = set()
    run = -1
    last_header_run: int | None = None
    for c in counters:
        key = (c.event, c.aggregate, c.interval)
        if c.run != last_header_run or key in seen:
            run += 1
            seen = set()
            last_header_run = c.run
        seen.add(key)
        out.append(c if c.run == run else c.model_copy(update={"run": run}))
    return out


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
    headers = [line for line in lines if _HEADER.search(line)]
    system_wide = any(_SYSTEM_WIDE.search(h) for h in headers) if headers else None
    return PerfStat(format=fmt, counters=_split_runs(counters), system_wide=system_wide)  # type: ignore[arg-type]


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
