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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.hosts.ssh import SSHHost
from pytest_perfci.providers.ec2.userdata import extend_deadline
from pytest_perfci.tags import TAG_EXPIRES
from tests.moto_server import MotoServer, start_moto
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


def _env(moto: MotoServer, sshd: SshdServer | None, results: Path, spool: Path, **extra: str) -> dict[str, str]:
    """For the pytest under test; without an sshd only arm64 instances can be reached (all twins)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PERFCI_", "AWS_")) or k.startswith("PERFCI_TWIN_")}
    env.update(moto.env())
    if sshd is not None:
        env.update(PERFCI_TEST_SSHD_PORT=str(sshd.port),
                   PERFCI_TEST_AUTHORIZED_KEYS=str(sshd.workdir / "authorized_keys"))
    env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_TWIN_LAUNCHER=str(spool), **extra)
    return env


@pytest.fixture
def spool(moto: MotoServer, sshd_server: SshdServer, tmp_path: Path) -> Iterator[Path]:
    """A twin launcher for this test, in its own session (it outlives any pytest the test kills)."""
    (sshd_server.workdir / "authorized_keys").write_text("")  # only the run's own key may log in
    with launched(tmp_path / "spool", {**os.environ, **moto.env()}) as path:
        yield path


def _instance(moto: MotoServer) -> dict[str, Any]:
    [inst] = created(moto)
    return inst


@dataclass
class Countdown:
    """What the first half of the self-destruct test saw, for the test at the end of the module to judge."""

    moto: MotoServer
    spool: Path
    results: Path
    run_id: str
    output: str
    instance: dict[str, Any] = field(default_factory=dict)   # as moto listed it right after the SIGKILL
    ready: dict[str, Any] = field(default_factory=dict)      # the launcher's .ready: port, QEMU pid, console
    alive_after_kill: bool = False
    armed: int = 0            # /etc/perfci/expires-at on the guest after the kill
    cloud_init: str = ""      # `cloud-init status` on the guest
    fired_before: bool = True
    expires: int = 0          # the deadline the test moved it to


@pytest.fixture(scope="module")
def self_destruct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Countdown]:
    """The first half of the self-destruct test: a run on a moto server of its own (no per-test reset
    wipes its instance) is SIGKILLed mid-test, and its twin's deadline is moved to a few seconds ahead.

    Module-scoped so that the matrix test can start the countdown (up to the checker's 60 s) and run
    while it goes (the twin tests' time budget); the test at the end of the module judges the outcome.
    """
    root = tmp_path_factory.mktemp("self-destruct")
    moto = start_moto(root / "moto.log")
    run = Countdown(moto=moto, spool=root / "spool", results=root / "results", run_id="twin-self-destruct",
                    output="")
    markers = root / "markers"
    markers.mkdir()
    sleeper = root / "suite" / "test_sleeper.py"
    sleeper.parent.mkdir()
    sleeper.write_text(SLEEPER)
    try:
        with launched(run.spool, {**os.environ, **moto.env()}):
            env = _env(moto, None, run.results, run.spool, PERFCI_TEST_MARKERS=str(markers),
                       PERFCI_TEST_SLEEP="900")
            with (root / "out").open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_twin_harness",
                     f"--rootdir={sleeper.parent}", str(sleeper), "--instance-type=c7g.large",
                     f"--perfci-run-id={run.run_id}", f"--perfci-results={run.results}", "--perfci-ssh-user=root"],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                )
            try:
                deadline = time.monotonic() + 420
                while not (markers / "test-running").exists() and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            run.output = (root / "out").read_text(errors="replace") + (run.spool / "launcher.log").read_text()
            if (markers / "test-running").exists():
                _arm(run)
            yield run
    finally:
        moto.process.terminate()
        moto.process.wait(timeout=10)


def _arm(run: Countdown) -> None:
    """After the kill: look at the guest with the killed run's own key and host key, then fast-forward to
    "the last heartbeat was one TTL ago": the heartbeat's own write moves the deadline a few seconds ahead."""
    run.instance = _instance(run.moto)
    iid = run.instance["InstanceId"]
    run.ready = json.loads((run.spool / f"{iid}.ready").read_text())
    run.alive_after_kill = _alive(run.ready["pid"])
    host = SSHHost("c7g.large", "127.0.0.1", user="root", port=run.ready["port"],
                   key_filename=run.results / ".keys" / f"{run.instance['KeyName']}.pem",
                   known_hosts=run.results / ".keys" / f"{iid}.known_hosts", connect_timeout=30)
    try:
        run.armed = int(host.run("cat /etc/perfci/expires-at", timeout=60).stdout)
        run.cloud_init = host.run("cloud-init status", timeout=60).stdout.strip()
        run.fired_before = host.run("test -e /etc/perfci/fired", timeout=60, check=False).ok
        run.expires = int(time.time()) + 5
        extend_deadline(host, run.expires)
    finally:
        host.close()


@pytest.mark.usefixtures("self_destruct")  # starts the countdown, judged by the last test of this module
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


def test_killed_runs_twin_powers_itself_off_at_expires_at_and_is_terminated(self_destruct: Countdown) -> None:
    """Cleanup layer 2 for real, after a SIGKILL: the guest outlived the killed pytest with the deadline its
    user data armed (the instance's perfci:expires-at, one TTL of at least 15 min); moved a few seconds
    ahead, the checker powered the guest off, the launcher terminated the instance, and `perfci reap
    --run-id` removes the key pair and security group the killed run left."""
    run = self_destruct
    assert run.instance, f"the run under test never reached its test:\n{run.output[-4000:]}"
    iid = run.instance["InstanceId"]
    assert run.instance["State"]["Name"] == "running" and run.alive_after_kill, "the guest must outlive the kill"
    tags = {t["Key"]: t["Value"] for t in run.instance["Tags"]}
    tag = int(datetime.fromisoformat(tags[TAG_EXPIRES]).timestamp())
    assert 0 <= run.armed - tag <= 1, (run.armed, tags[TAG_EXPIRES])  # the tag and the on-host deadline agree
    assert run.armed - run.expires > 14 * 60  # the product's TTL (>= 15 min), untouched until the test moved it
    assert run.cloud_init == "status: done" and not run.fired_before

    gone = wait_file(run.spool / f"{iid}.exit", 300, run.spool / "launcher.log")
    delay = gone["exited_at"] - run.expires
    print(f"\nself-destruct: expires-at -> power-off {delay:.1f} s (the checker runs every 60 s, on the guest's clock "
          f"synced to QEMU's RTC every 10 s); QEMU {run.ready['pid']} exit {gone['returncode']}, "
          f"instance {gone['action']}")
    console = Path(run.ready["console"]).read_text(errors="replace")
    assert gone["returncode"] == 0 and gone["action"] == "terminated", (gone, console[-2000:])
    assert "perfci-twin: shutdown -h now" in console and "reboot: Power down" in console, console[-2000:]
    assert _instance(run.moto)["State"]["Name"] == "terminated"
    assert leftovers(run.moto) == {"instances": [], "key_pairs": [run.instance["KeyName"]],
                                   "security_groups": [run.instance["SecurityGroups"][0]["GroupId"]]}

    # Layer 3 for the rest: the key pair and security group the killed run left.
    env = {**os.environ, **run.moto.env()}
    done = reap("--run-id", run.run_id, "--region", "us-east-1", "--results", str(run.results), "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers(run.moto) == NOTHING, done.stdout + done.stderr
    assert not list((run.results / ".keys").glob("*.pem")), "reap left the killed run's private key"
