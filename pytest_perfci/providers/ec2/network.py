"""Per-run access: an ephemeral ed25519 key pair, a security group opening SSH to one CIDR, subnets.

Every create carries TagSpecifications (run id, owner, expiry, suite, Name) and is ledgered: intent
before the call, the id right after it. The private key goes straight from the API response to a
0600 file under <results>/.keys/ and is never printed or logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pytest_perfci.aws.clients import is_loopback_url, local_only
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.tags import TAG_EXPIRES, TAG_OWNER, TAG_RUN_ID, TAG_SUITE, stamp

CHECKIP_URL = "https://checkip.amazonaws.com"


class NetworkError(RuntimeError):
    """Access for the run cannot be set up; str() is one line."""


def expires_at(ttl: timedelta, now: datetime | None = None) -> str:
    """UTC ISO8601 with a Z, seconds precision: the perfci:expires-at tag value."""
    return stamp((now or datetime.now(UTC)) + ttl)


def make_tags(run_id: str, owner: str, expires: str, suite: str, name: str) -> list[dict[str, str]]:
    return [
        {"Key": TAG_RUN_ID, "Value": run_id},
        {"Key": TAG_OWNER, "Value": owner},
        {"Key": TAG_EXPIRES, "Value": expires},
        {"Key": TAG_SUITE, "Value": suite or "-"},
        {"Key": "Name", "Value": name},
    ]


def tag_spec(resource_type: str, tags: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tags}]


def checkip(timeout: float = 10.0) -> str:
    """The caller's public IPv4 address as AWS sees it; refused under PERFCI_LOCAL_ONLY."""
    if local_only():
        raise NetworkError("refusing to look up the public address: PERFCI_LOCAL_ONLY=1; pass --perfci-ssh-cidr")
    with urllib.request.urlopen(CHECKIP_URL, timeout=timeout) as resp:
        return resp.read().decode().strip()


def default_cidr(
    ssh_cidr: str | None, endpoint_url: str | None, public_address: Callable[[], str] = checkip
) -> str:
    """settings.ssh_cidr, else 127.0.0.1/32 for a loopback endpoint, else the caller's address /32.

    Never 0.0.0.0/0 unless the user typed it.
    """
    if ssh_cidr:
        return ssh_cidr
    if endpoint_url and is_loopback_url(endpoint_url):
        return "127.0.0.1/32"
    try:
        text = public_address().strip()
        addr = ipaddress.ip_address(text)
    except (OSError, ValueError) as e:
        raise NetworkError(
            f"cannot find this machine's public address to allow SSH from ({e}); pass --perfci-ssh-cidr"
        ) from None
    if addr.version != 4:
        raise NetworkError(f"this machine's public address {addr} is IPv6, but instances are reached over IPv4; "
                           "pass --perfci-ssh-cidr with this machine's public IPv4 address /32")
    return f"{addr}/{addr.max_prefixlen}"


