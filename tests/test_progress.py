"""Live status during provisioning (pytest_perfci.progress): on a terminal one line per target rewritten in
place; in CI, pipes and NO_COLOR plain lines without repeated identical polls.

The terminal side is checked on the screen a real terminal would show: the bytes go through a VT100
emulator (pyte), from a Board directly and from a whole pytest session run on a pty.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest

from pytest_perfci.progress import Board, StatusLine, live_terminal, status


def screen_of(data: str, columns: int = 100, lines: int = 40, onlcr: bool = False) -> list[str]:
    """The screen after `data`; onlcr: translate newlines as a tty's line discipline does (bytes written
    straight to the emulator, not through a pty)."""
    screen = pyte.Screen(columns, lines)
    pyte.Stream(screen).feed(data.replace("\n", "\r\n") if onlcr else data)
    return [line.rstrip() for line in screen.display if line.strip()]


POLLS = [
    status("m7i.large", "i-0a pending", 5, text="m7i.large i-0a pending 5s"),
    status("c7g.large", "i-0b pending", 5, text="c7g.large i-0b pending 5s"),
    status("m7i.large", "i-0a pending", 10, text="m7i.large i-0a pending 10s"),
    "host key accepted on first use",
    status("c7g.large", "i-0b pending", 10, text="c7g.large i-0b pending 10s"),
    status("m7i.large", "i-0a running", 23, text="m7i.large i-0a running 23s"),
    status("c7g.large", "i-0b running", 25, text="c7g.large i-0b running 25s"),
    status("m7i.large", "i-0a ssh ready", 40, text="m7i.large i-0a ssh ready 40s"),
]


def test_a_status_line_is_the_same_text_for_every_old_progress_callable() -> None:
    line = POLLS[0]
    seen: list[str] = []
    seen.append(line)
    assert seen == ["m7i.large i-0a pending 5s"] and isinstance(line, str) and line.split()[2] == "pending"
    assert line.live == "m7i.large: i-0a pending 5 s"
    assert status("x", "up") == "x: up"


def test_plain_output_drops_repeated_polls_only() -> None:
    out: list[str] = []
    board = Board(out.append, live=False)
    for line in POLLS:
        board(line)
    assert out == [
        "perfci: m7i.large i-0a pending 5s\n",
        "perfci: c7g.large i-0b pending 5s\n",
        "perfci: host key accepted on first use\n",
        "perfci: m7i.large i-0a running 23s\n",
        "perfci: c7g.large i-0b running 25s\n",
        "perfci: m7i.large i-0a ssh ready 40s\n",
    ]
    board("the same note")
    board("the same note")
    assert out[-2:] == ["perfci: the same note\n"] * 2  # only status polls are folded, never notes


def test_live_output_keeps_one_line_per_target_on_the_screen() -> None:
    out: list[str] = []
    board = Board(out.append, live=True, width=lambda: 100)
    out.append("tests/test_x.py \n")  # what the terminal showed before
    for line in POLLS:
        board(line)
    assert screen_of("".join(out), onlcr=True) == [
        "tests/test_x.py",
        "perfci: host key accepted on first use",
        "perfci: m7i.large: i-0a ssh ready 40 s",
        "perfci: c7g.large: i-0b running 25 s",
    ]
    board.settle()  # the fixture returned; pytest writes; a later target starts a block of its own
    out.append("tests/test_x.py .\n")
    board(status("c6g.metal", "i-0c pending", 3))
    board(status("c6g.metal", "i-0c running", 30))
    assert screen_of("".join(out), onlcr=True)[-2:] == ["tests/test_x.py .", "perfci: c6g.metal: i-0c running 30 s"]
    board.settle()
    out.append("[gw0] PASSED tests/test_x.py::test_y\n")  # anything written after the block stays
    board("teardown: terminating 3 instance(s)")
    assert screen_of("".join(out), onlcr=True)[-3:] == [
        "perfci: c6g.metal: i-0c running 30 s", "[gw0] PASSED tests/test_x.py::test_y",
        "perfci: teardown: terminating 3 instance(s)"]


def test_a_long_live_line_is_cut_to_the_terminal_width() -> None:
    out: list[str] = []
    board = Board(out.append, live=True, width=lambda: 40)
    board(status("m7i.metal-24xl", "i-0123456789abcdef0 pending in us-east-1a", 5))
    board(status("m7i.metal-24xl", "i-0123456789abcdef0 running", 9))
    shown = screen_of("".join(out), columns=40, onlcr=True)
    assert shown == ["perfci: m7i.metal-24xl: i-0123456789ab…"]  # 39 columns: the last one never wraps
    assert len(shown[0]) == 39


@pytest.mark.parametrize(("isatty", "env", "live"), [
    (True, {"TERM": "xterm-256color"}, True),
    (False, {"TERM": "xterm-256color"}, False),
    (True, {"TERM": "xterm", "CI": "true"}, False),
    (True, {"TERM": "xterm", "NO_COLOR": "1"}, False),
    (True, {"TERM": "dumb"}, False),
])
def test_when_lines_are_rewritten(isatty: bool, env: dict[str, str], live: bool) -> None:
    assert live_terminal(isatty, env) is live


# --- a whole pytest session on a pty, and on a pipe -----------------------------------------------------------

CONFTEST = """
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.plugin import progress_printer
from pytest_perfci.progress import status
from pytest_perfci.providers.base import Provider, Target


