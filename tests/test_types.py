"""mypy stays clean on the package (with the boto3 stubs of EC2/S3/SSM), and strict on the pure layer.

The same check as `tox -e lint`, run here so that a type error fails the unit tests too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


def test_mypy_is_clean_on_the_package() -> None:
    proc = _mypy("pytest_perfci")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_boto3_stubs_type_the_clients(tmp_path: Path) -> None:
    """aws.clients.client(..., "ec2") is an EC2Client to mypy, so a misspelt API call is an error."""
    probe = ROOT / "pytest_perfci" / "aws" / "clients.py"
    shadow = probe.read_text() + (
        "\n\ndef _typed(sess: boto3.Session) -> None:\n"
        "    client(sess, 'ec2').describe_instancez()\n"
        "    s3_client().put_objekt(Bucket='b', Key='k')\n"
    )
    path = tmp_path / "clients.py"
    path.write_text(shadow)
    proc = _mypy("--shadow-file", str(probe), str(path), str(probe))
    assert '"EC2Client" has no attribute "describe_instancez"' in proc.stdout, proc.stdout
    assert '"S3Client" has no attribute "put_objekt"' in proc.stdout, proc.stdout


def test_the_pure_layer_is_checked_strictly(tmp_path: Path) -> None:
    """An untyped function in models/ (or checks/) is an error there, and only there."""
    untyped = "\n\ndef untyped(x):\n    return x\n"
    errors = {}
    for rel in ("pytest_perfci/models/procfs.py", "pytest_perfci/checks/expectations.py", "pytest_perfci/procs.py"):
        probe = ROOT / rel
        path = tmp_path / probe.name
        path.write_text(probe.read_text() + untyped)
        errors[rel] = _mypy("--shadow-file", str(probe), str(path), str(probe)).stdout
    assert "Function is missing a type annotation" in errors["pytest_perfci/models/procfs.py"]
    assert "Function is missing a type annotation" in errors["pytest_perfci/checks/expectations.py"]
    assert "Function is missing a type annotation" not in errors["pytest_perfci/procs.py"]  # not pure: default rules
