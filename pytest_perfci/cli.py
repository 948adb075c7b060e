"""The `perfci` console script: one argparse tree, one sub-command group per area.

Other areas add themselves by writing a `_add_<area>(sub)` function next to `_add_pmc` and
calling it from `build_parser`; each leaf sets `func` (args -> exit code) with `set_defaults`.

Exit codes are the contract CI scripts rely on: 0 = the hardware does what was asked, 1 = it does
not (a verdict), 2 = the input could not be judged at all (usage error, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_perfci.checks.perf_stat import PerfStat, PerfStatParseError, parse_perf_stat
from pytest_perfci.checks.pmc import PmcContext, Status, Verdict, judge_perf_stat, trustworthy

Handler = Callable[[argparse.Namespace], int]

# Judged in every file whatever --events says: without both there is no trustworthy PMC.
_REQUIRED_EVENTS = ("cycles", "instructions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfci", description="pytest-perfci command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_pmc(sub)
    return parser


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
    from pytest_perfci.hosts.facts import Facts  # the one place that knows what a core PMU is

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


if __name__ == "__main__":
    raise SystemExit(main())
