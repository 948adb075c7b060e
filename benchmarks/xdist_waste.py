"""What `-n N` costs in EC2: RunInstances calls and instance-seconds per run, for 4 instance types.

Why: with pytest-xdist every worker is a process that could provision its own machines; perfci's
controller provisions once and hands workers handles, so -n 4 must cost what -n 1 costs.
Target (from the issue): RunInstances calls == number of types at every -n.

What runs: a moto server in its own process with its request recorder on (calls are counted where
they arrive, not where we think they were sent), the loopback sshd standing in for every instance
(tests/ec2_harness.py, the public pytest_perfci_host_address hook, held `--boot` s per instance),
and `pytest -n N --instance-type=<4 types>` on a generated suite of `--tests` tests per type that
each run `true` over SSH and sleep `--sleep` s. The fault plugin (tests/faults/faultplug.py, no
faults configured) timestamps every EC2 call in every process: instance-seconds are summed from each
RunInstances call to the TerminateInstances call that ended it, and the processes that made create
calls are counted (the controller only: 1).

Not a test: it prints and exits 0 whether or not the target is met.
    .venv/bin/python benchmarks/xdist_waste.py [--workers 0,1,2,4] [--tests 6] [--sleep 0.5] [--boot 1]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.* when run as a script

os.environ["PERFCI_LOCAL_ONLY"] = "1"  # never a real AWS endpoint

from benchmarks.host_overhead import machine
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


def one_run(env: Env, work: Path, n: int, args: argparse.Namespace) -> dict[str, float | int | str]:
    tag = f"xdist-n{n}"
    base = work / tag
    results = base / "results"
    base.mkdir()
    suite = base / "suite"
    suite.mkdir()
    (suite / "test_xdist_work.py").write_text(SUITE.format(tests=args.tests, sleep=args.sleep))
    (env.sshd.workdir / "authorized_keys").write_text("")
    calls_log = base / "calls.jsonl"
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_", "MOTO_"))}
    proc_env.update(env.moto.env())
    proc_env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(env.sshd.port),
                    PERFCI_TEST_AUTHORIZED_KEYS=str(env.sshd.workdir / "authorized_keys"),
                    PERFCI_TEST_ADDRESS_DELAY=str(args.boot), PERFCI_FAULTS_LOG=str(calls_log))
    env.reset()
    workers = ["-n", str(n)] if n else ["-p", "no:xdist"]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.ec2_harness",
         "-p", "tests.faults.faultplug", *workers, f"--rootdir={suite}", str(suite),
         f"--instance-type={','.join(TYPES)}", f"--perfci-run-id={tag}", f"--perfci-results={results}",
         "--perfci-ssh-user=root"],
        cwd=ROOT, env=proc_env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False,
    )
    wall = time.perf_counter() - start
    server = env.calls()
    entries = [json.loads(line) for line in calls_log.read_text().splitlines()] if calls_log.exists() else []
    runs = [e for e in entries if e["op"] == "RunInstances"]
    terminates = [e["t"] for e in entries if e["op"] == "TerminateInstances"]
    end = max(terminates) if terminates else time.time()
    instance_seconds = sum(max(0.0, min((t for t in terminates if t >= e["t"]), default=end) - e["t"])
                           for e in runs)
    left = sum(map(len, all_leftovers(env.moto).values()))
    status = "ok" if proc.returncode == 0 else f"rc {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}"
    return {
        "n": n, "wall": wall, "run_instances": server.get("RunInstances", 0),
        "terminate_calls": server.get("TerminateInstances", 0),
        "create_pids": len({e["pid"] for e in entries if e["op"] in ("RunInstances", "CreateKeyPair",
                                                                    "CreateSecurityGroup")}),
        "instance_seconds": instance_seconds, "left": left, "status": status,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2,4", help="-n values; 0 = without xdist (default 0,1,2,4)")
    parser.add_argument("--tests", type=int, default=6, help="tests per type (default 6)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each test sleeps (default 0.5)")
    parser.add_argument("--boot", type=float, default=1.0, help="seconds each instance's address hook is held")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    reason = sshd_available()
    if reason:
        print(f"skipped ({reason})")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="perfci-bench-xdist-") as tmp, environment(Path(tmp) / "env") as env:
        for n in (int(w) for w in args.workers.split(",")):
            row = one_run(env, Path(tmp), n, args)
            rows.append(row)
            print(f"  -n {n}: done in {row['wall']:.1f}s ({row['status']})", flush=True)
    print(f"{len(TYPES)} types x {args.tests} tests ({args.sleep:g}s each), instances reachable {args.boot:g}s "
          "after running; RunInstances counted at the moto server")
    print(f"  {'-n':>4} {'RunInstances':>12} {'Terminate calls':>15} {'creating procs':>14} "
          f"{'instance-s':>10} {'wall s':>7} {'left':>4}")
    for r in rows:
        label = "off" if r["n"] == 0 else str(r["n"])
        print(f"  {label:>4} {r['run_instances']:>12} {r['terminate_calls']:>15} {r['create_pids']:>14} "
              f"{r['instance_seconds']:>10.1f} {r['wall']:>7.1f} {r['left']:>4}")
    met = all(r["run_instances"] == len(TYPES) for r in rows)
    print(f"  RunInstances == {len(TYPES)} types at every -n: {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
