"""perfci reap: pure selection on described resources, and the cleanup engine (survey/reap) and CLI against a
real moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import KINDS, Context, ResourceKind
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.cleanup.select import from_ledger, parse_time, select
from pytest_perfci.cli import main
from pytest_perfci.providers.ec2.resources import KeyPairKind, SecurityGroupKind
from pytest_perfci.tags import TAG_EXPIRES, TAG_KEEP, TAG_RUN_ID
from tests.moto_server import MotoServer

INSTANCE, KEY_PAIR, SECURITY_GROUP = "instance", "key_pair", "security_group"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PERFCI = Path(sys.executable).with_name("perfci")


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def res(kind: str, rid: str, **tags: str) -> Described:
    return Described(kind=kind, id=rid, region="us-east-1", tags=tags)


# --- pure selection -------------------------------------------------------------------------------


def test_parse_time_accepts_utc_spellings_and_rejects_junk() -> None:
    assert parse_time("2024-05-01T12:00:00Z") == NOW
    assert parse_time("2024-05-01T12:00:00+00:00") == NOW
    assert parse_time("2024-05-01T14:00:00+02:00") == NOW
    assert parse_time("2024-05-01T12:00:00") == NOW  # naive means UTC
    assert parse_time("tomorrow") is None
    assert parse_time("") is None
    assert parse_time(None) is None


def test_select_by_run_id_takes_only_that_run_and_honours_keep_until() -> None:
    resources = [
        res(INSTANCE, "i-a", **{TAG_RUN_ID: "run-a"}),
        res(KEY_PAIR, "key-a", **{TAG_RUN_ID: "run-a"}),
        res(INSTANCE, "i-a-kept", **{TAG_RUN_ID: "run-a", TAG_KEEP: iso(NOW + timedelta(hours=1))}),
        res(INSTANCE, "i-b", **{TAG_RUN_ID: "run-b"}),
        res(INSTANCE, "i-untagged"),
    ]
    sel = select(resources, now=NOW, run_id="run-a")
    assert [o.id for o in sel.chosen] == ["i-a", "key-a"]
    assert all(o.reason == f"tagged {TAG_RUN_ID}=run-a" for o in sel.chosen)
    assert [(o.id, o.reason) for o in sel.skipped] == [("i-a-kept", "kept until 2024-05-01T13:00:00Z")]


def test_select_expired_needs_expiry_and_keep_until_both_past() -> None:
    past, future = iso(NOW - timedelta(minutes=5)), iso(NOW + timedelta(minutes=5))
    resources = [
        res(INSTANCE, "i-expired", **{TAG_RUN_ID: "r1", TAG_EXPIRES: past}),
        res(INSTANCE, "i-alive", **{TAG_RUN_ID: "r1", TAG_EXPIRES: future}),
        res(INSTANCE, "i-kept", **{TAG_RUN_ID: "r2", TAG_EXPIRES: past, TAG_KEEP: future}),
        res(INSTANCE, "i-keep-over", **{TAG_RUN_ID: "r2", TAG_EXPIRES: past, TAG_KEEP: past}),
        res(SECURITY_GROUP, "sg-noexp", **{TAG_RUN_ID: "r3"}),
        res(KEY_PAIR, "key-junk", **{TAG_RUN_ID: "r3", TAG_EXPIRES: "soon"}),
        res(INSTANCE, "i-keep-junk", **{TAG_RUN_ID: "r3", TAG_EXPIRES: past, TAG_KEEP: "forever"}),
        res(INSTANCE, "i-not-ours", **{TAG_EXPIRES: past}),  # no run id: never ours
    ]
    sel = select(resources, now=NOW, expired=True)
    assert {o.id: o.reason for o in sel.chosen} == {
        "i-expired": "expired 2024-05-01T11:55:00Z",
        "i-keep-over": "expired 2024-05-01T11:55:00Z, keep-until 2024-05-01T11:55:00Z past too",
    }
    skipped = {o.id: o.reason for o in sel.skipped}
    assert set(skipped) == {"i-kept", "sg-noexp", "key-junk", "i-keep-junk"}
    assert skipped["i-kept"] == "expired 2024-05-01T11:55:00Z but kept until 2024-05-01T12:05:00Z"
    assert "--run-id r3" in skipped["sg-noexp"]
    assert "'soon'" in skipped["key-junk"]
    assert "kept to be safe" in skipped["i-keep-junk"]
    chosen = {o.id: o for o in sel.chosen}
    assert chosen["i-expired"].run_id == "r1"
    assert chosen["i-expired"].expires_at == NOW - timedelta(minutes=5)


def test_select_requires_exactly_one_selector() -> None:
    with pytest.raises(ValueError):
        select([], now=NOW)
    with pytest.raises(ValueError):
        select([], now=NOW, run_id="r1", expired=True)


def test_from_ledger_takes_outstanding_entries_and_resolves_intents_by_tag(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("run-a", "intent", INSTANCE, token="tok-1", region="us-east-1")  # died before "created"
    ledger.record("run-a", "created", KEY_PAIR, id="key-a", region="us-east-1")
    ledger.record("run-a", "created", SECURITY_GROUP, id="sg-a", region="us-east-1")
    ledger.record("run-a", "deleted", SECURITY_GROUP, id="sg-a", region="us-east-1")
    ledger.record("run-a", "created", INSTANCE, id="i-west", region="us-west-2")
    described = [
        res(INSTANCE, "i-a", **{TAG_RUN_ID: "run-a"}),
        res(INSTANCE, "i-other-run", **{TAG_RUN_ID: "run-b"}),
    ]
    sel = from_ledger(ledger.outstanding(), region="us-east-1", described=described, now=NOW)
    assert {(o.kind, o.id) for o in sel.chosen} == {(INSTANCE, "i-a"), (KEY_PAIR, "key-a")}
    by_id = {o.id: o for o in sel.chosen}
    assert by_id["i-a"].token == "tok-1" and "intent" in by_id["i-a"].reason
    assert by_id["key-a"].state == "not listed" and by_id["key-a"].run_id == "run-a"


# --- against a real moto server -------------------------------------------------------------------


def _tags(run_id: str | None, expires: datetime | None = None, keep: datetime | None = None,
          name: str = "x") -> list[dict[str, str]]:
    tags = [{"Key": "Name", "Value": name}]
    if run_id is not None:
        tags += [{"Key": TAG_RUN_ID, "Value": run_id}, {"Key": "perfci:owner", "Value": "tester"},
                 {"Key": "perfci:suite", "Value": "pmc"}]
    if expires is not None:
        tags.append({"Key": TAG_EXPIRES, "Value": iso(expires)})
    if keep is not None:
        tags.append({"Key": TAG_KEEP, "Value": iso(keep)})
    return tags


def _spec(resource_type: str, tags: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tags}]


_AMI: list[str] = []


def ami(ec2: Any) -> str:
    """An AMI moto knows; listing them all takes seconds, so try moto's usual default first, once."""
    if not _AMI:
        try:
            known = ec2.describe_images(ImageIds=["ami-12c6146b"])["Images"]
        except ClientError:
            known = []
        known = known or ec2.describe_images(Owners=["amazon"])["Images"]
        _AMI.append(known[0]["ImageId"])
    return _AMI[0]


