"""PMC suite fixtures: the probe installed once per host, and the host's PMU context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_perfci.checks.pmc import PmcContext
from pytest_perfci.collect.probes import installed_probe
from pytest_perfci.hosts.base import Host


@pytest.fixture(scope="session")
def pmc_context(host: Host) -> PmcContext:
    is_root = host.run("id -u", check=False).stdout.strip() == "0"
    return PmcContext.from_facts(host.facts, is_root=is_root)


@pytest.fixture(scope="session")
def probe_path(host: Host) -> Iterator[str]:
    with installed_probe(host, "pmc_reader.py") as path:
        yield path
