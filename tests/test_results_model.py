"""Result model: typed samples, NDJSON round trip, infrastructure from facts, scrubbing, reading back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pytest_perfci.models.facts import Facts
from pytest_perfci.results.model import (
    SCHEMA,
    Infrastructure,
    NdjsonWriter,
    ResultRecord,
    ResultsFormatError,
    Sample,
    git_commit,
    parse_ndjson,
    read_local,
)
from pytest_perfci.results.scrub import REDACTED


def infra(**kw: object) -> Infrastructure:
    base = {"provider": "ec2", "target": "m7i.metal-24xl", "instance_type": "m7i.metal-24xl", "region": "us-east-1",
            "availability_zone": "us-east-1b", "ami": "ami-0123456789abcdef0", "hostname": "ip-10-0-0-1",
            "kernel": "6.8.0-1021-aws", "os": "Ubuntu 24.04.1 LTS", "arch": "x86_64", "cpu_vendor": "intel",
            "cpu_model": "Intel(R) Xeon(R) Platinum 8488C", "nproc": 96, "metal": True, "run_id": "perfci-1",
            "git_commit": "0" * 40}
    return Infrastructure.model_validate({**base, **kw})


def test_sample_values_are_finite_numbers_or_none() -> None:
    assert Sample(name="x", value=3).value == 3.0
    assert Sample(name="x").value is None
    for bad in (float("nan"), float("inf"), True, "12"):
        with pytest.raises(ValidationError):
            Sample(name="x", value=bad)
    with pytest.raises(ValidationError):
        Sample(name="x", value=1, verdict="maybe")


def test_infrastructure_from_facts_carries_where_it_ran() -> None:
    facts = Facts(hostname="ip-10-0-0-1", arch="arm64", kernel="6.1.0", os="Amazon Linux 2023", cpu_vendor="arm",
                  cpu_model="Neoverse-V1 (Graviton3)", nproc=64, virtualised=False, instance_type="c7g.metal",
                  region="eu-west-1", ami="ami-0abc")
    i = Infrastructure.from_facts(facts, provider="ec2", target="c7g.metal", run_id="perfci-x",
                                  availability_zone="eu-west-1a", git_commit="abc")
    assert (i.instance_type, i.region, i.availability_zone, i.ami, i.metal, i.kind) == (
        "c7g.metal", "eu-west-1", "eu-west-1a", "ami-0abc", True, "metal")
    assert i.key == "c7g.metal"
    local = Infrastructure.from_facts(Facts(hostname="lab7", virtualised=None), provider="local", target="local",
                                      run_id="r")
    assert local.key == "host:lab7" and local.metal is None and local.kind == "virt?"


def test_ndjson_round_trip_is_one_self_contained_line_per_record(tmp_path: Path) -> None:
    writer = NdjsonWriter(tmp_path / "run" / "results.ndjson")
    rec = ResultRecord(name="pmc.cpi", value=0.91, unit="cycles/instruction", verdict="pass", direction="lower",
                       metadata={"reader": "perf stat"}, run_id="perfci-1", test="suites/pmc/test_pmc.py::t",
                       suite="pmc", infrastructure=infra())
    writer.write([rec, rec.model_copy(update={"name": "pmc.instructions", "value": 2.1e7, "unit": "count"})])
    lines = writer.path.read_text().splitlines()
    assert len(lines) == 2 and writer.count == 2
    doc = json.loads(lines[0])
    assert doc["schema"] == SCHEMA
    assert doc["infrastructure"]["availability_zone"] == "us-east-1b"
    assert doc["infrastructure"]["git_commit"] == "0" * 40  # a 40-hex commit is not mistaken for a secret
    back = read_local([tmp_path])
    assert [r.name for r in back] == ["pmc.cpi", "pmc.instructions"]
    assert back[0] == rec


def test_secrets_in_metadata_never_reach_the_file(tmp_path: Path) -> None:
    writer = NdjsonWriter(tmp_path / "r.ndjson")
    leaked = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    writer.write([ResultRecord(name="x", metadata={"log": leaked, "id": "AKIAIOSFODNN7EXAMPLE"})])
    text = writer.path.read_text()
    assert "wJalrXUtnFEMI" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert REDACTED in text


def test_reading_rejects_what_is_not_perfci_ndjson(tmp_path: Path) -> None:
    with pytest.raises(ResultsFormatError, match=r"x.ndjson:2: not JSON"):
        parse_ndjson(ResultRecord(name="a").line() + "\n{oops\n", "x.ndjson")
    with pytest.raises(ResultsFormatError, match="not a perfci.sample/1 record"):
        parse_ndjson('{"name": "a"}\n', "y")
    with pytest.raises(ResultsFormatError, match="no such file"):
        read_local([tmp_path / "missing"])


def test_git_commit_prefers_ci_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PERFCI_GIT_COMMIT", raising=False)
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    assert git_commit(tmp_path) == "f" * 40
    monkeypatch.delenv("GITHUB_SHA")
    assert git_commit(tmp_path) is None  # not a repository: unknown, not invented
    head = git_commit(Path(__file__).parent)
    assert head is not None and len(head.removesuffix("-dirty")) == 40
