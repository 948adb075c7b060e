"""Facts parsing on recorded /proc/cpuinfo of real machines, and on this machine."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.models.cpuinfo import parse_cpuinfo
from pytest_perfci.models.facts import parse_facts


def _facts_text(cpuinfo: str, uname: str = "Linux 6.1.0 x86_64", **extra: str) -> str:
    sections = {"uname": uname, "cpuinfo": cpuinfo, **extra}
    return "".join(f"@@perfci:{k}\n{v}\n" for k, v in sections.items()) + "@@perfci:end\n"


def test_firecracker_amd_vm(samples: Path) -> None:
    base = samples / "pmc" / "local-firecracker-amd-vm-nopmu"
    text = _facts_text(
        (base / "proc-cpuinfo-cpu0.txt").read_text(),
        uname=f"Linux {(base / 'uname-r.txt').read_text().strip()} x86_64",
        perf=(base / "perf-version.stdout").read_text(),
        paranoid=(base / "perf_event_paranoid.txt").read_text(),
        pmus=(base / "sys-bus-event_source-devices.txt").read_text(),
    )
    facts = parse_facts(text)
    assert (facts.cpu_vendor, facts.cpu_model, facts.arch) == ("amd", "AMD EPYC", "x86_64")
    assert facts.kernel == "6.18.44-fc-v669"
    assert facts.virtualised is True and facts.metal is False and facts.hypervisor == "unknown"
    assert facts.perf_version == "6.1.187" and facts.perf_event_paranoid == 2
    assert facts.pmu_devices == ("breakpoint", "msr", "software", "tracepoint", "uprobe")
    assert facts.core_pmu is False
    assert facts.has_flag("rdtscp") and not facts.has_flag("rdt_a")


def test_graviton3_features_and_part(samples: Path) -> None:
    text = (samples / "pmc" / "cpuinfo" / "ec2-graviton3-c7g-head-cpuinfo.txt").read_text()
    cpu = parse_cpuinfo(text)
    assert (cpu.vendor, cpu.model) == ("arm", "Neoverse-V1 (Graviton3)")
    assert "sve" in cpu.flags and "i8mm" in cpu.flags
    assert cpu.hypervisor is None  # arm64 cpuinfo cannot say; DMI or systemd-detect-virt must


def test_amd_genoa_vm_has_hypervisor_and_vpmu_flags(samples: Path) -> None:
    text = (samples / "pmc" / "cpuinfo" / "ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt").read_text()
    cpu = parse_cpuinfo(text)
    assert cpu.vendor == "amd" and "EPYC 9R14" in cpu.model
    assert cpu.hypervisor is True and "perfctr_core" in cpu.flags and "perfmon_v2" in cpu.flags
    assert not {"cat_l3", "mba", "rdt_a"} & set(cpu.flags)


def test_ec2_dmi_gives_instance_type_and_metal() -> None:
    text = _facts_text(
        "processor : 0\nCPU implementer : 0x41\nCPU part : 0xd40\nFeatures : fp asimd\n",
        uname="Linux 6.8.0-aws aarch64",
        virt="none",
        dmi_vendor="Amazon EC2",
        dmi_product="c7g.metal",
    )
    facts = parse_facts(text, region="us-east-1", ami="ami-0123")
    assert (facts.arch, facts.instance_type, facts.metal) == ("arm64", "c7g.metal", True)
    assert (facts.region, facts.ami) == ("us-east-1", "ami-0123")


def test_provider_known_instance_type_wins_over_dmi() -> None:
    text = _facts_text("flags : fpu hypervisor\n", virt="kvm", dmi_vendor="Amazon EC2", dmi_product="m7i.large")
    facts = parse_facts(text, instance_type="m7i.2xlarge")
    assert facts.instance_type == "m7i.2xlarge" and facts.hypervisor == "kvm"


def test_missing_everything_is_unknown_not_a_crash() -> None:
    facts = parse_facts("@@perfci:end\n")
    assert (facts.arch, facts.virtualised, facts.perf_version, facts.nproc) == ("unknown", None, None, 0)


@pytest.mark.skipif(platform.system() != "Linux", reason="facts script reads Linux /proc")
def test_this_machine() -> None:
    facts = LocalHost().facts
    assert facts.kernel == platform.release()
    assert facts.arch == {"aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert facts.nproc >= 1 and facts.hostname
