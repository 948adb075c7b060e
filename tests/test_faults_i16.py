"""Issue 16's faults against a real moto server: a full disk during teardown, the same run id twice,
a hung endpoint, a skewed clock, and the loose ends (suite tag, root volume expiry, the reap hint).

A full disk is a real one: a 1 MiB tmpfs mounted here (the tests run as root) and filled with a file.
A hung endpoint is a real socket on 127.0.0.1 that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.ec2 import EC2Provider
from tests.moto_server import MotoServer
from tests.test_ec2_provider import NOTHING, make_settings, resources


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path, slack: Path | None = None) -> None:
    """Write a file until the filesystem says ENOSPC; then fill ``slack``'s last page (tmpfs gives a
    file whole pages) with blank lines, which a ledger skips, so its next line does not fit either."""
    _fill(directory / "filler", (65536, 4096, 1))
    if slack is not None:
        _fill(slack, (1,), b"\n")


def _fill(path: Path, sizes: tuple[int, ...], byte: bytes = b"\0") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in sizes:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, byte * size)
        with pytest.raises(OSError) as full:
            os.write(fd, byte)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


def provider(tmp_path: Path, moto: MotoServer, *types: str, ledger: Path | None = None,
             lines: list[str] | None = None, **kw: Any) -> EC2Provider:
    settings = make_settings(tmp_path, moto, *types, run_id=kw.pop("run_id", "perfci-test-run"),
                             **kw.pop("settings", {}))
    out = lines if lines is not None else []
    return EC2Provider(settings, ledger=Ledger(ledger or tmp_path / "ledger.jsonl"), progress=out.append,
                       address=lambda inst: "127.0.0.1:9", ssh_ready_timeout=0.1, waiter_delay=1, **kw)


def provision(p: EC2Provider) -> None:
    for t in p.targets():
        with pytest.raises(Exception, match="SSH not ready"):
            p.acquire(t)


# -- 2. full disk ------------------------------------------------------------------------------------------


def test_full_disk_during_teardown_still_terminates_everything(tmp_path: Path, moto: MotoServer) -> None:
    """The ledger's deleted lines cannot be written: every resource is deleted anyway and the error
    names the bookkeeping failure at the end."""
    with small_tmpfs(tmp_path / "disk") as disk:
        p = provider(tmp_path, moto, "m7i.large", "c7g.large", ledger=disk / "ledger.jsonl")
        provision(p)
        assert len(resources(moto)["instances"]) == 2
        fill(disk, slack=disk / "ledger.jsonl")
        with pytest.raises(engine.TeardownError) as info:
            p.release_all()
        assert resources(moto) == NOTHING
        msg = str(info.value)
        assert "\n" not in msg
        assert "not written (OSError: No space left on device)" in msg
        assert "deleted all the same" in msg
        # The ledger still lists them; a later reap (disk freed) finds them gone and closes them.
        (disk / "filler").unlink()
        again = engine.teardown(engine.Context(p.ec2), p.ledger, "perfci-test-run")
        assert again.counts()["failed"] == 0 and again.counts()["deleted"] == 0
        assert p.ledger.outstanding("perfci-test-run") == []


def test_full_disk_before_the_run_is_one_line_and_creates_nothing(tmp_path: Path, moto: MotoServer) -> None:
    """The run lock is the first file a run writes: on a full disk it is a one-line error, not a traceback."""
    with small_tmpfs(tmp_path / "disk") as disk:
        fill(disk)
        p = provider(tmp_path, moto, "m7i.large", settings={"results": disk})
        with pytest.raises(RuntimeError) as info:
            p.validate()
        msg = str(info.value)
        assert "\n" not in msg
        assert msg.startswith(f"cannot write the run lock {disk}/.locks/perfci-test-run.lock (OSError: No space")
        assert resources(moto) == NOTHING


# -- 1. the same run id twice ---------------------------------------------------------------------------


def test_second_run_with_a_live_run_id_is_refused_and_leaves_the_first_alone(
    tmp_path: Path, moto: MotoServer
) -> None:
    """Run A is up; run B (another results directory, as on another machine) uses the same run id:
    B refuses before creating anything, and B's teardown touches none of A's resources."""
    a = provider(tmp_path / "a", moto, "m7i.large", ledger=tmp_path / "a.jsonl")
    provision(a)
    before = resources(moto)
    assert len(before["instances"]) == 1
    b = provider(tmp_path / "b", moto, "m7i.large", ledger=tmp_path / "b.jsonl")
    with pytest.raises(RuntimeError) as info:
        b.validate()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("run id 'perfci-test-run' is in use: instance i-")
    assert "perfci reap --run-id perfci-test-run --yes" in msg
    b.release_all()
    assert resources(moto) == before
    a.release_all()
    assert resources(moto) == NOTHING


def test_same_results_directory_is_locked_and_teardown_takes_only_its_own(
    tmp_path: Path, moto: MotoServer
) -> None:
    """Same results directory, same ledger, before either created anything: the lock file refuses the
    second; and a teardown that shares a ledger with another process's lines deletes only its own."""
    a = provider(tmp_path, moto, "m7i.large")
    a.validate()
    b = provider(tmp_path, moto, "m7i.large")
    with pytest.raises(RuntimeError, match=r"^run id 'perfci-test-run' is in use by pid \d+ \(lock "):
        b.validate()
    provision(a)
    mine = resources(moto)
    # Lines another process wrote under the same run id (pid rewritten: same ledger, other writer).
    ledger = tmp_path / "ledger.jsonl"
    text = ledger.read_text().replace(f'"pid":{os.getpid()}', '"pid":1')
    ledger.write_text(text)
    assert b.release_all() is None
    assert resources(moto) == mine, "a teardown deleted resources another process recorded"
    engine.teardown(engine.Context(a.ec2), a.ledger, "perfci-test-run")  # what `perfci reap --ledger` does
    assert resources(moto) == NOTHING


