"""GPU verdicts: the NVIDIA driver, the devices against the instance type, ECC, CUDA, profiling counters.

Pure: text and JSON the probe (probes/gpu_probe.py) gathered on the host in, typed verdicts out. The
parsers are tested on recorded real `nvidia-smi -q` and `--query-gpu` outputs (tests/data/gpu/, each
with its source in PROVENANCE.md); the no-GPU path on this machine's own probe output.

Reasons are as precise as the PMC suite's: which file was absent, which command was missing or failed
and how, which CUDA call returned which error, which counts differ. A verdict is `available`,
`unavailable` (with the reason) or `mismatch` (the host contradicts what its type promises: a failure
whatever the expectations say).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pytest_perfci.checks.verdict import Finding, State, found

# nvidia-smi's FB total differs from the catalogue's figure: the API says 22888 MiB for g5's A10G, the
# driver 23028 MiB (tests/data/gpu/dcgm-232-ec2-g5-a10g-nvidia-smi-q.txt); AWS's pages say 24 GiB.
# ECC on GDDR6 (T4, A10G, L4, L40S) reserves 1/16 = 6.25 % of the memory. 8 % covers both and still
# tells a 16 GiB card from a 24 GiB one.
MEMORY_TOLERANCE = 0.08

# nvidia-smi's own words when the kernel module does not answer (driver not loaded or mismatched).
_NO_DRIVER = re.compile(r"couldn't communicate with the NVIDIA driver|Driver/library version mismatch|"
                        r"NVML_ERROR_DRIVER_NOT_LOADED|Failed to initialize NVML", re.IGNORECASE)
_NO_DEVICES = re.compile(r"No devices were found", re.IGNORECASE)
_MIB = re.compile(r"^\s*(\d+)\s*MiB\s*$")


class Reason(str, Enum):
    NO_DEVICE = "no NVIDIA device"  # neither the driver's /proc entry nor nvidia-smi
    NO_DRIVER = "NVIDIA driver not loaded"  # nvidia-smi present, /proc/driver/nvidia absent
    NO_SMI = "nvidia-smi missing"  # the driver is loaded, its tool is not installed
    SMI_FAILED = "nvidia-smi failed"
    NO_GPUS = "no GPU attached"  # the driver answers and lists none
    COUNT_MISMATCH = "device count mismatch"
    MODEL_MISMATCH = "model mismatch"
    MEMORY_MISMATCH = "memory mismatch"
    READERS_DISAGREE = "readers disagree"
    ECC_DISABLED = "ECC disabled"
    ECC_UNSUPPORTED = "ECC not supported"
    ECC_PENDING = "ECC change pending reboot"
    LIBCUDA_MISSING = "libcuda missing"
    CUDA_FAILED = "CUDA call failed"
    CUDA_NO_DEVICE = "CUDA sees no device"
    PARAMS_MISSING = "driver parameters unreadable"
    PROFILING_ADMIN_ONLY = "profiling restricted to admin users"

    @property
    def code(self) -> str:
        """The shared reason code (checks.verdict) the matrix and Allure show for this reason."""
        return _REASON_CODES[self]


_REASON_CODES: dict[Reason, str] = {
    Reason.NO_DEVICE: "NO-GPU", Reason.NO_GPUS: "NO-GPU", Reason.CUDA_NO_DEVICE: "NO-GPU",
    Reason.NO_DRIVER: "NO-DRIVER", Reason.PARAMS_MISSING: "NO-DRIVER", Reason.NO_SMI: "NO-SMI",
    Reason.SMI_FAILED: "SMI-FAILED", Reason.COUNT_MISMATCH: "MISMATCH", Reason.MODEL_MISMATCH: "MISMATCH",
    Reason.MEMORY_MISMATCH: "MISMATCH", Reason.READERS_DISAGREE: "DISAGREE", Reason.ECC_DISABLED: "ECC-OFF",
    Reason.ECC_PENDING: "ECC-OFF", Reason.ECC_UNSUPPORTED: "NO-HW", Reason.LIBCUDA_MISSING: "NO-CUDA",
    Reason.CUDA_FAILED: "CUDA-FAILED", Reason.PROFILING_ADMIN_ONLY: "ADMIN-ONLY",
}


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    capability: str
    state: Literal["available", "unavailable", "mismatch"]
    reason: Reason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "available"

    def line(self) -> str:
        """The reason first (short, for tables), then the evidence."""
        if self.reason is None:
            return self.detail
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value

    @property
    def finding(self) -> Finding:
        """This verdict in the shared vocabulary: a host that contradicts its type (or whose readers
        disagree) fails whatever was expected; any other unavailability is an absence."""
        state = {"available": State.AVAILABLE, "unavailable": State.ABSENT, "mismatch": State.FAILED}[self.state]
        return found(state, self.reason.code if self.reason is not None else "", self.line())


# --- what the probe reports -------------------------------------------------------------------------


class Command(BaseModel):
    """One command the probe ran: exit code (None: not found / not run), its output, and why not."""

    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # e.g. "not found on PATH", "timed out after 60 s"


class CudaReport(BaseModel):
    """What the ctypes calls into libcuda.so.1 returned (see probes/gpu_probe.py)."""

    library: str | None = None  # the path or soname that loaded
    load_error: str = ""
    driver_version: int | None = None  # cuDriverGetVersion: 12020 = 12.2
    steps: list[dict[str, Any]] = []  # [{"call": "cuInit", "result": 0, "name": "CUDA_SUCCESS"}, ...]
    device_count: int | None = None
    devices: list[dict[str, Any]] = []  # [{"index": 0, "name": "NVIDIA A10G", "total_mib": 22731}]
    allocated_bytes: int = 0  # bytes cuMemAlloc returned and cuMemFree gave back, per device, summed


class ProbeReport(BaseModel):
    """The probe's JSON: files read and commands run on the host, nothing judged there."""

    proc_driver: bool = False  # /proc/driver/nvidia exists
    driver_version_file: str | None = None  # /proc/driver/nvidia/version
    proc_gpus: list[str] = []  # entries of /proc/driver/nvidia/gpus (one per device the driver bound)
    module_loaded: bool = False  # /sys/module/nvidia
    params: str | None = None  # /proc/driver/nvidia/params
    smi_path: str | None = None
    smi_q: Command = Field(default_factory=Command)
    smi_csv: Command = Field(default_factory=Command)
    cuda: CudaReport = Field(default_factory=CudaReport)
    euid: int | None = None


