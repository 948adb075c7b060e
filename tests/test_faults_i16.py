"""Issue 16's faults against a real moto server: a full disk during teardown, the same run id twice,
a hung endpoint, a skewed clock, and the loose ends (suite tag, root volume expiry, the reap hint).

A full disk is a real one: a 1 MiB tmpfs mounted here (the tests run as root) and filled with a file.
A hung endpoint is a real socket on 127.0.0.1 that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
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
