"""ClusterLoader2 suite: the `cluster` session fixture (a kops cluster, always deleted) and its options.

Options are added here (pytest honours pytest_addoption in this conftest when `suites/cl2` or a
file in it is on the command line); every option also reads an environment variable, which is the
way to set them when pytest is started from elsewhere (e.g. `pytest suites`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.checks.cl2 import parse_baseline, parse_slo_overrides
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.providers.base import Provider
from pytest_perfci.providers.kops import (
    Cluster,
    KopsConfig,
    KopsProvider,
    cluster_name,
    perfci_tags,
    state_store,
)
from pytest_perfci.settings import Settings

# option, env variable, default, help
OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--node-size", "PERFCI_KOPS_NODE_SIZE", None, "worker instance type (default: the first --instance-type)"),
    ("--nodes", "PERFCI_KOPS_NODES", "3", "worker node count (default 3)"),
    ("--zones", "PERFCI_KOPS_ZONES", None, "comma-separated zones (default: <region>a)"),
    ("--control-plane-size", "PERFCI_KOPS_CONTROL_PLANE_SIZE", None, "control-plane instance type (kops default)"),
    ("--k8s-version", "PERFCI_KOPS_K8S_VERSION", None, "Kubernetes version (kops default)"),
    ("--perfci-kops-state", "PERFCI_KOPS_STATE", None, ("kops state store s3://bucket[/prefix] "
     "(default KOPS_STATE_STORE)")),
    ("--perfci-kops-networking", "PERFCI_KOPS_NETWORKING", None, "CNI, e.g. cilium (kops default)"),
    ("--perfci-kops-validate-wait", "PERFCI_KOPS_VALIDATE_WAIT", "20m", "how long kops validate may wait"),
    ("--cl2-binary", "PERFCI_CL2_BINARY", "clusterloader2", "clusterloader2 executable"),
    ("--cl2-testconfig", "PERFCI_CL2_TESTCONFIG", None, ("CL2 test config, e.g. perf-tests/clusterloader2/"
     "testing/load/config.yaml")),
    ("--cl2-baseline", "PERFCI_CL2_BASELINE", None, "baseline file (perfci cl2 judge --json output)"),
    ("--cl2-slo", "PERFCI_CL2_SLO", None, "SLO overrides NAME=VALUE[,NAME=VALUE] (see docs/cl2.md)"),
    ("--perfdash-job", "PERFCI_PERFDASH_JOB", "perfci-cl2", "perfdash job name (logs/<job>/<build>/artifacts)"),
    ("--perfci-results-s3", "PERFCI_RESULTS_S3", None, "also export artifacts to s3://bucket[/prefix]"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfci-cl2", "perfci: kops cluster and ClusterLoader2")
    for flag, env, default, text in OPTIONS:
        shown = f" (env {env}" + (f", default {default})" if default else ")")
        group.addoption(flag, dest=flag.lstrip("-").replace("-", "_"), default=None, help=text + shown)


def option(config: pytest.Config, flag: str) -> str | None:
    dest = flag.lstrip("-").replace("-", "_")
    try:
        value = config.getoption(dest)
    except ValueError:  # options not registered (conftest not initial): environment only
        value = None
    spec = next(o for o in OPTIONS if o[0] == flag)
    return value if value not in (None, "") else (os.environ.get(spec[1]) or spec[2])


@dataclass
class Cl2Options:
    binary: str
    testconfig: Path | None
    slo: dict[str, float | None]
    baseline: dict[str, float] | None
    job: str
    s3: str | None


def _kops_config(settings: Settings, config: pytest.Config) -> KopsConfig:
    node_size = option(config, "--node-size") or (settings.instance_types[0] if settings.instance_types else None)
    if not node_size:
        raise ValueError("--provider=kops needs a node size: --node-size TYPE or --instance-type TYPE")
    state = state_store(option(config, "--perfci-kops-state"))
    if not state:
        raise ValueError("--provider=kops needs a state store: --perfci-kops-state s3://bucket or KOPS_STATE_STORE")
    region = settings.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    zones_text = option(config, "--zones") or (f"{region}a" if region else "")
    zones = tuple(z.strip() for z in zones_text.split(",") if z.strip())
    if not zones:
        raise ValueError("--provider=kops needs zones: --zones us-east-1a[,...] or --region")
    nodes_text = option(config, "--nodes") or "3"
    if not nodes_text.isdigit() or int(nodes_text) < 1:
        raise ValueError(f"--nodes {nodes_text!r}: expected a positive integer")
    name = cluster_name(settings.run_id)
    return KopsConfig(
        name=name, state=state, zones=zones, node_count=int(nodes_text), node_size=node_size,
        control_plane_size=option(config, "--control-plane-size"),
        kubernetes_version=option(config, "--k8s-version"),
        networking=option(config, "--perfci-kops-networking"),
        tags=perfci_tags(settings.run_id, settings.owner, settings.ttl, state),
        kops=os.environ.get("PERFCI_KOPS_BINARY", "kops"),
        validate_wait=option(config, "--perfci-kops-validate-wait") or "20m",
    )


def cl2_options(config: pytest.Config) -> Cl2Options:
    slo_text = option(config, "--cl2-slo") or ""
    baseline_path = option(config, "--cl2-baseline")
    testconfig = option(config, "--cl2-testconfig")
    return Cl2Options(
        binary=option(config, "--cl2-binary") or "clusterloader2",
        testconfig=Path(testconfig) if testconfig else None,
        slo=parse_slo_overrides([s for s in slo_text.split(",") if s.strip()]),
        baseline=parse_baseline(Path(baseline_path).read_text()) if baseline_path else None,
        job=option(config, "--perfdash-job") or "perfci-cl2",
        s3=option(config, "--perfci-results-s3"),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_perfci_make_provider(settings: Settings, config: pytest.Config) -> Any:
    """--provider=kops: the cluster is this suite's target (validated now, created on first use)."""
    if settings.provider != "kops":
        return None
    from pytest_perfci.plugin import progress_printer

    kops_cfg = _kops_config(settings, config)
    opts = cl2_options(config)  # bad --cl2-slo / unreadable baseline: a usage error before anything exists
    if opts.testconfig is None or not opts.testconfig.is_file():
        raise ValueError(f"--cl2-testconfig {opts.testconfig or ''!s}: need an existing CL2 test config "
                         "(e.g. perf-tests/clusterloader2/testing/load/config.yaml)")
    ledger = Ledger(settings.results / "ledger.jsonl")
    return KopsProvider(kops_cfg, run_id=settings.run_id, ledger=ledger,
                        workdir=settings.results / settings.run_id, region=settings.region,
                        progress=progress_printer(config))


@pytest.fixture(scope="session")
def cl2(pytestconfig: pytest.Config) -> Cl2Options:
    return cl2_options(pytestconfig)


@pytest.fixture(scope="session")
def cluster(perfci_provider: Provider, perfci_settings: Settings) -> Iterator[Cluster]:
    """A validated kops cluster with a run-private kubeconfig; deleted at the end whatever happens
    (test failure, Ctrl-C, SIGTERM/SIGHUP, an error while it was being created or validated)."""
    provider = perfci_provider
    if not isinstance(provider, KopsProvider):
        pytest.skip("suites/cl2 needs a Kubernetes cluster: run with --provider=kops (see docs/cl2.md)")
    try:
        yield provider.cluster()
    finally:
        if perfci_settings.keep:
            life = provider.lifecycle
            provider.lifecycle.progress(
                f"kops: --perfci-keep: cluster {life.config.name} left up (kubeconfig {life.kubeconfig}); "
                f"delete it with `kops delete cluster --name {life.config.name} --state {life.config.state} "
                f"--yes` or `perfci reap --run-id {perfci_settings.run_id} --yes`")
        else:
            provider.release_all()
