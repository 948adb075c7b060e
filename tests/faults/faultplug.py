"""A pytest plugin for runs under fault injection (`-p tests.faults.faultplug`): EC2 API faults,
timestamps of every API attempt, and marker files for the phases a kill campaign aims at.

API faults are injected at botocore's ``before-send`` event of the provider's EC2 client, i.e. after
signing and *inside* botocore's retry loop: a faked RequestLimitExceeded or 500 goes through the
client's real retry policy (adaptive mode) exactly as one from AWS would, and a faked read timeout is
botocore's own ReadTimeoutError. Nothing in pytest_perfci is patched: the plugin builds the provider
through the public ``pytest_perfci_make_provider`` hook (the same way the built-in one is made) and
registers its handler on that provider's client.

Environment (all optional):

* ``PERFCI_FAULTS``: ``;``-separated rules ``Operation@WHICH=ACTION``. WHICH is the attempt number of
  that operation (1-based, counting retries), a range ``2-3``, or ``*`` (every attempt). ACTION is
  an EC2 error code (HTTP 400, e.g. ``InsufficientInstanceCapacity``; ``RequestLimitExceeded`` is
  sent as HTTP 503 like EC2 does), ``500`` (InternalError), ``timeout`` (ReadTimeoutError after a
  short stall) or ``delay:SECONDS`` (stall, then send for real).
  Example: ``RunInstances@1=InsufficientInstanceCapacity;TerminateInstances@1-2=500``.
* ``PERFCI_FAULTS_LOG``: a file receiving one JSON line per EC2 API attempt (time, operation, attempt,
  action), written by every process of the run (xdist workers included), so callers can count calls.
* ``PERFCI_TEST_MARKERS``: marker files, as in tests/ec2_harness.py: ``call-<Operation>`` before the
  first attempt of an operation, ``test-running`` when a test body starts.
* ``PERFCI_FAULT_TEST_HOLD``: seconds each test body is held after ``test-running`` (default 0), so a
  signal can land "during a test" of a fast suite.
* ``PERFCI_FAULT_TEST_HOLD_UNTIL``: a file; each test body waits (at most 120 s) until it exists, so a
  campaign can act "during a test" for exactly as long as it needs (another run, a full disk).
* ``PERFCI_FAULT_FINISH_HOLD_UNTIL``: a file; the xdist controller (or the only process), right after
  its run loop ended (the last test ran; perfci's late-signal shield is up), writes the marker
  ``runloop-done`` and waits (at most 60 s) until the file exists: the moment of a late signal.
* ``PERFCI_TEST_SSH_READY_TIMEOUT`` / ``PERFCI_TEST_SSH_CONNECT_TIMEOUT``: the provider's SSH readiness
  deadline and connect timeout (defaults 600 s / 10 s are too long for a fault campaign).
* ``PERFCI_TEST_TEARDOWN_DEADLINE`` / ``PERFCI_TEST_TEARDOWN_READ_TIMEOUT``: the provider's whole-teardown
  deadline and its per-call read timeout (defaults 300 s / 15 s), for a black-holed endpoint.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from tests.ec2_harness import _mark  # the phase markers the kill tests wait for

_RULE = re.compile(r"^\s*(?P<op>[A-Za-z]+)@(?P<which>\*|\d+(?:-\d+)?)=(?P<action>[A-Za-z0-9.:]+)\s*$")
TIMEOUT_STALL = 0.5  # seconds a faked timeout stalls before botocore sees ReadTimeoutError

_lock = threading.Lock()
_attempts: dict[str, int] = {}


class Rule:
    def __init__(self, op: str, which: str, action: str) -> None:
        self.op, self.action = op, action
        if which == "*":
            self.lo, self.hi = 1, 10**9
        elif "-" in which:
            lo, hi = which.split("-")
            self.lo, self.hi = int(lo), int(hi)
        else:
            self.lo = self.hi = int(which)

    def matches(self, op: str, attempt: int) -> bool:
        return op == self.op and self.lo <= attempt <= self.hi


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for part in filter(str.strip, text.split(";")):
        m = _RULE.match(part)
        if not m:
            raise ValueError(f"PERFCI_FAULTS: bad rule {part!r} (want Operation@N|N-M|*=ACTION)")
        rules.append(Rule(m["op"], m["which"], m["action"]))
    return rules


def _log(**fields: Any) -> None:
    log = os.environ.get("PERFCI_FAULTS_LOG")
    if log:
        line = json.dumps({"t": time.time(), "pid": os.getpid(), **fields}) + "\n"
        with _lock, open(log, "a") as fh:
            fh.write(line)


def _error_response(url: str, status: int, code: str, message: str) -> AWSResponse:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>perfci-fault</RequestID></Response>")

    class _Raw:
        def __init__(self, data: bytes) -> None:
            self._data = data

        def stream(self, **_: Any) -> Any:
            yield self._data

    return AWSResponse(url, status, {"Content-Type": "text/xml;charset=UTF-8"}, _Raw(body.encode()))


def make_handler(rules: list[Rule]) -> Any:
    def before_send(request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        op = event_name.rsplit(".", 1)[-1]
        with _lock:
            _attempts[op] = attempt = _attempts.get(op, 0) + 1
        if attempt == 1:
            _mark(f"call-{op}")
        rule = next((r for r in rules if r.matches(op, attempt)), None)
        action = rule.action if rule else "pass"
        _log(op=op, attempt=attempt, action=action)
        if rule is None:
            return None
        if action.startswith("delay:"):
            time.sleep(float(action.split(":", 1)[1]))
            return None
        if action == "timeout":
            time.sleep(TIMEOUT_STALL)
            raise ReadTimeoutError(endpoint_url=request.url)
        if action == "500":
            return _error_response(request.url, 500, "InternalError",
                                   "An internal error has occurred (injected by tests.faults)")
        status = 503 if action == "RequestLimitExceeded" else 400
        return _error_response(request.url, status, action, f"{action} (injected by tests.faults)")

    return before_send


def install(ec2: Any, rules: list[Rule]) -> None:
    """Register the fault/log handler on one EC2 client (before-send: inside the retry loop)."""
    ec2.meta.events.register("before-send.ec2", make_handler(rules), unique_id="perfci-faults")


@pytest.hookimpl(tryfirst=True)
def pytest_perfci_make_provider(settings: Any, config: pytest.Config) -> Any:
    if settings.effective_provider != "ec2":
        return None
    from pytest_perfci.plugin import provider_context
    from pytest_perfci.providers import make_provider

    rules = parse_rules(os.environ.get("PERFCI_FAULTS", ""))
    provider: Any = make_provider(settings, provider_context(config))
    if os.environ.get("PERFCI_TEST_SSH_READY_TIMEOUT"):
        provider.ssh_ready_timeout = float(os.environ["PERFCI_TEST_SSH_READY_TIMEOUT"])
    if os.environ.get("PERFCI_TEST_SSH_CONNECT_TIMEOUT"):
        provider.ssh_connect_timeout = float(os.environ["PERFCI_TEST_SSH_CONNECT_TIMEOUT"])
    if os.environ.get("PERFCI_TEST_TEARDOWN_DEADLINE"):
        provider.teardown_deadline = float(os.environ["PERFCI_TEST_TEARDOWN_DEADLINE"])
    if os.environ.get("PERFCI_TEST_TEARDOWN_READ_TIMEOUT"):
        provider.teardown_read_timeout = float(os.environ["PERFCI_TEST_TEARDOWN_READ_TIMEOUT"])
    provider.waiter_delay = 1  # moto's instances are running at once; keep the terminate waiter short
    original = provider._clients

    def _clients() -> None:
        fresh = provider._ec2 is None
        original()
        if fresh and provider._ec2 is not None:
            install(provider._ec2, rules)
            install(provider.teardown_ec2, rules)  # teardown's own client (short timeouts, issue 16)

    provider._clients = _clients
    return provider


def _hold_until(path: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    _mark("test-running")
    hold = float(os.environ.get("PERFCI_FAULT_TEST_HOLD") or 0)
    if hold:
        time.sleep(hold)
    if os.environ.get("PERFCI_FAULT_TEST_HOLD_UNTIL"):
        _hold_until(os.environ["PERFCI_FAULT_TEST_HOLD_UNTIL"], 120)
    yield


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    """Outermost, so this runs after perfci's own wrapper raised its late-signal shield."""
    try:
        return (yield)
    finally:
        until = os.environ.get("PERFCI_FAULT_FINISH_HOLD_UNTIL")
        if until and not hasattr(session.config, "workerinput"):
            _mark("runloop-done")
            _hold_until(until, 60)
