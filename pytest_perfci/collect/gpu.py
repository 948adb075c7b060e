"""The I/O half of the GPU suite: run probes/gpu_probe.py on a host and read its JSON.

The probe runs as the login user, not root: CUDA and the profiling counters are judged as a test
would use them, and RmProfilingAdminOnly is about exactly that user.
"""

from __future__ import annotations

from pydantic import ValidationError

from pytest_perfci.checks.gpu import ProbeReport
from pytest_perfci.collect.probes import installed_probe
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import Result

PROBE = "gpu_probe.py"
TIMEOUT = 600  # nvidia-smi -q twice on eight GPUs plus a CUDA context on each


class ProbeFailed(RuntimeError):
    """The probe itself did not run (no python3, a crash): str() is one line with its last words."""


def run_probe(host: Host, path: str, *, cuda: bool = True, python: str = "python3") -> tuple[ProbeReport, Result]:
    argv = [python, path] + ([] if cuda else ["--no-cuda"])
    result = host.run(argv, timeout=TIMEOUT, check=False)
    lines = result.stdout.strip().splitlines()
    try:
        return ProbeReport.model_validate_json(lines[-1] if lines else ""), result
    except ValidationError:
        last = (result.stderr.strip().splitlines() or [f"exit {result.exited}, no output"])[-1]
        raise ProbeFailed(f"{PROBE} on {host.name}: {last}") from None


def gather(host: Host, *, cuda: bool = True) -> tuple[ProbeReport, Result]:
    """Install the probe, run it once, remove it (for one-off callers such as the `gpu` capability)."""
    with installed_probe(host, PROBE) as path:
        return run_probe(host, path, cuda=cuda)
