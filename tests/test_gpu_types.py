"""GPU instance types (issue 19): GpuInfo from DescribeInstanceTypes, GPU query terms, requires(gpu=...),
the Deep Learning AMI per architecture, and `perfci plan`'s G/VT and P quota classes.

Against a moto server whose DescribeInstanceTypes data is a copy of AWS's catalogue, GpuInfo included.
moto's SSM does not serve the /aws/service/deeplearning parameters (and refuses to store /aws names), so
the GPU AMI lookup is tested twice: against moto as is (the parameter is missing: a one-line error before
anything is created) and with botocore's Stubber answering GetParameter on a real SSM client, the images
themselves still described by moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.ec2.models.instance_types import INSTANCE_TYPES  # the raw items moto serves

from pytest_perfci import markers
from pytest_perfci import plan as planning
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.models.instance_query import Query, QueryError, resolve
from pytest_perfci.models.instance_types import GpuInfo, InstanceTypeInfo
from pytest_perfci.providers.ec2 import EC2Provider
from pytest_perfci.providers.ec2.ami import SSM_DEFAULTS, SSM_GPU_DEFAULTS, AmiError, AmiResolver
from pytest_perfci.providers.ec2.catalog import Catalog
from pytest_perfci.settings import Settings, SettingsError, load_settings
from tests.moto_server import MotoServer

AL2023_X86 = "ami-0d27e0fb3bac4d724"  # what moto's SSM serves for the AL2023 parameters
AL2023_ARM = "ami-065b1b834d2a83a7a"


@pytest.fixture(scope="module")
def types(moto_session: MotoServer) -> dict[str, InstanceTypeInfo]:
    Catalog.forget()
    return dict(Catalog(moto_session.client("ec2")).all())


@pytest.fixture(scope="module")
def offered(moto_session: MotoServer) -> frozenset[str]:
    return Catalog(moto_session.client("ec2")).offered()


def raw_gpus(name: str) -> list[tuple[int, str, str, int]]:
    item = INSTANCE_TYPES[name].get("GpuInfo") or {}
    return [(g["Count"], g["Manufacturer"].lower(), g["Name"], g["MemoryInfo"]["SizeInMiB"]) for g in item.get("Gpus", [])]


# --- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["g5.xlarge", "g5.48xlarge", "g5g.16xlarge", "g6.xlarge", "p4d.24xlarge",
                                  "p5.48xlarge", "g4dn.metal", "m7i.large", "c7g.metal"])
def test_catalogue_carries_the_apis_gpu_info(types: dict[str, InstanceTypeInfo], name: str) -> None:
    t = types[name]
    assert [(g.count, g.manufacturer, g.model, g.memory_mib) for g in t.gpus] == raw_gpus(name)
    assert t.gpu_count == sum(c for c, *_ in raw_gpus(name))


def test_gpu_line_and_aggregates() -> None:
    g = GpuInfo(count=8, manufacturer="nvidia", model="H100", memory_mib=81920)
    assert g.line() == "8 x NVIDIA H100 (81920 MiB each)"
    item = {"InstanceType": "x1.large", "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
            "GpuInfo": {"Gpus": [{"Count": 2, "Manufacturer": "NVIDIA", "Name": "T4", "MemoryInfo": {"SizeInMiB": 16384}},
                                 {"Count": 1, "Manufacturer": "AMD", "Name": "V520", "MemoryInfo": {"SizeInMiB": 8192}}]}}
    t = InstanceTypeInfo.from_api(item)
    assert t is not None and (t.gpu_count, t.gpu_makers, t.gpu_models, t.gpu_memory_mib) == (
        3, frozenset({"nvidia", "amd"}), ("T4", "V520"), 8192)


# --- queries --------------------------------------------------------------------------------------


def by_hand(types: dict[str, InstanceTypeInfo], offered: frozenset[str], keep: Any) -> list[str]:
    """The same selection computed straight from the raw items moto serves (not through Query)."""
    return sorted(n for n in types if n in offered and keep(raw_gpus(n), INSTANCE_TYPES[n]))


@pytest.mark.parametrize(("query", "keep"), [
    ("gpu=nvidia,arch=arm64",
     lambda g, item: g and g[0][1] == "nvidia" and "arm64" in item["ProcessorInfo"]["SupportedArchitectures"]),
    ("gpu=nvidia,gpus>=8,gpu_memory>=80",
     lambda g, item: g and g[0][1] == "nvidia" and sum(x[0] for x in g) >= 8 and g[0][3] >= 80 * 1024),
    ("gpu_model=a10g,gpus<4", lambda g, item: g and g[0][2] == "A10G" and sum(x[0] for x in g) < 4),
    ("gpu_model=l4|l40s,gpus=4", lambda g, item: g and g[0][2] in ("L4", "L40S") and sum(x[0] for x in g) == 4),
    ("gpu=true,family=g6", lambda g, item: g and item["InstanceType"].startswith("g6.")),
    ("gpu=false,family=g5|m7i,vcpus<=2", lambda g, item: not g and item["InstanceType"].split(".")[0] in ("g5", "m7i")
     and item["VCpuInfo"]["DefaultVCpus"] <= 2),
])
def test_gpu_queries_select_what_the_catalogue_says(types: dict[str, InstanceTypeInfo], offered: frozenset[str],
                                                    query: str, keep: Any) -> None:
    expected = by_hand(types, offered, keep)
    assert expected, f"{query} selects nothing in moto's catalogue: a useless test"
    got = resolve([query], types, region="us-east-1", max_types=len(types), offered=offered)
    assert sorted(got.names) == expected


def test_gpu_query_pick_and_marker_kwargs(types: dict[str, InstanceTypeInfo], offered: frozenset[str]) -> None:
    smallest = resolve(["gpu_model=a10g,pick=smallest"], types, region="us-east-1", offered=offered)
    assert smallest.names == ["g5.xlarge"]
    q = Query.from_kwargs({"gpu": "nvidia", "gpus": ">=4"})
    assert q.text == "gpu=nvidia,gpus>=4"
    assert q.matches(types["p5.48xlarge"]) and not q.matches(types["g5.xlarge"]) and not q.matches(types["m7i.large"])
    facts_only = SimpleNamespace(name="g5.xlarge", family="g5", arch="x86_64", vendor="amd", vcpus=4, metal=False)
    assert not Query.parse("gpu=true").matches(facts_only)  # no catalogue: a GPU term never matches


@pytest.mark.parametrize(("value", "first"), [
    ("gpus>=lots", "--instance-type: query 'gpus>=lots': gpus='lots' is not a count; use N, N-M, N-, -M or gpus>=N"),
    ("gpu>nvidia", "--instance-type: query 'gpu>nvidia': gpu>nvidia compares, but gpu is not counted; use gpu=VALUE"),
    ("gpu_memory>=big", "--instance-type: query 'gpu_memory>=big': gpu_memory='big' is not an amount; use GiB"),
    ("gpu=true|nvidia", "--instance-type: query 'gpu=true|nvidia': gpu=true|nvidia: true/false stand alone"),
    ("gpus>=4|8", "--instance-type: query 'gpus>=4|8': gpus>=4|8: a comparison takes one value"),
    ("gpus=8-2", "--instance-type: query 'gpus=8-2': gpus='8-2' is an empty range"),
    ("gpux=1", ("--instance-type: query 'gpux=1': unknown key 'gpux'; keys: arch, vendor, metal, family, name, vcpus, "
               "gpu, gpus, gpu_model, gpu_memory, pick")),
])
def test_bad_gpu_terms_are_one_line_errors_at_settings_time(value: str, first: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"instance_type": [value]})
    assert str(info.value).startswith(first), str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(QueryError):
        Query.parse(value)


# --- requires(gpu=...) ----------------------------------------------------------------------------


def test_requires_gpu_is_a_marker_term_decided_by_the_catalogue(types: dict[str, InstanceTypeInfo]) -> None:
    wants, refuses = pytest.mark.requires(gpu=True).mark, pytest.mark.requires(gpu=False).mark
    markers.validate([wants, refuses], "t.py::test_x")
    with pytest.raises(markers.MarkerError, match="among .'pmc', 'resctrl', 'gpu'."):
        markers.validate([pytest.mark.requires(cuda=True).mark], "t.py::test_x")
    assert markers.catalogue_reason([wants], "g5.xlarge", types["g5.xlarge"]) is None
    assert markers.catalogue_reason([wants], "m7i.large", types["m7i.large"]) == (
        "target m7i.large lacks gpu (m7i.large: DescribeInstanceTypes lists no GpuInfo), test requires gpu=True")
    assert markers.catalogue_reason([refuses], "g5.xlarge", types["g5.xlarge"]) == (
        "target g5.xlarge has gpu (g5.xlarge: 1 x NVIDIA A10G (22888 MiB each)), test requires gpu=False")
    assert markers.catalogue_reason([refuses], "m7i.large", types["m7i.large"]) is None


def test_requires_gpu_on_this_host_asks_the_probe() -> None:
    """The host side: the `gpu` capability runs the probe (without CUDA) and says why it is absent."""
    from pytest_perfci.capabilities import detect
    from pytest_perfci.hosts.local import LocalHost

    present, why = detect(LocalHost(), "gpu")
    if not present:
        assert why.startswith(("no NVIDIA device:", "NVIDIA driver not loaded:", "nvidia-smi missing:",
                               "nvidia-smi failed:", "no GPU attached:"))
    else:
        assert why.startswith("driver ")


# --- the GPU AMI ----------------------------------------------------------------------------------


def _settings(tmp_path: Path, moto: MotoServer, *names: str, **kw: Any) -> Settings:
    return Settings(instance_type=names, region="us-east-1", run_id="perfci-gpu-test", owner="tester",
                    results=tmp_path / "results", endpoint_url=moto.url, **kw)


def _provider(settings: Settings, tmp_path: Path) -> EC2Provider:
    return EC2Provider(settings, ledger=Ledger(tmp_path / "ledger.jsonl"), progress=lambda _l: None,
                       public_address=lambda: "127.0.0.1", claim_run_id=False)


def test_gpu_type_without_the_dlami_parameter_is_one_line_before_anything(tmp_path: Path, moto: MotoServer) -> None:
    p = _provider(_settings(tmp_path, moto, "g5.xlarge"), tmp_path)
    with pytest.raises(AmiError) as info:
        p.validate()
    assert str(info.value) == (f"cannot read the default x86_64 NVIDIA GPU AMI from SSM parameter "
                               f"{SSM_GPU_DEFAULTS['x86_64']} (ParameterNotFound); pass --ami x86_64=ami-...")
    ec2: Any = moto.client("ec2")
    assert ec2.describe_instances()["Reservations"] == [] and ec2.describe_key_pairs()["KeyPairs"] == []
    ok = _provider(_settings(tmp_path, moto, "g5.xlarge", ami=(f"x86_64={AL2023_X86}",)), tmp_path).validate()
    assert ok["g5.xlarge"][1].source == "--ami x86_64="


def test_gpu_types_read_the_dlami_parameter_of_their_architecture(
    types: dict[str, InstanceTypeInfo], moto: MotoServer
) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ssm) as stub:
        for name, ami in ((SSM_GPU_DEFAULTS["x86_64"], AL2023_X86), (SSM_GPU_DEFAULTS["arm64"], AL2023_ARM),
                          (SSM_DEFAULTS["x86_64"], AL2023_X86)):
            stub.add_response("get_parameter", {"Parameter": {"Name": name, "Value": ami}}, {"Name": name})
        resolver = AmiResolver(moto.client("ec2"), ssm)  # type: ignore[arg-type]
        g5, g5g, m7i = (resolver.for_type(types[n]) for n in ("g5.xlarge", "g5g.xlarge", "m7i.large"))
        stub.assert_no_pending_responses()
    assert (g5.ami, g5.source, g5.arch) == (AL2023_X86, SSM_GPU_DEFAULTS["x86_64"], "x86_64")
    assert (g5g.ami, g5g.source, g5g.arch) == (AL2023_ARM, SSM_GPU_DEFAULTS["arm64"], "arm64")
    assert m7i.source == SSM_DEFAULTS["x86_64"]
    assert SSM_GPU_DEFAULTS["arm64"] == \
        "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"


def test_root_volume_is_never_smaller_than_the_images_snapshot(
    tmp_path: Path, moto: MotoServer, types: dict[str, InstanceTypeInfo]
) -> None:
    """A DLAMI's root snapshot is 75 GiB or more; a 30 GB root volume would make RunInstances fail, so the
    image's own root size is kept with it (the provider launches max(--perfci-root-volume-gb, that))."""
    ec2: Any = moto.client("ec2")
    plan = _provider(_settings(tmp_path, moto, "g5.xlarge", ami=(AL2023_X86,)), tmp_path).validate()
    described = ec2.describe_images(ImageIds=[AL2023_X86])["Images"][0]
    (size,) = [m["Ebs"]["VolumeSize"] for m in described["BlockDeviceMappings"] if m["DeviceName"] == "/dev/xvda"]
    assert plan["g5.xlarge"][1].min_root_gb == size
    # moto cannot register an image with an architecture: a DLAMI-shaped DescribeImages answer instead
    stubbed = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(stubbed) as stub:
        stub.add_response("describe_images", {"Images": [{
            "ImageId": "ami-0aa6adb5fc746dff3", "Architecture": "x86_64", "RootDeviceName": "/dev/xvda",
            "Name": "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) 20260925",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 75, "VolumeType": "gp3"}}]}]},
            {"ImageIds": ["ami-0aa6adb5fc746dff3"]})
        image = AmiResolver(stubbed, None, ("ami-0aa6adb5fc746dff3",)).for_type(types["g5.xlarge"])  # type: ignore[arg-type]
    assert (image.min_root_gb, image.user) == (75, "ec2-user")


