"""Run iperf3 and sockperf between a pair's client and server (the I/O half of checks/net.py).

The server is started in the background on the server host, bound to the pair's test address only and
bounded by `timeout` (it dies by itself if this process does), waited for until it listens, and stopped
after the client's run. The client runs on the client host against that address. Commands go through
the Host protocol, so the same code runs in two network namespaces and over SSH on two instances.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pytest_perfci.checks.net import Iperf3Result, SockperfResult, parse_iperf3, parse_sockperf
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import Result
from pytest_perfci.retry import LookAgain, polling

# A server outlives its client run by this much at most, whatever happens to this process.
SERVER_GRACE_S = 60


class ServerNotListening(RuntimeError):
    """The server process never listened on its port; str() names the host, port and its log."""


def listening_script(port: int) -> str:
    """Exit 0 when something listens on TCP `port` (ss from iproute2, on every image the suites use)."""
    return f"ss -Hltn 'sport = :{port}' | grep -q ."


@contextmanager
def background_server(host: Host, argv: Sequence[str], port: int, *, bound_s: float) -> Iterator[str]:
    """Start `argv` on `host` in the background (killed after `bound_s` by timeout), wait until it
    listens on `port`, yield its log path (a fresh temporary file: two pairs on one machine, e.g. xdist
    workers' namespaces, never share one); stop it and remove the log afterwards."""
    cmd = (f"log=$(mktemp /tmp/perfci-net-{port}-XXXXXX) && "
           f"{{ nohup timeout {int(bound_s)} {shlex.join(argv)} > \"$log\" 2>&1 < /dev/null & }} && "
           'echo "$! $log"')
    pid, log = host.run(cmd, timeout=30).stdout.strip().splitlines()[-1].split(" ", 1)

    def look() -> None:
        if host.run(listening_script(port), timeout=15, check=False).ok:
            return
        if not host.run(["kill", "-0", pid], timeout=15, check=False).ok:
            tail = host.run(["tail", "-n", "5", log], timeout=15, check=False).stdout.strip()
            raise ServerNotListening(f"{host.name}: {argv[0]} exited before listening on {port}: {tail}")
        raise LookAgain(0.2, f"{argv[0]} not listening on {port} yet")

    try:
        try:
            polling(100)(look)
        except LookAgain:
            raise ServerNotListening(f"{host.name}: {argv[0]} not listening on {port} after 20 s") from None
        yield log
    finally:
        host.run(["kill", pid], timeout=15, check=False)
        host.run(["rm", "-f", log], timeout=15, check=False)


def iperf3_client_argv(server: str, port: int, seconds: int, streams: int) -> list[str]:
    return ["iperf3", "-c", server, "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J",
            "--connect-timeout", "5000"]


def run_iperf3(client: Host, server: Host, address: str, port: int, *, seconds: int,
               streams: int) -> tuple[Iperf3Result, Result]:
    """One TCP throughput run, client -> server; NetParseError carries iperf3's own error."""
    server_argv = ["iperf3", "-s", "-1", "-B", address, "-p", str(port)]
    with background_server(server, server_argv, port, bound_s=seconds + SERVER_GRACE_S):
        raw = client.run(iperf3_client_argv(address, port, seconds, streams), timeout=seconds + SERVER_GRACE_S,
                         check=False)
    return parse_iperf3(raw.stdout), raw


def sockperf_client_argv(server: str, port: int, seconds: int, size: int) -> list[str]:
    return ["sockperf", "ping-pong", "--tcp", "-i", server, "-p", str(port), "-m", str(size), "-t", str(seconds),
            "--full-rtt"]


def run_sockperf(client: Host, server: Host, address: str, port: int, *, seconds: int,
                 size: int = 64) -> tuple[SockperfResult, Result]:
    """TCP request/response round trips of `size`-byte messages, client -> server and back."""
    server_argv = ["sockperf", "server", "--tcp", "-i", address, "-p", str(port)]
    with background_server(server, server_argv, port, bound_s=seconds + SERVER_GRACE_S):
        raw = client.run(sockperf_client_argv(address, port, seconds, size), timeout=seconds + SERVER_GRACE_S,
                         check=False)
    return parse_sockperf(f"{raw.stdout}\n{raw.stderr}"), raw
