"""Is Linux resctrl available on this target, and does control really change what a workload gets?

Thin by design: gather on the host (collect.resctrl, whose prober also creates and removes groups),
judge with pure checks (checks.resctrl, checks.expectations), assert with a sentence a human reads.
The effect criteria are the kernel selftests' own (tools/testing/selftests/resctrl); see docs/resctrl.md.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

import pytest

from pytest_perfci.checks.expectations import Expectations, decide
from pytest_perfci.checks.perf_stat import PerfStatParseError, parse_perf_stat
from pytest_perfci.checks.resctrl import (
    Observation,
    ResourceInfo,
    bandwidth_value,
    cat_masks,
    cbm_problem,
    cbm_value,
    format_schemata_line,
    judge_bandwidth_pair,
    judge_cat_sweep,
    judge_cmt,
    judge_mba_trend,
    mba_sweep,
    parse_schemata,
)
from pytest_perfci.collect.resctrl import Prober, imc_events
from pytest_perfci.hosts.base import Host
from pytest_perfci.outcomes import conclude, target_key
from pytest_perfci.results.plugin import Recorder

WALK_RUNS = 5  # the selftests' NUM_OF_RUNS
MBA_SECONDS = 1.0  # per throttle value: 10 values x 1 s of one core copying memory
MBA_BYTES = 250 * 1024 * 1024  # the selftests' span for MBM/MBA (250 MB), far larger than any LLC
MBM_SECONDS = 2.0




def expected(host: Host, expectations: Expectations, capability: str) -> Any:
    return expectations.for_target(target_key(host)).get(capability)


def unavailable(host: Host, expectations: Expectations, capability: str, why: str,
                record: Callable[..., None]) -> None:
    """The capability is not there: pass if expected so, fail if expected available, else xfail with why."""
    record(capability, False, why, host=host)
    conclude([decide(capability, "unavailable", why, expected(host, expectations, capability))])


def workload_cpu(host: Host) -> int:
    """The CPU the workloads are pinned to: not 0 when there is another (CPU 0 takes most interrupts)."""
    return 1 if host.facts.nproc > 1 else 0


def cache_size(host: Host, cpu: int, level: int) -> int | None:
    for index in range(5):
        base = f"/sys/devices/system/cpu/cpu{cpu}/cache/index{index}"
        r = host.run(f"cat {base}/level {base}/type {base}/size", check=False)
        parts = r.stdout.split()
        if r.exited == 0 and len(parts) == 3 and parts[0] == str(level) and parts[1] == "Unified":
            size = parts[2]
            mult = {"K": 1024, "M": 1024 * 1024}.get(size[-1], 1)
            return int(size.rstrip("KM")) * mult
    return None


def test_availability(host: Host, resctrl: Observation, expectations: Expectations,
                      perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """Three answers: hardware capable? kernel supports resctrl? mounted and usable?"""
    a = resctrl.availability
    perfci_record.attach("resctrl observation", resctrl.model_dump(mode="json"), "json")
    for cap, finding in a.parts.items():  # rdt_hardware, resctrl_kernel, resctrl_mount
        perfci_capability(cap, finding.ok, finding.detail, host=host, finding=finding)
    perfci_capability("resctrl", a.usable, a.line(), host=host, finding=a.finding)
    outcomes = []
    hw_expected = expected(host, expectations, "rdt_hardware")
    if hw_expected is not None:
        outcomes.append(decide("rdt_hardware", a.parts["rdt_hardware"], a.hardware.phrase, hw_expected))
    outcomes.append(decide("resctrl", a.finding, a.line(),
                           expected(host, expectations, "resctrl")))
    conclude(outcomes)


def _cat_resource(resctrl: Observation, level: str) -> ResourceInfo | None:
    tree = resctrl.tree
    if tree is None:
        return None
    return tree.resource(level) or tree.resource(f"{level}DATA")


def _write_cbm(prober: Prober, group: str, res: str, domains: list[int], mask: int,
               cdp: bool) -> tuple[bool, str, int | None]:
    """Write one CBM to every domain (both CDP halves), return (ok, detail, applied mask of domain 0)."""
    names = [f"{res}DATA", f"{res}CODE"] if cdp else [res]
    text = "\n".join(format_schemata_line(n, dict.fromkeys(domains, mask), cache=True) for n in names)
    result = prober.write(group, "schemata", text)
    if not result["ok"]:
        status = (result.get("last_cmd_status") or "").strip()
        return False, f"write {text!r} rejected: {result['error']} (last_cmd_status: {status})", None
    applied_text = parse_schemata(result["readback"] or "").get(names[0], {}).get(domains[0])
    applied = cbm_value(applied_text) if applied_text else None
    return True, f"requested {mask:#x}, applied {applied:#x}" if applied is not None else "no readback", applied


@pytest.mark.resctrl_effect
@pytest.mark.parametrize("level", ["L3", "L2"])
def test_cat(host: Host, level: str, resctrl: Observation, resctrl_prober: Prober,
             resctrl_group: Callable[..., str], expectations: Expectations,
             perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """Cache allocation: a valid CBM is accepted and read back, and fewer ways mean more LLC misses."""
    cap = f"{level.lower()}_cat"
    a = resctrl.availability
    if not a.usable:
        unavailable(host, expectations, cap, a.line(), perfci_capability)
        return  # expected unavailable: a pass
    info = _cat_resource(resctrl, level)
    if info is None:
        unavailable(host, expectations, cap, f"resctrl usable but no {level} CAT resource ({a.runtime.phrase})",
                    perfci_capability)
        return  # expected unavailable: a pass
    assert info is not None and resctrl.tree is not None
    cdp = info.name.endswith("DATA")
    domains = sorted(resctrl.tree.schemata.get(info.name, {}))
    masks = cat_masks(info)
    bad = [p for p in (cbm_problem(info, m) for m in masks) if p]
    assert masks and not bad, f"no valid CBM sweep for {info.name}: masks {masks}, problems {bad}"
    group = resctrl_group()
    cpu = workload_cpu(host)
    size = cache_size(host, cpu, 3 if level == "L3" else 2)
    if size is None:
        pytest.fail(f"cannot read the {level} cache size of cpu{cpu} from sysfs", pytrace=False)
    assert size is not None
    span = size * masks[0].bit_count() // (info.cbm_bits or 1)  # the first allocation's share, as the selftest
    points: list[tuple[int, float]] = []
    notes = []
    for mask in masks:
        ok, detail, applied = _write_cbm(resctrl_prober, group, level, domains, mask, cdp)
        if not ok:
            pytest.fail(f"{level} CAT: {detail}", pytrace=False)
        notes.append(detail)
        effective = applied if applied is not None else mask
        if effective != mask:
            notes.append(f"hardware/kernel widened {mask:#x} to {effective:#x}")
        walk = resctrl_prober.walk(group, cpu, span, runs=WALK_RUNS)
        perfci_record.attach(f"prober walk {level} mask {effective:#x}", walk, "json")
        counts = [m for m in walk["misses"] if m is not None]
        if not counts:
            why = (f"{level} CBMs accepted and read back ({'; '.join(notes)}) but LLC misses cannot be counted: "
                   f"{walk['miss_error']}")
            perfci_capability(cap, True, why, host=host)
            conclude([decide(f"{cap}_effect", "unavailable", why, expected(host, expectations, f"{cap}_effect"))])
        points.append((effective.bit_count(), statistics.fmean(counts)))
        perfci_record.sample(f"resctrl.{cap}.llc_misses.{effective.bit_count()}ways", points[-1][1], "misses",
                             mask=f"{effective:#x}", span_bytes=span, runs=len(counts))
    effect = judge_cat_sweep(points, enforce=host.facts.cpu_vendor == "intel")
    perfci_capability(cap, effect.ok, effect.detail, host=host, finding=effect.finding)
    if not effect.ok:
        pytest.fail(f"{level} CAT has no measurable effect: {effect.detail} ({'; '.join(notes)})", pytrace=False)


@pytest.mark.resctrl_effect
def test_mba(host: Host, resctrl: Observation, resctrl_prober: Prober, resctrl_group: Callable[..., str],
             expectations: Expectations, perfci_capability: Callable[..., None],
             perfci_record: Recorder) -> None:
    """Memory bandwidth allocation: bandwidth rises with the MB throttle value; MBM agrees with iMC within 8 %."""
    a = resctrl.availability
    if not a.usable:
        unavailable(host, expectations, "mba", a.line(), perfci_capability)
        return  # expected unavailable: a pass
    tree = resctrl.tree
    info = tree.resource("MB") if tree is not None else None
    if info is None or tree is None:
        unavailable(host, expectations, "mba", f"resctrl usable but no MB resource ({a.runtime.phrase})",
                    perfci_capability)
        return  # expected unavailable: a pass
    assert info is not None and tree is not None
    domains = sorted(tree.schemata.get("MB", {}))
    top = max(bandwidth_value(v) for v in tree.schemata["MB"].values())
    values = mba_sweep(info) if top <= 100 else [top * k // 8 for k in range(1, 9)]  # MBps / AMD units
    group = resctrl_group()
    cpu = workload_cpu(host)
    points = []
    for value in values:
        result = resctrl_prober.write(group, "schemata", format_schemata_line("MB", dict.fromkeys(domains, value),
                                                                              cache=False))
        if not result["ok"]:
            pytest.fail(f"MB:{value} rejected: {result['error']} ({(result['last_cmd_status'] or '').strip()})",
                        pytrace=False)
        run = resctrl_prober.bandwidth(group, cpu, MBA_BYTES, MBA_SECONDS)
        perfci_record.attach(f"prober bandwidth MB:{value}", run, "json")
        mbm = run["mbm_mibps"].get("mbm_total_bytes") or run["mbm_mibps"].get("mbm_local_bytes")
        points.append((value, float(mbm if mbm else run["workload_mibps"])))
        perfci_record.sample(f"resctrl.mba.mibps.mb{value}", points[-1][1], "MiB/s",
                             source="mbm" if mbm else "workload", throttle=value)
    effect = judge_mba_trend(points)
    detail = effect.detail
    if effect.ok and imc_events(host.facts.pmu_devices) and host.facts.perf_version:
        pair = _mbm_vs_imc(host, resctrl_prober, group, cpu)
        if pair is not None:
            detail += f"; {pair.detail}"
            if not pair.ok:
                effect = pair
    perfci_capability("mba", effect.ok, detail, host=host, finding=effect.finding)
    if not effect.ok:
        pytest.fail(f"MBA: {detail}", pytrace=False)


def _mbm_vs_imc(host: Host, prober: Prober, group: str, cpu: int) -> Any:
    """MBM of the group vs the iMC CAS counters over one copy at the sweep's last (unthrottled) value.

    perf stat -a writes its CSV to stderr, the prober its JSON to stdout, so one run gives both readers.
    """
    argv = ["perf", "stat", "-a", "-x,", "-e", ",".join(imc_events(host.facts.pmu_devices)), "--",
            *prober.argv("bandwidth", group, "--cpu", str(cpu), "--bytes", str(MBA_BYTES),
                         "--seconds", str(MBM_SECONDS))]
    r = host.sudo(argv, timeout=120, check=False)
    try:
        stat = parse_perf_stat(r.stderr, sep=",")
        doc = json.loads(r.stdout.strip().splitlines()[-1])
    except (PerfStatParseError, ValueError, IndexError):
        return None
    mib = sum(c.value or 0.0 for c in stat.counters if c.unit == "MiB")
    mbm = doc.get("mbm_mibps", {}).get("mbm_total_bytes") or doc.get("mbm_mibps", {}).get("mbm_local_bytes")
    if not mib or not mbm:
        return None
    return judge_bandwidth_pair(float(mbm), mib / float(doc["seconds"]), label="MBM vs iMC")


@pytest.mark.resctrl_effect
def test_monitoring(host: Host, resctrl: Observation, resctrl_prober: Prober,
                    resctrl_group: Callable[..., str], expectations: Expectations,
                    perfci_capability: Callable[..., None], perfci_record: Recorder) -> None:
    """llc_occupancy of a group walking a known buffer lands near its size; mbm bytes grow under load."""
    a = resctrl.availability
    if not a.usable:
        unavailable(host, expectations, "llc_occupancy", a.line(), perfci_capability)
        return  # expected unavailable: a pass
    mon = resctrl.tree.resource("L3_MON") if resctrl.tree is not None else None
    if mon is None or "llc_occupancy" not in mon.mon_features:
        unavailable(host, expectations, "llc_occupancy",
                    f"resctrl usable but no L3_MON llc_occupancy ({a.runtime.phrase})", perfci_capability)
        return  # expected unavailable: a pass
    assert mon is not None and resctrl.tree is not None
    cpu = workload_cpu(host)
    size = cache_size(host, cpu, 3)
    if size is None:
        pytest.fail(f"cannot read the L3 cache size of cpu{cpu} from sysfs", pytrace=False)
    assert size is not None
    group = resctrl_group()
    l3 = resctrl.tree.resource("L3")
    span = size // 2
    if l3 is not None and l3.cbm_mask:
        # The selftest CMT setup: give the group a CBM of 5 ways and walk a buffer of that size.
        bits = min(5, l3.cbm_bits - 1) or 1
        masks = [m for m in cat_masks(l3, bits) if m.bit_count() == bits]
        if masks:
            domains = sorted(resctrl.tree.schemata.get("L3", {}))
            resctrl_prober.write(group, "schemata", format_schemata_line("L3", dict.fromkeys(domains, masks[0]),
                                                                        cache=True))
            span = size * bits // l3.cbm_bits
    walk = resctrl_prober.walk(group, cpu, span, runs=WALK_RUNS)
    perfci_record.attach("prober walk (llc_occupancy)", walk, "json")
    occupancy = [v for v in walk["llc_occupancy"][1:] if v is not None]  # first run: setup transition
    outcomes = []
    if not occupancy:
        outcomes.append(decide("llc_occupancy", "unavailable", "llc_occupancy read Unavailable/Error every run",
                               expected(host, expectations, "llc_occupancy")))
    else:
        cmt = judge_cmt(statistics.fmean(occupancy), span)
        perfci_capability("llc_occupancy", cmt.ok, cmt.detail, host=host, finding=cmt.finding)
        perfci_record.sample("resctrl.llc_occupancy.bytes", statistics.fmean(occupancy), "bytes",
                             "pass" if cmt.ok else "fail", span_bytes=span)
        if not cmt.ok:
            pytest.fail(f"CMT: {cmt.detail}", pytrace=False)
    if {"mbm_total_bytes", "mbm_local_bytes"} & set(mon.mon_features):
        run = resctrl_prober.bandwidth(group, cpu, MBA_BYTES, MBM_SECONDS)
        perfci_record.attach("prober bandwidth (mbm)", run, "json")
        rates = {k: v for k, v in run["mbm_mibps"].items() if v is not None}
        for feature, rate in rates.items():
            perfci_record.sample(f"resctrl.{feature}.mibps", rate, "MiB/s", "pass" if rate > 0 else "fail",
                                 workload_mibps=run["workload_mibps"])
        grew = {k: v for k, v in rates.items() if v > 0}
        perfci_capability("mbm", bool(grew), f"{rates} MiB/s while copying {run['workload_mibps']} MiB/s",
                          host=host)
        if not grew:
            pytest.fail(f"MBM counters did not increase under load: {rates} while the workload moved "
                        f"{run['workload_mibps']} MiB/s", pytrace=False)
    else:
        outcomes.append(decide("mbm", "unavailable", "L3_MON lists no mbm_*_bytes feature",
                               expected(host, expectations, "mbm")))
    conclude(outcomes)
