"""EC2 provider against a real moto server (own process, 127.0.0.1) and real OpenSSH sshd on loopback.

Instances live in moto; SSH goes to a local sshd: the `address` callback maps every instance to
"127.0.0.1:<sshd port>" and authorises the run's freshly created ed25519 key there, so the key pair
the provider created is the one that logs in. Errors are injected per call with botocore
`before-call` hooks on the provider's own client; everything else is moto's real behaviour.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.base import Target
from pytest_perfci.providers.ec2 import (
    AmiMismatch,
    CapacityUnavailable,
    Catalog,
    EC2Provider,
    EC2SetupError,
    NoCredentials,
    QuotaExceeded,
    UnknownInstanceType,
)
from pytest_perfci.providers.ec2.ami import SSM_DEFAULTS, login_user
from pytest_perfci.providers.ec2.network import default_cidr
from pytest_perfci.settings import Settings
from tests.moto_server import MotoServer
from tests.sshd import SshdServer, sshd_server  # noqa: F401 (fixture)

AL2023_X86 = "ami-0d27e0fb3bac4d724"   # what moto's SSM serves for al2023-ami-kernel-default-x86_64
AL2023_ARM = "ami-065b1b834d2a83a7a"   # ... and for the arm64 parameter


def make_settings(tmp_path: Path, moto: MotoServer, *types: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "instance_type": types, "region": "us-east-1", "run_id": kw.pop("run_id", "perfci-test-run"),
        "owner": "tester", "results": tmp_path / "results", "endpoint_url": moto.url, "ssh_user": "root",
    }
    base.update(kw)
    return Settings(**base)


def resources(moto: MotoServer) -> dict[str, list[str]]:
    """What exists in moto now: live (not terminated) instances, key pairs, non-default groups."""
    ec2: Any = moto.client("ec2")
    live = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    return {"instances": live, "key_pairs": keys, "security_groups": groups}


def all_instances(moto: MotoServer) -> list[dict[str, Any]]:
    ec2: Any = moto.client("ec2")
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


NOTHING: dict[str, list[str]] = {"instances": [], "key_pairs": [], "security_groups": []}


def inject(provider: EC2Provider, operation: str, decide: Callable[[dict[str, Any]], str | None]) -> list[dict]:
    """Make `operation` on the provider's EC2 client fail with the code `decide(params)` returns (None: real call).

    Delete operations go to the provider's teardown client (short timeouts, issue 16), the rest to its client."""
    seen: list[dict] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)
        code = decide(params)
        if code:
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)

    ec2 = provider.teardown_ec2 if operation.startswith(("Delete", "Terminate")) else provider.ec2
    ec2.meta.events.register(f"before-parameter-build.ec2.{operation}", hook)
    return seen


# -- catalogue and AMI --------------------------------------------------------------------------------


def test_catalog_lists_once_and_resolves_real_types(moto: MotoServer) -> None:
    ec2: Any = moto.client("ec2")
    calls: list[str] = []
    ec2.meta.events.register("before-call.ec2.DescribeInstanceTypes", lambda **kw: calls.append("x"))
    Catalog.forget()
    cat = Catalog(ec2)
    m7i, c7g = cat.resolve(["m7i.metal-24xl", "c7g.metal"])
    cat.resolve(["m7i.2xlarge", "c7i.large"])
    assert (m7i.arch, m7i.vcpus, m7i.metal, m7i.family) == ("x86_64", 96, True, "m7i")
    assert (c7g.arch, c7g.metal) == ("arm64", True)
    Catalog(ec2).resolve(["c7g.metal"])  # a second Catalog (the provider's, after the plugin's) reuses it
    assert len(calls) == 1, "one paginated listing per region, not one call per name"
    assert "us-east-1a" in cat.zones_offering("m7i.metal-24xl")


def test_unknown_type_is_one_line_with_closest_names(moto: MotoServer) -> None:
    with pytest.raises(UnknownInstanceType) as info:
        Catalog(moto.client("ec2")).resolve(["m7i.metal-24xl", "m7i.metall"])
    assert str(info.value) == "unknown instance type 'm7i.metall' in us-east-1; closest: m7i.metal-24xl, m7i.metal-48xl"


