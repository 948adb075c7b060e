"""Kill a real pytest run and count what it left in EC2 (issue 3, "How it is checked", bullet 2).

Each test starts `pytest <sleeper> --instance-type=m7i.large -p tests.ec2_harness` in a subprocess
against the moto server (its own process: its state outlives the run, as AWS's would) with the
instance mapped to the loopback sshd, shoots it at a known moment and then lists what moto still has.

Moments are known, not guessed: the harness writes marker files (`address-called` when a
provisioning thread asks how to reach the running instance, and holds it there with
PERFCI_TEST_ADDRESS_DELAY; `teardown-active` once the shielded teardown has begun), and the
sleeper test writes `test-running` just before it sleeps.

* SIGINT / SIGTERM while provisioning, SIGINT / SIGTERM during a test: exit code 2 (interrupted),
  zero live instances, zero key pairs, zero non-default security groups, no private key on disk.
* SIGKILL during a test: one instance, one key pair, one security group left; `perfci reap` (dry run)
  lists them and deletes nothing; with `--yes` (by run id, or by the run's ledger) zero are left;
  a second reap has nothing to do and exits 0.
* A second (and third) signal while the teardown runs: each prints the shield's line, and the
  teardown still completes (zero left).
* --perfci-keep: the instance stays up, the printed ssh command logs in, the printed reap removes it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_perfci.cleanup.signals import message
from tests.moto_server import MotoServer
from tests.sshd import SshdServer
from tests.test_ec2_e2e import NOTHING, created, leftovers

ROOT = Path(__file__).parents[1]
TYPE = "m7i.large"
PERFCI = Path(sys.executable).with_name("perfci")

SLEEPER = '''\
import os
import time
from pathlib import Path


def test_sleeps(host):
    host.run("true")
    Path(os.environ["PERFCI_TEST_MARKERS"], "test-running").write_text("")
    time.sleep(float(os.environ.get("PERFCI_TEST_SLEEP", "30")))
'''


@dataclass
class Run:
    """A pytest subprocess being shot at, its output in files (no pipe to fill) and its marker dir."""

    proc: subprocess.Popen[bytes]
    run_id: str
    results: Path
    markers: Path
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)

    def wait_for(self, marker: str, timeout: float = 40) -> float:
        """Seconds since start when `marker` appeared; fails (with the output) if the run ends first."""
        deadline = time.monotonic() + timeout
        while not (self.markers / marker).exists():
            if self.proc.poll() is not None:
                pytest.fail(f"run ended (rc {self.proc.returncode}) before {marker}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {marker} after {timeout}s:\n{self.output()}")
            time.sleep(0.05)
        return time.monotonic() - self.started

    def send(self, sig: signal.Signals) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def finish(self, timeout: float = 40) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"run did not exit within {timeout}s of the signal:\n{self.output()}")

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"

    def keys_on_disk(self) -> list[Path]:
        return sorted((self.results / ".keys").glob("*.pem"))


@pytest.fixture
def start(moto: MotoServer, sshd_server: SshdServer, tmp_path: Path) -> Iterator[object]:
    """start(run_id, *args, **env) -> Run: the sleeper test on one EC2 type, mapped to the sshd."""
    (sshd_server.workdir / "authorized_keys").write_text("")  # only the run's own key may log in
    sleeper = tmp_path / "suite" / "test_sleeper.py"
    sleeper.parent.mkdir()
    sleeper.write_text(SLEEPER)
    runs: list[Run] = []

    def _start(run_id: str, *args: str, **extra_env: str) -> Run:
        results, markers = tmp_path / run_id / "results", tmp_path / run_id / "markers"
        markers.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_"))}
        env.update(moto.env())
        env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(sshd_server.port),
                   PERFCI_TEST_AUTHORIZED_KEYS=str(sshd_server.workdir / "authorized_keys"),
                   PERFCI_TEST_MARKERS=str(markers), **extra_env)
        out, err = tmp_path / run_id / "stdout", tmp_path / run_id / "stderr"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_harness",
                 f"--rootdir={sleeper.parent}", str(sleeper), f"--instance-type={TYPE}",
                 f"--perfci-run-id={run_id}", f"--perfci-results={results}", "--perfci-ssh-user=root", *args],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
            )
        runs.append(Run(proc, run_id, results, markers, out, err))
        return runs[-1]

    yield _start
    for run in runs:  # a failed assertion must not leave a pytest (and its instance) running
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def reap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script itself, as a user (or a CI cleanup step) would run it."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([str(PERFCI), "reap", *args], capture_output=True, text=True, timeout=60,
                          env=full, stdin=subprocess.DEVNULL, check=False)


def _counts_of(left: dict[str, list[str]]) -> dict[str, int]:
    return {k: len(v) for k, v in left.items()}


def _counts(moto: MotoServer) -> dict[str, int]:
    return _counts_of(leftovers(moto))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["provisioning", "test"])
def test_interrupt_tears_everything_down(start, moto: MotoServer, sig: signal.Signals, moment: str) -> None:
    run_id = f"kill-{sig.name.lower()}-{moment}"
    if moment == "provisioning":
        # The instance exists and is running; its thread is held in the address hook, SSH not yet tried.
        run = start(run_id, PERFCI_TEST_ADDRESS_DELAY="30")
        ready = run.wait_for("address-called")
    else:
        run = start(run_id)
        ready = run.wait_for("test-running")
    assert len(created(moto)) == 1 and _counts(moto) == {"instances": 1, "key_pairs": 1, "security_groups": 1}
    shot = run.send(sig)
    rc = run.finish()
    took = time.monotonic() - shot
    assert rc == pytest.ExitCode.INTERRUPTED, run.output()
    assert leftovers(moto) == NOTHING, run.output()
    assert len(created(moto)) == 1  # nothing launched after the signal either
    assert run.keys_on_disk() == [], run.output()
    assert "teardown: terminating 1 instance(s)" in run.stdout + run.stderr, run.output()
    if sig == signal.SIGTERM:
        assert "received SIGTERM" in run.stdout + run.stderr, run.output()
    if moment == "provisioning":
        assert not (run.markers / "test-running").exists()
        assert (run.markers / "teardown-active").exists()  # the held thread saw the teardown start
    assert took < 30, f"teardown took {took:.1f}s"
    print(f"{run_id}: shot {ready:.1f}s after start; exit {took:.1f}s after the signal")


@pytest.mark.parametrize("by", ["run-id", "ledger"])
def test_sigkill_leaves_resources_that_reap_removes(start, moto: MotoServer, by: str) -> None:
    run = start(f"kill-sigkill-{by}")
    ready = run.wait_for("test-running")
    run.send(signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    left = leftovers(moto)
    assert _counts_of(left) == {"instances": 1, "key_pairs": 1, "security_groups": 1}
    assert created(moto)[0]["State"]["Name"] == "running"

    env = {**os.environ, **moto.env()}
    select = ["--run-id", run.run_id] if by == "run-id" else ["--ledger", str(run.results / "ledger.jsonl")]
    dry = reap(*select, "--region", "us-east-1", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would delete (3)" in dry.stdout and "dry run: pass --yes" in dry.stdout, dry.stdout
    for ids in left.values():
        assert all(i in dry.stdout for i in ids), dry.stdout
    assert leftovers(moto) == left  # a dry run deletes nothing
    keys = list((run.results / ".keys").glob("*.pem"))
    assert len(keys) == 1, "the killed run's private key file is where reap should find it"

    done = reap(*select, "--region", "us-east-1", "--results", str(run.results), "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": 3 deleted, 0 already gone, 0 failed" in done.stdout, done.stdout
    assert leftovers(moto) == NOTHING, done.stdout + done.stderr
    assert not keys[0].exists(), "reap left the private key of the key pair it deleted"
    assert f"removed private key file {keys[0]}" in done.stderr

    again = reap(*select, "--region", "us-east-1", "--yes", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to reap" in again.stdout, again.stdout
    print(f"{run.run_id}: shot {ready:.1f}s after start; left {_counts_of(left)}; reaped with {select[0]}")


def test_second_signal_during_teardown_does_not_skip_it(start, moto: MotoServer) -> None:
    """SIGTERM while provisioning; the teardown waits for the held provisioning thread (up to 2 s more),
    and during that wait SIGTERM and SIGINT arrive again: each prints the shield's line, none cuts it short."""
    run = start("kill-twice", PERFCI_TEST_ADDRESS_DELAY="30", PERFCI_TEST_TEARDOWN_HOLD="2")
    ready = run.wait_for("address-called")
    shot = run.send(signal.SIGTERM)
    run.wait_for("teardown-active", timeout=15)
    run.send(signal.SIGTERM)
    time.sleep(0.3)
    run.send(signal.SIGINT)
    rc = run.finish()
    print(f"{run.run_id}: shot {ready:.1f}s after start; exit {time.monotonic() - shot:.1f}s after the first signal")
    assert rc == pytest.ExitCode.INTERRUPTED, run.output()
    # the same line for both, whichever phase of the teardown each landed in: the run's whole reap command
    lines = [line for line in run.stderr.splitlines() if line.startswith(message(run.run_id).split(" — ")[0])]
    assert len(lines) == 2 and lines[0] == lines[1], run.output()
    assert f"--results {run.results}" in lines[0], run.output()
    assert leftovers(moto) == NOTHING, run.output()
    assert run.keys_on_disk() == [], run.output()
    assert (run.markers / "address-returned").exists()  # the held thread was waited for, not abandoned


