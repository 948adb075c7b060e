"""A small suite run with --alluredir: labels, steps, environment.properties, attachments, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfci.results.scrub import find_leaks

PEM = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\\n-----END " + \
      "OPENSSH PRIVATE KEY-----"
SUITE = f'''
import pytest

def test_counts(host, perfci_record, perfci_capability):
    out = host.run("echo 21000123,,instructions:u").stdout
    perfci_record.attach("perf stat", out)
    perfci_record.attach("prober JSON", {{"ok": True, "mounted": False}}, "json")
    perfci_record.sample("mini.instructions", 21000123, "count", "pass", reader="echo")
    perfci_capability("cycles", False, "no hardware PMU exposed", host=host)
    # what a careless test might hand over: all of it must be redacted before anyone reads it
    perfci_record.attach("leaky log", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\\n{PEM}")
    print("debug: aws_session_token=IQoJb3JpZ2luX2VjEXAMPLETOKENxyz key AKIAIOSFODNN7EXAMPLE")
    print("{PEM}")

def test_unavailable(host):
    pytest.xfail("resctrl: unavailable and no expectation for this target")
'''


@pytest.fixture
def allure_run(pytester: pytest.Pytester) -> tuple[pytest.RunResult, Path, Path]:
    pytester.mkdir("suites")
    pytester.mkdir("suites/mini")
    (pytester.path / "suites" / "mini" / "test_mini.py").write_text(SUITE)
    result = pytester.runpytest("suites/mini", "--alluredir=allure-results", "--perfci-results=results",
                                "--perfci-run-id=perfci-allure-1", "-p", "no:cacheprovider")
    return result, pytester.path / "allure-results", pytester.path / "results"


def results(alluredir: Path) -> dict[str, dict]:
    docs = [json.loads(p.read_text()) for p in alluredir.glob("*-result.json")]
    return {d["name"]: d for d in docs}


def test_labels_steps_and_attachments(allure_run: tuple[pytest.RunResult, Path, Path]) -> None:
    result, alluredir, _ = allure_run
    result.assert_outcomes(passed=1, xfailed=1)
    tests = results(alluredir)
    counts = tests["test_counts[local]"]
    labels = [(lab["name"], lab["value"]) for lab in counts["labels"]]
    parents = [v for k, v in labels if k == "parentSuite"]
    assert len(parents) == 1 and parents[0].startswith("local/")
    assert ("suite", "mini") in labels and ("subSuite", "test_mini") in labels
    tags = {v for k, v in labels if k == "tag"}
    assert "x86_64" in tags or "arm64" in tags
    assert tags & {"metal", "vm", "virt-unknown"}
    steps = [s["name"].split(":")[0] for s in counts["steps"]]
    assert steps == ["provision", "ready", "execute", "verdict", "teardown"]
    by_step = {s["name"].split(":")[0]: [a["name"] for a in s.get("attachments", [])] for s in counts["steps"]}
    assert by_step["ready"] == ["host facts"]
    assert by_step["execute"] == ["perf stat", "prober JSON", "leaky log"]
    assert by_step["verdict"] == ["perfci samples", "perfci verdicts"]
    verdict_step = next(s for s in counts["steps"] if s["name"].startswith("verdict"))
    samples_src = next(a["source"] for a in verdict_step["attachments"] if a["name"] == "perfci samples")
    samples = json.loads((alluredir / samples_src).read_text())
    assert samples[0]["name"] == "mini.instructions" and samples[0]["value"] == 21000123
    perf_src = next(a["source"] for s in counts["steps"] for a in s.get("attachments", []) if a["name"] == "perf stat")
    assert (alluredir / perf_src).read_text() == "21000123,,instructions:u\n"
    xfailed = tests["test_unavailable[local]"]
    assert xfailed["status"] == "skipped"
    assert [s["name"] for s in xfailed["steps"]][3] == "verdict: xfailed"
    assert xfailed["statusDetails"] == {"message": "resctrl: unavailable and no expectation for this target"}


def test_environment_properties_from_host_facts(allure_run: tuple[pytest.RunResult, Path, Path]) -> None:
    _, alluredir, _ = allure_run
    props = dict(line.split("=", 1) for line in (alluredir / "environment.properties").read_text().splitlines())
    assert props["provider"] == "local" and props["run_id"] == "perfci-allure-1"
    assert props["arch"] in ("x86_64", "arm64") and props["metal"] in ("metal", "VM", "virt?")
    assert props["kernel"] and props["os"] and int(props["nproc"]) >= 1


def test_no_key_material_or_credentials_anywhere(allure_run: tuple[pytest.RunResult, Path, Path]) -> None:
    result, alluredir, resultsdir = allure_run
    assert find_leaks(alluredir) == []
    assert find_leaks(resultsdir) == []
    everything = "".join(p.read_text(errors="replace") for d in (alluredir, resultsdir) for p in d.rglob("*")
                         if p.is_file())
    for secret in ("wJalrXUtnFEMI", "IQoJb3JpZ2luX2Vj", "AKIAIOSFODNN7EXAMPLE", "b3BlbnNzaC1rZXkt", "PRIVATE KEY"):
        assert secret not in everything, secret
    assert "[REDACTED by perfci]" in everything
    # allure-pytest captured the printed secrets itself; the end-of-session sweep redacted them and said so.
    result.stdout.fnmatch_lines(["redacted * secret-looking string(s) in *allure-results"])


def test_without_alluredir_nothing_is_written_for_allure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x(host, perfci_record):\n    perfci_record.attach('a', 'b')\n")
    pytester.runpytest("-p", "no:cacheprovider", "--perfci-results=results").assert_outcomes(passed=1)
    assert not list(pytester.path.glob("**/*-result.json"))


KILLED_SUITE = f'''
import os, signal

def test_prints_secrets(host):
    print("{PEM}")
    print("creds AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    print("aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

def test_killed(host):
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_secrets_are_redacted_as_written_even_when_the_run_is_killed(pytester: pytest.Pytester) -> None:
    """SIGKILL: no end-of-session sweep ever runs, so what allure-pytest wrote must already be clean."""
    pytester.makepyfile(test_killed=KILLED_SUITE)
    result = pytester.runpytest_subprocess("--alluredir=allure-results", "--perfci-results=results",
                                           "-p", "no:cacheprovider", "-p", "no:randomly")
    assert result.ret == -9, result.stdout.str()
    alluredir = pytester.path / "allure-results"
    files = [p for p in alluredir.iterdir() if p.is_file()]
    captured = [p for p in files if p.name.endswith("-attachment.txt")]
    assert captured, f"allure-pytest wrote the first test's captured stdout: {[p.name for p in files]}"
    text = "".join(p.read_text(errors="replace") for p in files)
    assert "[REDACTED by perfci]" in text
    for secret in ("wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE", "b3BlbnNzaC1rZXkt", "PRIVATE KEY"):
        assert secret not in text, secret
    assert find_leaks(alluredir) == []


def test_junitxml_is_scrubbed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_j=f'''
def test_fails(host):
    print("{PEM}")
    assert False, "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
''')
    pytester.runpytest("--junitxml=junit.xml", "--perfci-results=results", "-p", "no:cacheprovider")
    text = (pytester.path / "junit.xml").read_text()
    assert "<testcase" in text and "[REDACTED by perfci]" in text
    assert "wJalrXUtnFEMI" not in text and "PRIVATE KEY" not in text and "b3BlbnNzaC1rZXkt" not in text


VERDICT_SUITE = """
import os
from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import decide
from pytest_perfci.checks.perf_stat import parse_perf_stat
from pytest_perfci.checks.pmc import PmcContext, judge_counter
from pytest_perfci.outcomes import conclude

