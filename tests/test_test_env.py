"""A .venv made before a test extra was added says so in one line, not a ModuleNotFoundError in one module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

HIDE_PYTE = '''
from importlib import metadata

_version = metadata.version


def version(name):
    if name == "pyte":
        raise metadata.PackageNotFoundError(name)
    return _version(name)


metadata.version = version
'''


def test_a_stale_environment_names_what_is_missing_and_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(HIDE_PYTE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_cli_version.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "the test environment lacks pyte (pytest-perfci's test extra): run ./install.sh --dev" in out, out
    assert "Traceback" not in out, out
