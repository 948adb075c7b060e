"""moto_server with EC2 placement groups: the one EC2 API perfci calls that moto 5.2.5 does not implement.

Run as the moto server's program (tests/moto_server.py starts `python tests/moto_placement.py -H ... -p ...`).
It adds CreatePlacementGroup, DescribePlacementGroups and DeletePlacementGroup to moto's EC2 responses,
and makes RunInstances honour `Placement.GroupName`, as the EC2 API reference describes them:

* a group has a name (unique per region: InvalidPlacementGroup.Duplicate), an id `pg-` + 17 hex, a
  strategy, state `available`, and tags (TagSpecifications, kept in moto's own tag store, so CreateTags,
  DescribeTags and `tag:` filters see them);
* RunInstances into an unknown group: InvalidPlacementGroup.Unknown; the instance's Placement.GroupName
  is the group's name (DescribeInstances shows it); a cluster group lives in one Availability Zone: the
  first instance's, and a launch elsewhere is refused (InvalidParameterCombination);
* DeletePlacementGroup of a group with instances not terminated: InvalidPlacementGroup.InUse; of an
  unknown one: InvalidPlacementGroup.Unknown;
* DescribePlacementGroups filters: group-name, group-id, strategy, state, tag:KEY, tag-key.

Everything else is moto's. State lives on moto's EC2 backend object, so /moto-api/reset clears it.
"""

from __future__ import annotations

import secrets
import sys
import threading
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response
from moto.ec2.responses.instances import InstanceResponse


def _groups(backend: Any) -> dict[str, dict[str, Any]]:
    if not hasattr(backend, "_perfci_placement_groups"):
        backend._perfci_placement_groups = {}
    groups: dict[str, dict[str, Any]] = backend._perfci_placement_groups
    return groups


def _unknown(name: str) -> EC2ClientError:
    return EC2ClientError("InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown.")


def _tags(backend: Any, group_id: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in backend.tags.get(group_id, {}).items()]


def _matches(backend: Any, group: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    tags = backend.tags.get(group["GroupId"], {})
    for f in filters:
        name, values = f.get("Name", ""), list(f.get("Value", f.get("Values", [])) or [])
        if name == "group-name":
            ok = group["GroupName"] in values
        elif name == "group-id":
            ok = group["GroupId"] in values
        elif name in ("strategy", "state"):
            ok = group["Strategy" if name == "strategy" else "State"] in values
        elif name == "tag-key":
            ok = any(v in tags for v in values)
        elif name.startswith("tag:"):
            ok = tags.get(name[4:]) in values
        else:
            raise EC2ClientError("InvalidParameterValue", f"The filter '{name}' is invalid")
        if not ok:
            return False
    return True


def create_placement_group(self: Any) -> ActionResult:
    name = self._get_param("GroupName")
    strategy = self._get_param("Strategy") or "cluster"
    groups = _groups(self.ec2_backend)
    if not name:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter GroupName")
    if name in groups:
        raise EC2ClientError("InvalidPlacementGroup.Duplicate", f"The Placement Group '{name}' already exists.")
    group = {"GroupName": name, "GroupId": "pg-" + secrets.token_hex(9)[:17], "Strategy": strategy,
             "State": "available", "GroupArn": f"arn:aws:ec2:{self.region}:123456789012:placement-group/{name}",
             "zone": None}
    tags = self._parse_tag_specification().get("placement-group", {})
    if tags:
        self.ec2_backend.create_tags([group["GroupId"]], tags)
    groups[name] = group
    return ActionResult({"PlacementGroup": {**_public(group), "Tags": _tags(self.ec2_backend, group["GroupId"])}})


def _public(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "zone"}


def describe_placement_groups(self: Any) -> ActionResult:
    groups = _groups(self.ec2_backend)
    names = self._get_param("GroupNames", []) or []
    ids = self._get_param("GroupIds", []) or []
    filters = self._get_param("Filters", []) or []
    for name in names:
        if name not in groups:
            raise _unknown(name)
    out = [g for g in groups.values() if (not names or g["GroupName"] in names) and (not ids or g["GroupId"] in ids)
           and _matches(self.ec2_backend, g, filters)]
    return ActionResult({"PlacementGroups": [{**_public(g), "Tags": _tags(self.ec2_backend, g["GroupId"])}
                                             for g in out]})


def delete_placement_group(self: Any) -> ActionResult:
    name = self._get_param("GroupName")
    groups = _groups(self.ec2_backend)
    if name not in groups:
        raise _unknown(name)
    for inst in self.ec2_backend.all_instances():
        if inst.placement.group_name == name and inst.state not in ("terminated",):
            raise EC2ClientError("InvalidPlacementGroup.InUse",
                                 f"The placement group '{name}' is in use and may not be deleted.")
    group = groups.pop(name)
    self.ec2_backend.tags.pop(group["GroupId"], None)
    return EmptyResult()


_run_instances = InstanceResponse.run_instances
_launch_lock = threading.Lock()


def run_instances(self: Any) -> Any:
    name = self._get_param("Placement.GroupName")
    group = None
    if name:
        group = _groups(self.ec2_backend).get(name)
        if group is None:
            raise _unknown(name)
        subnet_id = self._get_param("SubnetId")
        zone = self.ec2_backend.get_subnet(subnet_id).availability_zone if subnet_id else None
        if group["Strategy"] == "cluster" and group["zone"] and zone and zone != group["zone"]:
            raise EC2ClientError("InvalidParameterCombination",
                                 f"Placement group {name} is in {group['zone']}; cannot launch into {zone}")
    # One launch at a time: the instances new after this one's launch are its own only if no other launch
    # (the provider starts types on parallel threads) created some meanwhile. Without the lock a parallel
    # type's instance joined this group, and the group's release saw it "in use" (InUse for ever).
    with _launch_lock:
        before = {i.id for i in self.ec2_backend.all_instances()}
        result = _run_instances(self)
        if group is not None:
            for inst in self.ec2_backend.all_instances():
                if inst.id not in before:
                    inst.placement.group_name = name
                    group["zone"] = group["zone"] or inst.placement.zone
    return result


def install() -> None:
    for cls in (EC2Response,):
        cls.create_placement_group = create_placement_group  # type: ignore[attr-defined]
        cls.describe_placement_groups = describe_placement_groups  # type: ignore[attr-defined]
        cls.delete_placement_group = delete_placement_group  # type: ignore[attr-defined]
    InstanceResponse.run_instances = run_instances  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from moto.server import main

    main(sys.argv[1:])
