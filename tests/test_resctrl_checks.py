"""checks.resctrl on the recorded samples in tests/data/samples/resctrl (sources in its README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_perfci.checks import resctrl as r
from pytest_perfci.models.cpuinfo import parse_cpuinfo
from pytest_perfci.models.procfs import parse_filesystems

SAMPLES = Path(__file__).parent / "data" / "samples"
RESCTRL = SAMPLES / "resctrl"


def text(rel: str) -> str:
    return (SAMPLES / rel).read_text()


def doc_section(title: str) -> str:
    """One `=== title` section of the kernel-doc transcripts."""
    body = text("resctrl/kernel-doc-examples/resctrl-rst-transcripts.txt")
    for part in body.split("\n=== ")[1:]:
        head, _, rest = part.partition("\n")
        if head.strip() == title:
            return rest
    raise KeyError(title)


def outputs(section: str, command: str) -> list[str]:
    """The output blocks printed after each `# COMMAND` line of a transcript section."""
    blocks, current = [], None
    for line in section.splitlines():
        if line.startswith(("# ", "-sh:", "bash:", "$ ")):
            if current is not None:
                blocks.append("\n".join(current) + "\n")
            current = [] if line == f"# {command}" else None
        elif current is not None:
            current.append(line)
    if current is not None:
        blocks.append("\n".join(current) + "\n")
    return blocks


# --- cpu flags ---------------------------------------------------------------------------------------


def test_c7i_metal_lscpu_flags_whole_word_through_the_wrapping() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt"))
    assert (cpu.arch, cpu.vendor, cpu.source, cpu.hypervisor) == ("x86_64", "intel", "lscpu", False)
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8488C"
    assert cpu.rdt == ("cat_l3", "cat_l2", "cdp_l3", "cdp_l2", "mba")
    assert cpu.has("rdtscp") and not cpu.has("rdt_a")  # whole words; rdt_a is past the truncation
    assert cpu.truncated and cpu.rdt_capable


def test_c7a_metal_amd_flags_and_the_lscpu_wrap_limit() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/ec2-c7a.metal-48xl-lscpu-excerpt.txt"))
    assert (cpu.vendor, cpu.rdt) == ("amd", ("cat_l3", "cdp_l3", "mba"))
    assert cpu.model == "AMD EPYC 9R14 96-Core Processor"
    # lscpu split "perfmon_v2" over two lines; the break is unmarked, so only RDT names are rejoined.
    assert cpu.has("perfmon_v") and not cpu.has("perfmon_v2")


def test_broadwell_flags_line_has_monitoring_but_no_mba() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt"))
    assert cpu.rdt == ("rdt_a", "cat_l3", "cdp_l3", "cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total",
                       "cqm_mbm_local")
    assert not cpu.has("mba") and cpu.has("rdtscp") and cpu.arch == "x86_64"


def test_cascade_lake_truncated_cpuinfo() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/intel-cmt-cat-108-bare-metal-xeon-gold-6252-truncated.txt"))
    assert (cpu.vendor, cpu.model) == ("intel", "Intel(R) Xeon(R) Gold 6252 CPU @ 2.10GHz")
    assert cpu.rdt == ("rdt_a", "cat_l3", "cdp_l3", "mba", "cqm") and cpu.truncated


def test_vm_and_arm64_cpuinfo() -> None:
    vm = parse_cpuinfo(text("pmc/cpuinfo/ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt"))
    assert vm.hypervisor is True and vm.rdt == () and vm.has("perfctr_core")
    arm = parse_cpuinfo(text("pmc/cpuinfo/ec2-graviton3-c7g-head-cpuinfo.txt"))
    assert (arm.arch, arm.vendor, arm.hypervisor, arm.rdt) == ("arm64", "arm", None, ())


# --- verdicts ---------------------------------------------------------------------------------------

NO_RESCTRL = ("sysfs", "proc", "ext4", "xfs")


def test_capable_metal_with_a_kernel_built_without_resctrl() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt"))
    a = r.judge_availability(cpu, NO_RESCTRL)
    assert a.line() == "hardware capable (cat_l3 cat_l2 cdp_l3 cdp_l2 mba), kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL)"
    assert (a.status, a.reason, a.hardware.ok, a.kernel.ok) == (r.Status.UNAVAILABLE, r.Reason.KERNEL_LACKS, True, False)
    with_config = r.judge_availability(cpu, NO_RESCTRL, kernel_config={"CONFIG_X86_CPU_RESCTRL": "n"})
    assert with_config.kernel.phrase == "kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL is not set)"


def test_capable_metal_with_resctrl_registered_but_not_mounted() -> None:
    cpu = parse_cpuinfo(text("resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt"))
    a = r.judge_availability(cpu, (*NO_RESCTRL, "resctrl"))
    assert a.reason is r.Reason.NOT_MOUNTED and a.line().endswith("kernel supports resctrl, not mounted")
    failed = r.judge_availability(cpu, (*NO_RESCTRL, "resctrl"), mount_error="mount point does not exist.")
    assert failed.reason is r.Reason.MOUNT_FAILED and "mount failed (mount point does not exist.)" in failed.line()


def test_vm_without_rdt_is_no_hardware() -> None:
    cpu = parse_cpuinfo(text("pmc/cpuinfo/ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt"))
    a = r.judge_availability(cpu, NO_RESCTRL)
    assert a.reason is r.Reason.NO_HARDWARE
    assert a.line() == ("no hardware support (no RDT/QoS cpu flags; virtualised: the hypervisor does not expose it), "
                        "kernel lists no resctrl filesystem")


@pytest.mark.parametrize("name", ["ec2-graviton3-c7g-head-cpuinfo.txt",
                                  "ec2-graviton2-c6g-and-graviton3-c7g-xlarge-excerpts.txt"])
def test_arm64_is_not_applicable_unless_the_kernel_lists_resctrl(name: str) -> None:
    cpu = parse_cpuinfo(text(f"pmc/cpuinfo/{name}"))
    a = r.judge_availability(cpu, NO_RESCTRL)
    assert a.status is r.Status.NOT_APPLICABLE and a.line().startswith("not applicable (no MPAM resctrl)")
    listed = r.judge_availability(cpu, (*NO_RESCTRL, "resctrl"))
    assert listed.status is r.Status.UNAVAILABLE and listed.reason is r.Reason.NOT_MOUNTED


def test_this_machine_from_its_own_files() -> None:
    cpu = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    fs = parse_filesystems(Path("/proc/filesystems").read_text())
    if "resctrl" in fs or cpu.rdt:
        pytest.skip("this machine offers RDT/resctrl; the recorded-VM expectations below do not apply")
    a = r.judge_availability(cpu, fs)
    assert not a.usable and a.reason is r.Reason.NO_HARDWARE
    assert a.kernel.phrase == "kernel lists no resctrl filesystem"


def test_kernel_config_lines() -> None:
    assert r.parse_kernel_config("# CONFIG_X86_CPU_RESCTRL is not set\n") == {"CONFIG_X86_CPU_RESCTRL": "n"}
    pqos = text("resctrl/public/intel-cmt-cat-143-pqos-d-capability-tree.txt")
    assert r.parse_kernel_config(pqos) == {"CONFIG_INTEL_RDT": "y"}


# --- the tree ---------------------------------------------------------------------------------------


def test_mon_features_with_and_without_bmec() -> None:
    plain = outputs(doc_section("info/L3_MON/mon_features (no BMEC)"), "cat /sys/fs/resctrl/info/L3_MON/mon_features")
    bmec = outputs(doc_section("info/L3_MON/mon_features (BMEC-capable AMD)"),
                   "cat /sys/fs/resctrl/info/L3_MON/mon_features")
    a = r.parse_resource_info("L3_MON", {"mon_features": plain[0]})
    b = r.parse_resource_info("L3_MON", {"mon_features": bmec[0]})
    assert a.mon_features == ("llc_occupancy", "mbm_total_bytes", "mbm_local_bytes") and a.kind == "monitor"
    assert "mbm_total_bytes_config" in b.mon_features and len(b.mon_features) == 5
    real = text("resctrl/public/intel-cmt-cat-73-mon_features.txt").split("\n\n")[0].splitlines()[2:]
    assert r.parse_resource_info("L3_MON", {"mon_features": "\n".join(real)}).mon_features == a.mon_features


def test_cdp_schemata_partial_write_and_readback() -> None:
    reads = outputs(doc_section("schemata with CDP (L3DATA/L3CODE); writes only need the changed entries"),
                    "cat schemata")
    before, after = (r.parse_schemata(x) for x in reads)
    assert set(before) == {"L3DATA", "L3CODE"} and before["L3DATA"] == dict.fromkeys(range(4), "fffff")
    written = r.parse_schemata("L3DATA:2=3c0;")
    assert written == {"L3DATA": {2: "3c0"}}
    assert after["L3DATA"] == {**before["L3DATA"], **written["L3DATA"]} and after["L3CODE"] == before["L3CODE"]
    assert r.cbm_value(after["L3DATA"][2]) == 0x3C0 and r.is_contiguous(0x3C0)


def test_amd_space_padded_mb_and_smba() -> None:
    mb = outputs(doc_section("schemata on AMD (MB in multiples of 1/8 GB/s; NOTE right-aligned, space-padded values)"),
                 "cat schemata")
    after = r.parse_schemata(mb[1])
    assert {d: r.bandwidth_value(v) for d, v in after["MB"].items()} == {0: 2048, 1: 16, 2: 2048, 3: 2048}
    assert after["L3"][3] == "ffff"
    smba = r.parse_schemata(outputs(doc_section("schemata on AMD with SMBA (resource names right-aligned)"),
                                    "cat schemata")[1])
    assert list(smba) == ["SMBA", "MB", "L3"] and r.bandwidth_value(smba["SMBA"][1]) == 64


def test_exclusive_group_listing_and_bit_usage() -> None:
    section = doc_section("allocation example 4 (exclusive mode, L2 CAT, 8-bit CBM, 2 L2 instances)")
    grep = {ln.split(":", 1)[0]: ln.split(":", 1)[1] for ln in section.splitlines() if ln.startswith(("p0/", "p1/"))}
    assert r.parse_schemata(grep["p0/schemata"]) == {"L2": {0: "03", 1: "03"}}
    assert r.parse_cpu_bitmap(grep["p0/cpus"]) == frozenset()
    assert grep["p0/mode"] == "exclusive" and grep["p1/mode"] == "shareable"
    usage = outputs(section, "cat info/L2/bit_usage")[0].strip()
    assert r.parse_resource_info("L2", {"bit_usage": usage, "cbm_mask": "ff"}).bit_usage == "0=SSSSSSEE;1=SSSSSSEE"
    statuses = [r.parse_last_cmd_status(s)[0] for s in outputs(section, "cat info/last_cmd_status")]
    assert statuses == [r.CmdStatus.OVERLAPS, r.CmdStatus.EXCLUSIVE_OVERLAP]


def test_noncontiguous_mask_status_and_validation() -> None:
    section = doc_section("info/last_cmd_status after a rejected write (Intel contiguous-CBM rule)")
    status, msg = r.parse_last_cmd_status(outputs(section, "cat info/last_cmd_status")[0])
    assert status is r.CmdStatus.NONCONTIGUOUS and msg == "mask f7 has non-consecutive 1-bits"
    intel = r.ResourceInfo(name="L3", cbm_mask=0xFFFFF, min_cbm_bits=1, sparse_masks=False)
    assert r.cbm_problem(intel, 0xF7) == "mask f7 has non-consecutive 1-bits"
    assert r.cbm_problem(intel.model_copy(update={"sparse_masks": True}), 0xF7) is None


def test_cpus_bitmap_with_commas_every_32_bits() -> None:
    cpus = r.parse_cpu_bitmap("F0")  # allocation example 3: `echo F0 > p0/cpus`
    assert cpus == frozenset({4, 5, 6, 7})
    wide = r.parse_cpu_bitmap("ff,00000000,0000000f")
    assert wide == frozenset({0, 1, 2, 3, *range(64, 72)})
    assert r.format_cpu_bitmap(wide, 72) == "ff,00000000,0000000f"
    assert r.parse_cpu_list("0-3,64-71") == wide


def test_mon_data_values_including_unavailable_and_error() -> None:
    section = doc_section("monitoring example 1 (2 sockets; values in bytes)")
    values = [r.parse_mon_value(o) for o in outputs(section, "cat m11/mon_data/mon_L3_00/llc_occupancy")]
    assert values[0] == r.MonValue(state="ok", value=16234000, raw="16234000")
    assert r.parse_mon_value("Unavailable\n").state == "unavailable"
    assert r.parse_mon_value("Error\n") == r.MonValue(state="error", raw="Error")


def test_collector_checker_values_drive_the_cat_sweep() -> None:
    out = text("resctrl/public/unvariance-collector-93-resctrl-checker-output.txt")
    l3 = re.search(r"L3 CAT Details:\n.*unified:\{cbmMask:(\d+) minCbmBits:(\d+) shareableBits:(\d+)\}", out)
    mba = re.search(r"bandwidthGran:(\d+) delayLinear:(\d+) minBandwidth:(\d+)", out)
    assert l3 and mba
    info = r.parse_resource_info("L3", {"cbm_mask": f"{int(l3[1]):x}", "min_cbm_bits": l3[2],
                                        "shareable_bits": f"{int(l3[3]):x}"})
    assert (info.cbm_mask, info.shareable_bits, info.cbm_bits) == (0x7FFF, 0x6000, 15)
    assert r.exclusive_block(info) == (0, 13)  # bits 13-14 are shared with other agents
    masks = r.cat_masks(info)
    assert masks == [0x3F, 0x1F, 0xF, 0x7, 0x3, 0x1] and not any(m & info.shareable_bits for m in masks)
    mb = r.parse_resource_info("MB", {"bandwidth_gran": mba[1], "delay_linear": mba[2], "min_bandwidth": mba[3]})
    assert mb.delay_linear and r.mba_sweep(mb) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


# --- the kernel selftests' criteria, replayed on their own recorded output ----------------------------

TAPS = {
    "rc1": "resctrl/selftests/resctrl_tests-6.18-rc1-busy-system-cmt-fail.tap",
    "rc3": "resctrl/selftests/resctrl_tests-6.18-rc3-quiet-system-all-pass.tap",
    "6.4": "resctrl/selftests/resctrl_tests-6.4-rc2-xeon-gold-6254-old-cat-fail.tap",
}


def test_tap_totals_and_cases() -> None:
    rc1 = r.parse_selftest_tap(text(TAPS["rc1"]))
    assert rc1.totals == {"pass": 4, "fail": 1, "xfail": 0, "xpass": 0, "skip": 1, "error": 0}
    assert [(c.name, c.ok) for c in rc1.cases[:5]] == [("MBM: test", True), ("MBA: test", True),
                                                      ("CMT: test", False), ("L3_CAT: test", True),
                                                      ("L3_NONCONT_CAT: test", True)]
    assert rc1.cases[5].skip
    old = r.parse_selftest_tap(text(TAPS["6.4"]))  # nested under kselftest's "# " prefix
    assert [c.ok for c in old.cases] == [True, True, True, False] and old.totals["fail"] == 1


@pytest.mark.parametrize(("run", "ok", "percent"), [("rc1", False, 24), ("rc3", True, 9), ("6.4", True, 10)])
def test_cmt_rule_reproduces_the_kernel_verdict(run: str, ok: bool, percent: int) -> None:
    case = r.parse_selftest_tap(text(TAPS[run])).case("CMT")
    nums = r.selftest_numbers(case)
    effect = r.judge_cmt(nums["Average LLC val"][0], nums["Cache span (bytes)"][0])
    assert effect.ok is ok is case.ok
    assert f"diff {percent}%" in effect.detail and nums["Percent diff"] == [percent]


@pytest.mark.parametrize("run", ["rc1", "rc3"])
def test_cat_rule_reproduces_the_kernel_percent_diffs(run: str) -> None:
    case = r.parse_selftest_tap(text(TAPS[run])).case("L3_CAT")
    nums = r.selftest_numbers(case)
    points = list(zip((int(b) for b in nums["Number of bits"]), nums["Average LLC val"], strict=True))
    effect = r.judge_cat_sweep(points)
    assert effect.ok and case.ok
    ours = [float(re.search(r"\(\+([\d.]+)%", s)[1]) for s in effect.steps]  # type: ignore[index]
    assert ours == nums["Percent diff"]
    needs = [float(re.search(r"need > ([\d.]+)%", s)[1]) for s in effect.steps]  # type: ignore[index]
    assert needs == [2.0, 1.0, 0.0]  # the "changed more than" thresholds the kernel printed
    assert r.selftest_schemata_written(case)[:2] == ["L3:0=1f0", "L3:0=f"]


def test_cat_rule_fails_when_fewer_ways_do_not_raise_misses() -> None:
    effect = r.judge_cat_sweep([(4, 71434), (3, 71500), (2, 170978)])
    assert not effect.ok and "FAIL" in effect.steps[0] and "FAIL" not in effect.steps[1]
    assert r.judge_cat_sweep([(4, 71434), (3, 71500)], enforce=False).ok  # AMD: reported, not enforced


@pytest.mark.parametrize("run", ["rc1", "rc3", "6.4"])
def test_mbm_mba_pairs_reproduce_the_kernel_diffs(run: str) -> None:
    parsed = r.parse_selftest_tap(text(TAPS[run]))
    for name in ("MBM", "MBA"):
        nums = r.selftest_numbers(parsed.case(name))
        for imc, resc, printed in zip(nums["avg_bw_imc"], nums["avg_bw_resc"], nums["avg_diff_per"], strict=True):
            effect = r.judge_bandwidth_pair(resc, imc)
            assert effect.ok and f"diff {int(printed)}%" in effect.detail


@pytest.mark.parametrize("run", ["rc1", "rc3", "6.4"])
def test_mba_trend_on_recorded_sweeps(run: str) -> None:
    case = r.parse_selftest_tap(text(TAPS[run])).case("MBA")
    throttles = [int(s.split("=")[1]) for s in r.selftest_schemata_written(case)]
    nums = r.selftest_numbers(case)
    effect = r.judge_mba_trend(list(zip(throttles, nums["avg_bw_resc"], strict=True)))
    assert effect.ok, effect.detail
    assert effect.detail.startswith("throttle 10 gives")
    flat = r.judge_mba_trend([(t, 6400.0) for t in throttles])
    assert not flat.ok and flat.detail.startswith("no throttling effect")
    falling = r.judge_mba_trend([(10, 2000.0), (50, 6400.0), (100, 3000.0)])
    assert not falling.ok and "FELL" in falling.detail
