"""What each --perfci-schedule (and -n) costs: idle instance-seconds, readiness lag and wall time.

Why (issue 17): every instance used to live until the session ended, and readiness was noticed late
(SSH backoff 1, 2, 4 s). Goals: idle <= 10 % of billed instance-seconds under pipeline and under -n 4
with early release; readiness lag <= 0.5 s.

What runs: a moto server in its own process, the loopback sshd standing in for every instance
(tests/ec2_harness.py), and `pytest --instance-type=<4 types> --perfci-schedule=S [-n N]` on a generated
suite of `--tests` tests per type, each running `true` over SSH and sleeping `--sleep` s. Every instance
"boots" for real as far as the provider can tell: its SSH port starts listening `--listen-after` s after
the provider learnt its address (a TCP gate in benchmarks/schedule_probe.py, forwarding to sshd), so
the provider's readiness probing is what is measured. Per instance, from the probe's log:

    billed   = TerminateInstances sent - RunInstances answered
    boot     = ready (the provider's "ready" line) - RunInstances answered
    test     = the union of its tests' call phases (two tests at once on one machine count once)
    idle     = billed - boot - test          (summed over instances, / summed billed)
    lag      = noticed (SSH works, cloud-init done) - the moment its SSH port started listening;
               "to ready" adds the TTL restart (a CreateTags call and one SSH command) before hand-out

Not a test: it prints and exits 0 whether or not the goals are met.
    .venv/bin/python benchmarks/schedules.py [--runs parallel:0,pipeline:0,serial:0,parallel:4]
        [--tests 6] [--sleep 0.5] [--listen-after 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.* and benchmarks.* when run as a script

os.environ["PERFCI_LOCAL_ONLY"] = "1"  # never a real AWS endpoint

from benchmarks.host_overhead import machine
from pytest_perfci.schedule import target_of_id
from tests.faults.campaign import Env, all_leftovers, environment
from tests.sshd import sshd_available

TYPES = ("m7i.large", "c7g.large", "m5.large", "c5.large")

SUITE = '''\
import time

import pytest


@pytest.mark.parametrize("i", range({tests}))
def test_work(host, i):
    host.run("true")
    time.sleep({sleep})
'''


def union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def measure(events: list[dict[str, Any]]) -> dict[str, float | int]:
    """Billed, boot, test and idle instance-seconds, readiness lags, and the live-instance peak."""
    run = {e["iid"]: e for e in events if e["ev"] == "run"}
    ready = {e["iid"]: e["t"] for e in events if e["ev"] == "ready"}
    listen = {e["iid"]: e["t"] for e in events if e["ev"] == "listen"}
    noticed = {e["iid"]: e["t"] for e in events if e["ev"] == "noticed"}
    ended: dict[str, float] = {}
    for e in events:
        if e["ev"] == "terminate":
            for iid in e["ids"]:
                ended.setdefault(iid, e["t"])
    tests: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e["ev"] == "test":
            target = target_of_id(e["nodeid"], TYPES)
            if target is not None:
                tests.setdefault(target, []).append((e["start"], e["stop"]))
    billed = boot = busy = 0.0
    for iid, r in run.items():
        end = ended.get(iid, time.time())
        billed += end - r["t"]
        boot += ready.get(iid, end) - r["t"]
        busy += union(tests.get(r["type"], []))
    lags = [noticed[i] - listen[i] for i in noticed if i in listen]
    to_ready = [ready[i] - listen[i] for i in ready if i in listen]
    timeline = sorted([(r["t"], 1) for r in run.values()] + [(t, -1) for t in ended.values()])
    live = peak = 0
    for _, step in timeline:
        live += step
        peak = max(peak, live)
    return {"billed": billed, "boot": boot, "test": busy, "idle": billed - boot - busy,
            "lag_max": max(lags, default=float("nan")), "lag_mean": sum(lags) / len(lags) if lags else float("nan"),
            "ready_max": max(to_ready, default=float("nan")),
            "peak": peak, "instances": len(run)}


def one_run(env: Env, work: Path, schedule: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"sched-{schedule}-n{n}"
    base = work / tag
    suite = base / "suite"
    suite.mkdir(parents=True)
    (suite / "test_sched_work.py").write_text(SUITE.format(tests=args.tests, sleep=args.sleep))
    results = base / "results"
    log = base / "events.jsonl"
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_", "MOTO_"))}
    proc_env.update(env.moto.env())
    proc_env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(env.sshd.port),
                    PERFCI_TEST_AUTHORIZED_KEYS=str(env.sshd.workdir / "authorized_keys"),
                    PERFCI_BENCH_LOG=str(log), PERFCI_BENCH_LISTEN_AFTER=str(args.listen_after))
    env.reset()
    workers = ["-p", "xdist", "-n", str(n)] if n else ["-p", "no:xdist"]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.ec2_harness",
         "-p", "benchmarks.schedule_probe", *workers, f"--rootdir={suite}", str(suite),
         f"--instance-type={','.join(TYPES)}", f"--perfci-run-id={tag}", f"--perfci-results={results}",
         "--perfci-ssh-user=root", f"--perfci-schedule={schedule}"],
        cwd=ROOT, env=proc_env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False,
    )
    wall = time.perf_counter() - start
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    row: dict[str, Any] = {"schedule": schedule, "n": n, "wall": wall, **measure(events)}
    row["left"] = sum(map(len, all_leftovers(env.moto).values()))
    row["status"] = "ok" if proc.returncode == 0 else f"rc {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}"
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="parallel:0,pipeline:0,serial:0,parallel:2,parallel:4",
                        help="SCHEDULE:N pairs; N = -n, 0 = without xdist")
    parser.add_argument("--tests", type=int, default=6, help="tests per type (default 6)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each test sleeps (default 0.5)")
    parser.add_argument("--listen-after", type=float, default=1.0,
                        help="seconds from the address being known to SSH listening, per instance (default 1)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    reason = sshd_available()
    if reason:
        print(f"skipped ({reason})")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="perfci-bench-sched-") as tmp, environment(Path(tmp) / "env") as env:
        for pair in args.runs.split(","):
            schedule, _, n = pair.partition(":")
            row = one_run(env, Path(tmp), schedule, int(n or 0), args)
            rows.append(row)
            print(f"  {schedule} -n {n}: done in {row['wall']:.1f}s ({row['status']})", flush=True)
    print(f"{len(TYPES)} types x {args.tests} tests ({args.sleep:g}s each) = "
          f"{len(TYPES) * args.tests * args.sleep:g} instance-s of test work; SSH listening {args.listen_after:g}s "
          "after each instance's address is known")
    print(f"  {'schedule':>9} {'-n':>4} {'billed s':>8} {'boot s':>7} {'test s':>7} {'idle s':>7} {'idle %':>7} "
          f"{'lag max':>7} {'lag avg':>7} {'to ready':>8} {'peak':>4} {'wall s':>7} {'left':>4}")
    for r in rows:
        label = "off" if r["n"] == 0 else str(r["n"])
        pct = 100 * r["idle"] / r["billed"] if r["billed"] else float("nan")
        print(f"  {r['schedule']:>9} {label:>4} {r['billed']:>8.1f} {r['boot']:>7.1f} {r['test']:>7.1f} "
              f"{r['idle']:>7.1f} {pct:>6.1f}% {r['lag_max']:>7.2f} {r['lag_mean']:>7.2f} {r['ready_max']:>8.2f} {r['peak']:>4} "
              f"{r['wall']:>7.1f} {r['left']:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
