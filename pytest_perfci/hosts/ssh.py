"""A remote machine as a Host, over one persistent SSH connection.

fabric does what it is good at: resolving ~/.ssh/config, ProxyJump gateways, connecting, SFTP.
Commands do NOT go through fabric's `Connection.run`: invoke's Runner starts reader threads and
sleeps in polling loops per command. Measured with benchmarks/host_overhead.py (500 x `true`,
loopback sshd, 2-core VM): fabric Connection.run ~18 ms, raw paramiko exec_command ~3.5 ms (with
TCP_NODELAY), this module's path ~3.5 ms. So `run` opens one session channel on the transport fabric
opened, execs, and reads stdout and stderr together with poll(2) on the channel's event pipe: the
same wire traffic as paramiko's `SSHClient.exec_command`, well inside the <= 1.3x target.

TCP_NODELAY is set on our socket: without it every command waited ~44 ms for Nagle against the
server's delayed ACK (raw paramiko with a default socket: ~47 ms per `true`).

Decisions worth knowing:

* `env=` is sent as `export K='v'; <command>` (keys must be shell identifiers, values shlex-quoted),
  not as SSH "env" requests: sshd drops those unless AcceptEnv lists the name, and it would fail
  silently. The login shell (sh/bash/dash/zsh/ksh/fish) interprets it, the same shell that runs
  the command without env; csh-family login shells are not supported with env=.
* A command with a timeout first prints the remote shell's pid (`echo @@perfci-pid:$$`, cut again;
  sshd makes that shell a process-group leader). On timeout its channel is closed and
  `kill -KILL -- -PID` runs on a second channel, so grandchildren die too. (The SSH "signal"
  request is refused by OpenSSH for root logins.) Only that channel goes: the connection stays up
  for the next command. A connection that died is reopened transparently.
* stdin is closed (EOF) right after exec, like LocalHost's DEVNULL: nothing can hang on a prompt.
* A remote process killed by a signal reports exit -1 (paramiko does not parse "exit-signal").
* Host keys: `known_hosts` is a path to an OpenSSH known_hosts file (hashed entries work). None
  means ~/.ssh/known_hosts if present. Policies: "reject" (default; unknown key -> HostKeyRejected),
  "accept-new" (unknown keys are trusted and, when `known_hosts` is given, appended to it; a changed
  key is still rejected), "warn" (trust unknown keys, log a warning, save nothing).
* Errors never contain key material: only paths, user@address:port and fingerprints.
"""

from __future__ import annotations

import logging
import math
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import paramiko
from fabric import Connection
from paramiko.ssh_exception import NoValidConnectionsError

from pytest_perfci.hosts.result import (
    AuthenticationFailed,
    CommandFailed,
    CommandTimeout,
    HostError,
    HostUnreachable,
    Result,
    as_shell,
)
from pytest_perfci.models.facts import FACTS_SCRIPT, Facts, parse_facts

log = logging.getLogger(__name__)

HostKeyPolicy = Literal["reject", "accept-new", "warn"]
HOST_KEY_POLICIES: tuple[HostKeyPolicy, ...] = ("reject", "accept-new", "warn")

_READ_CHUNK = 1 << 16
# Announces the remote shell's pid on stdout for commands with a timeout; cut from the output.
_PID_MARK = b"@@perfci-pid:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Anything that looks like base64 key material is cut from messages we pass through from paramiko.
_KEYISH = re.compile(r"[A-Za-z0-9+/=]{40,}")


class HostKeyRejected(HostError):
    """The server's host key is unknown (policy "reject") or differs from known_hosts: we refuse to talk."""


def _scrub(text: str) -> str:
    return _KEYISH.sub("<redacted>", text)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _nodelay(transport: paramiko.Transport | None) -> None:
    """Disable Nagle on our end of the TCP connection: one command is a burst of small packets
    (open, exec, EOF, close), and Nagle against the server's delayed ACK cost ~44 ms per command on
    loopback here (47 ms vs 3.5 ms for `true`). Channels through a jump host have no socket to tune.
    """
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def parse_destination(spec: str, default_user: str) -> tuple[str, str, int]:
    """`[user@]host[:port]` (IPv6 as `[addr]:port`) -> (user, host, port), as ssh -J spells hops."""
    user, _, hostport = spec.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":") or "22"
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, "22"
    if not host or not port.isdigit():
        raise ValueError(f"bad SSH destination {spec!r}: expected [user@]host[:port]")
    return user or default_user, host, int(port)


