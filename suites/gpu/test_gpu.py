"""Does this target have the NVIDIA GPUs its type promises, usable from CUDA, with ECC and open counters?

Thin by design: the probe gathers on the host once (collect.gpu), pure checks judge (checks.gpu,
checks.expectations), and each test turns one verdict into an outcome with a sentence a human reads.
On a machine without a GPU every test says which piece was missing (xfail when nothing is expected of
the target, a pass when its type is known to have no GPU).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pytest_perfci.checks.expectations import Expectations, Outcome, decide
from pytest_perfci.checks.gpu import (
    GpuSpec,
    ProbeReport,
    Verdict,
    expected_from_spec,
    judge_cuda,
    judge_cuda_count,
    judge_devices,
    judge_driver,
    judge_ecc,
    judge_profiling,
)
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import Result
from pytest_perfci.outcomes import conclude, target_key
from pytest_perfci.results.plugin import Recorder


def expected(host: Host, expectations: Expectations, spec: GpuSpec | None, capability: str) -> tuple | None:
    """The expectations file wins; else what the type's GPU info implies (GPUs: available; none: absent)."""
    return (expectations.for_target(target_key(host)).get(capability)
            or expected_from_spec(spec).get(capability))


def outcome(verdict: Verdict, want: tuple | None) -> Outcome:
    if verdict.state == "mismatch":  # the host contradicts its own type: wrong whatever is expected
        return Outcome(action="fail", message=f"{verdict.capability}: {verdict.line()}")
    return decide(verdict.capability, verdict.finding, verdict.line(), want)


def record(verdict: Verdict, host: Host, perfci_capability: Callable[..., None]) -> None:
    perfci_capability(f"gpu.{verdict.capability}", verdict.ok,
                      verdict.detail if verdict.ok else verdict.line(), host=host, finding=verdict.finding)


def attach_probe(perfci_record: Recorder, gathered: tuple[ProbeReport, Result]) -> None:
    report, raw = gathered
    perfci_record.attach("gpu probe (JSON)", report.model_dump(mode="json"), "json")
    if report.smi_q.stdout or report.smi_q.stderr:
        perfci_record.attach("nvidia-smi -q", f"{report.smi_q.stdout}\n--- stderr ---\n{report.smi_q.stderr}")
    if raw.stderr.strip():
        perfci_record.attach("probe stderr", raw.stderr)


def test_driver(host: Host, gpu_report: tuple[ProbeReport, Result], gpu_spec: GpuSpec | None,
                expectations: Expectations, perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """The nvidia kernel module is loaded (/proc/driver/nvidia) and nvidia-smi answers."""
    attach_probe(perfci_record, gpu_report)
    verdict = judge_driver(gpu_report[0])
    record(verdict, host, perfci_capability)
    conclude([outcome(verdict, expected(host, expectations, gpu_spec, "driver"))])


def test_devices(host: Host, gpu_report: tuple[ProbeReport, Result], gpu_spec: GpuSpec | None,
                 expectations: Expectations, perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """Count, model and memory per GPU as the type's GPU info says; the driver's three readers agree."""
    verdict = judge_devices(gpu_report[0], gpu_spec if gpu_spec is not None and gpu_spec.count else None)
    if gpu_spec is not None:
        perfci_record.attach("expected GPUs", gpu_spec.model_dump(mode="json"), "json")
    record(verdict, host, perfci_capability)
    conclude([outcome(verdict, expected(host, expectations, gpu_spec, "devices"))])


def test_ecc(host: Host, gpu_report: tuple[ProbeReport, Result], gpu_spec: GpuSpec | None,
             expectations: Expectations, perfci_capability: Callable[..., None]) -> None:
    """ECC mode enabled (current and pending) on every GPU."""
    verdict = judge_ecc(gpu_report[0])
    record(verdict, host, perfci_capability)
    conclude([outcome(verdict, expected(host, expectations, gpu_spec, "ecc"))])


def test_cuda(host: Host, gpu_report: tuple[ProbeReport, Result], gpu_spec: GpuSpec | None,
              expectations: Expectations, perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """libcuda.so.1 loads, cuInit succeeds, every device takes a context and a 64 MiB allocation."""
    report = gpu_report[0]
    perfci_record.attach("CUDA calls", json.dumps(report.cuda.model_dump(mode="json"), indent=1), "json")
    verdict = judge_cuda(report)
    record(verdict, host, perfci_capability)
    outcomes = [outcome(verdict, expected(host, expectations, gpu_spec, "cuda"))]
    disagree = judge_cuda_count(report)
    if disagree is not None:
        outcomes.append(outcome(disagree, None))
    conclude(outcomes)


def test_profiling_counters(host: Host, gpu_report: tuple[ProbeReport, Result], gpu_spec: GpuSpec | None,
                            expectations: Expectations, perfci_capability: Callable[..., None]) -> None:
    """GPU performance counters open to non-admin users (RmProfilingAdminOnly: 0), or why not."""
    verdict = judge_profiling(gpu_report[0])
    record(verdict, host, perfci_capability)
    conclude([outcome(verdict, expected(host, expectations, gpu_spec, "profiling"))])

