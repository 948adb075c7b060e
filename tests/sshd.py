"""A real OpenSSH server on loopback for tests and benchmarks: no mocks between SSHHost and sshd.

Two ways in, one implementation:

* `start_sshd(workdir)` is a plain function (no pytest) so `benchmarks/host_overhead.py` can start
  the very same server the tests use;
* the `sshd` (session-scoped) and `sshd_server` (per-test, for tests that stop it) fixtures wrap it.
  Register them for the whole tests/ tree with `pytest_plugins = ["pytester", "tests.sshd"]` in
  tests/conftest.py (or import the fixture names into a test module, as tests/test_ssh_host.py does).

Every server gets its own ed25519 host key and a fresh client key in its own directory, listens on
127.0.0.1 only, and is killed (and reaped) on teardown. The server runs as root and logs in root by
key only; it needs the privilege separation directory /run/sshd, which is created when missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
LOOPBACK = "127.0.0.1"

_CONFIG = """\
# Written by tests/sshd.py: a throw-away server for one test session, loopback only.
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AcceptEnv PERFCI_*
MaxSessions 64
MaxStartups 64:30:128
LogLevel VERBOSE
Subsystem sftp internal-sftp
{rc}"""

# Debian's bash sources ~/.bashrc for every command run by sshd when SHLVL < 2; on this image that
# is `pyenv init` (~0.2 s per command), which would drown the transport costs the benchmark and the
# timing-sensitive tests measure. SHLVL=1 from sshd makes the session shell level 2: rc skipped.
_SKIP_RC = "SetEnv SHLVL=1\n"


class SshdError(RuntimeError):
    """sshd could not be started or did not become ready; the message carries its log."""


@dataclass
class SshdServer:
    """A running sshd: where it listens, who may log in with which key, and how to trust its host key."""

    address: str
    port: int
    user: str
    client_key: Path
    client_public_key: str
    host_public_key: str
    known_hosts_line: str
    known_hosts: Path
    workdir: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def target(self) -> str:
        """`user@address` for the OpenSSH client."""
        return f"{self.user}@{self.address}"

    def ssh_command(self, *remote: str) -> list[str]:
        """argv for the OpenSSH client against this server with the same key and known_hosts (no prompts)."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "LogLevel=ERROR",
            self.target,
            *remote,
        ]

    def log_text(self) -> str:
        """What sshd wrote (with -e its log goes to stderr, redirected here): the first thing to read on failure."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Kill the listener and wait for it; idempotent, so tests may stop early and teardown still works.

        SIGTERM lets sshd remove its pid file; SIGKILL after `timeout` so a wedged server never hangs a run.
        Per-connection children have their own sessions and die when their client disconnects.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def free_port(address: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel picks it); racy by nature, so callers retry on bind errors."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def sshd_available() -> str | None:
    """None when a server can be started here, else the reason (used to skip, never to silently pass)."""
    if not Path(SSHD).exists():
        return f"{SSHD} not installed (Debian package openssh-server)"
    if shutil.which(SSH_KEYGEN) is None:
        return "ssh-keygen not installed (Debian package openssh-client)"
    if os.geteuid() != 0:
        return "sshd fixture needs root (it logs in as root and owns /run/sshd)"
    return None


def _keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair without passphrase; returns the public line."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def _wait_ready(address: str, port: int, proc: subprocess.Popen[bytes], deadline: float) -> str | None:
    """Poll until sshd sends its SSH banner; None when ready, else why not (process died or deadline passed).

    Reading the banner (not just connecting) proves the daemon accepted and forked a handler.
    """
    last = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"sshd exited with status {proc.returncode}"
        try:
            with socket.create_connection((address, port), timeout=0.5) as s:
                s.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                banner = s.recv(256)
            if banner.startswith(b"SSH-"):
                return None
            last = f"unexpected banner {banner[:40]!r}"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.02)
    return f"not ready within the deadline ({last})"


def start_sshd(
    workdir: Path,
    *,
    address: str = LOOPBACK,
    ready_timeout: float = 10.0,
    attempts: int = 3,
    shell_rc: bool = False,
) -> SshdServer:
    """Start `/usr/sbin/sshd -D -e -f CONFIG` on `address` and a free port; return once it speaks SSH.

    Keys, config, pid file and log all live in `workdir`, so parallel sessions (xdist workers) never
    share anything but /run/sshd. A lost port race (another process took the port between our probe
    and sshd's bind) is retried with a new port. `shell_rc=True` lets session shells read root's
    ~/.bashrc like a stock server would (see _SKIP_RC for why that is off by default).
    """
    if address != LOOPBACK:
        raise ValueError("test servers bind 127.0.0.1 only")
    reason = sshd_available()
    if reason:
        raise SshdError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    authorized_keys = workdir / "authorized_keys"
    if not host_key.exists():
        _keygen(host_key, "perfci-test-host")
    if not client_key.exists():
        _keygen(client_key, "perfci-test-client")
    host_public = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    client_public = client_key.with_suffix(".pub").read_text().strip()
    authorized_keys.write_text(client_public + "\n")
    authorized_keys.chmod(0o600)

    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        port = free_port(address)
        config = workdir / "sshd_config"
        log = workdir / f"sshd.{port}.log"
        config.write_text(
            _CONFIG.format(
                address=address,
                port=port,
                host_key=host_key,
                pid_file=workdir / "sshd.pid",
                authorized_keys=authorized_keys,
                rc="" if shell_rc else _SKIP_RC,
            )
        )
        # Fail fast on a bad config with sshd's own words rather than a readiness timeout.
        test = subprocess.run([SSHD, "-t", "-f", str(config)], check=False, capture_output=True, text=True)
        if test.returncode != 0:
            raise SshdError(f"sshd -t rejected {config}: {test.stderr.strip()}")
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal must not race our orderly stop()
            )
        known_line = f"[{address}]:{port} {host_public}"
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(known_line + "\n")
        server = SshdServer(
            address=address,
            port=port,
            user="root",
            client_key=client_key,
            client_public_key=client_public,
            host_public_key=host_public,
            known_hosts_line=known_line,
            known_hosts=known_hosts,
            workdir=workdir,
            config=config,
            log=log,
            process=proc,
        )
        why = _wait_ready(address, port, proc, time.monotonic() + ready_timeout)
        if why is None:
            return server
        server.stop()
        text = server.log_text()
        failures.append(f"attempt {attempt} on {address}:{port}: {why}\n--- sshd log ---\n{text.strip()}")
        if "Address already in use" not in text:
            break
    raise SshdError("sshd did not start:\n" + "\n".join(failures))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """One real sshd for the whole session (cheap to share: every test opens its own connections).

    Skips (with the reason) where sshd cannot run, e.g. a developer laptop without openssh-server
    or without root; CI installs the package and runs as root, so it never skips there.
    """
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """A private sshd for one test, for tests that stop or break the server without hurting others."""
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd-own"))
    try:
        yield server
    finally:
        server.stop()
