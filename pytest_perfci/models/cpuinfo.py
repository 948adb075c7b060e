"""The one parser of /proc/cpuinfo (x86 `flags`, arm64 `Features`) and of `lscpu` output.

Why one: host facts (vendor, model, flags, the hypervisor bit) and the resctrl verdicts (RDT/QoS
flags) used to read the same file with two parsers and different arm64 rules, so one host could be
"arm" to one and "unknown" to the other. The rules kept, each the stricter of the two:

- Only the first processor block that carries `flags`/`Features` is read (a header block, as older
  arm64 kernels print, or a `# Source:` comment before it does not end the search early).
- Hex fields (`CPU implementer`, `CPU part`) are read by their first word, so a pasted
  `0x41  (ARM)` annotation still means Arm Ltd.
- vendor "arm" means Arm Ltd. designs: `CPU implementer 0x41`, or lscpu's `Vendor ID: ARM` (what
  lscpu prints for 0x41). Other implementers (Ampere 0xc0, Qualcomm, Apple, ...) are "unknown", not
  guessed.
- arm64 has no hypervisor bit in cpuinfo: `hypervisor` is None there (DMI or systemd-detect-virt
  must say), True/False on x86 from the `hypervisor` flag.
- model: x86 `model name`; arm64 the core's name for known Arm Ltd. part numbers (the Graviton
  generations), else `part 0x...`.

- A `flags`/`Features`/`bugs` value wrapped onto further lines (pasted from a mail or a narrow
  terminal) continues on the lines that have no `key :` of their own; they are joined back, with
  the same word-split repair as lscpu's wrapped Flags column. Mail quote marks (`> `) in front of
  every line are dropped first.

Flags are a frozenset of whole words: `rdt_a` never matches `rdtscp`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict

from pytest_perfci.models.arch import normalise_arch

# /proc/cpuinfo flag names (arch/x86/include/asm/cpufeatures.h, the quoted names) that mean the
# CPU enumerates an RDT (Intel) / PQoS (AMD) feature resctrl can manage.
ALLOCATION_FLAGS: Final = ("rdt_a", "cat_l3", "cat_l2", "cdp_l3", "cdp_l2", "mba", "smba")
MONITORING_FLAGS: Final = ("cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total", "cqm_mbm_local", "bmec", "abmc")
RDT_FLAGS: Final = ALLOCATION_FLAGS + MONITORING_FLAGS
# The flags that alone name a resource resctrl exposes (cqm / cdp_* are sub-features of those).
_RESOURCE_FLAGS: Final = ("rdt_a", "cat_l3", "cat_l2", "mba", "smba", "cqm_occup_llc", "cqm_mbm_total",
                          "cqm_mbm_local")

# A recorded sample that was cut off says so with this mark; an absent flag then proves nothing.
TRUNCATION_MARK: Final = "[... truncated"

ARM_IMPLEMENTER: Final = "0x41"  # Arm Ltd. (arch/arm64/include/asm/cputype.h ARM_CPU_IMP_ARM)
# Arm Ltd. part numbers seen on EC2 (Graviton generations); the rest stays "part 0x...".
ARM_PARTS: Final = {
    "0xd0c": "Neoverse-N1 (Graviton2)",
    "0xd40": "Neoverse-V1 (Graviton3)",
    "0xd4f": "Neoverse-V2 (Graviton4)",
    "0xd0b": "Cortex-A76",
    "0xd08": "Cortex-A72",
}


class CpuInfo(BaseModel):
    """The first processor's identity and flags, from /proc/cpuinfo or `lscpu` output."""

    model_config = ConfigDict(frozen=True)

    arch: str = "unknown"  # x86_64 | arm64 | unknown
    vendor: str = "unknown"  # intel | amd | arm | unknown
    model: str = ""
    flags: frozenset[str] = frozenset()
    hypervisor: bool | None = None  # the x86 `hypervisor` flag; None on arm64 (no such bit)
    source: str = "cpuinfo"  # cpuinfo | lscpu
    truncated: bool = False  # the recorded flag list was cut off: an absent flag proves nothing

    def has(self, flag: str) -> bool:
        """Whole-word test: `rdt_a` never matches `rdtscp`, `mba` never matches `mbapm`."""
        return flag in self.flags

    @property
    def rdt(self) -> tuple[str, ...]:
        """The RDT/QoS flags present, in a stable order."""
        return tuple(f for f in RDT_FLAGS if f in self.flags)

    @property
    def rdt_capable(self) -> bool:
        return any(f in self.flags for f in _RESOURCE_FLAGS)


# `key<tabs/spaces>: value`; keys are words with spaces (`model name`, `TLB size`, `CPU part`).
_CPUINFO_FIELD = re.compile(r"^([A-Za-z][\w ()-]*?)\s*:\s?(.*)$")
# Values long enough to be wrapped when pasted; a line without a key continues the last of these.
_WRAPPING_KEYS = ("flags", "features", "bugs", "vmx flags")
# A mail quote in front of a pasted line (`> `, `>> `); no cpuinfo or lscpu line starts with `>`.
_MAIL_QUOTE = re.compile(r"^(?:>[ \t]?)+")


