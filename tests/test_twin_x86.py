"""The x86_64 target twin for real: Debian's amd64 kernel under qemu-system-x86_64 TCG, a VM with no PMU.

Two boots of about 10 s each, at once (two cores): the PMC suite as a user runs it, in a subprocess, and one
guest of this process that asks its kernel why. Skipped only when qemu-system-x86_64 is missing (install.sh
--dev installs qemu-system-x86). The first run builds the amd64 image (about 20 s here), later runs use the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.qemu import QemuProvider
from pytest_perfci.settings import Settings

ROOT = Path(__file__).parents[1]
# What Debian's 6.1 amd64 kernel logs when the CPU offers no architectural perfmon (x86 TCG emulates none).
KERNEL_LINE = "Performance Events: PMU not available due to virtualization, using software events only."

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None,
    reason="qemu-system-x86_64 not installed: apt-get install qemu-system-x86 (install.sh --dev installs it)",
)


def _env() -> dict[str, str]:
    keep = ("PERFCI_TWIN_CACHE", "PERFCI_TWIN_MIRROR", "PERFCI_TWIN_SECURITY_MIRROR")
    return {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_") or k in keep}


class SuiteRun:
    def __init__(self, proc: subprocess.Popen[str], results: Path) -> None:
        self.proc, self.results = proc, results


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteRun]:
    """`pytest suites/pmc --provider=qemu --qemu-machine x86_64`, started first so that its guest boots while
    this module's own does; the image is built here, once, before either starts (they would share the lock)."""
    from pytest_perfci.twins.image import ImageBuilder

    ImageBuilder("amd64", progress=lambda line: print(line, file=sys.stderr)).build()
    results = tmp_path_factory.mktemp("suite")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/pmc", "--provider=qemu", "--qemu-machine", "x86_64", "-rA",
         "-p", "no:cacheprovider", f"--perfci-results={results}", "--perfci-run-id=twin-x86"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), stdin=subprocess.DEVNULL,
    )
    try:
        yield SuiteRun(proc, results)
    finally:
        if proc.poll() is None:  # its test failed or was deselected: the run (and its guest) go
            proc.kill()
            proc.communicate()


def test_x86_64_twin_kernel_has_no_pmu_and_says_why(suite_run: SuiteRun, tmp_path: Path) -> None:
    """A real amd64 kernel booted over virtio-net-pci (the NIC that did not come up before NET_MODULES was
    put in dependency order), with no core PMU and the kernel's own line saying so; powered off cleanly."""
    settings = Settings(provider="qemu", qemu={"machine": ("x86_64",)}, results=tmp_path, run_id="twin-x86-self")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    provider = QemuProvider(settings, ledger=ledger, progress=lambda line: print(line, file=sys.stderr))
    try:
        host = provider.acquire(provider.targets()[0])
        facts = host.facts
        assert (facts.arch, facts.twin, facts.hypervisor) == ("x86_64", "x86_64", "qemu-tcg")
        assert facts.kernel.endswith("-amd64") and not facts.core_pmu
        assert "software" in facts.pmu_devices and "cpu" not in facts.pmu_devices
        dmesg = host.run("dmesg", timeout=60).stdout
        assert KERNEL_LINE in dmesg, [ln for ln in dmesg.splitlines() if "erf" in ln]
        assert "virtio_net" in host.run("cat /proc/modules", timeout=60).stdout
        guest = provider._guests["x86_64"]
    finally:
        provider.release_all()
    assert guest.process.returncode == 0 and "reboot: Power down" in guest.console.read_text()
    assert "insmod" not in guest.console.read_text()  # the init script names any module that failed to load
    assert ledger.outstanding("twin-x86-self") == []


def test_x86_64_twin_suite_gives_no_pmu_verdicts_with_the_cause(suite_run: SuiteRun) -> None:
    """Every PMC capability is NO-PMU ("no hardware PMU exposed"), and expected so (expectations.toml's x86_64
    entry, sourced by the kernel line above): the run passes. Without that entry the same verdicts are xfails
    carrying the full cause (tests/test_twin_verdicts.py judges the recorded outputs both ways)."""
    out, err = suite_run.proc.communicate(timeout=900)
    results = suite_run.results
    assert suite_run.proc.returncode == 0, out + err
    assert "8 passed" in out, out  # every absence matches expectations.toml's x86_64 entry
    assert "twin x86_64 SSH-ready on 127.0.0.1:" in out
    cells = {r["capability"]: r for r in json.loads((results / "twin-x86" / "capabilities.json").read_text())}
    assert set(cells) == {"pmu", "cycles", "instructions", "cache-references", "cache-misses", "branches",
                          "branch-misses", "ref-cycles", "stalled-cycles-frontend", "stalled-cycles-backend"}
    for name, cell in cells.items():
        assert (cell["ok"], cell["code"], cell["state"], cell["detail"]) == (
            False, "NO-PMU", "absent", "no hardware PMU exposed"), (name, cell)
    assert "cpi" not in cells  # nothing counted, so no ratio was judged
    assert "10 absent as expected" in out and "[1] no hardware PMU exposed" in out, out
    assert Ledger(results / "ledger.jsonl").outstanding() == []