# --- parsers (recorded real outputs in tests/data/gpu) ------------------------------------------------


class SmiGpu(BaseModel):
    bus_id: str
    name: str = ""
    memory_mib: int | None = None  # FB Memory Usage / Total
    ecc_current: str | None = None  # Enabled | Disabled | N/A
    ecc_pending: str | None = None


class SmiLog(BaseModel):
    driver_version: str | None = None
    cuda_version: str | None = None
    attached: int | None = None
    gpus: list[SmiGpu] = []


def parse_smi_q(text: str) -> SmiLog:
    """`nvidia-smi -q`: the header and, per `GPU <bus id>` block, name, FB total and ECC mode.

    The format is indented "Key : Value" lines with sections (a key without a value); a value is read
    by its section path, so "Total" under "FB Memory Usage" is not "Total" under "BAR1 Memory Usage".
    Section names changed case over the years ("Ecc Mode" in 4xx drivers, "ECC Mode" later).
    """
    log = SmiLog()
    stack: list[tuple[int, str]] = []
    gpu: SmiGpu | None = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("="):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0 and line.startswith("GPU ") and ":" in line[4:]:
            gpu = SmiGpu(bus_id=line[4:].strip())
            log.gpus.append(gpu)
            stack = []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if ":" not in line:  # a section: "FB Memory Usage", "ECC Mode"
            stack.append((indent, line.lower()))
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        path = tuple(name for _, name in stack)
        if gpu is None:
            if key == "Driver Version":
                log.driver_version = value
            elif key == "CUDA Version":
                log.cuda_version = value
            elif key == "Attached GPUs" and value.isdigit():
                log.attached = int(value)
            continue
        if key == "Product Name" and not path:
            gpu.name = value
        elif path == ("fb memory usage",) and key == "Total":
            match = _MIB.match(value)
            gpu.memory_mib = int(match.group(1)) if match else None
        elif path == ("ecc mode",) and key == "Current":
            gpu.ecc_current = value
        elif path == ("ecc mode",) and key == "Pending":
            gpu.ecc_pending = value
    return log


def parse_query_csv(text: str) -> list[dict[str, str | None]]:
    """`nvidia-smi --query-gpu=... --format=csv[,nounits]`: one dict per GPU keyed by field name.

    The header names the fields ("memory.total [MiB]"); units in the header are dropped from keys,
    units in values are kept for the caller (mib()); "[N/A]" and "N/A" become None.
    """
    rows = list(csv.reader(io.StringIO(text.strip()), skipinitialspace=True))
    if not rows:
        return []
    keys = [re.sub(r"\s*\[.*\]$", "", k.strip()) for k in rows[0]]
    out = []
    for row in rows[1:]:
        if not row:
            continue
        values = [v.strip() for v in row]
        out.append({k: (None if v in ("[N/A]", "N/A", "[Not Supported]") else v) for k, v in zip(keys, values, strict=False)})
    return out


