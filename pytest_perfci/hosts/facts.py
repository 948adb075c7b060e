"""Where a command really ran: one shell script gathers the raw text, a pure parser makes Facts.

One round trip per host (not one per fact) keeps SSH hosts cheap, and the pure parser is tested on
recorded /proc/cpuinfo files from real machines.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

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
  "filesystems:cat /proc/filesystems" ; do
  echo "@@perfci:${s%%:*}"
  sh -c "${s#*:}" 2>/dev/null
done
echo "@@perfci:end"
"""

# Arm Ltd. part numbers seen on EC2 (Graviton generations); the rest stays "part 0x...".
_ARM_PARTS = {
    "0xd0c": "Neoverse-N1 (Graviton2)",
    "0xd40": "Neoverse-V1 (Graviton3)",
    "0xd4f": "Neoverse-V2 (Graviton4)",
    "0xd0b": "Cortex-A76",
    "0xd08": "Cortex-A72",
}
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
    perf_version: str | None = None
    perf_event_paranoid: int | None = None
    pmu_devices: tuple[str, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    filesystems: tuple[str, ...] = ()

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


def normalise_arch(machine: str) -> str:
    m = machine.strip().lower()
    return {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(m, m or "unknown")


def parse_cpuinfo(text: str) -> tuple[str, str, tuple[str, ...], bool | None]:
    """Vendor, model, flags and the hypervisor bit from the first processor block of /proc/cpuinfo.

    x86 has `flags` and a `hypervisor` flag in guests; arm64 has `Features` and no such bit, so
    virtualisation is unknown (None) from cpuinfo alone.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = tuple((fields.get("flags") or fields.get("features") or "").split())
    vendor_id = fields.get("vendor_id", "")
    if vendor_id == "GenuineIntel":
        vendor = "intel"
    elif vendor_id in ("AuthenticAMD", "HygonGenuine"):
        vendor = "amd"
    elif fields.get("cpu implementer") == "0x41":
        vendor = "arm"
    else:
        vendor = "unknown"
    model = fields.get("model name", "")
    if not model and "cpu part" in fields:
        part = fields["cpu part"].lower()
        model = _ARM_PARTS.get(part, f"part {part}")
    hypervisor: bool | None = ("hypervisor" in flags) if "flags" in fields else None
    return vendor, model, flags, hypervisor


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
    vendor, model, flags, hv_flag = parse_cpuinfo(s.get("cpuinfo", ""))
    virt = s.get("virt", "").strip() or None
    dmi_vendor = s.get("dmi_vendor", "").strip()
    dmi_product = s.get("dmi_product", "").strip()
    instance_type = known.get("instance_type")
    if not instance_type and dmi_vendor == "Amazon EC2" and re.match(r"^[a-z0-9-]+\.[a-z0-9-]+$", dmi_product):
        instance_type = dmi_product  # Nitro exposes the instance type as the DMI product name
    virtualised: bool | None
    if virt is not None and virt != "none":
        virtualised = True
    elif hv_flag is not None:
        virtualised = hv_flag
    elif virt == "none":
        virtualised = False
    elif instance_type:
        virtualised = ".metal" not in instance_type
    else:
        virtualised = None
    hypervisor = virt if virt and virt != "none" else ("unknown" if virtualised else None)
    perf = s.get("perf", "").strip()
    perf_version = perf.removeprefix("perf version ").strip() if perf.startswith("perf version") else None
    paranoid_text = s.get("paranoid", "").strip()
    nproc_text = s.get("nproc", "").strip()
    filesystems = tuple(line.split()[-1] for line in s.get("filesystems", "").splitlines() if line.strip())
    return Facts(
        hostname=s.get("hostname", "").strip(),
        arch=arch,
        kernel=kernel,
        os=os_name,
        cpu_vendor=vendor,
        cpu_model=model,
        nproc=int(nproc_text) if nproc_text.isdigit() else 0,
        virtualised=virtualised,
        hypervisor=hypervisor,
        instance_type=instance_type,
        region=known.get("region"),
        ami=known.get("ami"),
        perf_version=perf_version,
        perf_event_paranoid=int(paranoid_text) if re.fullmatch(r"-?\d+", paranoid_text) else None,
        pmu_devices=tuple(s.get("pmus", "").split()),
        cpu_flags=flags,
        filesystems=filesystems,
    )
