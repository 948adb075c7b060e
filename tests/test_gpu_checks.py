"""GPU verdicts (pytest_perfci/checks/gpu.py) on recorded real outputs (tests/data/gpu, PROVENANCE.md).

The expected GPUs of each recorded machine come from the real catalogue (moto's copy of
DescribeInstanceTypes, the same data the EC2 provider reads) and from suites/gpu/expectations.toml
(AWS's instance-type pages): both must accept the real output of their GPU, and a wrong type must be
told apart with both sides named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.ec2.models.instance_types import INSTANCE_TYPES  # moto's copy of the real EC2 catalogue

from pytest_perfci.checks import gpu
from pytest_perfci.checks.expectations import load_expectations
from pytest_perfci.models.instance_types import InstanceTypeInfo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gpu"
A10G = DATA / "dcgm-232-ec2-g5-a10g-nvidia-smi-q.txt"
L4 = DATA / "gls-L4-nvidia-smi-q.txt"
L40S = DATA / "gls-L40S-nvidia-smi-q.txt"
A100X4 = DATA / "gls-A100-SXM4-80GB-x4-nvidia-smi-q.txt"
H100X8 = DATA / "gls-H100-SXM-x8-nvidia-smi-q.txt"
RTX4090X8 = DATA / "gls-RTX4090-x8-nvidia-smi-q.txt"
NO_GPU = DATA / "local-firecracker-vm-no-gpu-probe.json"
# nvidia-smi's words when the module does not answer (its source: the NVML error path of nvidia-smi,
# pasted in e.g. NVIDIA/nvidia-docker issues); RmProfilingAdminOnly as /proc/driver/nvidia/params shows it
# on an H100 host (Crusoe support article "How To Enable NVIDIA GPU Performance Counters for Non-Admin Users").
NO_DRIVER_TEXT = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                  "Make sure that the latest NVIDIA driver is installed and running.\n\n")
PARAMS_RESTRICTED = "RmProfilingAdminOnly: 1\n"


def info(name: str) -> InstanceTypeInfo:
    parsed = InstanceTypeInfo.from_api(INSTANCE_TYPES[name])
    assert parsed is not None
    return parsed


def catalogue_spec(name: str) -> gpu.GpuSpec:
    t = info(name)
    return gpu.GpuSpec(count=t.gpu_count, model="|".join(t.gpu_models), memory_mib=t.gpu_memory_mib or 0,
                       source=f"DescribeInstanceTypes GpuInfo of {name}")


def page_spec(name: str) -> gpu.GpuSpec:
    stated = load_expectations(ROOT / "suites" / "gpu" / "expectations.toml").gpu_for(name)
    assert stated is not None, name
    g, source = stated
    return gpu.GpuSpec(count=g.count, model=g.model, memory_mib=int(g.memory_gib * 1024), source=source)


def report_for(path: Path, params: str | None = PARAMS_RESTRICTED) -> gpu.ProbeReport:
    """A host whose nvidia-smi -q printed the recorded output (its /proc entries follow from it)."""
    text = path.read_text()
    log = gpu.parse_smi_q(text)
    return gpu.ProbeReport(proc_driver=True, module_loaded=True, smi_path="/usr/bin/nvidia-smi",
                           proc_gpus=[g.bus_id.lower()[4:] for g in log.gpus], params=params,
                           smi_q=gpu.Command(rc=0, stdout=text))


# --- parsers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "driver", "count", "name", "memory", "ecc"), [
    (A10G, "535.247.01", 1, "NVIDIA A10G", 23028, "Enabled"),
    (L4, "550.90.07", 1, "NVIDIA L4", 23034, "Enabled"),
    (L40S, "550.127.05", 1, "NVIDIA L40S", 46068, "Enabled"),
    (A100X4, "555.42.02", 4, "NVIDIA A100-SXM4-80GB", 81920, "Enabled"),
    (H100X8, "565.57.01", 8, "NVIDIA H100 80GB HBM3", 81559, "Enabled"),
    (RTX4090X8, "550.127.05", 8, "NVIDIA GeForce RTX 4090", 24564, "Disabled"),
])
def test_smi_q_parser_on_recorded_outputs(path: Path, driver: str, count: int, name: str, memory: int,
                                          ecc: str) -> None:
    log = gpu.parse_smi_q(path.read_text())
    assert (log.driver_version, log.attached, len(log.gpus)) == (driver, count, count)
    assert {(g.name, g.memory_mib, g.ecc_current, g.ecc_pending) for g in log.gpus} == {(name, memory, ecc, ecc)}
    assert len({g.bus_id for g in log.gpus}) == count
    # "Total" under BAR1 Memory Usage (32768 / 131072 / 256 MiB) is never taken for the frame buffer
    assert all(g.memory_mib != 32768 and g.memory_mib != 131072 for g in log.gpus)


def test_query_csv_parser_on_recorded_nounits_output() -> None:
    (row,) = gpu.parse_query_csv((DATA / "netdata-tesla-p100-query-gpu-nounits.csv").read_text())
    assert row["name"] == "Tesla P100-PCIE-16GB" and row["fan.speed"] is None  # [N/A]
    assert gpu.mib(row["memory.free"]) == 16280 and gpu.mib("23028 MiB") == 23028 and gpu.mib("[N/A]") is None
    assert "memory.free" in row and "memory.free [MiB]" not in row


def test_params_parser() -> None:
    params = gpu.parse_params("ResmanDebugLevel: 4294967295\nRmProfilingAdminOnly: 1\nEnableGpuFirmware: 18\n")
    assert params["RmProfilingAdminOnly"] == "1" and len(params) == 3


@pytest.mark.parametrize(("expected", "product", "match"), [
    ("A10G", "NVIDIA A10G", True),
    ("A100", "NVIDIA A100-SXM4-80GB", True),
    ("H100", "NVIDIA H100 80GB HBM3", True),
    ("T4g", "NVIDIA T4G", True),
    ("T4", "Tesla T4", True),
    ("T4", "NVIDIA T4G", False),
    ("L4", "NVIDIA L40S", False),
    ("L40S", "NVIDIA L40S", True),
    ("A10G", "NVIDIA GeForce RTX 4090", False),
    ("A100|H100", "NVIDIA H100 80GB HBM3", True),
])
def test_model_names_match_by_whole_word(expected: str, product: str, match: bool) -> None:
    assert gpu.model_matches(expected, product) is match


# --- devices against the type -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "itype"), [
    (A10G, "g5.xlarge"), (L4, "g6.xlarge"), (L40S, "g6e.xlarge"), (H100X8, "p5.48xlarge"),
])
def test_recorded_gpus_match_their_type_by_catalogue_and_by_page(path: Path, itype: str) -> None:
    report = report_for(path)
    for spec in (catalogue_spec(itype), page_spec(itype)):
        verdict = gpu.judge_devices(report, spec)
        assert verdict.state == "available", verdict.line()
        assert spec.source in verdict.detail


def test_count_mismatch_names_both_sides() -> None:
    """The recorded 4 x A100-SXM4-80GB machine is half a p4de.24xlarge."""
    verdict = gpu.judge_devices(report_for(A100X4), catalogue_spec("p4de.24xlarge"))
    assert (verdict.state, verdict.reason) == ("mismatch", gpu.Reason.COUNT_MISMATCH)
    assert verdict.line() == ("device count mismatch: host has 4 x NVIDIA A100-SXM4-80GB (81920, 81920, 81920, "
                              "81920 MiB), type has 8 x A100 (81920 MiB each) [DescribeInstanceTypes GpuInfo of "
                              "p4de.24xlarge]")


def test_model_and_memory_mismatches() -> None:
    wrong_model = gpu.judge_devices(report_for(RTX4090X8), catalogue_spec("g5.48xlarge"))
    assert wrong_model.reason is gpu.Reason.MODEL_MISMATCH and "'NVIDIA GeForce RTX 4090'" in wrong_model.detail
    # an A10G where the type says 16 GiB per GPU (g4dn's T4 figure) with the model taken as given
    t4_memory = catalogue_spec("g4dn.xlarge").model_copy(update={"model": "A10G"})
    memory = gpu.judge_devices(report_for(A10G), t4_memory)
    assert memory.reason is gpu.Reason.MEMORY_MISMATCH
    assert "has 23028 MiB, type has 16384 MiB per GPU (tolerance 8%)" in memory.detail


def test_readers_must_agree() -> None:
    report = report_for(H100X8)
    fewer = report.model_copy(update={"proc_gpus": report.proc_gpus[:7]})
    verdict = gpu.judge_devices(fewer, catalogue_spec("p5.48xlarge"))
    assert verdict.reason is gpu.Reason.READERS_DISAGREE
    assert verdict.detail == "/proc/driver/nvidia/gpus has 7 entries, nvidia-smi -q lists 8"
    csv = gpu.Command(rc=0, stdout="index, name, memory.total [MiB]\n0, NVIDIA A10G, 23028 MiB\n")
    one_row = report.model_copy(update={"smi_csv": csv})
    assert gpu.judge_devices(one_row, None).detail == "nvidia-smi --query-gpu lists 1, nvidia-smi -q 8"


def test_no_spec_is_available_and_says_nothing_was_compared() -> None:
    verdict = gpu.judge_devices(report_for(L4), None)
    assert verdict.ok and "no GPU info for this target to compare" in verdict.detail


# --- driver, ECC, CUDA, profiling -------------------------------------------------------------------


def test_this_machine_recorded_no_gpu_says_which_pieces_are_absent() -> None:
    report = gpu.ProbeReport.model_validate(json.loads(NO_GPU.read_text()))
    expected_line = "no NVIDIA device: /proc/driver/nvidia absent, nvidia-smi not found; nvidia module not loaded"
    for judge in (gpu.judge_driver, gpu.judge_ecc):
        assert judge(report).line() == expected_line
    assert gpu.judge_devices(report, catalogue_spec("g5.xlarge")).line() == expected_line
    cuda = gpu.judge_cuda(report)
    assert cuda.reason is gpu.Reason.LIBCUDA_MISSING
    assert cuda.detail.startswith("libcuda.so.1 cannot be loaded (libcuda.so.1: cannot open shared object file")
    profiling = gpu.judge_profiling(report)
    assert profiling.reason is gpu.Reason.PARAMS_MISSING and expected_line in profiling.detail
    assert gpu.presence(report) == (False, expected_line)


def test_driver_states_each_missing_piece() -> None:
    loaded = report_for(A10G)
    assert gpu.judge_driver(loaded).line() == "driver 535.247.01, CUDA 12.2, nvidia-smi lists 1 GPU"
    no_smi = loaded.model_copy(update={"smi_path": None, "smi_q": gpu.Command(error="nvidia-smi not found on PATH"),
                                       "driver_version_file": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  "
                                                              "535.247.01  Tue Apr 29 20:05:50 UTC 2025\n"})
    verdict = gpu.judge_driver(no_smi)
    assert verdict.reason is gpu.Reason.NO_SMI and "535.247.01" in verdict.detail
    failing = gpu.Command(rc=9, stdout=NO_DRIVER_TEXT)
    not_loaded = loaded.model_copy(update={"proc_driver": False, "module_loaded": False, "smi_q": failing})
    verdict = gpu.judge_driver(not_loaded)
    assert verdict.reason is gpu.Reason.NO_DRIVER
    assert verdict.detail.startswith("/proc/driver/nvidia absent (nvidia-smi exited 9: NVIDIA-SMI has failed")
    mismatched = loaded.model_copy(update={"smi_q": failing})  # module there, NVML cannot talk to it
    assert gpu.judge_driver(mismatched).reason is gpu.Reason.NO_DRIVER
    no_devices = loaded.model_copy(update={"smi_q": gpu.Command(rc=0, stdout="No devices were found\n")})
    assert gpu.judge_driver(no_devices).line() == "no GPU attached: nvidia-smi -q lists no GPU (No devices were found)"


def test_ecc_verdicts() -> None:
    assert gpu.judge_ecc(report_for(A10G)).line() == "ECC enabled on all 1 GPUs"
    disabled = gpu.judge_ecc(report_for(RTX4090X8))
    assert disabled.reason is gpu.Reason.ECC_DISABLED and "NVIDIA GeForce RTX 4090: ECC Mode Current Disabled" in \
        disabled.detail
    # the recorded A10G output with its pending mode flipped, as `nvidia-smi -e 0` leaves it until a reboot
    text = A10G.read_text().replace("        Pending                           : Enabled",
                                    "        Pending                           : Disabled", 1)
    assert text != A10G.read_text()
    pending = report_for(A10G).model_copy(update={"smi_q": gpu.Command(rc=0, stdout=text)})
    assert gpu.judge_ecc(pending).line() == ("ECC change pending reboot: 00000000:00:1E.0 NVIDIA A10G: ECC Enabled, "
                                             "Disabled after the next reboot")


CUDA_OK = gpu.CudaReport(library="libcuda.so.1", driver_version=12020, device_count=1, allocated_bytes=64 << 20,
                         steps=[{"call": c, "result": 0, "name": "CUDA_SUCCESS"} for c in
                                ("cuDriverGetVersion", "cuInit", "cuDeviceGetCount", "cuCtxCreate_v2",
                                 "cuMemAlloc_v2", "cuMemFree_v2")])


def test_cuda_verdicts() -> None:
    """CUDA answers as the driver API documents them (CUDA_ERROR_NO_DEVICE = 100, OUT_OF_MEMORY = 2)."""
    base = report_for(A10G)
    ok = gpu.judge_cuda(base.model_copy(update={"cuda": CUDA_OK}))
    assert ok.line() == "CUDA 12.2: 1 device, context and 67108864 bytes allocated and freed on each"
    no_device = CUDA_OK.model_copy(update={"device_count": None, "steps": [
        {"call": "cuDriverGetVersion", "result": 0}, {"call": "cuInit", "result": 100, "name": "CUDA_ERROR_NO_DEVICE"}]})
    assert gpu.judge_cuda(base.model_copy(update={"cuda": no_device})).line() == \
        "CUDA sees no device: cuInit returned 100 CUDA_ERROR_NO_DEVICE (libcuda.so.1)"
    oom = CUDA_OK.model_copy(update={"steps": [*CUDA_OK.steps[:4], {
        "call": "cuMemAlloc_v2", "result": 2, "name": "CUDA_ERROR_OUT_OF_MEMORY", "device": 0}]})
    assert gpu.judge_cuda(base.model_copy(update={"cuda": oom})).line() == \
        "CUDA call failed: cuMemAlloc_v2 returned 2 CUDA_ERROR_OUT_OF_MEMORY on device 0"
    eight = report_for(H100X8).model_copy(update={"cuda": CUDA_OK})
    disagree = gpu.judge_cuda_count(eight)
    assert disagree is not None and disagree.detail == "cuDeviceGetCount says 1, nvidia-smi -q lists 8"
    assert gpu.judge_cuda_count(base.model_copy(update={"cuda": CUDA_OK})) is None


def test_profiling_counters_restricted_or_open() -> None:
    restricted = gpu.judge_profiling(report_for(A10G))
    assert restricted.reason is gpu.Reason.PROFILING_ADMIN_ONLY and restricted.detail.startswith(
        "RmProfilingAdminOnly: 1")
    opened = gpu.judge_profiling(report_for(A10G, params="RmProfilingAdminOnly: 0\n"))
    assert opened.ok and opened.detail == "RmProfilingAdminOnly: 0 (open to non-admin users)"
    silent = gpu.judge_profiling(report_for(A10G, params="ResmanDebugLevel: 4294967295\n"))
    assert silent.reason is gpu.Reason.PARAMS_MISSING and "no RmProfilingAdminOnly line" in silent.detail


def test_expected_states_follow_the_types_gpu_info() -> None:
    assert gpu.expected_from_spec(None) == {}
    with_gpus = gpu.expected_from_spec(catalogue_spec("g5.xlarge"))
    assert set(with_gpus) == {"driver", "devices", "cuda"} and {s for s, _ in with_gpus.values()} == {"available"}
    none = gpu.expected_from_spec(gpu.GpuSpec(count=0, model="", memory_mib=0, source="no GpuInfo for m7i.large"))
    assert {s for s, _ in none.values()} == {"unavailable"}


# --- the shared verdict vocabulary (checks.verdict) --------------------------------------------------


@pytest.mark.parametrize("reason", list(gpu.Reason), ids=lambda r: r.name)
def test_every_gpu_reason_has_a_known_code_that_its_sentence_also_reads_as(reason: gpu.Reason) -> None:
    from pytest_perfci.checks.verdict import CODE_MEANINGS, reason_code

    assert reason.code in CODE_MEANINGS
    assert reason_code(reason.value) == reason.code


def test_gpu_findings_on_recorded_outputs() -> None:
    from pytest_perfci.checks.verdict import State

    here = gpu.ProbeReport.model_validate(json.loads(NO_GPU.read_text()))
    assert (gpu.judge_driver(here).finding.state, gpu.judge_driver(here).finding.code) == (State.ABSENT, "NO-GPU")
    assert gpu.judge_cuda(here).finding.code == "NO-CUDA"
    half = gpu.judge_devices(report_for(A100X4), catalogue_spec("p4de.24xlarge")).finding
    assert (half.state, half.code) == (State.FAILED, "MISMATCH") and half.detail.startswith("device count mismatch")
    assert gpu.judge_ecc(report_for(RTX4090X8)).finding.code == "ECC-OFF"
    assert gpu.judge_profiling(report_for(A10G)).finding.code == "ADMIN-ONLY"
    ok = gpu.judge_devices(report_for(A10G), catalogue_spec("g5.xlarge")).finding
    assert (ok.state, ok.code) == (State.AVAILABLE, "")
