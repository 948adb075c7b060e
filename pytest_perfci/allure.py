"""Allure: labels, steps, attachments and environment.properties, only when --alluredir is given.

Through allure-pytest's own API (allure.dynamic.*, allure.attach, allure.step), so the results are
what any Allure report expects:

- labels: parentSuite = provider/instance type (or host name), suite and feature = suite name (the
  directory under suites/), subSuite = module, story = the capabilities the test recorded, tags =
  architecture and metal|vm;
- steps in every test body: provision, ready, execute, verdict, teardown; the verdict step has the
  test's status, execute fails only when the body crashed; a deliberate failure or xfail carries its
  reason once, led by its reason code (results.states), without a traceback;
- attachments: raw outputs a test hands to perfci_record.attach (perf output, prober JSON, CL2
  summaries), the host facts and the test's samples with their verdicts;
- environment.properties in the results directory, from the host facts of every target.

Nothing is attached unscrubbed (results.scrub); allure-pytest's own file writer redacts as it writes
(allure_scrub), and at session end the whole results directory is swept again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.results.model import Infrastructure
from pytest_perfci.results.scrub import scrub_bytes, scrub_text, scrub_tree

KINDS = ("text", "json", "xml", "csv", "html", "yaml")
NODEID_LABEL = "perfci.test"  # the pytest node id, found again in a generated report's data/test-cases


def active(config: pytest.Config) -> bool:
    """allure-pytest writes results only with --alluredir; so do we."""
    return bool(getattr(config.option, "allure_report_dir", None))


def results_dir(config: pytest.Config) -> Path | None:
    value = getattr(config.option, "allure_report_dir", None)
    return Path(value) if value else None


def suite_name(path: Path) -> str:
    """suites/pmc/test_pmc.py -> pmc; elsewhere the test module's directory name."""
    parts = path.parts
    if "suites" in parts:
        i = len(parts) - 1 - parts[::-1].index("suites")
        if i + 2 < len(parts):
            return parts[i + 1]
    return path.parent.name


def parent_suite(infra: Infrastructure) -> str:
    return f"{infra.provider or 'local'}/{infra.label}"


def tags(infra: Infrastructure) -> list[str]:
    kind = {True: "metal", False: "vm", None: "virt-unknown"}[infra.metal]
    return [infra.arch, kind]


def label_test(infra: Infrastructure, item: pytest.Item) -> None:
    import allure

    allure.dynamic.parent_suite(parent_suite(infra))
    allure.dynamic.suite(suite_name(Path(str(item.path))))
    allure.dynamic.feature(suite_name(Path(str(item.path))))
    allure.dynamic.label(NODEID_LABEL, item.nodeid)  # so a matrix cell can link to this test in the report
    allure.dynamic.sub_suite(Path(str(item.path)).stem)
    allure.dynamic.tag(*tags(infra))


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    import allure

    with allure.step(scrub_text(title)):
        yield


def _attachment_type(kind: str) -> Any:
    import allure

    return {
        "text": allure.attachment_type.TEXT, "json": allure.attachment_type.JSON, "xml": allure.attachment_type.XML,
        "csv": allure.attachment_type.CSV, "html": allure.attachment_type.HTML, "yaml": allure.attachment_type.YAML,
    }[kind]


def attach(name: str, body: str | bytes | Mapping[str, Any] | list[Any], kind: str = "text") -> None:
    """Attach scrubbed text/bytes; a dict or list is attached as JSON."""
    import allure

    if kind not in KINDS:
        raise ValueError(f"attachment kind {kind!r}: one of {', '.join(KINDS)}")
    if isinstance(body, Mapping | list):
        body, kind = json.dumps(body, indent=2, default=str), "json"
    if isinstance(body, bytes):
        body = scrub_bytes(body)[0]
    else:
        body = scrub_text(body)
    allure.attach(body, name=name, attachment_type=_attachment_type(kind))


def attach_file(path: Path, name: str | None = None, kind: str | None = None) -> None:
    """Attach a file's content (read and scrubbed here: the file itself is never linked)."""
    guess = {".json": "json", ".xml": "xml", ".csv": "csv", ".html": "html", ".yaml": "yaml", ".yml": "yaml"}
    attach(name or path.name, path.read_bytes(), kind or guess.get(path.suffix, "text"))


def provision_and_ready(infra: Infrastructure, acquired_s: float | None, facts: dict[str, Any] | None) -> None:
    """Steps 1 and 2 of every test body: where the host came from and what it turned out to be."""
    if acquired_s is None:
        how = "shared session host, already up"
    else:
        how = f"acquired during this test's setup in {acquired_s:.1f} s"
    with step(f"provision: {parent_suite(infra)} ({how})"):
        pass
    with step(f"ready: {infra.summary()}"):
        if facts is not None:
            attach("host facts", facts, "json")


