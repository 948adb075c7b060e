"""``--perfci-keep``: leave what the run created up, and say how to reach it and how to remove it.

A kept run tears nothing down (:meth:`ProviderSession.close` skips ``release_all``). What it does
instead, here:

* :func:`freeze` calls the provider's ``keep()``: EC2 stops its heartbeat, so ``perfci:expires-at``
  (tag and on-host deadline) is no longer pushed forward and the instance's self-destruct (cleanup
  layer 2) still powers it off at that time. A kept host is a host to look at, not one to forget.
* :func:`lines` is the terminal summary section "perfci kept": per kept host (the provider's
  ``kept()``) its ssh command and its ``expires-at`` as the cloud has it, and the exact
  ``perfci reap --run-id <id> --yes`` that removes everything of the run sooner.

Providers whose ``kept()`` is None (local, inventory create nothing; kops says its own line in the
suite) get no section.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

from pytest_perfci.providers.base import Provider
from pytest_perfci.settings import Settings
from pytest_perfci.tags import TAG_EXPIRES

DEFAULT_RESULTS = Path("perfci-results")  # `perfci reap --results`'s default too


def freeze(provider: Provider) -> None:
    """Stop extending the lifetime of a kept run (idempotent); nothing else is touched."""
    provider.keep()


def reap_command(settings: Settings, region: str | None) -> str:
    """The command that removes everything the run created (instances, key pair, security group)."""
    cmd = ["perfci", "reap", "--run-id", settings.run_id, "--yes"]
    if region:
        cmd += ["--region", region]
    if settings.endpoint_url:
        cmd += ["--endpoint-url", settings.endpoint_url]
    if Path(settings.results) != DEFAULT_RESULTS:  # else the reaper looks for the key file in the wrong .keys/
        cmd += ["--results", str(settings.results)]
    return shlex.join(cmd)


def provider_region(provider: Provider) -> str | None:
    """The provider's region for the reap command, or None when asking for it fails (no credentials)."""
    with contextlib.suppress(Exception):
        return provider.region
    return None


def lines(settings: Settings, provider: Provider) -> list[str]:
    """The "perfci kept" section; [] when the provider lists no kept hosts (kept() is None)."""
    kept = provider.kept()
    if kept is None:
        return []
    if not kept:
        return [f"run {settings.run_id}: --perfci-keep, but nothing was created; nothing kept"]
    region = settings.region
    with contextlib.suppress(Exception):  # e.g. EC2's region needs its clients
        region = provider.region or region
    head = f"run {settings.run_id}: {len(kept)} host(s) kept, nothing torn down (--perfci-keep)"
    out = [f"{head}; the heartbeat has stopped"]
    for host in kept:
        when = host.expires_at or f"unknown (see its {TAG_EXPIRES} tag)"
        out.append(f"{host.name} {host.resource_id}: {host.ssh_command}")
        out.append(f"  expires-at {when}: its self-destruct powers it off (terminates it) then")
    out.append(f"remove it all sooner: {reap_command(settings, region)}")
    if kept[0].key_path:
        out.append(f"(the private key {kept[0].key_path} stays until you delete it)")
    return out


def report(terminalreporter: object, settings: Settings, provider: Provider) -> None:
    """Write the "perfci kept" section (after stopping the heartbeat, so what it says is true)."""
    freeze(provider)
    text = lines(settings, provider)
    if text:
        terminalreporter.write_sep("=", "perfci kept")  # type: ignore[attr-defined]
        for line in text:
            terminalreporter.write_line(line)  # type: ignore[attr-defined]
