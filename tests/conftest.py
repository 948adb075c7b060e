"""Fixtures shared by the framework's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
