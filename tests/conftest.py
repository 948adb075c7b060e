"""Fixtures shared by the framework's own tests."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement


def _missing_extras(extras: tuple[str, ...] = ("test",)) -> list[str]:
    """What of pytest-perfci's test extra this environment lacks: a .venv made before a package joined the
    extra fails otherwise with a bare ModuleNotFoundError deep in one test module. (The report extra is
    optional: its tests skip without it.)"""
    missing = []
    for line in metadata.requires("pytest-perfci") or []:
        req = Requirement(line)
        if req.marker is None or not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        try:
            metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(req.name)
    return missing


if _missing := _missing_extras():
    pytest.exit(f"the test environment lacks {', '.join(_missing)} (pytest-perfci's test extra): "
                "run ./install.sh --dev", returncode=pytest.ExitCode.USAGE_ERROR)

pytest_plugins = ["pytester", "tests.moto_server", "tests.sshd"]

SAMPLES = Path(__file__).parent / "data" / "samples"

# Fail closed: nothing in the framework's tests may reach a real AWS endpoint, and every pytest they
# start inherits this. Dummy credentials make an accidental real call fail at AWS's door too.
os.environ["PERFCI_LOCAL_ONLY"] = "1"
for _key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def samples() -> Path:
    """Root of the recorded real outputs (copied from shared/samples, sources in each README)."""
    return SAMPLES
