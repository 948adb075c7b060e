"""RunInstances for one type, with the failure taxonomy and a boto3 waiter for `running`.

Every attempt gets its own ClientToken (a retried create with the same token cannot double), which
is ledgered as an intent before the call; a call that EC2 answered with an error closes its intent
(kind "deleted", data.never_created = the error code) so cleanup does not look for it forever.

Outcomes per error code:
  InsufficientInstanceCapacity, Unsupported, ...  -> next AZ offering the type (spot: on-demand first)
  VcpuLimitExceeded, InstanceLimitExceeded, ...    -> QuotaExceeded, naming the quota to raise
  every AZ exhausted                               -> CapacityUnavailable (the caller skips that type)
Throttling is not handled here: the client's adaptive retry mode does it.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError, WaiterError

from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.progress import status
from pytest_perfci.providers.base import TargetUnavailable
from pytest_perfci.providers.ec2.network import tag_spec

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client

Progress = Callable[[str], None]

CAPACITY_CODES = frozenset({
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientCapacity",
    "Unsupported",
})
SPOT_CODES = frozenset({
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientInstanceCapacity",
    "UnfulfillableCapacity",
})
QUOTA_CODES = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"})

# Service Quotas names and codes of the On-Demand vCPU quotas, by family letter prefix.
_ON_DEMAND_QUOTAS = (
    (("u-",), "Running On-Demand High Memory instances", "L-43DA4232"),
    (("dl",), "Running On-Demand DL instances", "L-6E869C2A"),
    (("inf",), "Running On-Demand Inf instances", "L-1945791B"),
    (("trn",), "Running On-Demand Trn instances", "L-2C3B7624"),
    (("hpc",), "Running On-Demand HPC instances", "L-F7808C92"),
    (("g", "vt"), "Running On-Demand G and VT instances", "L-DB2E81BA"),
    (("p",), "Running On-Demand P instances", "L-417A185B"),
    (("f",), "Running On-Demand F instances", "L-74FC7D96"),
    (("x",), "Running On-Demand X instances", "L-7295265B"),
)
_STANDARD = ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A")
_SPOT_STANDARD = ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "L-34B43A08")


class LaunchError(RuntimeError):
    """An instance could not be created; str() is one line."""

    def __init__(self, instance_type: str, message: str) -> None:
        super().__init__(message)
        self.instance_type = instance_type


class QuotaExceeded(LaunchError):
    """An account quota stops the launch: retrying elsewhere will not help; raise the quota."""

    def __init__(self, instance_type: str, code: str, quota: str, quota_code: str, detail: str) -> None:
        super().__init__(
            instance_type,
            f"{instance_type}: quota exceeded ({code}): {quota} [{quota_code}]; request an increase in "
            f"Service Quotas or stop other instances. EC2 said: {detail}",
        )
        self.code = code
        self.quota = quota
        self.quota_code = quota_code


class CapacityUnavailable(LaunchError, TargetUnavailable):
    """No AZ offering the type had capacity: that type's tests skip with this reason."""

    def __init__(self, instance_type: str, attempts: list[tuple[str, str, str]]) -> None:
        tried = ", ".join(f"{zone} {market}: {code}" for zone, market, code in attempts) or "no AZ offers it"
        super().__init__(instance_type, f"no capacity for {instance_type} in any AZ ({tried})")
        self.attempts = attempts


def quota_for(instance_type: str, code: str, spot: bool) -> tuple[str, str]:
    """(quota name, Service Quotas code) that a quota error for this type refers to."""
    if code == "InstanceLimitExceeded":
        return "Running On-Demand instances (legacy instance-count limit for this type)", "EC2 instance limit"
    family = instance_type.split(".", 1)[0].lower()
    if spot or code == "MaxSpotInstanceCountExceeded":
        return _SPOT_STANDARD
    for prefixes, name, quota_code in _ON_DEMAND_QUOTAS:
        if family.startswith(prefixes):
            return name, quota_code
    return _STANDARD


