"""The GPU suite end to end: on this machine for real (no GPU), and on replayed hosts of GPU types.

A replay host answers the probe with a report built from a recorded real `nvidia-smi -q` output
(tests/data/gpu, PROVENANCE.md); its provider names the type's catalogue entry from moto's copy of
DescribeInstanceTypes, as the EC2 provider would. The CUDA part of a replayed report is what the driver
API returns when everything works (no real CUDA run is recorded anywhere public with its error codes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfci.checks import gpu

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gpu"
NO_DEVICE = "no NVIDIA device: /proc/driver/nvidia absent, nvidia-smi not found"


def _no_gpu_here() -> bool:
    return not os.path.isdir("/proc/driver/nvidia") and shutil.which("nvidia-smi") is None


@pytest.mark.skipif(not _no_gpu_here(), reason="this machine has an NVIDIA driver or nvidia-smi")
def test_suite_on_this_machine_says_exactly_what_is_absent(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/gpu", "-rxs", "-p", "no:cacheprovider",
         f"--perfci-results={tmp_path}", "--perfci-run-id=gpu-selftest"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "5 xfailed" in out
    for test, capability in (("test_driver", "driver"), ("test_devices", "devices"), ("test_ecc", "ecc")):
        assert (f"XFAIL suites/gpu/test_gpu.py::{test}[local] - {capability}: unavailable and no expectation "
                f"for this target: {NO_DEVICE}") in out
    assert "test_cuda[local] - cuda: unavailable and no expectation for this target: libcuda missing: " in out
    assert "profiling: unavailable and no expectation for this target: driver parameters unreadable: " \
           f"/proc/driver/nvidia/params absent ({NO_DEVICE}" in out
    cells = {r["capability"]: r for r in json.loads((tmp_path / "gpu-selftest" / "capabilities.json").read_text())}
    assert set(cells) == {"gpu.driver", "gpu.devices", "gpu.ecc", "gpu.cuda", "gpu.profiling"}
    assert not any(c["ok"] for c in cells.values())
    assert cells["gpu.driver"]["detail"].startswith(NO_DEVICE)


def _copy_suite(pytester: pytest.Pytester) -> Path:
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    suite = pytester.path / "suites" / "gpu"
    shutil.copytree(ROOT / "suites" / "gpu", suite, ignore=shutil.ignore_patterns("__pycache__"))
    return suite


@pytest.mark.skipif(not _no_gpu_here(), reason="this machine has an NVIDIA driver or nvidia-smi")
def test_a_local_host_stated_to_have_a_gpu_fails_naming_the_evidence(pytester: pytest.Pytester) -> None:
    suite = _copy_suite(pytester)
    with (suite / "expectations.toml").open("a") as fh:
        fh.write('\n[[target]]\nmatch = ["local"]\nsource = "lab inventory: one A10G"\n'
                 'gpu = { count = 1, model = "A10G", memory_gib = 24 }\n')
    result = pytester.runpytest("suites/gpu", "-v", "-rxf", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines_random([
        "*test_driver[[]local[]] FAILED*", "*test_devices[[]local[]] FAILED*", "*test_cuda[[]local[]] FAILED*",
        "*test_ecc[[]local[]] XFAIL*", "*test_profiling_counters[[]local[]] XFAIL*",
        f"*driver: expected available [[]lab inventory: one A10G[]], observed unavailable: {NO_DEVICE}*",
    ])


REPLAY_CONFTEST = r'''
import json, shlex
from moto.ec2.models.instance_types import INSTANCE_TYPES
from pytest_perfci.models.facts import Facts
from pytest_perfci.models.instance_types import InstanceTypeInfo
from pytest_perfci.hosts.result import Result
from pytest_perfci.providers.base import Provider, Target

TYPE = "__TYPE__"
REPORT = __REPORT__


class ReplayHost:
    name = TYPE

    def __init__(self):
        self.facts = Facts(hostname="replay", arch="x86_64", kernel="6.1.0", cpu_vendor="amd",
                           virtualised=True, instance_type=TYPE)

    def run(self, cmd, *, timeout=None, check=True, env=None):
        text = cmd if isinstance(cmd, str) else shlex.join(cmd)
        if "gpu_probe.py" in text:
            return Result(text, json.dumps(REPORT) + "\n", "", 0, 1.0, self.name)
        if text.startswith("mktemp"):
            return Result(text, "/tmp/perfci-probe.replay\n", "", 0, 0.0, self.name)
        return Result(text, "", "", 0, 0.0, self.name)

    def sudo(self, cmd, **kw):
        return self.run(cmd, **kw)

    def put(self, local, remote):
        pass

    def get(self, remote, local):
        pass

    def close(self):
        pass


class ReplayProvider(Provider):
    name = "replay"

    def targets(self):
        return [Target(name=TYPE, provider=self.name, instance_type=TYPE)]

    def type_info(self, target):
        return InstanceTypeInfo.from_api(INSTANCE_TYPES[TYPE])

    def acquire(self, target):
        return ReplayHost()

    def release_all(self):
        pass


def pytest_perfci_make_provider(settings, config):
    return ReplayProvider()
'''


def _report(smi_q: Path | None, params: str | None = "RmProfilingAdminOnly: 1\n") -> dict:
    if smi_q is None:  # this machine's own probe output
        return json.loads((DATA / "local-firecracker-vm-no-gpu-probe.json").read_text())
    text = smi_q.read_text()
    log = gpu.parse_smi_q(text)
    cuda = gpu.CudaReport(library="libcuda.so.1", driver_version=12020, device_count=len(log.gpus),
                          allocated_bytes=64 << 20,
                          steps=[{"call": c, "result": 0, "name": "CUDA_SUCCESS"}
                                 for c in ("cuDriverGetVersion", "cuInit", "cuDeviceGetCount")])
    return gpu.ProbeReport(proc_driver=True, module_loaded=True, smi_path="/usr/bin/nvidia-smi", params=params,
                           proc_gpus=[g.bus_id.lower()[4:] for g in log.gpus], smi_q=gpu.Command(rc=0, stdout=text),
                           cuda=cuda).model_dump(mode="json")


def _replay(pytester: pytest.Pytester, instance_type: str, report: dict) -> pytest.RunResult:
    suite = _copy_suite(pytester)
    (suite / "conftest.py").write_text((suite / "conftest.py").read_text() + REPLAY_CONFTEST
                                       .replace("__TYPE__", instance_type).replace("__REPORT__", repr(report)))
    return pytester.runpytest("suites/gpu", "-v", "-rxfs", "-p", "no:cacheprovider")


def test_replayed_g5_passes_by_its_catalogue_entry(pytester: pytest.Pytester) -> None:
    result = _replay(pytester, "g5.xlarge", _report(DATA / "dcgm-232-ec2-g5-a10g-nvidia-smi-q.txt"))
    result.stdout.fnmatch_lines_random([
        "*test_driver[[]g5.xlarge[]] PASSED*", "*test_devices[[]g5.xlarge[]] PASSED*",
        "*test_ecc[[]g5.xlarge[]] PASSED*", "*test_cuda[[]g5.xlarge[]] PASSED*",
        ("*test_profiling_counters[[]g5.xlarge[]] - profiling: unavailable and no expectation for this target: "
        "profiling restricted to admin users: RmProfilingAdminOnly: 1*"),
    ])
    result.assert_outcomes(passed=4, xfailed=1)


def test_replayed_half_populated_p4de_fails_on_the_device_count(pytester: pytest.Pytester) -> None:
    result = _replay(pytester, "p4de.24xlarge", _report(DATA / "gls-A100-SXM4-80GB-x4-nvidia-smi-q.txt"))
    result.stdout.fnmatch_lines_random([
        "*test_devices[[]p4de.24xlarge[]] FAILED*",
        ("*devices: device count mismatch: host has 4 x NVIDIA A100-SXM4-80GB (81920, 81920, 81920, 81920 MiB), "
        "type has 8 x A100 (81920 MiB each) [[]DescribeInstanceTypes GpuInfo of p4de.24xlarge: 8 x NVIDIA A100 "
        "(81920 MiB each)[]]*"),
    ])
    result.assert_outcomes(passed=3, failed=1, xfailed=1)


def test_replayed_type_without_gpus_is_absent_as_expected(pytester: pytest.Pytester) -> None:
    """m7i.large has no GpuInfo: no driver, devices or CUDA is right there (a pass), said with the cause."""
    result = _replay(pytester, "m7i.large", _report(None))
    result.stdout.fnmatch_lines_random([
        "*test_driver[[]m7i.large[]] PASSED*", "*test_devices[[]m7i.large[]] PASSED*",
        "*test_cuda[[]m7i.large[]] PASSED*", "*test_ecc[[]m7i.large[]] XFAIL*",
    ])
    result.assert_outcomes(passed=3, xfailed=2)


def test_requires_gpu_skips_a_type_without_gpus_before_its_host_is_acquired(pytester: pytest.Pytester) -> None:
    """The marker is decided at collection from the type's catalogue entry: m7i.large is never brought up."""
    conftest = REPLAY_CONFTEST.replace("__TYPE__", "m7i.large").replace("__REPORT__", "{}")
    conftest = conftest.replace("    def acquire(self, target):\n        return ReplayHost()",
                                "    def acquire(self, target):\n        raise AssertionError('acquired')")
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.requires(gpu=True)
        def test_needs_a_gpu(host):
            pass

        @pytest.mark.requires(gpu=False)
        def test_needs_none(perfci_provider):
            pass
    """)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([("*SKIPPED*target m7i.large lacks gpu (m7i.large: DescribeInstanceTypes lists no "
                                 "GpuInfo), test requires gpu=True*")])
    result.assert_outcomes(skipped=1, passed=1)
