""""Not run (with reason)": a target that never came up, or whose every test was skipped, is a column of
the matrix with each cell not run, a reason code and the full reason once; written as a "target" record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.providers import registry
from pytest_perfci.providers.base import Provider, ProviderContext, Target, TargetUnavailable
from pytest_perfci.results.matrix import build_matrix, render_html, render_markdown
from pytest_perfci.results.model import Infrastructure, ResultRecord, parse_ndjson
from pytest_perfci.results.states import State, not_run
from pytest_perfci.results.terminal import grid
from pytest_perfci.settings import Settings

THIS = "tests.test_results_not_run"
DOWN = "InsufficientInstanceCapacity: no capacity for m7i.metal-24xl in us-east-1a"


class ThreeTypes(Provider):
    """Three targets of three types: one comes up, one is excluded by its tests, one never comes up."""

    name = "three"

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> ThreeTypes:
        return cls()

    def targets(self) -> list[Target]:
        return [Target(name=n, provider=self.name, instance_type=n) for n in ("m7i.large", "c7g.large",
                                                                                 "m7i.metal-24xl")]

    def acquire(self, target: Target) -> Host:
        if target.name == "m7i.metal-24xl":
            raise TargetUnavailable(DOWN)
        return LocalHost(target.name, instance_type=target.instance_type)


TESTS = """
import pytest

@pytest.fixture(autouse=True)
def _x86_only(request):
    if request.node.callspec.params.get("host") == "c7g.large":
        pytest.skip("c7g.large excluded: arch('x86_64') wants x86_64, the target is arm64")

def test_counts(host, perfci_capability):
    perfci_capability("cycles", True, "counted 1,234")

def test_also(host, perfci_capability):
    perfci_capability("instructions", True, "counted 5,678")
"""


@pytest.fixture
def three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.PROVIDERS, "three", f"{THIS}:ThreeTypes")
    for name in ("PERFCI_PROVIDER", "PERFCI_INSTANCE_TYPE", "PERFCI_RUN_ID", "PERFCI_RESULTS"):
        monkeypatch.delenv(name, raising=False)


def test_a_session_writes_not_run_columns_with_their_reasons(three: None, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=TESTS)
    results = pytester.path / "results"
    result = pytester.runpytest("--provider=three", f"--perfci-results={results}", "--perfci-run-id=run-nr",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=4)
    run = results / "run-nr"
    records = parse_ndjson((run / "results.ndjson").read_text())
    down = {r.name: r for r in records if r.kind == "target"}
    assert sorted(down) == ["c7g.large", "m7i.metal-24xl"]
    assert (down["m7i.metal-24xl"].metadata["code"], down["m7i.metal-24xl"].metadata["detail"]) == ("UNREACHABLE", DOWN)
    assert down["c7g.large"].metadata["code"] == "DESELECTED"
    assert down["c7g.large"].infrastructure.instance_type == "c7g.large"
    md = (run / "matrix.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| PMC cycles"))
    assert row.count("UNREACHABLE") == 1 and row.count("DESELECTED") == 1 and row.count("✅") == 1
    assert md.count(DOWN) == 1  # the full reason once, as a note
    result.stdout.fnmatch_lines(["*perfci capabilities*", "*UNREACHABLE*", f"*{DOWN}*"])
    result.stdout.fnmatch_lines(["*2 capability cells, 2 target(s) not run written to*"])


def test_a_target_that_ran_is_not_a_not_run_column(three: None, pytester: pytest.Pytester) -> None:
    """Some of its tests skipped, one ran: no target record (its skipped cells are plain "not run")."""
    pytester.makepyfile(test_some="""
import pytest

def test_runs(host, perfci_capability):
    perfci_capability("cycles", True, "counted")

def test_skips(host):
    pass

@pytest.fixture(autouse=True)
def _skip_one(request):
    if request.node.name.startswith("test_skips"):
        pytest.skip("not today")
""")
    results = pytester.path / "results"
    pytester.runpytest("--provider=three", f"--perfci-results={results}", "--perfci-run-id=run-some",
                       "-p", "no:cacheprovider")
    records = parse_ndjson((results / "run-some" / "results.ndjson").read_text())
    assert sorted(r.name for r in records if r.kind == "target") == ["m7i.metal-24xl"]


# --- pure parts ---------------------------------------------------------------------------------------------


def test_not_run_prefers_the_providers_own_message() -> None:
    v = not_run("m7i.metal-24xl", ["arch excluded", f"target m7i.metal-24xl unavailable: {DOWN}"])
    assert (v.state, v.code, v.reason) == (State.NOT_RUN, "UNREACHABLE", DOWN)
    skipped = not_run("c7g.large", ["needs perf", "needs perf", "arch excluded"])
    assert (skipped.code, skipped.reason) == ("DESELECTED", "needs perf; arch excluded")


def _target(name: str, code: str, detail: str, run_id: str = "r1") -> ResultRecord:
    return ResultRecord(name=name, kind="target", verdict="unavailable", run_id=run_id,
                        metadata={"state": "not-run", "code": code, "detail": detail},
                        infrastructure=Infrastructure(target=name, instance_type=name, run_id=run_id))


def _cap(column: str, cap: str = "cycles") -> ResultRecord:
    return ResultRecord(name=cap, kind="capability", verdict="pass", outcome="passed", run_id="r1",
                        metadata={"detail": "counted"}, infrastructure=Infrastructure(target=column, instance_type=column))


def test_matrix_not_run_column_in_every_view() -> None:
    m = build_matrix([_cap("m7i.large"), _cap("m7i.large", "instructions"), _target("m7i.metal-24xl", "UNREACHABLE", DOWN)])
    assert m.columns == ["m7i.large", "m7i.metal-24xl"]
    cells = [m.cell(cap, "m7i.metal-24xl") for cap in ("cycles", "instructions")]
    assert all(c is not None and (c.state, c.code, c.reason) == (State.NOT_RUN, "UNREACHABLE", DOWN) for c in cells)
    assert m.counts()[State.NOT_RUN] == 2 and m.notes() == {DOWN: 1}
    md = render_markdown(m)
    assert md.count("⏭️ UNREACHABLE¹") == 2 and md.count(DOWN) == 1
    page = render_html(m)
    assert page.count('data-state="not-run"') == 2 and f"not run: {DOWN}" in page  # tooltip
    text = "".join(t for line in grid(m) for t, _ in line)
    assert text.count("· UNREACHABLE [2]") == 2 and text.count(DOWN) == 1  # [1] is the available evidence


def test_every_target_down_still_makes_a_matrix() -> None:
    m = build_matrix([_target("a.large", "UNREACHABLE", "boom"), _target("b.large", "DESELECTED", "arch")])
    assert m.capabilities == ["target"] and m.columns == ["a.large", "b.large"]
    md = render_markdown(m)
    assert "| target came up |" in md and "UNREACHABLE" in md and "DESELECTED" in md


def test_a_merged_run_that_reached_the_column_keeps_its_cells() -> None:
    m = build_matrix([_cap("m7i.large"), _target("m7i.large", "UNREACHABLE", "boom", run_id="r0")])
    cell = m.cell("cycles", "m7i.large")
    assert cell is not None and cell.state is State.AVAILABLE


def test_old_files_without_target_records_read_the_same(tmp_path: Path) -> None:
    line = _cap("m7i.large").line()
    doc = json.loads(line)
    assert doc["kind"] == "capability"
    m = build_matrix(parse_ndjson(line))
    assert m.columns == ["m7i.large"] and m.counts()[State.NOT_RUN] == 0
