"""What preparation did on a host, read from the preparation script's output (or the file the boot-time run left).

Pure. A package that cannot be installed becomes a named reason a verdict can quote ("apt: no package
linux-tools-6.8.0-1015-aws in the configured sources"), read from the package manager's own words.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["present", "installed", "simulated", "failed", "missing", "unsupported"]
MARK = "@@perfci-prepare"
LOG = "| "


class Prepared(BaseModel):
    """One need on one host.

    present: there before we came; installed: we installed it (version after); simulated: the
    package manager's dry run said it would install; failed: installing failed (reason);
    missing: not there and not ours to install (command says how); unsupported: no known
    package manager on the image."""

    model_config = ConfigDict(frozen=True)

    need: str
    status: Status
    family: str = ""
    packages: tuple[str, ...] = ()
    version: str = ""
    command: str = ""
    reason: str = ""
    log: str = ""

    @property
    def usable(self) -> bool:
        return self.status in ("present", "installed")

    def line(self) -> str:
        """One progress/Allure line."""
        pkgs = " ".join(self.packages)
        if self.status == "present":
            return f"{self.need} present ({self.version})"
        if self.status == "installed":
            return f"{self.need} installed: {pkgs} -> {self.version}"
        if self.status == "simulated":
            return f"{self.need} would be installed (dry run): {pkgs}"
        if self.status == "missing":
            return f"{self.need} missing; not installed on a machine this run did not create: {self.command}"
        return f"{self.need} not installed: {self.reason}"


class Preparation(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    items: tuple[Prepared, ...] = ()

    def get(self, need: str) -> Prepared | None:
        return next((p for p in self.items if p.need == need), None)

    def installed(self) -> tuple[str, ...]:
        """What this run installed, with versions: 'perf: linux-perf (perf version 6.1.158)'."""
        return tuple(f"{p.need}: {' '.join(p.packages)} ({p.version})" for p in self.items if p.status == "installed")


# (pattern in the package manager's output, reason) - first hit wins; {pkg} is the package the line names.
_APT: tuple[tuple[str, str], ...] = (
    (r"Unable to locate package (\S+)", "apt: no package {pkg} in the configured sources"),
    (r"Package '?(\S+?)'? has no installation candidate", "apt: package {pkg} is known but has no installable version"),
    (r"(?:Could not open lock file|Unable to acquire the dpkg frontend lock).*(?:Permission denied|are you root)",
     "apt: not root (dpkg lock permission denied); run with root or passwordless sudo"),
    (r"Could not get lock|is held by process", "apt: another package manager holds the dpkg lock"),
    (r"(?:Temporary failure resolving|Failed to fetch|Could not resolve)", "apt: the package sources cannot be reached"),
    (r"Unmet dependencies|held broken packages", "apt: unmet dependencies"),
)
_DNF: tuple[tuple[str, str], ...] = (
    (r"No match for argument: (\S+)", "dnf: no package {pkg} in the enabled repositories"),
    (r"Unable to find a match:? ?(\S*)", "dnf: no package {pkg} in the enabled repositories"),
    (r"Failed to download metadata for repo '([^']+)'", "dnf: the repository {pkg} cannot be reached"),
    (r"This command has to be run with superuser privileges|You need to be root",
     "dnf: not root; run with root or passwordless sudo"),
    (r"Problem: .*|conflicting requests|nothing provides", "dnf: dependency problem"),
)
_SUDO = re.compile(r"sudo: (a password is required|a terminal is required)")


def failure_reason(fam: str, output: str, exit_status: int | None = None) -> str:
    """The named reason of a failed install, from the package manager's output; the first line of
    errors when no pattern knows it, so the verdict still quotes the tool's own words."""
    if _SUDO.search(output):
        return "sudo needs a password: preparation needs root or passwordless sudo"
    rules = _DNF if fam == "dnf" else _APT if fam.startswith("apt") else ()
    for pattern, reason in rules:
        m = re.search(pattern, output)
        if m:
            return reason.format(pkg=(m.group(1) if m.groups() and m.group(1) else "?"))
    errors = [ln.strip() for ln in output.splitlines() if re.match(r"\s*(E:|Error:?)\s", ln)]
    tail = errors[0] if errors else next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
    what = f"exit status {exit_status}" if exit_status is not None else "failed"
    return f"{fam or 'package manager'} {what}" + (f": {tail}" if tail else "")


def parse(host: str, text: str) -> Preparation:
    """Records from the preparation script's output: a MARK line per need, its log lines after it."""
    items: list[Prepared] = []
    current: dict[str, object] | None = None
    log: list[str] = []

    def flush() -> None:
        if current is None:
            return
        fields = dict(current)
        fields["log"] = "\n".join(log)
        if fields["status"] == "failed" and not fields.get("reason"):
            rc = fields.pop("rc", None)
            fields["reason"] = failure_reason(str(fields.get("family", "")), "\n".join(log),
                                              int(str(rc)) if str(rc).isdigit() else None)
        fields.pop("rc", None)
        items.append(Prepared.model_validate(fields))

    for line in text.splitlines():
        if line.startswith(MARK + "\t"):
            flush()
            parts = line.split("\t")[1:]
            parts += [""] * (6 - len(parts))
            need, status, fam, pkgs, version, rest = parts[:6]
            current = {"need": need, "status": status, "family": fam, "packages": tuple(pkgs.split()),
                       "version": version}
            if status == "missing":
                current["command"] = rest
            elif status == "failed":
                current["rc"] = rest
            elif status == "unsupported":
                current["reason"] = f"no known package manager on this image ({rest or 'unknown /etc/os-release ID'})"
            log = []
        elif line.startswith(LOG) and current is not None:
            log.append(line[len(LOG):])
    flush()
    return Preparation(host=host, items=tuple(items))
