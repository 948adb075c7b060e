"""Run the two PMC readers on a host: `perf stat` and our perf_event_open probe.

Both count one workload process from exec to exit (enable_on_exec on a forked child, children
inherited), user mode only, so their instruction counts measure the same thing and can be held to
a tight tolerance.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pytest_perfci.checks.perf_stat import PerfStat, PerfStatParseError, parse_perf_stat
from pytest_perfci.checks.pmc_probe import ProbeReport, parse_probe_output, probe_command
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import Result

# A user-space loop whose retired-instruction count barely moves from run to run (no I/O, no
# allocation growth, no hash randomisation) and that every Linux image has: awk. About 0.2 s.
WORKLOAD: tuple[str, ...] = ("awk", "BEGIN { s = 0; for (i = 0; i < 2000000; i++) s += i % 7; print s }")
# The same loop, 10x shorter, for target twins: an emulated CPU runs busybox awk's ~8.6e9 instructions
# of the full loop in ~45 s; 8.6e8 still dwarfs perf's own exec path and takes ~5 s.
TWIN_WORKLOAD: tuple[str, ...] = ("awk", "BEGIN { s = 0; for (i = 0; i < 200000; i++) s += i % 7; print s }")


def workload_for(host: Host) -> tuple[str, ...]:
    """The workload both readers count on this host: shorter on an emulated twin, the same loop."""
    return TWIN_WORKLOAD if host.facts.twin else WORKLOAD


def perf_stat_shell(events: Sequence[str], workload: Sequence[str], repeat: int = 1) -> str:
    """perf stat with counters on stdout (--log-fd 3) and the workload's own output moved to stderr."""
    cmd = ["perf", "stat", "-x,", "--log-fd", "3", "-e", ",".join(events)]
    if repeat > 1:
        cmd += ["-r", str(repeat)]
    return shlex.join([*cmd, "--", *workload]) + " 3>&1 1>&2"


def run_perf_stat(
    host: Host, events: Sequence[str], workload: Sequence[str] | None = None, repeat: int = 1, timeout: float = 120
) -> tuple[PerfStat, Result]:
    """Counters as parsed; none at all when perf could not start (missing, refused, bad event), in which
    case the verdicts explain it from the host's context and the Result keeps perf's own words."""
    workload = workload_for(host) if workload is None else workload
    result = host.run(perf_stat_shell(events, workload, repeat), timeout=timeout, check=False)
    try:
        return parse_perf_stat(result.stdout, sep=","), result
    except PerfStatParseError:
        return PerfStat(format="csv", counters=[]), result


def run_probe(
    host: Host,
    remote_path: str,
    events: Sequence[str],
    workload: Sequence[str] | None = None,
    repeat: int = 1,
    user_only: bool = True,
    timeout: float = 120,
) -> tuple[ProbeReport, Result]:
    workload = workload_for(host) if workload is None else workload
    argv = probe_command("python3", remote_path, list(events), list(workload), user_only=user_only, repeat=repeat)
    result = host.run(argv, timeout=timeout, check=False)
    return parse_probe_output(result.stdout), result