def _listener(config: pytest.Config) -> Any:
    return config.pluginmanager.get_plugin("allure_listener")


@contextlib.contextmanager
def _step_result(config: pytest.Config, title: str) -> Iterator[Any]:
    """A step whose result object is handed out, so its status can be set after it closes: allure-pytest
    derives a step's status from an exception raised inside it, and raising a test's own verdict there
    would put perfci's traceback into the report."""
    import allure

    ctx = allure.step(scrub_text(title))
    with ctx:
        listener = _listener(config)
        yield listener.allure_logger.get_item(ctx.uuid) if listener is not None else None


# pytest outcome -> Allure status of the verdict step (and of the test)
STATUS = {"passed": "passed", "failed": "failed", "xfailed": "skipped", "skipped": "skipped",
          "xpassed": "passed", "broken": "broken"}


def verdict(config: pytest.Config, samples: list[dict[str, Any]], outcome: str) -> None:
    """Step 4 of every test body, with the test's own status (failed, skipped for xfail, broken when
    execute crashed); the reason is the test's status message, not repeated here."""
    lines = []
    for s in samples:
        value = "" if s.get("value") is None else f" = {s['value']:g} {s.get('unit', '')}".rstrip()
        lines.append(f"{s['name']}{value}: {s['verdict']}")
        lines.extend(f"  {j['message']}" for j in (s.get("baseline"), s.get("history")) if j)
    title = f"verdict: {outcome}" + (f", {len(samples)} sample{'s' if len(samples) != 1 else ''}" if samples else "")
    with _step_result(config, title) as result:
        if samples:
            attach("perfci samples", samples, "json")
            attach("perfci verdicts", "\n".join(lines) + "\n")
    if result is not None:
        result.status = STATUS.get(outcome.split(":")[0], "broken")


def label_story(stories: list[str]) -> None:
    """story = the capabilities (or metrics) a test recorded; feature = the suite (set in label_test)."""
    import allure

    if stories:
        allure.dynamic.story(*stories)


def deliberate_status(config: pytest.Config, nodeid: str, message: str) -> None:
    """A deliberate verdict (pytest.fail(..., pytrace=False), xfail) carries its reason once, with its
    reason code in front for categories.json, and no traceback of perfci's internals."""
    from allure_commons.model2 import StatusDetails

    listener = _listener(config)
    if listener is None:
        return
    result = listener.allure_logger.get_test(listener._cache.get(nodeid))
    if result is not None:
        result.statusDetails = StatusDetails(message=scrub_text(message))


_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "=": "\\=", ":": "\\:", "#": "\\#", "!": "\\!"})


def environment_properties(infras: Mapping[str, Infrastructure]) -> str:
    """Java properties (Allure's environment widget) from host facts; keys prefixed by target when
    more than one target ran."""
    fields = ("provider", "instance_type", "region", "availability_zone", "ami", "hostname", "arch", "metal",
              "hypervisor", "cpu_vendor", "cpu_model", "nproc", "kernel", "os", "run_id", "git_commit")
    lines = []
    many = len(infras) > 1
    for target, infra in sorted(infras.items()):
        data = infra.model_dump()
        data["metal"] = infra.kind
        for field in fields:
            value = data.get(field)
            if value in (None, ""):
                continue
            key = f"{target}.{field}" if many else field
            lines.append(f"{key.translate(_ESCAPES)}={str(value).translate(_ESCAPES)}")
    return scrub_text("\n".join(lines) + "\n") if lines else ""


def write_environment(directory: Path, infras: Mapping[str, Infrastructure]) -> Path | None:
    text = environment_properties(infras)
    if not text:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "environment.properties"
    path.write_text(text, encoding="utf-8")
    return path


def append_environment(directory: Path, properties: Mapping[str, str]) -> Path:
    """Add lines to environment.properties (e.g. when each target was released, written after the
    teardown, once the facts from the hosts are already there)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "environment.properties"
    text = "".join(f"{k.translate(_ESCAPES)}={str(v).translate(_ESCAPES)}\n" for k, v in properties.items())
    with path.open("a", encoding="utf-8") as fh:
        fh.write(scrub_text(text))
    return path


def sweep(directory: Path) -> int:
    """Redact secrets anywhere in the Allure results (captured output included); returns redactions."""
    return scrub_tree(directory)
