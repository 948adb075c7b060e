"""SIGTERM/SIGHUP become a full teardown; a second signal during teardown is announced, not obeyed.

Real signals to real child processes: a plain Python child with a try/finally "teardown", and a
pytest child whose session fixture finalizer must run when the run is killed with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pytest_perfci.cleanup import signals

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_perfci.cleanup import signals

    work = Path(sys.argv[1])
    slow_teardown = sys.argv[2] == "slow"
    seen = []
    signals.install(on_signal=seen.append)

    def wait_for(name):
        deadline = time.monotonic() + 30
        while not (work / name).exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    try:
        (work / "running").write_text("")
        time.sleep(60)
        print("sleep was not interrupted", flush=True)
    except KeyboardInterrupt as exc:
        print(f"KeyboardInterrupt: {exc}", flush=True)
        raise
    finally:
        with signals.shielded("run-sig-1"):
            (work / "teardown-started").write_text("")
            if slow_teardown:
                wait_for("second-signal-sent")
                time.sleep(0.3)  # let the handler run while the teardown is still going
            (work / "marker").write_text(f"torn down after {seen}")
    """
)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.02)


def start_child(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_becomes_keyboard_interrupt_and_teardown_runs(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start_child(tmp_path, "fast")
    wait_for(tmp_path / "running", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert f"KeyboardInterrupt: perfci: received {sig.name}" in out
    assert "sleep was not interrupted" not in out
    assert (tmp_path / "marker").read_text() == f"torn down after [{int(sig)}]"
    assert "KeyboardInterrupt" in err  # it left exactly as Ctrl-C would
    assert proc.returncode != 0
    assert "teardown in progress" not in err


def test_second_signal_during_shielded_teardown_is_announced_and_teardown_completes(tmp_path: Path) -> None:
    proc = start_child(tmp_path, "slow")
    wait_for(tmp_path / "running", proc)
    proc.send_signal(signal.SIGTERM)
    wait_for(tmp_path / "teardown-started", proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C is shielded too
    (tmp_path / "second-signal-sent").write_text("")
    out, err = proc.communicate(timeout=30)
    assert (tmp_path / "marker").exists(), err
    line = (
        "perfci: teardown in progress (run run-sig-1); send SIGKILL to abandon it — "
        "then run `perfci reap --run-id run-sig-1 --yes`"
    )
    lines = [x for x in err.splitlines() if x.startswith("perfci:")]
    assert lines == [line, line], err
    assert "KeyboardInterrupt: perfci: received SIGTERM" in out
    # only the first signal interrupted anything; the teardown itself ran to its end
    assert proc.returncode != 0


CONFTEST = textwrap.dedent(
    """
    from pytest_perfci.cleanup import signals

    def pytest_configure(config):
        config._perfci_uninstall_signals = signals.install()

    def pytest_unconfigure(config):
        config._perfci_uninstall_signals()
    """
)

TEST_FILE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    import pytest

    WORK = Path(os.environ["SIGNAL_TEST_WORK"])

    @pytest.fixture(scope="session")
    def machine():
        (WORK / "provisioned").write_text("")
        yield "host"
        (WORK / "finalized").write_text("instance terminated")

    def test_sleeps(machine):
        (WORK / "running").write_text("")
        time.sleep(60)
    """
)


def test_pytest_run_killed_with_sigterm_runs_session_finalizers(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_sleepy.py").write_text(TEST_FILE)
    (project / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "SIGNAL_TEST_WORK": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_sleepy.py"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wait_for(tmp_path / "running", proc, timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert (tmp_path / "finalized").read_text() == "instance terminated", out
    assert "KeyboardInterrupt" in out
    assert proc.returncode == 2, out  # pytest's "interrupted" exit code


# --- in-process behaviour -------------------------------------------------------------------------


def test_install_and_uninstall_restore_previous_handlers() -> None:
    before = {s: signal.getsignal(s) for s in signals.CONVERTED}
    sigint_before = signal.getsignal(signal.SIGINT)
    uninstall = signals.install()
    try:
        for s in signals.CONVERTED:
            assert signal.getsignal(s) is not before[s]
        assert signal.getsignal(signal.SIGINT) is sigint_before  # SIGINT keeps pytest's default
    finally:
        uninstall()
    assert {s: signal.getsignal(s) for s in signals.CONVERTED} == before


def test_sigterm_to_self_raises_keyboard_interrupt_and_calls_back() -> None:
    seen: list[int] = []
    uninstall = signals.install(on_signal=seen.append)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200):  # the handler runs between bytecodes of the main thread
                time.sleep(0.01)
    finally:
        uninstall()
    assert seen == [signal.SIGTERM]


def test_shielded_swallows_signals_and_restores_sigint(capfd: pytest.CaptureFixture[str]) -> None:
    sigint_before = signal.getsignal(signal.SIGINT)
    uninstall = signals.install()
    try:
        with signals.shielded("run-self-1"):
            assert signals.teardown_active()
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(20):
                time.sleep(0.01)
            done = True
    finally:
        uninstall()
    assert done and not signals.teardown_active()
    assert signal.getsignal(signal.SIGINT) is sigint_before
    assert capfd.readouterr().err.count("teardown in progress (run run-self-1)") == 2


def test_install_off_the_main_thread_is_a_no_op() -> None:
    before = signal.getsignal(signal.SIGTERM)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(signals.install()))
    t.start()
    t.join()
    assert signal.getsignal(signal.SIGTERM) is before
    result[0]()  # type: ignore[operator]  # the returned uninstall is callable and harmless