def with_env(command: str, env: Mapping[str, str] | None) -> str:
    """Shell text that runs `command` with `env` exported, for the remote login shell (see module doc)."""
    if not env:
        return command
    for key in env:
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} is not a shell identifier")
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    return f"export {exports}; {command}"


def port_accepts(host: SSHHost, timeout: float) -> None:
    """One TCP connect to the host's SSH port, closed at once; HostUnreachable when nothing accepts.

    The cheapest readiness probe there is (no handshake, no key exchange): a provider polls it
    every fraction of a second while a machine boots, then talks SSH once it answers."""
    try:
        with socket.create_connection((host.address, host.port), timeout=timeout):
            pass
    except OSError as e:
        raise HostUnreachable(host.name, f"{host.address}:{host.port} not accepting: {e.strerror or e}") from None


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Like StrictHostKeyChecking=yes, but the error says which key, which file, and how to trust it."""

    def __init__(self, host: str, known_hosts: str) -> None:
        self.host = host
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        port = hostname.rpartition(":")[2] if hostname.startswith("[") else "22"
        addr = hostname[1:].partition("]")[0] if hostname.startswith("[") else hostname
        raise HostKeyRejected(
            self.host,
            f"unknown host key for {hostname} ({_fingerprint(key)}): not in {self.known_hosts} and "
            f"host_key_policy='reject'. Check the fingerprint, then add it "
            f"(ssh-keyscan -p {port} {addr} >> known_hosts) or use host_key_policy='accept-new'",
        )


class SSHHost:
    """Commands on a remote machine over one reused SSH connection (fabric for setup, a thin exec path)."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        user: str,
        port: int = 22,
        key_filename: str | Path | None = None,
        connect_timeout: float = 10.0,
        known_hosts: str | Path | None = None,
        host_key_policy: HostKeyPolicy = "reject",
        proxy_jump: str | None = None,
        **known: str | None,
    ) -> None:
        if host_key_policy not in HOST_KEY_POLICIES:
            raise ValueError(f"host_key_policy must be one of {HOST_KEY_POLICIES}, not {host_key_policy!r}")
        self.name = name
        self.address = address
        self.user = user
        self.port = int(port)
        self.key_filename = str(key_filename) if key_filename is not None else None
        self.connect_timeout = float(connect_timeout)
        self.known_hosts = str(Path(known_hosts).expanduser()) if known_hosts is not None else None
        self.host_key_policy: HostKeyPolicy = host_key_policy
        self.proxy_jump = proxy_jump
        self._known = known
        self._lock = threading.Lock()
        gateway: Connection | None = None
        for hop in proxy_jump.split(",") if proxy_jump else []:
            hop_user, hop_host, hop_port = parse_destination(hop.strip(), user)
            gateway = self._make_connection(hop_host, hop_user, hop_port, gateway)
        self._gateway = gateway
        self.connection: Connection = self._make_connection(address, user, self.port, gateway)

    # -- connection management ---------------------------------------------------------------------

    def _make_connection(self, host: str, user: str, port: int, gateway: Connection | None) -> Connection:
        """A fabric Connection with our key, timeouts and host-key policy (fabric's default is accept-all).

        The connect timeout goes in connect_kwargs: fabric's own `connect_timeout` is cast to int,
        which would turn 0.5 s into "no timeout".
        """
        connect_kwargs: dict[str, Any] = {
            "timeout": self.connect_timeout,
            "banner_timeout": self.connect_timeout,
            "auth_timeout": self.connect_timeout,
            "channel_timeout": self.connect_timeout,
        }
        if self.key_filename is not None:
            # An explicit key means exactly that key: no agent, no ~/.ssh/id_* guessing (which would
            # make "wrong key" pass by accident and can exhaust the server's MaxAuthTries).
            connect_kwargs.update(key_filename=[self.key_filename], allow_agent=False, look_for_keys=False)
        conn = Connection(
            host=host,
            user=user,
            port=port,
            gateway=gateway,
            connect_timeout=None,
            connect_kwargs=connect_kwargs,
        )
        client = conn.client
        where = self.known_hosts or "~/.ssh/known_hosts"
        if self.known_hosts is not None:
            path = Path(self.known_hosts)
            if not path.exists() and self.host_key_policy == "accept-new":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
            if path.exists():
                # Also makes AutoAddPolicy append newly accepted keys to this file (accept-new).
                client.load_host_keys(str(path))
        else:
            try:
                client.load_system_host_keys()
            except OSError:
                pass
        policy: paramiko.MissingHostKeyPolicy
        if self.host_key_policy == "reject":
            policy = _RejectUnknown(self.name, where)
        elif self.host_key_policy == "accept-new":
            policy = paramiko.AutoAddPolicy()
        else:
            policy = paramiko.WarningPolicy()
        client.set_missing_host_key_policy(policy)
        return conn

    @property
    def _where(self) -> str:
        via = f" via {self.proxy_jump}" if self.proxy_jump else ""
        return f"{self.address}:{self.port}{via}"

    def _transport(self) -> paramiko.Transport:
        """The open transport, connecting (or reconnecting after a drop) first; errors become HostErrors."""
        transport = self.connection.transport
        if transport is not None and transport.is_active():
            return transport
        with self._lock:
            transport = self.connection.transport
            if transport is not None and transport.is_active():
                return transport
            if transport is not None:
                log.info("%s: connection to %s lost, reconnecting", self.name, self._where)
                self._close_connections()
            self._connect()
            transport = self.connection.transport
            assert transport is not None
            conn: Connection | None = self.connection
            while isinstance(conn, Connection):
                _nodelay(conn.transport)
                conn = conn.gateway if isinstance(conn.gateway, Connection) else None
            return transport

    def _connect(self) -> None:
        if self.key_filename is not None and not Path(self.key_filename).is_file():
            raise AuthenticationFailed(
                self.name, f"{self.user}@{self._where}: key file {self.key_filename} does not exist"
            )
        try:
            self.connection.open()
        except HostKeyRejected:
            raise
        except paramiko.BadHostKeyException as e:
            raise HostKeyRejected(
                self.name,
                f"host key for {self._where} CHANGED: server offers {_fingerprint(e.key)}, "
                f"{self.known_hosts or '~/.ssh/known_hosts'} has {_fingerprint(e.expected_key)}. "
                "Refusing to connect (possible man-in-the-middle, or the address now belongs to a new "
                "machine: then remove the old known_hosts line)",
            ) from None
        except paramiko.AuthenticationException as e:
            how = f"key file {self.key_filename}" if self.key_filename else "agent/default keys"
            raise AuthenticationFailed(
                self.name,
                f"{self.user}@{self._where} refused authentication with {how}: "
                f"{type(e).__name__}: {_scrub(str(e))}",
            ) from None
        except NoValidConnectionsError as e:
            reasons = "; ".join(sorted({(err.strerror or str(err)) for err in e.errors.values()}))
            raise HostUnreachable(self.name, f"{self._where} unreachable: {reasons or e}") from e
        except TimeoutError as e:
            raise HostUnreachable(
                self.name, f"{self._where} unreachable: no answer within {self.connect_timeout:g}s"
            ) from e
        except socket.gaierror as e:
            raise HostUnreachable(
                self.name, f"{self._where} unreachable: cannot resolve ({e.strerror})"
            ) from e
        except paramiko.ChannelException as e:
            raise HostUnreachable(
                self.name, f"{self._where} unreachable: the jump host could not connect ({e.text})"
            ) from e
        except (paramiko.SSHException, EOFError) as e:
            raise HostUnreachable(
                self.name, f"{self._where}: SSH handshake failed: {_scrub(str(e)) or type(e).__name__}"
            ) from e
        except OSError as e:
            raise HostUnreachable(self.name, f"{self._where} unreachable: {e.strerror or e}") from e

    def _open_channel(self, timeout: float | None) -> paramiko.Channel:
        """A session channel; one transparent reconnect if the transport turns out to be dead."""
        for attempt in (1, 2):
            transport = self._transport()
            try:
                return transport.open_session(timeout=timeout or self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if attempt == 2 or transport.is_active():
                    raise HostUnreachable(self.name, f"{self._where}: cannot open a session: {e}") from e
        raise AssertionError("unreachable")

    def _close_connections(self) -> None:
        self.connection.close()
        self.connection.client.close()
        gateway = self._gateway
        while isinstance(gateway, Connection):
            gateway.close()
            gateway = gateway.gateway

    # -- commands ------------------------------------------------------------------------------------

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run shell text (or a shlex-joined argv) on the host; see the module doc for env and timeouts."""
        shown = as_shell(cmd)
        return self._execute(shown, with_env(shown, env), timeout, check)

    def sudo(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """As root: directly when we log in as root, else `sudo -n` (never prompts; no one is there to type).

        env is exported inside the sudo'd shell, since sudo resets the environment it was given.
        """
        if self.user == "root":
            return self.run(cmd, timeout=timeout, check=check, env=env)
        inner = with_env(as_shell(cmd), env)
        shown = shlex.join(["sudo", "-n", "sh", "-c", as_shell(cmd)])
        return self._execute(
            shown, shlex.join(["sudo", "-n", "sh", "-c", inner]), timeout, check, elevated=True
        )

    def _execute(
        self,
        shown: str,
        wire: str,
        timeout: float | None,
        check: bool,
        elevated: bool = False,
        kill_on_timeout: bool = True,
    ) -> Result:
        start = time.perf_counter()
        deadline = None if timeout is None else time.monotonic() + timeout
        track_pid = timeout is not None and kill_on_timeout
        if track_pid:
            # The login shell is a session (and process group) leader: sshd setsid()s it. Its pid,
            # announced on stdout, is what lets a timeout kill the whole group, grandchildren too.
            wire = f"echo {_PID_MARK.decode()}$$; {wire}"
        chan = self._open_channel(timeout)
        try:
            chan.exec_command(wire)
            chan.shutdown_write()  # stdin at EOF, like DEVNULL locally
            out, err, code = self._collect(chan, deadline, track_pid)
        except _Expired as expired:
            chan.close()
            if kill_on_timeout:
                self._kill_group(expired.pid, elevated)
            raise CommandTimeout(self.name, shown, timeout or 0) from None
        finally:
            chan.close()
        if code == -1 and not chan.get_transport().is_active():
            raise HostUnreachable(self.name, f"{self._where}: connection lost while running: {shown}")
        result = Result(
            shown,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            code,
            time.perf_counter() - start,
            self.name,
        )
        if check and result.failed:
            raise CommandFailed(result)
        return result

    @staticmethod
    def _collect(chan: paramiko.Channel, deadline: float | None, track_pid: bool) -> tuple[bytes, bytes, int]:
        """Read stdout and stderr as they come until EOF, then the exit status.

        Both streams share one SSH flow-control window: reading only one of them would stall a command
        that fills the other (the classic exec_command deadlock). poll() on the channel's pipe wakes on
        either stream, on EOF and on close, so no busy-waiting and no reader threads. With `track_pid`
        the pid marker line (see _execute) is cut from stdout; anything a noisy shell rc file printed
        before it is kept, as it would be without a timeout.
        """
        out: list[bytes] = []
        err: list[bytes] = []
        head = bytearray()
        pid: int | None = None
        poller = select.poll()
        poller.register(chan.fileno(), select.POLLIN)
        try:
            while True:
                got = False
                if chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(_READ_CHUNK))
                    got = True
                if chan.recv_ready():
                    data = chan.recv(_READ_CHUNK)
                    got = True
                    if track_pid and pid is None:
                        head += data
                        pid = _cut_pid(head, out)
                    else:
                        out.append(data)
                if got:
                    continue
                if chan.eof_received or chan.closed:
                    break
                poller.poll(_remaining_ms(deadline))
            # No data may follow EOF, and both buffers are closed now: these reads drain and never block.
            while data := chan.recv(_READ_CHUNK):
                if track_pid and pid is None:
                    head += data
                    pid = _cut_pid(head, out)
                else:
                    out.append(data)
            if track_pid and pid is None:
                out.append(bytes(head))  # never announced (odd shell): keep every byte
            while data := chan.recv_stderr(_READ_CHUNK):
                err.append(data)
            # exit-status may trail EOF by a packet; the event is also set when the channel closes.
            while not chan.status_event.wait(_remaining_s(deadline, cap=1.0)):
                pass
        except _Expired:
            raise _Expired(pid) from None
        return b"".join(out), b"".join(err), chan.exit_status

    def _kill_group(self, pid: int | None, elevated: bool) -> None:
        """Kill the timed-out command's process group from a second channel on the same connection.

        The SSH "signal" request would be the protocol's way, but OpenSSH refuses it for root logins
        ("session signalling requires privilege separation") and paramiko has no API for it; a plain
        `kill` works for every user and server. Commands run through sudo need sudo to be killed.
        Best effort: the CommandTimeout is raised whatever happens here.
        """
        if pid is None or pid <= 1:
            log.warning("%s: timed-out command's pid unknown; closed its channel only", self.name)
            return
        kill = f"kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; true"
        if elevated and self.user != "root":
            kill = shlex.join(["sudo", "-n", "sh", "-c", kill])
        try:
            self._execute(f"kill {pid}", kill, self.connect_timeout, check=False, kill_on_timeout=False)
        except HostError as e:
            log.warning("%s: could not kill timed-out process group %d: %s", self.name, pid, e)

    # -- files ---------------------------------------------------------------------------------------

    def put(self, local: str | Path, remote: str) -> None:
        """Upload over SFTP (fabric's Transfer: keeps the file mode, resolves a remote directory)."""
        self._transport()
        self.connection.put(str(local), remote)

    def get(self, remote: str, local: str | Path) -> None:
        """Download over SFTP."""
        self._transport()
        self.connection.get(remote, str(local))

    # -- facts and lifetime --------------------------------------------------------------------------

    @cached_property
    def facts(self) -> Facts:
        """One round trip of FACTS_SCRIPT, cached: the machine does not change under a session."""
        text = self.run(["sh", "-c", FACTS_SCRIPT], timeout=60).stdout
        return parse_facts(text, **self._known)

    def close(self) -> None:
        """Close the connection (and SFTP, and jump hosts); a later command would reconnect."""
        with self._lock:
            self._close_connections()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHHost({self.name!r}, {self.user}@{self._where})"


class _Expired(Exception):
    """Internal: the command deadline passed while collecting output (with the remote pid, if seen)."""

    def __init__(self, pid: int | None = None) -> None:
        super().__init__(pid)
        self.pid = pid


def _cut_pid(head: bytearray, out: list[bytes]) -> int | None:
    """Once `head` holds the whole pid marker line: move the rest of `head` to `out` and return the pid.

    Returns None while the line is incomplete, or -1 when 64 KiB went by without a marker.
    """
    at = head.find(_PID_MARK)
    end = head.find(b"\n", at) if at >= 0 else -1
    if end >= 0:
        digits = bytes(head[at + len(_PID_MARK) : end])
        out.append(bytes(head[:at] + head[end + 1 :]))
        return int(digits) if digits.isdigit() else -1
    if len(head) > 65536:
        out.append(bytes(head))
        return -1
    return None


def _remaining_ms(deadline: float | None) -> int | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Expired
    return max(1, math.ceil(left * 1000))


def _remaining_s(deadline: float | None, cap: float) -> float:
    if deadline is None:
        return cap
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Expired
    return min(cap, left)