def test_moto_serves_the_default_ssm_parameters(moto: MotoServer) -> None:
    ssm: Any = moto.client("ssm")
    got = ssm.get_parameters(Names=list(SSM_DEFAULTS.values()))
    assert got["InvalidParameters"] == []
    assert {p["Name"]: p["Value"] for p in got["Parameters"]} == {
        SSM_DEFAULTS["x86_64"]: AL2023_X86, SSM_DEFAULTS["arm64"]: AL2023_ARM,
    }


def test_login_user_per_family() -> None:
    assert login_user("al2023-ami-2023.12.20260930.0-kernel-6.18-x86_64") == "ec2-user"
    assert login_user("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240207") == "ubuntu"
    assert login_user("debian-12-arm64-20240201") == "admin"


def test_default_cidr_never_opens_the_world() -> None:
    assert default_cidr(None, "http://127.0.0.1:5000") == "127.0.0.1/32"
    assert default_cidr(None, "https://ec2.us-east-1.amazonaws.com", lambda: "203.0.113.7\n") == "203.0.113.7/32"
    assert default_cidr("10.0.0.0/8", "https://ec2.us-east-1.amazonaws.com") == "10.0.0.0/8"


# -- validation: errors before any create ----------------------------------------------------------------


def _provider(settings: Settings, tmp_path: Path, lines: list[str] | None = None, **kw: Any) -> EC2Provider:
    out = lines if lines is not None else []
    return EC2Provider(settings, ledger=Ledger(tmp_path / "ledger.jsonl"), progress=out.append, **kw)


def test_targets_cost_one_listing_and_create_nothing(tmp_path: Path, moto: MotoServer) -> None:
    """Targets are resolved names (issue 8: m7i.metal is an alias), so naming them reads the catalogue."""
    Catalog.forget()
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl", "c7g.metal"), tmp_path)
    calls: list[str] = []
    p.ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
    assert p.targets() == [
        Target(name="m7i.metal-24xl", provider="ec2", instance_type="m7i.metal-24xl"),
        Target(name="c7g.metal", provider="ec2", instance_type="c7g.metal"),
    ]
    assert calls == ["DescribeInstanceTypes"] and resources(moto) == NOTHING


def test_unknown_type_fails_validation_and_acquire_creates_nothing(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "c7g.metal", "m7i.metall"), tmp_path)
    with pytest.raises(UnknownInstanceType, match=r"^unknown instance type 'm7i.metall' in us-east-1; "
                                                  r"closest: m7i.metal-24xl, m7i.metal-48xl$"):
        p.validate()
    with pytest.raises(UnknownInstanceType):
        p.acquire(p.targets()[0])
    assert resources(moto) == NOTHING
    assert not (tmp_path / "ledger.jsonl").exists()


def test_arm64_ami_for_x86_type_is_an_error_before_any_create(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl", ami=(AL2023_ARM,)), tmp_path)
    with pytest.raises(AmiMismatch) as info:
        p.acquire(p.targets()[0])
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"AMI {AL2023_ARM} (from --ami) is arm64 but m7i.metal-24xl is x86_64")
    assert resources(moto) == NOTHING


def test_per_arch_override_and_ssm_default(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl", "c7g.metal", ami=(f"arm64={AL2023_ARM}",),
                                ssh_user=None), tmp_path)
    plan = p.validate()
    assert plan["m7i.metal-24xl"][1].ami == AL2023_X86 and plan["m7i.metal-24xl"][1].source == SSM_DEFAULTS["x86_64"]
    assert plan["c7g.metal"][1].ami == AL2023_ARM and plan["c7g.metal"][1].source == "--ami arm64="
    assert plan["c7g.metal"][1].user == "ec2-user"
    assert resources(moto) == NOTHING


def test_no_credentials_is_one_clear_line(tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no IMDS probe to 169.254.169.254
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl"), tmp_path)
    with pytest.raises(NoCredentials) as info:
        p.validate()
    assert "\n" not in str(info.value) and str(info.value).startswith("no AWS credentials found")
    assert resources(moto) == NOTHING


# -- provisioning end to end: moto + real sshd ----------------------------------------------------------


def sshd_address(sshd: SshdServer, provider_ref: list[EC2Provider], mapped: list[str]) -> Callable[[dict], str]:
    """Map every instance to the local sshd, authorising the run's own key there (it is the key that logs in)."""
    lock = threading.Lock()

    def address(instance: dict[str, Any]) -> str:
        key = provider_ref[0]._key
        assert key is not None
        pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key.path)], check=True, capture_output=True,
                             text=True).stdout.strip()
        auth = sshd.workdir / "authorized_keys"
        with lock:
            if pub not in auth.read_text():
                with auth.open("a") as fh:
                    fh.write(pub + "\n")
            mapped.append(instance["InstanceId"])
        return f"127.0.0.1:{sshd.port}"

    return address


