"""The one cleanup engine (pytest_perfci.cleanup.engine) and the EC2 kinds it drives, against a real moto server:
session teardown and `perfci reap` go through the same engine and kinds; one "already gone" rule; batched
TerminateInstances (counted at botocore's event hooks); verification that fails what did not go; dangling
intents resolved by ClientToken and tag; key pairs deleted by the id recorded at creation; the lazy registry."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import KINDS, Context, ResourceKind, kind_class
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.cleanup.select import from_ledger
from pytest_perfci.cli import main
from pytest_perfci.providers.ec2 import network
from pytest_perfci.providers.ec2.resources import GONE, InstanceKind, KeyPairKind, SecurityGroupKind
from pytest_perfci.tags import TAG_RUN_ID
from tests.moto_server import MotoServer
from tests.test_ec2_provider import NOTHING, _provider, make_settings, resources
from tests.test_reaper import NOW, ami

REGION = "us-east-1"


def provision(ec2: Any, ledger: Ledger, run_id: str, tmp_path: Path, instances: int = 1) -> dict[str, Any]:
    """What EC2Provider creates for a run, ledgered the same way: key pair, group, instances (intent, call, id)."""
    tags = network.make_tags(run_id, "tester", "2999-01-01T00:00:00Z", "pmc", run_id)
    key = network.create_key_pair(ec2, ledger, run_id=run_id, region=REGION, key_dir=tmp_path / ".keys", tags=tags)
    vpc = network.default_vpc(ec2)
    group = network.create_security_group(ec2, ledger, run_id=run_id, region=REGION, vpc_id=vpc,
                                          cidr="127.0.0.1/32", tags=tags)
    ids = []
    for _ in range(instances):
        token = str(uuid.uuid4())
        ledger.record(run_id, "intent", "instance", token=token, region=REGION)
        inst = ec2.run_instances(ImageId=ami(ec2), MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 KeyName=key.name, SecurityGroupIds=[group], ClientToken=token,
                                 TagSpecifications=network.tag_spec("instance", tags))["Instances"][0]
        ledger.record(run_id, "created", "instance", id=inst["InstanceId"], token=token, region=REGION)
        ids.append(inst["InstanceId"])
    return {"key": key, "group": group, "instances": ids}


def count_calls(ec2: Any, operation: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    ec2.meta.events.register(f"before-parameter-build.ec2.{operation}", lambda params, **_: seen.append(dict(params)))
    return seen


# --- one engine ---------------------------------------------------------------------------------------


def test_teardown_and_reap_run_the_same_engine_and_kinds(
    tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A provider's release_all() and `perfci reap --run-id` both end in engine.reap and the same kind objects'
    delete(); only the actor written to the ledger differs."""
    calls: list[tuple[str, list[str]]] = []
    real_reap, real_delete = engine.reap, InstanceKind.delete

    def spy_reap(ctx: Context, orphans: Any, **kw: Any) -> Any:
        calls.append((ctx.actor, sorted(f"{o.kind}:{o.id}" for o in getattr(orphans, "chosen", orphans))))
        return real_reap(ctx, orphans, **kw)

    def spy_delete(self: InstanceKind, orphans: list[Orphan]) -> list[Outcome]:
        calls.append((f"{self.ctx.actor} InstanceKind.delete", [o.id for o in orphans]))
        return real_delete(self, orphans)

    monkeypatch.setattr(engine, "reap", spy_reap)
    monkeypatch.setattr(InstanceKind, "delete", spy_delete)

    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    torn = provision(ec2, ledger, "run-torn-1", tmp_path)
    reaped = provision(ec2, Ledger(tmp_path / "other.jsonl"), "run-reaped-1", tmp_path)

    fresh = _provider(make_settings(tmp_path, moto, run_id="run-torn-1"), tmp_path)  # a new process, say
    report = fresh.release_all()
    assert report is not None and report.ok
    assert main(["reap", "--run-id", "run-reaped-1", "--yes"]) == 0
    assert "3 deleted, 0 already gone, 0 failed" in capsys.readouterr().out
    assert resources(moto) == NOTHING

    assert [c[0] for c in calls] == ["teardown", "teardown InstanceKind.delete",
                                     "perfci reap", "perfci reap InstanceKind.delete"]
    assert calls[1][1] == torn["instances"] and calls[3][1] == reaped["instances"]
    assert f"key_pair:{torn['key'].name}" in calls[0][1] and f"security_group:{reaped['group']}" in calls[2][1]
    by = {e.data.get("by") for e in ledger.entries() if e.kind == "deleted"}
    assert by == {"teardown"} and ledger.outstanding() == []


