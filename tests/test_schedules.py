"""Issue 17: each target released after its last test, --perfci-schedule parallel|pipeline|serial, prompt
readiness. The pure decisions (pytest_perfci/schedule.py, the plan's arithmetic) on their own; the runs
against a moto server with its request recorder on (what the server received, in arrival order) and a
real loopback sshd standing in for every instance (tests/ec2_harness.py).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfci import plan as planning
from pytest_perfci import schedule
from pytest_perfci.hosts.result import HostUnreachable
from pytest_perfci.hosts.ssh import SSHHost, port_accepts
from pytest_perfci.settings import SettingsError, load_settings
from tests.faults.campaign import Env, all_leftovers, environment
from tests.moto_server import MotoServer
from tests.sshd import SshdServer, sshd_available

ROOT = Path(__file__).parents[1]
TYPES = ("m7i.large", "c7g.large", "m5.large")

# --- pure decisions ------------------------------------------------------------------------------------


def test_order_groups_by_target_in_provider_order_and_runs_multi_target_tests_first() -> None:
    a, b = frozenset({"a"}), frozenset({"b"})
    both, none = frozenset({"a", "b"}), frozenset()
    uses = [b, a, none, b, both, a]
    order = schedule.order(uses, ["a", "b"])
    assert [uses[i] for i in order] == [none, both, a, a, b, b]
    assert order == [2, 4, 1, 5, 0, 3]  # stable inside each group


def test_target_of_id_takes_the_longest_whole_part() -> None:
    names = ["m7i.metal", "m7i.metal-24xl", "c7g.large"]
    assert schedule.target_of_id("t.py::test_x[m7i.metal-24xl-3]", names) == "m7i.metal-24xl"
    assert schedule.target_of_id("t.py::test_x[m7i.metal-3]", names) == "m7i.metal"
    assert schedule.target_of_id("t.py::test_x[0-c7g.large]", names) == "c7g.large"
    assert schedule.target_of_id("t.py::test_x[1-c7g.large-fast]", names) == "c7g.large"
    assert schedule.target_of_id("t.py::test_x[c7g.largex]", names) is None
    assert schedule.target_of_id("t.py::test_x", names) is None


def test_usage_says_which_test_is_each_targets_last_and_what_comes_next() -> None:
    a, b = frozenset({"a"}), frozenset({"b"})
    usage = schedule.Usage.of([frozenset(), frozenset({"a", "b"}), a, a, b])
    assert usage.targets == ["a", "b"] and usage.count == {"a": 3, "b": 2}
    assert usage.done_after(3) == ["a"] and usage.done_after(4) == ["b"] and usage.done_after(2) == []
    assert usage.next_after("a") == "b" and usage.next_after("b") is None


def test_pipeline_starts_the_next_target_when_what_is_left_fits_in_its_boot() -> None:
    assert schedule.start_next(0, None, None)  # the last test ran: now at the latest
    assert not schedule.start_next(3, None, 10.0)  # no duration yet: ask again after the next test
    assert not schedule.start_next(5, 0.5, 2.0)  # 2.5 s of tests left, 2 s boot: not yet
    assert schedule.start_next(4, 0.5, 2.0)


def test_tracker_releases_after_the_last_test_and_starts_the_next_in_time() -> None:
    uses = {f"t[a-{i}]": frozenset({"a"}) for i in range(4)} | {f"t[b-{i}]": frozenset({"b"}) for i in range(2)}
    tracker = schedule.Tracker.of("pipeline", uses)
    steps = []
    for i in range(4):
        tracker.ran(f"t[a-{i}]", 1.0)
        steps.append(tracker.torn_down(f"t[a-{i}]", boot_s=2.0))
    # 3, 2, 1, 0 seconds of a's tests left after each: b starts once at most 2 s are left
    assert steps == [([], None), ([], "b"), ([], "b"), (["a"], "b")]
    parallel = schedule.Tracker.of("parallel", uses)
    assert [parallel.torn_down(f"t[b-{i}]", boot_s=1.0) for i in range(2)] == [([], None), (["b"], None)]


def test_plan_bills_each_schedule_for_what_it_keeps_up() -> None:
    def typ(name: str, usd: float, boot_min: float) -> planning.PlannedType:
        return planning.PlannedType(name, "x86_64", 2, 1024, False, 1, "ami-1", "img", "--ami", "ec2-user",
                                    ["us-east-1a"], planning.Price(usd), boot_hours=boot_min / 60)

    types = [typ("a", 1.0, 6), typ("b", 2.0, 12)]

    def plan(kind: str) -> planning.Plan:
        return planning.Plan(run_id="perfci-x", region="us-east-1", ttl_hours=2, hours=1.0, spot=False,
                             ssh_cidr="127.0.0.1/32", types=types, prices="t", schedule=kind)

    parallel, pipeline, serial = plan("parallel"), plan("pipeline"), plan("serial")
    assert parallel.instance_hours == 2.0 and parallel.usd_estimate == pytest.approx(3.0)  # as before
    assert pipeline.instance_hours == pytest.approx(2.3) and serial.instance_hours == pytest.approx(2.3)
    assert pipeline.usd_estimate == pytest.approx(1.0 * 1.1 + 2.0 * 1.2)
    assert (parallel.wall_hours, pipeline.wall_hours, serial.wall_hours) == pytest.approx((1.0, 2.1, 2.3))
    line = planning.schedule_line(serial)
    assert line.startswith("schedule serial: one type at a time") and "2.3 instance-hours, $3.50" in line
    assert planning.plan_json(pipeline)["schedule"] == "pipeline"


# --- settings and refusals ---------------------------------------------------------------------------------


def test_a_bad_schedule_is_one_line_naming_the_allowed_values() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"schedule": "fast"}, env={})
    assert str(err.value) == "--perfci-schedule: 'fast' is not allowed; choose one of: parallel, pipeline, serial"
    with pytest.raises(SettingsError, match=r"^PERFCI_SCHEDULE: 'one' is not allowed; choose one of: parallel"):
        load_settings({}, env={"PERFCI_SCHEDULE": "one"})
    assert load_settings({}, env={}).schedule == "parallel"


def test_pipeline_with_xdist_is_refused_before_anything_is_created(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(host):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--perfci-schedule=pipeline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*--perfci-schedule: 'pipeline' runs one target's tests after another's in "
                                  "this process; it does not combine with xdist*")])


# --- readiness -----------------------------------------------------------------------------------------------


def test_port_accepts_is_one_cheap_connect(sshd: SshdServer) -> None:
    port_accepts(SSHHost("up", sshd.address, user="root", port=sshd.port), timeout=1.0)
    with socket.socket() as s:  # bound, not listening: connects are refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        with pytest.raises(HostUnreachable, match=f"127.0.0.1:{closed} not accepting"):
            port_accepts(SSHHost("down", "127.0.0.1", user="root", port=closed), timeout=1.0)


# --- runs against the moto server ----------------------------------------------------------------------------

WORK = '''\
import os
import time

import boto3
import pytest

FIRST = {first!r}
LAST = {last!r}


def state_of(itype):
    ec2 = boto3.client("ec2")
    found = [i["State"]["Name"] for r in ec2.describe_instances(
        Filters=[{{"Name": "instance-type", "Values": [itype]}}])["Reservations"] for i in r["Instances"]]
    return found[0] if found else "none"


def first_state():
    return state_of(FIRST)


@pytest.fixture(scope="session")
def on_host(host):
    """A user's session fixture on the target: its finalizer still needs the machine."""
    yield host
    deadline = time.monotonic() + {watch}
    while time.monotonic() < deadline:
        assert state_of(host.name) == "running", f"{{host.name}} went while its fixture was torn down"
        time.sleep(0.1)
    host.run("true")


