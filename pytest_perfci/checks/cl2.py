"""ClusterLoader2 artifacts -> our own SLO verdicts. Pure: text and file names in, typed verdicts out.

CL2's own pass/fail is not a verdict we can use: on clusters under 100 nodes its load test skips
the pod-startup SLO and holds CreatePhasePodStartupLatency to a 1-hour threshold, so a run with a
pod-startup P99 of 76 s "passes". Here every SLO is judged against the published Kubernetes limits
(https://github.com/kubernetes/community/blob/master/sig-scalability/slos/slos.md) unless the user
overrides them, and optionally against a baseline.

Formats (from real runs, tests/data/samples/cl2):

* ``junit.xml``: one ``<testsuite name="ClusterLoaderV2" tests="0" ...>``; ``tests`` is always 0, so
  testcases are counted; failure text looks like ``:0\\n[measurement call X - X error: ...]\\n:0``.
* PerfData (``{"version": "1.0"|"v1", "dataItems": [{"data": {"Perc50",...}, "unit", "labels"}]}``):
  PodStartupLatency (labels.Metric, ``pod_startup`` is the SLO one; CL2 writes it once per pod
  filter as ``PodStartupLatency_*`` (all pods), ``StatelessPodStartupLatency_*`` and
  ``StatefulPodStartupLatency_*``, see perf-tests pod_startup_latency.go), APIResponsiveness[Prometheus]
  (labels Resource/Subresource/Verb/Scope/Count/SlowCount, all strings; Count "0" items carry no
  data), NetworkProgrammingLatency.
* SchedulingThroughput: not PerfData. ``{"perc50","perc90","perc99","max"}`` from the
  SchedulingThroughput measurement, ``{"max"}`` from SchedulingThroughputPrometheus.
* File names are ``<Summary>_<test>_<RFC3339>.json``; the summary may hold ``_`` and the
  timestamp holds ``:`` and ``+``, so names are split from the right.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pytest_perfci.checks.verdict import Finding, State, found

JUNIT = "junit.xml"

# Verbs that are not single-object request/response calls (the SLO excludes them).
_STREAMING_VERBS = {"WATCH", "WATCHLIST", "CONNECT"}


class Cl2ParseError(ValueError):
    """A file that should be a CL2 artifact is not one (bad JSON, wrong shape)."""


# --- file names -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportName:
    summary: str            # e.g. "PodStartupLatency_CreatePhasePodStartupLatency"
    test: str               # the test config's name, e.g. "load"
    timestamp: str          # RFC3339 as written, e.g. "2026-03-14T17:33:07+09:00"
    time: datetime | None   # parsed timestamp, None if it is not RFC3339

    @property
    def measurement(self) -> str:
        """The measurement kind: the summary up to its first '_' (PodStartupLatency, ...)."""
        return self.summary.split("_", 1)[0]

    @property
    def identifier(self) -> str:
        """What follows the kind in the summary (CreatePhasePodStartupLatency, simple), or ''."""
        parts = self.summary.split("_", 1)
        return parts[1] if len(parts) > 1 else ""


def parse_report_name(filename: str) -> ReportName | None:
    """``<Summary>_<test>_<RFC3339>.json`` split from the right; None for other names."""
    name = filename.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not all(parts):
        return None
    summary, test, stamp = parts
    try:
        when: datetime | None = datetime.fromisoformat(stamp)
    except ValueError:
        when = None
    if when is None:
        return None
    return ReportName(summary=summary, test=test, timestamp=stamp, time=when)


# --- junit.xml ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JunitCase:
    name: str
    time: float
    failure: str | None = None

    @property
    def message(self) -> str | None:
        """The failure text without CL2's ``:0`` framing and outer brackets."""
        if self.failure is None:
            return None
        text = self.failure.strip()
        text = re.sub(r"^:0\s*", "", text)
        text = re.sub(r"\s*:0$", "", text)
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return text.strip()