def cidr_warning(cidr: str) -> str | None:
    """A one-line warning when SSH would be open to (nearly) everyone: allowed, since the user typed it,
    but never silent."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.prefixlen <= 8:
        return (f"warning: --perfci-ssh-cidr {cidr} opens SSH (port 22) of every created instance to "
                f"{network.num_addresses:,} addresses; the default allows only this machine's address /32")
    return None


@dataclass(frozen=True)
class KeyPair:
    name: str
    key_id: str
    path: Path


def write_private_key(path: Path, material: str) -> None:
    """Create the file 0600 from the start (no window where it is world-readable); replace any old one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, material.encode() if material.endswith("\n") else (material + "\n").encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def _refused_closes_intent(ledger: Ledger, run_id: str, resource: str, token: str, region: str) -> Iterator[None]:
    """A create EC2 answered with an error created nothing: close its intent at once. Otherwise a
    teardown would resolve the intent by its name, and a namesake (InvalidKeyPair.Duplicate: another
    run's key pair) would be deleted as ours."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        ledger.record(run_id, "deleted", resource, token=token, region=region, data={"never_created": code})
        raise


def create_key_pair(
    ec2: Any, ledger: Ledger, *, run_id: str, region: str, key_dir: Path, tags: list[dict[str, str]]
) -> KeyPair:
    name = f"{run_id}-ssh"
    path = key_dir / f"{name}.pem"
    ledger.record(run_id, "intent", "key_pair", token=name, region=region,
                  data={"name": name, "key_path": str(path), "tags": tags})
    with _refused_closes_intent(ledger, run_id, "key_pair", name, region):
        resp = ec2.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=tag_spec("key-pair", tags))
    material = resp.pop("KeyMaterial")
    try:
        write_private_key(path, material)
    finally:
        del material
    key_id = resp.get("KeyPairId", "")
    ledger.record(run_id, "created", "key_pair", id=name, token=name, region=region,
                  data={"name": name, "key_pair_id": key_id, "key_path": str(path)})
    return KeyPair(name=name, key_id=key_id, path=path)


def default_vpc(ec2: Any) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise NetworkError(f"no default VPC in {ec2.meta.region_name}; create one (aws ec2 create-default-vpc)")
    return str(vpcs[0]["VpcId"])


def create_security_group(
    ec2: Any, ledger: Ledger, *, run_id: str, region: str, vpc_id: str, cidr: str, tags: list[dict[str, str]]
) -> str:
    """A group allowing inbound TCP 22 from `cidr` only (egress stays the default: all outbound)."""
    name = f"{run_id}-ssh"
    ledger.record(run_id, "intent", "security_group", token=name, region=region,
                  data={"name": name, "vpc_id": vpc_id, "cidr": cidr, "tags": tags})
    with _refused_closes_intent(ledger, run_id, "security_group", name, region):
        resp = ec2.create_security_group(
            GroupName=name,
            Description=f"perfci run {run_id}: SSH from {cidr}",
            VpcId=vpc_id,
            TagSpecifications=tag_spec("security-group", tags),
        )
    group_id = str(resp["GroupId"])
    ledger.record(run_id, "created", "security_group", id=group_id, token=name, region=region,
                  data={"name": name, "vpc_id": vpc_id})
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": cidr, "Description": f"perfci {run_id} ssh"}],
        }],
    )
    return group_id


def subnets_by_zone(ec2: Any, vpc_id: str) -> dict[str, str]:
    """AZ -> subnet id in the VPC, preferring each AZ's default subnet."""
    out: dict[str, str] = {}
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    for s in sorted(subnets, key=lambda s: (not s.get("DefaultForAz", False), s["SubnetId"])):
        out.setdefault(s["AvailabilityZone"], s["SubnetId"])
    return out


def placements(zones_offering: list[str], subnets: dict[str, str]) -> list[tuple[str, str]]:
    """(zone, subnet) pairs to try in order: zones that offer the type and have a subnet."""
    return [(z, subnets[z]) for z in zones_offering if z in subnets]


# suites/net: iperf3 on the first port, sockperf on the next; the pair's security group rule opens these.
PAIR_PORTS = (5201, 5209)


def allow_within_group(ec2: Any, group_id: str, run_id: str, ports: tuple[int, int] = PAIR_PORTS) -> None:
    """TCP `ports` between the group's own members only (the source is the group itself, no CIDR): a
    client and server of this run reach each other's test ports, nobody else does."""
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": ports[0], "ToPort": ports[1],
            "UserIdGroupPairs": [{"GroupId": group_id, "Description": f"perfci {run_id} client/server"}],
        }],
    )


def create_placement_group(
    ec2: Any, ledger: Ledger, *, run_id: str, region: str, name: str, tags: list[dict[str, str]]
) -> tuple[str, str]:
    """A cluster placement group (one AZ, low latency, 10 Gbit/s per flow), ledgered by name; returns
    (name, group id)."""
    ledger.record(run_id, "intent", "placement_group", token=name, region=region, data={"name": name, "tags": tags})
    with _refused_closes_intent(ledger, run_id, "placement_group", name, region):
        resp = ec2.create_placement_group(GroupName=name, Strategy="cluster",
                                          TagSpecifications=tag_spec("placement-group", tags))
    group_id = str(resp.get("PlacementGroup", {}).get("GroupId", ""))
    ledger.record(run_id, "created", "placement_group", id=name, token=name, region=region,
                  data={"name": name, "group_id": group_id})
    return name, group_id