# --- already gone ---------------------------------------------------------------------------------------


def test_one_already_gone_rule_for_every_ec2_kind(moto: MotoServer, tmp_path: Path) -> None:
    """Deleting what does not exist is success, whichever kind, and says so."""
    ec2: Any = moto.client("ec2")
    ctx = Context(ec2)
    ghosts = [
        Orphan(kind="instance", id="i-0123456789abcdef0", run_id="r-1", reason="t"),
        Orphan(kind="key_pair", id="perfci-nobody-ssh", run_id="r-1", reason="t"),
        Orphan(kind="key_pair", id="perfci-nobody2-ssh", run_id="r-1", reason="t", data={"key_pair_id": "key-0abc"}),
        Orphan(kind="security_group", id="sg-0123456789abcdef0", run_id="r-1", reason="t"),
    ]
    report = engine.reap(ctx, ghosts)
    assert report.ok
    assert {(o.kind, o.status) for o in report.outcomes} == {
        ("instance", "already_gone"), ("key_pair", "already_gone"), ("security_group", "already_gone")}
    # the same rule when the API itself answers "not found" (a race: it went between describe and delete)
    stubbed: Any = moto.client("ec2")
    with Stubber(stubbed) as stub:
        stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "k1", "KeyPairId": "key-1",
                                                              "Tags": [{"Key": TAG_RUN_ID, "Value": "r-1"}]}]})
        stub.add_client_error("delete_key_pair", "InvalidKeyPair.NotFound")
        stub.add_client_error("delete_security_group", "InvalidGroupId.NotFound")
        assert KeyPairKind(Context(stubbed)).delete([ghosts[1].model_copy(update={"id": "k1"})])[0].status \
            == "already_gone"
        assert SecurityGroupKind(Context(stubbed)).delete_one("sg-1") == "already_gone"
    assert GONE >= {"InvalidInstanceID.NotFound", "InvalidKeyPair.NotFound", "InvalidGroupId.NotFound"}


def test_teardown_twice_is_all_already_gone_the_second_time(moto: MotoServer, tmp_path: Path) -> None:
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-twice-1", tmp_path)
    first = engine.teardown(Context(ec2, waiter_delay=1), ledger, "run-twice-1")
    assert sorted(first.ids("deleted")) == sorted([*made["instances"], made["key"].name, made["group"]])
    # replay the same selection (as a second process holding the same stale list would)
    again = engine.reap(Context(ec2), [Orphan(kind=o.kind, id=o.id, run_id=o.run_id, reason="again")
                                       for o in first.outcomes])
    assert again.ok and {o.status for o in again.outcomes} == {"already_gone"}


# --- batching -------------------------------------------------------------------------------------------


