"""The one spelling of a CPU architecture: x86_64 or arm64, whatever uname, lscpu, a marker or a user wrote."""

from __future__ import annotations

from typing import Final

ARCHES: Final = ("x86_64", "arm64")
# Every spelling seen in uname -m, lscpu, Go/Debian (amd64, arm64), EC2 (x86_64, arm64) and by hand.
_SPELLINGS: Final = {
    "x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64",
    "arm64": "arm64", "aarch64": "arm64",
}


def normalise_arch(machine: str) -> str:
    """x86_64 or arm64 for every known spelling; any other text lowered as is; "unknown" for blank.

    Unknown spellings are kept rather than refused so that a caller that validates (markers, queries)
    can name the bad value in its error: `normalise_arch(x) not in ARCHES`.
    """
    m = machine.strip().lower()
    return _SPELLINGS.get(m, m or "unknown")
