"""What instance types exist in a region, from the API itself (never a hand-kept list).

One paginated DescribeInstanceTypes listing per region, cached on the Catalog: resolving eight names
costs one listing, not eight calls, and an unknown name is answered with the closest real names.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar

from pytest_perfci.models.instance_types import InstanceTypeInfo, UnknownInstanceType, closest_names

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client


class Catalog:
    """The instance types of the client's region (one listing, cached) and the zones offering each."""

    # (endpoint, region) -> listing, shared by every Catalog of the process: the listing is ~1400 types
    # and does not change within a session (the plugin's validate() and the provider reuse it).
    _listings: ClassVar[dict[tuple[str, str], dict[str, InstanceTypeInfo]]] = {}
    _listings_lock: ClassVar[threading.Lock] = threading.Lock()
    # (endpoint, region) -> types offered in the region (DescribeInstanceTypeOfferings), for queries.
    _offered: ClassVar[dict[tuple[str, str], frozenset[str]]] = {}

    def __init__(self, ec2: EC2Client) -> None:
        self.ec2 = ec2
        self.region: str = ec2.meta.region_name
        self._key = (str(ec2.meta.endpoint_url), self.region)
        self._zones: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def all(self) -> dict[str, InstanceTypeInfo]:
        with Catalog._listings_lock:
            if self._key not in Catalog._listings:
                types: dict[str, InstanceTypeInfo] = {}
                for page in self.ec2.get_paginator("describe_instance_types").paginate():
                    for item in page["InstanceTypes"]:
                        info = InstanceTypeInfo.from_api(item)
                        if info is not None:
                            types[info.name] = info
                Catalog._listings[self._key] = types
            return Catalog._listings[self._key]

    @classmethod
    def forget(cls) -> None:
        """Drop cached listings (tests that count DescribeInstanceTypes calls)."""
        with cls._listings_lock:
            cls._listings.clear()
            cls._offered.clear()

    def offered(self) -> frozenset[str]:
        """Types the region offers (one paginated DescribeInstanceTypeOfferings, LocationType=region)."""
        with Catalog._listings_lock:
            if self._key not in Catalog._offered:
                names: set[str] = set()
                paginator = self.ec2.get_paginator("describe_instance_type_offerings")
                for page in paginator.paginate(LocationType="region"):
                    names.update(o["InstanceType"] for o in page["InstanceTypeOfferings"])
                Catalog._offered[self._key] = frozenset(names)
            return Catalog._offered[self._key]

    def resolve(self, names: list[str] | tuple[str, ...]) -> list[InstanceTypeInfo]:
        """Each name to its info, in order; the first unknown name raises UnknownInstanceType."""
        types = self.all()
        out = []
        for name in names:
            if name not in types:
                closest = closest_names(name, list(types))
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