@dataclass(frozen=True)
class Junit:
    suite: str
    cases: tuple[JunitCase, ...]
    failures_attr: int
    errors_attr: int
    time: float

    @property
    def failed(self) -> list[JunitCase]:
        return [c for c in self.cases if c.failure is not None]

    @property
    def ok(self) -> bool:
        return not self.failed and self.failures_attr == 0 and self.errors_attr == 0

    @property
    def overall(self) -> JunitCase | None:
        """The '<test> overall (<config>)' case CL2 adds for the whole test."""
        return next((c for c in self.cases if " overall (" in c.name), None)


def _num(value: str | None, default: float = 0.0) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def parse_junit(text: str) -> Junit:
    try:
        root = ET.fromstring(text.encode() if isinstance(text, str) else text)
    except ET.ParseError as exc:
        raise Cl2ParseError(f"junit.xml is not XML: {exc}") from None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise Cl2ParseError(f"junit.xml has no <testsuite> (root is <{root.tag}>)")
    cases = []
    for tc in suite.iter("testcase"):
        node = tc.find("failure")
        if node is None:
            node = tc.find("error")
        failure = None if node is None else (node.text or node.get("message") or node.tag)
        cases.append(JunitCase(name=tc.get("name", ""), time=_num(tc.get("time")), failure=failure))
    return Junit(
        suite=suite.get("name", ""),
        cases=tuple(cases),
        failures_attr=int(_num(suite.get("failures"))),
        errors_attr=int(_num(suite.get("errors"))),
        time=_num(suite.get("time")),
    )


# --- summaries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataItem:
    data: Mapping[str, float]
    unit: str
    labels: Mapping[str, str]


def parse_perfdata(text: str) -> tuple[str, list[DataItem]]:
    """(version, items) of a PerfData document; labels kept as the strings CL2 wrote."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Cl2ParseError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dataItems"), list):
        raise Cl2ParseError("not PerfData: no dataItems list")
    items = []
    for raw in doc["dataItems"]:
        if not isinstance(raw, dict):
            continue
        data = {str(k): float(v) for k, v in (raw.get("data") or {}).items() if isinstance(v, int | float)}
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        items.append(DataItem(data=data, unit=str(raw.get("unit", "")), labels=labels))
    return str(doc.get("version", "")), items


_TO_SECONDS = {"ms": 1e-3, "s": 1.0, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "m": 60.0}


def to_seconds(value: float, unit: str) -> float:
    return value * _TO_SECONDS.get(unit, 1e-3 if unit == "" else 1.0)


def parse_scheduling_throughput(text: str) -> dict[str, float]:
    """Both variants: SchedulingThroughput {perc50, perc90, perc99, max} and the Prometheus one {max}."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Cl2ParseError(f"not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("dataItems"), list):  # tolerate a PerfData form too
        _, items = parse_perfdata(text)
        return {k.lower(): v for item in items for k, v in item.data.items()}
    if not isinstance(doc, dict):
        raise Cl2ParseError("scheduling throughput is not a JSON object")
    out = {str(k).lower(): float(v) for k, v in doc.items() if isinstance(v, int | float)}
    if not out:
        raise Cl2ParseError("scheduling throughput has no numbers")
    return out


# --- measurements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One measured value an SLO can be judged on (seconds for latencies, pods/s for throughput)."""

    metric: str        # SLO key: pod_startup_p99, api_single_object_p99, ...
    value: float
    unit: str
    what: str          # human words for where it comes from: "PUT replicasets/status (resource)"
    source: str        # the artifact's file name
    problem: str = ""  # why this value is no evidence either way (internally inconsistent); "" = sound


@dataclass
class Report:
    """Everything understood in one CL2 report directory."""

    junit: Junit | None = None
    measurements: list[Measurement] = field(default_factory=list)
    files: list[str] = field(default_factory=list)          # recognised artifact names
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> why

    @property
    def is_cl2(self) -> bool:
        return self.junit is not None or bool(self.measurements) or bool(self.files)


