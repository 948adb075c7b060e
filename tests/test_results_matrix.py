"""Capability matrix: Markdown and HTML rendering, newest cell wins, step summary, `perfci matrix`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_perfci.cli import main
from pytest_perfci.results.matrix import build_matrix, render_html, render_markdown, write_matrix
from pytest_perfci.results.model import Infrastructure, NdjsonWriter, ResultRecord

T0 = datetime(2024, 5, 1, tzinfo=UTC)
M7I = Infrastructure(provider="ec2", target="m7i.metal-24xl", instance_type="m7i.metal-24xl", arch="x86_64",
                     metal=True, region="us-east-1", availability_zone="us-east-1a", kernel="6.8.0")
C7G = Infrastructure(provider="ec2", target="c7g.2xlarge", instance_type="c7g.2xlarge", arch="arm64", metal=False)


def cap(name: str, ok: bool, detail: str, infra: Infrastructure, minutes: int = 0, run: str = "r1",
        outcome: str | None = "xfailed") -> ResultRecord:
    return ResultRecord(name=name, kind="capability", verdict="pass" if ok else "unavailable",
                        metadata={"detail": detail}, infrastructure=infra, run_id=run, outcome=outcome,
                        recorded_at=T0 + timedelta(minutes=minutes))


RECORDS = [
    cap("mba", False, "no MB resource", M7I),
    cap("cycles", True, "2.1e+07", M7I),
    cap("cycles", False, "no hardware PMU exposed | vPMU off", C7G),
    cap("my_custom", True, "", C7G),
    cap("cycles", False, "old result", M7I, minutes=-5, run="r0"),
    ResultRecord(name="pmc.cpi", value=0.9, infrastructure=M7I),  # a measurement: not a matrix cell
]


def test_markdown_rows_in_known_order_columns_per_type_newest_wins() -> None:
    md = render_markdown(build_matrix(RECORDS), "t")
    lines = md.splitlines()
    assert lines[0] == "### t"
    assert lines[2] == "**no FAILED cell** · ✅ 2 available · ⚪ 2 absent as expected · ⏭️ 2 not run"
    assert "| capability | `c7g.2xlarge`<br>arm64 · VM | `m7i.metal-24xl`<br>x86_64 · metal |" in lines
    # two runs merged: each cell says its day and run; the newer m7i cycles cell (r1) won over r0's
    assert "| PMC cycles | ⚪ NO-PMU¹<br><sub>2024-05-01 · r1</sub> | ✅<br><sub>2024-05-01 · r1</sub> |" in lines
    assert "| MBA | ⏭️ | ⚪ NO-RESOURCE²<br><sub>2024-05-01 · r1</sub> |" in lines
    assert "| my_custom | ✅<br><sub>2024-05-01 · r1</sub> | ⏭️ |" in lines
    rows = [line.split(" | ")[0] for line in lines if line.startswith("| ") and "---" not in line]
    assert rows == ["| capability", "| PMC cycles", "| MBA", "| my_custom"]
    assert "Runs: `r0`, `r1`" in md and "old result" not in md
    assert "1. no hardware PMU exposed \\| vPMU off" in lines and "2. no MB resource" in lines
    assert "- `m7i.metal-24xl` (ec2): x86_64, metal, kernel 6.8.0, us-east-1/us-east-1a" in md


def test_long_reasons_are_notes_once_in_markdown_and_tooltips_in_html() -> None:
    long = "no hardware support " + "x" * 200
    m = build_matrix([cap("l3_cat", False, long, M7I), cap("l2_cat", False, long, M7I), cap("cycles", True, "<b>", C7G)])
    md = render_markdown(m)
    assert md.count(long) == 1 and "| CAT L3 | ⏭️ | ⚪ NO-HW¹ |" in md and "| CAT L2 | ⏭️ | ⚪ NO-HW¹ |" in md
    page = render_html(m)
    assert page.startswith("<!DOCTYPE html>") and page.count(long) == 2  # a tooltip on each cell
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]
    assert '<td class="absent" data-state="absent" title="absent as expected: no hardware support' in page
    assert "CAT L3" in page


def test_written_at_session_end_and_appended_to_the_step_summary(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md, html, m = write_matrix(RECORDS, tmp_path / "run")
    assert md.read_text() in summary.read_text() and summary.read_text().startswith("earlier step\n")
    assert html.read_text().count("<tr>") == 2 + len(m.capabilities)  # group row + column row + one per capability
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    write_matrix(RECORDS, tmp_path / "run2")  # no variable: nothing appended anywhere, no error


def test_perfci_matrix_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w1 = NdjsonWriter(tmp_path / "results" / "r1" / "results.ndjson")
    w1.write(RECORDS[:3])
    w2 = NdjsonWriter(tmp_path / "other.ndjson")
    w2.write(RECORDS[3:])
    html = tmp_path / "m.html"
    assert main(["matrix", str(tmp_path / "results"), str(tmp_path / "other.ndjson"), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "| PMC cycles | ⚪ NO-PMU¹<br><sub>2024-05-01 · r1</sub> | ✅<br>" in out and "my_custom" in out
    assert "<table class=\"matrix\">" in html.read_text()
    empty = tmp_path / "empty.ndjson"
    NdjsonWriter(empty).write([RECORDS[-1]])
    assert main(["matrix", str(empty)]) == 2
    assert "no capability record" in capsys.readouterr().err
    (tmp_path / "bad.ndjson").write_text("not json\n")
    assert main(["matrix", str(tmp_path / "bad.ndjson")]) == 2
    assert "bad.ndjson:1: not JSON" in capsys.readouterr().err
    assert main(["matrix", str(tmp_path / "nope")]) == 2
