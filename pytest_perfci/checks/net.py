"""Network checks: iperf3 and sockperf outputs parsed, throughput judged against what the instance type
advertises. Pure: observed text in, typed results and verdicts out.

What AWS advertises (DescribeInstanceTypes NetworkInfo.NetworkCards[]: BaselineBandwidthInGbps and
PeakBandwidthInGbps, e.g. m7i.large 0.781 baseline / 12.5 peak, "Up to 12.5 Gigabit") is the aggregate
of many flows. One TCP flow (5-tuple) is limited further: 5 Gbit/s between instances outside a cluster
placement group, 10 Gbit/s inside one ("Amazon EC2 instance network bandwidth", EC2 User Guide). So a
single-stream test is held to min(baseline, that flow limit), a several-stream test to the baseline.

Burstable types ("Up to N Gigabit") may exceed their baseline for minutes; a short test measures the
burst. Only falling short of the baseline is a failure; above the peak is reported as suspicious (the
traffic may not have crossed the network at all).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pytest_perfci.checks.verdict import Finding, State, found
from pytest_perfci.models.instance_types import InstanceTypeInfo

# Per-flow limits between two instances, Gbit/s (EC2 User Guide, "Amazon EC2 instance network bandwidth").
SINGLE_FLOW_GBPS_IN_CLUSTER_PG = 10.0
SINGLE_FLOW_GBPS = 5.0
# iperf3 counts TCP payload; headers (52 of 1500 bytes, 52 of 9001 with jumbo frames) and the stream's
# ramp-up cost a few percent of what the link carries, and short tests wobble: 15 % below is still a pass.
DEFAULT_TOLERANCE = 0.15


class NetParseError(ValueError):
    """The tool's output is not what the parser knows; str() is one line naming the tool and why."""


class Iperf3Result(BaseModel):
    """One iperf3 client run (-J): what the sender sent and the receiver got, per second of the test."""

    model_config = ConfigDict(frozen=True)

    version: str = ""
    protocol: str = "TCP"
    streams: int
    duration_s: float
    sent_bps: float
    received_bps: float
    retransmits: int | None = None
    sender_cpu_pct: float | None = None
    receiver_cpu_pct: float | None = None
    congestion: str | None = None

    @property
    def received_gbps(self) -> float:
        return self.received_bps / 1e9