def mib(value: str | None) -> int | None:
    """'23028 MiB' or '23028' -> 23028."""
    if value is None:
        return None
    match = re.match(r"^\s*(\d+)(?:\s*MiB)?\s*$", value)
    return int(match.group(1)) if match else None


def parse_params(text: str) -> dict[str, str]:
    """/proc/driver/nvidia/params ("RmProfilingAdminOnly: 1" lines) -> {name: value}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


# --- expected GPUs --------------------------------------------------------------------------------


class GpuSpec(BaseModel):
    """What a target should have: from DescribeInstanceTypes GpuInfo, or an expectations.toml entry."""

    model_config = ConfigDict(frozen=True)

    count: int
    model: str  # as AWS names it: A10G, L4, A100, H100, T4g
    memory_mib: int  # per device
    source: str = ""

    def line(self) -> str:
        return f"{self.count} x {self.model} ({self.memory_mib} MiB each)"


def model_matches(expected: str, product_name: str) -> bool:
    """AWS's 'A10G' in nvidia-smi's 'NVIDIA A10G', 'A100' in 'NVIDIA A100-SXM4-40GB', 'T4g' in 'NVIDIA
    T4G': a whole word of the product name (split at spaces and dashes), case-insensitive, so 'L4' is
    not 'L40S' and 'T4' is not 'T4G'. A glob ('H100*') matches a word too; '|' separates alternatives."""
    words = [w for w in re.split(r"[\s\-]+", product_name.lower()) if w]
    return any(fnmatch.fnmatchcase(w, alt) for alt in expected.lower().split("|") if alt for w in words)


# --- verdicts -------------------------------------------------------------------------------------


def _smi_failure(cmd: Command) -> str:
    text = " ".join((cmd.stdout + " " + cmd.stderr).split())
    return f"nvidia-smi exited {cmd.rc}: {text[:200]}" if text else f"nvidia-smi exited {cmd.rc} without output"


def judge_driver(report: ProbeReport) -> Verdict:
    """Is the driver loaded and does nvidia-smi answer? Each absent piece is named."""
    cap = "driver"
    smi_missing = report.smi_path is None
    if not report.proc_driver and smi_missing:
        module = "; nvidia module not loaded" if not report.module_loaded else ""
        return Verdict(capability=cap, state="unavailable", reason=Reason.NO_DEVICE,
                       detail=f"/proc/driver/nvidia absent, nvidia-smi not found{module}")
    if not report.proc_driver:
        why = _smi_failure(report.smi_q) if report.smi_q.rc else "nvidia-smi present"
        return Verdict(capability=cap, state="unavailable", reason=Reason.NO_DRIVER,
                       detail=f"/proc/driver/nvidia absent ({why})")
    if smi_missing:
        version = (report.driver_version_file or "").splitlines()[0:1]
        return Verdict(capability=cap, state="unavailable", reason=Reason.NO_SMI,
                       detail=f"driver loaded ({' '.join(version[0].split()) if version else 'version unknown'}) "
                              "but nvidia-smi not found on PATH")
    cmd = report.smi_q
    if cmd.rc != 0:
        reason = Reason.NO_DRIVER if _NO_DRIVER.search(cmd.stdout + cmd.stderr) else Reason.SMI_FAILED
        return Verdict(capability=cap, state="unavailable", reason=reason,
                       detail=cmd.error or _smi_failure(cmd))
    log = parse_smi_q(cmd.stdout)
    if not log.gpus:
        detail = "nvidia-smi -q lists no GPU" + (" (No devices were found)" if _NO_DEVICES.search(cmd.stdout) else "")
        return Verdict(capability=cap, state="unavailable", reason=Reason.NO_GPUS, detail=detail)
    return Verdict(capability=cap, state="available",
                   detail=f"driver {log.driver_version or '?'}, CUDA {log.cuda_version or '?'}, "
                          f"nvidia-smi lists {len(log.gpus)} GPU{'s' if len(log.gpus) != 1 else ''}")


def judge_devices(report: ProbeReport, expected: GpuSpec | None) -> Verdict:
    """Count, model and memory of the devices, by three readers (the driver's /proc entries, nvidia-smi -q
    and --query-gpu) which must agree, against the type's GPU info when it is known."""
    cap = "devices"
    driver = judge_driver(report)
    if not driver.ok:
        return driver.model_copy(update={"capability": cap})
    log = parse_smi_q(report.smi_q.stdout)
    seen = len(log.gpus)
    readers = [f"nvidia-smi -q {seen}"]
    if log.attached is not None and log.attached != seen:
        return Verdict(capability=cap, state="mismatch", reason=Reason.READERS_DISAGREE,
                       detail=f"nvidia-smi -q says Attached GPUs {log.attached} but lists {seen}")
    if report.proc_gpus:
        readers.append(f"/proc/driver/nvidia/gpus {len(report.proc_gpus)}")
        if len(report.proc_gpus) != seen:
            return Verdict(capability=cap, state="mismatch", reason=Reason.READERS_DISAGREE,
                           detail=f"/proc/driver/nvidia/gpus has {len(report.proc_gpus)} entries, nvidia-smi -q "
                                  f"lists {seen}")
    if report.smi_csv.rc == 0:
        rows = parse_query_csv(report.smi_csv.stdout)
        readers.append(f"--query-gpu {len(rows)}")
        if len(rows) != seen:
            return Verdict(capability=cap, state="mismatch", reason=Reason.READERS_DISAGREE,
                           detail=f"nvidia-smi --query-gpu lists {len(rows)}, nvidia-smi -q {seen}")
    names = sorted({g.name for g in log.gpus})
    have = f"{seen} x {', '.join(names)} ({', '.join(str(g.memory_mib) for g in log.gpus)} MiB)"
    if expected is None:
        return Verdict(capability=cap, state="available",
                       detail=f"{have}; no GPU info for this target to compare ({'; '.join(readers)})")
    source = f" [{expected.source}]" if expected.source else ""
    if seen != expected.count:
        return Verdict(capability=cap, state="mismatch", reason=Reason.COUNT_MISMATCH,
                       detail=f"host has {have}, type has {expected.line()}{source}")
    wrong = [g for g in log.gpus if not model_matches(expected.model, g.name)]
    if wrong:
        return Verdict(capability=cap, state="mismatch", reason=Reason.MODEL_MISMATCH,
                       detail=f"{wrong[0].bus_id} is {wrong[0].name!r}, type has {expected.line()}{source}")
    for g in log.gpus:
        if g.memory_mib is None or abs(g.memory_mib - expected.memory_mib) > MEMORY_TOLERANCE * expected.memory_mib:
            return Verdict(capability=cap, state="mismatch", reason=Reason.MEMORY_MISMATCH,
                           detail=f"{g.bus_id} has {g.memory_mib} MiB, type has {expected.memory_mib} MiB per GPU "
                                  f"(tolerance {MEMORY_TOLERANCE:.0%}){source}")
    return Verdict(capability=cap, state="available", detail=f"{have} match {expected.line()}{source}")


