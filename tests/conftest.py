"""Fixtures shared by the framework's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SAMPLES = Path(__file__).parent / "data" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """Root of the recorded real outputs (copied from shared/samples, sources in each README)."""
    return SAMPLES