STAT = parse_perf_stat(Path(os.environ["FC_STAT"]).read_text())
CTX = PmcContext(core_pmu=False, perf_event_paranoid=2, is_root=True)

@pytest.mark.parametrize("expected", [("available", "metal exposes the PMU"), None], ids=["expected", "none"])
def test_cycles(host, perfci_capability, expected):
    v = judge_counter(STAT.get("cycles"), "cycles", CTX)
    perfci_capability("cycles", v.ok, v.reason.value, host=host)
    conclude([decide("cycles", "unavailable", f"{v.reason.value}: {v.detail}", expected)])

def test_crash(host):
    raise RuntimeError("the probe crashed")
"""


@pytest.fixture
def verdict_run(pytester: pytest.Pytester, samples: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    monkeypatch.setenv("FC_STAT", str(samples / "pmc/local-firecracker-amd-vm-nopmu/perf-stat-x-default.stderr"))
    for var, value in {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_NUMBER": "17",
                       "GITHUB_REPOSITORY": "perfci/pytest-perfci", "GITHUB_WORKFLOW": "perf",
                       "GITHUB_SERVER_URL": "https://github.invalid"}.items():
        monkeypatch.setenv(var, value)
    pytester.mkdir("suites")
    pytester.mkdir("suites/pmcmini")
    (pytester.path / "suites" / "pmcmini" / "test_v.py").write_text(VERDICT_SUITE)
    result = pytester.runpytest("suites/pmcmini", "--alluredir=allure-results", "--perfci-results=results",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, xfailed=1)
    return results(pytester.path / "allure-results")


def _steps(doc: dict) -> dict[str, str]:
    return {s["name"].split(":")[0].split(",")[0]: s["status"] for s in doc["steps"]}


def test_the_verdict_step_carries_the_status_and_the_reason_is_said_once(verdict_run: dict[str, dict]) -> None:
    failed, xfailed = verdict_run["test_cycles[local-expected]"], verdict_run["test_cycles[local-none]"]
    assert failed["status"] == "failed" and xfailed["status"] == "skipped"
    assert _steps(failed) == {"provision": "passed", "ready": "passed", "execute": "passed", "verdict": "failed",
                              "teardown": "passed"}
    assert _steps(xfailed)["execute"] == "passed" and _steps(xfailed)["verdict"] == "skipped"
    assert failed["statusDetails"]["message"].startswith(
        "[NO-PMU] cycles: expected available [metal exposes the PMU], observed unavailable: no hardware PMU")
    assert xfailed["statusDetails"]["message"].startswith(
        "[NO-PMU] cycles: unavailable and no expectation for this target: no hardware PMU exposed")
    for doc in (failed, xfailed):
        assert "trace" not in doc["statusDetails"]  # no traceback of perfci internals on deliberate verdicts
        text = json.dumps(doc)
        assert text.count("has no cpu PMU") == 1, text  # the reason once: not in step names, not repeated
        assert "outcomes.py" not in text and "Traceback" not in text
        labels = [(lab["name"], lab["value"]) for lab in doc["labels"]]
        assert ("feature", "pmcmini") in labels and ("story", "cycles") in labels


def test_a_crash_is_broken_in_execute_and_verdict(verdict_run: dict[str, dict]) -> None:
    crash = verdict_run["test_crash[local]"]
    assert crash["status"] == "broken"
    assert _steps(crash)["execute"] == "broken" and _steps(crash)["verdict"] == "broken"
    assert "RuntimeError: the probe crashed" in crash["statusDetails"]["message"]
    assert "test_v.py" in crash["statusDetails"]["trace"]  # a real crash keeps its traceback


def test_categories_are_keyed_on_reason_codes_and_executor_names_the_build(
        verdict_run: dict[str, dict], pytester: pytest.Pytester) -> None:
    import re

    alluredir = pytester.path / "allure-results"
    cats = json.loads((alluredir / "categories.json").read_text())
    failed = verdict_run["test_cycles[local-expected]"]
    xfailed = verdict_run["test_cycles[local-none]"]

    def category(doc: dict) -> str:  # Allure: the first category whose status and regex match
        return next(c["name"] for c in cats if doc["status"] in c["matchedStatuses"]
                    and re.fullmatch(c.get("messageRegex", "[\\s\\S]*"), doc["statusDetails"]["message"]))

    assert category(failed) == "FAILED NO-PMU: no hardware PMU exposed"
    assert category(xfailed) == "absent as expected NO-PMU: no hardware PMU exposed"
    assert category(verdict_run["test_crash[local]"]).startswith("broken")
    executor = json.loads((alluredir / "executor.json").read_text())
    assert executor == {"name": "GitHub Actions", "type": "github", "url": "https://github.invalid/perfci/pytest-perfci",
                        "buildName": "perf #17", "reportName": "perfci", "buildOrder": 17,
                        "buildUrl": "https://github.invalid/perfci/pytest-perfci/actions/runs/4242"}


def test_no_executor_outside_ci() -> None:
    from pytest_perfci.allure_meta import executor

    assert executor({}) is None and executor({"GITHUB_ACTIONS": "true"}) is None
