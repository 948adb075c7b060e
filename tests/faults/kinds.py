"""Issue 16's fault kinds for the campaign (tests/faults/campaign.py): real runs against the moto server
and loopback sshd, each followed by the campaign's leak count and secrets scan.

Every kind has one pass criterion on top of what it checks itself: 0 resources left at the moto server,
0 resources of another run wrongly destroyed, 0 secrets in the files the run wrote.

* runid:   the same --perfci-run-id twice. Run A is held inside a test; run B starts with A's run id,
           (a) with its own results directory (another machine) and (b) with A's (another terminal).
           B must be refused with one line naming the id, make no create or delete call (B's own API
           log), and leave A's instance, key pair, security group and key file alone; A then ends clean.
* disk:    the results directory (ledger, key file, Allure results) is a small tmpfs, filled to ENOSPC
           at one of several points: before the run, while provisioning (address hook held), during a
           test (test held), at teardown (TerminateInstances slowed). No reap afterwards: teardown
           itself must delete everything. Before the run: also one line and 0 create calls.
* clock:   libfaketime (tests/faketime.py) skews one process's clock by 3 h: a run with a fast or slow
           clock is refused before any create; `perfci reap --expired --yes` with a fast clock leaves a
           live run alone; with a slow clock it still reaps an expired (SIGKILLed, expires-at in the
           past) run.
* hole:    the run's EC2 endpoint is a loopback proxy to moto that, once a test runs, accepts and never
           answers (a black hole). Teardown must give up at its deadline (shortened to 8 s, reads 2 s)
           with the one-line reap command, and that command (at the real endpoint) leaves nothing.
* late:    under xdist (-n 2), SIGINT or SIGTERM right after the last test (the controller held after
           its run loop), to the controller alone or to it and its workers. Exit 0, no traceback, the
           matrix written, teardown done.
* secrets: a suite whose failing test prints the run's private key (armoured and as a bare base64
           body), AWS credentials (`ID SECRET`, `NAME VALUE`, `secret=`), then the run is SIGKILLed in
           the next test (or ends normally). No file the run wrote (results, Allure, --junitxml) holds
           any of those values. The terminal output is counted apart (pytest prints a failing test's
           captured output there; perfci does not write it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import socket
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests import faketime
from tests.faults.campaign import (
    SUITE,
    Env,
    Outcome,
    _after,
    _descendants,
    _finish,
    _tail,
    _wait,
    reap,
    scan_secrets,
    start_run,
    tagged_leftovers,
)
from tests.test_faults_i16 import fill
from tests.test_kill import Run

KINDS = ("runid", "disk", "clock", "hole", "late", "secrets")
DISK_POINTS = ("before the run", "provisioning", "test", "teardown")
MUTATING = frozenset({"RunInstances", "CreateKeyPair", "ImportKeyPair", "CreateSecurityGroup",
                      "AuthorizeSecurityGroupIngress", "CreateTags", "TerminateInstances", "DeleteKeyPair",
                      "DeleteSecurityGroup"})
Report = Callable[[Outcome], None]


# --- helpers ---------------------------------------------------------------------------------------------


def _release(path: Path) -> None:
    path.write_text("go\n")


def _api_ops(run: Run) -> list[str]:
    """Operations the run's own processes sent (tests/faults/faultplug.py's log)."""
    log = run.markers.parent / "api-calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["op"] for line in log.read_text().splitlines() if line.strip()]


def _snapshot(env: Env, run: Run) -> dict[str, list[str]]:
    """A live run's resources (by its run-id tag) and its key file, to check nobody else destroyed them."""
    found = tagged_leftovers(env.moto, run.run_id)
    found["key_files"] = [str(p) for p in run.keys_on_disk()]
    return found


def _destroyed(env: Env, run: Run, before: dict[str, list[str]]) -> list[str]:
    """What of ``before`` is gone now (instances not running count as gone)."""
    now = tagged_leftovers(env.moto, run.run_id)
    ec2: Any = env.moto.client("ec2")
    running = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] == "running"}
    gone = [f"instance {i}" for i in before["instances"] if i not in running]
    gone += [f"key pair {k}" for k in before["key_pairs"] if k not in now["key_pairs"]]
    gone += [f"security group {g}" for g in before["security_groups"] if g not in now["security_groups"]]
    gone += [f"key file {f}" for f in before["key_files"] if not Path(f).is_file()]
    return gone


