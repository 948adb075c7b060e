"""`pytest suites/pmc --provider=inventory` end to end against a real sshd standing in for a lab host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sshd import SshdServer

ROOT = Path(__file__).parents[1]


def _inventory(tmp_path: Path, sshd: SshdServer) -> tuple[Path, Path]:
    lock = tmp_path / "lab.lock"
    inv = tmp_path / "lab.toml"
    inv.write_text(
        f"""
[defaults]
user = "{sshd.user}"
key = "{sshd.client_key}"
known_hosts = "{sshd.known_hosts}"
lock_dir = "{lock}"

[[hosts]]
name = "lab-1"
address = "{sshd.address}:{sshd.port}"
labels = ["x86_64", "vm"]
reset = "touch {tmp_path}/reset-ran"

[[hosts]]
name = "lab-other"
address = "{sshd.address}:{sshd.port}"
labels = ["arm64"]
"""
    )
    return inv, lock


def _pytest(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--perfci-results={tmp_path / 'out'}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False,
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist-2"])
def test_pmc_suite_on_a_lab_host_over_ssh(tmp_path: Path, sshd: SshdServer, workers: list[str]) -> None:
    inv, lock = _inventory(tmp_path, sshd)
    proc = _pytest("suites/pmc", "--provider=inventory", f"--perfci-inventory={inv}", "--perfci-label=vm",
                   "-rx", *workers, tmp_path=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "lab-other" not in out  # label selection: the arm64-labelled host is not a target
    assert "test_cpi_count[lab-1]" in out and "8 xfailed" in out
    assert "lab-1: " in out and "= perfci capabilities =" in out
    assert (tmp_path / "reset-ran").exists(), "reset command did not run after the run"
    assert not lock.exists(), "lock left on the lab host"


def test_bad_inventory_is_a_usage_error_before_any_connection(tmp_path: Path) -> None:
    inv = tmp_path / "lab.toml"
    inv.write_text('[[hosts]]\nname = "x"\nuser = "root"\n')
    proc = _pytest("suites/pmc", "--provider=inventory", f"--perfci-inventory={inv}", tmp_path=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.splitlines()[0].startswith(f"ERROR: perfci: {inv}: hosts[0] (x): missing field 'address'")


def test_no_host_with_the_labels_is_a_usage_error(tmp_path: Path, sshd: SshdServer) -> None:
    inv, _ = _inventory(tmp_path, sshd)
    proc = _pytest("suites/pmc", "--provider=inventory", f"--perfci-inventory={inv}", "--perfci-label=gpu",
                   tmp_path=tmp_path)
    assert proc.returncode == 4
    first = proc.stderr.splitlines()[0]
    assert first.startswith("ERROR: ") and "gpu" in first and "arm64" in first, first
