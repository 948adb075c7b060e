"""Boot one twin under QEMU and make it reachable over loopback SSH with a host key known in advance.

Why it is built this way:

* Keys: the guest's host key is generated here before boot and appended to the image as a tiny
  second initramfs archive (the kernel unpacks concatenated archives in order), so known_hosts is
  written before the guest exists and SSH runs with strict checking. Key material never goes on a
  command line (QEMU's argv is world-readable in /proc) and the per-guest initramfs is removed once
  QEMU has loaded it.
* Network: QEMU user networking with `restrict=on` (the guest reaches nothing) and one host forward,
  127.0.0.1:PORT -> guest:22.
* Nothing outlives the run: QEMU gets PR_SET_PDEATHSIG(SIGKILL) in its pre-exec, so it dies with
  the thread that started it, which is one launcher thread living as long as the process (see
  _Launcher); a clean end powers the guest off over SSH; the ledger records the pid for `perfci reap`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pytest_perfci.twins.cpio import CpioWriter
from pytest_perfci.twins.image import READY_MARK, USER_DATA, Image
from pytest_perfci.twins.machines import Machine

Progress = Callable[[str], None]
PR_SET_PDEATHSIG = 1
NAME_PREFIX = "perfci-twin"
EXPIRES_SEP = "@"  # -name perfci-twin:<label>@<expires-at stamp>: what `perfci reap --expired` reads


def marker(label: str, expires_at: str | None = None) -> str:
    """QEMU's -name: how `perfci reap` tells a twin guest from any other process (and when it expires)."""
    return f"{NAME_PREFIX}:{label}{EXPIRES_SEP + expires_at if expires_at else ''}"


def parse_marker(name: str) -> tuple[str, str | None] | None:
    """-name value -> (label, expires-at or None); None when it is not a twin's."""
    prefix, sep, rest = name.partition(":")
    if prefix != NAME_PREFIX or not sep:
        return None
    label, _, expires = rest.partition(EXPIRES_SEP)
    return label, expires or None


class TwinError(RuntimeError):
    """A twin could not be started or reached; the first line says which and where to look."""


class QemuMissing(TwinError):
    pass