def judge_ecc(report: ProbeReport) -> Verdict:
    """ECC mode of every GPU: enabled on all is available; disabled, N/A or a pending change is not."""
    cap = "ecc"
    driver = judge_driver(report)
    if not driver.ok:
        return driver.model_copy(update={"capability": cap})
    log = parse_smi_q(report.smi_q.stdout)
    for g in log.gpus:
        current, pending = g.ecc_current or "N/A", g.ecc_pending or "N/A"
        if current == "N/A":
            return Verdict(capability=cap, state="unavailable", reason=Reason.ECC_UNSUPPORTED,
                           detail=f"{g.bus_id} {g.name}: ECC Mode Current N/A")
        if current != pending and pending != "N/A":
            return Verdict(capability=cap, state="unavailable", reason=Reason.ECC_PENDING,
                           detail=f"{g.bus_id} {g.name}: ECC {current}, {pending} after the next reboot")
        if current != "Enabled":
            return Verdict(capability=cap, state="unavailable", reason=Reason.ECC_DISABLED,
                           detail=f"{g.bus_id} {g.name}: ECC Mode Current {current}")
    return Verdict(capability=cap, state="available", detail=f"ECC enabled on all {len(log.gpus)} GPUs")


def _failed_step(cuda: CudaReport) -> dict[str, Any] | None:
    return next((s for s in cuda.steps if s.get("result") not in (0, None)), None)


