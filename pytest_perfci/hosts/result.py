"""What running a command on a host gives back, and the ways it can go wrong.

Kept apart from the backends so that pure checks can be typed against it without pulling in
subprocess or paramiko.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass


def as_shell(cmd: str | Sequence[str]) -> str:
    """One spelling for commands: a string is shell text, a sequence is quoted argument by argument."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of one command, shaped like invoke's Result so fabric users feel at home."""

    command: str
    stdout: str
    stderr: str
    exited: int
    duration: float
    host: str

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def failed(self) -> bool:
        return self.exited != 0


class HostError(Exception):
    """Base of every host failure; the message names the host first so logs of many hosts stay readable."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host


class HostUnreachable(HostError):
    """No transport to the host (refused, no route, DNS, connect timeout)."""


class AuthenticationFailed(HostError):
    """The host answered but refused our credentials."""


class CommandTimeout(HostError):
    """A command ran past its timeout and was killed."""

    def __init__(self, host: str, command: str, timeout: float) -> None:
        super().__init__(host, f"command timed out after {timeout:g}s: {command}")
        self.command = command
        self.timeout = timeout


class CommandFailed(HostError):
    """A command exited non-zero while check=True; carries the Result for the caller's message."""

    def __init__(self, result: Result) -> None:
        tail = (result.stderr.strip().splitlines() or [""])[-1]
        super().__init__(result.host, f"exit {result.exited}: {result.command}" + (f" ({tail})" if tail else ""))
        self.result = result
