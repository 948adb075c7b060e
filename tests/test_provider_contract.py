"""The provider contract: a whole provider is one Provider subclass plus one registry line.

`DirProvider` below is that example: each target is a directory standing in for a machine (a
LocalHost that runs in it), it "creates" resources (the directories), shares its hosts with xdist
workers through a typed WorkerHandle, and lists what a --perfci-keep run left. Registered with one
line, it runs a real pytest session end to end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.providers import make_provider, registry
from pytest_perfci.providers.base import (
    KeptHost,
    Provider,
    ProviderContext,
    Target,
    TargetUnavailable,
    WorkerHandle,
    WorkerInput,
)
from pytest_perfci.session import ProviderSession
from pytest_perfci.settings import Settings, SettingsError, load_settings

THIS = "tests.test_provider_contract"


class DirProvider(Provider):
    """Two "machines", each a directory under the results directory; "gone" is never available."""

    name = "dirs"
    creates_resources = True
    shares_hosts = True

    def __init__(self, root: Path, progress: Any = print) -> None:
        self.root = root
        self.progress = progress
        self.kept_run = False
        self.released: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> DirProvider:
        return cls(Path(settings.results) / "dirs" / settings.run_id, context.progress)

    def targets(self) -> list[Target]:
        return [Target(name=n, provider=self.name, instance_type="dir.small") for n in ("alpha", "beta", "gone")]

    def acquire(self, target: Target) -> Host:
        if target.name == "gone":
            raise TargetUnavailable("no capacity for gone")
        path = self.root / target.name
        path.mkdir(parents=True, exist_ok=True)
        (path / "owner").write_text(str(os.getpid()))
        return LocalHost(target.name, instance_type=target.instance_type)

    def release_all(self) -> None:
        for path in sorted(self.root.glob("*")):
            (path / "owner").unlink()
            path.rmdir()
            self.released.append(path.name)

    def export(self, target: Target) -> WorkerHandle:
        self.acquire(target)
        return WorkerHandle(target=target.name, zone="dir-zone-1", extra={"path": str(self.root / target.name)})

    def attach(self, target: Target, handle: WorkerHandle) -> Host:
        assert Path(handle.extra["path"]).is_dir()
        return LocalHost(target.name, instance_type=target.instance_type)

    def zone(self, target: Target) -> str | None:
        return "dir-zone-1" if (self.root / target.name).is_dir() else None

    def keep(self) -> None:
        self.kept_run = True

    def kept(self) -> list[KeptHost] | None:
        return [KeptHost(name=p.name, resource_id=str(p), ssh_command=f"cd {p}") for p in sorted(self.root.glob("*"))]


TEST_MODULE = """
import json

def test_runs_on(host, perfci_provider, perfci_record):
    assert perfci_provider.name == "dirs"
    assert type(perfci_provider).__name__ == "DirProvider"
    out = host.run("echo hello from $0").stdout
    assert "hello from" in out
    perfci_record.sample("dir.value", 1.0, "x", "pass")
"""


@pytest.fixture
def dirs_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line (a test cannot edit the table file, so it sets the entry for its duration)."""
    monkeypatch.setitem(registry.PROVIDERS, "dirs", f"{THIS}:DirProvider")
    for name in ("PERFCI_PROVIDER", "PERFCI_INSTANCE_TYPE", "PERFCI_RUN_ID", "PERFCI_KEEP", "PERFCI_RESULTS"):
        monkeypatch.delenv(name, raising=False)


def test_unregistered_name_is_refused_with_the_registry_names() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"provider": "dirs"})
    assert str(info.value) == "--provider: 'dirs' is not allowed; choose one of: " + ", ".join(registry.PROVIDERS)


def test_registry_line_makes_the_provider(dirs_registered: None, tmp_path: Path) -> None:
    settings = load_settings({"provider": "dirs", "results": str(tmp_path), "run_id": "run-x"})
    provider = make_provider(settings)
    assert isinstance(provider, DirProvider) and provider.root == tmp_path / "dirs" / "run-x"


def test_registry_imports_nothing_until_a_provider_is_chosen() -> None:
    import subprocess
    import sys

    code = ("import sys, pytest_perfci.plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('boto3', 'paramiko', 'pytest_perfci.providers.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.replace("'", '"'))
    assert loaded, "the probe saw pytest_perfci.providers.base at least"
    assert not [m for m in loaded if m.startswith(("boto3", "paramiko", "pytest_perfci.providers.ec2",
                                                    "pytest_perfci.providers.kops", "pytest_perfci.providers.inv"))]


def test_defaults_fit_a_provider_that_creates_nothing() -> None:
    class Bare(Provider):
        name = "bare"

        def targets(self) -> list[Target]:
            return [Target(name="x", provider=self.name)]

        def acquire(self, target: Target) -> Host:
            return LocalHost(target.name)

    bare = Bare.from_settings(Settings(run_id="run-b"), ProviderContext())
    t = bare.targets()[0]
    assert (bare.release_all(), bare.validate(), bare.type_info(t), bare.export_resolution()) == (None,) * 4
    assert (bare.kept(), bare.region, bare.zone(t)) == (None, None, None)
    assert not bare.creates_resources and not bare.shares_hosts
    bare.keep()
    bare.adopt_resolution(None)
    with pytest.raises(NotImplementedError, match="'bare' does not share hosts"):
        bare.export(t)
    with pytest.raises(TypeError, match="abstract"):
        type("Half", (Provider,), {"name": "half", "targets": lambda self: []})()


def test_end_to_end_session_with_the_subclass(dirs_registered: None, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dirs=TEST_MODULE)
    results = pytester.path / "results"
    result = pytester.runpytest("--provider=dirs", f"--perfci-results={results}", "--perfci-run-id=run-e2e",
                                "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*target gone unavailable: no capacity for gone*"])
    assert not list((results / "dirs" / "run-e2e").glob("*")), "release_all removed every directory"
    lines = [json.loads(line) for line in (results / "run-e2e" / "results.ndjson").read_text().splitlines()]
    records = [r for r in lines if r["kind"] != "target"]
    assert sorted(r["infrastructure"]["target"] for r in records) == ["alpha", "beta"]
    # the target that never came up: one "not run" record with the provider's reason (issue 15)
    assert [(r["name"], r["metadata"]["code"], r["metadata"]["detail"]) for r in lines if r["kind"] == "target"] == [
        ("gone", "UNREACHABLE", "no capacity for gone")]
    assert {r["infrastructure"]["provider"] for r in records} == {"dirs"}
    assert {r["infrastructure"]["availability_zone"] for r in records} == {"dir-zone-1"}


