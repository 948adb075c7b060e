"""`pytest suites/pmc --instance-type=...` end to end: a moto server for EC2 and a real sshd for the hosts."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.prepare.script import boot_snippet
from pytest_perfci.providers.ec2.userdata import STATE_DIR
from tests.moto_server import MotoServer
from tests.sshd import SshdServer

ROOT = Path(__file__).parents[1]
TYPES = "m7i.large,c7g.large"


def run_pytest(moto: MotoServer, sshd: SshdServer, results: Path, *args: str,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERFCI_", "AWS_"))}
    env.update(moto.env())
    env.update(PERFCI_TEST_RESULTS=str(results), PERFCI_TEST_SSHD_PORT=str(sshd.port),
               PERFCI_TEST_AUTHORIZED_KEYS=str(sshd.workdir / "authorized_keys"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.ec2_harness",
         f"--perfci-results={results}", "--perfci-ssh-user=root", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False,
    )


def created(moto: MotoServer) -> list[dict[str, Any]]:
    """Every instance moto ever launched (terminated ones stay listed): one per RunInstances here."""
    ec2: Any = moto.client("ec2")
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


def leftovers(moto: MotoServer) -> dict[str, list[str]]:
    ec2: Any = moto.client("ec2")
    return {
        "instances": [i["InstanceId"] for i in created(moto) if i["State"]["Name"] != "terminated"],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                            if g["GroupName"] != "default"],
    }


NOTHING: dict[str, list[str]] = {"instances": [], "key_pairs": [], "security_groups": []}


@pytest.fixture
def clean_sshd(sshd_server: SshdServer) -> SshdServer:
    """Only the key the run creates may log in."""
    (sshd_server.workdir / "authorized_keys").write_text("")
    return sshd_server


@pytest.mark.parametrize("workers", [[], ["-n", "3"]], ids=["serial", "xdist-3"])
def test_two_types_provisioned_checked_over_ssh_and_destroyed(
    moto: MotoServer, clean_sshd: SshdServer, tmp_path: Path, workers: list[str]
) -> None:
    results = tmp_path / "results"
    proc = run_pytest(moto, clean_sshd, results, "suites/pmc", f"--instance-type={TYPES}",
                      "--perfci-run-id=e2e-run", "-rx", *workers)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for itype in TYPES.split(","):
        assert f"test_cpi_count[{itype}]" in out, out
    assert "16 xfailed" in out  # 8 tests x 2 types, each over SSH to this PMU-less machine
    instances = created(moto)
    assert sorted(i["InstanceType"] for i in instances) == sorted(TYPES.split(","))  # one RunInstances per type
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["perfci:run-id"] == "e2e-run" and "perfci:expires-at" in tags and tags["perfci:owner"]
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        # the suite's perfci_needs("perf") went into the user data, also under xdist, where the controller
        # collects nothing and hears the needs from the first worker's ask (handoff.py)
        user_data = base64.b64decode(moto.client("ec2").describe_instance_attribute(
            InstanceId=inst["InstanceId"], Attribute="userData")["UserData"]["Value"]).decode()
        assert user_data.endswith(boot_snippet(["perf"], STATE_DIR)), user_data[-600:]
    assert leftovers(moto) == NOTHING
    assert not list((results / ".keys").glob("*.pem")), "private key left on disk"
    assert "perfci: " in proc.stdout  # progress lines reached the terminal


def test_unknown_type_is_one_line_and_creates_nothing(moto: MotoServer, clean_sshd: SshdServer,
                                                      tmp_path: Path) -> None:
    proc = run_pytest(moto, clean_sshd, tmp_path / "r", "suites/pmc", "--instance-type=m7i.metall")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "m7i.metall" in first and "m7i.metal-24xl" in first, first
    assert created(moto) == [] and leftovers(moto) == NOTHING


def test_ami_of_the_wrong_arch_is_refused_before_any_create(moto: MotoServer, clean_sshd: SshdServer,
                                                             tmp_path: Path) -> None:
    ssm: Any = moto.client("ssm")
    arm = ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64")
    proc = run_pytest(moto, clean_sshd, tmp_path / "r", "suites/pmc", "--instance-type=m7i.large",
                      f"--ami={arm['Parameter']['Value']}")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "arm64" in proc.stderr.splitlines()[0] and "x86_64" in proc.stderr.splitlines()[0]
    assert created(moto) == [] and leftovers(moto) == NOTHING


def test_real_endpoint_is_refused(clean_sshd: SshdServer, moto: MotoServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard fails closed: with PERFCI_LOCAL_ONLY=1 an AWS endpoint is never contacted."""
    monkeypatch.setattr(moto, "url", "https://ec2.us-east-1.amazonaws.com")
    proc = run_pytest(moto, clean_sshd, tmp_path / "r", "suites/pmc", "--instance-type=m7i.large")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "PERFCI_LOCAL_ONLY=1" in proc.stderr.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "drop_env", "expect"),
    [
        (["--region=xx-nowhere-9"], (), "xx-nowhere-9"),
        ([], ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"), "credentials"),
        (["--perfci-ssh-cidr=not-a-cidr"], (), "--perfci-ssh-cidr: 'not-a-cidr' is not a CIDR block"),
        (["--perfci-ttl=10s"], (), "--perfci-ttl: '10s' is too short a TTL"),
    ],
    ids=["bad-region", "no-credentials", "bad-cidr", "short-ttl"],
)
def test_bad_input_is_one_line_and_creates_nothing(
    moto: MotoServer, clean_sshd: SshdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    args: list[str], drop_env: tuple[str, ...], expect: str,
) -> None:
    env = moto.env()
    for key in drop_env:
        env.pop(key)
    monkeypatch.setattr(moto, "env", lambda region="us-east-1": env)
    proc = run_pytest(moto, clean_sshd, tmp_path / "r", "suites/pmc", "--instance-type=m7i.large", *args)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("ERROR: ") and expect in first, first
    assert created(moto) == [] and leftovers(moto) == NOTHING


def test_marker_exclusion_is_decided_from_the_catalogue_before_any_create(
        moto: MotoServer, clean_sshd: SshdServer, tmp_path: Path) -> None:
    """An arch("arm64") or metal test on m7i.large is skipped from the catalogue: no RunInstances at all."""
    suite = tmp_path / "test_marks.py"
    suite.write_text("import pytest\n\n@pytest.mark.arch('arm64')\ndef test_arm(host):\n    pass\n\n"
                     "@pytest.mark.metal\ndef test_metal(host):\n    pass\n")
    proc = run_pytest(moto, clean_sshd, tmp_path / "results", str(suite), "--instance-type=m7i.large", "-rs")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "target m7i.large is x86_64 (m7i.large), test needs arch arm64" in out
    assert "target m7i.large is a virtualised instance type (m7i.large), test needs metal" in out
    assert created(moto) == [] and leftovers(moto) == NOTHING


def test_unknown_type_in_a_marker_is_a_usage_error_not_a_silent_skip(
        moto: MotoServer, clean_sshd: SshdServer, tmp_path: Path) -> None:
    suite = tmp_path / "test_typo.py"
    suite.write_text("import pytest\n\n@pytest.mark.instance_type('m7i.lagre')\ndef test_x(host):\n    pass\n")
    proc = run_pytest(moto, clean_sshd, tmp_path / "results", str(suite), "--instance-type=m7i.large")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if "m7i.lagre" in ln)
    assert "names no instance type in the catalogue; closest: m7i.large" in line, line
    assert created(moto) == []