def _api_measurements(items: Iterable[DataItem], source: str) -> list[Measurement]:
    out = []
    for item in items:
        labels = item.labels
        if labels.get("Count", "") == "0":
            continue  # no calls in the window: every percentile is a meaningless 0
        p99 = item.data.get("Perc99")
        scope = labels.get("Scope", "")
        verb = labels.get("Verb", "").upper()
        if p99 is None or not scope or verb in _STREAMING_VERBS:
            continue  # non-resource URLs (/livez, /readyz) and streams are outside the SLO
        resource = labels.get("Resource", "")
        sub = labels.get("Subresource", "")
        what = f"{verb} {resource}{'/' + sub if sub else ''} ({scope}, {labels.get('Count', '?')} calls)"
        if verb == "LIST":
            metric = "api_list_cluster_p99" if scope == "cluster" else "api_list_namespace_p99"
        elif scope == "resource":
            metric = "api_single_object_p99"
        else:
            continue
        out.append(Measurement(metric, to_seconds(p99, item.unit or "ms"), "s", what, source))
    return out


# pod_startup spans create -> watch; each phase is a part of it for the same pod, so its P99 cannot
# be (much) above pod_startup's. The slack allows for percentiles over slightly different pod sets.
_PHASE_SLACK = 0.9


def _pod_startup_measurements(items: list[DataItem], ident: str, name: str) -> list[Measurement]:
    """pod_startup P99 of one PodStartupLatency summary, checked against its own phases.

    Every percentile of every phase at 0 means no pod matched the summary's filter (e.g. the
    Stateful one of a test without stateful pods): nothing was measured, so nothing is returned.
    A pod_startup P99 below what its own phases took (0 s while schedule_to_watch took 70 s) is an
    inconsistent measurement: returned with a problem, never as a pass.
    """
    if all(v == 0 for item in items for v in item.data.values()):
        return []
    phases = {
        item.labels.get("Metric", ""): to_seconds(item.data["Perc99"], item.unit or "ms")
        for item in items
        if "Perc99" in item.data and item.labels.get("Metric") not in (None, "", "pod_startup")
    }
    out = []
    for item in items:
        if item.labels.get("Metric") != "pod_startup" or "Perc99" not in item.data:
            continue
        p99 = to_seconds(item.data["Perc99"], item.unit or "ms")
        problem = ""
        if phases:
            phase, longest = max(phases.items(), key=lambda kv: kv[1])
            if p99 < longest * _PHASE_SLACK:
                problem = (f"pod_startup P99 {fmt(p99, 's')} is below its own phase {phase} P99 "
                           f"{fmt(longest, 's')}: the measurement is internally inconsistent")
        out.append(Measurement("pod_startup_p99", p99, "s", f"pod_startup P99 ({ident})", name, problem))
    return out


def _is_pod_startup(kind: str) -> bool:
    """PodStartupLatency, StatelessPodStartupLatency, MatchAllPodStartupLatency, ... but not Stateful:
    the Kubernetes SLO is the startup latency of stateless pods."""
    return kind.endswith("PodStartupLatency") and not kind.startswith("Stateful")


def measurements_from(name: str, text: str) -> list[Measurement]:
    """The SLO-relevant values of one CL2 summary file (by its name); [] for kinds we do not judge."""
    parsed = parse_report_name(name)
    if parsed is None:
        return []
    kind = parsed.measurement
    if _is_pod_startup(kind):
        _, items = parse_perfdata(text)
        ident = parsed.identifier or kind
        if kind != "PodStartupLatency":
            ident = f"{kind.removesuffix('PodStartupLatency')} {ident}"
        return _pod_startup_measurements(items, ident, name)
    if kind.startswith("APIResponsiveness"):
        _, items = parse_perfdata(text)
        return _api_measurements(items, name)
    if kind == "NetworkProgrammingLatency":
        _, items = parse_perfdata(text)
        return [Measurement("network_programming_p99", to_seconds(i.data["Perc99"], i.unit or "ms"), "s",
                            "NetworkProgrammingLatency P99", name)
                for i in items if "Perc99" in i.data]
    if kind.startswith("SchedulingThroughput"):
        values = parse_scheduling_throughput(text)
        if "max" in values:
            return [Measurement("scheduling_throughput_max", values["max"], "pods/s",
                                f"{kind} max", name)]
    return []