# --- perfci plan: the G and VT, and P quota classes -------------------------------------------------


class FixedQuotas:
    def __init__(self, **limits: float) -> None:
        self.limits = {k.replace("_", "-"): v for k, v in limits.items()}
        self.asked: list[str] = []

    def limit(self, quota_code: str) -> planning.QuotaLimit:
        self.asked.append(quota_code)
        value = self.limits.get(quota_code)
        return planning.QuotaLimit(value, "fixed" if value is not None else "not given")


def test_plan_checks_the_g_and_vt_and_the_p_quota_with_catalogue_vcpus(
    tmp_path: Path, moto: MotoServer, types: dict[str, InstanceTypeInfo]
) -> None:
    settings = _settings(tmp_path, moto, "g5.xlarge", "p5.48xlarge", "g5g.xlarge",
                         ami=(f"x86_64={AL2023_X86}", f"arm64={AL2023_ARM}"))
    source = FixedQuotas(L_DB2E81BA=8, L_417A185B=192)
    plan = planning.build_plan(settings, quotas=source, public_address=lambda: "198.51.100.7")
    assert sorted(source.asked) == ["L-417A185B", "L-DB2E81BA"]
    checks = {c.quota.code: c for c in plan.quotas}
    g, p = checks["L-DB2E81BA"], checks["L-417A185B"]
    assert g.quota.name == "Running On-Demand G and VT instances" and p.quota.name == "Running On-Demand P instances"
    assert (g.needed, g.types) == (types["g5.xlarge"].vcpus + types["g5g.xlarge"].vcpus, ["g5.xlarge", "g5g.xlarge"])
    assert (p.needed, p.fits) == (types["p5.48xlarge"].vcpus, p.in_use is not None and
                                  p.in_use + types["p5.48xlarge"].vcpus <= 192)
    assert g.fits is (g.needed <= 8)
    text = "\n".join(planning.render_text(plan))
    assert "g5.xlarge: AMI" in text and "GPUs 1 x NVIDIA A10G (22888 MiB each)" in text
    assert "GPUs 8 x NVIDIA H100 (81920 MiB each)" in text
    doc = planning.plan_json(plan)
    (g5,) = [t for t in doc["types"] if t["instance_type"] == "g5.xlarge"]
    assert g5["gpus"] == [{"count": 1, "manufacturer": "nvidia", "model": "A10G", "memory_mib": 22888}]
    assert json.dumps(doc)  # serialisable as --json prints it


