"""An EC2 instance type as the run sees it, and the naming rules that need no API call.

Pure (no boto3): built from one DescribeInstanceTypes item by the catalogue (providers/ec2/catalog.py),
read by the query grammar (models/instance_query.py), markers and `perfci plan`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# FAMILY.SIZE as EC2 spells it (m7i.metal-24xl, c7g.2xlarge, u-6tb1.metal)
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")

class UnknownInstanceType(ValueError):
    """A requested type does not exist in the region; str() is one line with the closest real names."""

    def __init__(self, name: str, region: str, closest: list[str]) -> None:
        hint = f"; closest: {', '.join(closest)}" if closest else "; no similar names"
        super().__init__(f"unknown instance type {name!r} in {region}{hint}")
        self.name = name
        self.region = region
        self.closest = closest


_MANUFACTURERS = {"intel": "intel", "amd": "amd", "aws": "aws"}
_FAMILY_RE = re.compile(r"^(?P<series>[a-z-]+?)(?P<generation>\d+)(?P<options>[a-z-]*)$")


def vendor_from_family(family: str, arch: str) -> str:
    """The CPU vendor by EC2's naming convention, for listings without ProcessorInfo.Manufacturer.

    arm64 on EC2 is Graviton (aws; Mac types are not listed). On x86_64 the option letters after the
    generation say it: 'a' is AMD (m5a, c6a, m7a, r5ad, hpc6a, g4ad), anything else Intel (m5, m7i,
    c5n, r7iz, x2iedn, z1d, m7i-flex). Checked against moto's copy of the real catalogue: right for every
    general-purpose, compute, memory and storage family; wrong for some accelerated families whose hosts
    are AMD without an 'a' (g5, g6*, gr6*, p5*, inf2, f2). AWS and moto both send the Manufacturer, so
    this is only the fallback.
    """
    if arch == "arm64":
        return "aws"
    match = _FAMILY_RE.match(family)
    return "amd" if match and "a" in match.group("options") else "intel"


class GpuInfo(BaseModel):
    """One kind of accelerator in a type: an item of DescribeInstanceTypes GpuInfo.Gpus.

    `memory_mib` is per device, as the API states it (MemoryInfo.SizeInMiB): e.g. 22888 MiB for the
    A10G of g5, which nvidia-smi reports as 23028 MiB total, so comparisons allow a tolerance
    (checks/gpu.py MEMORY_TOLERANCE).
    """

    model_config = ConfigDict(frozen=True)

    count: int
    manufacturer: str  # lower case: nvidia | amd | ... (GpuInfo.Gpus[].Manufacturer)
    model: str  # as the API names it: A10G, L4, A100, H100, T4g
    memory_mib: int  # per device

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> GpuInfo:
        return cls(count=int(item.get("Count", 0)), manufacturer=str(item.get("Manufacturer", "")).lower(),
                   model=str(item.get("Name", "")), memory_mib=int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)))

    def line(self) -> str:
        """'1 x NVIDIA A10G (22888 MiB each)', as a sentence names it."""
        maker = self.manufacturer.upper() if self.manufacturer == "nvidia" else self.manufacturer.capitalize()
        return f"{self.count} x {maker} {self.model} ({self.memory_mib} MiB each)"


class InstanceTypeInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    arch: Literal["x86_64", "arm64"]
    vcpus: int
    memory_mib: int
    metal: bool
    family: str
    vendor: str = ""  # intel | amd | aws (Graviton): ProcessorInfo.Manufacturer, else vendor_from_family
    # NetworkInfo of the default network card: what suites/net judges throughput against.
    network_performance: str = ""              # "Up to 12.5 Gigabit"
    network_baseline_gbps: float | None = None  # BaselineBandwidthInGbps
    network_peak_gbps: float | None = None      # PeakBandwidthInGbps
    # DescribeInstanceTypes GpuInfo.Gpus: empty for a type without GPUs (most types)
    gpus: tuple[GpuInfo, ...] = ()

    @property
    def gpu_count(self) -> int:
        return sum(g.count for g in self.gpus)

    @property
    def gpu_makers(self) -> frozenset[str]:
        return frozenset(g.manufacturer for g in self.gpus)

    @property
    def gpu_models(self) -> tuple[str, ...]:
        return tuple(g.model for g in self.gpus)

    @property
    def gpu_memory_mib(self) -> int | None:
        """Memory of the smallest GPU of the type (per device), None without GPUs."""
        return min((g.memory_mib for g in self.gpus), default=None)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> InstanceTypeInfo | None:
        """From one DescribeInstanceTypes item; None for types we cannot run (i386-only, Mac)."""
        archs = item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        arch: Literal["x86_64", "arm64"] | None = (
            "x86_64" if "x86_64" in archs else "arm64" if "arm64" in archs else None
        )
        if arch is None:
            return None
        name = item["InstanceType"]
        family = name.split(".", 1)[0]
        maker = str(item.get("ProcessorInfo", {}).get("Manufacturer", "")).lower()
        network = item.get("NetworkInfo", {}) or {}
        cards = network.get("NetworkCards", []) or []
        default = network.get("DefaultNetworkCardIndex", 0)
        card = next((c for c in cards if c.get("NetworkCardIndex", 0) == default), cards[0] if cards else {})
        return cls(
            network_performance=str(card.get("NetworkPerformance") or network.get("NetworkPerformance") or ""),
            network_baseline_gbps=_gbps(card.get("BaselineBandwidthInGbps")),
            network_peak_gbps=_gbps(card.get("PeakBandwidthInGbps")),
            name=name,
            arch=arch,
            vcpus=int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
            memory_mib=int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)),
            metal=bool(item.get("BareMetal", False)),
            family=family,
            vendor=_MANUFACTURERS.get(maker) or vendor_from_family(family, arch),
            gpus=tuple(GpuInfo.from_api(g) for g in (item.get("GpuInfo") or {}).get("Gpus", []) if g.get("Count")),
        )


def _gbps(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def closest_names(name: str, names: list[str], limit: int = 5) -> list[str]:
    """Real names a typo most likely meant.

    Plain difflib ranks m6i.metal above m7i.metal-24xl for "m7i.metall"; people mistype the size far
    more often than the family, so names sharing the longest prefix (beyond the family) win, and
    difflib's ratio decides otherwise.
    """
    family = name.split(".", 1)[0]
    pool = set(difflib.get_close_matches(name, names, n=10, cutoff=0.5))
    pool.update(n for n in names if n.split(".", 1)[0] == family)
    if not pool:
        return []

    def prefix(other: str) -> int:
        return len(os.path.commonprefix([name, other]))

    best = max(prefix(n) for n in pool)
    if best > len(family) + 1:
        return sorted(n for n in pool if prefix(n) == best)[:limit]
    ranked = sorted(pool, key=lambda n: -difflib.SequenceMatcher(None, name, n).ratio())
    return sorted(ranked[:3])