def test_terminate_is_batched_one_call_for_many_instances(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-batch-1", tmp_path, instances=5)
    terminate = count_calls(ec2, "TerminateInstances")
    report = engine.teardown(Context(ec2, waiter_delay=1), ledger, "run-batch-1")
    assert [sorted(c["InstanceIds"]) for c in terminate] == [sorted(made["instances"])]
    assert len(report.ids("deleted", "instance")) == 5

    made = provision(ec2, ledger, "run-batch-2", tmp_path, instances=5)
    monkeypatch.setattr("pytest_perfci.providers.ec2.resources.BATCH", 2)
    terminate.clear()
    engine.teardown(Context(ec2, waiter_delay=1), ledger, "run-batch-2")
    assert [len(c["InstanceIds"]) for c in terminate] == [2, 2, 1]
    assert resources(moto) == NOTHING


# --- verification ---------------------------------------------------------------------------------------


def test_what_is_still_there_after_delete_fails_and_stays_in_the_ledger(moto: MotoServer, tmp_path: Path) -> None:
    """TerminateInstances "succeeds" but the instance keeps running: the waiter says so, the group (which needs
    the instance gone) is not tried, teardown raises naming both, and the ledger keeps them outstanding."""
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-stuck-1", tmp_path)
    ok_http = SimpleNamespace(status_code=200, headers={})
    ec2.meta.events.register("before-call.ec2.TerminateInstances",
                             lambda params, **_: (ok_http, {"TerminatingInstances": []}))
    lines: list[str] = []
    with pytest.raises(engine.TeardownError) as info:
        engine.teardown(Context(ec2, progress=lines.append, waiter_delay=1, waiter_max_attempts=2), ledger,
                        "run-stuck-1")
    text = str(info.value)
    assert text.startswith("teardown of run-stuck-1 incomplete: ")
    assert f"instance {made['instances'][0]}: not terminated after" in text
    assert f"security_group {made['group']}: not tried: instance of the run still there" in text
    assert "teardown: waiting for 1 instance(s) to terminate" in lines
    assert {(e.resource, e.id) for e in ledger.outstanding()} == {
        ("instance", made["instances"][0]), ("security_group", made["group"])}
    assert made["key"].name not in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}  # not blocked


def test_verify_fails_a_key_pair_still_listed_after_delete(moto: MotoServer, tmp_path: Path) -> None:
    ec2: Any = moto.client("ec2")
    made = provision(ec2, Ledger(tmp_path / "ledger.jsonl"), "run-verify-1", tmp_path, instances=0)
    ok_http = SimpleNamespace(status_code=200, headers={})
    ec2.meta.events.register("before-call.ec2.DeleteKeyPair", lambda **_: (ok_http, {"Return": True}))
    orphan = Orphan(kind="key_pair", id=made["key"].name, run_id="run-verify-1", reason="t")
    [out] = engine.reap(Context(ec2), [orphan]).outcomes
    assert out.status == "failed" and out.detail.startswith("still listed after delete")
    [out] = engine.reap(Context(ec2, wait=False), [orphan]).outcomes  # verification can be turned off
    assert out.status == "deleted"


# --- dangling intents and key pair ids ------------------------------------------------------------------


def _described(kind: str, rid: str, run: str, token: str = "") -> Described:
    return Described(kind=kind, id=rid, region=REGION, tags={TAG_RUN_ID: run}, data={"token": token} if token else {})