def test_end_to_end_keep_uses_the_public_keep_and_kept(dirs_registered: None, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dirs=TEST_MODULE)
    results = pytester.path / "results"
    result = pytester.runpytest("--provider=dirs", f"--perfci-results={results}", "--perfci-run-id=run-kept",
                                "--perfci-keep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=1)
    root = results / "dirs" / "run-kept"
    result.stdout.fnmatch_lines([
        "*perfci kept*",
        "run run-kept: 2 host(s) kept, nothing torn down (--perfci-keep)*",
        f"alpha {root / 'alpha'}: cd {root / 'alpha'}",
        "*perfci reap --run-id run-kept --yes*",
    ])
    assert sorted(p.name for p in root.glob("*")) == ["alpha", "beta"]


def test_a_hook_provider_must_subclass_the_contract(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
class Duck:
    name = "duck"
    def targets(self): return []

def pytest_perfci_make_provider(settings, config):
    return Duck()
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest_perfci_make_provider returned Duck, which is not a *Provider subclass"])


# --- the xdist handoff ----------------------------------------------------------------------------


def test_worker_input_round_trips_and_workers_attach(tmp_path: Path) -> None:
    settings = Settings(run_id="run-x", results=tmp_path)
    controller = ProviderSession(settings, DirProvider(tmp_path / "d"))
    handoff = WorkerInput(run_id="run-x", resolution=controller.provider.export_resolution(),
                          handles=controller.export_all())
    wire = handoff.model_dump_json()
    back = WorkerInput.model_validate_json(wire)
    assert back == handoff
    assert back.handles is not None and back.handles["gone"].unavailable == "no capacity for gone"
    assert back.handles["alpha"].extra == {"path": str(tmp_path / "d" / "alpha")}

    worker = ProviderSession(settings, DirProvider(tmp_path / "d"), back.handles)
    assert worker.is_worker and worker.zone("alpha") == "dir-zone-1"
    assert worker.host("alpha").name == "alpha"
    with pytest.raises(TargetUnavailable, match="no capacity for gone"):
        worker.host("gone")
    worker.close()  # a worker only disconnects: the controller's directories stay
    assert (tmp_path / "d" / "alpha").is_dir()
    controller.close()
    assert not list((tmp_path / "d").glob("*"))


def test_worker_handle_refuses_unknown_or_mistyped_fields() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        WorkerHandle.model_validate({"target": "a", "adress": "10.0.0.1"})
    with pytest.raises(ValidationError, match="port"):
        WorkerHandle.model_validate({"target": "a", "port": "twenty-two"})
    with pytest.raises(ValidationError, match="run_id"):
        WorkerInput.model_validate_json(json.dumps({"handles": {}}))


# --- the built-in providers go through the same registry --------------------------------------------


def test_kops_is_built_from_the_settings_like_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_perfci.providers.kops import KopsProvider

    monkeypatch.setenv("KOPS_STATE_STORE", "s3://kops-state")  # kops' own variable, the documented fallback
    monkeypatch.delenv("PERFCI_KOPS_STATE", raising=False)
    env = {"PERFCI_KOPS_NODES": "4", "PERFCI_KOPS_BINARY": "/opt/kops"}
    settings = load_settings({"provider": "kops", "instance_type": ["c7i.2xlarge"], "region": "eu-west-1",
                              "run_id": "perfci-kops-1", "results": str(tmp_path)}, env=env)
    provider = make_provider(settings)
    assert isinstance(provider, KopsProvider) and provider.creates_resources
    cfg = provider.config
    assert (cfg.name, cfg.node_size, cfg.node_count, cfg.zones, cfg.kops, cfg.state) == (
        "perfci-kops-1.k8s.local", "c7i.2xlarge", 4, ("eu-west-1a",), "/opt/kops", "s3://kops-state")
    assert provider.region == "eu-west-1" and provider.kept() is None
    assert [t.name for t in provider.targets()] == ["perfci-kops-1.k8s.local"]


@pytest.mark.parametrize(("name", "cls"), [("local", "LocalProvider"), ("inventory", "InventoryProvider"),
                                           ("ec2", "EC2Provider"), ("kops", "KopsProvider"),
                                           ("qemu", "QemuProvider")])
def test_every_registered_name_is_a_provider_subclass(name: str, cls: str) -> None:
    found = registry.provider_class(name)
    assert found.__name__ == cls and issubclass(found, Provider) and found.name == name