def _no_traceback(run: Run, o: Outcome) -> None:
    text = run.stdout + run.stderr
    for bad in ("Traceback (most recent call last)", "KeyboardInterrupt"):
        if bad in text:
            o.ok = False
            o.detail += f"; {bad!r} in the output"


def _victims(o: Outcome, gone: list[str]) -> None:
    o.extra["wrongly_destroyed"] = len(gone)
    if gone:
        o.ok = False
        o.detail += f"; WRONGLY DESTROYED {gone}"


# --- runid -----------------------------------------------------------------------------------------------


def runid_run(env: Env, i: int, shared_results: bool, report: Report) -> list[Outcome]:
    run_id = f"same-id-{i:02d}"
    started = time.monotonic()
    release = env.work / f"{run_id}-a.release"
    a = start_run(env, run_id, name=f"{run_id}-a", extra_env={"PERFCI_FAULT_TEST_HOLD_UNTIL": str(release)})
    where = "A's results dir (lock)" if shared_results else "its own results dir (EC2 listing)"
    ob = Outcome("runid", f"second run, {where}", True, "")
    oa = Outcome("runid", f"first run under a namesake ({'shared' if shared_results else 'own'} dir)", True, "")
    try:
        _wait(a, "test-running", 90)
    except RuntimeError as e:
        a.proc.kill()
        oa.ok, oa.detail = False, f"A never reached a test: {e}"
        _release(release)
        _finish(env, a, 30)
        reap(env, "--run-id", run_id, "--results", str(a.results))
        return [_after(env, a, oa)]
    before = _snapshot(env, a)
    b_started = time.monotonic()
    b = start_run(env, run_id, name=f"{run_id}-b", results=a.results if shared_results else None)
    rc_b = _finish(env, b, 120)
    text_b = b.stdout + b.stderr
    ops = [op for op in _api_ops(b) if op in MUTATING]
    ob.ok = rc_b not in (None, 0) and f"run id '{run_id}' is in use" in text_b and not ops
    ob.detail = f"rc {rc_b}; B's create/delete calls: {len(ops)}"
    if not ob.ok:
        ob.detail += f" {ops[:5]}: {_tail(b)}"
    _victims(ob, _destroyed(env, a, before))
    ob.secrets = scan_secrets([b.markers.parent / "results", b.out, b.err])
    ob.ok = ob.ok and not ob.secrets
    ob.seconds = time.monotonic() - b_started  # A's outcome gets the rest: the two add up to wall time
    report(ob)
    _release(release)
    rc_a = _finish(env, a, 120)
    oa.ok = rc_a == 0
    oa.detail = f"rc {rc_a}" + ("" if oa.ok else f": {_tail(a)}")
    oa.extra["wrongly_destroyed"] = 0
    oa.seconds = time.monotonic() - started - ob.seconds
    oa = _after(env, a, oa)
    report(oa)
    return [ob, oa]


# --- disk ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs at {where} (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(results: Path) -> None:
    ledger = results / "ledger.jsonl"
    fill(results, slack=ledger if ledger.exists() else None)


