"""kops provider against the kops stand-in (tests/standins/kops) whose state lives in a moto S3
bucket and whose nodes are moto EC2 instances: create, validate (concatenated JSON, a failing
attempt first), export kubecfg, delete with retries; the ledger; the cleanup engine's "cluster" kind."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Orphan
from pytest_perfci.providers import kops
from pytest_perfci.providers.kops import (
    ClusterNotReady,
    KopsCluster,
    KopsConfig,
    KopsError,
    parse_validate_output,
    perfci_tags,
    split_json_stream,
)
from tests.moto_server import MotoServer

STANDINS = Path(__file__).parent / "standins"
BUCKET = "perfci-kops-state"


@pytest.fixture
def standin_env(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-ins first on PATH (run by this venv's python), a state bucket, a call log."""
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PERFCI_STANDIN_LOG", str(log))
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_INTERVAL", "0.05")
    monkeypatch.delenv("KOPS_STATE_STORE", raising=False)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    return {"log": log, "s3": s3, "ec2": moto.client("ec2"), "state": f"s3://{BUCKET}/clusters"}


def calls(log: Path, prog: str = "kops") -> list[list[str]]:
    if not log.exists():
        return []
    return [e["argv"] for e in map(json.loads, log.read_text().splitlines()) if e["prog"] == prog]


def state_keys(env: dict[str, Any], name: str) -> list[str]:
    resp = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"clusters/{name}/")
    return [o["Key"] for o in resp.get("Contents", [])]


