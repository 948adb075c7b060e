"""Instance-type resolution (issue 8): exact names, <family>.metal aliases, attribute queries, the maximum.

The catalogue checks run against a moto server, whose DescribeInstanceTypes data is a copy of AWS's
real catalogue; the spelling and marker rules are pure and need no server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pytest_perfci import markers
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.models.facts import Facts
from pytest_perfci.models.instance_query import (
    Query,
    QueryError,
    Resolution,
    TooManyMatches,
    resolve,
    split_items,
)
from pytest_perfci.models.instance_types import InstanceTypeInfo, vendor_from_family
from pytest_perfci.providers.base import Target
from pytest_perfci.providers.ec2 import EC2Provider, UnknownInstanceType
from pytest_perfci.providers.ec2.catalog import Catalog
from pytest_perfci.settings import Settings, SettingsError, load_settings
from tests.moto_server import MotoServer

ALIAS_LINE = "m7i.metal -> m7i.metal-24xl (96 vCPU, smallest metal size in m7i; name a size to choose another)"


@pytest.fixture(autouse=True)
def _no_perfci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PERFCI_INSTANCE_TYPE", "PERFCI_MAX_TYPES", "PERFCI_PROVIDER", "PERFCI_REGION"):
        monkeypatch.delenv(name, raising=False)


class Calls:
    """Counts API calls of one client by operation (a botocore before-call hook)."""

    def __init__(self, client: Any) -> None:
        self.seen: list[str] = []
        client.meta.events.register("before-call.ec2.*", self._hook)

    def _hook(self, model: Any, **_: Any) -> None:
        self.seen.append(model.name)

    def __getitem__(self, operation: str) -> int:
        return self.seen.count(operation)


class Listed:
    """What a Catalog listed, kept: tests that count calls clear the process-wide cache."""

    def __init__(self, cat: Catalog) -> None:
        self.types, self.offers = dict(cat.all()), cat.offered()

    def all(self) -> dict[str, InstanceTypeInfo]:
        return self.types

    def offered(self) -> frozenset[str]:
        return self.offers


@pytest.fixture(scope="module")
def catalog(moto_session: MotoServer) -> Listed:
    """The real catalogue, listed once for the module (moto takes seconds to serialise ~1400 types)."""
    Catalog.forget()
    return Listed(Catalog(moto_session.client("ec2")))


# -- spelling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "items"),
    [
        (["m7i.metal"], ("m7i.metal",)),
        (["m7i.large,c7g.metal"], ("m7i.large", "c7g.metal")),
        (["arch=arm64,metal=true,family=c7g|m7g"], ("arch=arm64,metal=true,family=c7g|m7g",)),
        (["m7i.large,arch=arm64,metal=true,c7i.large"], ("m7i.large", "arch=arm64,metal=true", "c7i.large")),
        (["arch=arm64,metal=true;vendor=amd,metal=true"], ("arch=arm64,metal=true", "vendor=amd,metal=true")),
        (["arch=arm64, metal=true", " m7i.large ;"], ("arch=arm64,metal=true", "m7i.large")),
        ("vendor=intel,metal=true", ("vendor=intel,metal=true",)),
    ],
)
def test_a_query_keeps_its_commas_and_semicolons_separate_items(values: Any, items: tuple[str, ...]) -> None:
    assert split_items(values) == items


def test_settings_accept_names_and_queries_and_name_bad_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings({"instance_type": ["m7i.metal,arch=arm64,metal=true,family=c7g|m7g"]})
    assert s.instance_types == ("m7i.metal", "arch=arm64,metal=true,family=c7g|m7g")
    assert s.effective_provider == "ec2" and s.max_types == 8
    monkeypatch.setenv("PERFCI_INSTANCE_TYPE", "vendor=amd,metal=true;c7g.metal")
    assert load_settings({}).instance_types == ("vendor=amd,metal=true", "c7g.metal")
    assert load_settings({"max_types": "20"}).max_types == 20
    cases = {
        "arch=sparc": "--instance-type: query 'arch=sparc': arch=sparc is not allowed; use x86_64 or arm64",
        "colour=red": "--instance-type: query 'colour=red': unknown key 'colour'; keys: arch, vendor, metal,",
        "arch=arm64,arch=x86_64": "--instance-type: query 'arch=arm64,arch=x86_64': arch given twice; separate",
        "vcpus=lots": "--instance-type: query 'vcpus=lots': vcpus='lots' is not a count",
        "metal=maybe": "--instance-type: query 'metal=maybe': metal=maybe is not allowed; use true or false",
    }
    for value, first in cases.items():
        with pytest.raises(SettingsError) as info:
            load_settings({"instance_type": [value]})
        assert str(info.value).startswith(first), str(info.value)
    with pytest.raises(SettingsError, match=r"^--perfci-max-types: "):
        load_settings({"max_types": "0"})


def test_query_terms() -> None:
    q = Query.parse("Arch=aarch64, vendor=Graviton ,metal=TRUE,family=c7*|m7g,vcpus=-64|128-")
    assert (q.arch, q.vendor, q.metal, q.family, q.vcpus) == (
        frozenset({"arm64"}), frozenset({"aws"}), True, ("c7*", "m7g"), ((0, 64), (128, 1 << 30)))
    assert q.text == "arch=aarch64,vendor=Graviton,metal=TRUE,family=c7*|m7g,vcpus=-64|128-"
    k = Query.from_kwargs({"metal": True, "arch": "x86_64", "vendor": ["intel", "amd"]})
    assert (k.metal, k.arch, k.vendor, k.text) == (True, frozenset({"x86_64"}), frozenset({"intel", "amd"}),
                                                   "metal=true,arch=x86_64,vendor=intel|amd")
    with pytest.raises(QueryError, match="unknown query key 'size'"):
        Query.from_kwargs({"size": "large"})


def test_vendor_convention_when_the_listing_has_no_manufacturer() -> None:
    expected = {("m7i", "x86_64"): "intel", ("m5", "x86_64"): "intel", ("m7i-flex", "x86_64"): "intel",
                ("x2iedn", "x86_64"): "intel", ("m7a", "x86_64"): "amd", ("r5ad", "x86_64"): "amd",
                ("hpc6a", "x86_64"): "amd", ("c7g", "arm64"): "aws", ("a1", "arm64"): "aws"}
    assert {k: vendor_from_family(*k) for k in expected} == expected
    item = {"InstanceType": "m7a.large", "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
            "VCpuInfo": {"DefaultVCpus": 2}}
    assert InstanceTypeInfo.from_api(item).vendor == "amd"  # type: ignore[union-attr]
    item["ProcessorInfo"]["Manufacturer"] = "Intel"  # type: ignore[index]  # the API's word wins
    assert InstanceTypeInfo.from_api(item).vendor == "intel"  # type: ignore[union-attr]


# -- against the real catalogue (moto server) ---------------------------------------------------------


def test_aliases_exact_names_and_typos(catalog: Listed) -> None:
    types = catalog.all()
    got = resolve(["m7i.metal", "c7g.metal", "m7i.2xlarge"], types, region="us-east-1")
    assert [(r.info.name, r.requested) for r in got.types] == [
        ("m7i.metal-24xl", "m7i.metal"), ("c7g.metal", None), ("m7i.2xlarge", None)]
    assert got.notes == [ALIAS_LINE]  # exact names (c7g.metal exists) say nothing
    assert resolve(["c7i.metal"], types, region="us-east-1").names == ["c7i.metal-24xl"]
    assert resolve(["m7a.metal"], types, region="us-east-1").names == ["m7a.metal-48xl"]  # the only size
    # the same real type twice (alias and its target) is one target, the first spelling kept
    twice = resolve(["m7i.metal", "m7i.metal-24xl"], types, region="us-east-1")
    assert [(r.info.name, r.requested) for r in twice.types] == [("m7i.metal-24xl", "m7i.metal")]
    with pytest.raises(UnknownInstanceType) as info:
        resolve(["m7i.metall"], types, region="us-east-1")
    assert str(info.value) == ("unknown instance type 'm7i.metall' in us-east-1; "
                               "closest: m7i.metal-24xl, m7i.metal-48xl")
    with pytest.raises(UnknownInstanceType, match=r"'m7i-flex.metal' in us-east-1; closest: "):
        resolve(["m7i-flex.metal"], types, region="us-east-1")  # a family without metal has no alias


def test_manufacturer_comes_from_the_api(catalog: Listed) -> None:
    types = catalog.all()
    assert {n: types[n].vendor for n in ("m7i.metal-24xl", "m7a.metal-48xl", "c7g.metal", "g5.xlarge")} == {
        "m7i.metal-24xl": "intel", "m7a.metal-48xl": "amd", "c7g.metal": "aws", "g5.xlarge": "amd"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("arch=arm64,metal=true,family=c7g|m7g", ["c7g.metal", "m7g.metal"]),
        ("vendor=intel,metal=true,family=m7i|c7i", ["c7i.metal-24xl", "c7i.metal-48xl", "m7i.metal-24xl",
                                                    "m7i.metal-48xl"]),
        ("vendor=amd,metal=true,family=?7a", ["c7a.metal-48xl", "m7a.metal-48xl", "r7a.metal-48xl"]),
        ("vendor=graviton,metal=true,family=c7g*", ["c7g.metal", "c7gd.metal", "c7gn.metal"]),
        ("family=m7i,vcpus=96-", ["m7i.24xlarge", "m7i.metal-24xl", "m7i.48xlarge", "m7i.metal-48xl"]),
        ("name=m7i.metal*", ["m7i.metal-24xl", "m7i.metal-48xl"]),
        ("vendor=intel,metal=true,pick=smallest", ["m5zn.metal"]),  # 48 vCPU
        ("arch=arm64,metal=false,family=m7g,pick=largest", ["m7g.16xlarge"]),
    ],
)
def test_attribute_queries_select_the_expected_sets(catalog: Listed, query: str, expected: list[str]) -> None:
    got = resolve([query], catalog.all(), region="us-east-1", offered=catalog.offered())
    assert got.names == expected
    assert {r.requested for r in got.types} == {Query.parse(query).text}
    plural = "s" if len(expected) > 1 else ""
    assert got.notes == [f"{Query.parse(query).text} -> {', '.join(expected)} ({len(expected)} type{plural} in us-east-1)"]


def test_an_over_broad_query_shows_the_count_and_the_first_matches(catalog: Listed) -> None:
    offered = catalog.offered()
    metal = [t for t in catalog.all().values() if t.metal and t.name in offered]
    with pytest.raises(TooManyMatches) as info:
        resolve(["metal=true"], catalog.all(), region="us-east-1", offered=offered)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"query 'metal=true' matches {len(metal)} instance types in us-east-1, more than "
                          "--perfci-max-types=8: a1.metal, c5.metal, c5d.metal, c5n.metal, c6a.metal,"), msg
    assert msg.endswith("; narrow the query (e.g. family=..., pick=smallest) or raise --perfci-max-types")
    assert len(resolve(["metal=true"], catalog.all(), region="us-east-1", offered=offered,
                       max_types=len(metal)).types) == len(metal)
    with pytest.raises(TooManyMatches, match=r"^query 'family=zz9' matches no instance type offered in us-east-1"):
        resolve(["family=zz9"], catalog.all(), region="us-east-1", offered=offered)


def test_queries_consider_only_types_the_region_offers(catalog: Listed) -> None:
    not_here = sorted(set(catalog.all()) - catalog.offered())
    assert catalog.offered() and not_here, "moto's us-east-1 offerings are a real subset of the listing"
    query = f"name={not_here[0]}"
    assert resolve([query], catalog.all(), region="us-east-1").names == not_here[:1]  # listed...
    with pytest.raises(TooManyMatches, match="matches no instance type offered in us-east-1"):
        resolve([query], catalog.all(), region="us-east-1", offered=catalog.offered())  # ...but not offered


# -- the provider: one listing per region, nothing created before the list is known ---------------------


def _settings(tmp_path: Path, moto: MotoServer, *types: str, **kw: Any) -> Settings:
    return load_settings({"instance_type": list(types), "region": "us-east-1", "endpoint_url": moto.url,
                          "results": str(tmp_path / "results"), "run_id": "resolve-test",
                          "ssh_cidr": "127.0.0.1/32", **kw})


def _provider(settings: Settings, tmp_path: Path, lines: list[str]) -> EC2Provider:
    return EC2Provider(settings, ledger=Ledger(tmp_path / "ledger.jsonl"), progress=lines.append)


def test_targets_are_real_names_with_the_request_kept_and_one_listing_per_region(
    tmp_path: Path, moto: MotoServer
) -> None:
    Catalog.forget()
    lines: list[str] = []
    p = _provider(_settings(tmp_path, moto, "m7i.metal,c7g.metal", "arch=arm64,metal=true,family=m7g|c7g"),
                  tmp_path, lines)
    calls = Calls(p.ec2)
    assert p.targets() == [
        Target(name="m7i.metal-24xl", provider="ec2", instance_type="m7i.metal-24xl", requested="m7i.metal"),
        Target(name="c7g.metal", provider="ec2", instance_type="c7g.metal"),
        Target(name="m7g.metal", provider="ec2", instance_type="m7g.metal",
               requested="arch=arm64,metal=true,family=m7g|c7g"),
    ]
    assert lines == [ALIAS_LINE, "arch=arm64,metal=true,family=m7g|c7g -> c7g.metal, m7g.metal (2 types in us-east-1)"]
    plan = p.validate()
    assert list(plan) == ["m7i.metal-24xl", "c7g.metal", "m7g.metal"]
    assert lines[2].startswith("m7i.metal-24xl: x86_64, 96 vCPU, 384 GiB, metal; AMI ami-")
    # a second provider in the process (e.g. `perfci plan`, or the plugin's) reuses the listing
    other = _provider(_settings(tmp_path, moto, "c7i.metal", "vendor=amd,metal=true,family=m7a"), tmp_path, [])
    other_calls = Calls(other.ec2)
    assert [t.name for t in other.targets()] == ["c7i.metal-24xl", "m7a.metal-48xl"]
    assert calls["DescribeInstanceTypes"] == 1, calls.seen
    assert calls["DescribeInstanceTypeOfferings"] == 1, calls.seen  # LocationType=region, for queries
    assert other_calls.seen == []
    info = p.type_info(p.targets()[0])
    assert info is not None and (info.vendor, info.metal, info.vcpus) == ("intel", True, 96)


def test_an_over_broad_query_fails_before_any_create(tmp_path: Path, moto: MotoServer, catalog: Listed) -> None:
    p = _provider(_settings(tmp_path, moto, "c7g.metal", "metal=true"), tmp_path, [])
    calls = Calls(p.ec2)
    with pytest.raises(TooManyMatches, match=r"^query 'metal=true' matches \d+ instance types in us-east-1, more "
                                             r"than --perfci-max-types=8: a1.metal, "):
        p.targets()
    with pytest.raises(TooManyMatches):
        p.acquire(Target(name="c7g.metal", provider="ec2", instance_type="c7g.metal"))
    assert calls["RunInstances"] == 0 and calls["CreateKeyPair"] == 0 and calls["CreateSecurityGroup"] == 0
    assert calls["DescribeInstanceTypes"] <= 1, calls.seen  # none when an earlier test listed this region
    ec2: Any = moto.client("ec2")
    assert ec2.describe_instances()["Reservations"] == []
    assert not (tmp_path / "ledger.jsonl").exists()
    # the maximum is a setting: raised, the same query resolves (still nothing created)
    q = _provider(_settings(tmp_path, moto, "metal=true,vendor=aws", max_types="60"), tmp_path, [])
    assert len(q.targets()) > 8 and all(t.requested == "metal=true,vendor=aws" for t in q.targets())


def test_an_xdist_worker_adopts_the_controllers_resolution_without_a_call(
    tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = _provider(_settings(tmp_path, moto, "m7i.metal"), tmp_path, [])
    exported = controller.export_resolution()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail
    worker = _provider(_settings(tmp_path, moto, "m7i.metal", endpoint_url=None), tmp_path, [])
    worker.adopt_resolution(exported)
    assert worker.targets() == controller.targets()
    assert Resolution.from_json(exported).names == ["m7i.metal-24xl"]


def test_api_errors_during_resolution_are_one_line(tmp_path: Path, moto: MotoServer) -> None:
    Catalog.forget()
    p = _provider(_settings(tmp_path, moto, "m7i.metal"), tmp_path, [])

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DescribeInstanceTypes")

    p.ec2.meta.events.register("before-call.ec2.DescribeInstanceTypes", refuse)
    with pytest.raises(RuntimeError, match=r"^EC2 refused validation in us-east-1: UnauthorizedOperation: no$"):
        p.targets()


# -- markers ----------------------------------------------------------------------------------------------


def _mark(*args: Any, **kwargs: Any) -> pytest.Mark:
    return pytest.mark.instance_type(*args, **kwargs).mark


def test_marker_queries_validate_and_decide_on_catalogue_or_facts(catalog: Listed) -> None:
    markers.validate([_mark(metal=True, arch="x86_64", vendor="intel")], "t")
    markers.validate([_mark("c7g.metal", "arch=arm64,metal=true")], "t")
    for bad, text in [(_mark(), "needs one or more type names$"),
                      (_mark(metal="perhaps"), "metal=perhaps is not allowed"),
                      (_mark(colour="red"), "unknown query key 'colour'"),
                      (_mark(metal=True, pick="smallest"), "pick= chooses what to provision")]:
        with pytest.raises(markers.MarkerError, match=text):
            markers.validate([bad], "t")
    types = catalog.all()
    intel_metal = [_mark(metal=True, arch="x86_64", vendor="intel")]
    assert markers.instance_type_reason(intel_metal, "m7i.metal-24xl", "m7i.metal-24xl",
                                        attrs=types["m7i.metal-24xl"]) is None
    assert markers.instance_type_reason(intel_metal, "c7g.metal", "c7g.metal", attrs=types["c7g.metal"]) == (
        "target c7g.metal (c7g.metal) does not match instance_type(metal=True, arch='x86_64', vendor='intel')")
    assert markers.instance_type_reason(intel_metal, "m7i.large", "m7i.large", attrs=None) is None  # undecided yet
    # names match the real type or the alias it was requested as; name OR query fits
    assert markers.instance_type_reason([_mark("m7i.metal")], "m7i.metal-24xl", "m7i.metal-24xl",
                                        requested="m7i.metal") is None
    either = [_mark("m7i.large", "vendor=aws,metal=true")]
    assert markers.instance_type_reason(either, "m7i.large", "m7i.large", attrs=types["m7i.large"]) is None
    assert markers.instance_type_reason(either, "c7g.metal", "c7g.metal", attrs=types["c7g.metal"]) is None
    assert markers.instance_type_reason(either, "m7a.large", "m7a.large", attrs=types["m7a.large"]) is not None
    # a host known only by its facts (local, inventory)
    graviton = Facts(arch="arm64", cpu_vendor="arm", nproc=64, virtualised=False, instance_type="c7g.metal")
    laptop = Facts(arch="x86_64", cpu_vendor="amd", nproc=8, virtualised=True)
    assert markers.instance_type_reason([_mark(vendor="aws", metal=True)], "lab", None,
                                        attrs=markers.facts_attrs(graviton)) is None
    assert markers.instance_type_reason([_mark(vendor="aws", metal=True)], "local", None,
                                        attrs=markers.facts_attrs(laptop)) == (
        "target local (no known instance type) does not match instance_type(vendor='aws', metal=True)")
    assert markers.instance_type_reason([_mark(vcpus="4-8", arch="x86_64")], "local", None,
                                        attrs=markers.facts_attrs(laptop)) is None


def test_arch_and_metal_marks_decided_by_the_catalogue(catalog: Listed) -> None:
    types = catalog.all()
    arm = [pytest.mark.arch("arm64").mark]
    metal = [pytest.mark.metal.mark]
    assert markers.catalogue_reason(arm, "m7i.large", types["m7i.large"]) == (
        "target m7i.large is x86_64 (m7i.large), test needs arch arm64")
    assert markers.catalogue_reason(arm, "c7g.large", types["c7g.large"]) is None
    assert markers.catalogue_reason(metal, "c7g.metal", types["c7g.metal"]) is None
    assert markers.catalogue_reason(metal, "c7g.large", types["c7g.large"]) == (
        "target c7g.large is a virtualised instance type (c7g.large), test needs metal")
    assert markers.catalogue_reason(arm, "local", None) is None  # no catalogue: decided on the host's facts


def test_marker_type_names_checked_against_the_catalogue(catalog: Listed) -> None:
    known = catalog.all().keys()
    ok = [_mark("m7i.large", "c7g.metal", "m7i.metal", "arch=arm64")]
    assert markers.unknown_type_error(ok, "t", known) is None
    assert markers.unknown_type_error([_mark("m7i.lagre")], "t::x", known) == (
        "t::x: @pytest.mark.instance_type('m7i.lagre') names no instance type in the catalogue; closest: m7i.large")
    # without a catalogue (local, inventory) only the spelling is checked
    assert markers.unknown_type_error([_mark("m7i.lagre")], "t", None) is None
    assert markers.unknown_type_error([_mark("m7i")], "t", None) == (
        "t: @pytest.mark.instance_type('m7i') is not an EC2 instance type name; expected FAMILY.SIZE such as "
        "m7i.metal-24xl or c7g.2xlarge")
