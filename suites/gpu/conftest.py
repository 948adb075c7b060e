"""GPU suite fixtures: the probe run once per host, and what the host's type says its GPUs are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import Expectations, load_expectations
from pytest_perfci.checks.gpu import GpuSpec, ProbeReport
from pytest_perfci.collect.gpu import run_probe
from pytest_perfci.collect.probes import installed_probe
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import Result
from pytest_perfci.outcomes import target_key
from pytest_perfci.providers.base import Provider
from pytest_perfci.session import ProviderSession

EXPECTATIONS = Path(__file__).parent / "expectations.toml"


@pytest.fixture(scope="session")
def gpu_probe_path(host: Host) -> Iterator[str]:
    with installed_probe(host, "gpu_probe.py") as path:
        yield path


@pytest.fixture(scope="session")
def gpu_report(host: Host, gpu_probe_path: str) -> tuple[ProbeReport, Result]:
    """One run of the probe per host (nvidia-smi twice, one CUDA context per device): every test reads it."""
    return run_probe(host, gpu_probe_path)


@pytest.fixture(scope="session")
def gpu_spec(host: Host, perfci_session: ProviderSession, perfci_provider: Provider) -> GpuSpec | None:
    """The GPUs the host should have: the catalogue's GpuInfo (EC2), else expectations.toml by instance
    type (a local or inventory host known by its DMI type), else None (nothing to compare)."""
    try:
        info = perfci_provider.type_info(perfci_session.target(host.name))
    except KeyError:
        info = None
    if info is not None and hasattr(info, "gpus"):
        if not info.gpus:
            return GpuSpec(count=0, model="", memory_mib=0,
                           source=f"DescribeInstanceTypes lists no GpuInfo for {info.name}")
        return GpuSpec(count=info.gpu_count, model="|".join(dict.fromkeys(info.gpu_models)),
                       memory_mib=info.gpu_memory_mib or 0,
                       source=f"DescribeInstanceTypes GpuInfo of {info.name}: "
                              + ", ".join(g.line() for g in info.gpus))
    stated = (load_expectations(EXPECTATIONS) if EXPECTATIONS.is_file() else Expectations()).gpu_for(target_key(host))
    if stated is None:
        return None
    gpu, source = stated
    return GpuSpec(count=gpu.count, model=gpu.model, memory_mib=int(gpu.memory_gib * 1024), source=source)
