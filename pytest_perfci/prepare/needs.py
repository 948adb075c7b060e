"""What a host needs, and which packages give it on each family of images. Pure: no I/O.

Why a table and not a package name per suite: the same tool ships under different names (perf is
`perf` on Amazon Linux/RHEL, `linux-perf` on Debian, and on Ubuntu a kernel-matched
`linux-tools-$(uname -r)` plus the flavour's meta package, e.g. `linux-tools-aws`). A need this table
does not know is a command of that name in a package of that name, which fits most tools
(stress-ng, fio, numactl).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

FAMILIES: tuple[str, ...] = ("dnf", "apt-ubuntu", "apt-debian")
_NAME = re.compile(r"^[a-z0-9][a-z0-9+._-]{0,63}$")


class Tool(BaseModel):
    """One need: how to tell it is there (and its version), and the packages per image family.

    Package names may use the shell words `$kr` (uname -r) and `$flavour` (the kernel's last
    dash-separated part: aws, generic, azure), expanded on the host."""

    model_config = ConfigDict(frozen=True)

    name: str
    check: str  # prints the version on stdout and exits 0 when the tool works
    packages: dict[str, tuple[str, ...]]


KNOWN: dict[str, Tool] = {
    "perf": Tool(
        name="perf",
        check="perf --version",
        packages={
            "dnf": ("perf",),
            "apt-ubuntu": ("linux-tools-$kr", "linux-tools-$flavour"),
            "apt-debian": ("linux-perf",),
        },
    ),
    # suites/net: the same package name everywhere; the check prints the version.
    "iperf3": Tool(
        name="iperf3",
        check="iperf3 --version",
        packages={f: ("iperf3",) for f in ("dnf", "apt-ubuntu", "apt-debian")},
    ),
    "sockperf": Tool(
        name="sockperf",
        check="sockperf --version 2>&1 | grep -m1 version",
        packages={f: ("sockperf",) for f in ("dnf", "apt-ubuntu", "apt-debian")},
    ),
}


class NeedError(ValueError):
    pass


def tool(name: str) -> Tool:
    """The Tool for a need; an unknown but well-formed name is a command shipped in a package of that name."""
    if name in KNOWN:
        return KNOWN[name]
    if not _NAME.match(name):
        raise NeedError(
            f"perfci_needs: {name!r} is not a tool name (lower-case letters, digits, '+._-'; e.g. perf, stress-ng)"
        )
    return Tool(name=name, check=f"command -v {name}", packages={f: (name,) for f in FAMILIES})


def normalise(needs: Iterable[str]) -> tuple[str, ...]:
    """Sorted, without duplicates, each checked (NeedError names the bad one)."""
    return tuple(sorted({tool(n).name for n in needs}))


def packages(need: str, fam: str, kernel: str) -> tuple[str, ...]:
    """The packages of a need on a family, with $kr/$flavour expanded for this kernel release."""
    flavour = kernel.rsplit("-", 1)[-1] if "-" in kernel else kernel
    return tuple(p.replace("$kr", kernel).replace("$flavour", flavour) for p in tool(need).packages.get(fam, ()))


def install_command(fam: str, pkgs: Iterable[str], *, sudo: bool = True) -> str:
    """The one command a person would type to install these packages (for the "not prepared" line)."""
    names = " ".join(pkgs)
    pre = "sudo " if sudo else ""
    if fam == "dnf":
        return f"{pre}dnf install -y {names}"
    return f"{pre}apt-get update && {pre}apt-get install -y {names}"
