"""Capability probes behind @pytest.mark.requires: cheap, cached per host by the session."""

from __future__ import annotations

from pytest_perfci.hosts.base import Host


def detect(host: Host, capability: str) -> tuple[bool, str]:
    """(present, one-line why) for a capability named in markers.CAPABILITIES."""
    if capability == "pmc":
        from pytest_perfci.checks.pmc import PmcContext, judge_perf_stat
        from pytest_perfci.collect.pmc import run_perf_stat

        facts = host.facts
        ctx = PmcContext.from_facts(facts, is_root=host.run("id -u", check=False).stdout.strip() == "0")
        if not facts.perf_version:
            return False, "perf not installed"
        stat, _ = run_perf_stat(host, ("cycles:u", "instructions:u"), ["true"])
        verdicts = judge_perf_stat(stat, ("cycles", "instructions"), ctx)
        bad = [v for v in verdicts if not v.ok]
        if bad:
            return False, bad[0].line()
        return True, "cycles and instructions count"
    if capability == "resctrl":
        if "resctrl" in host.facts.filesystems:
            return True, "kernel lists resctrl in /proc/filesystems"
        return False, "kernel lists no resctrl filesystem in /proc/filesystems"
    raise ValueError(f"unknown capability {capability!r}")