@pytest.mark.parametrize("i", range({tests}))
def test_work(on_host, i):
    host = on_host
    host.run("true")
    time.sleep({sleep})
    if {wait_first} and host.name == LAST and i == {tests} - 1:
        # the first target's last test ran long ago: its instance is terminated before this one ends
        deadline = time.monotonic() + 120
        while first_state() != "terminated" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first_state() == "terminated"
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    with environment(tmp_path_factory.mktemp("schedules")) as made:
        yield made


def run(env: Env, tmp: Path, *args: str, types: tuple[str, ...] = TYPES, tests: int = 2, sleep: float = 0.2,
        wait_first: bool = False, delay: float = 0.0, watch: float = 0.0,
        conftest: str = "") -> subprocess.CompletedProcess[str]:
    env.reset()
    suite = tmp / "suite"
    suite.mkdir()
    if conftest:
        (suite / "conftest.py").write_text(conftest)
    (suite / "test_work.py").write_text(WORK.format(first=types[0], last=types[-1], tests=tests, sleep=sleep,
                                                    wait_first=wait_first, watch=watch))
    results = tmp / "results"
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_", "MOTO_"))}
    proc_env.update(env.moto.env())
    proc_env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(env.sshd.port),
                    PERFCI_TEST_AUTHORIZED_KEYS=str(env.sshd.workdir / "authorized_keys"),
                    PERFCI_TEST_ADDRESS_DELAY=str(delay))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_harness", f"--rootdir={suite}",
         str(suite), f"--instance-type={','.join(types)}", f"--perfci-results={results}", "--perfci-ssh-user=root",
         "-p", "no:randomly", *args],
        cwd=ROOT, env=proc_env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False,
    )


