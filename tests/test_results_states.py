"""Matrix states: a FAILED cell (expected, not there) never looks like an accepted absence (xfail).

Run through pytest on the real recorded `perf stat` output of a Firecracker VM without a PMU, judged by
the real checks (checks.pmc, checks.expectations, outcomes.conclude): the matrix, its HTML page and the
step summary must tell the expected-but-missing counter from the accepted one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import decide
from pytest_perfci.results.matrix import build_matrix, render_html, render_markdown
from pytest_perfci.results.model import Infrastructure, ResultRecord, read_local
from pytest_perfci.results.states import State, cell_verdict, concerning, reason_code

SUITE = """
import os
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import decide
from pytest_perfci.checks.perf_stat import parse_perf_stat
from pytest_perfci.checks.pmc import PmcContext, judge_counter
from pytest_perfci.outcomes import conclude

STAT = parse_perf_stat(Path(os.environ["FC_STAT"]).read_text())
CTX = PmcContext(core_pmu=False, perf_event_paranoid=2, is_root=True)  # what the VM's facts say
EXPECT = {"cycles": ("available", "metal exposes the PMU"), "context-switches": ("zero", "software, idle")}

@pytest.mark.parametrize("event", ["cycles", "instructions", "context-switches", "task-clock"])
def test_counter(host, perfci_capability, event):
    v = judge_counter(STAT.get(event), event, CTX)
    perfci_capability(event, v.ok, v.detail if v.ok else v.reason.value, host=host)
    observed = "available" if v.ok else ("zero" if v.reason.value == "counter reads zero" else "unavailable")
    why = v.detail if v.ok else f"{v.reason.value}: {v.detail}"
    conclude([decide(event, observed, why, EXPECT.get(event))])