def parse_iperf3(text: str) -> Iperf3Result:
    """The JSON document `iperf3 -c ... -J` prints; iperf3's own error ("unable to connect to server:
    Connection refused") becomes NetParseError with that sentence."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        first = (text.strip().splitlines() or ["(empty)"])[0][:200]
        raise NetParseError(f"iperf3: output is not JSON ({exc.msg}); it began: {first!r}") from None
    if not isinstance(doc, dict):
        raise NetParseError("iperf3: JSON output is not an object")
    if doc.get("error"):
        raise NetParseError(f"iperf3: {doc['error']}")
    try:
        start, end = doc["start"], doc["end"]
        test = start["test_start"]
        sent, received = end["sum_sent"], end["sum_received"]
        cpu = end.get("cpu_utilization_percent") or {}
        return Iperf3Result(
            version=str(start.get("version", "")),
            protocol=str(test.get("protocol", "TCP")),
            streams=int(test["num_streams"]),
            duration_s=float(received.get("seconds") or sent.get("seconds") or test.get("duration", 0)),
            sent_bps=float(sent["bits_per_second"]),
            received_bps=float(received["bits_per_second"]),
            retransmits=int(sent["retransmits"]) if "retransmits" in sent else None,
            sender_cpu_pct=float(cpu["host_total"]) if "host_total" in cpu else None,
            receiver_cpu_pct=float(cpu["remote_total"]) if "remote_total" in cpu else None,
            congestion=end.get("sender_tcp_congestion"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NetParseError(f"iperf3: JSON output lacks {exc} (not a TCP client run?)") from None


class SockperfResult(BaseModel):
    """One sockperf ping-pong run: round-trip (with --full-rtt) or half-round-trip latency, in µs."""

    model_config = ConfigDict(frozen=True)

    version: str = ""
    round_trip: bool  # --full-rtt: the figures are whole request/response round trips
    observations: int
    average_us: float
    percentiles_us: dict[str, float]  # "50.000" -> µs, as sockperf prints them
    min_us: float
    max_us: float
    dropped: int = 0

    def percentile(self, p: float) -> float:
        key = f"{p:.3f}"
        if key not in self.percentiles_us:
            raise KeyError(f"sockperf printed no percentile {key}; it printed {', '.join(self.percentiles_us)}")
        return self.percentiles_us[key]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PCT = re.compile(r"---> percentile\s+([0-9.]+)\s*=\s*([0-9.]+)")
_MINMAX = re.compile(r"---> <(MIN|MAX)> observation\s*=\s*([0-9.]+)")
_AVG = re.compile(r"avg-(rtt|latency)=([0-9.]+)")
_TOTAL = re.compile(r"Total (\d+) observations")
_DROPPED = re.compile(r"# dropped messages = (\d+)")
_VERSION = re.compile(r"== version #(\S+)")
_ERROR = re.compile(r"sockperf: ERROR: (.*)")


def parse_sockperf(text: str) -> SockperfResult:
    """`sockperf ping-pong` output (stdout and stderr together); its ERROR line becomes NetParseError."""
    clean = _ANSI.sub("", text)
    if (err := _ERROR.search(clean)) is not None:
        raise NetParseError(f"sockperf: {err.group(1).strip()}")
    avg, total = _AVG.search(clean), _TOTAL.search(clean)
    pcts = {m.group(1): float(m.group(2)) for m in _PCT.finditer(clean)}
    extremes = {m.group(1): float(m.group(2)) for m in _MINMAX.finditer(clean)}
    if avg is None or total is None or not pcts or len(extremes) != 2:
        first = (clean.strip().splitlines() or ["(empty)"])[-1][:200]
        raise NetParseError(f"sockperf: no latency statistics in its output (last line: {first!r})")
    dropped = _DROPPED.search(clean)
    version = _VERSION.search(clean)
    return SockperfResult(
        version=version.group(1) if version else "",
        round_trip=avg.group(1) == "rtt",
        observations=int(total.group(1)),
        average_us=float(avg.group(2)),
        percentiles_us=pcts,
        min_us=extremes["MIN"],
        max_us=extremes["MAX"],
        dropped=int(dropped.group(1)) if dropped else 0,
    )


# -- what the type advertises ------------------------------------------------------------------------


class Advertised(BaseModel):
    """A type's network performance as DescribeInstanceTypes gives it (models.instance_types)."""

    model_config = ConfigDict(frozen=True)

    instance_type: str
    performance: str = ""  # "Up to 12.5 Gigabit", "50 Gigabit"
    baseline_gbps: float | None = None
    peak_gbps: float | None = None

    @classmethod
    def of(cls, info: InstanceTypeInfo | None) -> Advertised | None:
        """From the catalogue entry; None when there is none (local, lab machines)."""
        if info is None:
            return None
        return cls(instance_type=info.name, performance=info.network_performance,
                   baseline_gbps=info.network_baseline_gbps, peak_gbps=info.network_peak_gbps)


def pair_advertised(*ends: Advertised | None) -> Advertised | None:
    """The pair's figure is the smaller end's: traffic cannot leave faster than the slower side takes it."""
    known = [a for a in ends if a is not None and a.baseline_gbps is not None]
    if not known:
        return None
    return min(known, key=lambda a: a.baseline_gbps or 0.0)


Status = Literal["meets", "below", "above-peak", "not-advertised"]


class ThroughputVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status
    measured_gbps: float
    expected_gbps: float | None = None  # the floor held to (before tolerance)
    detail: str

    @property
    def ok(self) -> bool:
        return self.status in ("meets", "not-advertised", "above-peak")

    @property
    def finding(self) -> Finding:
        """In the shared vocabulary (checks.verdict): below the advertised floor fails (BELOW); above
        the peak is recorded as measured (ok), its doubt in the sentence."""
        return found(State.AVAILABLE, "", self.detail) if self.ok else found(State.FAILED, "BELOW", self.detail)