def live_instances(env: dict[str, Any], name: str) -> list[dict[str, Any]]:
    out = []
    for r in env["ec2"].describe_instances(Filters=[
        {"Name": "tag:KubernetesCluster", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])["Reservations"]:
        out.extend(r["Instances"])
    return out


def make(env: dict[str, Any], tmp_path: Path, run_id: str = "perfci-test-kops-1",
         ttl: timedelta = timedelta(hours=2), **kw: Any) -> tuple[KopsCluster, Ledger, list[str]]:
    name = kops.cluster_name(run_id)
    cfg = KopsConfig(name=name, state=env["state"], zones=("us-east-1a",), node_count=2, node_size="c7i.2xlarge",
                     control_plane_size="m7i.large", kubernetes_version="1.31.0",
                     tags=perfci_tags(run_id, "alice", ttl, env["state"]), delete_backoff=0.01, **kw)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    lines: list[str] = []
    return KopsCluster(cfg, run_id=run_id, ledger=ledger, workdir=tmp_path / "kube", region="us-east-1",
                       progress=lines.append), ledger, lines


# --- pure -----------------------------------------------------------------------------------------


def test_validate_output_keeps_every_concatenated_object_in_order() -> None:
    text = ('{"failures":[{"type":"InstanceGroup","name":"nodes-us-east-1a","message":"x"}],"nodes":[]}'
            '{"nodes":[{"name":"i-1","zone":"us-east-1a","role":"node","hostname":"i-1","status":"True"}]}')
    objs = parse_validate_output(text)
    assert len(objs) == 2 and "failures" not in objs[-1]
    done, rest = split_json_stream(text[:50])
    assert done == [] and rest == text[:50]
    done, rest = split_json_stream(text + '{"nod')
    assert len(done) == 2 and rest == '{"nod'


def test_create_args_carry_the_real_flags_and_perfci_tags() -> None:
    tags = perfci_tags("perfci-x-1", "bob smith", timedelta(hours=1), "s3://b/p",
                       now=datetime(2026, 1, 1, tzinfo=UTC))
    cfg = KopsConfig(name="perfci-x-1.k8s.local", state="s3://b/p", zones=("us-east-1a", "us-east-1b"),
                     node_count=100, node_size="c7i.2xlarge", tags=tags)
    args = cfg.create_args()
    assert args[:3] == ["kops", "create", "cluster"]
    assert args[args.index("--dns") + 1] == "none"
    assert args[args.index("--zones") + 1] == "us-east-1a,us-east-1b"
    labels = args[args.index("--cloud-labels") + 1]
    assert "perfci:run-id=perfci-x-1" in labels and "perfci:expires-at=2026-01-01T01:00:00Z" in labels
    assert "perfci:owner=bob-smith" in labels
    assert args[-1] == "--yes"
    with pytest.raises(ValueError, match="cannot hold"):
        kops.cloud_labels({"a": "x,y"})


def test_state_store_prefers_the_setting_then_kops_own_variable() -> None:
    assert kops.state_store("s3://a", {"KOPS_STATE_STORE": "s3://b"}) == "s3://a"
    assert kops.state_store(None, {"KOPS_STATE_STORE": "s3://b"}) == "s3://b"
    assert kops.state_store(None, {}) is None


# --- against the stand-in -------------------------------------------------------------------------


def test_happy_path_create_validate_export_delete(standin_env: dict[str, Any], tmp_path: Path) -> None:
    life, ledger, lines = make(standin_env, tmp_path)
    name = life.config.name
    handle = life.up()
    assert handle.kubeconfig.is_file() and oct(handle.kubeconfig.stat().st_mode)[-3:] == "600"
    assert f"current-context: {name}" in handle.kubeconfig.read_text()
    assert state_keys(standin_env, name) and len(live_instances(standin_env, name)) == 3
    tags = {t["Key"]: t["Value"] for t in live_instances(standin_env, name)[0]["Tags"]}
    assert tags["perfci:run-id"] == life.run_id and tags["perfci:kops-state"] == standin_env["state"]
    # one progress line per validate attempt: the failing one (with kops' failures), then the passing one
    attempts = [ln for ln in lines if "validate attempt" in ln]
    assert len(attempts) == 2
    assert "did not have enough nodes 0 vs 2" in attempts[0] and "no failures" in attempts[1]
    assert [o.id for o in ledger.outstanding()] == [name]
    assert life.delete() == "deleted"
    assert life.delete() == "already_gone"  # idempotent, no second kops call
    assert state_keys(standin_env, name) == [] and live_instances(standin_env, name) == []
    assert ledger.outstanding() == []
    verbs = [a[:2] for a in calls(standin_env["log"])]
    assert verbs == [["create", "cluster"], ["validate", "cluster"], ["export", "kubecfg"], ["delete", "cluster"]]
    assert not handle.kubeconfig.exists()


def test_validate_never_succeeding_reports_failures_and_teardown_still_deletes(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_NOT_READY", "never")
    life, ledger, lines = make(standin_env, tmp_path)
    with pytest.raises(ClusterNotReady) as info:
        try:
            life.up()
        finally:
            life.delete()
    assert "not ready" in str(info.value) and "did not have enough nodes" in str(info.value)
    assert "exit 1" in str(info.value)
    assert info.value.failures and info.value.failures[0]["type"] == "InstanceGroup"
    assert sum("validate attempt" in ln for ln in lines) == 3
    assert ["delete", "cluster"] in [a[:2] for a in calls(standin_env["log"])]
    assert state_keys(standin_env, life.config.name) == [] and ledger.outstanding() == []


def test_create_failing_half_way_still_deletes_what_was_made(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_CREATE", "fail-half")
    life, ledger, _ = make(standin_env, tmp_path)
    name = life.config.name
    with pytest.raises(KopsError, match="quota exceeded"):
        try:
            life.up()
        finally:
            assert len(live_instances(standin_env, name)) == 1  # the control plane got made
            assert [e.kind for e in ledger.entries()] == ["intent"]
            life.delete()
    assert live_instances(standin_env, name) == [] and state_keys(standin_env, name) == []
    assert ledger.outstanding() == []


def test_delete_retries_transient_failures_and_gone_is_success(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_NOT_READY", "0")
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_DELETE_FAILS", "2")
    life, _, lines = make(standin_env, tmp_path)
    life.up()
    assert life.delete() == "deleted"
    assert sum("retrying" in ln for ln in lines) == 2
    # a cluster someone else already deleted: "not found" from kops is success
    assert kops.delete_cluster("kops", life.config.name, standin_env["state"], backoff=0) == "already_gone"


def test_delete_that_never_succeeds_says_how_to_finish(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_NOT_READY", "0")
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_DELETE_FAILS", "9")
    life, ledger, _ = make(standin_env, tmp_path, delete_attempts=2)
    life.up()
    with pytest.raises(KopsError, match="perfci reap"):
        life.delete()
    assert [o.id for o in ledger.outstanding()] == [life.config.name]  # still on the books for the reaper


def test_reaper_finds_expired_cluster_by_tags_and_deletes_it_with_kops(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_NOT_READY", "0")
    expired, _, _ = make(standin_env, tmp_path / "a", run_id="perfci-expired-1", ttl=timedelta(minutes=-5))
    alive, _, _ = make(standin_env, tmp_path / "b", run_id="perfci-alive-1")
    expired.up()
    alive.up()
    ec2 = standin_env["ec2"]
    found = engine.find(Context(ec2), expired=True)
    clusters = [o for o in found if o.kind == "cluster"]
    assert [o.id for o in clusters] == [expired.config.name]
    report = engine.reap(Context(ec2), found)
    assert report.ok, report.failed
    assert report.outcomes[0].kind == "cluster" and report.outcomes[0].status == "deleted"
    assert state_keys(standin_env, expired.config.name) == []
    assert live_instances(standin_env, expired.config.name) == []
    assert len(live_instances(standin_env, alive.config.name)) == 3
    alive.delete()


def test_reaper_ledger_mode_deletes_a_cluster_whose_run_was_killed(
    standin_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_STANDIN_KOPS_NOT_READY", "0")
    monkeypatch.setenv("KOPS_STATE_STORE", standin_env["state"])
    life, ledger, _ = make(standin_env, tmp_path)
    life.up()  # ... and the process dies: no delete
    orphans = engine.find(Context(standin_env["ec2"]), ledger=ledger)
    assert [(o.kind, o.id) for o in orphans] == [("cluster", life.config.name)]
    report = engine.reap(Context(standin_env["ec2"]), orphans, ledger=ledger)
    assert report.ok and ledger.outstanding() == []
    assert state_keys(standin_env, life.config.name) == []


def test_reaper_without_state_store_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPS_STATE_STORE", raising=False)
    monkeypatch.delenv("PERFCI_KOPS_STATE", raising=False)
    orphan = Orphan(kind="cluster", id="never-described.k8s.local", run_id="r-1", reason="test")
    [outcome] = kops.ClusterKind(Context()).delete([orphan])
    assert outcome.status == "failed" and "KOPS_STATE_STORE" in outcome.detail