def make_set(ec2: Any, label: str, run_id: str | None, expires: datetime | None = None,
             keep: datetime | None = None, *, key: bool = True, sg: bool = True) -> dict[str, str]:
    """An instance (in the group), a key pair and a security group, tagged alike, as a provider would."""
    tags = _tags(run_id, expires, keep, name=f"perfci-{label}")
    made: dict[str, str] = {}
    sg_ids = []
    if sg:
        made[SECURITY_GROUP] = ec2.create_security_group(
            GroupName=f"perfci-{label}", Description="perfci test",
            TagSpecifications=_spec("security-group", tags))["GroupId"]
        sg_ids = [made[SECURITY_GROUP]]
    if key:
        ec2.create_key_pair(KeyName=f"perfci-{label}", KeyType="ed25519",
                            TagSpecifications=_spec("key-pair", tags))
        made[KEY_PAIR] = f"perfci-{label}"
    made[INSTANCE] = ec2.run_instances(
        ImageId=ami(ec2), MinCount=1, MaxCount=1, InstanceType="t3.micro", SecurityGroupIds=sg_ids,
        TagSpecifications=_spec("instance", tags))["Instances"][0]["InstanceId"]
    return made


class World:
    """Two runs, one expired, one expired-but-kept, one untagged; what's left is read back from moto."""

    def __init__(self, moto: MotoServer, region: str = "us-east-1") -> None:
        now = datetime.now(UTC)
        self.ec2: Any = moto.client("ec2", region)
        self.region = region
        self.alive = make_set(self.ec2, "alive", "run-alive-1", now + timedelta(hours=2))
        self.expired = make_set(self.ec2, "expired", "run-expired-1", now - timedelta(hours=1))
        self.kept = make_set(self.ec2, "kept", "run-kept-1", now - timedelta(hours=1), now + timedelta(days=1),
                             sg=False)
        self.untagged = make_set(self.ec2, "untagged", None)

    def instances(self) -> dict[str, str]:
        out = {}
        for r in self.ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                out[i["InstanceId"]] = i["State"]["Name"]
        return out

    def keys(self) -> set[str]:
        return {k["KeyName"] for k in self.ec2.describe_key_pairs()["KeyPairs"]}

    def groups(self) -> set[str]:
        return {g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]
                if g["GroupName"] != "default"}

    def assert_present(self, made: dict[str, str]) -> None:
        assert self.instances()[made[INSTANCE]] == "running"
        if KEY_PAIR in made:
            assert made[KEY_PAIR] in self.keys()
        if SECURITY_GROUP in made:
            assert made[SECURITY_GROUP] in self.groups()

    def assert_gone(self, made: dict[str, str]) -> None:
        assert self.instances()[made[INSTANCE]] == "terminated"
        assert made.get(KEY_PAIR) not in self.keys()
        assert made.get(SECURITY_GROUP) not in self.groups()


