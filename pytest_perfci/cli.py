"""The `perfci` console script: one argparse tree, one sub-command group per area.

Other areas add themselves by writing a `_add_<area>(sub)` function next to `_add_pmc` and
calling it from `build_parser`; each leaf sets `func` (args -> exit code) with `set_defaults`.

Exit codes are the contract CI scripts rely on: 0 = the hardware does what was asked, 1 = it does
not (a verdict), 2 = the input could not be judged at all (usage error, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_perfci.checks import cl2 as cl2_checks
from pytest_perfci.checks import resctrl as resctrl_checks
from pytest_perfci.checks.perf_stat import PerfStat, PerfStatParseError, parse_perf_stat
from pytest_perfci.checks.pmc import PmcContext, Status, Verdict, judge_perf_stat, trustworthy
from pytest_perfci.collect.cl2 import load_report
from pytest_perfci.models.cpuinfo import parse_cpuinfo
from pytest_perfci.models.facts import Facts  # the one place that knows what a core PMU is
from pytest_perfci.models.procfs import parse_filesystems

Handler = Callable[[argparse.Namespace], int]

# Judged in every file whatever --events says: without both there is no trustworthy PMC.
_REQUIRED_EVENTS = ("cycles", "instructions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfci", description="pytest-perfci command line tools")
    parser.add_argument("--version", action="version", version=f"perfci {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_pmc(sub)
    _add_reap(sub)
    _add_resctrl(sub)
    _add_cl2(sub)
    _add_matrix(sub)
    _add_report(sub)
    _add_export(sub)
    _add_plan(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-perfci")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code instead of exiting (testable)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    handler: Handler = args.func
    try:
        return handler(args)
    except BrokenPipeError:  # `perfci ... | head`: the reader left, nothing more to say
        # Point stdout at /dev/null so the interpreter's final flush does not raise again
        # (the recipe from the Python signal module documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# --- perfci matrix -------------------------------------------------------------------------------


def _add_matrix(sub: Any) -> None:
    from pytest_perfci.results.matrix import add_parser

    add_parser(sub)


def _add_report(sub: Any) -> None:
    from pytest_perfci.results.report import add_parser

    add_parser(sub)


def _add_export(sub: Any) -> None:
    from pytest_perfci.results.export import add_parser

    add_parser(sub)


# --- perfci pmc ---------------------------------------------------------------------------------


def _add_pmc(sub: Any) -> None:
    pmc = sub.add_parser("pmc", help="performance monitoring counters")
    pmc_sub = pmc.add_subparsers(dest="pmc_command", metavar="COMMAND")
    pmc_sub.required = True
    judge = pmc_sub.add_parser(
        "judge",
        help="judge recorded perf stat output",
        description=(
            "Parse recorded `perf stat` output (CSV with any separator, -j JSON lines, or the human "
            "table with whatever text surrounds it) and say whether the PMC can be trusted. "
            "cycles and instructions are always judged. Exit 0 when every judged event is available "
            "and consistent in every file, 1 otherwise, 2 when a file cannot be read or holds no "
            "counter line."
        ),
    )
    judge.add_argument("files", nargs="+", metavar="FILE", help="perf stat output; '-' reads stdin")
    judge.add_argument("--sep", default=None, help="CSV separator given to perf -x (default: detect)")
    judge.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    judge.add_argument(
        "--events",
        default=",".join(_REQUIRED_EVENTS),
        help="comma-separated events to judge besides cycles,instructions (default: %(default)s)",
    )
    judge.add_argument(
        "--min-running", type=float, default=50.0, metavar="PCT", help="multiplexing floor in percent"
    )
    ctx = judge.add_argument_group("host context (optional: makes the reasons more specific)")
    ctx.add_argument("--paranoid", type=int, default=None, help="kernel.perf_event_paranoid of the host")
    ctx.add_argument(
        "--pmu-devices",
        default=None,
        metavar="LIST",
        help="contents of /sys/bus/event_source/devices (comma or space separated)",
    )
    ctx.add_argument("--root", action="store_true", help="perf ran as root")
    ctx.add_argument("--system-wide", action="store_true", help="perf ran with -a")
    judge.set_defaults(func=_pmc_judge)


def _context(args: argparse.Namespace) -> PmcContext | None:
    if args.paranoid is None and args.pmu_devices is None and not args.root and not args.system_wide:
        return None
    devices = tuple(args.pmu_devices.replace(",", " ").split()) if args.pmu_devices is not None else ()

    return PmcContext(
        core_pmu=Facts(pmu_devices=devices).core_pmu if args.pmu_devices is not None else None,
        perf_event_paranoid=args.paranoid,
        is_root=args.root,
        system_wide=args.system_wide,
        pmu_devices=devices,
    )


def _events(spec: str) -> list[str]:
    requested = [e.strip() for e in spec.split(",") if e.strip()]
    return list(dict.fromkeys([*_REQUIRED_EVENTS, *requested]))


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8", errors="replace")


def _fmt_value(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3f}"


def _judge_file(stat: PerfStat, events: Sequence[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One entry per perf invocation in the file (pasted logs may hold several runs)."""
    ctx = _context(args)
    runs: list[dict[str, Any]] = []
    for run in stat.runs:
        part = stat.select(run)
        verdicts = judge_perf_stat(part, events, ctx, min_running_pct=args.min_running)
        counters = {e: part.get(e) for e in events}
        ok = trustworthy(verdicts) and all(v.status is Status.AVAILABLE for v in verdicts)
        runs.append({"run": run, "ok": ok, "counters": counters, "verdicts": verdicts})
    return runs


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return {**v.model_dump(mode="json"), "ok": v.ok, "line": v.line()}


