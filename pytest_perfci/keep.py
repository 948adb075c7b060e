"""``--perfci-keep``: leave what the run created up, and say how to reach it and how to remove it.

A kept run tears nothing down (:meth:`ProviderSession.close` skips ``release_all``). What it does
instead, here:

* :func:`freeze` stops the provider's heartbeat, so ``perfci:expires-at`` (tag and on-host
  deadline) is no longer pushed forward: the instance's self-destruct (cleanup layer 2) still powers
  it off at that time. A kept host is a host to look at, not one to forget.
* :func:`lines` is the terminal summary section "perfci kept": per kept host its ssh command (from
  the provider's ``instances()``), its ``expires-at`` as EC2 has it, and the exact
  ``perfci reap --run-id <id> --yes`` that removes everything of the run sooner.

Providers that create nothing (local, inventory) have no ``instances()``: nothing is listed.
"""

from __future__ import annotations

import contextlib
import shlex
from typing import Any

from pytest_perfci.settings import Settings

TAG_EXPIRES = "perfci:expires-at"


def freeze(provider: Any) -> None:
    """Stop the heartbeat of a kept run (idempotent); nothing else is touched.

    EC2Provider keeps its heartbeat in ``_heartbeat`` (a :class:`userdata.Heartbeat`, whose stop()
    is idempotent); a provider may instead offer a public ``keep()`` that does the same.
    """
    keep = getattr(provider, "keep", None)
    if callable(keep):
        keep()
        return
    heartbeat = getattr(provider, "_heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()


def _expires(provider: Any, ids: list[str]) -> dict[str, str]:
    """instance id -> perfci:expires-at as EC2 lists it now (the heartbeat's last push); {} if unknown."""
    if not ids or getattr(provider, "ec2", None) is None:
        return {}
    out: dict[str, str] = {}
    with contextlib.suppress(Exception):  # the summary must not fail a run over a describe call
        pages = provider.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": ids}]
        )
        for page in pages:
            for res in page.get("Reservations", []):
                for inst in res.get("Instances", []):
                    tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags", []) or []}
                    if TAG_EXPIRES in tags:
                        out[inst["InstanceId"]] = tags[TAG_EXPIRES]
    return out


def reap_command(settings: Settings, region: str | None) -> str:
    """The command that removes everything the run created (instances, key pair, security group)."""
    cmd = ["perfci", "reap", "--run-id", settings.run_id, "--yes"]
    if region:
        cmd += ["--region", region]
    if settings.endpoint_url:
        cmd += ["--endpoint-url", settings.endpoint_url]
    return shlex.join(cmd)


def lines(settings: Settings, provider: Any) -> list[str]:
    """The "perfci kept" section; [] when the provider lists no instances (nothing was created)."""
    instances = getattr(provider, "instances", None)
    if not callable(instances):
        return []
    records = [r for r in instances() if getattr(r, "state", "running") != "terminated"]
    if not records:
        return [f"run {settings.run_id}: --perfci-keep, but nothing was created; nothing kept"]
    region = settings.region
    with contextlib.suppress(Exception):  # EC2Provider.region: the region its clients use
        region = provider.region or region
    expires = _expires(provider, [r.instance_id for r in records])
    head = f"run {settings.run_id}: {len(records)} host(s) kept, nothing torn down (--perfci-keep)"
    out = [f"{head}; the heartbeat has stopped"]
    for rec in records:
        when = expires.get(rec.instance_id, f"unknown (see its {TAG_EXPIRES} tag)")
        out.append(f"{rec.instance_type} {rec.instance_id}: {rec.ssh_command}")
        out.append(f"  expires-at {when}: its self-destruct powers it off (terminates it) then")
    key = records[0].key_path
    out.append(f"remove it all sooner: {reap_command(settings, region)}")
    out.append(f"(the private key {key} stays until you delete it)")
    return out


def report(terminalreporter: Any, settings: Settings, provider: Any) -> None:
    """Write the "perfci kept" section (after stopping the heartbeat, so what it says is true)."""
    freeze(provider)
    text = lines(settings, provider)
    if text:
        terminalreporter.write_sep("=", "perfci kept")
        for line in text:
            terminalreporter.write_line(line)