"""


@pytest.fixture
def fc_run(pytester: pytest.Pytester, samples: Path, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[pytest.RunResult, Path, Path]:
    monkeypatch.setenv("FC_STAT", str(samples / "pmc/local-firecracker-amd-vm-nopmu/perf-stat-x-default.stderr"))
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_fc=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfci-results=results", "--perfci-run-id=fc-1")
    return result, pytester.path / "results" / "fc-1", summary


def _md_row(md: str, label: str) -> list[str]:
    row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in row.strip("|").split(" | ")][1:]


def test_expected_but_missing_is_failed_and_the_xfail_is_absent(fc_run: tuple[pytest.RunResult, Path, Path]) -> None:
    result, run_dir, summary = fc_run
    result.assert_outcomes(failed=1, xfailed=1, passed=2)
    records = read_local([run_dir / "results.ndjson"])
    outcomes = {r.name: r.outcome for r in records}
    assert outcomes == {"cycles": "failed", "instructions": "xfailed", "context-switches": "passed",
                        "task-clock": "passed"}
    cycles = next(r for r in records if r.name == "cycles")
    assert cycles.metadata["message"].startswith(
        "expected available [metal exposes the PMU], observed unavailable: no hardware PMU exposed")

    md = (run_dir / "matrix.md").read_text()
    assert _md_row(md, "PMC cycles") == ["❌ **FAILED** NO-PMU¹"]
    assert _md_row(md, "PMC instructions") == ["⚪ NO-PMU²"]
    assert _md_row(md, "context-switches") == ["🟡 ZERO³"]
    assert _md_row(md, "task-clock") == ["✅"]
    assert "**❌ 1 FAILED** · ✅ 1 available · 🟡 1 reads zero · ⚪ 1 absent as expected" in md
    notes = md.split("Notes:")[1].split("Hosts:")[0]
    assert re.search(r"^1\. expected available \[metal exposes the PMU\], observed unavailable: "
                     r"no hardware PMU exposed", notes, re.MULTILINE)
    assert re.search(r"^2\. unavailable and no expectation for this target: no hardware PMU", notes,
                     re.MULTILINE)
    assert md.count("only nothing") == 2 and md.count("due to virtualization") == 2  # each full reason once, as a note, never in a cell
    assert "Legend: ❌ FAILED" in md

    page = (run_dir / "matrix.html").read_text()
    cells = dict(re.findall(r'<td class="(\w+)" data-state="([\w-]+)"', page))
    assert cells == {"failed": "FAILED", "absent": "absent", "zero": "zero", "ok": "available"}
    failed_td = re.search(r'<td class="failed"[^>]*title="([^"]*)"', page)
    assert failed_td and "FAILED: expected available" in failed_td.group(1)
    assert "test_fc.py::test_counter[local-cycles] (failed)" in failed_td.group(1)

    assert summary.read_text() == md  # the step summary is the same Markdown, same states


def test_the_same_observation_accepted_is_absent_not_failed(fc_run: tuple[pytest.RunResult, Path, Path]) -> None:
    """Control for the test above: without the expectation the same observation is an accepted absence."""
    _, run_dir, _ = fc_run
    records = read_local([run_dir / "results.ndjson"])
    cycles = next(r for r in records if r.name == "cycles")
    accepted = cycles.model_copy(update={"outcome": "xfailed", "metadata": {"detail": "no hardware PMU exposed"}})
    assert cell_verdict(cycles).state is State.FAILED
    assert cell_verdict(accepted).state is State.ABSENT
    md = render_markdown(build_matrix([accepted]))
    assert _md_row(md, "PMC cycles") == ["⚪ NO-PMU¹"] and "**no FAILED cell** · ⚪ 1 absent as expected" in md


M7 = Infrastructure(provider="ec2", target="m7i.metal-24xl", instance_type="m7i.metal-24xl", arch="x86_64",
                    metal=True)
C7G = Infrastructure(provider="ec2", target="c7g.xlarge", instance_type="c7g.xlarge", arch="arm64", metal=False)
M7A = Infrastructure(provider="ec2", target="m7a.large", instance_type="m7a.large", arch="x86_64", metal=False)


def cap(name: str, ok: bool, detail: str, infra: Infrastructure, outcome: str | None, message: str = "",
        run: str = "r1") -> ResultRecord:
    meta = {"detail": detail, **({"message": message} if message else {})}
    return ResultRecord(name=name, kind="capability", verdict="pass" if ok else "unavailable", metadata=meta,
                        infrastructure=infra, run_id=run, outcome=outcome)


def test_reason_codes_on_the_checks_own_sentences() -> None:
    fail = decide("cycles", "unavailable", "blocked by perf_event_paranoid: level 3", ("available", "metal"))
    assert reason_code(fail.message) == "PARANOID"
    assert reason_code(decide("cycles", "inconsistent", "perf stat 10 vs probe 0", None).message) == "DISAGREE"
    assert reason_code("regression: pmc.cpi = 2.1 cycles/instruction on m7i outside history band") == "REGRESSION"
    assert reason_code("kernel lacks resctrl (CONFIG_X86_CPU_RESCTRL not set)") == "NO-KERNEL"
    assert reason_code("something nobody wrote a pattern for") == "OTHER"
    # a mismatch whose detail is a number (available but expected unavailable) reads EXPECTED
    surprise = decide("cycles", "available", "2.1e+07 counted", ("unavailable", "VM"))
    v = cell_verdict(cap("cycles", True, "2.1e+07", M7A, "failed", surprise.message))
    assert (v.state, v.code) == (State.FAILED, "EXPECTED")


def test_regression_and_disagreement_fail_available_cells() -> None:
    text = "instructions: readers inconsistent: perf stat counts instructions but perf_event_open does not\n" \
           "regression: pmc.cycles = 9e6 count on m7i.metal-24xl outside history band [1e7, 1.2e7]"
    assert concerning(text, "instructions").startswith("readers inconsistent")
    joined = "l3_cat: unavailable and no expectation: no RDT/QoS cpu flags; virtualised: no; mba: unavailable and x"
    assert concerning(joined, "l3_cat") == "unavailable and no expectation: no RDT/QoS cpu flags; virtualised: no"
    assert concerning(text, "cycles").startswith("regression: pmc.cycles")
    ok_but_regressed = cap("cycles", True, "9e6", M7, "failed", concerning(text, "cycles"))
    assert (cell_verdict(ok_but_regressed).state, cell_verdict(ok_but_regressed).code) == (State.FAILED, "REGRESSION")
    # an available cell of a test that failed for an unrelated reason stays available
    assert cell_verdict(cap("branches", True, "1e6", M7, "failed")).state is State.AVAILABLE
    assert cell_verdict(cap("x", False, "", M7, "skipped", "requires pmc")).state is State.NOT_RUN


def test_columns_grouped_by_arch_and_metal_and_merged_runs_say_when() -> None:
    records = [cap("cycles", True, "1", M7, "passed", run="weekly-1"),
               cap("cycles", False, "no hardware PMU exposed", C7G, "xfailed", run="weekly-2"),
               cap("cycles", False, "no hardware PMU exposed", M7A, "failed", run="weekly-2")]
    m = build_matrix(records)
    assert m.columns == ["c7g.xlarge", "m7a.large", "m7i.metal-24xl"]
    assert [g for g, _ in m.groups()] == ["arm64 · VM", "x86_64 · VM", "x86_64 · metal"]
    md = render_markdown(m)
    assert "| capability | `c7g.xlarge`<br>arm64 · VM | `m7a.large`<br>x86_64 · VM |" in md
    assert "<sub>" in md and "· weekly-2</sub>" in md and "· weekly-1</sub>" in md
    page = render_html(m, allure={records[2].test or "": "https://example.invalid/allure/#x"})
    assert page.count('class="group"') == 3 and 'colspan="1">x86_64 · metal' in page
    assert json.dumps(m.counts()["FAILED"]) == "1"