def read_report(files: Mapping[str, str | None]) -> Report:
    """Build a Report from {file name: text or None (unreadable)}; the I/O is the caller's."""
    report = Report()
    for name in sorted(files):
        text = files[name]
        base = name.rsplit("/", 1)[-1]
        if text is None:
            report.unreadable[base] = "could not be read"
            continue
        if base == JUNIT:
            try:
                report.junit = parse_junit(text)
                report.files.append(base)
            except Cl2ParseError as exc:
                report.unreadable[base] = str(exc)
            continue
        if parse_report_name(base) is None:
            continue
        try:
            found = measurements_from(base, text)
        except (Cl2ParseError, KeyError, TypeError, ValueError) as exc:
            report.unreadable[base] = str(exc)
            continue
        report.files.append(base)
        report.measurements.extend(found)
    return report


# --- SLOs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slo:
    name: str
    limit: float | None          # None: measured and reported, never a violation
    unit: str
    better: Literal["lower", "higher"]
    title: str
    source: str


# Published Kubernetes SLOs (sig-scalability/slos/slos.md). Network programming latency is marked
# WIP upstream; 30 s is the threshold CL2 itself uses for it. Scheduling throughput has no SLO.
DEFAULT_SLOS: tuple[Slo, ...] = (
    Slo("pod_startup_p99", 5.0, "s", "lower", "pod startup latency P99",
        "k8s SLO: stateless pod startup, P99 <= 5s"),
    Slo("api_single_object_p99", 1.0, "s", "lower", "single-object API call latency P99 (worst verb/resource)",
        "k8s SLO: mutating and non-streaming read-only single-object API calls, P99 <= 1s"),
    Slo("api_list_namespace_p99", 5.0, "s", "lower", "namespace-scoped LIST latency P99 (worst resource)",
        "k8s SLO: non-streaming LIST calls, scope=namespace, P99 <= 5s"),
    Slo("api_list_cluster_p99", 30.0, "s", "lower", "cluster-scoped LIST latency P99 (worst resource)",
        "k8s SLO: non-streaming LIST calls, scope=cluster, P99 <= 30s"),
    Slo("network_programming_p99", 30.0, "s", "lower", "in-cluster network programming latency P99",
        "k8s SLO (WIP upstream): network programming latency P99 <= 30s (CL2's threshold)"),
    Slo("scheduling_throughput_max", None, "pods/s", "higher", "scheduling throughput (max)",
        "no published SLO; set a floor with --slo scheduling_throughput_max=N"),
)
SLO_NAMES = tuple(s.name for s in DEFAULT_SLOS)
BASELINE_TOLERANCE = 0.20


def parse_slo_overrides(specs: Iterable[str]) -> dict[str, float | None]:
    """``NAME=VALUE`` (seconds or pods/s; ``off``/``none`` disables a limit) -> overrides.

    Raises ValueError with a one-line message for unknown names or bad values.
    """
    out: dict[str, float | None] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--slo {spec!r}: expected NAME=VALUE, e.g. pod_startup_p99=5")
        if name not in SLO_NAMES:
            raise ValueError(f"--slo {spec!r}: unknown SLO {name!r}; known: {', '.join(SLO_NAMES)}")
        raw = raw.strip().lower()
        if raw in ("off", "none", ""):
            out[name] = None
            continue
        try:
            if raw.endswith("ms"):
                value = float(raw[:-2]) / 1000
            else:
                value = float(raw.removesuffix("s"))
        except ValueError:
            raise ValueError(f"--slo {spec!r}: {raw!r} is not a number (seconds, or 'off')") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"--slo {spec!r}: the limit must be a finite number >= 0")
        out[name] = value
    return out


def slos(overrides: Mapping[str, float | None] | None = None) -> list[Slo]:
    overrides = overrides or {}
    return [
        Slo(s.name, overrides[s.name], s.unit, s.better, s.title,
            s.source if overrides[s.name] == s.limit else f"override (default {s.limit})")
        if s.name in overrides else s
        for s in DEFAULT_SLOS
    ]


