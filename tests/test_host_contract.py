"""The contract every Host keeps, run against each backend: LocalHost and SSHHost (real sshd on loopback).

A suite written against `host` must read the same Result whichever provider brought the target up.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from pytest_perfci.hosts import CommandFailed, Host, LocalHost
from pytest_perfci.hosts.netns import NamespaceHost
from tests.sshd import SshdServer
from tests.test_ssh_host import make_host


@pytest.fixture(params=["local", "ssh", "netns"])
def any_host(request: pytest.FixtureRequest) -> Iterator[Host]:
    if request.param == "local":
        yield LocalHost("here")
        return
    if request.param == "netns":  # a local topology's client or server (hosts/netns.py)
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        name = f"perfci-contract-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            yield NamespaceHost("ns", name)
        finally:
            subprocess.run(["ip", "netns", "delete", name], check=False)
        return
    sshd: SshdServer = request.getfixturevalue("sshd")
    h = make_host(sshd)
    try:
        yield h
    finally:
        h.close()


def test_echo(any_host: Host) -> None:
    r = any_host.run("echo hello")
    assert (r.stdout, r.stderr, r.exited, r.ok, r.host, r.command) == (
        "hello\n",
        "",
        0,
        True,
        any_host.name,
        "echo hello",
    )
    assert 0 < r.duration < 10


def test_exit_code_and_stderr(any_host: Host) -> None:
    r = any_host.run("echo out; echo err >&2; exit 3", check=False)
    assert (r.stdout, r.stderr, r.exited, r.failed) == ("out\n", "err\n", 3, True)


@pytest.mark.parametrize("cmd", [["sh", "-c", "echo why >&2; exit 7"], "echo why >&2; exit 7"], ids=["argv", "shell"])
def test_check_raises_command_failed_with_result(any_host: Host, cmd: list[str] | str) -> None:
    with pytest.raises(CommandFailed) as info:
        any_host.run(cmd)
    assert info.value.result.exited == 7
    assert f"{any_host.name}: exit 7" in str(info.value) and "(why)" in str(info.value)


def test_stdin_is_closed(any_host: Host) -> None:
    assert any_host.run("cat; echo done", timeout=10).stdout == "done\n"


def test_a_missing_program_is_127_as_from_a_shell(any_host: Host) -> None:
    r = any_host.run(["perfci-no-such-program", "x"], check=False)
    assert r.exited == 127 and r.command == "perfci-no-such-program x"