def _pmc_judge(args: argparse.Namespace) -> int:
    events = _events(args.events)
    results: list[dict[str, Any]] = []
    errors = 0
    for name in args.files:
        label = "<stdin>" if name == "-" else name
        try:
            stat = parse_perf_stat(_read(name), sep=args.sep)
        except (OSError, PerfStatParseError) as exc:
            msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"perfci pmc judge: {label}: {msg}", file=sys.stderr)
            results.append({"file": label, "ok": False, "error": msg})
            errors += 1
            continue
        runs = _judge_file(stat, events, args)
        results.append({"file": label, "format": stat.format, "ok": all(r["ok"] for r in runs), "runs": runs})
    judged = [r for r in results if "error" not in r]
    good = sum(1 for r in judged if r["ok"])
    all_ok = not errors and good == len(judged)
    code = 2 if errors else (0 if all_ok else 1)
    if args.json:
        print(json.dumps(_json_doc(results, events, all_ok, code), indent=2))
    else:
        _print_text(results)
        print(_overall(good, len(judged), errors))
    return code


def _json_doc(results: list[dict[str, Any]], events: Sequence[str], ok: bool, code: int) -> dict[str, Any]:
    files = []
    for r in results:
        if "error" in r:
            files.append(r)
            continue
        runs = []
        for run in r["runs"]:
            counters = {
                e: (c.model_dump(mode="json") if c is not None else None) for e, c in run["counters"].items()
            }
            verdicts = [_verdict_json(v) for v in run["verdicts"]]
            runs.append({"run": run["run"], "ok": run["ok"], "counters": counters, "verdicts": verdicts})
        files.append({"file": r["file"], "format": r["format"], "ok": r["ok"], "runs": runs})
    return {"ok": ok, "exit_code": code, "events": list(events), "files": files}


def _print_text(results: list[dict[str, Any]]) -> None:
    for r in results:
        if "error" in r:
            print(f"{r['file']}: ERROR {r['error']}")
            continue
        several = len(r["runs"]) > 1
        print(f"{r['file']} ({r['format']}): {'trustworthy' if r['ok'] else 'NOT trustworthy'}")
        for run in r["runs"]:
            if several:
                print(f"  run {run['run'] + 1} of {len(r['runs'])}:")
            for event, c in run["counters"].items():
                if c is None:
                    print(f"  {event:<14} {'-':>16}  missing")
                else:
                    pct = f"{c.running_pct:.2f}%" if c.running_pct is not None else "?"
                    print(f"  {event:<14} {_fmt_value(c.value):>16}  {c.status:<13} running {pct}")
            for v in run["verdicts"]:
                print(f"    {'ok ' if v.ok else 'BAD'} {v.line()}")


