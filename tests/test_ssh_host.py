"""SSHHost against a real OpenSSH sshd on 127.0.0.1 (tests/sshd.py): no mocked transport anywhere.

What matters to a suite author: commands mean the same as on LocalHost, failures say which host
and why without leaking keys, and a timed-out command neither hangs the run nor poisons the
connection for the next one.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci.hosts import (
    AuthenticationFailed,
    CommandTimeout,
    Host,
    HostUnreachable,
    LocalHost,
)
from pytest_perfci.hosts.ssh import HostKeyRejected, SSHHost, _cut_pid, with_env
from tests.procs import process_state
from tests.sshd import SshdServer, free_port, sshd, sshd_server  # noqa: F401 - fixtures, until conftest registers them


def make_host(server: SshdServer, **overrides: object) -> SSHHost:
    kwargs: dict[str, object] = {
        "user": server.user,
        "port": server.port,
        "key_filename": server.client_key,
        "known_hosts": server.known_hosts,
        "connect_timeout": 5.0,
    }
    kwargs.update(overrides)
    return SSHHost("box", server.address, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def ssh_host(sshd: SshdServer) -> Iterator[SSHHost]:  # noqa: F811 - the fixture imported above
    h = make_host(sshd)
    try:
        yield h
    finally:
        h.close()


def key_material(server: SshdServer) -> list[str]:
    """Every secret-ish string an error must never show: private key body lines and public key blobs."""
    private = [
        line for line in server.client_key.read_text().splitlines() if line and not line.startswith("-----")
    ]
    return private + [server.client_public_key.split()[1], server.host_public_key.split()[1]]


def assert_no_key_material(message: str, server: SshdServer) -> None:
    for secret in key_material(server):
        assert secret not in message



# -- commands ------------------------------------------------------------------------------------------


def test_is_a_host(ssh_host: SSHHost) -> None:
    assert isinstance(ssh_host, Host)
    assert "box" in repr(ssh_host) and "root@127.0.0.1" in repr(ssh_host)








def test_string_is_shell_text(ssh_host: SSHHost) -> None:
    assert ssh_host.run("echo $((1 + 2)) | tr 3 x").stdout == "x\n"


def test_sequence_is_quoted_argument_by_argument(ssh_host: SSHHost) -> None:
    args = ["printf", "[%s]\\n", "a b", "it's", "$HOME", "*", "", 'q"uote', "semi;colon"]
    r = ssh_host.run(args)
    assert r.stdout == "[a b]\n[it's]\n[$HOME]\n[*]\n[]\n[q\"uote]\n[semi;colon]\n"
    assert r.command == LocalHost().run(args).command


def test_sequence_matches_local_host_output(ssh_host: SSHHost) -> None:
    args = ["printf", "%s|", "x y", "'", '"', "\\", "$(id)"]
    assert ssh_host.run(args).stdout == LocalHost().run(args).stdout


def test_env_reaches_whole_shell_text(ssh_host: SSHHost) -> None:
    env = {"PERFCI_A": "it's a $value; `x`", "B_2": "two words"}
    r = ssh_host.run('echo "$PERFCI_A"; sh -c \'echo "$B_2"\'', env=env)
    assert r.stdout == "it's a $value; `x`\ntwo words\n"
    assert r.command == 'echo "$PERFCI_A"; sh -c \'echo "$B_2"\''  # the wrapper is not shown


def test_env_with_sequence(ssh_host: SSHHost) -> None:
    assert ssh_host.run(["sh", "-c", 'printf %s "$X"'], env={"X": "1 2"}).stdout == "1 2"


def test_env_rejects_names_that_are_not_identifiers(ssh_host: SSHHost) -> None:
    with pytest.raises(ValueError, match="not a shell identifier"):
        ssh_host.run("true", env={"A;rm -rf /": "x"})


def test_with_env_is_plain_export() -> None:
    assert with_env("cmd", None) == "cmd"
    assert with_env("cmd", {"A": "x y"}) == "export A='x y'; cmd"




def test_sudo_as_root_runs_directly(ssh_host: SSHHost) -> None:
    r = ssh_host.sudo(["id", "-u"], env={"V": "1"})
    assert r.stdout == "0\n" and r.command == "id -u"
    assert ssh_host.sudo("echo $V", env={"V": "ok"}).stdout == "ok\n"


def test_many_commands_reuse_one_connection(ssh_host: SSHHost) -> None:
    ssh_host.run("true")
    transport = ssh_host.connection.transport
    for i in range(20):
        assert ssh_host.run(["echo", str(i)]).stdout == f"{i}\n"
    assert ssh_host.connection.transport is transport


def test_large_output_on_both_streams_arrives_complete(ssh_host: SSHHost, tmp_path: Path) -> None:
    """5 MB on stdout and 5 MB on stderr at once: reading one stream only would deadlock the window."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    r = ssh_host.run(f"cat {big} >&2 & cat {big}; wait", timeout=120)
    expected = big.read_bytes().decode("utf-8", "replace")
    assert r.stdout == expected
    assert r.stderr == expected