def judge_cuda(report: ProbeReport) -> Verdict:
    """CUDA usable: libcuda loads, cuInit succeeds, it counts devices, a context and an allocation work."""
    cap = "cuda"
    cuda = report.cuda
    if cuda.library is None:
        driver = judge_driver(report)
        where = f"; {driver.line()}" if not driver.ok else ""
        return Verdict(capability=cap, state="unavailable", reason=Reason.LIBCUDA_MISSING,
                       detail=f"libcuda.so.1 cannot be loaded ({cuda.load_error.split('; ')[0] or 'no error text'}){where}")
    failed = _failed_step(cuda)
    if failed is not None:
        if failed.get("call") == "cuInit" and failed.get("name") == "CUDA_ERROR_NO_DEVICE":
            return Verdict(capability=cap, state="unavailable", reason=Reason.CUDA_NO_DEVICE,
                           detail=f"cuInit returned {failed['result']} CUDA_ERROR_NO_DEVICE ({cuda.library})")
        return Verdict(capability=cap, state="unavailable", reason=Reason.CUDA_FAILED,
                       detail=f"{failed.get('call')} returned {failed.get('result')} {failed.get('name') or ''}"
                              f"{' on device ' + str(failed['device']) if 'device' in failed else ''}".rstrip())
    if not cuda.device_count:
        return Verdict(capability=cap, state="unavailable", reason=Reason.CUDA_NO_DEVICE,
                       detail=f"cuDeviceGetCount says {cuda.device_count} ({cuda.library})")
    version = cuda.driver_version
    ver = f"{version // 1000}.{version % 1000 // 10}" if version else "?"
    return Verdict(capability=cap, state="available",
                   detail=f"CUDA {ver}: {cuda.device_count} device{'s' if cuda.device_count != 1 else ''}, context "
                          f"and {cuda.allocated_bytes} bytes allocated and freed on each")


def judge_cuda_count(report: ProbeReport) -> Verdict | None:
    """CUDA and nvidia-smi must see the same number of devices (None when either cannot tell)."""
    if report.cuda.device_count is None or report.smi_q.rc != 0:
        return None
    seen = len(parse_smi_q(report.smi_q.stdout).gpus)
    if seen and report.cuda.device_count != seen:
        return Verdict(capability="cuda", state="mismatch", reason=Reason.READERS_DISAGREE,
                       detail=f"cuDeviceGetCount says {report.cuda.device_count}, nvidia-smi -q lists {seen}")
    return None


def judge_profiling(report: ProbeReport) -> Verdict:
    """GPU performance counters open to non-admin users (RmProfilingAdminOnly: 0), the counterpart of
    perf_event_paranoid. The driver's default since 418.43 restricts them (NVIDIA's ERR_NVGPUCTRPERM
    notice); NVreg_RestrictProfilingToAdminUsers=0 opens them and shows as RmProfilingAdminOnly: 0."""
    cap = "profiling"
    if report.params is None:
        driver = judge_driver(report)
        why = driver.line() if not driver.ok else "driver loaded but the file is unreadable"
        return Verdict(capability=cap, state="unavailable", reason=Reason.PARAMS_MISSING,
                       detail=f"/proc/driver/nvidia/params absent ({why})")
    value = parse_params(report.params).get("RmProfilingAdminOnly")
    if value is None:
        return Verdict(capability=cap, state="unavailable", reason=Reason.PARAMS_MISSING,
                       detail="/proc/driver/nvidia/params has no RmProfilingAdminOnly line")
    if value != "0":
        return Verdict(capability=cap, state="unavailable", reason=Reason.PROFILING_ADMIN_ONLY,
                       detail=f"RmProfilingAdminOnly: {value} (set NVreg_RestrictProfilingToAdminUsers=0 to open them)")
    return Verdict(capability=cap, state="available", detail="RmProfilingAdminOnly: 0 (open to non-admin users)")


# What a target with GPUs must offer whatever else is expected of it; a type without GPUs must not.
DEVICE_CAPABILITIES = ("driver", "devices", "cuda")


def expected_from_spec(spec: GpuSpec | None) -> dict[str, tuple[Literal["available", "unavailable"], str]]:
    """capability -> (state, source) that the type's GPU info implies: a GPU type must have the driver,
    its devices and CUDA; a type the catalogue lists without GPUs must have none of them (absent as
    expected, a pass). ECC and profiling are the expectations file's to state."""
    if spec is None:
        return {}
    state: Literal["available", "unavailable"] = "available" if spec.count else "unavailable"
    return {cap: (state, spec.source) for cap in DEVICE_CAPABILITIES}


def presence(report: ProbeReport) -> tuple[bool, str]:
    """The `requires(gpu=...)` capability: an NVIDIA GPU the driver answers for."""
    driver = judge_driver(report)
    return driver.ok, driver.line()
