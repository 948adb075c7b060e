"""resctrl: a pure model of what the host offers, and verdicts that separate hardware, kernel and runtime.

"Is resctrl available?" has three independent answers, and an engineer needs to know which one is
"no": the CPU may lack RDT/QoS (or a hypervisor may hide it), the kernel may be built without
resctrl (CONFIG_X86_CPU_RESCTRL, e.g. Amazon Linux), or resctrl may be registered but not mounted or
not usable. `judge_availability` says all three in one line.

Everything here is pure: /proc/cpuinfo (or lscpu) and /proc/filesystems are read by the shared
parsers of pytest_perfci.models; the parsers here take a kernel config and the files of a resctrl tree (as a mapping of relative path -> content, which is what the prober
prints and what `perfci resctrl judge --tree` reads), and the effect judges take numbers. The effect
judges copy the pass/fail rules of the kernel's own selftests (tools/testing/selftests/resctrl), and
are tested against those selftests' recorded TAP output (tests/data/samples/resctrl/selftests).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum

from pydantic import BaseModel, ConfigDict

from pytest_perfci.checks.verdict import Finding, State, found
from pytest_perfci.models.arch import ARCHES, normalise_arch
from pytest_perfci.models.cpuinfo import CpuInfo, parse_cpuinfo
from pytest_perfci.models.procfs import parse_filesystems

# --- kernel config ----------------------------------------------------------------------------------

# Kconfig symbols that build resctrl in: x86 since 5.0, x86 before 5.0, arm64 MPAM.
KCONFIG_SYMBOLS = ("CONFIG_X86_CPU_RESCTRL", "CONFIG_INTEL_RDT", "CONFIG_ARM64_MPAM", "CONFIG_RESCTRL_FS")


def parse_kernel_config(text: str) -> dict[str, str]:
    """`CONFIG_X=y` -> {"CONFIG_X": "y"}; `# CONFIG_X is not set` -> {"CONFIG_X": "n"} (resctrl symbols only)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(\S+)", line.strip()) or re.match(r"^# (CONFIG_\w+) is not set", line.strip())
        if m and m.group(1) in KCONFIG_SYMBOLS:
            out[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
    return out


# --- the resctrl tree -------------------------------------------------------------------------------

CACHE_RESOURCES = ("L3", "L2", "L3CODE", "L3DATA", "L2CODE", "L2DATA")
BANDWIDTH_RESOURCES = ("MB", "SMBA")
MONITOR_RESOURCES = ("L3_MON",)


class ResourceInfo(BaseModel):
    """One directory under info/: what the kernel says a resource (or CDP half, or monitor) offers."""

    model_config = ConfigDict(frozen=True)

    name: str
    num_closids: int | None = None
    cbm_mask: int | None = None
    min_cbm_bits: int | None = None
    shareable_bits: int | None = None
    sparse_masks: bool | None = None
    bit_usage: str | None = None
    bandwidth_gran: int | None = None
    min_bandwidth: int | None = None
    delay_linear: bool | None = None
    thread_throttle_mode: str | None = None
    num_rmids: int | None = None
    mon_features: tuple[str, ...] = ()
    max_threshold_occupancy: int | None = None

    @property
    def cbm_bits(self) -> int:
        return self.cbm_mask.bit_count() if self.cbm_mask else 0

    @property
    def kind(self) -> str:
        if self.name in MONITOR_RESOURCES or self.name.endswith("_MON"):
            return "monitor"
        return "bandwidth" if self.name in BANDWIDTH_RESOURCES else "cache"


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    t = text.strip()
    try:
        return int(t, base)
    except ValueError:
        return None


def parse_resource_info(name: str, files: Mapping[str, str]) -> ResourceInfo:
    """Build ResourceInfo from the files of info/<name>/ (file name -> content)."""
    get = files.get
    sparse = _int(get("sparse_masks"))
    linear = _int(get("delay_linear"))
    return ResourceInfo(
        name=name,
        num_closids=_int(get("num_closids")),
        cbm_mask=_int(get("cbm_mask"), 16),
        min_cbm_bits=_int(get("min_cbm_bits")),
        shareable_bits=_int(get("shareable_bits"), 16),
        sparse_masks=None if sparse is None else bool(sparse),
        bit_usage=(get("bit_usage") or "").strip() or None,
        bandwidth_gran=_int(get("bandwidth_gran")),
        min_bandwidth=_int(get("min_bandwidth")),
        delay_linear=None if linear is None else bool(linear),
        thread_throttle_mode=(get("thread_throttle_mode") or "").strip() or None,
        num_rmids=_int(get("num_rmids")),
        mon_features=tuple((get("mon_features") or "").split()),
        max_threshold_occupancy=_int(get("max_threshold_occupancy")),
    )


class SchemataError(ValueError):
    pass


def parse_schemata(text: str) -> dict[str, dict[int, str]]:
    """`L3:0=fffff;1=fffff` lines -> {"L3": {0: "fffff", 1: "fffff"}}.

    Resource names and values may be space-padded (AMD prints `  MB:0=2048;1=  16`), a write may end
    with `;` (`L3DATA:2=3c0;`), and CDP splits a cache into L3CODE/L3DATA. Values are kept as the
    kernel printed them (stripped); use `cbm_value` / `bandwidth_value` to interpret them.
    """
    out: dict[str, dict[int, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name.strip():
            raise SchemataError(f"schemata line without a resource name: {raw!r}")
        domains: dict[int, str] = {}
        for part in rest.split(";"):
            if not part.strip():
                continue
            dom, eq, value = part.partition("=")
            if not eq or not dom.strip().isdigit() or not value.strip():
                raise SchemataError(f"bad domain entry {part!r} in schemata line {raw!r}")
            domains[int(dom)] = value.strip()
        out[name.strip()] = domains
    return out


def cbm_value(text: str) -> int:
    """A cache bit mask as written or read (`3c0`, `0x3`, `03`)."""
    return int(text.strip(), 16)


def bandwidth_value(text: str) -> int:
    """An MB/SMBA value: percent on Intel, MBps with -o mba_MBps, multiples of 1/8 GB/s on AMD."""
    return int(text.strip(), 10)


def format_schemata_line(resource: str, domains: Mapping[int, int | str], cache: bool) -> str:
    parts = []
    for dom in sorted(domains):
        v = domains[dom]
        parts.append(f"{dom}={v:x}" if cache and isinstance(v, int) else f"{dom}={v}")
    return f"{resource}:{';'.join(parts)}"


def parse_cpu_bitmap(text: str) -> frozenset[int]:
    """A `cpus` file: hex, most significant group first, a comma every 32 bits (`ffffffff,0000000f`)."""
    t = text.strip().replace(",", "")
    if not t:
        return frozenset()
    if not re.fullmatch(r"[0-9a-fA-F]+", t):
        raise ValueError(f"not a cpu bitmap: {text!r}")
    value = int(t, 16)
    return frozenset(i for i in range(value.bit_length()) if value >> i & 1)


def format_cpu_bitmap(cpus: Iterable[int], nbits: int) -> str:
    """The inverse of parse_cpu_bitmap, padded to nbits like the kernel prints it."""
    value = 0
    for c in cpus:
        value |= 1 << c
    groups = max(1, (nbits + 31) // 32)
    words = [f"{(value >> (32 * i)) & 0xFFFFFFFF:08x}" for i in reversed(range(groups))]
    if nbits % 32:  # the kernel prints the top group only as wide as it needs
        words[0] = words[0][-((nbits % 32 + 3) // 4):]
    return ",".join(words)


def parse_cpu_list(text: str) -> frozenset[int]:
    """A `cpus_list` file: `0-3,8,10-11`."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


class MonValue(BaseModel):
    """One mon_data file: a count, or the kernel's `Unavailable` (RMID not yet counted / counter
    unassigned) or `Error` (hardware reported an error for this read)."""

    model_config = ConfigDict(frozen=True)

    state: str  # ok | unavailable | error
    value: int | None = None
    raw: str = ""


def parse_mon_value(text: str) -> MonValue:
    t = text.strip()
    if t.isdigit():
        return MonValue(state="ok", value=int(t), raw=t)
    if t == "Unavailable":
        return MonValue(state="unavailable", raw=t)
    return MonValue(state="error", raw=t)


class CmdStatus(str, Enum):
    OK = "ok"
    NONCONTIGUOUS = "non-consecutive 1-bits"
    OVERLAPS = "schemata overlaps"
    EXCLUSIVE_OVERLAP = "overlaps with exclusive group"
    OTHER = "other"


def parse_last_cmd_status(text: str) -> tuple[CmdStatus, str]:
    """info/last_cmd_status, the kernel's reason for the last rejected write ("ok" after a good one)."""
    msg = text.strip()
    if msg == "ok":
        return CmdStatus.OK, msg
    if "non-consecutive 1-bits" in msg:
        return CmdStatus.NONCONTIGUOUS, msg
    if "overlaps with exclusive group" in msg:
        return CmdStatus.EXCLUSIVE_OVERLAP, msg
    if "schemata overlaps" in msg:
        return CmdStatus.OVERLAPS, msg
    return CmdStatus.OTHER, msg


class ResctrlTree(BaseModel):
    """A mounted resctrl filesystem as read from its files (root group, info/, groups)."""

    model_config = ConfigDict(frozen=True)

    resources: dict[str, ResourceInfo] = {}
    schemata: dict[str, dict[int, str]] = {}
    cpus: frozenset[int] | None = None
    groups: tuple[str, ...] = ()
    mon_groups: tuple[str, ...] = ()
    mon_data: dict[str, MonValue] = {}
    last_cmd_status: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def has_info(self) -> bool:
        return bool(self.resources)

    def resource(self, name: str) -> ResourceInfo | None:
        return self.resources.get(name)

    @property
    def cdp(self) -> bool:
        return any(r.endswith(("CODE", "DATA")) for r in self.resources)

    def summary(self) -> str:
        """`L3 CAT (15 CLOSIDs, cbm 0x7fff), MB (min 10, gran 10), L3_MON (llc_occupancy ...)`."""
        parts = []
        for name, r in self.resources.items():
            if r.kind == "cache":
                parts.append(f"{name} CAT ({r.num_closids} CLOSIDs, cbm {r.cbm_mask:#x})" if r.cbm_mask is not None
                             else f"{name} CAT")
            elif r.kind == "bandwidth":
                parts.append(f"{name} (min {r.min_bandwidth}, gran {r.bandwidth_gran})")
            else:
                parts.append(f"{name} ({' '.join(r.mon_features) or 'no features'})")
        return ", ".join(parts) or "no resources"


def parse_tree(files: Mapping[str, str]) -> ResctrlTree:
    """Model a resctrl tree from {relative path: content}, e.g. {"info/L3/cbm_mask": "7fff\\n", ...}.

    Directories appear as keys ending in "/" (content ignored) so empty groups are still seen.
    """
    info: dict[str, dict[str, str]] = {}
    groups: set[str] = set()
    mon_groups: set[str] = set()
    mon_data: dict[str, MonValue] = {}
    errors: list[str] = []
    for path, content in files.items():
        parts = path.strip("/").split("/")
        if parts[0] == "info" and len(parts) == 3:
            info.setdefault(parts[1], {})[parts[2]] = content
        elif parts[0] == "info" and len(parts) == 2 and path.endswith("/"):
            info.setdefault(parts[1], {})
        elif parts[0] == "mon_groups" and len(parts) >= 2:
            mon_groups.add(parts[1])
        elif parts[0] == "mon_data" and len(parts) == 3:
            mon_data[f"{parts[1]}/{parts[2]}"] = parse_mon_value(content)
        elif parts[0] not in ("info", "mon_groups", "mon_data") and (len(parts) >= 2 or path.endswith("/")):
            groups.add(parts[0])
    resources = {name: parse_resource_info(name, fs) for name, fs in sorted(info.items()) if name != "last_cmd_status"}
    schemata: dict[str, dict[int, str]] = {}
    if "schemata" in files:
        try:
            schemata = parse_schemata(files["schemata"])
        except SchemataError as exc:
            errors.append(str(exc))
    cpus = None
    if "cpus" in files:
        try:
            cpus = parse_cpu_bitmap(files["cpus"])
        except ValueError as exc:
            errors.append(str(exc))
    elif "cpus_list" in files:
        cpus = parse_cpu_list(files["cpus_list"])
    status = files.get("info/last_cmd_status")
    return ResctrlTree(
        resources=resources, schemata=schemata, cpus=cpus, groups=tuple(sorted(groups)),
        mon_groups=tuple(sorted(mon_groups)), mon_data=mon_data,
        last_cmd_status=status.strip() if status is not None else None, errors=tuple(errors),
    )


# --- cache bit masks ---------------------------------------------------------------------------------


def is_contiguous(mask: int) -> bool:
    """One run of 1-bits (`0x3c0` yes, `0xf7` no)."""
    if mask <= 0:
        return False
    shifted = mask >> ((mask & -mask).bit_length() - 1)
    return shifted & (shifted + 1) == 0


def cbm_problem(info: ResourceInfo, mask: int) -> str | None:
    """Why the kernel would reject this CBM for this resource (None if it would accept it).

    The rules of arch/x86/kernel/cpu/resctrl/ctrlmondata.c `cbm_validate`: non-zero, inside
    cbm_mask, at least min_cbm_bits set, and contiguous unless sparse_masks is 1.
    """
    if mask == 0:
        return "empty mask"
    if info.cbm_mask is not None and mask & ~info.cbm_mask:
        return f"mask {mask:x} has bits outside cbm_mask {info.cbm_mask:x}"
    if info.min_cbm_bits is not None and mask.bit_count() < info.min_cbm_bits:
        return f"mask {mask:x} has fewer than min_cbm_bits={info.min_cbm_bits} bits"
    if not info.sparse_masks and not is_contiguous(mask):
        return f"mask {mask:x} has non-consecutive 1-bits"
    return None


def exclusive_block(info: ResourceInfo) -> tuple[int, int]:
    """(start bit, length) of the largest contiguous run of cbm_mask bits outside shareable_bits.

    The kernel selftest (get_mask_no_shareable) uses the same block, so a test group does not
    compete with ways the hardware shares with other agents (e.g. I/O).
    """
    full = info.cbm_mask or 0
    free = full & ~(info.shareable_bits or 0)
    best = (0, 0)
    start, run = 0, 0
    for bit in range(full.bit_length() + 1):
        if free >> bit & 1:
            if run == 0:
                start = bit
            run += 1
            if run > best[1]:
                best = (start, run)
        else:
            run = 0
    return best


def cat_masks(info: ResourceInfo, bits: int | None = None) -> list[int]:
    """The masks of a CAT sweep: from `bits` contiguous exclusive ways down to min_cbm_bits,
    removing the highest bit each step (selftest cat_test.c `next_mask`)."""
    start, length = exclusive_block(info)
    n = bits if bits is not None else max(length // 2, 1)
    n = min(n, length - 1 if length > 1 else length)
    floor = max(info.min_cbm_bits or 1, 1)
    mask = ((1 << n) - 1) << start
    out = []
    while mask and mask.bit_count() >= floor:
        out.append(mask)
        mask &= mask >> 1
    return out


def mba_sweep(info: ResourceInfo, maximum: int = 100) -> list[int]:
    """Throttle values from min_bandwidth to 100 in bandwidth_gran steps (percent mode)."""
    lo = info.min_bandwidth or 10
    step = info.bandwidth_gran or 10
    values = list(range(lo, maximum + 1, step))
    if values[-1] != maximum:
        values.append(maximum)
    return values


# --- the availability verdict -----------------------------------------------------------------------


class Status(str, Enum):
    USABLE = "usable"
    UNAVAILABLE = "unavailable"
    NOT_APPLICABLE = "not applicable"


class Reason(str, Enum):
    NO_HARDWARE = "no hardware support"
    KERNEL_LACKS = "kernel lacks resctrl"
    NOT_MOUNTED = "not mounted"
    MOUNT_FAILED = "mount failed"
    UNUSABLE = "mounted but unusable"
    NO_MPAM = "not applicable (no MPAM resctrl)"
    UNKNOWN = "not enough evidence"

    @property
    def code(self) -> str:
        """The shared reason code (checks.verdict) the matrix and Allure show for this reason."""
        return _REASON_CODES[self]


_REASON_CODES: dict[Reason, str] = {
    Reason.NO_HARDWARE: "NO-HW", Reason.KERNEL_LACKS: "NO-KERNEL", Reason.NOT_MOUNTED: "NO-MOUNT",
    Reason.MOUNT_FAILED: "NO-MOUNT", Reason.UNUSABLE: "NO-MOUNT", Reason.NO_MPAM: "N/A", Reason.UNKNOWN: "UNKNOWN",
}


class Part(BaseModel):
    """One of the three answers: ok True/False/None (unknown) and the phrase that says it."""

    model_config = ConfigDict(frozen=True)

    ok: bool | None
    phrase: str


class Availability(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status
    reason: Reason | None = None
    hardware: Part
    kernel: Part
    runtime: Part
    rdt_flags: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_info: dict[str, ResourceInfo] = {}

    @property
    def usable(self) -> bool:
        return self.status is Status.USABLE

    @property
    def finding(self) -> Finding:
        """This verdict in the shared vocabulary: usable is available; anything else is an absence with
        the reason's code (the expectations file decides whether the absence fails the run)."""
        if self.usable:
            return found(State.AVAILABLE, "", self.line())
        return found(State.ABSENT, self.reason.code if self.reason is not None else "UNKNOWN", self.line())

    @property
    def parts(self) -> dict[str, Finding]:
        """The three answers as findings, keyed by their matrix rows: is the hardware capable
        (rdt_hardware), does the kernel support resctrl (resctrl_kernel), is it mounted (resctrl_mount).
        A part nobody could judge is UNKNOWN (N/A on arm64 without MPAM); a mount that was never
        possible says why the kernel could not."""
        def part(p: Part, missing: str) -> Finding:
            if p.ok:
                return found(State.AVAILABLE, "", p.phrase)
            if self.status is Status.NOT_APPLICABLE:  # arm64 without MPAM: the hardware's phrase says why
                return found(State.ABSENT, "N/A", p.phrase or self.hardware.phrase)
            return found(State.ABSENT, missing if p.ok is False else "UNKNOWN", p.phrase)

        kernel = part(self.kernel, "NO-KERNEL")
        mount = (part(self.runtime, "NO-MOUNT") if self.runtime.phrase or self.runtime.ok is None
                 else found(State.ABSENT, kernel.code, f"not mountable: {self.kernel.phrase}"))
        return {"rdt_hardware": part(self.hardware, "NO-HW"), "resctrl_kernel": kernel, "resctrl_mount": mount}

    def line(self) -> str:
        """`hardware capable (cat_l3 mba), kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL), not mounted`."""
        return ", ".join(p.phrase for p in (self.hardware, self.kernel, self.runtime) if p.phrase)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What a usable tree offers: l3_cat, l2_cat, mba, smba, llc_occupancy, mbm."""
        return capabilities_of(self.resource_info) if self.usable else ()


def capabilities_of(resources: Mapping[str, ResourceInfo]) -> tuple[str, ...]:
    caps = []
    if any(n in resources for n in ("L3", "L3CODE", "L3DATA")):
        caps.append("l3_cat")
    if any(n in resources for n in ("L2", "L2CODE", "L2DATA")):
        caps.append("l2_cat")
    if "MB" in resources:
        caps.append("mba")
    if "SMBA" in resources:
        caps.append("smba")
    mon = resources.get("L3_MON")
    if mon is not None and "llc_occupancy" in mon.mon_features:
        caps.append("llc_occupancy")
    if mon is not None and {"mbm_total_bytes", "mbm_local_bytes"} & set(mon.mon_features):
        caps.append("mbm")
    return tuple(caps)


def _kconfig_note(config: Mapping[str, str] | None, arch: str) -> str:
    symbol = "CONFIG_ARM64_MPAM" if arch == "arm64" else "CONFIG_X86_CPU_RESCTRL"
    if not config:
        return symbol
    for sym in (symbol, "CONFIG_INTEL_RDT") if arch != "arm64" else (symbol,):
        if sym in config:
            return f"{sym} is not set" if config[sym] == "n" else f"{sym}={config[sym]}"
    return f"{symbol} is not set"


def judge_availability(
    cpu: CpuInfo | None,
    filesystems: Sequence[str] | None,
    tree: ResctrlTree | None = None,
    *,
    mounted: bool | None = None,
    mount_error: str | None = None,
    kernel_config: Mapping[str, str] | None = None,
    arch: str | None = None,
    virtualised: bool | None = None,
) -> Availability:
    """The three-part verdict: is the hardware capable, does the kernel support resctrl, is it usable.

    `mounted` None means "not known" (e.g. judging recorded files): a tree then stands for a mount.
    Why each phrase: the kernel registers the resctrl filesystem only when built with it *and* the
    CPU enumerates at least one resource (resctrl_arch_late_init / rdt_get_mon_l3_config), so
    "not in /proc/filesystems" on a capable CPU means the kernel lacks it, and on an incapable CPU
    it says nothing about the build; kernel_config (from /proc/config.gz or /boot/config-*) settles it.
    """
    arch = arch or (cpu.arch if cpu else "unknown")
    listed = None if filesystems is None else "resctrl" in filesystems
    if tree is not None and tree.has_info:
        listed = True  # a mounted tree proves the kernel registered resctrl, whatever a stale listing says
    flags = cpu.rdt if cpu else ()
    virt = virtualised if virtualised is not None else (cpu.hypervisor if cpu else None)
    tree_resources = tuple(tree.resources) if tree and tree.has_info else ()

    # 1. hardware
    if arch == "arm64":
        if listed:
            hardware = Part(ok=True, phrase="arm64 with MPAM (kernel registers resctrl)")
        else:
            cfg = _kconfig_note(kernel_config, "arm64") if kernel_config else None
            why = f"kernel lists no resctrl{f'; {cfg}' if cfg else ''}"
            return Availability(status=Status.NOT_APPLICABLE, reason=Reason.NO_MPAM,
                                hardware=Part(ok=None, phrase=f"not applicable (no MPAM resctrl): arm64, {why}"),
                                kernel=Part(ok=False if listed is False else None, phrase=""),
                                runtime=Part(ok=None, phrase=""))
    elif cpu is not None and cpu.rdt_capable:
        hardware = Part(ok=True, phrase=f"hardware capable ({' '.join(flags)})")
    elif tree_resources:
        hardware = Part(ok=True, phrase=f"hardware capable (resctrl enumerates {' '.join(tree_resources)})")
    elif listed:
        hardware = Part(ok=True, phrase="hardware capable (kernel registered resctrl)")
    elif cpu is not None and cpu.flags and not cpu.truncated:
        where = "; virtualised: the hypervisor does not expose it" if virt else ""
        hardware = Part(ok=False, phrase=f"no hardware support (no RDT/QoS cpu flags{where})")
    elif cpu is not None and cpu.truncated and cpu.flags:
        hardware = Part(ok=None, phrase="hardware unknown (cpu flag list truncated, no RDT/QoS flag before the cut)")
    else:
        hardware = Part(ok=None, phrase="hardware unknown (no cpu flags)")

    # 2. kernel
    if listed is None:
        kernel = Part(ok=None, phrase="kernel unknown (no /proc/filesystems)")
    elif listed:
        kernel = Part(ok=True, phrase="kernel supports resctrl")
    elif hardware.ok:
        kernel = Part(ok=False, phrase=f"kernel lacks resctrl ({_kconfig_note(kernel_config, arch)})")
    else:
        note = f"; {_kconfig_note(kernel_config, arch)}" if kernel_config else ""
        kernel = Part(ok=False, phrase=f"kernel lists no resctrl filesystem{note}")

    # 3. runtime
    if listed is False:
        runtime = Part(ok=False, phrase="")
        reason = Reason.KERNEL_LACKS if hardware.ok else Reason.NO_HARDWARE
        if hardware.ok is None:
            reason = Reason.KERNEL_LACKS
        return Availability(status=Status.UNAVAILABLE, reason=reason, hardware=hardware, kernel=kernel,
                            runtime=runtime, rdt_flags=flags)
    if tree is not None and tree.has_info:
        problems = list(tree.errors)
        if not tree.schemata and any(r.kind != "monitor" for r in tree.resources.values()):
            problems.append("root schemata missing")
        if problems:
            runtime = Part(ok=False, phrase=f"mounted but unusable ({'; '.join(problems)})")
            return Availability(status=Status.UNAVAILABLE, reason=Reason.UNUSABLE, hardware=hardware,
                                kernel=kernel, runtime=runtime, rdt_flags=flags, resources=tree_resources,
                                resource_info=tree.resources)
        runtime = Part(ok=True, phrase=f"mounted and usable: {tree.summary()}")
        return Availability(status=Status.USABLE, hardware=hardware, kernel=kernel, runtime=runtime,
                            rdt_flags=flags, resources=tree_resources, resource_info=tree.resources)
    if tree is not None:
        runtime = Part(ok=False, phrase="mounted but unusable (no info/ directory)")
        return Availability(status=Status.UNAVAILABLE, reason=Reason.UNUSABLE, hardware=hardware, kernel=kernel,
                            runtime=runtime, rdt_flags=flags)
    if mount_error:
        runtime = Part(ok=False, phrase=f"mount failed ({mount_error})")
        return Availability(status=Status.UNAVAILABLE, reason=Reason.MOUNT_FAILED, hardware=hardware,
                            kernel=kernel, runtime=runtime, rdt_flags=flags)
    runtime = Part(ok=False if listed else None, phrase="not mounted" if listed else "runtime unknown")
    return Availability(status=Status.UNAVAILABLE, reason=Reason.NOT_MOUNTED if listed else Reason.UNKNOWN,
                        hardware=hardware, kernel=kernel, runtime=runtime, rdt_flags=flags)


# --- effect verdicts (the kernel selftests' criteria) ------------------------------------------------

# tools/testing/selftests/resctrl/mbm_test.c and mba_test.c: MAX_DIFF_PERCENT 8 (5 before the 2022
# commit "selftests/resctrl: Relax MBM/MBA success bound").
MBM_MAX_DIFF_PERCENT = 8
# tools/testing/selftests/resctrl/cmt_test.c: MAX_DIFF_PERCENT 15, MAX_DIFF 2000000 (bytes); the
# test fails only when both are exceeded.
CMT_MAX_DIFF_PERCENT = 15
CMT_MAX_DIFF_BYTES = 2_000_000
# tools/testing/selftests/resctrl/cat_test.c: MIN_DIFF_PERCENT_PER_BIT 1; going down to n bits the
# LLC misses must rise by at least (n - 1) percent. Enforced on Intel only (`platform` argument).
CAT_MIN_DIFF_PERCENT_PER_BIT = 1


class Effect(BaseModel):
    """An effect check's verdict with the numbers behind it."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    detail: str
    steps: tuple[str, ...] = ()

    @property
    def finding(self) -> Finding:
        """A missing effect on a usable resctrl fails whatever was expected (the suite fails the test):
        CAT/MBA configured with no measured effect, CMT occupancy far from the buffer it walked, and
        any other name is a reader pair (judge_bandwidth_pair's label: MBM against the iMC) disagreeing."""
        if self.ok:
            return found(State.AVAILABLE, "", self.detail)
        return found(State.FAILED, _EFFECT_CODES.get(self.name, "DISAGREE"), self.detail)


_EFFECT_CODES = {"CAT": "NO-EFFECT", "MBA": "NO-EFFECT", "CMT": "IMPLAUSIBLE"}


def judge_bandwidth_pair(resctrl_mbps: float, reference_mbps: float, label: str = "MBM",
                         max_diff_percent: int = MBM_MAX_DIFF_PERCENT) -> Effect:
    """MBM (resctrl) vs an independent reader (iMC uncore counters): the selftest's show_bw_info rule,
    |resc - imc| / imc truncated to a whole percent, must not exceed max_diff_percent."""
    if reference_mbps <= 0:
        return Effect(name=label, ok=False, detail=f"reference bandwidth {reference_mbps:g} MB/s is not positive")
    diff = int(abs(resctrl_mbps - reference_mbps) / reference_mbps * 100)
    ok = diff <= max_diff_percent
    return Effect(name=label, ok=ok, detail=f"{label} {resctrl_mbps:g} vs reference {reference_mbps:g} MB/s: "
                  f"diff {diff}% {'within' if ok else 'beyond'} {max_diff_percent}%")


def judge_cmt(avg_llc_bytes: float, span_bytes: float) -> Effect:
    """llc_occupancy of a group walking a buffer of span_bytes: cmt_test.c show_results_info."""
    avg_diff = span_bytes - avg_llc_bytes
    diff_percent = int(abs(avg_diff / span_bytes * 100)) if span_bytes else 100
    fail = diff_percent > CMT_MAX_DIFF_PERCENT and abs(avg_diff) > CMT_MAX_DIFF_BYTES
    return Effect(
        name="CMT", ok=not fail,
        detail=f"llc_occupancy {avg_llc_bytes:,.0f} B for a {span_bytes:,.0f} B buffer: diff {diff_percent}% "
        f"({abs(avg_diff):,.0f} B); limit {CMT_MAX_DIFF_PERCENT}% or {CMT_MAX_DIFF_BYTES:,} B",
    )


def judge_cat_sweep(points: Sequence[tuple[int, float]], enforce: bool = True) -> Effect:
    """LLC misses per CBM size, in sweep order (most bits first): cat_test.c check_results.

    Each step to n bits must raise the average misses by at least CAT_MIN_DIFF_PERCENT_PER_BIT*(n-1)
    percent over the previous (n+1)-bit step. `enforce` False reports without failing (the selftest
    enforces on Intel only).
    """
    if len(points) < 2:
        return Effect(name="CAT", ok=False, detail=f"need at least two CBM sizes, got {len(points)}")
    steps = []
    ok = True
    for (prev_bits, prev), (bits, value) in itertools.pairwise(points):
        need = float(CAT_MIN_DIFF_PERCENT_PER_BIT * (bits - 1))
        diff = (value - prev) / prev * 100 if prev else float("inf")
        good = diff >= need
        ok = ok and (good or not enforce)
        steps.append(f"{prev_bits}->{bits} bits: misses {prev:,.0f} -> {value:,.0f} ({diff:+.1f}%, need > {need:.1f}%)"
                     + ("" if good else " FAIL"))
    return Effect(name="CAT", ok=ok, detail="; ".join(steps), steps=tuple(steps))


def judge_mba_trend(points: Sequence[tuple[int, float]], max_drop_percent: int = MBM_MAX_DIFF_PERCENT) -> Effect:
    """Bandwidth per MB throttle value must not fall as the throttle rises (within the MBM tolerance
    of noise), and the lowest throttle must measurably limit bandwidth (below the top by more than it)."""
    pts = sorted(points)
    if len(pts) < 2:
        return Effect(name="MBA", ok=False, detail="need at least two throttle values")
    steps = []
    ok = True
    best = pts[0][1]
    for (t0, b0), (t1, b1) in itertools.pairwise(pts):
        drop = (best - b1) / best * 100 if best else 0.0
        good = drop <= max_drop_percent
        ok = ok and good
        steps.append(f"{t0}->{t1}: {b0:,.0f} -> {b1:,.0f} MB/s" + ("" if good else f" FELL {drop:.1f}%"))
        best = max(best, b1)
    lo, hi = pts[0][1], pts[-1][1]
    effect = (hi - lo) / hi * 100 if hi else 0.0
    throttled = effect > max_drop_percent
    ok = ok and throttled
    head = (f"throttle {pts[0][0]} gives {lo:,.0f} MB/s vs {hi:,.0f} at {pts[-1][0]} ({effect:.0f}% lower)"
            if throttled else f"no throttling effect: {lo:,.0f} MB/s at {pts[0][0]} vs {hi:,.0f} at {pts[-1][0]}")
    return Effect(name="MBA", ok=ok, detail=head + "; " + "; ".join(steps), steps=tuple(steps))


# --- kernel selftest TAP output ----------------------------------------------------------------------


class SelftestCase(BaseModel):
    number: int
    name: str
    ok: bool
    skip: bool = False
    lines: tuple[str, ...] = ()


class SelftestRun(BaseModel):
    """resctrl_tests output: the verdicts and the numbers each case printed."""

    cases: list[SelftestCase] = []
    totals: dict[str, int] = {}

    def case(self, prefix: str) -> SelftestCase:
        for c in self.cases:
            if c.name.startswith(prefix):
                return c
        raise KeyError(prefix)


def _strip_hash(line: str) -> str:
    while line.startswith("# ") or line == "#":
        line = line[2:]
    return line


def parse_selftest_tap(text: str) -> SelftestRun:
    """Parse `resctrl_tests` TAP (also nested under kselftest's `# ` prefix, as run by run_kselftest.sh)."""
    cases: list[SelftestCase] = []
    pending: list[str] = []
    totals: dict[str, int] = {}
    for raw in text.splitlines():
        line = _strip_hash(raw.rstrip())
        m = re.match(r"^(ok|not ok) (\d+) (.*)$", line)
        if m and not m.group(3).startswith("selftests:"):
            rest = m.group(3)
            skip = "# SKIP" in rest
            name = rest.split("#")[0].strip() if not rest.startswith("#") else rest
            cases.append(SelftestCase(number=int(m.group(2)), name=name, ok=m.group(1) == "ok", skip=skip,
                                      lines=tuple(pending)))
            pending = []
            continue
        t = re.match(r"^Totals: (.*)$", line)
        if t:
            totals = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", t.group(1))}
            continue
        pending.append(line)
    return SelftestRun(cases=cases, totals=totals)


def selftest_numbers(case: SelftestCase) -> dict[str, list[float]]:
    """`key: value` lines of a case -> {key: [values...]} (e.g. "avg_bw_imc": [2033, 3028, ...])."""
    out: dict[str, list[float]] = {}
    for line in case.lines:
        m = re.match(r"^([A-Za-z_][\w ()]*?)\s*[:=]\s*(-?\d+(?:\.\d+)?)%?$", line)
        if m:
            out.setdefault(m.group(1).strip(), []).append(float(m.group(2)))
    return out


def selftest_schemata_written(case: SelftestCase) -> list[str]:
    return re.findall(r'Write schema "([^"]+)"', "\n".join(case.lines))


# --- the prober's JSON ---------------------------------------------------------------------------------


class Observation(BaseModel):
    """What `resctrl_probe.py gather` saw, parsed, with its verdict."""

    cpu: CpuInfo
    filesystems: tuple[str, ...] | None
    kernel_config: dict[str, str]
    tree: ResctrlTree | None
    availability: Availability
    kernel: str = ""
    mount_error: str | None = None


def judge_gathered(doc: Mapping[str, object], virtualised: bool | None = None) -> Observation:
    """The verdict from the prober's gather document (schema: probes/resctrl_probe.py cmd_gather)."""
    cpu = parse_cpuinfo(str(doc.get("cpuinfo") or ""))
    fs_text = doc.get("filesystems")
    filesystems = parse_filesystems(str(fs_text)) if isinstance(fs_text, str) else None
    config = parse_kernel_config(str(doc.get("kernel_config") or ""))
    files = doc.get("files")
    tree = parse_tree(files) if isinstance(files, Mapping) else None
    mount = doc.get("mount")
    mount_error = mount.get("error") if isinstance(mount, Mapping) else None
    arch = normalise_arch(str(doc.get("arch") or ""))
    arch = arch if arch in ARCHES else cpu.arch
    availability = judge_availability(
        cpu, filesystems, tree, mounted=tree is not None, mount_error=str(mount_error) if mount_error else None,
        kernel_config=config or None, arch=arch, virtualised=virtualised,
    )
    return Observation(cpu=cpu, filesystems=filesystems, kernel_config=config, tree=tree,
                       availability=availability, kernel=str(doc.get("kernel") or ""),
                       mount_error=str(mount_error) if mount_error else None)
