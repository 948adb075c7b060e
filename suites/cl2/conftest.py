"""ClusterLoader2 suite: the `cluster` session fixture (a kops cluster, always deleted) and `cl2`.

The kops provider is built by pytest_perfci (providers/kops.py, ``--provider=kops``) and every option
(kops and cl2 alike, with its PERFCI_* variable) comes from the Settings model; this conftest only
checks, before anything is created, what the suite itself needs: an existing CL2 test config and a
readable baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_perfci.checks.cl2 import parse_baseline, parse_slo_overrides
from pytest_perfci.providers.base import Provider
from pytest_perfci.providers.kops import Cluster, KopsProvider
from pytest_perfci.settings import Settings


@dataclass
class Cl2Options:
    binary: str
    testconfig: Path | None
    slo: dict[str, float | None]
    baseline: dict[str, float] | None
    job: str
    s3: str | None


def cl2_options(settings: Settings) -> Cl2Options:
    opts = settings.cl2
    try:
        baseline = parse_baseline(opts.baseline.read_text()) if opts.baseline else None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{settings.origin('cl2_baseline')} {opts.baseline}: {exc}") from None
    return Cl2Options(
        binary=opts.binary, testconfig=opts.testconfig, slo=parse_slo_overrides(opts.slo), baseline=baseline,
        job=opts.perfdash_job, s3=settings.record.s3,
    )


@pytest.hookimpl(trylast=True)  # after pytest_perfci made the settings and the provider
def pytest_configure(config: pytest.Config) -> None:
    """--provider=kops: what CL2 needs is checked now, before the cluster is created on first use."""
    from pytest_perfci.stash import SETTINGS_KEY

    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or settings.effective_provider != "kops":
        return
    try:
        opts = cl2_options(settings)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if opts.testconfig is None or not opts.testconfig.is_file():
        raise pytest.UsageError(f"--cl2-testconfig {opts.testconfig or ''!s}: need an existing CL2 test config "
                                "(e.g. perf-tests/clusterloader2/testing/load/config.yaml)")


@pytest.fixture(scope="session")
def cl2(perfci_settings: Settings) -> Cl2Options:
    return cl2_options(perfci_settings)


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