def test_large_text_output_exact(ssh_host: SSHHost) -> None:
    r = ssh_host.run("seq 1 700000", timeout=60)  # ~4.7 MB
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 700001))


# -- timeouts ------------------------------------------------------------------------------------------


def test_timeout_kills_group_and_connection_stays_usable(ssh_host: SSHHost, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    ssh_host.run("true")
    transport = ssh_host.connection.transport
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        ssh_host.run(f"sleep 300 & echo $! > {pidfile}; echo started; sleep 300", timeout=1)
    assert time.monotonic() - start < 5
    assert info.value.timeout == 1 and "box: command timed out after 1s" in str(info.value)
    assert ssh_host.run("echo next").stdout == "next\n"
    assert ssh_host.connection.transport is transport  # same connection, not a reconnect
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while process_state(grandchild) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_state(grandchild) in (None, "Z"), "the backgrounded grandchild survived the timeout"


def test_timeout_does_not_change_output(ssh_host: SSHHost) -> None:
    """A command with a timeout carries the pid line internally; callers must never see it."""
    r = ssh_host.run("echo a; echo b >&2", timeout=30)
    assert (r.stdout, r.stderr) == ("a\n", "b\n")
    assert ssh_host.run("printf x", timeout=30).stdout == "x"
    assert ssh_host.run("true", timeout=30).stdout == ""


def test_timeout_while_output_still_flowing(ssh_host: SSHHost) -> None:
    with pytest.raises(CommandTimeout):
        ssh_host.run("yes", timeout=1)
    assert ssh_host.run("echo alive").stdout == "alive\n"


# -- files and facts -----------------------------------------------------------------------------------


def test_put_get_round_trip(ssh_host: SSHHost, tmp_path: Path) -> None:
    payload = os.urandom(1024 * 1024 + 17)
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    local.chmod(0o750)
    remote = str(tmp_path / "remote.bin")
    ssh_host.put(local, remote)
    assert ssh_host.run(["sha256sum", remote]).stdout.split()[0] == hashlib.sha256(payload).hexdigest()
    assert ssh_host.run(["stat", "-c", "%a", remote]).stdout.strip() == "750"
    back = tmp_path / "back.bin"
    ssh_host.get(remote, back)
    assert back.read_bytes() == payload


def test_get_missing_file_raises(ssh_host: SSHHost, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ssh_host.get(str(tmp_path / "does-not-exist"), tmp_path / "x")


def test_facts_equal_local_facts_on_same_machine(sshd: SshdServer) -> None:  # noqa: F811
    h = make_host(sshd, instance_type="m7i.large", region="eu-west-1", ami="ami-0123")
    try:
        remote, local = h.facts, LocalHost().facts
        assert remote is h.facts  # cached: one round trip per host
    finally:
        h.close()
    assert remote.hostname == local.hostname == socket.gethostname()
    for name in ("kernel", "arch", "cpu_model", "cpu_vendor", "nproc", "os", "virtualised", "cpu_flags"):
        assert getattr(remote, name) == getattr(local, name), name
    assert (remote.instance_type, remote.region, remote.ami) == ("m7i.large", "eu-west-1", "ami-0123")


# -- connection failures -------------------------------------------------------------------------------


def test_unreachable_closed_port_is_fast_and_clear() -> None:
    port = free_port()
    h = SSHHost("gone", "127.0.0.1", user="root", port=port, connect_timeout=5)
    start = time.monotonic()
    with pytest.raises(HostUnreachable) as info:
        h.run("true")
    assert time.monotonic() - start < 2
    message = str(info.value)
    assert message.startswith("gone: ") and f"127.0.0.1:{port}" in message and "refused" in message.lower()


def test_silent_listener_times_out_as_unreachable() -> None:
    """A port that accepts TCP but never speaks SSH (a hung host) must not hang the run."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        h = SSHHost("mute", "127.0.0.1", user="root", port=port, connect_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(HostUnreachable) as info:
            h.run("true")
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(info.value)


def test_wrong_key_is_authentication_failed(sshd: SshdServer, tmp_path: Path) -> None:  # noqa: F811
    wrong = tmp_path / "wrong_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    h = make_host(sshd, key_filename=wrong)
    with pytest.raises(AuthenticationFailed) as info:
        h.run("true")
    message = str(info.value)
    assert f"root@127.0.0.1:{sshd.port}" in message
    assert_no_key_material(message, sshd)
    for line in wrong.read_text().splitlines()[1:-1]:
        assert line not in message


def test_missing_key_file_is_authentication_failed(sshd: SshdServer, tmp_path: Path) -> None:  # noqa: F811
    h = make_host(sshd, key_filename=tmp_path / "nope")
    with pytest.raises(AuthenticationFailed, match="does not exist"):
        h.run("true")


def test_unknown_host_key_rejected_by_default(sshd: SshdServer, tmp_path: Path) -> None:  # noqa: F811
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    h = make_host(sshd, known_hosts=empty)
    with pytest.raises(HostKeyRejected) as info:
        h.run("true")
    message = str(info.value)
    assert "unknown host key" in message and f"[127.0.0.1]:{sshd.port}" in message
    assert "SHA256:" in message and "host_key_policy='reject'" in message and str(empty) in message
    assert_no_key_material(message, sshd)


def test_accept_new_records_key_then_reject_trusts_it(sshd: SshdServer, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "sub" / "known_hosts"
    first = make_host(sshd, known_hosts=path, host_key_policy="accept-new")
    assert first.run("echo ok").stdout == "ok\n"
    first.close()
    assert sshd.host_public_key.split()[1] in path.read_text()
    second = make_host(sshd, known_hosts=path)
    assert second.run("echo again").stdout == "again\n"
    second.close()


def test_changed_host_key_is_rejected_even_with_accept_new(sshd: SshdServer, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    blob = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known.write_text(f"[127.0.0.1]:{sshd.port} {blob}\n")
    h = make_host(sshd, known_hosts=known, host_key_policy="accept-new")
    with pytest.raises(HostKeyRejected, match="CHANGED") as info:
        h.run("true")
    assert_no_key_material(str(info.value), sshd)


def test_bad_policy_name_is_refused_early() -> None:
    with pytest.raises(ValueError, match="host_key_policy"):
        SSHHost("x", "127.0.0.1", user="root", host_key_policy="yolo")  # type: ignore[arg-type]


# -- connection lifetime -------------------------------------------------------------------------------


def test_dropped_connection_is_reopened_transparently(ssh_host: SSHHost) -> None:
    ssh_host.run("true")
    old = ssh_host.connection.transport
    assert old is not None
    old.close()
    assert ssh_host.run("echo back").stdout == "back\n"
    assert ssh_host.connection.transport is not old


def test_close_then_run_reconnects(ssh_host: SSHHost) -> None:
    ssh_host.run("true")
    ssh_host.close()
    assert ssh_host.run("echo reopened").stdout == "reopened\n"


def test_server_gone_is_unreachable_not_a_hang(sshd_server: SshdServer) -> None:  # noqa: F811
    h = make_host(sshd_server)
    assert h.run("echo up").stdout == "up\n"
    sshd_server.stop()
    h.connection.transport.close()  # the listener is gone; drop our established session too
    start = time.monotonic()
    with pytest.raises(HostUnreachable, match="refused"):
        h.run("true")
    assert time.monotonic() - start < 5


def test_proxy_jump_through_a_jump_host(sshd: SshdServer) -> None:  # noqa: F811
    """ProxyJump hop (here the same sshd, via direct-tcpip) with the same key and known_hosts."""
    h = make_host(sshd, proxy_jump=f"root@127.0.0.1:{sshd.port}")
    try:
        r = h.run("echo $SSH_CLIENT")
        assert r.stdout.startswith("127.0.0.1 ")
        assert h.connection.gateway is not None and h.connection.gateway.is_connected
        assert "via root@127.0.0.1" in repr(h)
    finally:
        h.close()


def test_proxy_jump_to_closed_port_is_unreachable(sshd: SshdServer) -> None:  # noqa: F811
    port = free_port()
    h = make_host(sshd, port=port, proxy_jump=f"root@127.0.0.1:{sshd.port}")
    with pytest.raises(HostUnreachable, match="jump host") as info:
        h.run("true")
    assert f"127.0.0.1:{port}" in str(info.value)
    h.close()


def test_pid_marker_is_cut_and_rc_noise_kept() -> None:
    """A login shell rc file that prints (bad, but real) must not hide the pid nor lose its output."""
    out: list[bytes] = []
    head = bytearray(b"welcome\n@@perfci-pid:4242\nfirst line")
    assert _cut_pid(head, out) == 4242
    assert out == [b"welcome\nfirst line"]
    assert _cut_pid(bytearray(b"@@perfci-pid:12"), []) is None  # line not complete yet
