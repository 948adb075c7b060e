"""Matrix cells link to their test in a generated Allure report (the real `allure generate`, npm
allure-commandline + Java 17, the same command as `tox -e report` and perf.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_perfci.cli import main
from tests.test_results_states import SUITE as FC_SUITE

pytest.importorskip("vl_convert", reason="perfci report needs the report extra (./install.sh --dev installs it)")
ALLURE = ["npx", "--yes", "allure-commandline@2.46.1"]


def test_cells_link_to_their_allure_test(pytester: pytest.Pytester, samples: Path, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("java") is None or shutil.which("npx") is None:
        pytest.skip("allure generate needs Java 17 and npx (Node.js); neither is a Python package")
    monkeypatch.setenv("FC_STAT", str(samples / "pmc/local-firecracker-amd-vm-nopmu/perf-stat-x-default.stderr"))
    pytester.makepyfile(test_fc=FC_SUITE)
    pytester.runpytest("-p", "no:cacheprovider", "--perfci-results=results", "--perfci-run-id=linked-1",
                       "--alluredir=allure-results").assert_outcomes(failed=1, xfailed=1, passed=2)
    site = tmp_path / "site"
    gen = subprocess.run([*ALLURE, "generate", "--clean", str(pytester.path / "allure-results"), "-o",
                          str(site / "allure")], capture_output=True, text=True, timeout=600, check=False)
    if gen.returncode != 0:
        pytest.skip(f"allure-commandline could not run here: {gen.stderr.strip()[-300:]}")

    assert main(["report", str(pytester.path / "results"), "-o", str(site / "perfci"),
                 "--allure-report", str(site / "allure")]) == 0
    page = (site / "perfci" / "index.html").read_text()
    links = re.findall(r'<td class="(\w+)"[^>]*><a href="\.\./allure/index\.html#testresult/(\w+)">', page)
    assert len(links) == 4 and {cls for cls, _ in links} == {"failed", "absent", "zero", "ok"}
    uid = dict(links)["failed"]
    case = (site / "allure" / "data" / "test-cases" / f"{uid}.json").read_text()
    assert '"name":"test_counter[local-cycles]"' in case.replace(" ", "") and '"status":"failed"' in case.replace(" ", "")

    # with the published URL the step summary links too
    assert main(["report", str(pytester.path / "results"), "-o", str(site / "perfci2"), "--allure-report",
                 str(site / "allure"), "--allure-url", "https://perf.example.invalid/run/"]) == 0
    md = (site / "perfci2" / "summary.md").read_text()
    assert f"[❌ **FAILED** NO-PMU¹](https://perf.example.invalid/run/#testresult/{uid})" in md

    capsys.readouterr()
    assert main(["report", str(pytester.path / "results"), "-o", str(tmp_path / "x"), "--allure-report",
                 str(pytester.path / "allure-results")]) == 2
    assert "not a generated Allure report (no data/test-cases/)" in capsys.readouterr().err