def _overall(good: int, judged: int, errors: int) -> str:
    unreadable = f", {errors} unreadable" if errors else ""
    if not errors and good == judged:
        return f"overall: PMC trustworthy in all {judged} file(s)"
    return f"overall: PMC trustworthy in {good} of {judged} judged file(s){unreadable}"


# --- perfci reap --------------------------------------------------------------------------------


def _add_reap(sub: Any) -> None:
    reap = sub.add_parser(
        "reap",
        help="find and delete perfci resources left behind (by run id, expiry or ledger)",
        description=(
            "Find EC2 instances, key pairs and security groups tagged by perfci and delete them. "
            "Select with exactly one of --run-id, --expired or --ledger. A perfci:keep-until tag in "
            "the future protects a resource in every mode. Dry run by default: prints what would be "
            "deleted; --yes deletes. Exit 0 on success (also when nothing is found), 1 when a "
            "deletion or a listing failed, 2 on usage errors."
        ),
    )
    reap.add_argument("--run-id", metavar="ID", help="everything tagged perfci:run-id=ID")
    reap.add_argument(
        "--expired", action="store_true",
        help="everything whose perfci:expires-at (and perfci:keep-until, if any) is past",
    )
    reap.add_argument("--ledger", metavar="FILE", help="what a run's ledger lists as created and not deleted")
    reap.add_argument(
        "--region", action="append", default=None, metavar="R",
        help="region to search (repeatable; default: the ledger's regions, else AWS config/env)",
    )
    reap.add_argument("--endpoint-url", default=None, metavar="URL", help="EC2 endpoint (default: AWS's)")
    reap.add_argument("--results", default="perfci-results", metavar="DIR",
                      help="the runs' results directory: private key files of reaped key pairs are removed from "
                      "DIR/.keys (default perfci-results; with --ledger, the paths it records)")
    reap.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    reap.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    reap.set_defaults(func=_reap)


def _reap_usage(text: str) -> int:
    print(f"perfci reap: {text}", file=sys.stderr)
    return 2


LOCAL = "local"  # the pseudo-region of resources on this machine (cleanup kinds with `local = True`)


def _only_local_kinds(ledger: Any) -> bool:
    from pytest_perfci.cleanup.kinds import UnknownKind, kind_class

    kinds = {e.resource for e in ledger.outstanding()}
    try:
        return bool(kinds) and all(getattr(kind_class(k), "local", False) for k in kinds)
    except UnknownKind:
        return False


def _reap_regions(args: argparse.Namespace, ledger: Any) -> list[str] | str:
    """The regions to search, or a one-line usage error."""
    from pytest_perfci.aws.clients import session
    from pytest_perfci.settings import REGION_RE

    if args.region:
        regions = list(dict.fromkeys(r.strip() for r in args.region))
        bad = [r for r in regions if not REGION_RE.match(r)]
        if bad:
            return f"--region {bad[0]!r} is not an AWS region name; expected e.g. us-east-1 or eu-west-2"
        return regions
    if ledger is not None:
        found = sorted({e.region for e in ledger.outstanding() if e.region})
        if found:
            return found
        if not ledger.outstanding() or _only_local_kinds(ledger):
            return [LOCAL]  # twin guests and the like, or nothing left: no region, no credentials, no AWS call
    default = session().region_name
    if not default:
        if ledger is None:
            return []  # --run-id/--expired: this machine's twin guests only (see _reap)
        return "no region: pass --region R or set AWS_DEFAULT_REGION (or a region in the AWS config)"
    return [default]


def _fmt_time(t: Any) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else "-"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _orphan_rows(orphans: Sequence[Any]) -> list[list[str]]:
    return [[o.region or "-", o.kind, o.id, o.run_id or "-", _fmt_time(o.expires_at), o.reason] for o in orphans]


_ORPHAN_HEADER = ["REGION", "KIND", "ID", "RUN ID", "EXPIRES-AT", "WHY"]