@pytest.fixture
def world(moto: MotoServer) -> World:
    return World(moto)


def ids(orphans: list[Orphan]) -> set[tuple[str, str]]:
    return {(o.kind, o.id) for o in orphans}


def pairs(made: dict[str, str]) -> set[tuple[str, str]]:
    return set(made.items())


def test_find_by_run_id_selects_exactly_that_run(world: World) -> None:
    found = engine.find(Context(world.ec2), run_id="run-alive-1")
    assert ids(found) == pairs(world.alive)
    assert {o.region for o in found} == {"us-east-1"}
    assert {o.run_id for o in found} == {"run-alive-1"}
    assert engine.find(Context(world.ec2), run_id="run-nobody-1") == []


def test_find_expired_selects_expired_and_skips_kept(world: World) -> None:
    sel = engine.survey(Context(world.ec2), expired=True)
    assert ids(sel.chosen) == pairs(world.expired)
    assert ids(sel.skipped) == pairs(world.kept)
    assert all("kept until" in o.reason for o in sel.skipped)


def test_find_ignores_terminated_instances(world: World) -> None:
    world.ec2.terminate_instances(InstanceIds=[world.expired[INSTANCE]])
    found = engine.find(Context(world.ec2), expired=True)
    assert ids(found) == pairs(world.expired) - {(INSTANCE, world.expired[INSTANCE])}


