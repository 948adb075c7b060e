"""The local topology for real: two network namespaces and a veth pair on this machine, made, used,
torn down by the cleanup engine, and reaped when a run died without tearing down. Needs root (the
framework's CI runs as root); traffic stays inside the namespaces the test created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.collect.net import background_server
from pytest_perfci.providers.netns import (
    NamespacePair,
    NetnsError,
    NetnsKind,
    list_namespaces,
    namespace_name,
    parse_name,
    veth_names,
)

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _ours(run_id: str) -> list[str]:
    return [n for n in list_namespaces() if (parse_name(n) or ("",))[0] == run_id]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def made(ledger: Ledger) -> Iterator[NamespacePair]:
    pair = NamespacePair("netns-selftest", ledger, progress=lambda _: None)
    try:
        yield pair
    finally:
        engine.teardown(Context(), ledger, "netns-selftest")


def test_names_split_back_and_fit_interface_limits() -> None:
    name = namespace_name("perfci-20261204-025429-40c36d", 4242, "server")
    assert parse_name(name) == ("perfci-20261204-025429-40c36d", "server")
    for foreign in ("perfci-x-client", "perfci_x_client", "perfci_x_12_router", "other_x_1_client", "perfci__1_client"):
        assert parse_name(foreign) is None, foreign
    client, server = veth_names("a" * 48, 4194304)
    assert len(client) <= 15 and len(server) <= 15 and client != server
    assert veth_names("r1", 1) != veth_names("r1", 2)  # two xdist workers of one run


def test_pair_is_two_namespaces_joined_by_a_veth(made: NamespacePair, ledger: Ledger) -> None:
    pair = made.create()
    assert made.create() is pair  # once per run
    assert set(_ours("netns-selftest")) == {made.client_ns, made.server_ns}
    assert pair.client.run("ip -o -4 addr show").stdout.count("10.231.0.1/30") == 1
    assert "10.231.0.2/30" in pair.server.run(["ip", "-o", "-4", "addr", "show"]).stdout
    root = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    assert "10.231.0." not in root  # the /30 exists only inside the two namespaces
    assert all(v not in root for v in veth_names("netns-selftest", made.pid))
    # The server listens in its namespace, the client reaches it across the veth.
    listen = ("import socket; s = socket.create_server(('10.231.0.2', 5209)); c, _ = s.accept(); "
              "c.sendall(c.recv(64).upper())")
    talk = ("import socket; c = socket.create_connection(('10.231.0.2', 5209), timeout=10); c.sendall(b'veth'); "
            "print(c.recv(64).decode())")
    with background_server(pair.server, [sys.executable, "-c", listen], 5209, bound_s=30):
        assert pair.client.run([sys.executable, "-c", talk], timeout=30).stdout.strip() == "VETH"
    assert pair.client.facts.hostname == pair.server.facts.hostname  # one machine, two network stacks
    created = [str(e.id) for e in ledger.outstanding("netns-selftest")]
    assert sorted(created) == sorted([made.client_ns, made.server_ns])


def test_a_server_that_dies_before_listening_is_one_line_with_its_words(made: NamespacePair) -> None:
    from pytest_perfci.collect.net import ServerNotListening

    pair = made.create()
    dying = ["sh", "-c", "echo address in use >&2; exit 3"]
    with pytest.raises(ServerNotListening) as exc, background_server(pair.server, dying, 5209, bound_s=30):
        pass
    assert str(exc.value) == "local-server: sh exited before listening on 5209: address in use"


def test_teardown_deletes_both_through_the_engine(made: NamespacePair, ledger: Ledger) -> None:
    made.create()
    report = engine.teardown(Context(), ledger, "netns-selftest")
    assert sorted(report.ids("deleted", "netns")) == sorted([made.client_ns, made.server_ns])
    assert _ours("netns-selftest") == [] and ledger.outstanding("netns-selftest") == []
    again = engine.teardown(Context(), ledger, "netns-selftest")  # idempotent
    assert again.outcomes == []


def test_a_name_in_use_is_refused_once_and_remembered(ledger: Ledger) -> None:
    first = NamespacePair("netns-inuse", ledger, progress=lambda _: None)
    try:
        first.create()
        second = NamespacePair("netns-inuse", Ledger(ledger.path.with_name("other.jsonl")))
        second.pid = first.pid  # the same process making the same run's pair twice
        second.client_ns, second.server_ns = first.client_ns, first.server_ns
        with pytest.raises(NetnsError, match=r"already exists: run id netns-inuse is in use") as exc:
            second.create()
        assert "\n" not in str(exc.value)
        with pytest.raises(NetnsError) as again:
            second.create()
        assert again.value is exc.value
        assert Ledger(ledger.path.with_name("other.jsonl")).outstanding() == []  # refused before any create
    finally:
        engine.teardown(Context(), ledger, "netns-inuse")
    assert _ours("netns-inuse") == []


def test_the_kind_never_lists_a_namespace_it_did_not_name(ledger: Ledger) -> None:
    foreign = "perfci-selftest-foreign"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        listed = {d.id for d in NetnsKind(Context()).describe(None)}
        assert foreign not in listed
        from pytest_perfci.cleanup.model import Orphan

        out = NetnsKind(Context()).delete([Orphan(kind="netns", id=foreign, reason="test")])
        assert out[0].status == "failed" and "not a name perfci gives" in out[0].detail
        assert foreign in list_namespaces()
        assert NetnsKind(Context(ec2=object())).describe(None) == []  # a cloud survey lists none
    finally:
        subprocess.run(["ip", "netns", "delete", foreign], check=False)


LEAVE_BEHIND = """
import os, sys
from pathlib import Path
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.netns import NamespacePair
NamespacePair("netns-leftover", Ledger(Path(sys.argv[1]))).create()
os._exit(0)  # dies without teardown, as a SIGKILLed run would
"""


def test_perfci_reap_removes_a_pair_left_by_a_dead_run(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    subprocess.run([sys.executable, "-c", LEAVE_BEHIND, str(path)], check=True, timeout=60, cwd=ROOT)
    left = _ours("netns-leftover")
    try:
        assert len(left) == 2
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        cmd = [sys.executable, "-m", "pytest_perfci.cli", "reap", "--ledger", str(path)]
        dry = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert all(n in dry.stdout for n in left) and "netns" in dry.stdout and len(_ours("netns-leftover")) == 2
        done = subprocess.run([*cmd, "--yes", "--json"], capture_output=True, text=True, timeout=60, env=env,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        doc = json.loads(done.stdout)
        assert sorted(o["id"] for o in doc["outcomes"] if o["status"] == "deleted") == sorted(left)
        assert doc["regions"] == ["local"]
        assert _ours("netns-leftover") == [] and Ledger(path).outstanding() == []
    finally:
        for name in _ours("netns-leftover"):
            subprocess.run(["ip", "netns", "delete", name], check=False)


def test_net_suite_on_the_netns_pair(tmp_path: Path) -> None:
    """`pytest suites/net` on this machine: the embedded default measures between two namespaces,
    records Gbit/s and µs samples, and leaves no namespace behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/net", "-rA", "-p", "no:cacheprovider", "--perfci-net-seconds=1",
         f"--perfci-results={tmp_path}", "--perfci-run-id=net-selftest"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "3 passed" in out
    assert "veth pv" in out and "deleted network namespace perfci_net-selftest_" in out
    lines = (tmp_path / "net-selftest" / "results.ndjson").read_text().splitlines()
    samples = {r["name"]: r for r in map(json.loads, lines)}
    assert set(samples) == {"net.tcp.throughput.1stream", "net.tcp.throughput.4streams", "net.tcp.rr.p50",
                            "net.tcp.rr.p99"}
    assert {samples[n]["unit"] for n in samples} == {"Gbit/s", "us"}
    one = samples["net.tcp.throughput.1stream"]
    assert one["value"] > 0 and one["direction"] == "higher" and one["metadata"]["status"] == "not-advertised"
    assert "veth" in one["metadata"]["link"]
    assert 0 < samples["net.tcp.rr.p50"]["value"] <= samples["net.tcp.rr.p99"]["value"]
    assert _ours("net-selftest") == []
    assert Ledger(tmp_path / "ledger.jsonl").outstanding() == []


def test_net_suite_fails_a_throughput_regression_against_history(tmp_path: Path) -> None:
    """History judges the suite's samples: five earlier runs of this machine at 10 Tbit/s make today's
    veth throughput a regression, and the test fails saying so (the measurement itself passed)."""
    from pytest_perfci.hosts.local import LocalHost
    from pytest_perfci.results.model import Infrastructure, ResultRecord

    history = tmp_path / "history"
    history.mkdir()
    where = Infrastructure(provider="local", target="local", hostname=LocalHost().facts.hostname)
    with (history / "earlier.ndjson").open("w") as fh:
        for i in range(5):
            fh.write(ResultRecord(name="net.tcp.throughput.1stream", value=10000.0 + i, unit="Gbit/s", verdict="pass",
                                  direction="higher", run_id=f"earlier-{i}", infrastructure=where).line() + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/net", "-k", "1stream", "-rA", "-p", "no:cacheprovider",
         "--perfci-net-seconds=1", f"--perfci-results={tmp_path / 'out'}", "--perfci-run-id=net-history",
         f"--perfci-history={history}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed" in out and "regression: net.tcp.throughput.1stream" in out, out
    assert _ours("net-history") == []