def _vendor(vendor_id: str, implementer: str) -> str:
    if vendor_id == "GenuineIntel":
        return "intel"
    if vendor_id in ("AuthenticAMD", "HygonGenuine"):
        return "amd"
    if implementer.lower() == ARM_IMPLEMENTER or vendor_id == "ARM":
        return "arm"
    return "unknown"


def _first_word(value: str) -> str:
    """`0x41  (ARM)` -> `0x41`: excerpts pasted with annotations still parse."""
    words = value.split()
    return words[0].lower() if words else ""


def arm_part_name(part: str) -> str:
    """`0xd40` -> `Neoverse-V1 (Graviton3)`; unknown parts stay `part 0x...`."""
    part = _first_word(part)
    return ARM_PARTS.get(part, f"part {part}") if part else ""


def _join_wrapped(lines: Sequence[str]) -> list[str]:
    """lscpu wraps the Flags column at the terminal width, splitting words (`sse4` / `_2`).

    The wrap point is not marked, so a break at a word boundary and one inside a word look the same.
    Tokens are joined with a space, except where the two halves form a known RDT flag, so the flags
    the resctrl verdicts judge are never lost to the wrap.
    """
    tokens: list[str] = []
    for line in lines:
        words = line.split()
        if tokens and words and tokens[-1] + words[0] in RDT_FLAGS and words[0] not in RDT_FLAGS:
            tokens[-1] += words.pop(0)
        tokens.extend(words)
    return tokens


def parse_cpuinfo(text: str) -> CpuInfo:
    """Vendor, arch, model, flags and the hypervisor bit from /proc/cpuinfo or `lscpu` output.

    Comment lines (`#`) and a truncation mark are skipped; a truncated sample sets `truncated`.
    """
    truncated = TRUNCATION_MARK in text
    lines = [_MAIL_QUOTE.sub("", ln) for ln in text.splitlines()]
    lines = [ln for ln in lines if not ln.lstrip().startswith("#") and TRUNCATION_MARK not in ln]
    if any(re.match(r"\s*Flags:\s", ln) for ln in lines) or any(ln.startswith("Architecture:") for ln in lines):
        return _parse_lscpu(lines, truncated)
    fields: dict[str, str] = {}
    wrapped: dict[str, list[str]] = {}  # key -> its value's lines, for keys whose value may wrap
    key = ""
    for line in lines:
        if not line.strip():
            if "flags" in fields or "features" in fields:
                break  # first processor block only
            continue
        m = _CPUINFO_FIELD.match(line)
        if m:
            key, value = m.group(1).strip().lower(), m.group(2).strip()
            if key not in fields:
                fields[key] = value
                if key in _WRAPPING_KEYS:
                    wrapped[key] = [value]
            else:
                key = ""  # a later block's repeat of a key: its continuations are not ours
        elif key in wrapped:
            wrapped[key].append(line)  # the value wrapped onto a line without a key of its own
    for k, parts in wrapped.items():
        fields[k] = " ".join(_join_wrapped(parts))
    vendor = _vendor(fields.get("vendor_id", ""), _first_word(fields.get("cpu implementer", "")))
    if "flags" in fields:
        flags = frozenset(fields["flags"].split())
        arch = "x86_64" if vendor in ("intel", "amd") or "lm" in flags else "unknown"
        return CpuInfo(arch=arch, vendor=vendor, model=fields.get("model name", ""), flags=flags,
                       hypervisor="hypervisor" in flags, truncated=truncated)
    if "features" in fields:
        return CpuInfo(arch="arm64", vendor=vendor, model=arm_part_name(fields.get("cpu part", "")),
                       flags=frozenset(fields["features"].split()), hypervisor=None, truncated=truncated)
    return CpuInfo(vendor=vendor, model=fields.get("model name", ""), truncated=truncated)


def _parse_lscpu(lines: Sequence[str], truncated: bool) -> CpuInfo:
    values: dict[str, str] = {}
    flag_lines: list[str] = []
    in_flags = False
    for line in lines:
        m = re.match(r"\s*([A-Za-z][^:]*):\s*(.*)$", line)
        if m and not (in_flags and line.startswith(" " * 10) and ":" not in line.split()[0]):
            key, value = m.group(1).strip(), m.group(2)
            in_flags = key == "Flags"
            if in_flags:
                flag_lines.append(value)
            else:
                values.setdefault(key, value.strip())
        elif in_flags and line.strip():
            flag_lines.append(line)
        else:
            in_flags = False
    raw_arch = values.get("Architecture", "")
    arch = normalise_arch(raw_arch)
    flags = frozenset(_join_wrapped(flag_lines))
    vendor = _vendor(values.get("Vendor ID", ""), "")
    hv = ("hypervisor" in flags) if arch == "x86_64" else None
    return CpuInfo(arch=arch, vendor=vendor, model=values.get("Model name", ""), flags=flags, hypervisor=hv,
                   source="lscpu", truncated=truncated)
