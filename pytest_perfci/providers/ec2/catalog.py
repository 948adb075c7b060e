"""What instance types exist in a region, from the API itself (never a hand-kept list).

One paginated DescribeInstanceTypes listing per region, cached on the Catalog: resolving eight names
costs one listing, not eight calls, and an unknown name is answered with the closest real names.
"""

from __future__ import annotations

import difflib
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class UnknownInstanceType(ValueError):
    """A requested type does not exist in the region; str() is one line with the closest real names."""

    def __init__(self, name: str, region: str, closest: list[str]) -> None:
        hint = f"; closest: {', '.join(closest)}" if closest else "; no similar names"
        super().__init__(f"unknown instance type {name!r} in {region}{hint}")
        self.name = name
        self.region = region
        self.closest = closest


class InstanceTypeInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    arch: Literal["x86_64", "arm64"]
    vcpus: int
    memory_mib: int
    metal: bool
    family: str

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> InstanceTypeInfo | None:
        """From one DescribeInstanceTypes item; None for types we cannot run (i386-only, Mac)."""
        archs = item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        arch = "x86_64" if "x86_64" in archs else "arm64" if "arm64" in archs else None
        if arch is None:
            return None
        name = item["InstanceType"]
        return cls(
            name=name,
            arch=arch,
            vcpus=int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
            memory_mib=int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)),
            metal=bool(item.get("BareMetal", False)),
            family=name.split(".", 1)[0],
        )


class Catalog:
    """The instance types of the client's region (one listing, cached) and the zones offering each."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.region: str = ec2.meta.region_name
        self._types: dict[str, InstanceTypeInfo] | None = None
        self._zones: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def all(self) -> dict[str, InstanceTypeInfo]:
        with self._lock:
            if self._types is None:
                types: dict[str, InstanceTypeInfo] = {}
                for page in self.ec2.get_paginator("describe_instance_types").paginate():
                    for item in page["InstanceTypes"]:
                        info = InstanceTypeInfo.from_api(item)
                        if info is not None:
                            types[info.name] = info
                self._types = types
            return self._types

    def resolve(self, names: list[str] | tuple[str, ...]) -> list[InstanceTypeInfo]:
        """Each name to its info, in order; the first unknown name raises UnknownInstanceType."""
        types = self.all()
        out = []
        for name in names:
            if name not in types:
                closest = sorted(difflib.get_close_matches(name, list(types), n=3, cutoff=0.6))
                raise UnknownInstanceType(name, self.region, closest)
            out.append(types[name])
        return out

    def zones_offering(self, instance_type: str) -> list[str]:
        """Availability zones of the region that offer the type, sorted (DescribeInstanceTypeOfferings)."""
        with self._lock:
            if instance_type not in self._zones:
                zones: set[str] = set()
                paginator = self.ec2.get_paginator("describe_instance_type_offerings")
                for page in paginator.paginate(
                    LocationType="availability-zone",
                    Filters=[{"Name": "instance-type", "Values": [instance_type]}],
                ):
                    zones.update(o["Location"] for o in page["InstanceTypeOfferings"])
                self._zones[instance_type] = sorted(zones)
            return list(self._zones[instance_type])
