"""EC2 end to end with target twins standing in for moto's instances (tests/ec2_twin_harness.py).

Each arm64 instance is a guest that the twin launcher (tests/twin_launcher.py) boots outside the pytest
under test, with the instance's user data as moto holds it; guest and instance live and die together.

* `pytest suites/pmc --instance-type=c7g.large,m7i.large -n 2`: the matrix tells c7g (arm64, counters
  counted, readers agreeing) from m7i (this x86 VM, no PMU); the run's teardown terminates the instance
  and the launcher takes its guest down with it.
* Cleanup layer 2 for real: pytest is SIGKILLed mid-test; the guest lives on with the self-destruct the
  user data armed; at the deadline the guest powers itself off, the launcher turns that into
  TerminateInstances (InstanceInitiatedShutdownBehavior=terminate), and `perfci reap` removes the key
  pair and security group. The expires-at -> power-off delay is printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.hosts.ssh import SSHHost
from pytest_perfci.providers.ec2.userdata import extend_deadline
from pytest_perfci.tags import TAG_EXPIRES
from tests.moto_server import MotoServer
from tests.sshd import SshdServer
from tests.test_ec2_e2e import NOTHING, created, leftovers
from tests.test_kill import SLEEPER, reap
from tests.test_twins import _alive
from tests.twin_launcher import launched, wait_file

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None,
    reason="qemu-system-aarch64 not installed: apt-get install qemu-system-arm (.ci/run installs it)",
)


def _env(moto: MotoServer, sshd: SshdServer, results: Path, spool: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PERFCI_", "AWS_")) or k.startswith("PERFCI_TWIN_")}
    env.update(moto.env())
    env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(sshd.port),
               PERFCI_TEST_AUTHORIZED_KEYS=str(sshd.workdir / "authorized_keys"),
               PERFCI_TEST_TWIN_LAUNCHER=str(spool), **extra)
    return env


@pytest.fixture
def spool(moto: MotoServer, sshd_server: SshdServer, tmp_path: Path) -> Iterator[Path]:
    """A twin launcher for this test, in its own session (it outlives any pytest the test kills)."""
    (sshd_server.workdir / "authorized_keys").write_text("")  # only the run's own key may log in
    with launched(tmp_path / "spool", {**os.environ, **moto.env()}) as path:
        yield path


def test_c7g_is_an_arm64_twin_with_counters_and_m7i_has_no_pmu(
    moto: MotoServer, sshd_server: SshdServer, spool: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_twin_harness",
         f"--perfci-results={results}", "--perfci-ssh-user=root", "--perfci-run-id=ec2-twins", "-rA",
         # test_cpi_count is where counters and reader agreement are decided; the wider events run on the
         # twin in tests/test_twins.py already, so this run stays short (the budget of twin tests is ~4 min).
         "suites/pmc", "-k", "test_cpi_count", "--instance-type=c7g.large,m7i.large", "-n", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=_env(moto, sshd_server, results, spool),
        stdin=subprocess.DEVNULL, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out + (spool / "launcher.log").read_text()
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
    # The provider waited for the twin's user data as for cloud-init's on an instance.
    assert "c7g.large i-" in out and ": cloud-init done (0)" in out, out
    assert leftovers(moto) == NOTHING
    booted = [p.stem for p in spool.glob("*.ready")]
    assert len(booted) == 1, booted  # one twin, for the one arm64 instance
    ready = json.loads((spool / f"{booted[0]}.ready").read_text())
    gone = wait_file(spool / f"{booted[0]}.exit", 60, spool / "launcher.log")  # terminated at moto: guest off
    assert gone["action"] == "none" and not _alive(ready["pid"]), gone


def _instance(moto: MotoServer) -> dict[str, Any]:
    [inst] = created(moto)
    return inst


def test_killed_runs_twin_powers_itself_off_at_expires_at_and_is_terminated(
    moto: MotoServer, sshd_server: SshdServer, spool: Path, tmp_path: Path
) -> None:
    run_id = "twin-self-destruct"
    results, markers = tmp_path / "results", tmp_path / "markers"
    markers.mkdir()
    sleeper = tmp_path / "suite" / "test_sleeper.py"
    sleeper.parent.mkdir()
    sleeper.write_text(SLEEPER)
    env = _env(moto, sshd_server, results, spool, PERFCI_TEST_MARKERS=str(markers), PERFCI_TEST_SLEEP="900")
    with (tmp_path / "out").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_twin_harness",
             f"--rootdir={sleeper.parent}", str(sleeper), "--instance-type=c7g.large", f"--perfci-run-id={run_id}",
             f"--perfci-results={results}", "--perfci-ssh-user=root"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 420
        while not (markers / "test-running").exists():
            assert proc.poll() is None, (tmp_path / "out").read_text() + (spool / "launcher.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "out").read_text()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    inst = _instance(moto)
    iid = inst["InstanceId"]
    ready = json.loads((spool / f"{iid}.ready").read_text())
    assert inst["State"]["Name"] == "running" and _alive(ready["pid"]), "the guest must outlive the killed pytest"
    assert leftovers(moto) == {"instances": [iid], "key_pairs": [inst["KeyName"]],
                               "security_groups": [inst["SecurityGroups"][0]["GroupId"]]}

    # What the user data armed on the guest, with the killed run's own key and host key.
    host = SSHHost("c7g.large", "127.0.0.1", user="root", port=ready["port"],
                   key_filename=results / ".keys" / f"{inst['KeyName']}.pem",
                   known_hosts=results / ".keys" / f"{iid}.known_hosts", connect_timeout=30)
    armed = int(host.run("cat /etc/perfci/expires-at", timeout=60).stdout)
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    tag = int(datetime.fromisoformat(tags[TAG_EXPIRES]).timestamp())
    assert 0 <= armed - tag <= 1, (armed, tags[TAG_EXPIRES])  # the tag and the on-host deadline: one TTL
    assert armed - time.time() > 14 * 60  # the product's TTL (>= 15 min), untouched
    assert host.run("cloud-init status", timeout=60).stdout.strip() == "status: done"
    assert not host.run("test -e /etc/perfci/fired", timeout=60, check=False).ok

    # Fast-forward to "the last heartbeat was one TTL ago": the heartbeat's own write path moves the
    # deadline to a few seconds from now; nothing else touches the guest.
    expires = int(time.time()) + 5
    extend_deadline(host, expires)
    host.close()
    gone = wait_file(spool / f"{iid}.exit", 300, spool / "launcher.log")
    delay = gone["exited_at"] - expires
    print(f"\nself-destruct: expires-at -> power-off {delay:.1f} s (the checker runs every 60 s, on the guest's clock "
          f"synced to QEMU's RTC every 10 s); QEMU {ready['pid']} exit {gone['returncode']}, instance {gone['action']}")
    console = Path(ready["console"]).read_text(errors="replace")
    assert gone["returncode"] == 0 and gone["action"] == "terminated", (gone, console[-2000:])
    assert "perfci-twin: shutdown -h now" in console and "reboot: Power down" in console, console[-2000:]
    assert _instance(moto)["State"]["Name"] == "terminated"

    # Layer 3 for the rest: the key pair and security group the killed run left.
    left = leftovers(moto)
    assert left["instances"] == [] and len(left["key_pairs"]) == 1 and len(left["security_groups"]) == 1
    env = {**os.environ, **moto.env()}
    done = reap("--run-id", run_id, "--region", "us-east-1", "--results", str(results), "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers(moto) == NOTHING, done.stdout + done.stderr
    assert not list((results / ".keys").glob("*.pem")), "reap left the killed run's private key"
