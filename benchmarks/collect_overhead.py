"""What loading the plugin costs at collection: `pytest --collect-only` on 2,000 tests, with and without perfci.

Why: the plugin is installed into environments whose suites have nothing to do with perfci; its
hooks (options, settings, marker validation, target parametrisation) must not make every collection
noticeably slower. Target (from the issue): plugin loaded <= 1.1x `-p no:perfci`.

What runs: a generated suite (`--files` files x `--per-file` tests = 2,000 by default: plain
functions, a parametrised function and a class, a few with perfci markers registered in the
generated ini so both sides collect the same items), then `python -m pytest --collect-only -q` on it
in subprocesses, alternating the two contenders (the order flips every round) for `--rounds` rounds;
the median wall time of each is compared. Whole-process times, so Python start-up and pytest's own
import are in both figures alike; the difference is the plugin.

Not a test: it prints and exits 0 whether or not the target is met.
    .venv/bin/python benchmarks/collect_overhead.py [--rounds 9] [--files 100] [--per-file 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.host_overhead import machine

INI = """\
[pytest]
markers =
    slow: generated
"""


def module(i: int, per_file: int) -> str:
    """per_file tests: a parametrised function (5), a class (5), the rest plain functions."""
    plain = per_file - 10
    body = ["import pytest", ""]
    body += [f"def test_plain_{i}_{k}():\n    assert {k} == {k}\n" for k in range(plain)]
    body += ["@pytest.mark.parametrize('x', range(5))", f"def test_param_{i}(x):\n    assert x >= 0\n"]
    body += [f"class TestGroup{i}:"] + [f"    @pytest.mark.slow\n    def test_m{k}(self):\n        pass\n"
                                        for k in range(5)]
    return "\n".join(body) + "\n"


def collect(suite: Path, extra: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-c",
         str(suite / "pytest.ini"), f"--rootdir={suite}", *extra, str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )
    took = time.perf_counter() - start
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    if proc.returncode != 0:
        raise RuntimeError(f"collection failed ({proc.returncode}): {last}")
    return took, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="runs per contender (default 9)")
    parser.add_argument("--files", type=int, default=100, help="test files (default 100)")
    parser.add_argument("--per-file", type=int, default=20, help="tests per file, >= 11 (default 20)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_"))}
    contenders = {"perfci loaded": [], "-p no:perfci": ["-p", "no:perfci"]}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="perfci-bench-collect-") as tmp:
        suite = Path(tmp)
        (suite / "pytest.ini").write_text(INI)
        for i in range(args.files):
            (suite / f"test_gen_{i:03d}.py").write_text(module(i, args.per_file))
        summaries = {name: collect(suite, extra, env)[1] for name, extra in contenders.items()}  # warm-up
        print(f"suite: {args.files} files; collected: " + "; ".join(f"{n}: {s}" for n, s in summaries.items()))
        names = list(contenders)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name].append(collect(suite, contenders[name], env)[0])
    base = statistics.median(times["-p no:perfci"])
    print(f"`pytest --collect-only -q`, whole process, median of {args.rounds} alternating runs")
    for name in names:
        med = statistics.median(times[name])
        print(f"  {name:<14} {med:6.3f}s  (min {min(times[name]):.3f}s, max {max(times[name]):.3f}s)  "
              f"{med / base:5.2f}x")
    ratio = statistics.median(times["perfci loaded"]) / base
    print(f"  perfci loaded / -p no:perfci: {ratio:.2f}x (target <= 1.1x) -> {'MET' if ratio <= 1.1 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
