"""Network suite fixtures: how long each measurement runs, the tools on both ends, what the pair's
instance types advertise."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_perfci.checks.net import Advertised, pair_advertised
from pytest_perfci.providers.base import Pair, Target

TOOLS = ("iperf3", "sockperf")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("perfci-net", "perfci: network suite (suites/net)").addoption(
        "--perfci-net-seconds", type=int, default=5, metavar="S",
        help="seconds each iperf3/sockperf measurement runs (default 5; 1..600)")


@pytest.fixture(scope="session")
def net_seconds(pytestconfig: pytest.Config) -> int:
    seconds = int(pytestconfig.getoption("perfci_net_seconds"))
    if not 1 <= seconds <= 600:
        raise pytest.UsageError(f"--perfci-net-seconds {seconds} is not allowed; give 1..600 seconds")
    return seconds


@pytest.fixture(scope="session")
def net_tools(topology: Pair) -> Pair:
    """The pair, once both ends have iperf3 and sockperf; else the tests skip naming what is missing
    (installed on hosts the run creates, on local/inventory hosts with --perfci-prepare)."""
    missing = [f"{tool} on {h.name}" for h in (topology.client, topology.server) for tool in TOOLS
               if not h.run(f"command -v {tool}", timeout=30, check=False).ok]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install iperf3 sockperf, or --perfci-prepare)")
    return topology


@pytest.fixture(scope="session")
def advertised(topology: Pair, perfci_session: Any) -> Advertised | None:
    """The smaller end's advertised network performance (DescribeInstanceTypes NetworkInfo), None for
    targets with no catalogue (local, lab machines)."""
    provider = perfci_session.provider
    infos = [provider.type_info(Target(name=t, provider=provider.name, instance_type=t))
             for t in (topology.client_type, topology.server_type) if t]
    return pair_advertised(*(Advertised.of(i) for i in infos))
