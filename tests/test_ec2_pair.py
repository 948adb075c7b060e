"""Client/server pairs on EC2 end to end: the moto server (with placement groups, tests/moto_placement.py)
and two loopback sshd, one answering for the clients and one for the servers.

What is checked at the moto server while the run is up: a cluster placement group per target tagged
with the run, client and server launched into it in one AZ (roles tagged), and the security group
opening the test ports only to itself. After the run: nothing left. And `perfci reap` removes a
placement group a dead run left behind. No test traffic goes anywhere: the pair's addresses are
moto's, so the inner test only runs commands on both ends over SSH (loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.ec2 import network
from tests.moto_server import MotoServer
from tests.sshd import SshdServer, sshd_available, start_sshd

ROOT = Path(__file__).parents[1]

INNER = '''
import json, os
import boto3

def test_pair(topology, host):
    ec2 = boto3.client("ec2")
    run = os.environ["PERFCI_TEST_RUN_ID"]
    run_filter = [{"Name": "tag:perfci:run-id", "Values": [run]}]
    groups = ec2.describe_placement_groups(Filters=run_filter)["PlacementGroups"]
    if host.name == os.environ.get("PERFCI_TEST_LAST_TYPE"):  # the types before it were released: wait
        import time
        deadline = time.monotonic() + 60
        while len(groups) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            groups = ec2.describe_placement_groups(Filters=run_filter)["PlacementGroups"]
    live = [{"id": i["InstanceId"], "type": i["InstanceType"], "placement": i["Placement"],
             "private": i.get("PrivateIpAddress"), "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])}}
            for r in ec2.describe_instances(Filters=run_filter)["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] == "running"]
    sgs = ec2.describe_security_groups(Filters=run_filter)["SecurityGroups"]
    out = {
        "target": topology.target, "host": host.name, "client_is_host": topology.client is host,
        "client_name": topology.client.name, "server_name": topology.server.name,
        "client_address": topology.client_address, "server_address": topology.server_address,
        "client_type": topology.client_type, "server_type": topology.server_type,
        "placement_group": topology.placement_group, "link": topology.link, "ports": list(topology.ports),
        "client_ssh": topology.client.run("echo $SSH_CONNECTION").stdout.split(),
        "server_ssh": topology.server.run("echo $SSH_CONNECTION").stdout.split(),
        "groups": groups, "instances": live, "security_groups": sgs,
    }
    path = os.environ["PERFCI_TEST_PAIR_OUT"] + "." + str(os.getpid())
    with open(path, "w") as fh:
        json.dump(out, fh, default=str)
'''


@pytest.fixture
def two_sshd(sshd_server: SshdServer, tmp_path: Path) -> Iterator[tuple[SshdServer, SshdServer]]:
    """The clients' sshd and the servers' sshd; only the keys the run creates may log in."""
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path / "server-sshd")
    for s in (sshd_server, server):
        (s.workdir / "authorized_keys").write_text("")
    try:
        yield sshd_server, server
    finally:
        server.stop()


def run_pair(moto: MotoServer, sshds: tuple[SshdServer, SshdServer], tmp_path: Path, run_id: str,
             *args: str, last_type: str = "") -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    clients, servers = sshds
    test = tmp_path / "inner" / "test_pair_inner.py"
    test.parent.mkdir()
    test.write_text(INNER)
    results = tmp_path / "results"
    out = tmp_path / "pair.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_"))}
    env.update(moto.env())
    env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(clients.port),
               PERFCI_TEST_AUTHORIZED_KEYS=str(clients.workdir / "authorized_keys"),
               PERFCI_TEST_SERVER_SSHD_PORT=str(servers.port),
               PERFCI_TEST_SERVER_AUTHORIZED_KEYS=str(servers.workdir / "authorized_keys"),
               PERFCI_TEST_PAIR_OUT=str(out), PERFCI_TEST_RUN_ID=run_id, PERFCI_TEST_LAST_TYPE=last_type)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_harness", str(test), "-rA",
             f"--perfci-results={results}", "--perfci-ssh-user=root", f"--perfci-run-id={run_id}", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
        )
    except subprocess.TimeoutExpired as e:  # say where it stood
        def text(b: bytes | str | None) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        pytest.fail(f"the run did not end in {e.timeout:g}s:\n{text(e.stdout)[-4000:]}\n{text(e.stderr)[-4000:]}")
    found = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("pair.json.*"))]
    return proc, found


def leftovers(moto: MotoServer) -> dict[str, list[str]]:
    ec2: Any = moto.client("ec2")
    return {
        "instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                      if i["State"]["Name"] != "terminated"],
        "placement_groups": [g["GroupName"] for g in ec2.describe_placement_groups()["PlacementGroups"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                            if g["GroupName"] != "default"],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
    }


NOTHING: dict[str, list[str]] = {"instances": [], "placement_groups": [], "security_groups": [], "key_pairs": []}


def check_at_moto(seen: dict[str, Any], run_id: str, client_type: str, server_type: str,
                  sshds: tuple[SshdServer, SshdServer]) -> None:
    groups = seen["groups"]
    assert len(groups) == 1 and groups[0]["Strategy"] == "cluster", groups
    group = groups[0]["GroupName"]
    assert group == f"{run_id}-{client_type}" == seen["placement_group"]
    tags = {t["Key"]: t["Value"] for t in groups[0]["Tags"]}
    assert tags["perfci:run-id"] == run_id and "perfci:expires-at" in tags and tags["perfci:owner"]
    by_role = {i["tags"]["perfci:role"]: i for i in seen["instances"]}
    assert set(by_role) == {"client", "server"} and len(seen["instances"]) == 2
    assert (by_role["client"]["type"], by_role["server"]["type"]) == (client_type, server_type)
    for inst in by_role.values():
        assert inst["placement"]["GroupName"] == group
    assert by_role["client"]["placement"]["AvailabilityZone"] == by_role["server"]["placement"]["AvailabilityZone"]
    assert (seen["client_address"], seen["server_address"]) == (by_role["client"]["private"],
                                                                by_role["server"]["private"])
    # The security group: SSH from one CIDR, the test ports from the group itself and nothing else.
    (sg,) = seen["security_groups"]
    rules = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in sg["IpPermissions"]}
    assert set(rules) == {("tcp", 22, 22), ("tcp", 5201, 5209)}, rules
    test_ports = rules[("tcp", 5201, 5209)]
    assert [g["GroupId"] for g in test_ports["UserIdGroupPairs"]] == [sg["GroupId"]]
    assert test_ports.get("IpRanges", []) == [] and test_ports.get("Ipv6Ranges", []) == []
    assert [r["CidrIp"] for r in rules[("tcp", 22, 22)]["IpRanges"]] == ["127.0.0.1/32"]
    # Two machines: the client is the target's own host, on the clients' sshd; the server on the other.
    clients, servers = sshds
    assert seen["client_is_host"] is True or seen["client_name"] == seen["host"]
    assert seen["client_ssh"][3] == str(clients.port) and seen["server_ssh"][3] == str(servers.port)
    assert seen["ports"] == [5201, 5209] and seen["link"].startswith(f"cluster placement group {group} in ")


def test_pair_same_type_in_a_cluster_placement_group(moto: MotoServer, two_sshd: tuple[SshdServer, SshdServer],
                                                     tmp_path: Path) -> None:
    proc, seen = run_pair(moto, two_sshd, tmp_path, "pair-e2e", "--instance-type=m7i.large")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed" in out and "test_pair[m7i.large]" in out
    (one,) = seen
    check_at_moto(one, "pair-e2e", "m7i.large", "m7i.large", two_sshd)
    assert one["client_is_host"] is True
    assert "TCP 5201-5209 open between the run's instances only" in out
    assert "deleted placement group pair-e2e-m7i.large" in out
    assert leftovers(moto) == NOTHING
    keys = tmp_path / "results" / ".keys"
    assert not list(keys.glob("*.known_hosts")) and not list(keys.glob("*.pem")), list(keys.iterdir())
    assert Ledger(tmp_path / "results" / "ledger.jsonl").outstanding() == []


def test_a_released_targets_placement_group_goes_with_it(moto: MotoServer, two_sshd: tuple[SshdServer, SshdServer],
                                                         tmp_path: Path) -> None:
    """Early release takes the pair's cluster placement group too, after its two instances: while the last
    type's test runs, only that type's group is left (before, every group waited for the session's end)."""
    proc, seen = run_pair(moto, two_sshd, tmp_path, "pair-early", "--instance-type=m7i.large,c7g.large",
                          last_type="c7g.large")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    by_target = {one["target"]: one for one in seen}
    assert [g["GroupName"] for g in by_target["c7g.large"]["groups"]] == ["pair-early-c7g.large"], out
    assert "release m7i.large: deleted placement group pair-early-m7i.large" in out, out
    assert leftovers(moto) == NOTHING


def test_pair_with_a_named_server_type_under_xdist(moto: MotoServer, two_sshd: tuple[SshdServer, SshdServer],
                                                   tmp_path: Path) -> None:
    """--perfci-server-type names the server's type; under xdist the controller launches the pair (it does
    not collect, the option tells it) and the worker attaches to both ends."""
    proc, seen = run_pair(moto, two_sshd, tmp_path, "pair-xdist", "--instance-type=m7i.large",
                          "--perfci-server-type=m7i.xlarge", "-n", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    (one,) = seen
    check_at_moto(one, "pair-xdist", "m7i.large", "m7i.xlarge", two_sshd)
    assert (one["client_type"], one["server_type"]) == ("m7i.large", "m7i.xlarge")
    assert leftovers(moto) == NOTHING


def test_pair_under_xdist_without_naming_a_server_type(moto: MotoServer, two_sshd: tuple[SshdServer, SshdServer],
                                                        tmp_path: Path) -> None:
    """The controller collects nothing: the worker's ask for its target says that tests use `topology`,
    before anything boots, so the pair is launched without --perfci-server-type."""
    proc, seen = run_pair(moto, two_sshd, tmp_path, "pair-xdist-ask", "--instance-type=m7i.large", "-n", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    (one,) = seen
    check_at_moto(one, "pair-xdist-ask", "m7i.large", "m7i.large", two_sshd)
    assert leftovers(moto) == NOTHING


def test_unknown_server_type_is_one_line_before_any_create(moto: MotoServer, two_sshd: tuple[SshdServer, SshdServer],
                                                           tmp_path: Path) -> None:
    proc, seen = run_pair(moto, two_sshd, tmp_path, "pair-bad", "--instance-type=m7i.large",
                          "--perfci-server-type=m7i.larg")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "'m7i.larg'" in first and "m7i.large" in first, first
    assert seen == [] and leftovers(moto) == NOTHING


def test_reap_removes_a_placement_group_a_dead_run_left(moto: MotoServer, tmp_path: Path) -> None:
    """A run killed after its placement group and an instance in it were made: `perfci reap --run-id`
    terminates the instance first, then deletes the group (a group holding an instance cannot go)."""
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    tags = network.make_tags("pg-dead", "tester", "2000-01-01T00:00:00Z", "net", "pg-dead")
    group, group_id = network.create_placement_group(ec2, ledger, run_id="pg-dead", region="us-east-1",
                                                     name="pg-dead-m7i.large", tags=tags)
    assert group_id.startswith("pg-")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m7i.large",
                             Placement={"GroupName": group},
                             TagSpecifications=network.tag_spec("instance", tags))["Instances"][0]
    with pytest.raises(Exception, match="InvalidPlacementGroup.InUse"):
        ec2.delete_placement_group(GroupName=group)  # what the engine's ordering avoids
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_"))}, **moto.env()}
    cmd = [sys.executable, "-m", "pytest_perfci.cli", "reap", "--run-id", "pg-dead", "--region", "us-east-1",
           f"--results={tmp_path}"]
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "placement_group" in dry.stdout and group in dry.stdout and inst["InstanceId"] in dry.stdout
    done = subprocess.run([*cmd, "--yes", "--json"], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    order = [(o["kind"], o["status"]) for o in json.loads(done.stdout)["outcomes"]]
    assert order == [("instance", "deleted"), ("placement_group", "deleted")], order
    assert ec2.describe_placement_groups()["PlacementGroups"] == []
    # The ledger selector finds it too (and says it is gone now).
    led = subprocess.run([sys.executable, "-m", "pytest_perfci.cli", "reap", "--ledger", str(ledger.path), "--yes",
                          "--region", "us-east-1"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert led.returncode == 0, led.stdout + led.stderr
    assert ledger.outstanding() == []
