"""Turn a cancelled CI job into a full teardown, and keep a second signal from cutting it short.

CI systems cancel with SIGTERM (GitLab, Jenkins, Buildkite, GitHub after SIGINT) or SIGHUP (a
closed terminal or ssh session). By default either kills Python on the spot: no fixture finalizer
runs and every instance stays up. :func:`install` makes both raise ``KeyboardInterrupt`` in the
main thread, which is exactly what Ctrl-C does, so pytest unwinds the same way and runs every
finalizer. SIGINT keeps Python's/pytest's own behaviour.

While resources are being released (``with shielded(run_id):``), SIGINT, SIGTERM and SIGHUP no
longer interrupt anything: each prints one line to stderr saying teardown is in progress and how
to abandon it (SIGKILL, then ``perfci reap``), and is otherwise ignored, so a second Ctrl-C or a
CI's follow-up SIGTERM cannot skip the teardown silently.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

OnSignal = Callable[[int], None]

# Signals that become KeyboardInterrupt; SIGHUP does not exist on Windows.
CONVERTED: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
# Signals ignored (with a message) while a teardown is shielded.
SHIELDED: tuple[signal.Signals, ...] = (signal.SIGINT, *CONVERTED)

_lock = threading.RLock()
_shield_runs: list[str] = []          # run ids of the active shields, innermost last
_reap_commands: dict[str, str] = {}   # run id -> its full reap command (region, endpoint, results)
_received: list[int] = []             # every signal our handlers saw, in order


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def teardown_active() -> bool:
    """Whether some ``shielded`` block is running right now."""
    return bool(_shield_runs)


def received() -> list[int]:
    """The signals perfci's handlers have seen in this process (converted or shielded)."""
    return list(_received)


def name_reap(run_id: str, reap: str) -> None:
    """The run's whole reap command (region, endpoint, results), for every shield line of the run from now
    on: a signal may land in any phase of the end of a run, and each line should name the same command."""
    with _lock:
        _reap_commands[run_id] = reap


def message(run_id: str) -> str:
    reap = _reap_commands.get(run_id) or f"perfci reap --run-id {run_id} --yes"
    return f"perfci: teardown in progress (run {run_id}); send SIGKILL to abandon it — then run `{reap}`\n"


def _say(text: str) -> None:
    # os.write, not print: a handler may run while sys.stderr's buffer is mid-write (reentrancy).
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _shield_notice(signum: int) -> bool:
    """If a teardown is shielded, say so and swallow the signal; True when swallowed."""
    if not _shield_runs:
        return False
    _say(message(_shield_runs[-1]))
    return True


def install(on_signal: OnSignal | None = None) -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt; returns a function that restores the old handlers.

    ``on_signal(signum)`` is called first for every such signal (e.g. to note the cause for the
    terminal summary). Signal handlers can only be set from the main thread: anywhere else this is
    a no-op and the returned function does nothing.
    """
    if not _in_main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        _received.append(signum)
        if on_signal is not None:
            on_signal(signum)
        if _shield_notice(signum):
            return
        raise KeyboardInterrupt(f"perfci: received {signal.Signals(signum).name}")

    previous: dict[signal.Signals, Any] = {}
    for sig in CONVERTED:
        previous[sig] = signal.signal(sig, handler)

    def uninstall() -> None:
        if not _in_main_thread():
            return
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        previous.clear()

    return uninstall


def _shield_handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    _say(message(_shield_runs[-1] if _shield_runs else "?"))


@contextmanager
def shielded(run_id: str, reap: str | None = None) -> Iterator[None]:
    """Run a teardown that no SIGINT/SIGTERM/SIGHUP may interrupt; each one prints a line instead.

    For providers' ``release_all``. Nests (the innermost run id is named). In the main thread the
    three signals get a shielding handler for the duration, whether or not :func:`install` ran;
    in other threads the shield is recorded and :func:`install`'s handler honours it.
    SIGKILL cannot be caught: the message tells the user what to run afterwards (``reap``: the
    run's full reap command, with its region, endpoint and results directory).
    """
    with _lock:
        outermost = not _shield_runs
        _shield_runs.append(run_id)
        if reap:
            _reap_commands[run_id] = reap
    previous: dict[signal.Signals, Any] = {}
    try:
        if outermost and _in_main_thread():
            for sig in SHIELDED:
                previous[sig] = signal.signal(sig, _shield_handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        with _lock:
            _shield_runs.pop()


# The name the issue uses for the same thing.
teardown_in_progress = shielded