@dataclass
class LaunchSpec:
    instance_type: str
    image_id: str
    root_device: str
    key_name: str
    security_group_id: str
    placements: list[tuple[str, str]]  # (zone, subnet id) in the order to try
    user_data: str
    tags: list[dict[str, str]]
    root_volume_gb: int = 30
    spot: bool = False
    placement_group: str | None = None  # a cluster placement group (client/server pairs)
    extra: dict[str, Any] = field(default_factory=dict)

    def request(self, subnet_id: str, token: str, spot: bool) -> dict[str, Any]:
        req: dict[str, Any] = {
            "ClientToken": token,
            "ImageId": self.image_id,
            "InstanceType": self.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "KeyName": self.key_name,
            "SecurityGroupIds": [self.security_group_id],
            "SubnetId": subnet_id,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
            "BlockDeviceMappings": [{
                "DeviceName": self.root_device,
                "Ebs": {
                    "VolumeSize": self.root_volume_gb,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }],
            "InstanceInitiatedShutdownBehavior": "terminate",
            "UserData": self.user_data,
            "TagSpecifications": tag_spec("instance", self.tags) + tag_spec("volume", self.tags),
            **self.extra,
        }
        if self.placement_group:
            req["Placement"] = {"GroupName": self.placement_group}
        if spot:
            req["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        return req


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _message(e: ClientError) -> str:
    return " ".join(str(e.response.get("Error", {}).get("Message", "")).split())


def launch(
    ec2: EC2Client,
    ledger: Ledger,
    spec: LaunchSpec,
    *,
    run_id: str,
    region: str,
    progress: Progress = print,
) -> dict[str, Any]:
    """Create one instance of spec.instance_type; returns RunInstances' instance description."""
    attempts: list[tuple[str, str, str]] = []
    markets = ["spot", "on-demand"] if spec.spot else ["on-demand"]
    for zone, subnet in spec.placements:
        for market in markets:
            token = str(uuid.uuid4())
            data = {"instance_type": spec.instance_type, "zone": zone, "market": market, "tags": spec.tags}
            ledger.record(run_id, "intent", "instance", token=token, region=region, data=data)
            try:
                resp = ec2.run_instances(**spec.request(subnet, token, market == "spot"))
            except ClientError as e:
                code = _code(e)
                ledger.record(run_id, "deleted", "instance", token=token, region=region,
                              data={"never_created": code})
                if market == "spot" and code in SPOT_CODES | CAPACITY_CODES | QUOTA_CODES:
                    attempts.append((zone, market, code))
                    progress(f"{spec.instance_type}: spot refused in {zone} ({code}); trying on-demand")
                    continue
                if code in QUOTA_CODES:
                    name, quota_code = quota_for(spec.instance_type, code, market == "spot")
                    raise QuotaExceeded(spec.instance_type, code, name, quota_code, _message(e)) from None
                if code in CAPACITY_CODES:
                    attempts.append((zone, market, code))
                    progress(f"{spec.instance_type}: {code} in {zone}; trying the next AZ offering it")
                    break
                raise LaunchError(spec.instance_type, f"{spec.instance_type}: RunInstances failed: "
                                                      f"{code}: {_message(e)}") from None
            instance = resp["Instances"][0]
            ledger.record(run_id, "created", "instance", id=instance["InstanceId"], token=token, region=region,
                          data={"instance_type": spec.instance_type, "zone": zone, "market": market})
            progress(status(spec.instance_type, f"{instance['InstanceId']} launched in {zone} ({market})"))
            return dict(instance)
    raise CapacityUnavailable(spec.instance_type, attempts)


def user_data_b64(text: str) -> str:
    """boto3 base64-encodes UserData itself for RunInstances; this is for callers that need the wire form."""
    return base64.b64encode(text.encode()).decode()


def wait_running(
    ec2: EC2Client,
    instances: dict[str, str],
    *,
    progress: Progress = print,
    delay: int = 5,
    max_attempts: int = 120,
) -> dict[str, dict[str, Any]]:
    """Wait (boto3 waiter instance_running) for {instance id: type}; returns their descriptions.

    Progress lines come from the waiter's own DescribeInstances polls (an after-call event hook),
    so there is no polling loop of ours: `<type> <id> <state> <n>s`, each a progress.StatusLine of
    its type (rewritten in place on a terminal, an unchanged state not repeated elsewhere).
    """
    if not instances:
        return {}
    start = time.monotonic()
    hook_id = f"perfci-wait-{uuid.uuid4()}"

    def report(parsed: dict[str, Any] | None = None, **_: Any) -> None:
        for res in (parsed or {}).get("Reservations", []):
            for inst in res.get("Instances", []):
                iid = inst.get("InstanceId")
                if iid in instances:
                    state = inst.get("State", {}).get("Name", "?")
                    took = time.monotonic() - start
                    progress(status(instances[iid], f"{iid} {state}", took,
                                    text=f"{instances[iid]} {iid} {state} {took:.0f}s"))

    ec2.meta.events.register("after-call.ec2.DescribeInstances", report, unique_id=hook_id)
    try:
        ec2.get_waiter("instance_running").wait(
            InstanceIds=sorted(instances), WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts}
        )
    except WaiterError as e:
        names = ", ".join(f"{t} {i}" for i, t in instances.items())
        raise LaunchError(",".join(sorted(set(instances.values()))),
                          f"{names} did not reach running: {e.last_response.get('Error', {}) or e}") from None
    finally:
        ec2.meta.events.unregister("after-call.ec2.DescribeInstances", unique_id=hook_id)
    described: dict[str, dict[str, Any]] = {}
    resp = ec2.describe_instances(InstanceIds=sorted(instances))
    for res in resp["Reservations"]:
        for inst in res["Instances"]:
            described[inst["InstanceId"]] = cast("dict[str, Any]", inst)  # a plain dict at run time
    return described