def test_duplicate_key_pair_closes_its_intent_and_deletes_nothing_of_the_namesake(
    tmp_path: Path, moto: MotoServer
) -> None:
    """Both runs passed the checks in the same second: B's CreateKeyPair fails as a duplicate; B's
    teardown must not resolve its key pair intent by name to A's key pair."""
    a = provider(tmp_path / "a", moto, "m7i.large", ledger=tmp_path / "a.jsonl")
    provision(a)
    before = resources(moto)
    b = provider(tmp_path / "b", moto, "m7i.large", ledger=tmp_path / "b.jsonl", claim_run_id=False)
    with pytest.raises(RuntimeError, match="Duplicate"):
        b.acquire(b.targets()[0])
    assert b.ledger.outstanding("perfci-test-run") == []
    b.release_all()
    assert resources(moto) == before
    a.release_all()
    assert resources(moto) == NOTHING


# -- 8. a hung endpoint ------------------------------------------------------------------------------------


@contextlib.contextmanager
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """http://127.0.0.1:<port>: a socket that accepts every connection and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}", held
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


def test_hung_endpoint_bounds_the_teardown_and_names_the_reap_command(tmp_path: Path, moto: MotoServer) -> None:
    """Every EC2 call of the teardown goes to a socket that never answers: each call gives up after
    its read timeout x 3 attempts, the engine stops at its deadline, and the error is one line."""
    p = provider(tmp_path, moto, "m7i.large", teardown_read_timeout=1.0, teardown_deadline=4.0)
    provision(p)
    with black_hole() as (url, held):
        p.settings = p.settings.model_copy(update={"endpoint_url": url})
        with pytest.raises(engine.TeardownError) as info:
            p.release_all()
        calls = len(held)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("teardown of perfci-test-run incomplete: instance i-")
    assert "not tried: the teardown deadline passed" in msg
    # listing (3 kinds) + terminate: 3 attempts each at most, then the deadline: nothing more is tried
    assert calls <= 4 * 3
    assert len(resources(moto)["instances"]) == 1  # still there: the reap command finishes it
    p.settings = p.settings.model_copy(update={"endpoint_url": moto.url})
    p.release_all()
    assert resources(moto) == NOTHING


# -- 11. loose ends ------------------------------------------------------------------------------------------


def test_reap_command_names_region_endpoint_and_a_custom_results_dir(tmp_path: Path, moto: MotoServer) -> None:
    from pytest_perfci.keep import reap_command

    custom = make_settings(tmp_path, moto, "m7i.large")
    assert reap_command(custom, "us-east-1") == (
        f"perfci reap --run-id perfci-test-run --yes --region us-east-1 --endpoint-url {moto.url} "
        f"--results {tmp_path / 'results'}"
    )
    default = custom.model_copy(update={"results": Path("perfci-results"), "endpoint_url": None})
    assert reap_command(default, None) == "perfci reap --run-id perfci-test-run --yes"


# -- 9. a signal right after the last test ---------------------------------------------------------------------

LATE_SIGNAL_CONFTEST = """
import os, signal, pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    os.kill(os.getpid(), signal.SIG{sig})  # CI cancels the job as the last test ends
"""


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_signal_after_the_last_test_is_ignored_and_the_matrix_still_written(
    pytester: pytest.Pytester, sig: str
) -> None:
    pytester.makeconftest(LATE_SIGNAL_CONFTEST.replace("{sig}", sig))
    pytester.makepyfile(test_mini="def test_one(host, perfci_sample, perfci_capability):\n"
                                  "    perfci_sample('mini.speed', 1.0, 'MiB/s', 'pass', direction='higher')\n"
                                  "    perfci_capability('mba', True, 'ok', host=host)\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--perfci-results=results",
                                           "--perfci-run-id=late-sig")
    out = result.stdout.str() + result.stderr.str()
    assert "KeyboardInterrupt" not in out, out
    assert "perfci: teardown in progress (run late-sig)" in out
    assert result.ret == 0, out
    assert (pytester.path / "results" / "late-sig" / "matrix.md").is_file()


def test_suite_tag_names_what_the_run_tests() -> None:
    from pytest_perfci.tags import suite_tag

    assert suite_tag(["suites/pmc"]) == "pmc"
    assert suite_tag(["suites/pmc/", "suites/resctrl", "tests/test_x.py::test_y"]) == "pmc+resctrl+test_x"
    assert suite_tag([]) == "-"


def test_suite_tag_and_root_volume_expiry_reach_ec2(tmp_path: Path, moto: MotoServer) -> None:
    """perfci:suite comes from the run (not always '-'), and the heartbeat moves the root volume's
    perfci:expires-at along with its instance's."""
    p = provider(tmp_path, moto, "m7i.large", suite="pmc")
    provision(p)
    ec2: Any = moto.client("ec2")
    (volume,) = ec2.describe_volumes()["Volumes"]
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert tags["perfci:suite"] == "pmc"
    assert volume["VolumeId"] in p._tagged_ids()
    # One beat at a known time: the volume's tag value at the server moves with the instance's.
    from datetime import UTC, datetime

    from pytest_perfci.tags import stamp

    launched = tags["perfci:expires-at"]
    beat_at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert p._heartbeat is not None
    p._heartbeat.clock = lambda: beat_at
    p._heartbeat.beat()
    want = stamp(beat_at + p.settings.ttl)
    assert want != launched

    def expires(items: list[dict[str, Any]]) -> list[str]:
        return [t["Value"] for i in items for t in i["Tags"] if t["Key"] == "perfci:expires-at"]

    assert expires(ec2.describe_volumes()["Volumes"]) == [want]
    assert expires([i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]) == [want]
    p.release_all()


