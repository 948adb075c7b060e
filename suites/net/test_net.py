"""Does the network between a target's client and server give what the instance type advertises?

Thin by design: gather between the pair (collect.net), judge with pure checks (checks.net), record the
figures as samples so history judges them too (lower throughput, higher latency = a regression).

Locally the pair is two network namespaces joined by a veth pair (no advertised figure: recorded and
judged by history only); on EC2 a client and a server of the target's type in one cluster placement
group, held to DescribeInstanceTypes' baseline (and for one stream to the per-flow limit).
"""

from __future__ import annotations

import pytest

from pytest_perfci.checks.net import Advertised, NetParseError, judge_latency, judge_throughput
from pytest_perfci.collect.net import ServerNotListening, run_iperf3, run_sockperf
from pytest_perfci.providers.base import Pair
from pytest_perfci.results.model import SampleVerdict
from pytest_perfci.results.plugin import Recorder

pytestmark = pytest.mark.perfci_needs("iperf3", "sockperf")

IPERF3_PORT_OFFSET = 0   # pair.ports[0]: iperf3
SOCKPERF_PORT_OFFSET = 1  # pair.ports[0] + 1: sockperf
MESSAGE_BYTES = 64


def _where(pair: Pair) -> dict[str, object]:
    return {"link": pair.link, "placement_group": pair.placement_group or "", "client_type": pair.client_type or "",
            "server_type": pair.server_type or ""}


@pytest.mark.parametrize("streams", [1, 4], ids=["1stream", "4streams"])
def test_tcp_throughput(net_tools: Pair, streams: int, net_seconds: int, advertised: Advertised | None,
                        perfci_record: Recorder) -> None:
    """TCP bulk throughput client -> server (iperf3 -J), one stream and several."""
    pair = net_tools
    port = pair.ports[0] + IPERF3_PORT_OFFSET
    try:
        result, raw = run_iperf3(pair.client, pair.server, pair.server_address, port, seconds=net_seconds,
                                 streams=streams)
    except (NetParseError, ServerNotListening) as exc:
        pytest.fail(str(exc), pytrace=False)
    perfci_record.attach(f"iperf3 -P {streams} -J", raw.stdout)
    verdict = judge_throughput(result, advertised, cluster_placement=bool(pair.placement_group))
    perfci_record.sample(
        f"net.tcp.throughput.{streams}stream{'s' if streams > 1 else ''}", verdict.measured_gbps, "Gbit/s",
        "pass" if verdict.ok else "fail", direction="higher", streams=streams, seconds=net_seconds, port=port,
        retransmits=result.retransmits, expected_gbps=verdict.expected_gbps, status=verdict.status,
        advertised=advertised.performance if advertised else "", tool=result.version, **_where(pair))
    if not verdict.ok:
        pytest.fail(f"{pair.target}: {verdict.detail}", pytrace=False)


def test_tcp_request_response_latency(net_tools: Pair, net_seconds: int, perfci_record: Recorder) -> None:
    """TCP request/response round trips of 64-byte messages (sockperf ping-pong --full-rtt): p50 and p99."""
    pair = net_tools
    port = pair.ports[0] + SOCKPERF_PORT_OFFSET
    try:
        result, raw = run_sockperf(pair.client, pair.server, pair.server_address, port, seconds=net_seconds,
                                   size=MESSAGE_BYTES)
    except (NetParseError, ServerNotListening) as exc:
        pytest.fail(str(exc), pytrace=False)
    perfci_record.attach("sockperf ping-pong", f"$ {raw.command}\n{raw.stdout}\n--- stderr ---\n{raw.stderr}")
    verdict = judge_latency(result)
    common = {"seconds": net_seconds, "port": port, "message_bytes": MESSAGE_BYTES, "observations": result.observations,
              "tool": f"sockperf {result.version}", **_where(pair)}
    sample: SampleVerdict = "pass" if verdict.ok else "fail"
    perfci_record.sample("net.tcp.rr.p50", verdict.p50_us, "us", sample, direction="lower", **common)
    perfci_record.sample("net.tcp.rr.p99", verdict.p99_us, "us", sample, direction="lower", **common)
    if not verdict.ok:
        pytest.fail(f"{pair.target}: {verdict.detail}", pytrace=False)
