"""Repository-root conftest: fixtures every suite in suites/ shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfci.checks.expectations import Expectations, load_expectations


@pytest.fixture(scope="module")
def expectations(request: pytest.FixtureRequest) -> Expectations:
    """The expectations.toml beside the suite's test module (empty when the suite has none)."""
    path = Path(request.module.__file__).parent / "expectations.toml"
    return load_expectations(path) if path.is_file() else Expectations()
