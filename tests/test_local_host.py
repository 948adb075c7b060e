"""LocalHost, the embedded default: the same contract as SSHHost, proven on this very machine.

The timeout test matters most: a perf workload that forks helpers must not outlive its timeout and
keep burning the CPU the next measurement runs on.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path

import pytest

from pytest_perfci.hosts import CommandTimeout, Host, LocalHost
from tests.procs import process_state


@pytest.fixture
def local_host() -> LocalHost:
    return LocalHost("here")



def test_is_a_host(local_host: LocalHost) -> None:
    assert isinstance(local_host, Host)
    assert repr(local_host) == "LocalHost('here')"








def test_string_is_shell_text_sequence_is_not(local_host: LocalHost) -> None:
    assert local_host.run("echo $((1 + 2)) | tr 3 x").stdout == "x\n"
    r = local_host.run(["echo", "$HOME", "*", "a;b"])
    assert r.stdout == "$HOME * a;b\n"
    assert r.command == "echo '$HOME' '*' 'a;b'"  # shown the way a shell would need it


def test_env_is_added_to_the_inherited_environment(local_host: LocalHost) -> None:
    r = local_host.run('echo "$PERFCI_X"; command -v sh', env={"PERFCI_X": "it's $not expanded"})
    lines = r.stdout.splitlines()
    assert lines[0] == "it's $not expanded"
    assert lines[1].endswith("/sh")  # PATH survived: env adds, it does not replace
    assert "PERFCI_X" not in os.environ




def test_sudo_as_root_runs_directly(local_host: LocalHost) -> None:
    if os.geteuid() != 0:
        pytest.skip("sudo -n path needs a sudoers entry; this checks the root shortcut")
    assert local_host.sudo(["id", "-u"]).stdout == "0\n"


def test_timeout_kills_the_whole_process_group(local_host: LocalHost, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        local_host.run(f"sh -c 'sleep 300 & echo $! > {pidfile}; wait' & wait", timeout=1)
    assert time.monotonic() - start < 5
    assert info.value.timeout == 1 and "here: command timed out after 1s" in str(info.value)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while process_state(grandchild) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_state(grandchild) in (None, "Z"), "a grandchild survived the timeout"
    assert local_host.run("echo next").stdout == "next\n"


def test_timeout_not_reached_returns_normally(local_host: LocalHost) -> None:
    r = local_host.run(["sh", "-c", "echo quick"], timeout=30)
    assert (r.stdout, r.exited) == ("quick\n", 0)


def test_large_output_on_both_streams(local_host: LocalHost, tmp_path: Path) -> None:
    """5 MB on each stream at once: reading them one after the other would deadlock on a full pipe."""
    big = tmp_path / "big"
    big.write_text("".join(f"line {i} of the big output\n" for i in range(200_000)))
    r = local_host.run(f"cat {big} >&2 & cat {big}; wait", timeout=60)
    expected = big.read_text()
    assert len(expected) > 5_000_000
    assert r.stdout == expected and r.stderr == expected


def test_output_bytes_are_not_translated(local_host: LocalHost) -> None:
    assert local_host.run(["printf", "a\\r\\nb\\rc"]).stdout == "a\r\nb\rc"


def test_put_get_round_trip(local_host: LocalHost, tmp_path: Path) -> None:
    payload = os.urandom(100_000)
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    local_host.put(src, str(tmp_path / "remote.bin"))
    local_host.get(str(tmp_path / "remote.bin"), tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload


def test_facts_describe_this_machine() -> None:
    h = LocalHost(instance_type="m7i.metal-24xl", region="us-east-1", ami="ami-0abc")
    facts = h.facts
    assert facts is h.facts  # cached
    assert facts.hostname == socket.gethostname()
    assert facts.kernel == platform.release()
    assert facts.arch == {"aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert facts.nproc == len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if facts.cpu_vendor in ("intel", "amd"):
        assert f"model name\t: {facts.cpu_model}" in cpuinfo
        assert facts.cpu_flags and all(f in cpuinfo for f in facts.cpu_flags[:5])
    assert (facts.instance_type, facts.region, facts.ami) == ("m7i.metal-24xl", "us-east-1", "ami-0abc")
    assert facts.summary().startswith("m7i.metal-24xl ")  # the provider's name wins in one-line summaries


def test_missing_program_is_exit_127_like_a_shell(local_host: LocalHost) -> None:
    r = local_host.run(["perfci-no-such-program", "x"], check=False)
    assert (r.exited, r.stderr) == (127, "perfci-no-such-program: No such file or directory\n")
    assert local_host.run("perfci-no-such-program", check=False).exited == 127