def expected_floor(advertised: Advertised, streams: int, *, cluster_placement: bool) -> tuple[float, str]:
    """(Gbit/s, why) the measurement is held to: the baseline, and for one stream the per-flow limit too."""
    baseline = advertised.baseline_gbps or 0.0
    if streams > 1:
        return baseline, f"{advertised.instance_type} baseline {baseline:g} Gbit/s"
    limit = SINGLE_FLOW_GBPS_IN_CLUSTER_PG if cluster_placement else SINGLE_FLOW_GBPS
    where = "in a cluster placement group" if cluster_placement else "outside a cluster placement group"
    if limit < baseline:
        return limit, f"single-flow limit {limit:g} Gbit/s {where} (baseline {baseline:g} Gbit/s)"
    return baseline, f"{advertised.instance_type} baseline {baseline:g} Gbit/s (single-flow limit {limit:g} {where})"


def judge_throughput(result: Iperf3Result, advertised: Advertised | None, *, cluster_placement: bool,
                     tolerance: float = DEFAULT_TOLERANCE) -> ThroughputVerdict:
    """Received throughput against the advertised figure: below the floor by more than `tolerance` fails;
    no advertised figure (local, lab machines without a type) is recorded for history, not judged."""
    measured = result.received_gbps
    got = f"{measured:.3g} Gbit/s received over {result.streams} stream{'s' if result.streams != 1 else ''}"
    if result.retransmits:
        got += f", {result.retransmits} retransmits"
    if advertised is None or advertised.baseline_gbps is None:
        return ThroughputVerdict(status="not-advertised", measured_gbps=measured,
                                 detail=f"{got}; no advertised figure for this target, judged by history only")
    floor, why = expected_floor(advertised, result.streams, cluster_placement=cluster_placement)
    low = floor * (1 - tolerance)
    peak = advertised.peak_gbps
    if measured < low:
        return ThroughputVerdict(status="below", measured_gbps=measured, expected_gbps=floor,
                                 detail=f"{got}, below {low:.3g} Gbit/s ({why}, less {tolerance:.0%})")
    if peak is not None and measured > peak * (1 + tolerance):
        return ThroughputVerdict(status="above-peak", measured_gbps=measured, expected_gbps=floor,
                                 detail=f"{got}, above the advertised peak {peak:g} Gbit/s: did the traffic "
                                        "cross the network?")
    perf = f", advertised {advertised.performance!r}" if advertised.performance else ""
    return ThroughputVerdict(status="meets", measured_gbps=measured, expected_gbps=floor,
                             detail=f"{got}, at least {low:.3g} Gbit/s ({why}, less {tolerance:.0%}){perf}")


class LatencyVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    p50_us: float
    p99_us: float
    detail: str

    @property
    def finding(self) -> Finding:
        """In the shared vocabulary (checks.verdict): an unusable measurement is INVALID, like an
        inconsistent CL2 value (the figures themselves are judged by history)."""
        return found(State.AVAILABLE, "", self.detail) if self.ok else found(State.FAILED, "INVALID", self.detail)


def judge_latency(result: SockperfResult) -> LatencyVerdict:
    """A usable latency measurement: observations made, nothing dropped, percentiles ordered.

    Nobody advertises a latency per instance type, so the figures themselves are judged against the
    run's history (lower is better), never against a constant here."""
    p50, p99 = result.percentile(50), result.percentile(99)
    what = "round trip" if result.round_trip else "one-way (half round trip)"
    base = f"{what} p50 {p50:.3g} µs, p99 {p99:.3g} µs over {result.observations} observations"
    problems = []
    if result.observations <= 0:
        problems.append("no observations")
    if result.dropped:
        problems.append(f"{result.dropped} messages dropped")
    if not (result.min_us <= p50 <= p99 <= result.max_us):
        problems.append(f"percentiles out of order (min {result.min_us}, max {result.max_us})")
    if problems:
        return LatencyVerdict(ok=False, p50_us=p50, p99_us=p99, detail=f"{base}: {'; '.join(problems)}")
    return LatencyVerdict(ok=True, p50_us=p50, p99_us=p99, detail=base)