def _reap(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    from pytest_perfci.aws.clients import RealEndpointRefused, client, session
    from pytest_perfci.cleanup import engine
    from pytest_perfci.cleanup.kinds import Context, local_kinds
    from pytest_perfci.cleanup.ledger import Ledger
    from pytest_perfci.cleanup.model import Report, Selection
    from pytest_perfci.providers.ec2.clock import reaper_now
    from pytest_perfci.settings import RUN_ID_RE

    chosen = [name for name, on in (("--run-id", args.run_id is not None), ("--expired", args.expired),
                                    ("--ledger", args.ledger is not None)) if on]
    if not chosen:
        return _reap_usage("nothing selected; pass one of --run-id ID, --expired or --ledger FILE")
    if len(chosen) > 1:
        return _reap_usage(f"{' and '.join(chosen)} exclude each other; pass exactly one")
    if args.run_id is not None and not RUN_ID_RE.match(args.run_id):
        return _reap_usage(
            f"--run-id {args.run_id!r} is not a valid run id; use 3-48 lowercase letters, digits and '-', "
            "starting with a letter or digit (e.g. perfci-20240501-120000-a1b2c3)"
        )
    ledger = None
    if args.ledger is not None:
        if not Path(args.ledger).is_file():
            return _reap_usage(f"--ledger {args.ledger!r}: no such file")
        ledger = Ledger(Path(args.ledger))
        if (why := ledger.damage()) is not None:
            return _reap_usage(f"--ledger {args.ledger!r}: not a perfci ledger: {why}")
    regions = _reap_regions(args, ledger)
    if isinstance(regions, str):
        return _reap_usage(regions)
    # By run id or expiry, this machine's twin guests (local kinds) are searched too, after the regions.
    local = ledger is None and LOCAL not in regions

    def progress(line: str) -> None:
        print(f"perfci reap: {line}", file=sys.stderr, flush=True)

    found: list[Any] = []
    skipped: list[Any] = []
    surveyed: dict[str, tuple[Context, Selection, dict[str, Any] | None]] = {}
    failures: list[str] = []
    if not regions:
        progress("no AWS region (--region R or AWS_DEFAULT_REGION): searching this machine's twin guests only")
    for region in [*regions, *([LOCAL] if local else [])]:
        try:
            ec2 = None if region == LOCAL else client(session(region), "ec2", args.endpoint_url)
            ctx = Context(ec2, progress=progress, key_dir=Path(args.results) / ".keys", results=Path(args.results))
            now = None if ec2 is None else reaper_now(ec2, say=progress)  # AWS's, if this clock is off
            only = local_kinds(ctx, expired=args.expired) if region == LOCAL and ledger is None else None
            sel = engine.survey(ctx, run_id=args.run_id, expired=args.expired, ledger=ledger, now=now, kinds=only)
        except (RealEndpointRefused, NoCredentialsError, NoRegionError) as exc:
            return _reap_usage(f"region {region}: {exc}")
        except (ClientError, BotoCoreError) as exc:
            failures.append(f"region {region}: could not list resources: {exc}")
            print(f"perfci reap: {failures[-1]}", file=sys.stderr)
            continue
        surveyed[region] = (ctx, sel, only)
        failures.extend(f"region {region}: could not list {kind} resources" for kind in sel.unlisted)
        found.extend(sel.chosen)
        skipped.extend(sel.skipped)

    what = f"run {args.run_id}" if args.run_id else ("expired" if args.expired else f"ledger {args.ledger}")
    report = Report()
    if args.yes:
        for ctx, sel, only in surveyed.values():
            if sel.chosen or sel.unresolved:
                report = report.merge(engine.reap(ctx, sel, ledger=ledger, kinds=only))
    code = 1 if failures or not report.ok else 0

    if args.json:
        doc = {
            "selector": {"run_id": args.run_id, "expired": args.expired, "ledger": args.ledger},
            "regions": regions,
            "dry_run": not args.yes,
            "orphans": [o.model_dump(mode="json") for o in found],
            "skipped": [o.model_dump(mode="json") for o in skipped],
            "outcomes": [o.model_dump(mode="json") for o in report.outcomes],
            "errors": failures,
            "ok": code == 0,
            "exit_code": code,
        }
        print(json.dumps(doc, indent=2))
        return code

    if skipped:
        print(f"kept ({len(skipped)}):")
        _table(_orphan_rows(skipped), _ORPHAN_HEADER)
    if not found:
        print(f"nothing to reap ({what}; region {', '.join(regions or [LOCAL])})")
        return code
    if not args.yes:
        print(f"would delete ({len(found)}):")
        _table(_orphan_rows(found), _ORPHAN_HEADER)
        print("dry run: pass --yes to delete")
        return code
    rows = [[o.region or "-", o.kind, o.id, o.run_id or "-", o.status, o.detail] for o in report.outcomes]
    _table(rows, ["REGION", "KIND", "ID", "RUN ID", "RESULT", "DETAIL"])
    print(f"reaped {what}: {report.summary()}")
    return code


# --- perfci resctrl -----------------------------------------------------------------------------


def _add_resctrl(sub: Any) -> None:
    resctrl = sub.add_parser("resctrl", help="Linux resctrl (cache allocation, memory bandwidth, monitoring)")
    resctrl_sub = resctrl.add_subparsers(dest="resctrl_command", metavar="COMMAND")
    resctrl_sub.required = True
    judge = resctrl_sub.add_parser(
        "judge",
        help="judge recorded cpuinfo, /proc/filesystems and a resctrl tree",
        description=(
            "Print the three-part resctrl verdict (hardware capable? kernel supports? mounted and usable?) "
            "and the parsed capabilities from recorded files. Exit 0 when resctrl is usable, 1 when not, "
            "2 when an input cannot be read."
        ),
    )
    judge.add_argument("--cpuinfo", metavar="F", help="/proc/cpuinfo or lscpu output")
    judge.add_argument("--filesystems", metavar="F", help="/proc/filesystems")
    judge.add_argument("--tree", metavar="DIR", help="a copy of a mounted /sys/fs/resctrl")
    judge.add_argument("--kernel-config", metavar="F", help="kernel config (/boot/config-*, zcat /proc/config.gz)")
    judge.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    judge.set_defaults(func=_resctrl_judge)


def _read_tree(root: Path) -> dict[str, str]:
    if not root.is_dir():
        raise OSError(f"{root}: not a directory")
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            files[rel + "/"] = ""
        else:
            files[rel] = path.read_text(encoding="utf-8", errors="replace")
    return files


def _resctrl_judge(args: argparse.Namespace) -> int:
    try:
        cpu = parse_cpuinfo(_read(args.cpuinfo)) if args.cpuinfo else None
        fs = parse_filesystems(_read(args.filesystems)) if args.filesystems else None
        config = resctrl_checks.parse_kernel_config(_read(args.kernel_config)) if args.kernel_config else None
        tree = resctrl_checks.parse_tree(_read_tree(Path(args.tree))) if args.tree else None
    except OSError as exc:
        print(f"perfci resctrl judge: {exc.strerror and f'{exc.filename}: {exc.strerror}' or exc}", file=sys.stderr)
        return 2
    if cpu is None and fs is None and tree is None:
        print("perfci resctrl judge: nothing to judge; pass --cpuinfo, --filesystems and/or --tree", file=sys.stderr)
        return 2
    verdict = resctrl_checks.judge_availability(cpu, fs, tree, kernel_config=config)
    code = 0 if verdict.usable else 1
    if args.json:
        doc = {
            "ok": verdict.usable, "exit_code": code, "line": verdict.line(),
            "verdict": verdict.model_dump(mode="json", exclude={"resource_info"}),
            "capabilities": list(verdict.capabilities),
            "cpu": {**cpu.model_dump(mode="json"), "flags": sorted(cpu.flags)} if cpu else None,
            "tree": tree.model_dump(mode="json") if tree else None,
        }
        print(json.dumps(doc, indent=2, sort_keys=True, default=sorted))
        return code
    reason = verdict.reason.value if verdict.reason else ""
    head = reason if reason.startswith(verdict.status.value) else verdict.status.value + (f" ({reason})" if reason else "")
    print(f"resctrl: {head}")
    for label, part in (("hardware", verdict.hardware), ("kernel", verdict.kernel), ("runtime", verdict.runtime)):
        if part.phrase:
            state = {True: "yes", False: "no", None: "?"}[part.ok]
            print(f"  {label:<9}{state:<4}{part.phrase}")
    if cpu is not None:
        extra = " (flag list truncated in this file)" if cpu.truncated else ""
        print(f"  cpu      {cpu.vendor} {cpu.arch}: RDT/QoS flags {' '.join(cpu.rdt) or 'none'}{extra}")
    if tree is not None:
        for name, info in tree.resources.items():
            fields = info.model_dump(exclude={"name"}, exclude_none=True, exclude_defaults=True)
            shown = ", ".join(f"{k}={v:#x}" if k in ("cbm_mask", "shareable_bits") else f"{k}={v}"
                              for k, v in fields.items())
            print(f"  info/{name:<8}{shown}")
        for res, domains in tree.schemata.items():
            print(f"  schemata {res}: " + ";".join(f"{d}={v}" for d, v in domains.items()))
        if tree.last_cmd_status is not None:
            print(f"  last_cmd_status: {tree.last_cmd_status}")
    if verdict.capabilities:
        print(f"  capabilities: {' '.join(verdict.capabilities)}")
    print(verdict.line())
    return code


# --- perfci cl2 ---------------------------------------------------------------------------------


def _add_cl2(sub: Any) -> None:
    cl2 = sub.add_parser("cl2", help="ClusterLoader2 reports")
    cl2_sub = cl2.add_subparsers(dest="cl2_command", metavar="COMMAND")
    cl2_sub.required = True
    judge = cl2_sub.add_parser(
        "judge",
        help="judge a CL2 report directory against our SLOs",
        description=(
            "Read a ClusterLoader2 report directory (junit.xml and <Summary>_<test>_<RFC3339>.json files) "
            "and print each SLO's measured value against its limit (published Kubernetes SLOs unless "
            "overridden). Exit 0 when every measured SLO holds, at least one SLO was measured and CL2 "
            "reported no failure, 1 otherwise (also for an internally inconsistent measurement), 2 when "
            "the directory is not a CL2 report."
        ),
    )
    judge.add_argument("report_dir", metavar="REPORT_DIR", help="CL2 --report-dir")
    judge.add_argument("--baseline", metavar="FILE", help="earlier `perfci cl2 judge --json` output to compare to")
    judge.add_argument("--tolerance", type=float, default=None, metavar="FRACTION",
                       help="allowed regression against the baseline (default 0.2 = 20%%)")
    judge.add_argument("--slo", action="append", default=[], metavar="NAME=VALUE",
                       help="override a limit in seconds (or pods/s); 'off' disables it; repeatable")
    judge.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    judge.set_defaults(func=_cl2_judge)


def _cl2_judge(args: argparse.Namespace) -> int:
    def usage(text: str) -> int:
        print(f"perfci cl2 judge: {text}", file=sys.stderr)
        return 2

    root = Path(args.report_dir)
    if not root.is_dir():
        return usage(f"{root}: not a directory")
    try:
        overrides = cl2_checks.parse_slo_overrides(args.slo)
        baseline = cl2_checks.parse_baseline(Path(args.baseline).read_text()) if args.baseline else None
    except OSError as exc:
        return usage(f"--baseline {args.baseline}: {exc.strerror or exc}")
    except ValueError as exc:
        return usage(str(exc))
    report = load_report(root)
    if not report.is_cl2:
        return usage(f"{root}: not a CL2 report (no junit.xml and no <Summary>_<test>_<time>.json files)")
    tolerance = cl2_checks.BASELINE_TOLERANCE if args.tolerance is None else args.tolerance
    verdict = cl2_checks.judge(report, overrides, baseline, tolerance)
    code = 0 if verdict.ok else 1
    if args.json:
        print(json.dumps({**cl2_checks.verdict_json(verdict), "report_dir": str(root), "exit_code": code}, indent=2))
        return code
    for line in cl2_checks.render_table(verdict):
        print(line)
    for reason in verdict.reasons():
        print(reason)
    problems = [f"{len(verdict.violations)} SLO(s) violated"] if verdict.violations else []
    problems += [f"{len(verdict.invalid)} SLO(s) with an inconsistent measurement"] if verdict.invalid else []
    problems += ["no SLO was measured, so none is shown to hold"] if verdict.unmeasured else []
    problems += ["CL2 itself reported failures"] if verdict.cl2_failed else []
    print(f"overall: {'; '.join(problems)}" if problems else "overall: every SLO holds")
    return code


# --- perfci plan --------------------------------------------------------------------------------


def _add_plan(sub: Any) -> None:
    from pytest_perfci.settings import add_options  # the run options, generated from the Settings fields

    plan = sub.add_parser(
        "plan",
        help="what a run would provision and cost, and whether it fits the EC2 quotas (creates nothing)",
        description=(
            "Resolve what `pytest ... --instance-type ...` with the same options would provision (types, "
            "counts, AMIs, region, TTL) without creating anything; estimate instance-hours and cost from "
            "the shipped price table (or the AWS Pricing API); check the account's running-vCPU quotas "
            "(Service Quotas) against what is already running. Exit 0 when it resolves and no quota is "
            "known to be short, 1 when a quota cannot fit the run, 2 on usage or validation errors."
        ),
    )
    group = plan.add_argument_group("run options (the same as pytest's, same PERFCI_* environment)")
    specs = add_options(group.add_argument, sections=("",))
    own = plan.add_argument_group("plan options")
    own.add_argument("--hours", type=float, default=None, metavar="H",
                     help="expected run length for the estimate (default: the TTL)")
    own.add_argument("--boot-minutes", type=float, default=None, metavar="M",
                     help="minutes each instance takes to boot, for the --perfci-schedule estimate (default: "
                          "2, metal types 10)")
    own.add_argument("--prices", default=None, metavar="FILE|api",
                     help="price table TOML (default: the one shipped in the package) or 'api' for the AWS "
                          "Pricing API with the table as fallback")
    own.add_argument("--no-quota", action="store_true", help="skip the Service Quotas check")
    own.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    plan.set_defaults(func=_plan, plan_dests=[spec.dest for spec in specs])


def _plan(args: argparse.Namespace) -> int:
    from pytest_perfci import plan as planning
    from pytest_perfci.aws.clients import RealEndpointRefused, client, session
    from pytest_perfci.settings import SettingsError, load_settings, read_pyproject_table

    def usage(text: str) -> int:
        print(f"perfci plan: {text}", file=sys.stderr)
        return 2

    cli = {dest: getattr(args, f"perfci_{dest}") for dest in args.plan_dests}
    try:
        settings = load_settings(cli, read_pyproject_table(Path.cwd()))
    except SettingsError as exc:
        return usage(str(exc))
    if args.hours is not None and not (math.isfinite(args.hours) and 0 < args.hours <= 24 * 366):
        return usage(f"--hours {args.hours:g}: must be a number of hours more than 0 and at most a year (8784)")
    if args.boot_minutes is not None and not (math.isfinite(args.boot_minutes) and 0 <= args.boot_minutes <= 24 * 60):
        return usage(f"--boot-minutes {args.boot_minutes:g}: must be a number of minutes from 0 to 1440")
    provider = settings.effective_provider
    if provider != "ec2":
        print(f"perfci plan: provider {provider} creates no cloud resources; nothing to provision or pay for")
        return 0
    try:
        table = planning.load_prices(Path(args.prices) if args.prices not in (None, "api") else None)
        prices: planning.PriceSource = table
        if args.prices == "api":  # the Pricing API answers from us-east-1 for every region
            prices = planning.PricingApi(client(session("us-east-1"), "pricing", settings.endpoint_url), table)
        result = planning.build_plan(settings, hours=args.hours, prices=prices, check_quotas_=not args.no_quota,
                                     boot_minutes=args.boot_minutes)
    except (planning.PriceError, RealEndpointRefused) as exc:
        return usage(str(exc))
    except (ValueError, RuntimeError) as exc:  # the provider's one-line validation errors
        return usage(str(exc))
    code = 1 if result.cannot_fit else 0
    if args.json:
        print(json.dumps({**planning.plan_json(result), "exit_code": code}, indent=2))
    else:
        for line in planning.render_text(result):
            print(line)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