def parse_baseline(text: str) -> dict[str, float]:
    """A baseline: the ``--json`` output of ``perfci cl2 judge``, or ``{"metrics": {name: value}}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"baseline is not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("slos"), list):
        return {str(r["name"]): float(r["measured"]) for r in doc["slos"]
                if isinstance(r, dict) and isinstance(r.get("measured"), int | float)}
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    if isinstance(metrics, dict):
        return {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    raise ValueError("baseline has neither a 'slos' list (perfci cl2 judge --json) nor a 'metrics' object")


@dataclass(frozen=True)
class SloResult:
    name: str
    title: str
    measured: float | None
    limit: float | None
    unit: str
    status: Literal["pass", "fail", "no data", "info", "invalid"]
    what: str = ""              # which item gave the worst value
    source: str = ""            # the artifact it came from
    baseline: float | None = None
    regression: bool = False

    @property
    def ok(self) -> bool:
        return self.status not in ("fail", "invalid")

    @property
    def finding(self) -> Finding:
        """This SLO in the shared vocabulary: a violation or a regression fails; an inconsistent value
        fails too (neither a pass nor a violation, and nothing shows the SLO holds); no data is absent."""
        if self.status in ("pass", "info"):
            return found(State.AVAILABLE, "", self.line())
        if self.status == "no data":
            return found(State.ABSENT, "NO-DATA", self.line())
        if self.status == "invalid":
            return found(State.FAILED, "INVALID", self.line())
        return found(State.FAILED, "REGRESSION" if self.regression and not self._over_limit else "SLO", self.line())

    @property
    def _over_limit(self) -> bool:
        if self.measured is None or self.limit is None:
            return False
        higher = next(s.better for s in DEFAULT_SLOS if s.name == self.name) == "higher"
        return self.measured < self.limit if higher else self.measured > self.limit

    def line(self) -> str:
        if self.status == "invalid":
            return f"{self.name}: invalid measurement ({self.what})"
        if self.measured is None:
            return f"{self.name}: no data"
        text = f"{self.name}: {fmt(self.measured, self.unit)}"
        if self.limit is not None:
            higher = next(s.better for s in DEFAULT_SLOS if s.name == self.name) == "higher"
            within = self.measured >= self.limit if higher else self.measured <= self.limit
            op = (">=" if within else "<") if higher else ("<=" if within else ">")
            text += f" {op} {fmt(self.limit, self.unit)}"
        if self.baseline is not None:
            text += f" (baseline {fmt(self.baseline, self.unit)}{', REGRESSION' if self.regression else ''})"
        if self.what:
            text += f" [{self.what}]"
        return text


def fmt(value: float, unit: str) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} {unit}"


@dataclass
class Verdict:
    results: list[SloResult]
    junit: Junit | None
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[SloResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def cl2_failed(self) -> bool:
        return self.junit is not None and not self.junit.ok

    @property
    def invalid(self) -> list[SloResult]:
        return [r for r in self.results if r.status == "invalid"]

    @property
    def unmeasured(self) -> bool:
        """No SLO was measured at all (an inconsistent value counts as measured: it is reported as such)."""
        return all(r.measured is None and r.status != "invalid" for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.cl2_failed and not self.invalid and not self.unmeasured

    @property
    def finding(self) -> Finding:
        """The run's verdict in the shared vocabulary: the first violated or invalid SLO's code (SLO,
        INVALID; REGRESSION when only a baseline was left), else CL2-FAILED, else NO-DATA; the reasons
        as the sentence."""
        if self.ok:
            return found(State.AVAILABLE, "", "; ".join(r.line() for r in self.results))
        detail = "\n".join(self.reasons())
        first = next((r.finding for r in self.results if r.status in ("fail", "invalid")), None)
        if first is not None:
            return found(State.FAILED, first.code, detail)
        if self.cl2_failed:  # CL2's own failure explains the missing data that usually follows it
            return found(State.FAILED, "CL2-FAILED", detail)
        return found(State.FAILED, "NO-DATA", detail)

    def reasons(self) -> list[str]:
        """One sentence per problem: each violated SLO with its measured value, then CL2's own failures."""
        out = [f"SLO violated: {r.line()}" for r in self.violations]
        out += [f"SLO not judged: {r.line()}" for r in self.invalid]
        if self.unmeasured:
            out.append("no SLO measurement in the report (no PodStartupLatency, APIResponsiveness, "
                       "NetworkProgrammingLatency or SchedulingThroughput summary with data): "
                       "nothing shows that the SLOs hold")
        if self.junit is not None and self.cl2_failed:
            failed = self.junit.failed
            out.append(f"CL2 reported {self.junit.failures_attr or len(failed)} failure(s) in junit.xml")
            for case in failed:
                message = (case.message or "").replace("\n", "\n    ")
                out.append(f"  {case.name}: {message}")
        return out


