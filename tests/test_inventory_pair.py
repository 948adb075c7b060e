"""Inventory pairs by labels and roles, and `pytest suites/net --provider=inventory` end to end with two
real loopback sshd as the lab's client and server (test traffic on 127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.providers.base import Target, TargetUnavailable
from pytest_perfci.providers.inventory import InventoryError, InventoryProvider, load_inventory
from pytest_perfci.settings import Settings
from tests.sshd import SshdServer, sshd_available, start_sshd

ROOT = Path(__file__).parents[1]

LAB = """
[defaults]
user = "root"

[[hosts]]
name = "c1"
address = "10.0.0.5"
labels = ["spr", "pair-a"]
role = "client"

[[hosts]]
name = "plain"
address = "10.0.0.9"
labels = ["spr"]

[[hosts]]
name = "s-other"
address = "10.0.0.7"
labels = ["spr", "pair-b"]
role = "server"

[[hosts]]
name = "s1"
address = "[fd00::6]:2222"
labels = ["spr", "pair-a", "100g"]
role = "server"
test_address = "192.168.10.6"
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(LAB)
    return path


def test_servers_are_not_targets_and_pair_by_labels(lab: Path) -> None:
    inv = load_inventory(lab)
    provider = InventoryProvider(Settings(inventory=lab, label=("spr",), run_id="pair-unit"))
    assert [t.name for t in provider.targets()] == ["c1", "plain"]
    chosen = inv.select(["spr"])
    s1 = inv.server_for(inv.host("c1"), chosen)
    assert s1 is not None and s1.name == "s1"  # carries every label of c1 (pair-b's server does not)
    assert (inv.host("c1").test_address, s1.test_address) == ("10.0.0.5", "192.168.10.6")
    assert inv.host("s-other").test_address == "10.0.0.7"
    assert inv.server_for(inv.host("plain"), chosen) is not None  # "spr" alone: the first server with it
    only_servers = InventoryProvider(Settings(inventory=lab, label=("pair-b",), run_id="pair-unit"))
    assert [t.name for t in only_servers.targets()] == ["s-other"]  # nothing else selected: servers are targets


def test_no_server_for_the_labels_says_which_servers_exist(lab: Path) -> None:
    lonely = Target(name="c1", provider="inventory")
    narrowed = InventoryProvider(Settings(inventory=lab, label=("spr", "pair-b"), run_id="pair-unit"))
    with pytest.raises(TargetUnavailable) as exc:
        narrowed.pair(lonely)  # c1's labels: no selected server carries them (only s-other is selected)
    text = str(exc.value)
    assert text.startswith('no selected host with role = "server" carries all of c1\'s labels (spr, pair-a)')
    assert "s-other [spr,pair-b]" in text and "s1 [spr,pair-a,100g]" in text and "\n" not in text


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("role", '"router"', "role = 'router' is not allowed; use 'client' or 'server'"),
    ("test_address", '"10.0.0.6:5201"', "must be a host name or IP without a port"),
    ("test_ports", "[5201, 5201]", "must be [FIRST, LAST], 1 <= FIRST < LAST <= 65535"),
])
def test_bad_role_or_test_address_is_one_line(tmp_path: Path, field: str, value: str, expected: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(f'[[hosts]]\nname = "x"\naddress = "10.0.0.1"\nuser = "root"\n{field} = {value}\n')
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert str(exc.value).startswith(f"{path}: hosts[0] (x): ") and expected in str(exc.value), str(exc.value)


@pytest.fixture
def server_sshd(tmp_path: Path) -> Iterator[SshdServer]:
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path / "server-sshd")
    try:
        yield server
    finally:
        server.stop()


def test_net_suite_between_two_lab_hosts_over_ssh(tmp_path: Path, sshd: SshdServer, server_sshd: SshdServer) -> None:
    """Two sshd stand in for a lab client and server; suites/net runs iperf3 and sockperf between them
    over SSH (the test address is loopback), records samples, and unlocks both hosts."""
    lock_c, lock_s = tmp_path / "c.lock", tmp_path / "s.lock"
    first = free_pair()  # two free loopback ports: concurrent runs on one machine do not collide
    inv = tmp_path / "lab.toml"
    inv.write_text(f"""
[defaults]
user = "root"

[[hosts]]
name = "lab-client"
address = "{sshd.address}:{sshd.port}"
key = "{sshd.client_key}"
known_hosts = "{sshd.known_hosts}"
labels = ["net", "pair-a"]
role = "client"
lock_dir = "{lock_c}"

[[hosts]]
name = "lab-server"
address = "{server_sshd.address}:{server_sshd.port}"
key = "{server_sshd.client_key}"
known_hosts = "{server_sshd.known_hosts}"
labels = ["net", "pair-a"]
role = "server"
lock_dir = "{lock_s}"
test_ports = [{first}, {first + 1}]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites/net", "--provider=inventory",
         f"--perfci-inventory={inv}", "--perfci-label=net", "--perfci-net-seconds=1", "-rA",
         f"--perfci-results={tmp_path / 'out'}", "--perfci-run-id=lab-pair"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "3 passed" in out and "test_tcp_throughput[lab-client-4streams]" in out
    assert "lab-server]" not in out  # the server is no target of its own
    records = [json.loads(line) for line in (tmp_path / "out" / "lab-pair" / "results.ndjson").read_text().splitlines()]
    by_name = {r["name"]: r for r in records}
    assert by_name["net.tcp.throughput.1stream"]["unit"] == "Gbit/s" and by_name["net.tcp.rr.p99"]["unit"] == "us"
    assert by_name["net.tcp.throughput.1stream"]["metadata"]["link"].startswith(
        "lab pair lab-client (127.0.0.1) -> lab-server (127.0.0.1)")
    assert not lock_c.exists() and not lock_s.exists(), "a lab lock was left behind"
    assert by_name["net.tcp.throughput.1stream"]["metadata"]["port"] == first  # the lab's test_ports
    assert by_name["net.tcp.rr.p50"]["metadata"]["port"] == first + 1


def free_pair() -> int:
    """A port P with P and P+1 free on 127.0.0.1 right now."""
    import socket

    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")