def test_xdist_workers_get_the_gpu_info_with_the_resolution(types: dict[str, InstanceTypeInfo]) -> None:
    """The controller ships its resolution as JSON (EC2Provider.export_resolution): GpuInfo survives it."""
    from pytest_perfci.models.instance_query import Resolution

    sent = resolve(["g5.xlarge", "gpu_model=h100,gpus=8"], types, region="us-east-1")
    received = Resolution.from_json(json.loads(json.dumps(sent.to_json())))
    assert [r.info for r in received.types] == [r.info for r in sent.types]
    assert received.types[1].info.gpus[0].model == "H100" and received.types[1].requested == "gpu_model=h100,gpus=8"


def test_the_iam_policy_lets_the_run_read_the_gpu_ami_parameters() -> None:
    """iam/perfci-policy.json grants ssm:GetParameter by resource: the DLAMI names must fall under it."""
    import fnmatch

    policy = json.loads((Path(__file__).resolve().parents[1] / "iam" / "perfci-policy.json").read_text())
    resources = [r for s in policy["Statement"] if "ssm:GetParameter" in (
        [s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    for arch, name in SSM_GPU_DEFAULTS.items():
        arn = f"arn:aws:ssm:us-east-1::parameter{name}"
        assert any(fnmatch.fnmatchcase(arn, r) for r in resources), (arch, arn, resources)