def server_calls(env: Env) -> list[tuple[str, dict[str, list[str]]]]:
    """(EC2 action, its parameters) for every request the moto server received, in arrival order."""
    out = []
    for line in env.recording.read_text().splitlines():
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        params = urllib.parse.parse_qs(body)
        if "Action" in params:
            out.append((params["Action"][0], params))
    return out


def live_counts(calls: list[tuple[str, dict[str, list[str]]]]) -> list[int]:
    """How many instances were alive after each RunInstances/TerminateInstances the server received."""
    live, gone, counts = 0, set(), []
    for action, params in calls:
        if action == "RunInstances":
            live += int(params.get("MaxCount", ["1"])[0])
        elif action == "TerminateInstances":
            ids = {v[0] for k, v in params.items() if k.startswith("InstanceId.")} - gone
            gone |= ids
            live -= len(ids)
        else:
            continue
        counts.append(live)
    return counts


def test_serial_never_has_two_instances_alive_at_the_server(env: Env, tmp_path: Path) -> None:
    proc = run(env, tmp_path, "--perfci-schedule=serial", "--perfci-run-id=sched-serial")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "6 passed" in out
    counts = live_counts(server_calls(env))
    assert counts == [1, 0, 1, 0, 1, 0], counts  # three instances, one after the other
    assert all(not v for v in all_leftovers(env.moto).values()), all_leftovers(env.moto)
    assert "perfci targets (serial)" in out
    for itype in TYPES[:2]:
        assert f"after its last test test_work.py::test_work[{itype}-1]" in out, out


def test_serial_refuses_keep_before_anything_is_created(env: Env, tmp_path: Path) -> None:
    proc = run(env, tmp_path, "--perfci-schedule=serial", "--perfci-keep", "--perfci-run-id=sched-keep")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "--perfci-schedule: 'serial' releases each target before the next one; --perfci-keep" in proc.stderr
    assert not [a for a, _ in server_calls(env) if a.startswith(("Run", "Create"))]


