"""Network suite fixtures: how long each measurement runs, the tools on both ends, what the pair's
instance types advertise."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_perfci.checks.net import Advertised, pair_advertised
from pytest_perfci.providers.base import Pair, Target
from pytest_perfci.settings import Settings

TOOLS = ("iperf3", "sockperf")


@pytest.fixture(scope="session")
def net_seconds(perfci_settings: Settings) -> int:
    """--perfci-net-seconds (PERFCI_NET_SECONDS): how long each measurement runs."""
    return perfci_settings.net_seconds


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