def disk_run(env: Env, i: int, point: str, report: Report) -> Outcome:
    run_id = f"disk-{i:02d}-{point.split()[0]}"
    results = env.work / run_id / "results"
    o = Outcome("disk", f"disk full: {point}", True, "", extra={"point": point, "wrongly_destroyed": 0})
    started = time.monotonic()
    with tmpfs(results):
        extra: dict[str, str] = {}
        release = env.work / f"{run_id}.release"
        if point == "before the run":
            _fill(results)
        elif point == "provisioning":
            extra["PERFCI_TEST_ADDRESS_DELAY"] = "3"
        elif point == "test":
            extra["PERFCI_FAULT_TEST_HOLD_UNTIL"] = str(release)
        else:
            extra["PERFCI_FAULTS"] = "TerminateInstances@1=delay:2"
        env.reset()
        run = start_run(env, run_id, extra_env=extra)
        marker = {"provisioning": "address-called", "test": "test-running",
                  "teardown": "call-TerminateInstances"}.get(point)
        if marker:
            try:
                _wait(run, marker, 90)
                _fill(results)
            except RuntimeError as e:
                o.ok, o.detail = False, f"never reached {point}: {e}; "
            _release(release)
        rc = _finish(env, run, 180)
        text = run.stdout + run.stderr
        o.detail += f"rc {rc}"
        if rc is None:
            o.ok, o.detail = False, o.detail + "; DID NOT EXIT within 180 s"
        if point == "before the run":
            lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
            creates = env.creates()
            o.extra["creates"] = creates
            o.detail += f"; {creates} create calls; {lines[0][:140] if lines else '(no stderr)'}"
            if rc == 0 or creates:
                o.ok = False
        elif "No space left on device" not in text:
            o.detail += "; the run never said the disk was full"
        else:
            o.detail += "; said: No space left on device"
        _no_traceback(run, o)
        if not o.ok:
            o.detail += f": {_tail(run)}"
        o.seconds = time.monotonic() - started
        o = _after(env, run, o)  # leak count (no reap: teardown must have done it) and scan, while mounted
    report(o)
    return o


# --- clock -----------------------------------------------------------------------------------------------


def clock_run(env: Env, i: int, offset: str, report: Report) -> Outcome:
    run_id = f"clock-{i:02d}-{'fast' if offset[0] == '+' else 'slow'}"
    started = time.monotonic()
    env.reset()
    run = start_run(env, run_id, extra_env=faketime.skewed(offset))
    rc = _finish(env, run, 120)
    creates = env.creates()
    want = f"180 min {'ahead of' if offset[0] == '+' else 'behind'} AWS's"
    ok = rc not in (None, 0) and want in run.stdout + run.stderr and creates == 0
    o = Outcome("clock", f"run with the clock {offset}", ok, f"rc {rc}; {creates} create calls",
                seconds=time.monotonic() - started, extra={"creates": creates, "wrongly_destroyed": 0})
    if not ok:
        o.detail += f": {_tail(run)}"
    o = _after(env, run, o)
    report(o)
    return o


def clock_reap_fast(env: Env, i: int, report: Report) -> Outcome:
    """A live run; `perfci reap --expired --yes` from a machine whose clock is 3 h fast."""
    run_id = f"clock-{i:02d}-live"
    started = time.monotonic()
    release = env.work / f"{run_id}.release"
    run = start_run(env, run_id, extra_env={"PERFCI_FAULT_TEST_HOLD_UNTIL": str(release)})
    o = Outcome("clock", "reap --expired, clock +3h, a live run", True, "")
    try:
        _wait(run, "test-running", 90)
        before = _snapshot(env, run)
        done = reap(env, "--expired", extra_env=faketime.skewed("+3h"))
        o.detail = f"reap rc {done.returncode}"
        if done.returncode != 0 or "180 min ahead of AWS's" not in done.stderr:
            o.ok = False
            o.detail += f": {done.stdout[-200:]} {done.stderr[-300:]}"
        _victims(o, _destroyed(env, run, before))
    except RuntimeError as e:
        o.ok, o.detail = False, f"never reached a test: {e}"
    _release(release)
    rc = _finish(env, run, 120)
    o.detail += f"; the live run then ended rc {rc}"
    o.ok = o.ok and rc == 0
    o.seconds = time.monotonic() - started
    o = _after(env, run, o)
    report(o)
    return o


