"""ClusterLoader2 on a kops cluster, judged by our SLOs (not CL2's own small-cluster thresholds).

Thin by design: run CL2 (collect.cl2), export the artifacts where perfdash reads them, judge them
with checks.cl2, and fail with one sentence per violated SLO naming the measured value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_perfci.aws.clients import s3_client
from pytest_perfci.checks.cl2 import judge, render_table, verdict_json
from pytest_perfci.collect.cl2 import (
    Cl2InfrastructureError,
    build_number,
    cl2_command,
    export_perfdash,
    load_report,
    report_files,
    run_cl2,
    upload_tree,
    write_overrides,
)
from pytest_perfci.providers.kops import Cluster
from pytest_perfci.settings import Settings

# CL2 overrides per variant (names from perf-tests clusterloader2/testing/load/config.yaml).
VARIANTS: dict[str, dict[str, Any]] = {
    "smoke": {"CL2_PODS_PER_NODE": 5, "CL2_ENABLE_PVS": False},
    "load": {},
}


def _attach(request: pytest.FixtureRequest, files: list[Any], table: str) -> None:
    """Allure attachments, only when allure-pytest is writing results."""
    if not getattr(request.config.option, "allure_report_dir", None):
        return
    import allure

    allure.attach(table, name="SLO verdict", attachment_type=allure.attachment_type.TEXT)
    for path in files:
        kind = allure.attachment_type.XML if path.suffix == ".xml" else allure.attachment_type.JSON
        allure.attach.file(str(path), name=path.name, attachment_type=kind)


def _run(variant: str, cluster: Cluster, cl2: Any, settings: Settings, request: pytest.FixtureRequest,
         progress: Any) -> None:
    base = settings.results / settings.run_id / "cl2" / variant
    report_dir = base / "report"
    overrides = write_overrides(VARIANTS[variant], base / "overrides.yaml")
    cmd = cl2_command(cl2.binary, cl2.testconfig, kubeconfig=cluster.kubeconfig, nodes=cluster.node_count,
                      report_dir=report_dir, overrides=[overrides])
    try:
        run = run_cl2(cmd, report_dir=report_dir, log_path=base / "cl2.log", emit=progress)
    except Cl2InfrastructureError as exc:
        pytest.fail(str(exc), pytrace=False)
    files = report_files(report_dir)
    build = build_number()
    artifacts = export_perfdash(report_dir, settings.results / "perfdash", cl2.job, build,
                                files=[*files, run.log_path])
    if cl2.s3:
        upload_tree(settings.results / "perfdash", cl2.s3, s3_client(settings.endpoint_url),
                    only=artifacts.parent)
        upload_tree(settings.results / "perfdash", cl2.s3, s3_client(settings.endpoint_url),
                    only=settings.results / "perfdash" / "perfdash-config")
    verdict = judge(load_report(report_dir), cl2.slo, cl2.baseline)
    table = "\n".join(render_table(verdict))
    (base / "verdict.txt").write_text(table + "\n")
    (base / "verdict.json").write_text(json.dumps(verdict_json(verdict), indent=2) + "\n")
    _attach(request, files, table)
    for line in table.splitlines():
        progress(f"cl2 {variant}: {line}")
    if not verdict.ok:  # also when no SLO was measured at all (Verdict.unmeasured)
        pytest.fail("\n".join(verdict.reasons()), pytrace=False)


@pytest.fixture
def progress(pytestconfig: pytest.Config) -> Any:
    from pytest_perfci.plugin import progress_printer

    return progress_printer(pytestconfig)


def test_smoke(cluster: Cluster, cl2: Any, perfci_settings: Settings, request: pytest.FixtureRequest,
               progress: Any) -> None:
    """A light load (5 pods per node) to prove the cluster and CL2 work before a full run."""
    _run("smoke", cluster, cl2, perfci_settings, request, progress)


def test_load(cluster: Cluster, cl2: Any, perfci_settings: Settings, request: pytest.FixtureRequest,
              progress: Any) -> None:
    """The standard CL2 load test, judged by the published Kubernetes SLOs (docs/cl2.md)."""
    _run("load", cluster, cl2, perfci_settings, request, progress)
