"""xdist handoff (pytest_perfci/handoff.py): a worker asks for a target through a file, the controller's
watcher brings it up and writes its handle. Both ends here in one process, with threads standing in for
the two processes (the runs under xdist are in tests/test_schedules.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pytest_perfci.handoff import ControllerError, HandoffClient, HandoffServer
from pytest_perfci.providers.base import WorkerHandle


class Exports:
    """A stand-in for ProviderSession.export_one: records what was brought up, in order."""

    def __init__(self, fail: str | None = None, slow: float = 0.0, together: int = 0) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.slow = slow
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(together, timeout=20) if together else None

    def __call__(self, name: str) -> WorkerHandle:
        with self.lock:
            self.calls.append(name)
        if self.barrier is not None:
            self.barrier.wait()  # raises BrokenBarrierError unless all of them run at once
        time.sleep(self.slow)
        if name == self.fail:
            raise RuntimeError(f"{name}: InsufficientInstanceCapacity\nsecond line")
        return WorkerHandle(target=name, address="127.0.0.1", port=2200 + len(self.calls), user="root")


def test_nothing_is_brought_up_until_a_worker_asks_then_only_what_it_asks(tmp_path: Path) -> None:
    exports = Exports()
    server = HandoffServer(tmp_path / "h", exports, lambda name: [name])
    try:
        time.sleep(0.3)
        assert exports.calls == []
        handle = HandoffClient(server.directory).handle("m7i.large", wait_s=10)
        assert handle.target == "m7i.large" and handle.address == "127.0.0.1"
        assert exports.calls == ["m7i.large"]
        again = HandoffClient(server.directory).handle("m7i.large", wait_s=10)  # a second worker: no new bring-up
        assert again == handle and exports.calls == ["m7i.large"]
    finally:
        server.close()
    assert not (tmp_path / "h").exists()


def test_under_parallel_the_first_ask_brings_every_target_up_at_once(tmp_path: Path) -> None:
    names = ["a", "b/c", "d"]
    exports = Exports(together=len(names))  # each bring-up waits for the others: side by side or error  # a name with a slash still makes one file
    server = HandoffServer(tmp_path / "h", exports, lambda name: [name, *(n for n in names if n != name)])
    try:
        client = HandoffClient(server.directory)
        assert client.handle("d", wait_s=10).target == "d"
        assert sorted(exports.calls) == sorted(names) and exports.calls[0] == "d"
        assert [client.handle(n, wait_s=10).target for n in names] == names
        assert all(client.handle(n).error is None for n in names)
    finally:
        server.close()


def test_a_failed_bring_up_reaches_the_worker_as_the_controllers_first_line(tmp_path: Path) -> None:
    from pytest_perfci.session import ProviderSession

    server = HandoffServer(tmp_path / "h", Exports(fail="m7i.large"), lambda name: [name])
    try:
        handle = HandoffClient(server.directory).handle("m7i.large", wait_s=10)
        assert handle.error == "RuntimeError: m7i.large: InsufficientInstanceCapacity"
        session = ProviderSession.__new__(ProviderSession)  # only _worker_handle's state
        session.handles, session.handoff = {}, HandoffClient(server.directory)
        session.needs, session.pairs_used = (), False
        with pytest.raises(ControllerError, match="could not bring m7i.large up: RuntimeError: m7i.large: Insuff"):
            session._worker_handle("m7i.large")
    finally:
        server.close()


def test_a_crashed_runs_handles_are_not_read_and_a_silent_controller_times_out(tmp_path: Path) -> None:
    stale = tmp_path / "h"
    stale.mkdir()
    (stale / "m7i.large.json").write_text(WorkerHandle(target="m7i.large", address="10.0.0.9").model_dump_json())
    exports = Exports()
    server = HandoffServer(stale, exports, lambda name: [name])
    try:
        assert HandoffClient(stale).handle("m7i.large", wait_s=10).address == "127.0.0.1"
    finally:
        server.close()
    silent = tmp_path / "silent"
    silent.mkdir()
    with pytest.raises(TimeoutError, match=r"did not hand over m7i.large within 0.2s \(handoff directory "):
        HandoffClient(silent).handle("m7i.large", wait_s=0.2)
    assert (silent / "m7i.large.want").exists()


def test_close_does_not_wait_out_a_bring_up_and_takes_no_new_asks(tmp_path: Path) -> None:
    """A teardown on SIGTERM must not wait for a boot: the provider's release_all stops that. Here the
    bring-up blocks until after close returned (if close waited, this test would hang)."""
    go = threading.Event()
    started = threading.Event()
    calls: list[str] = []

    def export(name: str) -> WorkerHandle:
        calls.append(name)
        started.set()
        go.wait(20)
        return WorkerHandle(target=name)

    server = HandoffServer(tmp_path / "h", export, lambda name: [name])
    server.want("a")
    assert started.wait(10)
    server.close()
    go.set()
    server.want("b")
    assert calls == ["a"] and not (tmp_path / "h").exists()


def test_the_first_ask_declares_what_the_workers_collected_before_anything_boots(tmp_path: Path) -> None:
    """The controller collects nothing: the worker's ask carries its needs and whether tests use
    `topology`; they are declared once, before the first bring-up starts (EC2 writes them into user data)."""
    events: list[str] = []

    def export(name: str) -> WorkerHandle:
        events.append(f"export {name}")
        return WorkerHandle(target=name)

    server = HandoffServer(tmp_path / "h", export, lambda name: [name],
                           lambda ask: events.append(f"declare {sorted(ask.get('needs', []))} {ask.get('pairs')}"))
    try:
        client = HandoffClient(server.directory)
        client.handle("a", ask={"needs": ["perf", "iperf3"], "pairs": True}, wait_s=10)
        client.handle("b", ask={"needs": ["other"], "pairs": False}, wait_s=10)
    finally:
        server.close()
    assert events == ["declare ['iperf3', 'perf'] True", "export a", "export b"]
