"""`perfci report`: history produced by real pytest runs, drawn as a page and opened in headless Chromium.

The results come from pytest itself (pytester): five runs of a small suite recording a throughput, the
last one slower, and one run of the PMC mini-suite on the recorded Firecracker `perf stat` output, where
an expected counter is missing (FAILED) beside an accepted xfail. Chromium (Debian's `chromium`,
installed by `./install.sh --dev`) renders the page; a probe script measures the drawn SVG.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_perfci.cli import main
from pytest_perfci.results.model import read_local
from pytest_perfci.results.trends import build_series, mermaid
from tests.test_results_states import SUITE as FC_SUITE

pytest.importorskip("vl_convert", reason="perfci report needs the report extra (./install.sh --dev installs it)")

SPEED_SUITE = """
import os

def test_copy(host, perfci_sample):
    perfci_sample("mini.copy", float(os.environ["MINI_SPEED"]), "MiB/s", "pass", direction="higher")
"""
SPEEDS = [101.0, 99.5, 100.2, 98.9, 62.0]  # the last run regressed
MIN = "3"  # earlier runs needed for a band (default 5: fewer pytest runs keep this test short)


@pytest.fixture
def results(pytester: pytest.Pytester, samples: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makepyfile(test_speed=SPEED_SUITE, test_fc=FC_SUITE)
    for i, speed in enumerate(SPEEDS):
        monkeypatch.setenv("MINI_SPEED", str(speed))
        pytester.runpytest("test_speed.py", "-p", "no:cacheprovider", "--perfci-results=results",
                           f"--perfci-run-id=weekly-{i}").assert_outcomes(passed=1)
    monkeypatch.setenv("FC_STAT", str(samples / "pmc/local-firecracker-amd-vm-nopmu/perf-stat-x-default.stderr"))
    pytester.runpytest("test_fc.py", "-p", "no:cacheprovider", "--perfci-results=results",
                       f"--perfci-run-id=weekly-{len(SPEEDS)}").assert_outcomes(failed=1, xfailed=1, passed=2)
    return pytester.path / "results"


def test_report_page_in_headless_chromium(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One test, because its input costs six pytest runs: the series, then the page as Chromium draws it."""
    (series,) = build_series(read_local([results]) * 2, min_history=int(MIN))  # read twice: counted once
    assert series.metric == "mini.copy" and series.direction == "higher"
    assert [p.value for p in series.points] == SPEEDS
    assert [p.n for p in series.points] == [0, 0, 0, 3, 4]  # a band from 3 earlier runs on
    assert [p.regressed for p in series.points] == [False] * 4 + [True]
    newest = series.points[-1]
    assert newest.high is None and newest.low is not None and 62.0 < newest.low < 98.9  # one-sided: higher is better
    assert newest.why.startswith("regression: mini.copy = 62 MiB/s on ")
    chart = mermaid(series)
    assert chart.startswith("```mermaid\n%%{init: ") and "\nxychart-beta\n" in chart
    assert 'x-axis ["1", "2", "3", "4", "5"]' in chart  # runs of one day: numbered
    assert "line [101, 99.5, 100.2, 98.9, 62]" in chart

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (./install.sh --dev installs it): the page is not rendered")
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "report"
    assert main(["report", str(results), "-o", str(out), "--title", "weekly perf", "--step-summary",
                 "--min-history", MIN]) == 0
    assert "1 series, 1 regressed in the newest run" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    # self-contained: nothing fetched from anywhere, no script
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page) and "<script" not in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 1
    assert '<td class="failed" data-state="FAILED"' in page and '<td class="absent" data-state="absent"' in page
    # no emoji in the page: offline viewers may lack an emoji font (the step summary keeps them: GitHub has one)
    assert not re.search("[\U0001F000-\U0001FFFF\u2705\u274C\u26AA\u23ED]", page)

    # Measure what Chromium drew: a probe (test-only) reads the laid-out SVG after load.
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", """<pre id="probe"></pre><script>
const charts = [...document.querySelectorAll("div.trend svg")].map(svg => {
  const paths = [...svg.querySelectorAll("path")].filter(p => (p.getAttribute("d") || "").length > 10);
  const drawn = paths.filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; });
  const fill = c => drawn.filter(p => (p.getAttribute("fill") || "").toLowerCase() === c).length;
  const r = svg.getBoundingClientRect();
  return {paths: drawn.length, band: fill("#60a5fa"), regressions: fill("#dc2626"), width: r.width, height: r.height};
});
const cells = [...document.querySelectorAll("table.matrix td")].map(td => [td.dataset.state || "not-run",
  getComputedStyle(td).backgroundColor]);
document.getElementById("probe").textContent = JSON.stringify({charts, cells});
</script></body>"""))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    measured = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL).group(1))  # type: ignore[union-attr]
    (chart,) = measured["charts"]
    assert chart["width"] > 300 and chart["height"] > 150
    assert chart["band"] >= 1 and chart["regressions"] == 1 and chart["paths"] >= 4
    colours = dict(measured["cells"])
    assert colours["FAILED"] != colours["absent"]  # a FAILED cell never looks like an accepted absence

    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,1600", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = Path("/tmp/perfci-report-screenshot.png")  # for a human to look at after the run
    shutil.copy(shot, keep)

    md = summary.read_text()
    assert md == (out / "summary.md").read_text()
    assert "❌ **FAILED** NO-PMU" in md and "⚪ NO-PMU" in md
    assert "**❌ 1 series regressed in the newest run:**" in md and "xychart-beta" in md


def test_report_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.ndjson").write_text("not json\n")
    assert main(["report", str(tmp_path / "bad.ndjson"), "-o", str(tmp_path / "o")]) == 2
    assert "bad.ndjson:1: not JSON" in capsys.readouterr().err
    (tmp_path / "empty.ndjson").write_text("")
    assert main(["report", str(tmp_path / "empty.ndjson"), "-o", str(tmp_path / "o")]) == 2
    assert "no perfci record" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "o"), "--k", "0"]) == 2
    assert not (tmp_path / "o").exists()


def test_step_summary_names_earlier_regressions_under_the_chart() -> None:
    from datetime import UTC, datetime, timedelta

    from pytest_perfci.results.model import Infrastructure, ResultRecord
    from pytest_perfci.results.trends import summary_markdown

    m7 = Infrastructure(provider="ec2", target="m7i.metal-24xl", instance_type="m7i.metal-24xl")
    t0 = datetime(2026, 9, 7, 4, 17, tzinfo=UTC)
    cpis = [0.91, 0.93, 0.90, 0.92, 0.94, 0.91, 1.40, 0.92]  # one bad week, then back
    records = [ResultRecord(name="pmc.cpi", value=v, unit="cycles/instruction", verdict="pass", direction="lower",
                            run_id=f"w{i}", infrastructure=m7, recorded_at=t0 + timedelta(days=7 * i))
               for i, v in enumerate(cpis)]
    md = summary_markdown(build_series(records))
    assert "✅ no series regressed in the newest run" in md
    assert 'x-axis ["09-07", "09-14", "09-21", "09-28", "10-05", "10-12", "10-19", "10-26"]' in md
    assert "regressed earlier: 2026-10-19 (w6, 1.4)" in md