class Polled(Provider):
    name = "polled"

    def __init__(self, progress):
        self.progress = progress

    def targets(self):
        return [Target(name=n, provider=self.name, instance_type=n) for n in ("m7i.large", "c7g.large")]

    def acquire(self, target):
        for n, state in enumerate(["pending", "pending", "pending", "running", "running", "ssh ready"]):
            if n == 2:
                self.progress(f"{target.name}: a note between polls")
            self.progress(status(target.name, f"i-{target.name[:3]} {state}", n * 5.0,
                                 text=f"{target.name} i-{target.name[:3]} {state} {n * 5}s"))
        return LocalHost(target.name, instance_type=target.instance_type)


def pytest_perfci_make_provider(settings, config):
    return Polled(progress_printer(config))
"""

TESTS = """
def test_up(host):
    assert host.name
"""


def _session_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "PYTEST_ADDOPTS")
           and not k.startswith("PERFCI_")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40", "PERFCI_LOCAL_ONLY": "1", **extra})
    return env


def _project(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_up.py").write_text(TESTS)
    return tmp_path


def _args(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--perfci-results={tmp_path / 'results'}",
            "--perfci-run-id=run-live", "test_up.py"]


def _run_on_pty(tmp_path: Path, env: dict[str, str]) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(_args(tmp_path), cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode()


def test_session_on_a_terminal_rewrites_each_targets_line(tmp_path: Path) -> None:
    raw = _run_on_pty(_project(tmp_path), _session_env())
    shown = screen_of(raw)
    ours = [line for line in shown if line.startswith("perfci: ")]
    assert ours == [
        "perfci: m7i.large: a note between polls",
        "perfci: m7i.large: i-m7i ssh ready 25 s",
        "perfci: c7g.large: a note between polls",
        "perfci: c7g.large: i-c7g ssh ready 25 s",
    ]
    assert "\x1b[" in raw and "pending" in raw  # it was there, and rewritten
    assert any("2 passed" in line for line in shown)


def test_session_in_ci_on_a_terminal_prints_plain_lines_once(tmp_path: Path) -> None:
    raw = _run_on_pty(_project(tmp_path), _session_env(CI="true"))
    lines = [line for line in raw.replace("\r\n", "\n").splitlines() if line.startswith("perfci: m7i.large")]
    assert lines == [
        "perfci: m7i.large i-m7i pending 0s",
        "perfci: m7i.large: a note between polls",
        "perfci: m7i.large i-m7i running 15s",
        "perfci: m7i.large i-m7i ssh ready 25s",
    ]
    assert "\x1b[1A" not in raw and "\x1b[2K" not in raw


def test_session_on_a_pipe_prints_plain_lines_once(tmp_path: Path) -> None:
    proc = subprocess.run(_args(_project(tmp_path)), cwd=tmp_path, env=_session_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("perfci: c7g.large")]
    assert lines == [
        "perfci: c7g.large i-c7g pending 0s",
        "perfci: c7g.large: a note between polls",
        "perfci: c7g.large i-c7g running 15s",
        "perfci: c7g.large i-c7g ssh ready 25s",
    ]
    assert "\x1b[" not in proc.stdout


def test_status_line_survives_a_list_progress(tmp_path: Path) -> None:
    """Providers built with progress=list.append (the tests' own) see the same text as before."""
    seen: list[str] = []
    seen.append(StatusLine("m7i.large i-1 running 3s", key="m7i.large", status="i-1 running", elapsed=3))
    assert seen[0].split()[2] == "running"
