"""The resctrl prober, run as on a host (a subprocess through LocalHost), against a synthetic tree.

The tree is a temporary directory laid out like /sys/fs/resctrl in the kernel documentation's
"allocation example 1" (2 sockets, 4-bit CBM, min_bandwidth 10, bandwidth_gran 10, default group
L3:0=f;1=f) with L3_MON from "monitoring example 1"; /proc is a directory beside it. Group creation,
schemata writes (with the kernel's CBM rules and last_cmd_status messages) and removal all run in
the prober, the same code that runs on a real host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.checks import resctrl as r
from pytest_perfci.collect.probes import install_probe, installed_probe
from pytest_perfci.collect.resctrl import ProbeFailed, Prober
from pytest_perfci.hosts.local import LocalHost

PROBE = Path(__file__).parents[1] / "pytest_perfci" / "probes" / "resctrl_probe.py"
SAMPLES = Path(__file__).parent / "data" / "samples"

TREE = {
    "info/L3/cbm_mask": "f\n",
    "info/L3/min_cbm_bits": "1\n",
    "info/L3/num_closids": "16\n",
    "info/L3/shareable_bits": "0\n",
    "info/L3/sparse_masks": "0\n",
    "info/L3/bit_usage": "0=XXXX;1=XXXX\n",
    "info/MB/min_bandwidth": "10\n",
    "info/MB/bandwidth_gran": "10\n",
    "info/MB/delay_linear": "1\n",
    "info/MB/num_closids": "8\n",
    "info/L3_MON/mon_features": "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n",
    "info/L3_MON/num_rmids": "176\n",
    "info/last_cmd_status": "ok\n",
    "schemata": "L3:0=f;1=f\nMB:0=100;1=100\n",
    "cpus": "ff\n",
    "cpus_list": "0-7\n",
    "tasks": "1\n2\n",
    "mode": "shareable\n",
    "mon_data/mon_L3_00/llc_occupancy": "31234000\n",
    "mon_data/mon_L3_00/mbm_total_bytes": "Unavailable\n",
    "mon_data/mon_L3_00/mbm_local_bytes": "0\n",
    "mon_data/mon_L3_01/llc_occupancy": "14789000\n",
    "mon_data/mon_L3_01/mbm_total_bytes": "0\n",
    "mon_data/mon_L3_01/mbm_local_bytes": "0\n",
}


def build_tree(base: Path) -> tuple[Path, Path]:
    """(root, proc): a synthetic resctrl tree and a /proc with cpuinfo, filesystems and mounts."""
    root, proc = base / "resctrl", base / "proc"
    for rel, content in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    (root / "mon_groups").mkdir()
    (proc / "self").mkdir(parents=True)
    (proc / "cpuinfo").write_text((SAMPLES / "resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt").read_text())
    (proc / "filesystems").write_text("nodev\tsysfs\nnodev\tresctrl\n\text4\n")
    (proc / "self" / "mounts").write_text(f"resctrl {root} resctrl rw,relatime 0 0\n")
    return root, proc


@pytest.fixture
def prober(tmp_path: Path) -> Iterator[Prober]:
    host = LocalHost()
    root, proc = build_tree(tmp_path)
    with installed_probe(host, "resctrl_probe.py") as path:  # removed afterwards: no /tmp/perfci-probe.* left
        yield Prober(host, path, root=str(root), proc=str(proc), synthetic=True, python=sys.executable)


def test_gather_on_the_synthetic_tree_is_usable(prober: Prober) -> None:
    observation, doc = prober.gather()
    a = observation.availability
    assert a.usable and a.capabilities == ("l3_cat", "mba", "llc_occupancy", "mbm")
    assert a.line() == ("hardware capable (rdt_a cat_l3 cdp_l3 cqm cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local), "
                        "kernel supports resctrl, mounted and usable: L3 CAT (16 CLOSIDs, cbm 0xf), "
                        "L3_MON (llc_occupancy mbm_total_bytes mbm_local_bytes), MB (min 10, gran 10)")
    tree = observation.tree
    assert tree is not None and tree.cpus == frozenset(range(8)) and tree.schemata["MB"] == {0: "100", 1: "100"}
    assert tree.mon_data["mon_L3_00/mbm_total_bytes"].state == "unavailable"
    assert tree.mon_data["mon_L3_01/llc_occupancy"].value == 14789000
    assert doc["files"]["tasks"] == "2 tasks" and doc["mount"] is None and doc["unmount"] is None


def test_group_lifecycle_restores_the_state(prober: Prober) -> None:
    before = prober.snapshot()
    assert before["mounted"] and before["groups"] == []
    assert prober.mkgroup("perfci-1")["ok"] and prober.mkgroup("perfci-m", mon=True)["ok"]
    assert prober.snapshot()["groups"] == ["perfci-1", "mon_groups/perfci-m"]
    new = r.parse_schemata(Path(prober.root, "perfci-1", "schemata").read_text())
    assert new == {"L3": {0: "f", 1: "f"}, "MB": {0: "100", 1: "100"}}  # a new group gets every way
    # allocation example 1: p0 gets L3:0=3;1=c and MB 50 on both sockets
    ok = prober.write("perfci-1", "schemata", "L3:0=3;1=c\nMB:0=50;1=50")
    assert ok["ok"] and ok["last_cmd_status"] == "ok\n"
    assert r.parse_schemata(ok["readback"]) == {"L3": {0: "3", 1: "c"}, "MB": {0: "50", 1: "50"}}
    partial = prober.write("perfci-1", "schemata", "L3:1=8")
    assert r.parse_schemata(partial["readback"])["L3"] == {0: "3", 1: "8"}
    bad = prober.write("perfci-1", "schemata", "L3:0=5")
    assert not bad["ok"] and bad["error"].startswith("EINVAL")
    assert bad["last_cmd_status"] == "mask 5 has non-consecutive 1-bits\n"
    assert r.parse_schemata(bad["readback"])["L3"] == {0: "3", 1: "8"}  # rejected writes change nothing
    assert prober.rmgroup("perfci-1")["ok"] and prober.rmgroup("perfci-m", mon=True)["ok"]
    assert prober.snapshot() == before


def test_prober_refuses_foreign_groups_and_unmounted_roots(prober: Prober, tmp_path: Path) -> None:
    Path(prober.root, "theirs").mkdir()
    with pytest.raises(ProbeFailed, match="refusing to remove 'theirs': not a perfci group"):
        prober.rmgroup("theirs")
    with pytest.raises(ProbeFailed, match="group names must start with 'perfci-'"):
        prober.mkgroup("p0")
    real = Prober(prober.host, prober.path, root=str(tmp_path / "nothing"), proc="/proc", python=sys.executable)
    with pytest.raises(ProbeFailed, match="is not a mounted resctrl filesystem"):
        real.mkgroup("perfci-x")


def test_walk_and_bandwidth_workloads_join_the_group(prober: Prober) -> None:
    prober.mkgroup("perfci-w")
    walk = prober.walk("perfci-w", 0, 1 << 20, runs=2)
    assert walk["bytes"] == 1 << 20 and len(walk["misses"]) == 2
    assert walk["llc_occupancy"] == [0, 0]  # the synthetic group's counters read 0 on both domains
    if walk["misses"][0] is None:
        assert walk["miss_error"]  # no PMU (this VM): the reason travels with the result
    bw = prober.bandwidth("perfci-w", 0, 1 << 20, 0.2)
    assert bw["copies"] > 0 and bw["workload_mibps"] > 0 and bw["mbm_mibps"]["mbm_total_bytes"] == 0.0
    tasks = Path(prober.root, "perfci-w", "tasks").read_text().split()
    assert len(tasks) == 2  # each workload process wrote its own pid
    prober.rmgroup("perfci-w")


def test_gather_on_this_machine_mounts_nothing_it_cannot() -> None:
    proc = subprocess.run([sys.executable, str(PROBE), "gather", "--mount-if-needed"], capture_output=True,
                          text=True, check=False, timeout=60)
    doc = json.loads(proc.stdout)
    observation = r.judge_gathered(doc)
    if "resctrl" in (observation.filesystems or ()):
        pytest.skip("this machine registers resctrl")
    assert proc.returncode == 0 and doc["files"] is None and doc["mounted_before"] is False
    assert doc["mount"] == {"already": False, "error": "resctrl is not in /proc/filesystems",
                            "mounted_by_probe": False}
    assert not observation.availability.usable


def test_one_installer_copies_what_a_probe_needs_privately_and_removes_it() -> None:
    host = LocalHost()
    with installed_probe(host, "resctrl_probe.py") as path:
        where = Path(path).parent
        assert sorted(p.name for p in where.iterdir()) == ["pmc_reader.py", "resctrl_probe.py"]
        assert where.stat().st_mode & 0o777 == 0o700
    assert not where.exists()
    pmc = install_probe(host, "pmc_reader.py")
    try:
        assert [p.name for p in Path(pmc).parent.iterdir()] == ["pmc_reader.py"]
    finally:
        host.run(["rm", "-rf", str(Path(pmc).parent)])
    with pytest.raises(ValueError, match=r"^unknown probe 'x.py'; probes: pmc_reader.py, resctrl_probe.py, gpu_probe.py$"):
        install_probe(host, "x.py")
