"""Where a command really ran: one shell script gathers the raw text, a pure parser makes Facts.

One round trip per host (not one per fact) keeps SSH hosts cheap, and the pure parser is tested on
recorded /proc/cpuinfo files from real machines.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from pytest_perfci.models.arch import normalise_arch
from pytest_perfci.models.cpuinfo import CpuInfo, parse_cpuinfo
from pytest_perfci.models.preparation import parse as parse_preparation
from pytest_perfci.models.procfs import parse_filesystems

# Sections are separated by marker lines so that one command returns everything; every probe is
# allowed to fail (a minimal host may lack perf, systemd or DMI).
FACTS_SCRIPT = r"""
for s in \
  "uname:uname -srm" \
  "hostname:hostname 2>/dev/null || cat /proc/sys/kernel/hostname" \
  "os:cat /etc/os-release" \
  "cpuinfo:cat /proc/cpuinfo" \
  "nproc:nproc" \
  "perf:perf --version" \
  "paranoid:cat /proc/sys/kernel/perf_event_paranoid" \
  "pmus:ls /sys/bus/event_source/devices" \
  "virt:systemd-detect-virt --vm" \
  "dmi_vendor:cat /sys/class/dmi/id/sys_vendor" \
  "dmi_product:cat /sys/class/dmi/id/product_name" \
  "filesystems:cat /proc/filesystems" \
  "twin:cat /etc/perfci-twin" \
  "prepared:cat /etc/perfci/prepared /etc/perfci/prepared-late" ; do
  echo "@@perfci:${s%%:*}"
  sh -c "${s#*:}" 2>/dev/null
done
echo "@@perfci:end"
"""

# PMU device names under /sys/bus/event_source/devices that mean "a hardware core PMU is exposed".
_CORE_PMU = re.compile(r"^(cpu|cpu_core|cpu_atom|armv8_pmuv3.*|arm_cortex_.*|armv8_.*)$")


class Facts(BaseModel):
    """The truth about a host that every result carries, so numbers are never quoted without context."""

    model_config = ConfigDict(frozen=True)

    hostname: str = ""
    arch: str = "unknown"  # x86_64 | arm64
    kernel: str = ""
    os: str = ""
    cpu_vendor: str = "unknown"  # intel | amd | arm | unknown
    cpu_model: str = ""
    nproc: int = 0
    virtualised: bool | None = None
    hypervisor: str | None = None
    instance_type: str | None = None
    region: str | None = None
    ami: str | None = None
    # The QEMU machine when this host is a target twin (providers/qemu.py): its counts are architectural.
    twin: str | None = None
    perf_version: str | None = None
    perf_event_paranoid: int | None = None
    pmu_devices: tuple[str, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    filesystems: tuple[str, ...] = ()
    # Host preparation (prepare.script, on hosts this run created or --perfci-prepare): what it installed,
    # "perf: linux-perf (perf version 6.1.158)", and what it could not, "perf: apt: no package ... ".
    prepared: tuple[str, ...] = ()
    unprepared: tuple[str, ...] = ()

    @property
    def metal(self) -> bool:
        return self.virtualised is False

    @property
    def core_pmu(self) -> bool:
        """A hardware core PMU is registered with the kernel (absent in VMs without a vPMU)."""
        return any(_CORE_PMU.match(d) for d in self.pmu_devices)

    def has_flag(self, flag: str) -> bool:
        """Whole-word flag test: `rdt_a` must not match `rdtscp`."""
        return flag in self.cpu_flags

    @property
    def cpu(self) -> CpuInfo:
        """The CPU part of the facts in the shape the resctrl verdicts read (no second cpuinfo parse)."""
        return CpuInfo(arch=self.arch, vendor=self.cpu_vendor, model=self.cpu_model, flags=frozenset(self.cpu_flags),
                       hypervisor=self.virtualised if self.arch == "x86_64" else None)

    def summary(self) -> str:
        kind = {True: "VM", False: "metal", None: "virt?"}[self.virtualised]
        where = self.instance_type or self.hostname or "?"
        return f"{where} {self.arch} {kind} {self.cpu_model or self.cpu_vendor} kernel {self.kernel}"


def split_sections(text: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@perfci:"):
            if name is not None:
                sections[name] = "\n".join(lines).strip()
            name, lines = line[len("@@perfci:") :], []
        else:
            lines.append(line)
    return sections


def parse_facts(text: str, **known: str | None) -> Facts:
    """Facts from FACTS_SCRIPT output; `known` carries what the provider knows better (instance type, AMI)."""
    s = split_sections(text)
    uname = s.get("uname", "").split()
    kernel = uname[1] if len(uname) >= 2 else ""
    arch = normalise_arch(uname[-1] if uname else "")
    os_name = ""
    for line in s.get("os", "").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip().strip('"')
    cpu = parse_cpuinfo(s.get("cpuinfo", ""))
    virt = s.get("virt", "").strip() or None
    dmi_vendor = s.get("dmi_vendor", "").strip()
    dmi_product = s.get("dmi_product", "").strip()
    instance_type = known.get("instance_type")
    if not instance_type and dmi_vendor == "Amazon EC2" and re.match(r"^[a-z0-9-]+\.[a-z0-9-]+$", dmi_product):
        instance_type = dmi_product  # Nitro exposes the instance type as the DMI product name
    virtualised: bool | None
    if virt is not None and virt != "none":
        virtualised = True
    elif cpu.hypervisor is not None:
        virtualised = cpu.hypervisor
    elif virt == "none":
        virtualised = False
    elif instance_type:
        virtualised = ".metal" not in instance_type
    else:
        virtualised = None
    hypervisor = virt if virt and virt != "none" else ("unknown" if virtualised else None)
    twin = known.get("twin") or s.get("twin", "").strip() or None  # a target twin names itself (twins/guest.py)
    if twin:
        virtualised, hypervisor = True, "qemu-tcg"  # emulated, whatever the guest can detect
    perf = s.get("perf", "").strip()
    perf_version = perf.removeprefix("perf version ").strip() if perf.startswith("perf version") else None
    paranoid_text = s.get("paranoid", "").strip()
    nproc_text = s.get("nproc", "").strip()
    prep = parse_preparation("", s.get("prepared", ""))
    return Facts(
        hostname=s.get("hostname", "").strip(),
        arch=arch,
        kernel=kernel,
        os=os_name,
        cpu_vendor=cpu.vendor,
        cpu_model=cpu.model,
        nproc=int(nproc_text) if nproc_text.isdigit() else 0,
        virtualised=virtualised,
        hypervisor=hypervisor,
        instance_type=instance_type,
        region=known.get("region"),
        ami=known.get("ami"),
        twin=twin,
        perf_version=perf_version,
        perf_event_paranoid=int(paranoid_text) if re.fullmatch(r"-?\d+", paranoid_text) else None,
        pmu_devices=tuple(s.get("pmus", "").split()),
        cpu_flags=tuple(sorted(cpu.flags)),
        filesystems=parse_filesystems(s.get("filesystems", "")),
        prepared=prep.installed(),
        unprepared=tuple(f"{p.need}: {p.reason}" for p in prep.items if p.status in ("failed", "unsupported")),
    )
