"""Wall time to have 1, 4 and 8 EC2 instance types ready, side by side in one run.

Why: `--instance-type=A,B,...` must cost about the time of the slowest type, not the sum: the
provider fans out one thread per type (RunInstances, waiter, SSH readiness, cloud-init).
Target (from the issue): 8 types <= 1.5x one type.

What runs: a moto server in its own process (tests/moto_server.py) and, per instance, a real sshd on
127.0.0.1 (tests/sshd.py) that only starts listening `--boot` seconds (default 3) after EC2 reported
the instance running, the way a booting machine refuses SSH for a while. The mapping is the public
pytest_perfci_host_address hook's job in a real run; here the provider is driven in process (no
pytest), with the same EC2Provider, ledger and teardown a run uses, so the figure is the provider's
own: from validate() (the catalogue and AMI look-ups) to every host answering `true` over SSH.
Counts are interleaved in rounds, the order rotating every round, and the median per count is
reported (a 2-core machine shared with other work drifts).

Not a test: it prints and exits 0 whether or not the target is met.
    .venv/bin/python benchmarks/provision_fanout.py [--boot 3] [--rounds 3] [--counts 1,4,8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.* when run as a script

os.environ["PERFCI_LOCAL_ONLY"] = "1"  # never a real AWS endpoint

from benchmarks.host_overhead import machine
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.ec2 import EC2Provider
from pytest_perfci.settings import load_settings
from tests.faults.campaign import start_sshd_on
from tests.moto_server import free_port, start_moto
from tests.sshd import SshdServer, sshd_available

TYPES = ("m7i.large", "c7g.large", "m5.large", "c5.large", "r5.large", "t3.medium", "m6g.large", "c6i.large")


class LateSshd:
    """pytest_perfci_host_address for the benchmark: each instance gets its own sshd, `boot` s later."""

    def __init__(self, workdir: Path, results: Path, boot: float) -> None:
        self.workdir, self.results, self.boot = workdir, results, boot
        self.servers: list[SshdServer] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def __call__(self, instance: dict[str, Any]) -> str:
        port = free_port()
        key = self.results / ".keys" / f"{instance['KeyName']}.pem"
        pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True,
                             text=True).stdout.strip()
        workdir = self.workdir / instance["InstanceId"]

        def boot() -> None:
            time.sleep(self.boot)
            server = start_sshd_on(port, workdir)
            with (workdir / "authorized_keys").open("a") as fh:
                fh.write(pub + "\n")
            with self.lock:
                self.servers.append(server)

        thread = threading.Thread(target=boot, name=f"boot-{instance['InstanceId']}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return f"root@127.0.0.1:{port}"

    def stop(self) -> None:
        for thread in self.threads:
            thread.join(30)
        for server in self.servers:
            server.stop()


def ready_time(url: str, types: tuple[str, ...], work: Path, boot: float, tag: str) -> tuple[float, int]:
    """Seconds from validate() to every type answering over SSH; then everything is torn down."""
    results = work / tag / "results"
    settings = load_settings({"instance_type": [",".join(types)], "run_id": tag, "results": str(results),
                              "ssh_user": "root", "endpoint_url": url, "region": "us-east-1"}, {})
    late = LateSshd(work / tag / "sshd", results, boot)
    lines: list[str] = []
    provider = EC2Provider(settings, ledger=Ledger(results / "ledger.jsonl"), address=late, progress=lines.append)
    try:
        start = time.perf_counter()
        provider.validate()
        hosts = [provider.acquire(t) for t in provider.targets()]
        for host in hosts:
            host.run("true")
        took = time.perf_counter() - start
    finally:
        provider.release_all()
        late.stop()
    waits = sum("ssh-wait" in line for line in lines)
    return took, waits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", type=float, default=3.0, help="seconds an instance's sshd stays silent (3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the counts (default 3)")
    parser.add_argument("--counts", default="1,4,8", help="numbers of instance types (default 1,4,8)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(f"machine: {machine()}")
    reason = sshd_available()
    if reason:
        print(f"skipped ({reason})")
        return 0
    times: dict[int, list[float]] = {n: [] for n in counts}
    waits: dict[int, list[int]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="perfci-bench-fanout-") as tmp:
        work = Path(tmp)
        moto = start_moto(work / "moto.log")
        os.environ.update(moto.env())
        try:
            took, _ = ready_time(moto.url, TYPES[:1], work, 0.0, "fanout-warmup")  # moto loads EC2 lazily
            print(f"  warm-up (discarded): 1 type, no boot delay, {took:.2f}s", flush=True)
            for r in range(args.rounds):
                order = counts[r % len(counts):] + counts[: r % len(counts)]
                for n in order:
                    took, w = ready_time(moto.url, TYPES[:n], work, args.boot, f"fanout-r{r}-n{n}")
                    times[n].append(took)
                    waits[n].append(w)
                    print(f"  round {r + 1}: {n} type(s) ready in {took:6.2f}s ({w} ssh-wait lines)", flush=True)
        finally:
            moto.process.terminate()
            moto.process.wait(10)
    base = statistics.median(times[counts[0]])
    print(f"EC2 fan-out against moto, sshd listening {args.boot:g}s after `running`; median of {args.rounds} rounds")
    for n in counts:
        med = statistics.median(times[n])
        print(f"  {n} type(s): {med:6.2f}s  (min {min(times[n]):.2f}s, max {max(times[n]):.2f}s)  "
              f"{med / base:5.2f}x of {counts[0]}")
    ratio = statistics.median(times[counts[-1]]) / base
    print(f"  {counts[-1]} types / {counts[0]} type: {ratio:.2f}x (target <= 1.5x) -> "
          f"{'MET' if ratio <= 1.5 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