def test_provision_two_types_reach_them_and_release_everything(
    tmp_path: Path, moto: MotoServer, sshd_server: SshdServer  # noqa: F811
) -> None:
    settings = make_settings(tmp_path, moto, "m7i.metal-24xl", "c7g.metal", root_volume_gb=50)
    ref: list[EC2Provider] = []
    mapped: list[str] = []
    lines: list[str] = []
    p = _provider(settings, tmp_path, lines, address=sshd_address(sshd_server, ref, mapped), waiter_delay=1,
                  ssh_ready_timeout=30)
    ref.append(p)
    ledger = p.ledger
    # The sshd only knew its own client key: take it away so only the run's key can log in.
    (sshd_server.workdir / "authorized_keys").write_text("")
    try:
        hosts = {t.name: p.acquire(t) for t in p.targets()}
        assert hosts["m7i.metal-24xl"].run("echo ok").stdout == "ok\n"
        assert hosts["c7g.metal"].run("echo ok").stdout == "ok\n"
        assert hosts["c7g.metal"]._known == {"instance_type": "c7g.metal", "region": "us-east-1",
                                              "ami": AL2023_ARM}

        key_path = Path(p.instances()[0].key_path)
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert all(key_path.read_text()[:40] not in line for line in lines), "private key printed"
        ec2: Any = moto.client("ec2")
        insts = {i["InstanceType"]: i for i in all_instances(moto)}
        assert set(insts) == {"m7i.metal-24xl", "c7g.metal"}
        assert sorted(mapped) == sorted(i["InstanceId"] for i in insts.values())
        sg_id = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["perfci-test-run-ssh"]}]
                                             )["SecurityGroups"][0]["GroupId"]
        for itype, inst in insts.items():
            tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
            assert tags["perfci:run-id"] == "perfci-test-run" and tags["perfci:owner"] == "tester"
            assert tags["Name"] == f"perfci-test-run-{itype}" and tags["perfci:suite"] == "-"
            assert tags["perfci:expires-at"].endswith("Z")
            assert inst["ImageId"] == (AL2023_ARM if itype == "c7g.metal" else AL2023_X86)
            assert inst["MetadataOptions"]["HttpTokens"] == "required"
            assert inst["KeyName"] == "perfci-test-run-ssh"
            assert [g["GroupId"] for g in inst["SecurityGroups"]] == [sg_id]
            attr = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"],
                                                   Attribute="instanceInitiatedShutdownBehavior")
            assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
            ud = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
            assert "perfci self-destruct" in base64.b64decode(ud["UserData"]["Value"]).decode()
            vol_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
            vol = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]
            assert (vol["Encrypted"], vol["Size"], vol["VolumeType"]) == (True, 50, "gp3")
            assert {t["Key"]: t["Value"] for t in vol["Tags"]}["perfci:run-id"] == "perfci-test-run"
        group = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
        assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], [c["CidrIp"] for c in r["IpRanges"]])
                for r in group["IpPermissions"]] == [("tcp", 22, 22, ["127.0.0.1/32"])]
        kp = ec2.describe_key_pairs(KeyNames=["perfci-test-run-ssh"])["KeyPairs"][0]
        assert kp["KeyType"] == "ed25519"
        assert any("accept-new" in line for line in lines)
        assert any(line.startswith("m7i.metal-24xl i-") and line.split()[2] == "running" for line in lines)
    finally:
        p.release_all()
    assert resources(moto) == NOTHING
    assert not key_path.exists()
    entries = list(ledger.entries())
    kinds: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        kinds.setdefault((e.resource, e.token or ""), []).append(e.kind)
    assert sorted(kinds.values()) == [["intent", "created", "deleted"]] * 4  # 2 instances, key pair, SG
    assert ledger.outstanding("perfci-test-run") == []