def judge(
    report: Report,
    overrides: Mapping[str, float | None] | None = None,
    baseline: Mapping[str, float] | None = None,
    tolerance: float = BASELINE_TOLERANCE,
) -> Verdict:
    """Judge every SLO on the worst measured value; with a baseline, also flag regressions
    worse than ``tolerance`` (a fraction: 0.2 = 20 % slower / lower throughput)."""
    results = []
    for slo in slos(overrides):
        measured = [m for m in report.measurements if m.metric == slo.name]
        found = [m for m in measured if not m.problem]
        if not found:
            if measured:  # only inconsistent values: neither a pass nor a violation
                results.append(SloResult(slo.name, slo.title, None, slo.limit, slo.unit, "invalid",
                                         measured[0].problem, measured[0].source))
            else:
                results.append(SloResult(slo.name, slo.title, None, slo.limit, slo.unit, "no data"))
            continue
        worst = (max if slo.better == "lower" else min)(found, key=lambda m: m.value)
        if slo.limit is None:
            status: Literal["pass", "fail", "no data", "info", "invalid"] = "info"
        elif slo.better == "lower":
            status = "pass" if worst.value <= slo.limit else "fail"
        else:
            status = "pass" if worst.value >= slo.limit else "fail"
        base = (baseline or {}).get(slo.name)
        regression = False
        if base is not None and base > 0:
            if slo.better == "lower":
                regression = worst.value > base * (1 + tolerance)
            else:
                regression = worst.value < base * (1 - tolerance)
        if regression and status != "fail":
            status = "fail"
        results.append(SloResult(slo.name, slo.title, worst.value, slo.limit, slo.unit, status,
                                 worst.what, worst.source, base, regression))
    notes = [f"{name}: unreadable ({why})" for name, why in report.unreadable.items()]
    invalid = {r.name for r in results if r.status == "invalid"}
    notes += [f"{m.source}: ignored, {m.problem}" for m in report.measurements
              if m.problem and m.metric not in invalid]
    return Verdict(results=results, junit=report.junit, notes=notes)


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    junit = verdict.junit
    return {
        "ok": verdict.ok,
        "slos": [
            {"name": r.name, "title": r.title, "measured": r.measured, "limit": r.limit, "unit": r.unit,
             "status": r.status, "worst": r.what, "source": r.source, "baseline": r.baseline,
             "regression": r.regression}
            for r in verdict.results
        ],
        "cl2": None if junit is None else {
            "ok": junit.ok, "testcases": len(junit.cases), "failures": junit.failures_attr,
            "failed": [{"name": c.name, "message": c.message} for c in junit.failed],
        },
        "reasons": verdict.reasons(),
        "notes": verdict.notes,
    }


def render_table(verdict: Verdict) -> list[str]:
    """The SLO table: one row per SLO (measured vs limit, status), then CL2's own result."""
    rows = [["SLO", "MEASURED", "LIMIT", "BASELINE", "RESULT", "WORST / SOURCE"]]
    for r in verdict.results:
        result = {"pass": "pass", "fail": "FAIL", "no data": "no data", "info": "info",
                  "invalid": "INVALID"}[r.status]
        if r.regression:
            result = "FAIL (regression)"
        rows.append([
            r.name,
            "-" if r.measured is None else fmt(r.measured, r.unit),
            "-" if r.limit is None else ("<= " if _better(r.name) == "lower" else ">= ") + fmt(r.limit, r.unit),
            "-" if r.baseline is None else fmt(r.baseline, r.unit),
            result,
            r.source if r.status == "invalid" else r.what,
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    junit = verdict.junit
    if junit is None:
        lines.append("CL2: no junit.xml")
    else:
        lines.append(f"CL2: {'passed' if junit.ok else 'FAILED'} ({len(junit.cases)} testcases, "
                     f"{len(junit.failed)} failed)")
    lines.extend(f"note: {n}" for n in verdict.notes)
    return lines


def _better(name: str) -> str:
    return next(s.better for s in DEFAULT_SLOS if s.name == name)
