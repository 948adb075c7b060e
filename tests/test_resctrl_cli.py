"""`perfci resctrl judge` on recorded files: the verdict line, parsed capabilities, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.cli import main
from tests.test_resctrl_probe import build_tree

SAMPLES = Path(__file__).parent / "data" / "samples"
C7I = str(SAMPLES / "resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    root, proc = build_tree(tmp_path)
    no_resctrl = tmp_path / "filesystems-without"
    no_resctrl.write_text("nodev\tsysfs\nnodev\tproc\n\text4\n")
    return {"tree": str(root), "fs": str(proc / "filesystems"), "nofs": str(no_resctrl)}


def test_metal_cpu_and_a_kernel_without_resctrl_exit_1(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resctrl", "judge", "--cpuinfo", C7I, "--filesystems", files["nofs"]]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "resctrl: unavailable (kernel lacks resctrl)"
    assert out[-1] == "hardware capable (cat_l3 cat_l2 cdp_l3 cdp_l2 mba), kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL)"
    assert "  cpu      intel x86_64: RDT/QoS flags cat_l3 cat_l2 cdp_l3 cdp_l2 mba (flag list truncated in this file)" in out


def test_a_usable_tree_exits_0_with_its_capabilities(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resctrl", "judge", "--cpuinfo", C7I, "--filesystems", files["fs"], "--tree", files["tree"]]) == 0
    out = capsys.readouterr().out
    assert "  capabilities: l3_cat mba llc_occupancy mbm" in out
    assert "  info/L3      num_closids=16, cbm_mask=0xf, min_cbm_bits=1, shareable_bits=0x0, sparse_masks=False" in out
    assert "  schemata MB: 0=100;1=100" in out


def test_json_document(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resctrl", "judge", "--tree", files["tree"], "--filesystems", files["fs"], "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["capabilities"] == ["l3_cat", "mba", "llc_occupancy", "mbm"]
    assert doc["verdict"]["hardware"]["phrase"] == "hardware capable (resctrl enumerates L3 L3_MON MB)"
    assert doc["tree"]["resources"]["L3_MON"]["num_rmids"] == 176


def test_arm64_is_not_applicable(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    graviton = str(SAMPLES / "pmc/cpuinfo/ec2-graviton3-c7g-head-cpuinfo.txt")
    assert main(["resctrl", "judge", "--cpuinfo", graviton, "--filesystems", files["nofs"]]) == 1
    assert capsys.readouterr().out.startswith("resctrl: not applicable (no MPAM resctrl)\n")


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resctrl", "judge", "--cpuinfo", str(tmp_path / "missing")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    assert main(["resctrl", "judge", "--tree", str(tmp_path / "missing")]) == 2
    assert main(["resctrl", "judge"]) == 2


@pytest.mark.parametrize("name", ["kvm-bugzilla-207551-xeon-bronze-3104-cpuinfo-mail-wrapped.txt",
                                  "netdev-2023-07-igc-ryzen5-3600-cpuinfo-quoted-wrapped.txt"])
def test_wrapped_cpuinfo_from_a_mail_is_hardware_capable(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14 class 4. Before: "no hardware support (no RDT/QoS cpu flags)" / "hardware unknown"."""
    main(["resctrl", "judge", "--cpuinfo", str(SAMPLES / "resctrl/cpuinfo" / name)])
    out = capsys.readouterr().out
    assert "hardware yes hardware capable (rdt_a cat_l3 cdp_l3 mba cqm cqm_llc cqm_occup_llc cqm_mbm_total " \
           "cqm_mbm_local)" in out
    assert "no hardware support" not in out
