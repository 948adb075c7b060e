"""probes/gpu_probe.py for real: on this machine (no GPU, no driver, no libcuda) and with a stand-in
nvidia-smi on PATH that replays recorded real outputs (tests/data/gpu) the way the real tool prints them."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfci.checks import gpu
from pytest_perfci.collect.gpu import gather
from pytest_perfci.hosts.local import LocalHost

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "pytest_perfci" / "probes" / "gpu_probe.py"
DATA = ROOT / "tests" / "data" / "gpu"


def run_probe(*args: str, path: str | None = None) -> gpu.ProbeReport:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    proc = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return gpu.ProbeReport.model_validate_json(proc.stdout)


def libcuda_loads() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def test_probe_reports_this_machine_as_it_is() -> None:
    report = run_probe()
    assert report.proc_driver is os.path.isdir("/proc/driver/nvidia")
    assert report.module_loaded is os.path.isdir("/sys/module/nvidia")
    assert (report.smi_path is not None) is (shutil.which("nvidia-smi") is not None)
    assert (report.cuda.library is not None) is libcuda_loads()
    assert report.euid == os.geteuid()
    if not report.proc_driver and report.smi_path is None:  # this development machine
        assert gpu.judge_driver(report).line().startswith(
            "no NVIDIA device: /proc/driver/nvidia absent, nvidia-smi not found")
        assert report.smi_q.error == "nvidia-smi not found on PATH" and report.smi_q.rc is None
        assert report.params is None and report.proc_gpus == []
    if report.cuda.library is None:
        assert "libcuda.so.1" in report.cuda.load_error and report.cuda.steps == []


def test_probe_through_a_host_installs_runs_and_removes_itself() -> None:
    host = LocalHost()
    report, raw = gather(host, cuda=False)
    assert raw.exited == 0 and report.cuda.steps == [] and report.cuda.library is None  # --no-cuda
    assert report.proc_driver is os.path.isdir("/proc/driver/nvidia")
    left = [p for p in Path("/tmp").glob("perfci-probe.*") if (p / "gpu_probe.py").exists()]
    assert left == [], "the probe's private temp dir is removed after the run"


def stand_in(tmp_path: Path, script: str) -> str:
    """A directory with an executable nvidia-smi, put first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def test_probe_runs_nvidia_smi_twice_and_keeps_its_output_verbatim(tmp_path: Path) -> None:
    q = DATA / "dcgm-232-ec2-g5-a10g-nvidia-smi-q.txt"
    csv = DATA / "netdata-tesla-p100-query-gpu-nounits.csv"
    path = stand_in(tmp_path, f'case "$1" in -q) cat "{q}" ;; --query-gpu=*) cat "{csv}" ;; *) exit 2 ;; esac\n')
    report = run_probe("--no-cuda", path=path)
    assert report.smi_path == str(tmp_path / "bin" / "nvidia-smi")
    assert report.smi_q.rc == 0 and report.smi_q.stdout == q.read_text()
    assert report.smi_csv.rc == 0 and gpu.parse_query_csv(report.smi_csv.stdout)[0]["name"] == "Tesla P100-PCIE-16GB"
    if not report.proc_driver:  # nvidia-smi installed, no kernel module: the driver is not loaded
        assert gpu.judge_driver(report).line() == "NVIDIA driver not loaded: /proc/driver/nvidia absent (nvidia-smi present)"


def test_probe_keeps_a_failing_nvidia_smi_exit_code_and_words(tmp_path: Path) -> None:
    words = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
             "Make sure that the latest NVIDIA driver is installed and running.")
    path = stand_in(tmp_path, f'echo "{words}"\nexit 9\n')
    report = run_probe("--no-cuda", path=path)
    assert (report.smi_q.rc, report.smi_q.stdout.strip()) == (9, words)
    if not report.proc_driver:
        verdict = gpu.judge_driver(report)
        assert verdict.reason is gpu.Reason.NO_DRIVER
        assert verdict.detail == f"/proc/driver/nvidia absent (nvidia-smi exited 9: {words})"


@pytest.mark.skipif(libcuda_loads(), reason="this machine has a libcuda: the missing-library path is not its own")
def test_cuda_part_reports_the_loader_error_of_this_machine() -> None:
    report = run_probe()
    assert report.cuda.library is None and report.cuda.device_count is None
    assert "cannot open shared object file" in report.cuda.load_error
    assert json.loads(report.model_dump_json())["cuda"]["allocated_bytes"] == 0
