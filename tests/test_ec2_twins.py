"""EC2 end to end with target twins: `pytest suites/pmc --instance-type=c7g.large,m7i.large -n 2` on moto.

The c7g instance is reached as an arm64 twin (a real arm64 kernel whose perf drives an emulated PMUv3),
the m7i one as this x86 VM without a PMU (tests/ec2_twin_harness.py). The matrix must tell them apart:
c7g arm64 with cycles and instructions counted and both readers agreeing, m7i without a hardware PMU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.moto_server import MotoServer
from tests.sshd import SshdServer
from tests.test_ec2_e2e import NOTHING, leftovers
from tests.test_twins import _alive

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None,
    reason="qemu-system-aarch64 not installed: apt-get install qemu-system-arm (.ci/run installs it)",
)


def test_c7g_is_an_arm64_twin_with_counters_and_m7i_has_no_pmu(
    moto: MotoServer, sshd_server: SshdServer, tmp_path: Path
) -> None:
    (sshd_server.workdir / "authorized_keys").write_text("")
    results = tmp_path / "results"
    pids = tmp_path / "twin-pids"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PERFCI_", "AWS_")) or k.startswith("PERFCI_TWIN_")}
    env.update(moto.env())
    env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(sshd_server.port),
               PERFCI_TEST_AUTHORIZED_KEYS=str(sshd_server.workdir / "authorized_keys"),
               PERFCI_TEST_TWIN_PIDS=str(pids))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_twin_harness",
         f"--perfci-results={results}", "--perfci-ssh-user=root", "--perfci-run-id=ec2-twins", "-rA",
         # test_cpi_count is where counters and reader agreement are decided; the wider events run on the
         # twin in tests/test_twins.py already, so this run stays short (the budget of twin tests is ~4 min).
         "suites/pmc", "-k", "test_cpi_count", "--instance-type=c7g.large,m7i.large", "-n", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert any("PASSED" in ln and "test_cpi_count[c7g.large]" in ln for ln in out.splitlines()), out
    assert any("XFAIL" in ln and "test_cpi_count[m7i.large]" in ln for ln in out.splitlines()), out
    cells = {(r["target"], r["capability"]): r
             for r in json.loads((results / "ec2-twins" / "capabilities.json").read_text())}
    for event in ("cycles", "instructions"):
        arm = cells[("c7g.large", event)]
        assert arm["ok"] and "perf_event_open read" in arm["detail"], arm
        assert "arm64" in arm["facts"], arm
        x86 = cells[("m7i.large", event)]
        assert not x86["ok"] and "no hardware PMU" in x86["detail"], x86
    assert cells[("c7g.large", "cpi")]["ok"]
    assert leftovers(moto) == NOTHING
    booted = [line.split() for line in pids.read_text().splitlines()]
    assert len(booted) == 1, booted  # one twin, for the one arm64 instance
    assert not _alive(int(booted[0][1])), "the twin outlived its run"
