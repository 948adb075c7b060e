"""Run the preparation script on a host and read what it did (the I/O half of preparation)."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import CommandTimeout
from pytest_perfci.models.preparation import Preparation, Prepared, failure_reason, parse
from pytest_perfci.prepare.script import STATE_FILE, Mode, render

# A package install on a fresh image (apt-get update, a kernel tools package) can take minutes.
INSTALL_TIMEOUT = 1800.0


def run(host: Host, needs: Sequence[str], mode: Mode, *, state_file: str = STATE_FILE,
        timeout: float = INSTALL_TIMEOUT) -> Preparation:
    """plan: look as the login user, change nothing. install/simulate: as root; an install also
    leaves its records in `state_file`, so host facts (on every connection, xdist workers too) say
    what this run installed and its version."""
    if not needs:
        return Preparation(host=host.name)
    body = render(needs, mode)
    if mode == "plan":
        result = host.run(["sh", "-c", body], timeout=60, check=False)
    else:
        q = shlex.quote
        cmd = body
        if mode == "install":
            d = q(state_file.rsplit("/", 1)[0] or "/")
            cmd = (f"mkdir -p {d} && ( {body} ) > {q(state_file)}.tmp 2>&1; rc=$?; "
                   f"mv -f {q(state_file)}.tmp {q(state_file)}; cat {q(state_file)}; exit $rc")
        try:
            result = host.sudo(["sh", "-c", cmd], timeout=timeout, check=False)
        except CommandTimeout as exc:
            return Preparation(host=host.name, items=tuple(
                Prepared(need=n, status="failed", reason=f"installing took longer than {exc.timeout:g}s")
                for n in needs))
    prep = parse(host.name, result.stdout)
    seen = {p.need for p in prep.items}
    lost = [n for n in needs if n not in seen]
    if lost:  # the script never ran (sudo refused, no sh): every need gets the shell's own words
        words = f"{result.stdout}\n{result.stderr}".strip()
        reason = failure_reason("", words, result.exited)
        prep = Preparation(host=host.name, items=prep.items + tuple(
            Prepared(need=n, status="failed", reason=reason, log=words) for n in lost))
    return prep


def read_boot(host: Host, *, state_file: str = STATE_FILE) -> Preparation:
    """What the boot-time run (EC2 user data) left; empty when it did not run."""
    result = host.run(["cat", state_file], timeout=60, check=False)
    return parse(host.name, result.stdout if result.exited == 0 else "")


def refresh_facts(host: Host) -> None:
    """Forget cached facts (functools.cached_property) so the next read sees what preparation changed."""
    if isinstance(getattr(type(host), "facts", None), functools.cached_property):
        vars(host).pop("facts", None)
