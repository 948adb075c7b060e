"""Issue 8 end to end: the README's `pytest suites/pmc --instance-type=m7i.metal`, queries and query markers,
against a moto server (real AWS catalogue) and a real sshd (see tests/test_ec2_e2e.py for the harness)."""

from __future__ import annotations

import collections
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.moto_server import MotoServer
from tests.sshd import SshdServer
from tests.test_ec2_e2e import NOTHING, created, leftovers, run_pytest

ALIAS_LINE = "perfci: m7i.metal -> m7i.metal-24xl (96 vCPU, smallest metal size in m7i; name a size to choose another)"

# Loaded by the pytest under test (controller and xdist workers): appends "PID OPERATION" per AWS API call.
COUNTING_CONFTEST = '''
import os
import botocore.client

_make_api_call = botocore.client.BaseClient._make_api_call


def _counted(self, operation_name, api_params):
    with open(os.environ["ALIAS_E2E_CALLS"], "a") as fh:
        fh.write(f"{os.getpid()} {operation_name} {api_params.get('LocationType', '')}\\n")
    return _make_api_call(self, operation_name, api_params)


botocore.client.BaseClient._make_api_call = _counted
'''


@pytest.fixture
def sshd_for_run(sshd_server: SshdServer) -> SshdServer:
    """Only the key the run creates may log in."""
    (sshd_server.workdir / "authorized_keys").write_text("")
    return sshd_server


def test_the_readme_command_line_runs_end_to_end(moto: MotoServer, sshd_for_run: SshdServer, tmp_path: Path) -> None:
    """`pytest suites/pmc --instance-type=m7i.metal`: m7i.metal is not an EC2 type; the run says what it picked."""
    junit = tmp_path / "junit.xml"
    proc = run_pytest(moto, sshd_for_run, tmp_path / "results", "suites/pmc", "--instance-type=m7i.metal",
                      "--perfci-run-id=alias-run", "-rfx", f"--junitxml={junit}")
    out = proc.stdout + proc.stderr
    # The suite ran to its verdicts: expectations.toml says a real m7i.metal-24xl counts cycles and
    # more, and the sshd "instance" is this PMU-less VM, so the six expected-available counters fail
    # (naming the expectation of the RESOLVED type) and the two without an expectation xfail.
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "6 failed, 2 xfailed" in out, out
    assert out.count("expected available [intel/optimization-zone hardware/PMU/AWS m7i.metal.24xlarge.events.csv "
                     "(metal)], observed unavailable") >= 6, out
    assert ALIAS_LINE in proc.stderr.splitlines(), out  # printed at configure time, before anything exists
    assert "test_cpi_count[m7i.metal-24xl]" in out and "[m7i.metal]" not in out, out
    assert [i["InstanceType"] for i in created(moto)] == ["m7i.metal-24xl"]  # one RunInstances, the real name
    assert leftovers(moto) == NOTHING
    cases = ET.parse(junit).getroot().iter("testcase")
    requested = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert requested and all(props.get("perfci_requested") == "m7i.metal" for props in requested.values()), requested


def test_an_over_broad_query_is_a_usage_error_and_creates_nothing(
    moto: MotoServer, sshd_for_run: SshdServer, tmp_path: Path
) -> None:
    proc = run_pytest(moto, sshd_for_run, tmp_path / "r", "suites/pmc", "--instance-type=c7g.metal,metal=true")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("ERROR: perfci: query 'metal=true' matches "), first
    assert "instance types in us-east-1, more than --perfci-max-types=8: a1.metal, c5.metal," in first, first
    assert created(moto) == [] and leftovers(moto) == NOTHING  # zero RunInstances


def test_query_markers_and_a_cli_query_under_xdist_with_one_catalogue_listing(
    moto: MotoServer, sshd_for_run: SshdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(COUNTING_CONFTEST)
    (suite / "test_q.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.instance_type(metal=True, arch="x86_64", vendor="intel")
        def test_intel_metal(host):
            pass

        @pytest.mark.instance_type("arch=arm64,vendor=aws")
        def test_graviton(host):
            pass

        @pytest.mark.instance_type("m7i.metal")
        def test_by_alias(host):
            pass
    '''))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("ALIAS_E2E_CALLS", str(calls))
    proc = run_pytest(moto, sshd_for_run, tmp_path / "results", str(suite), "-n", "2", "-rs", "-v",
                      "--instance-type=m7i.metal;arch=arm64,metal=true,family=c7g")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "arch=arm64,metal=true,family=c7g -> c7g.metal (1 type in us-east-1)" in out, out
    for passed in ("test_intel_metal[m7i.metal-24xl]", "test_graviton[c7g.metal]", "test_by_alias[m7i.metal-24xl]"):
        assert any(passed in line and "PASSED" in line for line in out.splitlines()), passed
    assert "target c7g.metal (c7g.metal) does not match instance_type(metal=True, arch='x86_64', vendor='intel')" in out
    assert "target m7i.metal-24xl (m7i.metal-24xl) does not match instance_type('arch=arm64,vendor=aws')" in out
    assert "3 passed, 3 skipped" in out, out
    assert sorted(i["InstanceType"] for i in created(moto)) == ["c7g.metal", "m7i.metal-24xl"]
    assert leftovers(moto) == NOTHING
    counted = collections.Counter(tuple(line.split()[1:]) for line in calls.read_text().splitlines())
    pids = {line.split()[0] for line in calls.read_text().splitlines() if "DescribeInstanceTypes" in line}
    assert counted[("DescribeInstanceTypes",)] == 1, counted  # one listing for the session, workers adopt it
    assert counted[("DescribeInstanceTypeOfferings", "region")] == 1, counted
    assert len(pids) == 1
