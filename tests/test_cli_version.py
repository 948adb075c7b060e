"""`perfci --version`: the installed console script says which perfci it is."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path


def test_version_from_the_installed_console_script() -> None:
    script = Path(sys.executable).with_name("perfci")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"perfci {version('pytest-perfci')}"