def test_fan_out_provisions_in_parallel(tmp_path: Path, moto: MotoServer, sshd_server: SshdServer) -> None:  # noqa: F811
    types = ("m7i.large", "m7i.xlarge", "m7i.2xlarge", "c7i.large", "c7i.xlarge", "r7i.large", "m7g.large",
             "c7g.large")
    ref: list[EC2Provider] = []
    p = _provider(make_settings(tmp_path, moto, *types), tmp_path,
                  address=sshd_address(sshd_server, ref, []), waiter_delay=1, ssh_ready_timeout=30)
    ref.append(p)
    # Parallel means several RunInstances in flight at once: count them (no wall-clock assertion,
    # this machine is shared; benchmarks/provision_fanout.py measures the time).
    lock = threading.Lock()
    in_flight = [0]
    most = [0]

    def slow_create(params: Any) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(1.0)  # every create takes >= 1 s, long enough for the others to start
        with lock:
            in_flight[0] -= 1

    seen = inject(p, "RunInstances", slow_create)
    try:
        hosts = [p.acquire(t) for t in p.targets()]
        assert len(hosts) == 8 and len(seen) == 8
        assert most[0] >= 4, f"at most {most[0]} RunInstances ran at once: not provisioned in parallel"
    finally:
        p.release_all()
    assert resources(moto) == NOTHING


# -- failure taxonomy ------------------------------------------------------------------------------------


def test_capacity_in_first_az_moves_to_the_next(tmp_path: Path, moto: MotoServer) -> None:
    lines: list[str] = []
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl"), tmp_path, lines,
                  address=lambda inst: "127.0.0.1:9", ssh_ready_timeout=0.1, waiter_delay=1)
    first_zone = Catalog(moto.client("ec2")).zones_offering("m7i.metal-24xl")[0]
    subnet_zone = {s["SubnetId"]: s["AvailabilityZone"] for s in moto.client("ec2").describe_subnets()["Subnets"]}
    seen = inject(p, "RunInstances", lambda params: "InsufficientInstanceCapacity"
                  if subnet_zone[params["SubnetId"]] == first_zone else None)
    try:
        with pytest.raises(Exception, match="SSH not ready"):  # nothing listens on :9; launch itself worked
            p.acquire(p.targets()[0])
        assert [subnet_zone[s["SubnetId"]] for s in seen][:1] == [first_zone]
        assert len(seen) == 2 and subnet_zone[seen[1]["SubnetId"]] != first_zone
        assert seen[0]["ClientToken"] != seen[1]["ClientToken"]
        (inst,) = all_instances(moto)
        assert inst["Placement"]["AvailabilityZone"] == subnet_zone[seen[1]["SubnetId"]]
        assert any(f"InsufficientInstanceCapacity in {first_zone}" in line for line in lines)
    finally:
        p.release_all()
    assert resources(moto) == NOTHING
    assert p.ledger.outstanding("perfci-test-run") == []


