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
        # From the facts already gathered (no prober run): the kernel part decides, the hardware
        # part says why (e.g. "kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL); hardware capable (...)").
        from pytest_perfci.checks.resctrl import judge_availability

        facts = host.facts
        verdict = judge_availability(facts.cpu, facts.filesystems, arch=facts.arch, virtualised=facts.virtualised)
        if "resctrl" in facts.filesystems:
            return True, f"kernel lists resctrl in /proc/filesystems; {verdict.hardware.phrase}"
        if verdict.reason is not None and verdict.reason.value.startswith("not applicable"):
            return False, verdict.hardware.phrase
        where = " in /proc/filesystems" if verdict.kernel.phrase.startswith("kernel lists no") else ""
        return False, f"{verdict.kernel.phrase}{where}; {verdict.hardware.phrase}"
    if capability == "gpu":
        # The driver part of the GPU probe (no CUDA context): present when nvidia-smi lists a GPU.
        from pytest_perfci.checks.gpu import presence
        from pytest_perfci.collect.gpu import gather

        report, _ = gather(host, cuda=False)
        return presence(report)
    raise ValueError(f"unknown capability {capability!r}")
