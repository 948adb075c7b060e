"""The machines a twin can be: pure data, validated before anything is built or booted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Machine(BaseModel):
    """One QEMU machine kind: which emulator, which CPU flags, which guest image architecture."""

    model_config = ConfigDict(frozen=True)

    name: str
    arch: str                 # Debian architecture of the guest image: arm64 | amd64
    qemu: str                 # emulator binary
    apt_package: str          # the Debian package that provides it (named in "missing qemu")
    args: tuple[str, ...]     # machine/CPU arguments
    console: str              # kernel console device
    net_device: str           # virtio NIC model for this machine
    about: str
    # False: the image ships no perf but a file: apt repository holding linux-perf (with apt and dpkg),
    # so host preparation (perfci_needs("perf"), --perfci-prepare) really installs it in the guest.
    perf: bool = True


# pauth-impdef: QEMU's cheap pointer-authentication hash instead of QARMA (boot 55 s -> 12 s here).
# icount shift=0: one instruction = one virtual ns, so PMUv3 counts instructions exactly and
# cycles == instructions (CPI exactly 1.0). Without -icount QEMU's PMUv3 cannot count instructions
# (ENOENT) but still counts cycles.
_ARM64_CPU = ("-M", "virt", "-cpu", "max,pauth-impdef=on")
_EXACT = ("-icount", "shift=0")


def _arm64(name: str, args: tuple[str, ...], about: str, perf: bool = True) -> Machine:
    """Every arm64 twin runs qemu-system-aarch64's virt board with a PL011 console and virtio-net."""
    return Machine(name=name, arch="arm64", qemu="qemu-system-aarch64", apt_package="qemu-system-arm",
                   args=args, console="ttyAMA0", net_device="virtio-net-device", about=about, perf=perf)


# x86_64: -M q35 (PCIe, virtio-net-pci) under TCG, pinned with -accel tcg: where /dev/kvm exists a KVM guest
# could get a virtual PMU, and this twin is the VM *without* one (x86 TCG emulates no PMU; the guest's
# kernel logs "Performance Events: PMU not available due to virtualization, using software events only.").
# q35 because it is a PCIe machine, as EC2's x86 instances are, and no slower than the lighter ones: SSH-ready
# after 10.8 s (q35), 11.0 s (pc), 12.0 s (microvm, virtio-net-device over virtio-mmio), one boot each on the
# 2-core CI VM; the kernel and init dominate, not the board.
_X86_64 = Machine(name="x86_64", arch="amd64", qemu="qemu-system-x86_64", apt_package="qemu-system-x86",
                  args=("-M", "q35", "-accel", "tcg"), console="ttyS0", net_device="virtio-net-pci",
                  about="x86_64 q35 under TCG: no PMU (software events only)")

MACHINES: dict[str, Machine] = {
    m.name: m
    for m in (
        _arm64("arm64-pmu", _ARM64_CPU + _EXACT,
               "arm64 virt, -cpu max, -icount shift=0: PMUv3 with cycles and instructions"),
        _arm64("arm64-partial", _ARM64_CPU, "arm64 virt, -cpu max, no -icount: a partial PMU (cycles only)"),
        _arm64("arm64-noperf", _ARM64_CPU + _EXACT,
               "arm64-pmu without perf: a fresh image whose local file: apt repository holds linux-perf",
               perf=False),
        _X86_64,
    )
}


class UnknownMachine(ValueError):
    pass


def machine(name: str) -> Machine:
    """The machine called `name`; the error's one line lists what is allowed."""
    try:
        return MACHINES[name]
    except KeyError:
        raise UnknownMachine(
            f"--qemu-machine {name!r} is not a twin machine; allowed: {', '.join(MACHINES)}"
        ) from None
