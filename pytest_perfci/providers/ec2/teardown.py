"""Destroy what a run created, from its ledger alone: instances first, then key pair and security group.

Works in a fresh process (a new provider object, `perfci reap --ledger`): everything it needs is in
the ledger. Intents without a created line (the process died between the call and the next line)
are resolved by listing instances tagged perfci:run-id and matching their ClientToken; key pairs and
security groups by their deterministic names. Already-gone is success, so running it twice is fine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from pytest_perfci.cleanup.ledger import Entry, Ledger
from pytest_perfci.cleanup.reaper import delete_security_group
from pytest_perfci.tags import TAG_RUN_ID

Progress = Callable[[str], None]

GONE = frozenset({
    "InvalidInstanceID.NotFound",
    "InvalidKeyPair.NotFound",
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
})
_INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


class TeardownError(RuntimeError):
    """Something could not be destroyed; str() names it and what to run next."""


@dataclass
class TeardownReport:
    terminated: list[str] = field(default_factory=list)
    key_pairs: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _instances_by_token(ec2: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """ClientToken -> instance, for instances tagged with the run id (moto cannot filter on client-token)."""
    out: dict[str, dict[str, Any]] = {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]}]
    )
    for page in pages:
        for res in page["Reservations"]:
            for inst in res["Instances"]:
                if inst.get("ClientToken"):
                    out[inst["ClientToken"]] = inst
    return out


def _terminate(ec2: Any, ids: list[str], report: TeardownReport) -> list[str]:
    """One TerminateInstances for all ids; ids EC2 says do not exist are dropped and the call repeated."""
    remaining = list(ids)
    while remaining:
        try:
            ec2.terminate_instances(InstanceIds=remaining)
            return remaining
        except ClientError as e:
            if _code(e) != "InvalidInstanceID.NotFound":
                raise
            missing = set(_INSTANCE_ID.findall(str(e.response.get("Error", {}).get("Message", ""))))
            missing &= set(remaining)
            if not missing:  # cannot tell which: fall back to one call each
                missing = set()
                for iid in list(remaining):
                    try:
                        ec2.terminate_instances(InstanceIds=[iid])
                    except ClientError as e2:
                        if _code(e2) != "InvalidInstanceID.NotFound":
                            raise
                        missing.add(iid)
                report.already_gone.extend(sorted(missing))
                return [i for i in remaining if i not in missing]
            report.already_gone.extend(sorted(missing))
            remaining = [i for i in remaining if i not in missing]
    return remaining


def _delete_group(ec2: Any, group_id: str, deadline_s: float, progress: Progress) -> bool:
    """Delete a security group (DependencyViolation retried, see reaper); False when it was already gone."""
    return delete_security_group(ec2, group_id, timeout=deadline_s,
                                 progress=lambda line: progress(f"teardown: {line}")) == "deleted"


def _find_group(ec2: Any, entry: Entry) -> str | None:
    name = entry.data.get("name") or entry.token
    filters = [{"Name": "group-name", "Values": [name]}]
    if entry.data.get("vpc_id"):
        filters.append({"Name": "vpc-id", "Values": [entry.data["vpc_id"]]})
    groups = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0]["GroupId"] if groups else None


def teardown(
    ec2: Any,
    ledger: Ledger,
    run_id: str,
    progress: Progress = print,
    *,
    wait: bool = True,
    sg_retry_s: float = 300.0,
    waiter_delay: int = 5,
    waiter_max_attempts: int = 120,
) -> TeardownReport:
    """Destroy every outstanding resource of `run_id` in the ledger; idempotent; returns what it did.

    Raises TeardownError after doing everything it could if anything is left (the message says what).
    """
    report = TeardownReport()
    region = ec2.meta.region_name
    outstanding = ledger.outstanding(run_id)
    instances: dict[str, Entry] = {}
    pending = [e for e in outstanding if e.resource == "instance" and e.kind == "intent"]
    for e in outstanding:
        if e.resource == "instance" and e.kind == "created" and e.id:
            instances[e.id] = e
    if pending:
        by_token = _instances_by_token(ec2, run_id)
        for e in pending:
            inst = by_token.get(e.token or "")
            if inst is None:
                # Never created (or already gone and purged from DescribeInstances): close the intent.
                ledger.record(run_id, "deleted", "instance", token=e.token, region=region,
                              data={"never_created": "not found by client token"})
                continue
            iid = inst["InstanceId"]
            ledger.record(run_id, "created", "instance", id=iid, token=e.token, region=region,
                          data={"found_by": "client token", **e.data})
            instances[iid] = e

    ids = sorted(instances)
    if ids:
        progress(f"teardown: terminating {len(ids)} instance(s): {', '.join(ids)}")
        try:
            live = _terminate(ec2, ids, report)
            if live and wait:
                ec2.get_waiter("instance_terminated").wait(
                    InstanceIds=live,
                    WaiterConfig={"Delay": waiter_delay, "MaxAttempts": waiter_max_attempts},
                )
            report.terminated.extend(live)
            for iid in ids:
                ledger.record(run_id, "deleted", "instance", id=iid, token=instances[iid].token, region=region)
        except (ClientError, WaiterError) as exc:
            report.errors.append(f"instances {', '.join(ids)}: {exc}")

    for e in outstanding:
        if e.resource != "key_pair":
            continue
        name = e.id or e.data.get("name") or e.token
        try:
            ec2.delete_key_pair(KeyName=name)
            report.key_pairs.append(name)
        except ClientError as err:
            if _code(err) not in GONE:
                report.errors.append(f"key pair {name}: {err}")
                continue
            report.already_gone.append(name)
        key_path = e.data.get("key_path")
        if key_path:
            Path(key_path).unlink(missing_ok=True)
        ledger.record(run_id, "deleted", "key_pair", id=e.id, token=e.token, region=region)

    if report.errors:  # a group still used by a live instance cannot go; say so instead of waiting
        raise TeardownError(f"teardown of {run_id} incomplete: " + "; ".join(report.errors))

    for e in outstanding:
        if e.resource != "security_group":
            continue
        try:
            group_id = e.id if e.kind == "created" else _find_group(ec2, e)
            gone = group_id is None or not _delete_group(ec2, group_id, sg_retry_s, progress)
        except ClientError as err:
            report.errors.append(f"security group {e.id or e.token}: {err}")
            continue
        (report.already_gone if gone else report.security_groups).append(group_id or str(e.token))
        ledger.record(run_id, "deleted", "security_group", id=e.id, token=e.token, region=region)

    if report.errors:
        raise TeardownError(f"teardown of {run_id} incomplete: " + "; ".join(report.errors))
    if ids or report.key_pairs or report.security_groups:
        progress(
            f"teardown: {run_id}: {len(report.terminated)} instance(s) terminated, "
            f"{len(report.key_pairs)} key pair(s) and {len(report.security_groups)} security group(s) deleted"
        )
    return report