def test_parallel_releases_a_target_before_the_last_test_ends(env: Env, tmp_path: Path) -> None:
    """The last type's last test waits until the first type's instance is terminated: without early release
    it would be terminated only after the session's last test, and that test fails."""
    alluredir = tmp_path / "allure"
    proc = run(env, tmp_path, "--perfci-run-id=sched-early", "--alluredir", str(alluredir), types=TYPES[:2],
               wait_first=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert live_counts(server_calls(env))[:2] == [1, 2]  # parallel: both up at once
    assert f"after its last test test_work.py::test_work[{TYPES[0]}-1]" in out  # the summary says when
    props = (alluredir / "environment.properties").read_text()
    assert f"{TYPES[0]}.released_after=test_work.py\\:\\:test_work[{TYPES[0]}-1]" in props, props
    assert f"{TYPES[0]}.instance_seconds=" in props and f"{TYPES[1]}.released=" in props
    assert all(not v for v in all_leftovers(env.moto).values())


@pytest.mark.parametrize("xdist", [[], ["-p", "xdist", "-n", "2"]], ids=["single", "xdist-2"])
def test_release_waits_for_the_targets_fixtures_to_be_torn_down(env: Env, tmp_path: Path,
                                                                 xdist: list[str]) -> None:
    """pytest tears a target's session fixtures down only when the next target's first test sets up (or
    the worker ends): each finalizer watches its instance for 1.5 s and then runs a command on it. An
    early release at the last test's teardown terminated the instance under it (CI, 2026-12-04: EBADF
    from a connection closed mid-command); now the release waits for the fixtures."""
    proc = run(env, tmp_path, *xdist, "--perfci-run-id=sched-fixtures", types=TYPES[:2], watch=1.5)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "4 passed" in out and "error" not in out.lower(), out
    assert f"{TYPES[0]}: requested " in out and "after its last test" in out, out
    assert all(not v for v in all_leftovers(env.moto).values())


def test_parallel_under_xdist_releases_on_the_controller(env: Env, tmp_path: Path) -> None:
    proc = run(env, tmp_path, "-p", "xdist", "-n", "2", "--perfci-run-id=sched-xdist", types=TYPES[:2],
               wait_first=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "4 passed" in out and f"{TYPES[0]}: requested " in out and "after its last test" in out
    assert all(not v for v in all_leftovers(env.moto).values())


WORKER_SEES = '''\
import os
from pathlib import Path

import boto3


def pytest_configure(config):
    """Each xdist worker, as it starts: how many instances exist at the moto server already."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:
        found = [i for r in boto3.client("ec2").describe_instances()["Reservations"] for i in r["Instances"]]
        Path(os.environ["PERFCI_TEST_RESULTS"]).parent.joinpath(f"{worker}.saw").write_text(str(len(found)))
'''


def test_xdist_brings_targets_up_when_workers_ask_and_gives_each_worker_its_own(env: Env, tmp_path: Path) -> None:
    """No instance exists while the workers start (the controller used to boot every target before any
    worker existed, billing the workers' start-up on every machine); with as many targets as workers,
    each worker runs one target's tests (xdist_scheduler.TargetScheduling)."""
    proc = run(env, tmp_path, "-p", "xdist", "-n", "2", "-v", "--perfci-run-id=sched-ask", types=TYPES[:2], tests=3,
               conftest=WORKER_SEES)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "6 passed" in out, out
    assert sorted(p.read_text() for p in tmp_path.glob("gw*.saw")) == ["0", "0"], out
    assert "perfci: xdist: one target per worker at a time (2 targets, 2 workers)" in out, out
    ran: dict[str, set[str]] = {}
    for line in out.splitlines():
        if "PASSED" in line and line.startswith("[gw"):
            worker = line[1:line.index("]")]
            ran.setdefault(worker, set()).add(schedule.target_of_id(line.split()[-1], list(TYPES[:2])) or "?")
    assert sorted(map(sorted, ran.values())) == [[TYPES[1]], [TYPES[0]]], out
    assert not (tmp_path / "results" / ".handoff").exists() or not any((tmp_path / "results" / ".handoff").iterdir())
    assert all(not v for v in all_leftovers(env.moto).values())


def test_xdist_keeps_load_with_fewer_targets_than_workers() -> None:
    from pytest_perfci.xdist_scheduler import by_target

    assert by_target("load", 2, ["a", "b"], releases_early=True)
    assert by_target("load", 2, ["a", "b", "c"], releases_early=True)
    assert not by_target("load", 4, ["a", "b"], releases_early=True)  # two workers would have nothing
    assert not by_target("loadfile", 2, ["a", "b"], releases_early=True)  # the user chose
    assert not by_target("load", 2, ["a", "b"], releases_early=False)  # --perfci-keep, or local/inventory
    assert not by_target("load", 1, ["a", "b"], releases_early=True)


def test_pipeline_boots_the_next_target_while_the_current_one_runs(env: Env, tmp_path: Path) -> None:
    """Boot held 2 s, tests 0.3 s: after the first of four tests, 0.9 s are left < 2 s boot, so the next
    instance is launched while the first still has tests to run: two alive at once."""
    proc = run(env, tmp_path, "--perfci-schedule=pipeline", "--perfci-run-id=sched-pipe", tests=4, sleep=0.3,
               delay=2.0)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    calls = server_calls(env)
    counts = live_counts(calls)
    assert counts[:2] == [1, 2] and counts[-1] == 0, counts
    actions = [a for a, _ in calls if a in ("RunInstances", "TerminateInstances")]
    assert actions[:3] == ["RunInstances", "RunInstances", "TerminateInstances"], actions
    assert all(not v for v in all_leftovers(env.moto).values())


def test_cli_plan_prices_the_chosen_schedule(moto: MotoServer, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_perfci.cli import main

    base = ["plan", "--instance-type", "c7g.metal", "--perfci-results", str(tmp_path / "results"), "--hours", "1",
            "--no-quota"]
    assert main([*base, "--perfci-schedule", "serial", "--boot-minutes", "6"]) == 0
    out = capsys.readouterr().out
    # c7g.metal at $2.32/h (the shipped table): 6 min of boot + 1 h of tests = 1.1 instance-hours, $2.56 rounded up
    assert "cost: 1.1 instance-hours for 1h: $2.56" in out, out
    assert "schedule serial: one type at a time, never two alive at once" in out and "run about 1.1h" in out
    assert main([*base, "--perfci-schedule", "fast"]) == 2
    assert capsys.readouterr().err.startswith("perfci plan: --perfci-schedule: 'fast' is not allowed; choose one of")
    assert main([*base, "--boot-minutes", "-1"]) == 2
    assert "--boot-minutes -1: must be a number of minutes" in capsys.readouterr().err
    assert not moto.client("ec2").describe_instances()["Reservations"]  # type: ignore[attr-defined]
