"""xdist: targets handed to workers when a worker first needs one, not before the workers exist.

Why: the controller used to bring every target up in pytest_configure_node, before any worker had
started. Starting four workers takes seconds on a small CI machine, and every one of those seconds was
billed on every machine while nothing used it (benchmarks/schedules.py measured 79 % of the billed
instance-seconds idle at -n 4). Now a worker that needs a target asks for it, and the controller brings
it up then (under the parallel schedule the first ask brings every target up at once, as the first
acquire does without xdist), so boots start once there is somebody to use them.

The channel is a directory that only this run's processes on this machine use (xdist workers are local
processes): a worker creates `<target>.want`; the controller's watcher thread sees it, exports the target
on a background thread (Provider.export, the same call as before) and writes `<target>.json` (a
WorkerHandle, written whole and renamed into place); the worker reads that. execnet has no channel a
worker can wait on in the middle of a test, and files need no extra dependency. A failed bring-up is a
handle with `error`, so the worker's test fails with the controller's words instead of waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_perfci.providers.base import WorkerHandle

POLL_S = 0.05  # how often each side looks: a listdir of a handful of files, nothing over the network
WAIT_S = 2 * 3600.0  # a worker gives up only if the controller said nothing for this long


class ControllerError(RuntimeError):
    """The xdist controller failed to bring a target up; its words, for the worker's test that needed it."""


def _stem(name: str) -> str:
    """The file name of a target (target names are instance types, machine or host names: quote anyway)."""
    return urllib.parse.quote(name, safe="")


def _unstem(stem: str) -> str:
    return urllib.parse.unquote(stem)


def _read_ask(path: Path) -> dict[str, Any]:
    try:
        ask = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return ask if isinstance(ask, dict) else {}


class HandoffServer:
    """Controller: watches for wanted targets and writes their handles as each comes up.

    `export(name)` brings one target up and describes it (ProviderSession.export_one); `names_for(name)`
    says which targets one ask starts (all of them under parallel)."""

    def __init__(self, directory: Path, export: Callable[[str], WorkerHandle],
                 names_for: Callable[[str], list[str]],
                 declare: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.directory = directory
        self._export = export
        self._names_for = names_for
        self._declare = declare
        self._declared = False
        self._started: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="perfci-handoff")
        shutil.rmtree(directory, ignore_errors=True)  # a crashed earlier run's handles are not this run's
        directory.mkdir(parents=True, mode=0o700)
        self._thread = threading.Thread(target=self._watch, name="perfci-handoff-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        seen: set[str] = set()  # each ask is read once, not again at every poll
        while not self._stop.wait(POLL_S):
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.directory):
                    if entry.name.endswith(".want") and entry.name not in seen:
                        seen.add(entry.name)
                        self.want(_unstem(entry.name[: -len(".want")]), _read_ask(Path(entry.path)))

    def want(self, name: str, ask: dict[str, Any] | None = None) -> None:
        """A worker asked for `name` (also callable directly): start it, and what starts with it. The first
        ask also tells what the workers collected (`declare`: needs, pairs), before anything boots: the
        controller collects nothing, and EC2 puts needs in the user data and pairs in placement groups."""
        with self._lock:
            if self._stop.is_set():
                return
            if not self._declared and ask is not None:
                self._declared = True
                if self._declare is not None:
                    try:
                        self._declare(ask)
                    except Exception as exc:  # noqa: BLE001 - hosts still come up, only unprepared/unpaired
                        sys.stderr.write(f"perfci: what the xdist workers collected was not declared: {exc}\n")
            for each in self._names_for(name):
                if each not in self._started:
                    self._started[each] = self._pool.submit(self._bring_up, each)

    def _bring_up(self, name: str) -> None:
        try:
            handle = self._export(name)
        except Exception as exc:  # noqa: BLE001 - the worker reports it; the ledger cleans up either way
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            handle = WorkerHandle(target=name, error=f"{type(exc).__name__}: {line}")
        final = self.directory / f"{_stem(name)}.json"
        tmp = final.with_suffix(".tmp")
        try:
            tmp.write_text(handle.model_dump_json())
            os.replace(tmp, final)
        except OSError as exc:  # a full disk; or closed meanwhile and the directory is gone
            if not self._stop.is_set():
                sys.stderr.write(f"perfci: could not hand {name} to the xdist workers: {exc.strerror or exc} "
                                 f"({self.directory}); they wait for it up to {WAIT_S:g}s\n")

    def close(self) -> None:
        """No new bring-ups, and none waited for: the session's release_all comes next, stops the provider's
        provisioning at its next step and destroys what the ledger holds (a teardown on SIGTERM must not
        wait out a boot). Asks not started yet never start; the directory goes."""
        with self._lock:
            self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.directory, ignore_errors=True)


class HandoffClient:
    """Worker: asks the controller for a target and waits for its handle."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def handle(self, name: str, *, ask: dict[str, Any] | None = None, wait_s: float = WAIT_S) -> WorkerHandle:
        """The controller's handle for `name`, asked for (with `ask`: what this worker collected) unless
        another worker already did."""
        final = self.directory / f"{_stem(name)}.json"
        want = self.directory / f"{_stem(name)}.want"
        if not final.exists() and not want.exists():
            tmp = want.with_name(f"{want.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(ask or {}))
            os.replace(tmp, want)  # whole, never half-written, when the watcher reads it
        deadline = time.monotonic() + wait_s
        while not final.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the xdist controller did not hand over {name} within {wait_s:g}s "
                                   f"(handoff directory {self.directory})")
            time.sleep(POLL_S)
        return WorkerHandle.model_validate_json(final.read_text())
