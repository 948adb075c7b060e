"""Boot target twins and record what perf stat and the perf_event_open probe print there.

The recordings in tests/data/samples/twins/ were made with this script; tests judge them with the
pure verdict code. It also prints the figures the README quotes: image build time, boot-to-SSH time.

    .venv/bin/python benchmarks/twin_record.py [--out tests/data/samples/twins] [MACHINE ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pytest_perfci.checks.pmc_probe import probe_command
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.collect.pmc import TWIN_WORKLOAD, perf_stat_shell
from pytest_perfci.collect.probes import install_probe
from pytest_perfci.providers.qemu import QemuProvider
from pytest_perfci.settings import Settings

# 9 generic events for a PMU with 7 counters (arm64-pmu: "7 counters available"): perf must multiplex.
MULTIPLEX = ("cycles:u", "instructions:u", "cycles:u", "instructions:u", "cycles:u", "instructions:u",
             "cycles:u", "instructions:u", "cycles:u")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("machines", nargs="*", default=["arm64-pmu", "arm64-partial"])
    parser.add_argument("--out", type=Path, default=Path("tests/data/samples/twins"))
    parser.add_argument("--results", type=Path, default=Path("/tmp/perfci-twin-record"))
    args = parser.parse_args()
    settings = Settings(provider="qemu", qemu={"machine": tuple(args.machines)}, results=args.results)
    provider = QemuProvider(settings, ledger=Ledger(args.results / "ledger.jsonl"))
    started = time.monotonic()
    try:
        for target in provider.targets():
            host = provider.acquire(target)
            print(f"{target.name}: ready {time.monotonic() - started:.1f} s after start")
            out = args.out / target.name
            out.mkdir(parents=True, exist_ok=True)
            facts = host.run("uname -srm; cat /proc/cpuinfo | head -8; ls /sys/bus/event_source/devices; "
                             "dmesg | grep -i -E 'perf|pmu'", check=False)
            (out / "facts.txt").write_text(facts.stdout)
            core = host.run(perf_stat_shell(["cycles:u", "instructions:u"], TWIN_WORKLOAD), check=False, timeout=300)
            (out / "perf-stat-core.csv").write_text(core.stdout)
            wider = host.run(perf_stat_shell(["branch-misses:u", "cache-misses:u"], TWIN_WORKLOAD), check=False,
                             timeout=300)
            (out / "perf-stat-misses.csv").write_text(wider.stdout)
            mux = host.run(perf_stat_shell(list(MULTIPLEX), TWIN_WORKLOAD), check=False, timeout=300)
            (out / "perf-stat-multiplex.csv").write_text(mux.stdout)
            remote = install_probe(host, "pmc_reader.py")
            probe = host.run(probe_command("python3", remote, ["cycles", "instructions"], list(TWIN_WORKLOAD),
                                           user_only=True, repeat=3), check=False, timeout=300)
            (out / "probe-core.json").write_text(probe.stdout)
            print(f"{target.name}: recorded in {out}")
    finally:
        provider.release_all()


if __name__ == "__main__":
    main()