def test_intents_resolve_by_client_token_and_tag_then_by_tag_else_they_close(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("r-1", "intent", "instance", token="tok-a", region=REGION)   # answered by its ClientToken
    ledger.record("r-1", "intent", "instance", token="tok-b", region=REGION)
    ledger.record("r-1", "created", "instance", id="i-b", token="tok-b", region=REGION)
    ledger.record("r-1", "intent", "instance", token="tok-gone", region=REGION)  # created nothing that is listed
    ledger.record("r-1", "intent", "key_pair", token="r-1-ssh", region=REGION)  # by its deterministic name
    described = [
        _described("instance", "i-a", "r-1", "tok-a"),
        _described("instance", "i-b", "r-1", "tok-b"),
        _described("instance", "i-a-twin", "r-2", "tok-a"),   # same token, other run: the tag must match too
        _described("key_pair", "r-1-ssh", "r-1", "r-1-ssh"),
    ]
    sel = from_ledger(ledger.outstanding(), region=REGION, described=described, now=NOW)
    chosen = {o.id: o for o in sel.chosen}
    assert set(chosen) == {"i-a", "i-b", "r-1-ssh"}
    assert chosen["i-a"].token == "tok-a" and chosen["i-a"].resolves_intent
    assert "found by client token and perfci:run-id tag" in chosen["i-a"].reason
    assert chosen["i-b"].token == "tok-b" and not chosen["i-b"].resolves_intent
    assert chosen["r-1-ssh"].resolves_intent
    assert [e.token for e in sel.unresolved] == ["tok-gone"]


def test_teardown_finds_a_lost_run_instances_by_token_and_closes_what_never_existed(
    moto: MotoServer, tmp_path: Path
) -> None:
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-lost-1", tmp_path, instances=2)
    lines = [ln for ln in ledger.path.read_text().splitlines()
             if not ('"created"' in ln and made["instances"][0] in ln)]  # its "created" line never got written
    ledger.path.write_text("\n".join(lines) + "\n")
    ledger.record("run-lost-1", "intent", "instance", token="never-answered", region=REGION)  # the call failed
    report = engine.teardown(Context(ec2, waiter_delay=1), ledger, "run-lost-1")
    assert sorted(report.ids("deleted", "instance")) == sorted(made["instances"])
    assert report.closed_intents == ["never-answered"]
    assert ledger.outstanding() == [] and resources(moto) == NOTHING


def test_key_pair_is_deleted_by_the_id_recorded_at_creation(moto: MotoServer, tmp_path: Path) -> None:
    """Our key pair went; another run made one with the same name: ours is gone, theirs stays."""
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-named-1", tmp_path, instances=0)
    ec2.delete_key_pair(KeyName=made["key"].name)
    ec2.create_key_pair(KeyName=made["key"].name, KeyType="ed25519")
    report = engine.teardown(Context(ec2), ledger, "run-named-1")
    assert report.ids("already_gone", "key_pair") == [made["key"].name]
    assert made["key"].name in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    ec2.delete_key_pair(KeyName=made["key"].name)


def _without_key_pair_id(ledger: Ledger) -> None:
    """The ledger an older perfci (or a lost "created" line) leaves: the key pair known by name only."""
    lines = [json.loads(ln) for ln in ledger.path.read_text().splitlines() if ln.strip()]
    for line in lines:
        line.get("data", {}).pop("key_pair_id", None)
    ledger.path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("namesake_tags", [{"perfci:run-id": "run-other-1"}, {}], ids=["other-run", "untagged"])
def test_key_pair_without_recorded_id_is_never_deleted_by_bare_name(
    moto: MotoServer, tmp_path: Path, namesake_tags: dict[str, str]
) -> None:
    """Ledger lines lacking key_pair_id: our key pair went, a namesake (another run's, or nobody's)
    holds the name now. Only the perfci:run-id tag could prove it ours, and it does not: left alone,
    its private key file too; the run's ledger line is closed as already gone."""
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-named-2", tmp_path, instances=0)
    _without_key_pair_id(ledger)
    name = made["key"].name
    ec2.delete_key_pair(KeyName=name)
    spec = [{"ResourceType": "key-pair", "Tags": [{"Key": k, "Value": v} for k, v in namesake_tags.items()]}]
    ec2.create_key_pair(KeyName=name, KeyType="ed25519", **({"TagSpecifications": spec} if namesake_tags else {}))
    theirs = tmp_path / ".keys" / f"{name}.pem"
    theirs.write_text("the namesake's key file\n")
    report = engine.teardown(Context(ec2, key_dir=tmp_path / ".keys"), ledger, "run-named-2")
    [out] = [o for o in report.outcomes if o.kind == "key_pair"]
    assert out.status == "already_gone", out
    assert "left alone" in out.detail
    assert name in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert theirs.is_file()
    assert ledger.outstanding() == []
    ec2.delete_key_pair(KeyName=name)


def test_key_pair_without_recorded_id_is_deleted_when_its_tag_names_the_run(moto: MotoServer, tmp_path: Path) -> None:
    """The same ledger, and the key pair under the name is the run's own (its run-id tag says so): deleted."""
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    made = provision(ec2, ledger, "run-named-3", tmp_path, instances=0)
    _without_key_pair_id(ledger)
    report = engine.teardown(Context(ec2, key_dir=tmp_path / ".keys"), ledger, "run-named-3")
    assert report.ids("deleted", "key_pair") == [made["key"].name]
    assert made["key"].name not in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert not made["key"].path.exists()


def test_key_pair_without_run_id_is_not_deleted_by_name(moto: MotoServer) -> None:
    """An orphan known by name with no run id at all cannot prove anything: a failure, nothing deleted."""
    ec2: Any = moto.client("ec2")
    ec2.create_key_pair(KeyName="someones-key", KeyType="ed25519")
    [out] = KeyPairKind(Context(ec2)).delete([Orphan(kind="key_pair", id="someones-key", run_id=None, reason="t")])
    assert out.status == "failed" and "not deleted by bare name" in out.detail
    assert "someones-key" in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    ec2.delete_key_pair(KeyName="someones-key")


# --- the registry ---------------------------------------------------------------------------------------


def test_registry_is_lazy_and_every_entry_names_its_kind() -> None:
    code = ("import sys, pytest_perfci.cleanup.engine, pytest_perfci.cleanup.kinds; "
            "print(sorted(m for m in sys.modules if m.startswith(('pytest_perfci.providers', 'boto'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # importing the engine registers and imports no kind
    for name in KINDS:
        cls = kind_class(name)
        assert issubclass(cls, ResourceKind) and cls.name == name
    assert [k for k in sorted(KINDS, key=lambda n: kind_class(n).order)] == [
        "qemu_guest", "netns", "cluster", "instance", "key_pair", "placement_group", "security_group"]


def test_a_failing_kind_does_not_stop_one_that_does_not_need_it(moto: MotoServer, tmp_path: Path) -> None:
    ec2: Any = moto.client("ec2")
    made = provision(ec2, Ledger(tmp_path / "ledger.jsonl"), "run-keyfail-1", tmp_path, instances=0)
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_key_pairs", "UnauthorizedOperation")
        stub.add_response("delete_security_group", {})
        stub.add_response("describe_security_groups", {"SecurityGroups": []})  # verification after delete
        report = engine.reap(Context(ec2), [
            Orphan(kind="key_pair", id=made["key"].name, run_id="r", reason="t"),
            Orphan(kind="security_group", id=made["group"], run_id="r", reason="t"),
        ])
    assert [(o.kind, o.status) for o in report.outcomes] == [("key_pair", "failed"), ("security_group", "deleted")]
    assert "UnauthorizedOperation" in report.failed[0].detail


def test_teardown_goes_by_the_ledger_when_listing_fails_and_never_closes_an_unanswered_intent(
    moto: MotoServer, tmp_path: Path
) -> None:
    ec2: Any = moto.client("ec2")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    provision(ec2, ledger, "run-blind-1", tmp_path)
    ledger.record("run-blind-1", "intent", "instance", token="maybe-created", region=REGION)

    def deny(params: dict[str, Any], **_: Any) -> Any:
        if any(f.get("Name") == f"tag:{TAG_RUN_ID}" for f in params.get("Filters", [])):
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DescribeInstances")
        return None

    ec2.meta.events.register("before-parameter-build.ec2.DescribeInstances", deny)
    lines: list[str] = []
    with pytest.raises(engine.TeardownError, match="instance resources could not be listed"):
        engine.teardown(Context(ec2, progress=lines.append, waiter_delay=1), ledger, "run-blind-1")
    assert any("could not list instance resources (ClientError" in line for line in lines)
    assert resources(moto) == NOTHING  # everything the ledger names went anyway
    assert [e.token for e in ledger.outstanding()] == ["maybe-created"]
