"""checks/net.py on outputs recorded on this machine (tests/data/samples/net, see its README) and on
the catalogue's real NetworkInfo (moto's copy of DescribeInstanceTypes)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.checks.net import (
    SINGLE_FLOW_GBPS,
    SINGLE_FLOW_GBPS_IN_CLUSTER_PG,
    Advertised,
    Iperf3Result,
    NetParseError,
    judge_latency,
    judge_throughput,
    pair_advertised,
    parse_iperf3,
    parse_sockperf,
)
from pytest_perfci.models.instance_types import InstanceTypeInfo


@pytest.fixture(scope="module")
def net(samples: Path) -> Path:
    return samples / "net"


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    return json.loads(gzip.open(path).read())


def info(catalogue: dict[str, Any], name: str) -> InstanceTypeInfo:
    parsed = InstanceTypeInfo.from_api(catalogue[name])
    assert parsed is not None
    return parsed


# -- parsers ---------------------------------------------------------------------------------------------


def test_iperf3_one_stream(net: Path) -> None:
    r = parse_iperf3((net / "iperf3-netns-1stream.json").read_text())
    assert r.streams == 1 and r.protocol == "TCP" and r.version == "iperf 3.12"
    assert r.received_bps == pytest.approx(18545504166.43365)  # end.sum_received.bits_per_second
    assert r.sent_bps == pytest.approx(18564358722.72223)
    assert r.retransmits == 0 and r.congestion == "bbr"
    assert r.sender_cpu_pct == pytest.approx(45.4336338762241)
    assert 3.0 <= r.duration_s < 3.1


def test_iperf3_four_streams_sums_them(net: Path) -> None:
    text = (net / "iperf3-netns-4streams.json").read_text()
    r = parse_iperf3(text)
    assert r.streams == 4
    per_stream = [s["receiver"]["bits_per_second"] for s in json.loads(text)["end"]["streams"]]
    assert len(per_stream) == 4
    assert r.received_bps == pytest.approx(sum(per_stream), rel=1e-6)


def test_iperf3_error_document_is_iperf3s_own_sentence(net: Path) -> None:
    with pytest.raises(NetParseError, match=r"^iperf3: unable to connect to server: Connection refused$"):
        parse_iperf3((net / "iperf3-refused.json").read_text())


@pytest.mark.parametrize("text, match", [
    ("", "not JSON"),
    ("iperf3: error - unable to connect", "not JSON.*began: 'iperf3: error"),
    ("[1, 2]", "not an object"),
    ('{"start": {}, "end": {}}', "lacks"),
])
def test_iperf3_garbage_is_one_line(text: str, match: str) -> None:
    with pytest.raises(NetParseError, match=match) as exc:
        parse_iperf3(text)
    assert "\n" not in str(exc.value)


def test_sockperf_round_trip(net: Path) -> None:
    r = parse_sockperf((net / "sockperf-netns-tcp-rtt.txt").read_text())
    assert r.round_trip and r.version == "3.7-no.git"
    assert r.observations == 110261 and r.dropped == 0
    assert r.percentile(50) == 22.732 and r.percentile(99) == 54.231 and r.percentile(99.999) == 4854.649
    assert (r.min_us, r.max_us, r.average_us) == (16.070, 5339.907, 23.072)
    with pytest.raises(KeyError, match="no percentile 95.000"):
        r.percentile(95)


def test_sockperf_half_round_trip_without_full_rtt(net: Path) -> None:
    text = (net / "sockperf-netns-tcp-rtt.txt").read_text().replace("avg-rtt=", "avg-latency=")
    assert not parse_sockperf(text).round_trip


def test_sockperf_error_and_truncated_output(net: Path) -> None:
    with pytest.raises(NetParseError, match=r"^sockperf: Can`t connect socket \(errno=111 Connection refused\)$"):
        parse_sockperf((net / "sockperf-refused.txt").read_text())
    head = "\n".join((net / "sockperf-netns-tcp-rtt.txt").read_text().splitlines()[:8])
    with pytest.raises(NetParseError, match="no latency statistics"):
        parse_sockperf(head)


# -- the catalogue ---------------------------------------------------------------------------------------


def test_catalogue_network_info(catalogue: dict[str, Any]) -> None:
    m7i = info(catalogue, "m7i.large")
    assert (m7i.network_baseline_gbps, m7i.network_peak_gbps) == (0.781, 12.5)
    assert m7i.network_performance == "Up to 12.5 Gigabit"
    c5n = info(catalogue, "c5n.18xlarge")
    assert c5n.network_baseline_gbps == 100.0 and c5n.network_performance == "100 Gigabit"
    # A listing without NetworkInfo (older APIs, hand-made items) has no advertised figure, not a crash.
    bare = {k: v for k, v in catalogue["m7i.large"].items() if k != "NetworkInfo"}
    assert Advertised.of(InstanceTypeInfo.from_api(bare)).baseline_gbps is None  # type: ignore[union-attr]


# -- judges ----------------------------------------------------------------------------------------------


def measured(gbps: float, streams: int = 4, retransmits: int = 0) -> Iperf3Result:
    return Iperf3Result(streams=streams, duration_s=5, sent_bps=gbps * 1e9, received_bps=gbps * 1e9,
                        retransmits=retransmits)


def test_throughput_against_the_baseline(catalogue: dict[str, Any]) -> None:
    adv = Advertised.of(info(catalogue, "m7i.2xlarge"))  # baseline 3.125, peak 12.5
    assert adv is not None and adv.baseline_gbps == 3.125
    ok = judge_throughput(measured(3.0), adv, cluster_placement=True)
    assert ok.status == "meets" and ok.ok and ok.expected_gbps == 3.125
    assert "at least 2.66 Gbit/s (m7i.2xlarge baseline 3.125 Gbit/s, less 15%)" in ok.detail
    low = judge_throughput(measured(2.5, retransmits=7), adv, cluster_placement=True)
    assert low.status == "below" and not low.ok
    assert low.detail.startswith("2.5 Gbit/s received over 4 streams, 7 retransmits, below 2.66 Gbit/s")
    burst = judge_throughput(measured(12.0), adv, cluster_placement=True)
    assert burst.status == "meets"  # a burstable type may exceed its baseline
    odd = judge_throughput(measured(40.0), adv, cluster_placement=True)
    assert odd.status == "above-peak" and odd.ok and "cross the network" in odd.detail


def test_one_stream_is_held_to_the_flow_limit_not_the_aggregate(catalogue: dict[str, Any]) -> None:
    adv = Advertised.of(info(catalogue, "c5n.18xlarge"))  # 100 Gbit/s, but one flow gets 10 (5 outside a PG)
    inside = judge_throughput(measured(9.0, streams=1), adv, cluster_placement=True)
    assert inside.ok and inside.expected_gbps == SINGLE_FLOW_GBPS_IN_CLUSTER_PG
    outside = judge_throughput(measured(4.5, streams=1), adv, cluster_placement=False)
    assert outside.ok and outside.expected_gbps == SINGLE_FLOW_GBPS
    assert not judge_throughput(measured(4.0, streams=1), adv, cluster_placement=True).ok
    aggregate = judge_throughput(measured(9.0, streams=4), adv, cluster_placement=True)
    assert aggregate.status == "below" and aggregate.expected_gbps == 100.0


def test_no_advertised_figure_is_recorded_not_judged(net: Path) -> None:
    r = parse_iperf3((net / "iperf3-netns-1stream.json").read_text())
    v = judge_throughput(r, None, cluster_placement=False)
    assert v.status == "not-advertised" and v.ok and v.expected_gbps is None
    assert v.detail == "18.5 Gbit/s received over 1 stream; no advertised figure for this target, judged by history only"


def test_pair_takes_the_smaller_end(catalogue: dict[str, Any]) -> None:
    big, small = (Advertised.of(info(catalogue, n)) for n in ("m7i.2xlarge", "m7i.large"))
    assert pair_advertised(big, small) == small and pair_advertised(small, None) == small
    assert pair_advertised(None, None) is None


def test_latency_verdict(net: Path) -> None:
    r = parse_sockperf((net / "sockperf-netns-tcp-rtt.txt").read_text())
    v = judge_latency(r)
    assert v.ok and (v.p50_us, v.p99_us) == (22.732, 54.231)
    assert v.detail == "round trip p50 22.7 µs, p99 54.2 µs over 110261 observations"
    dropped = judge_latency(r.model_copy(update={"dropped": 3}))
    assert not dropped.ok and dropped.detail.endswith(": 3 messages dropped")
    disordered = judge_latency(r.model_copy(update={"max_us": 30.0}))
    assert not disordered.ok and "percentiles out of order" in disordered.detail
