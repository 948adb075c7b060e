"""The one way perfci's stdlib-only probes (pytest_perfci/probes/) reach a host under test.

Each install goes to a fresh private temp dir (mktemp -d: mode 0700, a name nobody can pre-create),
together with the probes the script imports from beside itself, and is removed when the suite is done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Final

from pytest_perfci.hosts.base import Host

# script -> every file it needs in its directory (resctrl_probe counts LLC misses with pmc_reader).
PROBES: Final = {
    "pmc_reader.py": ("pmc_reader.py",),
    "resctrl_probe.py": ("resctrl_probe.py", "pmc_reader.py"),
    "gpu_probe.py": ("gpu_probe.py",),
}


def install_probe(host: Host, script: str) -> str:
    """Copy `script` and what it imports to a private temp dir on the host; returns the script's remote path."""
    if script not in PROBES:
        raise ValueError(f"unknown probe {script!r}; probes: {', '.join(PROBES)}")
    remote_dir = host.run("mktemp -d /tmp/perfci-probe.XXXXXX", timeout=30).stdout.strip()
    for name in PROBES[script]:
        with resources.as_file(resources.files("pytest_perfci.probes").joinpath(name)) as local_path:
            host.put(local_path, f"{remote_dir}/{name}")
    return f"{remote_dir}/{script}"


@contextmanager
def installed_probe(host: Host, script: str) -> Iterator[str]:
    """install_probe for the length of a with-block (a session fixture); the temp dir goes afterwards."""
    path = install_probe(host, script)
    try:
        yield path
    finally:
        host.run(["rm", "-rf", path.rsplit("/", 1)[0]], check=False)
