"""The EC2 resource kinds perfci creates (instance, key pair, security group, placement group) for the
cleanup engine.

One "already gone" rule for all three (:data:`GONE`); retries are the project's one policy
(pytest_perfci.retry) on top of botocore's adaptive retry mode; verification uses the boto3 waiter
where EC2 has one (instance_terminated) and a describe by ids otherwise.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from pytest_perfci.cleanup.kinds import ResourceKind
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.retry import backoff
from pytest_perfci.tags import TAG_RUN_ID

# Error codes meaning "it does not exist (any more)": success for a delete.
GONE = frozenset({
    "InvalidInstanceID.NotFound",
    "InvalidKeyPair.NotFound",
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
    "InvalidPlacementGroup.Unknown",
})
# Instances in these states are alive or may come back; everything else is gone or going.
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
BATCH = 500  # TerminateInstances takes up to 1000 ids; stay well under.
_INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def gone(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and code(exc) in GONE


def tags_of(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in item.get("Tags", []) or []}


def run_filter(run_id: str | None) -> list[dict[str, Any]]:
    """Resources of one run, or (None) of any perfci run: only what carries our run-id tag."""
    if run_id is None:
        return [{"Name": "tag-key", "Values": [TAG_RUN_ID]}]
    return [{"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]}]


class _EC2Kind(ResourceKind):
    @property
    def ec2(self) -> Any:
        return self.ctx.ec2

    def _described(self, rid: str, item: dict[str, Any], state: str | None, **data: str) -> Described:
        return Described(kind=self.name, id=rid, region=self.ctx.region, tags=tags_of(item), state=state,
                         data={k: v for k, v in data.items() if v})


class InstanceKind(_EC2Kind):
    name = "instance"
    order = 10

    def _list(self, filters: list[dict[str, Any]]) -> list[Described]:
        out = []
        live = {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=[*filters, live]):
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    out.append(self._described(inst["InstanceId"], inst, inst.get("State", {}).get("Name"),
                                               token=inst.get("ClientToken", "")))
        return out

    def describe(self, run_id: str | None) -> list[Described]:
        return self._list(run_filter(run_id))

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        # A filter (unlike InstanceIds=) does not fail the whole call when one id no longer exists.
        return [d for i in range(0, len(ids), BATCH)
                for d in self._list([{"Name": "instance-id", "Values": list(ids[i:i + BATCH])}])]

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        """One TerminateInstances per batch; what EC2 says was already terminated (or does not exist)
        is already gone, and an instance already shutting down is waited for by verify()."""
        status: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(o.id for o in orphans))
        for i in range(0, len(ids), BATCH):
            batch = ids[i:i + BATCH]
            self.ctx.progress(f"terminating {len(batch)} instance(s): {', '.join(batch)}")
            try:
                status.update(self._terminate(batch))
            except ClientError as exc:
                status.update({iid: ("failed", f"{code(exc)}: {exc}") for iid in batch})
        return [self.outcome(o, *status[o.id]) for o in orphans]

    def _terminate(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        """Terminate ids in one call; ids EC2 says do not exist are dropped and the call repeated."""
        out: dict[str, tuple[str, str]] = {}
        remaining = list(ids)
        while remaining:
            try:
                resp = self.ec2.terminate_instances(InstanceIds=remaining)
            except ClientError as exc:
                if code(exc) != "InvalidInstanceID.NotFound":
                    raise
                missing = set(_INSTANCE_ID.findall(str(exc.response.get("Error", {}).get("Message", ""))))
                missing &= set(remaining)
                if not missing:  # cannot tell which: one call each
                    for iid in remaining:
                        out.update(self._terminate_one(iid))
                    return out
                out.update({iid: ("already_gone", "not found") for iid in missing})
                remaining = [i for i in remaining if i not in missing]
                continue
            for item in resp.get("TerminatingInstances", []):
                before = item.get("PreviousState", {}).get("Name", "")
                if before in ("terminated", "shutting-down"):
                    out[item["InstanceId"]] = ("already_gone", before)
                else:
                    out[item["InstanceId"]] = ("deleted", "terminated")
            out.update({iid: ("deleted", "terminated") for iid in remaining if iid not in out})
            return out
        return out

    def _terminate_one(self, iid: str) -> dict[str, tuple[str, str]]:
        try:
            self.ec2.terminate_instances(InstanceIds=[iid])
        except ClientError as exc:
            if gone(exc):
                return {iid: ("already_gone", "not found")}
            raise
        return {iid: ("deleted", "terminated")}

    def verify(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The instance_terminated waiter on every instance deleted now or found shutting down."""
        waiting = [o for o in outcomes if o.status == "deleted" or o.detail == "shutting-down"]
        if not waiting:
            return outcomes
        ids = sorted({o.id for o in waiting})
        self.ctx.progress(f"waiting for {len(ids)} instance(s) to terminate")
        started = time.monotonic()
        attempts = self.ctx.waiter_max_attempts
        left = self.ctx.remaining()
        if left is not None:  # the teardown's deadline bounds the wait too
            attempts = max(1, min(attempts, int(left // max(1, self.ctx.waiter_delay))))
        try:
            self.ec2.get_waiter("instance_terminated").wait(
                InstanceIds=ids,
                WaiterConfig={"Delay": self.ctx.waiter_delay, "MaxAttempts": attempts},
            )
        except (WaiterError, BotoCoreError) as exc:
            for o in waiting:
                o.status, o.detail = "failed", f"not terminated after {time.monotonic() - started:.0f}s: {exc}"
            return outcomes
        self.ctx.progress(f"{len(ids)} instance(s) terminated after {time.monotonic() - started:.0f}s")
        return outcomes


class KeyPairKind(_EC2Kind):
    """Key pairs, named by KeyName (what the ledger's id and the reaper's table show).

    Deleted by the KeyPairId recorded at creation where known: a key pair listed under our name but
    with another id is someone else's (a later run's namesake) and is left alone. Without a recorded
    id (an older ledger, a lost "created" line) a key pair is deleted by name only when its own
    perfci:run-id tag is the orphan's run id, never by bare name (issue 16). The delete call
    names the key by the name EC2 lists for that id (moto 5 ignores DeleteKeyPair's KeyPairId).
    DeleteKeyPair succeeds for a missing key on AWS, so every delete looks first to say what really
    happened.
    """

    name = "key_pair"
    order = 20

    def _list(self, filters: list[dict[str, Any]]) -> list[Described]:
        resp = self.ec2.describe_key_pairs(Filters=filters)
        return [self._described(k["KeyName"], k, "available", token=k["KeyName"], key_pair_id=k.get("KeyPairId", ""))
                for k in resp.get("KeyPairs", [])]

    def describe(self, run_id: str | None) -> list[Described]:
        return self._list(run_filter(run_id))

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        return self._list([{"Name": "key-name", "Values": list(ids)}]) if ids else []

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        by_id = [o.data["key_pair_id"] for o in orphans if o.data.get("key_pair_id")]
        by_name = [o.id for o in orphans if not o.data.get("key_pair_id")]
        listed: dict[str, str] = {}  # key pair id or name -> the name EC2 lists it under
        named: dict[str, Described] = {}  # name -> what EC2 lists under it (for the ownership check)
        if by_id:
            listed.update({d.data.get("key_pair_id", ""): d.id
                           for d in self._list([{"Name": "key-pair-id", "Values": by_id}])})
        if by_name:
            named = {d.id: d for d in self.describe_ids(by_name)}
        out = []
        for o in orphans:
            if o.data.get("key_pair_id"):
                name = listed.get(o.data["key_pair_id"])
            else:  # no id recorded: the name alone proves nothing; the run-id tag must be this run's
                found = named.get(o.id)
                if found is not None and (o.run_id is None or found.tags.get(TAG_RUN_ID) != o.run_id):
                    out.append(self.outcome(o, "already_gone" if o.run_id else "failed", self._not_ours(o, found)))
                    continue  # its private key file may be the namesake's too: left alone
                name = found.id if found is not None else None
            if name is None:
                out.append(self.outcome(o, "already_gone", "not found"))
            else:
                try:
                    self.ec2.delete_key_pair(KeyName=name)
                    self.ctx.progress(f"deleted key pair {name}")
                    out.append(self.outcome(o, "deleted"))
                except ClientError as exc:
                    if not gone(exc):
                        out.append(self.outcome(o, "failed", f"{code(exc)}: {exc}"))
                        continue
                    out.append(self.outcome(o, "already_gone", "not found"))
            self._remove_private_key(o)
        return out

    def _not_ours(self, o: Orphan, found: Described) -> str:
        """Why a key pair known only by name is left alone (issue 16: never delete by bare name)."""
        if o.run_id is None:
            return (f"no key pair id recorded and no run id to check its {TAG_RUN_ID} tag against: "
                    "not deleted by bare name")
        owner = found.tags.get(TAG_RUN_ID)
        whose = f"run {owner}'s" if owner else f"untagged (no {TAG_RUN_ID})"
        return f"not found with {TAG_RUN_ID}={o.run_id}; the key pair named {o.id} is {whose}: left alone"

    def _remove_private_key(self, o: Orphan) -> None:
        """A key pair gone from EC2 leaves no use for its private key file: remove it (never read it)."""
        candidates = [Path(o.data["key_path"])] if o.data.get("key_path") else []
        if self.ctx.key_dir is not None:
            candidates.append(self.ctx.key_dir / f"{o.id}.pem")
        for path in candidates:
            if path.is_file():
                path.unlink()
                self.ctx.progress(f"removed private key file {path}")


class _DeletedWhenFreeKind(_EC2Kind):
    """A kind deleted one resource at a time once the run's instances are gone, retrying while AWS still
    says it is in use (`in_use_code`) with the shared backoff, for up to ``ctx.dependency_timeout`` seconds
    (or what is left of teardown's deadline). Security groups and placement groups both work this way."""

    label = ""  # how progress lines name one resource
    in_use_code = ""
    waiting_for = "still in use"

    def _delete_call(self, rid: str) -> Any:
        raise NotImplementedError

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        out = []
        for o in orphans:
            try:
                status = self.delete_one(o.id)
            except ClientError as exc:
                out.append(self.outcome(o, "failed", f"{code(exc)}: {exc}"))
                continue
            if status == "deleted":
                self.ctx.progress(f"deleted {self.label} {o.id}")
            out.append(self.outcome(o, status, "" if status == "deleted" else "not found"))
        return out

    def delete_one(self, rid: str) -> str:
        """'deleted' or 'already_gone'; "in use" retried until the budget; other errors raised."""

        def in_use(exc: BaseException) -> bool:
            return isinstance(exc, ClientError) and code(exc) == self.in_use_code

        def waiting(_: BaseException, delay: float, _n: int) -> None:
            self.ctx.progress(f"{self.label} {rid} {self.waiting_for}; retrying in {delay:.0f}s")

        left = self.ctx.remaining()
        within = self.ctx.dependency_timeout if left is None else min(self.ctx.dependency_timeout, left)
        policy = backoff(in_use, first=2.0, cap=15.0, within=within, on_retry=waiting, sleep=self.ctx.sleep)
        try:
            policy(lambda: self._delete_call(rid))
        except ClientError as exc:
            if gone(exc):
                return "already_gone"
            raise
        return "deleted"


class SecurityGroupKind(_DeletedWhenFreeKind):
    """Security groups, by GroupId (or GroupName for an id that is not sg-...).

    Tried only once the run's instances are gone (a group in use cannot be deleted); AWS still
    answers DependencyViolation while their network interfaces detach, which is retried with the
    shared backoff for up to ``ctx.dependency_timeout`` seconds.
    """

    name = "security_group"
    order = 30
    needs_gone = ("instance",)
    label = "security group"
    in_use_code = "DependencyViolation"

    def _list(self, filters: list[dict[str, Any]]) -> list[Described]:
        out = []
        for page in self.ec2.get_paginator("describe_security_groups").paginate(Filters=filters):
            for g in page.get("SecurityGroups", []):
                out.append(self._described(g["GroupId"], g, "exists", token=g.get("GroupName", ""),
                                           vpc_id=g.get("VpcId", "")))
        return out

    def describe(self, run_id: str | None) -> list[Described]:
        return self._list(run_filter(run_id))

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        groups = [i for i in ids if i.startswith("sg-")]
        return self._list([{"Name": "group-id", "Values": groups}]) if groups else []

    def _delete_call(self, rid: str) -> Any:
        # GroupName for an id that is not sg-... (intents written before the group id was known).
        kwargs = {"GroupId": rid} if rid.startswith("sg-") else {"GroupName": rid}
        return self.ec2.delete_security_group(**kwargs)


class PlacementGroupKind(_DeletedWhenFreeKind):
    """Cluster placement groups of client/server pairs (suites/net), by GroupName (what DeletePlacementGroup
    takes and the ledger records); the GroupId goes in the data.

    Tried only once the run's instances are gone: a group that still holds one answers
    InvalidPlacementGroup.InUse, retried with the shared backoff like a security group's DependencyViolation.
    """

    name = "placement_group"
    order = 25
    needs_gone = ("instance",)
    label = "placement group"
    in_use_code = "InvalidPlacementGroup.InUse"
    waiting_for = "still holds instances"

    def _list(self, filters: list[dict[str, Any]]) -> list[Described]:
        resp = self.ec2.describe_placement_groups(Filters=filters)
        return [self._described(g["GroupName"], g, g.get("State"), token=g["GroupName"], group_id=g.get("GroupId", ""))
                for g in resp.get("PlacementGroups", []) if g.get("State") != "deleted"]

    def describe(self, run_id: str | None) -> list[Described]:
        return self._list(run_filter(run_id))

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        return self._list([{"Name": "group-name", "Values": list(ids)}]) if ids else []

    def _delete_call(self, rid: str) -> Any:
        return self.ec2.delete_placement_group(GroupName=rid)
