"""Progress during provisioning: one live status line per target on a terminal, plain lines elsewhere.

Why: a wait that polls every few seconds printed a new line per poll ("m7i.large i-0ab pending 5s",
"... pending 10s", ...), so the one line that mattered scrolled away. A provider now marks a poll's
line as a `StatusLine` (a str, so every existing `progress` callable, list.append and print included,
still receives the same text); the `Board` keeps one line per target:

- on a terminal (a TTY, not CI, no NO_COLOR, TERM not "dumb") each target's line is rewritten in place
  ("m7i.large: i-0ab pending 23 s", then "running", then "ssh ready"), the lines kept together at
  the bottom with ANSI cursor movement, every other progress line printed above them;
- elsewhere (CI logs, pipes, NO_COLOR) every line is printed as before, except a status whose words
  did not change since that target's last printed line (only its seconds did): that poll is dropped.

Stdlib only; the pytest side (which terminal, when the block is done) lives in plugin.progress_printer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Self


class StatusLine(str):
    """One target's current status as a progress line: `key` names the target, `status` is what a
    reader needs to see change (without the seconds), `elapsed` the seconds since it started waiting."""

    key: str
    status: str
    elapsed: float | None

    def __new__(cls, text: str, *, key: str, status: str, elapsed: float | None = None) -> Self:
        line = super().__new__(cls, text)
        line.key, line.status, line.elapsed = key, status, elapsed
        return line

    @property
    def live(self) -> str:
        """How the in-place line reads: `m7i.large: i-0ab pending 23 s`."""
        took = f" {self.elapsed:.0f} s" if self.elapsed is not None else ""
        return f"{self.key}: {self.status}{took}"


def status(key: str, state: str, elapsed: float | None = None, text: str | None = None) -> StatusLine:
    """A StatusLine; `text` is what plain output prints (default: the live form)."""
    took = f" {elapsed:.0f} s" if elapsed is not None else ""
    return StatusLine(text if text is not None else f"{key}: {state}{took}", key=key, status=state, elapsed=elapsed)


def live_terminal(isatty: bool, env: Mapping[str, str] | None = None) -> bool:
    """May lines be rewritten in place? Only on a real terminal a person watches: not in CI (its log
    keeps every byte, cursor movement included), not with NO_COLOR or TERM=dumb."""
    env = os.environ if env is None else env
    if not isatty or env.get("TERM") == "dumb":
        return False
    return not any(env.get(var) for var in ("CI", "NO_COLOR"))


UP = "\x1b[{n}A"  # cursor up n lines
CLEAR_LINE = "\r\x1b[2K"
CLEAR_DOWN = "\x1b[J"  # erase from the cursor to the end of the screen


class Board:
    """The status lines of the targets being brought up (see the module docstring).

    `write` takes text as-is (newlines included); `width` is the terminal's (a live line longer than it
    would wrap and break the cursor arithmetic, so it is cut). Thread-safe: providers bring several
    targets up at once.
    """

    def __init__(self, write: Callable[[str], None], *, live: bool | Callable[[], bool],
                 width: Callable[[], int] = lambda: 80, prefix: str = "perfci: ") -> None:
        self._write = write
        self._live = live
        self._width = width
        self._prefix = prefix
        self._lock = threading.Lock()
        self._block: dict[str, str] = {}  # key -> its live text, in the order the targets appeared (TTY)
        self._drawn = 0  # block lines on screen above the cursor
        self._last: dict[str, str] = {}  # key -> the status last printed (plain output)

    @property
    def live(self) -> bool:
        """Rewriting in place? (Asked per line: the terminal reporter exists only after configure.)"""
        return self._live() if callable(self._live) else self._live

    def __call__(self, line: str) -> None:
        with self._lock:
            if isinstance(line, StatusLine):
                self._status(line)
            else:
                self._plain(line)

    def settle(self) -> None:
        """The block is done (the fixture that waited returned): its lines stay as printed; the next
        status starts a new block below whatever the terminal shows next."""
        with self._lock:
            self._block.clear()
            self._drawn = 0

    # -- internals (called with the lock held) -------------------------------------------------------

    def _fit(self, text: str) -> str:
        width = max(self._width() - 1, 20)
        return text if len(text) <= width else text[: width - 1] + "…"

    def _redraw(self, above: str = "") -> None:
        out = UP.format(n=self._drawn) + "\r" + CLEAR_DOWN if self._drawn else ""
        out += above
        out += "".join(f"{CLEAR_LINE}{self._fit(self._prefix + text)}\n" for text in self._block.values())
        self._drawn = len(self._block)
        self._write(out)

    def _status(self, line: StatusLine) -> None:
        if self.live:
            self._block[line.key] = line.live
            self._redraw()
            return
        if self._last.get(line.key) == line.status:
            return  # the same poll answer again: only the seconds moved
        self._last[line.key] = line.status
        self._write(f"{self._prefix}{line}\n")

    def _plain(self, line: str) -> None:
        if self.live and self._drawn:
            self._redraw(above=f"{self._prefix}{line}\n")
        else:
            self._write(f"{self._prefix}{line}\n")
