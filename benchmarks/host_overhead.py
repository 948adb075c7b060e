"""Per-command overhead of the Host implementations against their raw baselines, side by side.

Why: a perf suite runs hundreds of small commands per host; the handle must not be the bottleneck.
Targets (from the issue): SSHHost.run <= 1.3x raw paramiko exec_command on one connection, and
LocalHost.run <= 1.2x subprocess.run.

What runs: a private sshd on 127.0.0.1 (tests/sshd.py's start_sshd, the same server the tests use),
then N x `true` through each contender. Contenders are interleaved in rounds of `--batch` commands
and the order rotates every round, so drift on a noisy 2-core machine hits all of them alike; the
per-command figure is the median of the per-round means (the mean over all rounds is printed too).

Two paramiko baselines, because SSHHost disables Nagle on its socket (TCP_NODELAY): "raw paramiko"
is exec_command exactly as most code calls it, "raw paramiko +NODELAY" is the same with the socket
option SSHHost sets. The target is judged against the latter, the like-for-like one: it isolates the
exec path. fabric's own Connection.run is shown for the record (it is why SSHHost does not use it).

Not a test: it prints and exits 0 whether or not the targets are met.
    .venv/bin/python benchmarks/host_overhead.py [-n 500] [--ssh-n 500] [--batch 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.sshd when run as a script

from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.hosts.ssh import SSHHost
from tests.sshd import SshdServer, sshd_available, start_sshd

Contender = tuple[str, Callable[[], object], int]


def machine() -> str:
    """One line saying where the numbers came from, since they mean nothing without it."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ssh_version = (
        subprocess.run(["ssh", "-V"], check=False, capture_output=True, text=True)
        .stderr.strip()
        .split(",")[0]
    )
    return (
        f"{platform.node()} {platform.machine()} {model or '?'} x{os.cpu_count()}, "
        f"kernel {platform.release()}, Python {platform.python_version()}, "
        f"paramiko {paramiko.__version__}, {ssh_version}, load {os.getloadavg()[0]:.2f}"
    )


def measure(contenders: list[Contender], batch: int) -> dict[str, tuple[float, float, int]]:
    """name -> (median of round means, overall mean, commands run), in seconds per command."""
    rounds: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    done: dict[str, int] = {name: 0 for name, _, _ in contenders}
    total: dict[str, float] = {name: 0.0 for name, _, _ in contenders}
    for _, fn, _ in contenders:
        fn()  # warm up: first connection, imports, caches
    k = 0
    while any(done[name] < n for name, _, n in contenders):
        order = contenders[k % len(contenders) :] + contenders[: k % len(contenders)]
        k += 1
        for name, fn, n in order:
            todo = min(batch, n - done[name])
            if todo <= 0:
                continue
            start = time.perf_counter()
            for _ in range(todo):
                fn()
            spent = time.perf_counter() - start
            rounds[name].append(spent / todo)
            total[name] += spent
            done[name] += todo
    return {name: (statistics.median(rounds[name]), total[name] / done[name], done[name]) for name in rounds}


def row(name: str, stats: tuple[float, float, int], base: float | None) -> str:
    med, mean, n = stats
    ratio = f"{med / base:6.2f}x" if base else "   base"
    return f"  {name:<28} {med * 1e3:9.3f} ms  (mean {mean * 1e3:8.3f} ms, n={n:4d})  {ratio}"


def verdict(label: str, ratio: float, target: float) -> str:
    return f"  {label}: {ratio:.2f}x (target <= {target:.1f}x) -> {'MET' if ratio <= target else 'NOT MET'}"


def ssh_section(server: SshdServer, n: int, ssh_n: int, fabric_n: int, batch: int) -> None:
    host = SSHHost(
        "bench",
        server.address,
        user=server.user,
        port=server.port,
        key_filename=server.client_key,
        known_hosts=server.known_hosts,
    )

    def raw_client(nodelay: bool) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(server.known_hosts))
        client.connect(
            server.address,
            server.port,
            server.user,
            key_filename=str(server.client_key),
            look_for_keys=False,
            allow_agent=False,
        )
        if nodelay:
            transport = client.get_transport()
            assert transport is not None
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    plain, tuned = raw_client(False), raw_client(True)

    def raw(client: paramiko.SSHClient) -> Callable[[], object]:
        def call() -> int:
            _, out, err = client.exec_command("true")
            out.read()
            err.read()
            return out.channel.recv_exit_status()

        return call

    ssh_argv = server.ssh_command("true")
    contenders: list[Contender] = [
        ("SSHHost.run", lambda: host.run("true"), n),
        ("raw paramiko +NODELAY", raw(tuned), n),
        ("raw paramiko", raw(plain), n),
        ("fabric Connection.run", lambda: host.connection.run("true", hide=True), fabric_n),
        (
            "ssh client per command",
            lambda: subprocess.run(ssh_argv, check=True, stdin=subprocess.DEVNULL),
            ssh_n,
        ),
    ]
    try:
        stats = measure([c for c in contenders if c[2] > 0], batch)
    finally:
        host.close()
        plain.close()
        tuned.close()
    base = stats["raw paramiko +NODELAY"][0]
    print(f"SSH: `true` against sshd on {server.address}:{server.port} (one connection unless noted)")
    for name, _, count in contenders:
        if count > 0:
            print(row(name, stats[name], base))
    print(verdict("SSHHost.run / raw paramiko +NODELAY", stats["SSHHost.run"][0] / base, 1.3))
    plain_ratio = stats["SSHHost.run"][0] / stats["raw paramiko"][0]
    print(f"  (SSHHost.run / raw paramiko with default socket: {plain_ratio:.2f}x)")


def local_section(n: int, batch: int) -> None:
    host = LocalHost()
    contenders: list[Contender] = [
        ("LocalHost.run", lambda: host.run(["true"]), n),
        (
            "subprocess.run",
            lambda: subprocess.run(["true"], check=False, capture_output=True, stdin=subprocess.DEVNULL),
            n,
        ),
    ]
    stats = measure(contenders, batch)
    base = stats["subprocess.run"][0]
    print("Local: `true` as argv (no shell), output captured")
    for name, _, _ in contenders:
        print(row(name, stats[name], base))
    print(verdict("LocalHost.run / subprocess.run", stats["LocalHost.run"][0] / base, 1.2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="commands per contender (default 500)")
    parser.add_argument("--ssh-n", type=int, default=500, help="commands through the ssh client (slow)")
    parser.add_argument("--fabric-n", type=int, default=500, help="commands through fabric's Connection.run")
    parser.add_argument("--batch", type=int, default=50, help="commands per contender per round")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    local_section(args.n, args.batch)
    reason = sshd_available()
    if reason:
        print(f"SSH: skipped ({reason})")
        return 0
    with tempfile.TemporaryDirectory(prefix="perfci-bench-sshd-") as tmp:
        server = start_sshd(Path(tmp))
        try:
            ssh_section(server, args.n, args.ssh_n, args.fabric_n, args.batch)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
