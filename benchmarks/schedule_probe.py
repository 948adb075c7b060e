"""A pytest plugin for benchmarks/schedules.py (`-p benchmarks.schedule_probe`): times what a schedule
costs, from inside the run under test, into one JSON line per event (PERFCI_BENCH_LOG).

* every instance "boots" late: the address the provider gets (tests/ec2_harness.py maps each instance to
  the loopback sshd) is a TCP gate that starts listening PERFCI_BENCH_LISTEN_AFTER seconds after the
  address was handed out, then forwards to sshd; the moment it listens is logged (`listen`);
* RunInstances (its answer: ids and types) and TerminateInstances (the ids sent) are logged at the
  provider's own EC2 clients (botocore events; nothing in pytest_perfci is patched: the provider is built
  through the public pytest_perfci_make_provider hook, as tests/faults/faultplug.py does);
* the provider's progress lines saying SSH works and cloud-init is done (`noticed`), and "<type> <id>
  ready" (`ready`: after that the TTL restarts on the host and in the tags, and the host is handed out);
* each test's call phase, with the target it ran on, from the reports the owning process receives
  (the xdist controller included).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests import ec2_harness

_lock = threading.Lock()
_READY = re.compile(r"^(\S+) (i-[0-9a-f]+) ready")
_NOTICED = re.compile(r"^(\S+) (i-[0-9a-f]+): (no cloud-init|cloud-init done|cloud-init reported)")


def log(**fields: Any) -> None:
    path = os.environ.get("PERFCI_BENCH_LOG")
    if path:
        with _lock, open(path, "a") as fh:
            fh.write(json.dumps({"t": time.time(), "pid": os.getpid(), **fields}) + "\n")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def gate(iid: str, target_port: int, after: float) -> int:
    """A port that accepts connections only `after` seconds from now, then forwards them to target_port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])

    def serve() -> None:
        time.sleep(after)
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(16)
        log(ev="listen", iid=iid)
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True, name=f"gate-{iid}").start()
    return port


@pytest.hookimpl(tryfirst=True)
def pytest_perfci_host_address(instance: dict[str, Any]) -> str:
    address = ec2_harness.pytest_perfci_host_address(instance)  # authorises the run's key at sshd
    host, _, port = address.rpartition(":")
    after = float(os.environ.get("PERFCI_BENCH_LISTEN_AFTER") or 0)
    return f"{host}:{gate(instance['InstanceId'], int(port), after)}"


@pytest.hookimpl(tryfirst=True)
def pytest_perfci_make_provider(settings: Any, config: pytest.Config) -> Any:
    if settings.effective_provider != "ec2":
        return None
    from pytest_perfci.plugin import provider_context
    from pytest_perfci.providers import make_provider

    provider: Any = make_provider(settings, provider_context(config))
    provider.waiter_delay = 1  # moto's instances are running at once
    progress = provider.progress

    def progress_and_log(line: str) -> None:
        for name, pattern in (("ready", _READY), ("noticed", _NOTICED)):
            match = pattern.match(line)
            if match:
                log(ev=name, type=match[1], iid=match[2])
        progress(line)

    provider.progress = progress_and_log

    def after_run(parsed: dict[str, Any] | None = None, **_: Any) -> None:
        for inst in (parsed or {}).get("Instances", []):
            log(ev="run", iid=inst["InstanceId"], type=inst["InstanceType"])

    def before_terminate(request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        ids = [v[0] for k, v in parse_qs(body).items() if k.startswith("InstanceId.")]
        log(ev="terminate", ids=ids)

    original = provider._clients

    def _clients() -> None:
        fresh = provider._ec2 is None
        original()
        if fresh and provider._ec2 is not None:
            for client in (provider._ec2, provider.teardown_ec2):
                client.meta.events.register("after-call.ec2.RunInstances", after_run)
                client.meta.events.register("before-send.ec2.TerminateInstances", before_terminate)

    provider._clients = _clients
    return provider


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and not os.environ.get("PYTEST_XDIST_WORKER"):
        log(ev="test", nodeid=report.nodeid, start=report.start, stop=report.stop)