def clock_reap_slow(env: Env, i: int, report: Report) -> Outcome:
    """A SIGKILLed run whose expires-at has passed; `perfci reap --expired --yes` with a clock 3 h slow."""
    run_id = f"clock-{i:02d}-expired"
    started = time.monotonic()
    release = env.work / f"{run_id}.release"
    run = start_run(env, run_id, extra_env={"PERFCI_FAULT_TEST_HOLD_UNTIL": str(release)})
    o = Outcome("clock", "reap --expired, clock -3h, an expired run", True, "", extra={"wrongly_destroyed": 0})
    try:
        _wait(run, "test-running", 90)
    except RuntimeError as e:
        o.ok, o.detail = False, f"never reached a test: {e}; "
    run.send(signal.SIGKILL)
    _finish(env, run, 30)
    left = tagged_leftovers(env.moto, run_id)
    ids = [*left["instances"], *left["security_groups"]]
    ec2: Any = env.moto.client("ec2")
    keys = {k["KeyName"]: k["KeyPairId"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    ids += [keys[k] for k in left["key_pairs"] if k in keys]
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if ids:  # its TTL passed an hour ago (as the heartbeat of a dead controller stops moving it)
        ec2.create_tags(Resources=ids, Tags=[{"Key": "perfci:expires-at", "Value": past}])
    done = reap(env, "--expired", "--results", str(run.results), extra_env=faketime.skewed("-3h"))
    o.detail += f"{sum(map(len, left.values()))} left by SIGKILL; reap rc {done.returncode}"
    if done.returncode != 0 or "180 min behind AWS's" not in done.stderr:
        o.ok = False
        o.detail += f": {done.stdout[-200:]} {done.stderr[-300:]}"
    o.seconds = time.monotonic() - started
    o = _after(env, run, o)
    report(o)
    return o


# --- hole ------------------------------------------------------------------------------------------------


class Hole:
    """A loopback TCP proxy to ``target`` that, once :meth:`close` is called, forwards nothing more:
    every connection (old or new) is accepted and read, and never answered."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.holed = threading.Event()
        self.stop = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.srv.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.srv.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.holed.set()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except OSError:
                continue
            self.held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.holed.is_set():
            self._swallow(conn)
            return
        try:
            up = socket.create_connection(self.target, timeout=10)
        except OSError:
            conn.close()
            return
        self.held.append(up)
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            if self.holed.is_set():
                continue  # swallowed: the request never reaches the server, no answer ever comes
            with contextlib.suppress(OSError):
                dst.sendall(data)

    def _swallow(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for s in [*self.held, self.srv]:
            with contextlib.suppress(OSError):
                s.close()


def hole_run(env: Env, i: int, report: Report) -> Outcome:
    run_id = f"hole-{i:02d}"
    started = time.monotonic()
    port = int(env.moto.url.rsplit(":", 1)[1])
    hole = Hole(("127.0.0.1", port))
    release = env.work / f"{run_id}.release"
    o = Outcome("hole", "endpoint black-holed during a test", True, "", extra={"wrongly_destroyed": 0})
    try:
        run = start_run(env, run_id, extra_env={
            "AWS_ENDPOINT_URL": hole.url, "PERFCI_FAULT_TEST_HOLD_UNTIL": str(release),
            "PERFCI_TEST_TEARDOWN_DEADLINE": "8", "PERFCI_TEST_TEARDOWN_READ_TIMEOUT": "2"})
        try:
            _wait(run, "test-running", 90)
        except RuntimeError as e:
            o.ok, o.detail = False, f"never reached a test: {e}; "
        hole.close()
        holed = time.monotonic()
        _release(release)
        rc = _finish(env, run, 240)
        took = time.monotonic() - holed
        text = run.stdout + run.stderr
        hint = f"perfci reap --run-id {run_id}"
        o.extra["exit_after_hole"] = round(took, 1)
        o.detail += f"rc {rc}, exit {took:.0f}s after the hole opened"
        if rc is None or hint not in text:
            o.ok = False
            o.detail += f"; no exit or no '{hint}' line: {_tail(run)}"
        before = sum(map(len, tagged_leftovers(env.moto, run_id).values()))
        done = reap(env, "--run-id", run_id, "--results", str(run.results))
        o.extra["left_before_reap"] = before
        o.detail += f"; {before} left for the reap command (rc {done.returncode})"
        if done.returncode != 0:
            o.ok = False
            o.detail += f": {done.stderr[-300:]}"
        o.seconds = time.monotonic() - started
        o = _after(env, run, o)
    finally:
        hole.shutdown()
    report(o)
    return o


# --- late ------------------------------------------------------------------------------------------------


def late_run(env: Env, i: int, sig: signal.Signals, workers_too: bool, rng: random.Random,
             report: Report) -> Outcome:
    run_id = f"late-{i:02d}-{sig.name.lower()}"
    started = time.monotonic()
    release = env.work / f"{run_id}.release"
    run = start_run(env, run_id, "-n", "2", extra_env={"PERFCI_FAULT_FINISH_HOLD_UNTIL": str(release)})
    who = "controller and workers" if workers_too else "controller"
    o = Outcome("late", f"{sig.name} after the last test (xdist), to {who}", True, "",
                extra={"wrongly_destroyed": 0})
    try:
        _wait(run, "runloop-done", 180)
        time.sleep(rng.uniform(0, 0.5))
        victims = [run.proc.pid, *(_descendants(run.proc.pid) if workers_too else [])]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(rng.uniform(0, 0.5))
    except RuntimeError as e:
        o.ok, o.detail = False, f"never reached the end of the run loop: {e}; "
    _release(release)
    rc = _finish(env, run, 120)
    text = run.stdout + run.stderr
    matrix = run.results / run_id / "matrix.md"
    o.detail += f"rc {rc}; matrix {'written' if matrix.is_file() else 'MISSING'}"
    if rc != 0 or not matrix.is_file() or f"teardown in progress (run {run_id})" not in text:
        o.ok = False
        o.detail += f": {_tail(run)}"
    _no_traceback(run, o)
    o.seconds = time.monotonic() - started
    o = _after(env, run, o)
    report(o)
    return o


# --- secrets ---------------------------------------------------------------------------------------------

SECRETS_TEST = '''\
import logging
import os
import sys
import time
from pathlib import Path


def _mark(name):
    Path(os.environ["PERFCI_TEST_MARKERS"], name).write_text(str(time.time()))


def test_prints_secrets(host):
    key = sorted(Path(os.environ["PERFCI_TEST_RESULTS"], ".keys").glob("*.pem"))[0].read_text()
    body = "\\n".join(line for line in key.splitlines() if not line.startswith("-----"))
    kid, sec, tok = (os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    print(key)
    print(body)
    print(kid, sec)
    print("AWS_SECRET_ACCESS_KEY", sec)
    print(f"secret={sec} aws_session_token={tok}")
    sys.stderr.write(f"{kid},{sec}\\n" + body + "\\n")
    logging.getLogger("leaky").warning("credentials: aws_secret_access_key=%s", sec)
    host.run(f"echo secret={sec}")
    raise AssertionError(f"failing so the captured output is reported: aws_secret_access_key={sec}")


def test_hold(host):
    _mark("secrets-hold")
    deadline = time.monotonic() + 60
    while not Path(os.environ["PERFCI_TEST_MARKERS"], "secrets-release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
'''


def _fake_credentials() -> dict[str, str]:
    alnum = string.ascii_uppercase + string.digits
    b64 = string.ascii_letters + string.digits + "+/"
    return {
        "AWS_ACCESS_KEY_ID": "AKIA" + "".join(secrets.choice(alnum) for _ in range(16)),
        "AWS_SECRET_ACCESS_KEY": "".join(secrets.choice(b64) for _ in range(40)),
        "AWS_SESSION_TOKEN": "".join(secrets.choice(b64) for _ in range(160)),
    }


def scan_values(paths: list[Path], values: dict[str, str], skip: Path | None = None) -> list[str]:
    """`path: name` for every file under paths holding one of the literal values."""
    hits = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for path in files:
            if skip is not None and skip in path.parents:
                continue
            text = path.read_bytes()[:5_000_000].decode(errors="replace")
            hits += [f"{path}: {name}" for name, value in values.items() if value in text]
    return hits


def secrets_run(env: Env, i: int, kill: bool, report: Report) -> Outcome:
    run_id = f"secrets-{i:02d}-{'kill' if kill else 'end'}"
    started = time.monotonic()
    suite = env.work / "secrets-suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_secrets.py").write_text(SECRETS_TEST)
    creds = _fake_credentials()
    base = env.work / run_id
    junit = base / "results" / "junit.xml"
    run = start_run(env, run_id, f"--rootdir={suite}", f"--junitxml={junit}", suite=str(suite), extra_env=creds)
    o = Outcome("secrets", f"secrets in captured output, {'SIGKILL' if kill else 'normal end'}", True, "",
                extra={"wrongly_destroyed": 0})
    values = {k.lower(): v for k, v in creds.items() if k != "AWS_ACCESS_KEY_ID"}
    try:
        _wait(run, "secrets-hold", 120)
        for key_file in run.keys_on_disk():
            body = [ln for ln in key_file.read_text().splitlines() if ln and not ln.startswith("-----")]
            values.update({f"private key line {n}": ln for n, ln in enumerate(body) if len(ln) >= 20})
        if kill:
            run.send(signal.SIGKILL)
        else:
            (run.markers / "secrets-release").write_text("")
    except RuntimeError as e:
        o.ok, o.detail = False, f"never reached the hold: {e}; "
    rc = _finish(env, run, 120)
    o.detail += f"rc {rc}; {len(values)} secret values tracked"
    if kill:
        done = reap(env, "--run-id", run_id, "--results", str(run.results))
        o.detail += f"; reap rc {done.returncode}"
    written = scan_values([run.results], values, skip=run.results / ".keys")
    terminal = scan_values([run.out, run.err], values)
    o.extra["terminal_hits"] = len(terminal)
    o.extra["files_written"] = sum(1 for p in run.results.rglob("*") if p.is_file())
    o.detail += f"; {o.extra['files_written']} files written, junit {'present' if junit.exists() else 'absent'}"
    if terminal:
        o.detail += f"; terminal output holds {len(terminal)} (pytest's own report, not a file perfci writes)"
    if written:
        o.ok = False
        o.secrets += written
        o.detail += "; SECRETS ON DISK: " + ", ".join(h.replace(str(env.work) + "/", "") for h in written[:6])
    o.seconds = time.monotonic() - started
    o = _after(env, run, o, terminal=False)  # the pattern scan too; the terminal is counted above
    report(o)
    return o


# --- driver ----------------------------------------------------------------------------------------------


def run_kinds(env: Env, kinds: set[str], rounds: int, rng: random.Random, report: Report) -> list[Outcome]:
    """``rounds`` of every chosen kind; each round runs each kind's variants once."""
    if "clock" in kinds and faketime.library() is None:
        raise RuntimeError("the clock kind needs libfaketime: apt-get install faketime (./install.sh --dev)")
    out: list[Outcome] = []
    for i in range(rounds):
        if "runid" in kinds:
            out += runid_run(env, 2 * i, False, report)
            out += runid_run(env, 2 * i + 1, True, report)
        if "disk" in kinds:
            out += [disk_run(env, i, point, report) for point in DISK_POINTS]
        if "clock" in kinds:
            out += [clock_run(env, i, "+3h", report), clock_run(env, i, "-3h", report),
                    clock_reap_fast(env, i, report), clock_reap_slow(env, i, report)]
        if "hole" in kinds:
            out.append(hole_run(env, i, report))
        if "late" in kinds:
            for j, sig in enumerate((signal.SIGINT, signal.SIGTERM)):
                out.append(late_run(env, 2 * i + j, sig, workers_too=bool((i + j) % 2), rng=rng, report=report))
        if "secrets" in kinds:
            out += [secrets_run(env, 2 * i, True, report), secrets_run(env, 2 * i + 1, False, report)]
    return out


def summary(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for kind in KINDS:
        some = [o for o in outcomes if o.section == kind]
        if some:
            line = (f"{kind}: {len(some)} runs, {sum(o.ok for o in some)} ok, leaks {sum(o.leaks for o in some)}, "
                    f"wrongly destroyed {sum(o.extra.get('wrongly_destroyed', 0) for o in some)}, "
                    f"secrets on disk {sum(len(o.secrets) for o in some)}, {sum(o.seconds for o in some):.0f}s")
            if kind == "secrets":
                line += f"; terminal output hits {sum(o.extra.get('terminal_hits', 0) for o in some)}"
            if kind == "clock":
                line += f"; create calls by skewed runs {sum(o.extra.get('creates', 0) for o in some)}"
            if kind == "hole":
                line += f"; exit after the hole opened {[o.extra.get('exit_after_hole') for o in some]} s"
            lines.append(line)
    return lines


__all__ = ["KINDS", "SUITE", "run_kinds", "summary"]