def test_keep_leaves_the_host_up_reachable_and_reapable(start, moto: MotoServer, sshd_server: SshdServer) -> None:
    run = start("kept-run", "--perfci-keep", PERFCI_TEST_SLEEP="0")
    assert run.finish(timeout=60) == 0, run.output()
    out = run.stdout
    assert "perfci kept" in out, run.output()
    section = out[out.index("perfci kept"):].splitlines()[1:]
    [iid] = [i["InstanceId"] for i in created(moto)]
    assert _counts(moto) == {"instances": 1, "key_pairs": 1, "security_groups": 1}  # nothing torn down
    assert len(run.keys_on_disk()) == 1

    host_line = next(line for line in section if line.startswith(f"{TYPE} {iid}: ssh "))
    ssh = shlex.split(host_line.split(": ", 1)[1])
    login = subprocess.run([*ssh[:-1], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", ssh[-1], "true"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert login.returncode == 0, f"{ssh}: {login.stderr}"

    tags = {t["Key"]: t["Value"] for t in created(moto)[0]["Tags"]}
    expires_line = next(line for line in section if line.strip().startswith("expires-at"))
    assert tags["perfci:expires-at"] in expires_line and "self-destruct" in expires_line, expires_line
    assert any("heartbeat has stopped" in line for line in section), section

    reap_line = next(line for line in section if f"perfci reap --run-id {run.run_id} --yes" in line)
    cmd = shlex.split(reap_line.split(": ", 1)[1])
    assert cmd[0] == "perfci"
    done = reap(*cmd[2:], env={**os.environ, **moto.env()})
    assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers(moto) == NOTHING, done.stdout
