"""categories.json and executor.json for an Allure results directory.

Why: without categories Allure lumps every failure into "Product defects"; with categories keyed on
the matrix's reason codes (results.states) the Categories tab reads "FAILED NO-PMU", "absent as
expected NO-PMU", "FAILED REGRESSION" -- the same words as the matrix. The codes reach Allure as the
"[CODE] " prefix of a deliberate failure's or xfail's status message (results.plugin). executor.json
(in CI only) gives the report its build name, link and order, which the trend widgets need.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_perfci.results.states import CODE_MEANINGS


def categories() -> list[dict[str, Any]]:
    """Allure takes the first category that matches; the codes are disjoint prefixes, so order only
    matters for the catch-alls at the end."""
    out: list[dict[str, Any]] = []
    for status, head in (("failed", "FAILED"), ("skipped", "absent as expected")):
        for code, meaning in CODE_MEANINGS.items():
            out.append({"name": f"{head} {code}: {meaning}", "matchedStatuses": [status],
                        "messageRegex": rf"\[{re.escape(code)}\][\s\S]*"})
    out += [
        {"name": "FAILED (assertion in the test, no reason code)", "matchedStatuses": ["failed"]},
        {"name": "broken: the test body crashed (see execute)", "matchedStatuses": ["broken"]},
        {"name": "skipped: not run", "matchedStatuses": ["skipped"]},
    ]
    return out


def executor(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The CI build this run belongs to (GitHub Actions' variables); None outside CI."""
    if env.get("GITHUB_ACTIONS") != "true" or not env.get("GITHUB_RUN_ID"):
        return None
    repo = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}"
    number = env.get("GITHUB_RUN_NUMBER", "")
    doc: dict[str, Any] = {
        "name": "GitHub Actions", "type": "github", "url": repo,
        "buildName": f"{env.get('GITHUB_WORKFLOW', 'perf')} #{number}".strip(),
        "buildUrl": f"{repo}/actions/runs/{env['GITHUB_RUN_ID']}",
        "reportName": "perfci",
    }
    if number.isdigit():
        doc["buildOrder"] = int(number)
    if env.get("PERFCI_ALLURE_URL"):
        doc["reportUrl"] = env["PERFCI_ALLURE_URL"]
    return doc


def write(directory: Path, env: Mapping[str, str] | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "categories.json"]
    written[0].write_text(json.dumps(categories(), indent=2) + "\n", encoding="utf-8")
    doc = executor(os.environ if env is None else env)
    if doc is not None:
        path = directory / "executor.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def test_links(report_dir: Path, base_url: str) -> dict[str, str]:
    """pytest node id -> its page in a generated Allure 2 report (`#testresult/<uid>`); the uid exists
    only after `allure generate`, so it is read back from the report's data/test-cases/*.json, matched
    by the node-id label every test carries (allure.NODEID_LABEL)."""
    from pytest_perfci.allure import NODEID_LABEL

    links: dict[str, str] = {}
    for path in sorted((report_dir / "data" / "test-cases").glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for label in doc.get("labels", []):
            if label.get("name") == NODEID_LABEL and doc.get("uid"):
                links[str(label.get("value"))] = f"{base_url}#testresult/{doc['uid']}"
    return links