# -- 3. clock skew ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [-3, 3])
def test_skewed_clock_is_refused_before_any_create(tmp_path: Path, moto: MotoServer, hours: int) -> None:
    from datetime import UTC, datetime, timedelta

    p = provider(tmp_path, moto, "m7i.large", clock=lambda: datetime.now(UTC) + timedelta(hours=hours))
    with pytest.raises(RuntimeError) as info:
        p.validate()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"this machine's clock is 180 min {'behind' if hours < 0 else 'ahead of'} AWS's")
    assert resources(moto) == NOTHING
    ok = provider(tmp_path / "ok", moto, "m7i.large", ledger=tmp_path / "ok.jsonl",
                  clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    ok.validate()  # a minute off is fine


# -- 3. clock skew in the reaper ---------------------------------------------------------------------------------


def test_reaper_now_takes_aws_time_beyond_the_allowed_skew(moto: MotoServer) -> None:
    from datetime import UTC, datetime, timedelta

    from pytest_perfci.providers.ec2.clock import reaper_now

    ec2: Any = moto.client("ec2")
    lines: list[str] = []
    true_now = datetime.now(UTC)
    got = reaper_now(ec2, now=lambda: true_now + timedelta(hours=3), say=lines.append)
    assert abs(got - true_now) < timedelta(minutes=1)
    assert len(lines) == 1 and lines[0].startswith("this machine's clock is 180 min ahead of AWS's")
    assert lines[0].endswith("expiry is judged by AWS's time")
    near = true_now + timedelta(minutes=1)
    assert reaper_now(ec2, now=lambda: near, say=lines.append) == near  # within the limit: this clock
    assert len(lines) == 1


@pytest.mark.parametrize("offset", ["+3h", "-3h"])
def test_reap_expired_under_a_skewed_clock_judges_by_aws_time(moto: MotoServer, offset: str) -> None:
    """`perfci reap --expired --yes` in a process whose clock is 3 h off (libfaketime), against the moto
    server: a run expiring in an hour stays (a fast clock would reap it), one expired an hour ago goes
    (a slow clock would keep it)."""
    from datetime import UTC, datetime

    from tests import faketime
    from tests.test_kill import PERFCI
    from tests.test_reaper import World

    if faketime.library() is None:
        pytest.skip("libfaketime not installed (./install.sh --dev installs the faketime package)")
    world = World(moto)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env.update(moto.env(), **faketime.skewed(offset))
    probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env,
                           capture_output=True, text=True, check=True)
    skew = float(probe.stdout) - datetime.now(UTC).timestamp()
    assert abs(abs(skew) - 3 * 3600) < 60, f"libfaketime did not skew the child's clock ({skew:.0f}s)"
    done = subprocess.run([str(PERFCI), "reap", "--expired", "--yes", "--region", "us-east-1"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"180 min {'ahead of' if offset[0] == '+' else 'behind'} AWS's" in done.stderr
    world.assert_present(world.alive)
    world.assert_present(world.kept)
    world.assert_gone(world.expired)


# -- 5. secrets in a failing test's captured output --------------------------------------------------------------

LEAKY_TEST = """
import sys

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_leaky():
    print("AKIAIOSFODNN7EXAMPLE " + SECRET)
    sys.stderr.write("aws_secret_access_key=" + SECRET + "\\n")
    raise AssertionError("aws_secret_access_key=" + SECRET)
"""


def test_captured_output_of_a_failing_test_is_scrubbed_in_terminal_and_junit(pytester: pytest.Pytester) -> None:
    """pytest prints a failing test's captured output and failure text in the terminal (a CI job's log)
    and in --junitxml: both are scrubbed at the report, before anyone reads it."""
    pytester.makepyfile(test_leaky=LEAKY_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--perfci-results=results",
                                           "--perfci-run-id=leaky", "--junitxml=junit.xml")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1, out
    assert "Captured stdout call" in out and "[REDACTED by perfci]" in out, out
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert secret not in out
    junit = (pytester.path / "junit.xml").read_text()
    assert "REDACTED" in junit and secret not in junit