def test_capacity_exhausted_everywhere_is_capacity_unavailable(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl"), tmp_path)
    inject(p, "RunInstances", lambda params: "InsufficientInstanceCapacity")
    with pytest.raises(CapacityUnavailable) as info:
        p.acquire(p.targets()[0])
    zones = Catalog(moto.client("ec2")).zones_offering("m7i.metal-24xl")
    assert str(info.value).startswith("no capacity for m7i.metal-24xl in any AZ (")
    assert [a[0] for a in info.value.attempts] == zones
    p.release_all()
    assert resources(moto) == NOTHING


@pytest.mark.parametrize(("code", "quota"), [
    ("VcpuLimitExceeded", "L-1216C47A"),
    ("InstanceLimitExceeded", "legacy instance-count limit"),
])
def test_quota_error_names_the_quota(tmp_path: Path, moto: MotoServer, code: str, quota: str) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl"), tmp_path)
    seen = inject(p, "RunInstances", lambda params: code)
    with pytest.raises(QuotaExceeded) as info:
        p.acquire(p.targets()[0])
    assert len(seen) == 1, "a quota error must not be retried in other AZs"
    assert info.value.code == code and quota in str(info.value) and "\n" not in str(info.value)
    p.release_all()
    assert resources(moto) == NOTHING


def test_spot_falls_back_to_on_demand(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.metal-24xl", spot=True), tmp_path,
                  address=lambda inst: "127.0.0.1:9", ssh_ready_timeout=0.1, waiter_delay=1)
    seen = inject(p, "RunInstances", lambda params: "InsufficientInstanceCapacity"
                  if "InstanceMarketOptions" in params else None)
    try:
        with pytest.raises(Exception, match="SSH not ready"):
            p.acquire(p.targets()[0])
        assert ["InstanceMarketOptions" in s for s in seen] == [True, False]
        (inst,) = all_instances(moto)
        assert "InstanceLifecycle" not in inst  # on-demand
    finally:
        p.release_all()
    assert resources(moto) == NOTHING


# -- teardown -------------------------------------------------------------------------------------------


def _provision_without_ssh(tmp_path: Path, moto: MotoServer, *types: str, run_id: str = "perfci-test-run"
                           ) -> EC2Provider:
    p = _provider(make_settings(tmp_path, moto, *types, run_id=run_id), tmp_path,
                  address=lambda inst: "127.0.0.1:9", ssh_ready_timeout=0.1, waiter_delay=1)
    for t in p.targets():
        with pytest.raises(Exception, match="SSH not ready"):
            p.acquire(t)
    return p


def test_teardown_is_idempotent(tmp_path: Path, moto: MotoServer) -> None:
    p = _provision_without_ssh(tmp_path, moto, "m7i.large", "c7g.large")
    assert len(resources(moto)["instances"]) == 2
    p.release_all()
    assert resources(moto) == NOTHING
    p.release_all()  # nothing outstanding: no error, nothing to do
    again = engine.teardown(Context(p.ec2), p.ledger, "perfci-test-run")
    assert again.outcomes == [] and again.ok
    assert resources(moto) == NOTHING


def test_teardown_from_the_ledger_alone(tmp_path: Path, moto: MotoServer) -> None:
    """A new provider object (think: a new process after SIGKILL) with only the ledger cleans everything."""
    p = _provision_without_ssh(tmp_path, moto, "m7i.large", "c7g.large")
    key_path = p.instances()[0].key_path
    assert len(resources(moto)["instances"]) == 2
    del p
    fresh = _provider(make_settings(tmp_path, moto, run_id="perfci-test-run"), tmp_path)
    report = fresh.release_all()
    assert report is not None and len(report.ids("deleted", "instance")) == 2
    assert resources(moto) == NOTHING
    assert not Path(key_path).exists()


def test_intent_without_created_line_is_found_by_client_token(tmp_path: Path, moto: MotoServer) -> None:
    """The process died between RunInstances returning and the ledger's created line."""
    p = _provision_without_ssh(tmp_path, moto, "m7i.large")
    ledger_path = tmp_path / "ledger.jsonl"
    lines = ledger_path.read_text().splitlines()
    kept = [ln for ln in lines if not (json.loads(ln)["resource"] == "instance"
                                       and json.loads(ln)["kind"] == "created")]
    assert len(kept) == len(lines) - 1
    ledger_path.write_text("\n".join(kept) + "\n")
    report = engine.teardown(Context(p.ec2), Ledger(ledger_path), "perfci-test-run")
    assert len(report.ids("deleted", "instance")) == 1
    assert resources(moto) == NOTHING
    assert Ledger(ledger_path).outstanding("perfci-test-run") == []


def test_terminate_batch_skips_instances_already_gone(tmp_path: Path, moto: MotoServer) -> None:
    p = _provision_without_ssh(tmp_path, moto, "m7i.large")
    p.ledger.record("perfci-test-run", "created", "instance", id="i-0123456789abcdef0", token="ghost")
    calls: list[list[str]] = []
    p.teardown_ec2.meta.events.register("before-parameter-build.ec2.TerminateInstances",
                               lambda params, **_: calls.append(list(params["InstanceIds"])))
    report = p.release_all()
    assert report is not None
    assert report.ids("already_gone") == ["i-0123456789abcdef0"] and len(report.ids("deleted", "instance")) == 1
    assert len(calls[0]) == 2  # one batched call for all, then again without the one that is gone
    assert resources(moto) == NOTHING


def test_security_group_in_use_is_retried(tmp_path: Path, moto: MotoServer) -> None:
    """moto lets a group go while instances use it; AWS answers DependencyViolation for a while."""
    p = _provision_without_ssh(tmp_path, moto, "m7i.large")
    answers = iter(["DependencyViolation"])
    seen = inject(p, "DeleteSecurityGroup", lambda params: next(answers, None))
    lines: list[str] = []
    p.progress = lines.append
    p.release_all()
    assert len(seen) == 2
    assert any("still in use; retrying" in line for line in lines)
    assert resources(moto) == NOTHING


def test_heartbeat_moves_tags_and_host_deadline(
    tmp_path: Path, moto: MotoServer, sshd_server: SshdServer  # noqa: F811
) -> None:
    ref: list[EC2Provider] = []
    state = tmp_path / "host-state"
    state.mkdir()
    (state / "expires-at").write_text("0\n")
    p = _provider(make_settings(tmp_path, moto, "m7i.large"), tmp_path, address=sshd_address(sshd_server, ref, []),
                  waiter_delay=1, ssh_ready_timeout=30, heartbeat_interval=0.3, host_state_dir=str(state))
    ref.append(p)
    try:
        p.acquire(p.targets()[0])
        (inst,) = all_instances(moto)
        first = {t["Key"]: t["Value"] for t in inst["Tags"]}["perfci:expires-at"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (inst,) = all_instances(moto)
            now_tag = {t["Key"]: t["Value"] for t in inst["Tags"]}["perfci:expires-at"]
            if now_tag != first and (state / "expires-at").read_text().strip() != "0":
                break
            time.sleep(0.2)
        assert now_tag > first, "heartbeat did not push perfci:expires-at forward"
        assert int((state / "expires-at").read_text()) > time.time() + 3600
    finally:
        p.release_all()
    assert resources(moto) == NOTHING


def test_failed_start_is_not_retried_and_still_cleaned(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(make_settings(tmp_path, moto, "m7i.large"), tmp_path)
    seen = inject(p, "CreateSecurityGroup", lambda params: "UnauthorizedOperation")
    for _ in range(2):
        with pytest.raises(EC2SetupError, match="^setting up the run's key pair/security group failed: "
                                                "UnauthorizedOperation"):
            p.acquire(p.targets()[0])
    assert len(seen) == 1, "a half-done start must not create the key pair again"
    assert resources(moto)["key_pairs"] == ["perfci-test-run-ssh"]
    p.release_all()
    assert resources(moto) == NOTHING
    assert p.ledger.outstanding("perfci-test-run") == []


def test_self_destruct_deadline_starts_at_readiness_not_launch(
    tmp_path: Path, moto: MotoServer, sshd_server: SshdServer  # noqa: F811
) -> None:
    """A boot that takes 50 min (the injected clock moves while the instance boots): the on-host deadline
    and the instance's and root volume's perfci:expires-at are ready + TTL, not launch + TTL."""
    from datetime import UTC, datetime, timedelta

    from pytest_perfci.tags import stamp

    t0 = datetime.now(UTC).replace(microsecond=0)
    now = [t0]
    ref: list[EC2Provider] = []
    launch_tags: list[str] = []
    mapped = sshd_address(sshd_server, ref, [])

    def slow_boot(instance: dict[str, Any]) -> str:
        launch_tags.append({t["Key"]: t["Value"] for t in instance["Tags"]}["perfci:expires-at"])
        now[0] = t0 + timedelta(minutes=50)
        return mapped(instance)

    state = tmp_path / "host-state"
    state.mkdir()
    lines: list[str] = []
    settings = make_settings(tmp_path, moto, "m7i.large")
    p = _provider(settings, tmp_path, lines, address=slow_boot, waiter_delay=1, ssh_ready_timeout=30,
                  heartbeat_interval=3600, host_state_dir=str(state), clock=lambda: now[0])
    ref.append(p)
    try:
        p.acquire(p.targets()[0])
        ready = t0 + timedelta(minutes=50) + settings.ttl
        assert launch_tags == [stamp(t0 + settings.ttl)]
        assert int((state / "expires-at").read_text()) == int(ready.timestamp())
        ec2: Any = moto.client("ec2")
        (inst,) = all_instances(moto)
        assert {t["Key"]: t["Value"] for t in inst["Tags"]}["perfci:expires-at"] == stamp(ready)
        (volume,) = ec2.describe_volumes()["Volumes"]
        assert {t["Key"]: t["Value"] for t in volume["Tags"]}["perfci:expires-at"] == stamp(ready)
        assert any(line.endswith(f"self-destruct at {stamp(ready)} (ready + TTL)") for line in lines), lines
    finally:
        p.release_all()
    assert resources(moto) == NOTHING