def test_find_from_ledger(world: World, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    run = "run-expired-1"
    ledger.record(run, "intent", INSTANCE, token="tok-1", region="us-east-1")  # no "created": killed
    ledger.record(run, "intent", KEY_PAIR, token="tok-2", region="us-east-1")
    ledger.record(run, "created", KEY_PAIR, id=world.expired[KEY_PAIR], token="tok-2", region="us-east-1")
    ledger.record(run, "created", SECURITY_GROUP, id=world.expired[SECURITY_GROUP], region="us-east-1")
    found = engine.find(Context(world.ec2), ledger=ledger)
    assert ids(found) == pairs(world.expired)


def test_reap_deletes_exactly_the_orphans_and_is_idempotent(world: World) -> None:
    found = engine.find(Context(world.ec2), expired=True)
    lines: list[str] = []
    report = engine.reap(Context(world.ec2, progress=lines.append), found)
    assert report.ok
    assert {(o.kind, o.id, o.status) for o in report.outcomes} == {(k, v, "deleted") for k, v in world.expired.items()}
    # instances first, then key pairs, then security groups
    assert [o.kind for o in report.outcomes] == [INSTANCE, KEY_PAIR, SECURITY_GROUP]
    assert any("terminating 1 instance(s)" in line for line in lines)
    world.assert_gone(world.expired)
    for made in (world.alive, world.kept, world.untagged):
        world.assert_present(made)
    again = engine.reap(Context(world.ec2), found)
    assert again.ok
    assert {o.status for o in again.outcomes} == {"already_gone"}
    assert engine.find(Context(world.ec2), expired=True) == []


class Widget(ResourceKind):
    """A kind for tests only: registered by one line in KINDS, imported from there on first use."""

    name = "test-widget"
    order = 5
    deleted: ClassVar[list[str]] = []

    def describe(self, run_id: str | None) -> list[Described]:
        return []

    def describe_ids(self, ids: Any) -> list[Described]:
        return []

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        Widget.deleted.extend(o.id for o in orphans)
        return [self.outcome(o, "deleted") for o in orphans]


def test_reap_reports_unknown_kind_as_failed_and_dispatches_registered_kinds(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = Orphan(kind="test-widget", id="w1", run_id="run-expired-1", reason="test")
    report = engine.reap(Context(world.ec2), [widget])
    assert not report.ok and "no resource kind registered as 'test-widget'" in report.failed[0].detail

    monkeypatch.setitem(KINDS, "test-widget", f"{__name__}:Widget")
    found = engine.find(Context(world.ec2), run_id="run-expired-1")
    report = engine.reap(Context(world.ec2), [*found, widget])
    assert report.ok
    assert [o.kind for o in report.outcomes] == ["test-widget", INSTANCE, KEY_PAIR, SECURITY_GROUP]
    assert Widget.deleted == ["w1"]


def test_reap_one_kind_failing_does_not_stop_the_others(world: World) -> None:
    found = engine.find(Context(world.ec2), run_id="run-expired-1")
    bogus = Orphan(kind=SECURITY_GROUP, id="not-a-group-id", run_id="run-expired-1", reason="test")
    report = engine.reap(Context(world.ec2), [*found, bogus])
    # moto answers a missing group *name* as not found: already gone, as AWS would
    assert report.ok
    world.assert_gone(world.expired)


def test_security_group_dependency_violation_is_retried_until_free() -> None:
    # moto does not model DependencyViolation, so botocore's own Stubber plays EC2 here (no network).
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                       endpoint_url="http://127.0.0.1:9")
    sleeps: list[float] = []
    with Stubber(ec2) as stub:
        for _ in range(2):
            stub.add_client_error("delete_security_group", "DependencyViolation",
                                  expected_params={"GroupId": "sg-1"})
        stub.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
        kind = SecurityGroupKind(Context(ec2, dependency_timeout=60, sleep=sleeps.append))
        assert kind.delete_one("sg-1") == "deleted"
        stub.assert_no_pending_responses()
    assert sleeps == [2.0, 4.0]
    with Stubber(ec2) as stub:
        stub.add_client_error("delete_security_group", "DependencyViolation")
        with pytest.raises(Exception, match="DependencyViolation"):
            SecurityGroupKind(Context(ec2, dependency_timeout=0, sleep=sleeps.append)).delete_one("sg-1")
    with Stubber(ec2) as stub:
        stub.add_client_error("delete_security_group", "InvalidGroup.NotFound")
        assert SecurityGroupKind(Context(ec2)).delete_one("sg-1") == "already_gone"


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_dry_run_lists_and_deletes_nothing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--expired"]) == 0
    out = capsys.readouterr().out
    assert "dry run: pass --yes to delete" in out
    for line_id in world.expired.values():
        assert line_id in out
    assert "REGION" in out and "KIND" in out and "EXPIRES-AT" in out and "WHY" in out
    assert world.kept[INSTANCE] in out.split("would delete")[0]  # listed as kept, above
    assert world.untagged[INSTANCE] not in out
    for made in (world.alive, world.expired, world.kept, world.untagged):
        world.assert_present(made)


def test_cli_yes_deletes_exactly_them_and_a_second_run_finds_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reap", "--run-id", "run-alive-1", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "3 deleted, 0 already gone, 0 failed" in out
    world.assert_gone(world.alive)
    for made in (world.expired, world.kept, world.untagged):
        world.assert_present(made)
    assert main(["reap", "--run-id", "run-alive-1", "--yes"]) == 0
    assert "nothing to reap (run run-alive-1; region us-east-1)" in capsys.readouterr().out


def test_cli_run_id_honours_keep_until(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--run-id", "run-kept-1", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "kept (2)" in out and "nothing to reap" in out
    world.assert_present(world.kept)


def test_cli_ledger_records_deletions(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    for kind, rid in world.expired.items():
        ledger.record("run-expired-1", "created", kind, id=rid, region="us-east-1")
    assert main(["reap", "--ledger", str(path), "--yes"]) == 0
    world.assert_gone(world.expired)
    world.assert_present(world.alive)
    assert ledger.outstanding() == []
    deleted = [e for e in ledger.entries() if e.kind == "deleted"]
    assert {(e.resource, e.id) for e in deleted} == pairs(world.expired)
    capsys.readouterr()
    assert main(["reap", "--ledger", str(path), "--yes"]) == 0
    assert "nothing to reap" in capsys.readouterr().out


def test_cli_searches_every_region_given(moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    east, west = World(moto, "us-east-1"), World(moto, "us-west-2")
    assert main(["reap", "--expired", "--region", "us-east-1", "--region", "us-west-2", "--yes"]) == 0
    east.assert_gone(east.expired)
    west.assert_gone(west.expired)
    east.assert_present(east.alive)
    west.assert_present(west.alive)
    assert "6 deleted" in capsys.readouterr().out


def test_cli_json(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--expired", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True and doc["exit_code"] == 0 and doc["outcomes"] == []
    assert {(o["kind"], o["id"]) for o in doc["orphans"]} == pairs(world.expired)
    assert {(o["kind"], o["id"]) for o in doc["skipped"]} == pairs(world.kept)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["reap"], "nothing selected; pass one of --run-id ID, --expired or --ledger FILE"),
        (["reap", "--run-id", "Bad_ID!"], "--run-id 'Bad_ID!' is not a valid run id; use 3-48 lowercase"),
        (["reap", "--run-id", "run-a1", "--expired"], "--run-id and --expired exclude each other"),
        (["reap", "--expired", "--region", "moon-1"], "--region 'moon-1' is not an AWS region name"),
        (["reap", "--ledger", "/nonexistent/ledger.jsonl"], "no such file"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(
    argv: list[str], needle: str, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_cli_refuses_a_real_endpoint(moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--expired", "--endpoint-url", "https://ec2.us-east-1.amazonaws.com"]) == 2
    assert "PERFCI_LOCAL_ONLY=1 allows loopback only" in capsys.readouterr().err


def test_cli_exit_1_when_a_deletion_fails(world: World, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: KeyPairKind, orphans: list[Orphan]) -> list[Outcome]:
        raise RuntimeError("simulated API outage")

    monkeypatch.setattr(KeyPairKind, "delete", broken)
    assert main(["reap", "--run-id", "run-expired-1", "--yes"]) == 1
    out = capsys.readouterr().out
    assert "simulated API outage" in out and "1 failed" in out
    assert world.instances()[world.expired[INSTANCE]] == "terminated"  # the other kinds went on


def perfci(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PERFCI), *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_console_script_in_a_subprocess(world: World, moto: MotoServer) -> None:
    env = {**os.environ, **moto.env()}
    dry = perfci(env, "reap", "--expired")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: pass --yes to delete" in dry.stdout
    world.assert_present(world.expired)
    done = perfci(env, "reap", "--expired", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {(o["kind"], o["id"], o["status"]) for o in doc["outcomes"]} == {
        (k, v, "deleted") for k, v in world.expired.items()
    }
    assert "terminating 1 instance(s)" in done.stderr  # progress goes to stderr, JSON stays clean
    world.assert_gone(world.expired)
    world.assert_present(world.kept)
    world.assert_present(world.untagged)
    again = perfci(env, "reap", "--expired", "--yes")
    assert again.returncode == 0 and "nothing to reap" in again.stdout



@pytest.mark.parametrize(("content", "why"), [
    ("this is not a ledger\nat all\n", "line 1 is not a perfci ledger entry"),
    ("{}\n", "it holds no perfci ledger entry"),
    (('{"run_id": "r", "kind": "created", "resource": "instance", "id": "i-1"}\ngarbage\n'
      '{"run_id": "r", "kind": "deleted", "resource": "instance", "id": "i-1"}\n'), "line 2 is not a perfci ledger entry"),
])
def test_cli_ledger_that_is_not_a_ledger_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, why: str) -> None:
    """Garbage must not read as "nothing to reap" with exit 0: that hides a run's leftovers."""
    path = tmp_path / "ledger.jsonl"
    path.write_text(content)
    assert main(["reap", "--ledger", str(path), "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"--ledger {str(path)!r}: not a perfci ledger: {why}"), err


def test_a_torn_last_line_is_still_a_ledger(tmp_path: Path) -> None:
    from pytest_perfci.cleanup.ledger import Ledger

    path = tmp_path / "ledger.jsonl"
    path.write_text('{"run_id": "r", "kind": "created", "resource": "instance", "id": "i-1"}\n{"run_id": "r", "ki')
    assert Ledger(path).damage() is None