def require_qemu(machine: Machine) -> str:
    path = shutil.which(machine.qemu)
    if path is None:
        raise QemuMissing(
            f"{machine.qemu} not found (needed for --qemu-machine {machine.name}): apt-get install {machine.apt_package}"
        )
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def new_keypair() -> tuple[bytes, str]:
    """(OpenSSH private key bytes, "ssh-ed25519 AAAA..." public line) of a fresh ed25519 key."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_command(qemu: str, machine: Machine, image: Image, initrd: Path, port: int, name: str,
                 memory_mb: int = 1024) -> list[str]:
    """The QEMU argv: serial console on stdout, no monitor, no reboot, one loopback-only host forward."""
    return [
        qemu, *machine.args, "-smp", "1", "-m", str(memory_mb),
        "-name", name, "-nographic", "-monitor", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(initrd),
        "-append", f"console={machine.console} panic=-1 quiet",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", f"{machine.net_device},netdev=n0",
    ]


@dataclass
class Guest:
    """One running QEMU guest and how to reach it."""

    name: str
    machine: Machine
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    started: float
    ready_after: float | None = None
    known_hosts: Path = field(init=False)
    console: Path = field(init=False)

    def __post_init__(self) -> None:
        self.known_hosts = self.workdir / "known_hosts"
        self.console = self.workdir / "console.log"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def console_tail(self) -> str:
        try:
            lines = [ln for ln in self.console.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def wait_ready(self, timeout: float) -> float:
        """Seconds from QEMU start to the guest's "ssh ready" line; TwinError names the console log."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                tail = self.console_tail()
                if "hostfwd" in tail or "host forwarding" in tail:
                    raise TwinError(f"twin {self.name}: 127.0.0.1:{self.port} is in use (QEMU: {tail}); "
                                    f"console log: {self.console}")
                raise TwinError(f"twin {self.name}: QEMU exited with {self.process.returncode} before the guest "
                                f"was SSH-ready ({tail or 'no output'}); console log: {self.console}")
            with contextlib.suppress(OSError):
                if READY_MARK.encode() in self.console.read_bytes():
                    self.ready_after = time.monotonic() - self.started
                    return self.ready_after
            time.sleep(0.25)
        self.kill()
        raise TwinError(f"twin {self.name}: not SSH-ready within {timeout:.0f} s (QEMU killed); "
                        f"console log: {self.console}")

    def kill(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()


class _Launcher:
    """One long-lived thread that starts every QEMU of this process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. Guests
    are started from whatever thread asks (the EC2 provider's provisioning pool calls the address
    hook from short-lived workers), so the fork happens here, in a daemon thread that lives exactly
    as long as the process: the guest dies with pytest, and only then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]]
        self._queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            start, future = self._queue.get()
            try:
                future.set_result(start())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def popen(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="perfci-twin-launcher", daemon=True)
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._queue.put((start, future))
        return future.result()


_LAUNCHER = _Launcher()


def start_guest(
    machine: Machine,
    image: Image,
    workdir: Path,
    *,
    label: str,
    authorized_key: str,
    port: int | None = None,
    memory_mb: int = 1024,
    user_data: bytes | None = None,
    expires_at: str | None = None,
) -> Guest:
    """Start QEMU for one guest (returns at once; call Guest.wait_ready), from any thread (see _Launcher).

    `user_data`: a script the guest runs once at boot after SSH is up, as cloud-init runs an EC2
    instance's (a shell script only: the twin has no cloud-config). `expires_at`: the stamp `perfci
    reap --expired` judges the guest by.
    """
    if user_data is not None and not user_data.startswith(b"#!"):
        raise TwinError(f"twin {label}: user data starts with {user_data[:20]!r}; a twin runs a '#!' script "
                        "only (no cloud-config)")
    qemu = require_qemu(machine)
    if port is None:
        port = free_port()
    elif not port_free(port):
        raise TwinError(f"twin {label}: 127.0.0.1:{port} is in use; pick a free --qemu-port or leave it out")
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    host_private, host_public = new_keypair()
    (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
    initrd = workdir / "initrd.cpio"
    with initrd.open("wb") as out, image.initrd.open("rb") as base:
        shutil.copyfileobj(base, out, 1 << 20)
        overlay = CpioWriter(out)
        overlay.directory("etc", 0o755)
        overlay.directory("etc/ssh", 0o700)
        overlay.file("etc/ssh/host_ed25519", host_private, 0o600)
        overlay.directory("root", 0o700)
        overlay.directory("root/.ssh", 0o700)
        overlay.file("root/.ssh/authorized_keys", (authorized_key.strip() + "\n").encode(), 0o600)
        overlay.file("etc/hostname", f"{machine.name}\n".encode(), 0o644)
        overlay.file("etc/perfci-twin", f"{machine.name}\n".encode(), 0o644)  # facts.twin, whoever connects
        if user_data is not None:
            parts = USER_DATA.split("/")
            for i in range(1, len(parts)):
                overlay.directory("/".join(parts[:i]), 0o755 if i < len(parts) - 1 else 0o700)
            overlay.file(USER_DATA, user_data, 0o700)
        overlay.close()
    initrd.chmod(0o600)
    name = marker(label, expires_at)
    argv = qemu_command(qemu, machine, image, initrd, port, name, memory_mb)
    console_path = workdir / "console.log"

    def start() -> subprocess.Popen[bytes]:
        with console_path.open("wb") as console:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent, start_new_session=True)  # noqa: PLW1509

    process = _LAUNCHER.popen(start)
    return Guest(name=label, machine=machine, port=port, workdir=workdir, process=process, started=time.monotonic())


def forget_initrd(guest: Guest) -> None:
    """QEMU has loaded the initramfs by the time the guest runs: the copy with its host key goes."""
    with contextlib.suppress(OSError):
        (guest.workdir / "initrd.cpio").unlink()
