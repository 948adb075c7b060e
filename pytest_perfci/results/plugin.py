"""pytest wiring of results: options, the perfci_record/perfci_sample fixtures, NDJSON, S3, matrix, Allure.

Loaded by pytest_perfci.plugin (its `pytest_plugins`). Runs in every process; under xdist the
samples, capability cells and host infrastructure travel to the controller in report.user_properties
(plain JSON), and only the controller writes files, uploads and renders the matrix.

Verdicts happen where the test runs: a sample is judged against the baseline file and the history
when it is recorded, and a passing test whose samples regressed fails with the verdict lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci import allure as allure_mod
from pytest_perfci.checks.verdict import Finding
from pytest_perfci.hosts.base import Host
from pytest_perfci.results import s3
from pytest_perfci.results.baseline import BaselineError, Baselines, load_baselines
from pytest_perfci.results.capabilities import CapabilityRecord, write_capabilities
from pytest_perfci.results.history import History, load_history
from pytest_perfci.results.matrix import build_matrix, write_matrix
from pytest_perfci.results.model import (
    Direction,
    Infrastructure,
    NdjsonWriter,
    ResultRecord,
    ResultsFormatError,
    SampleVerdict,
    git_commit,
)
from pytest_perfci.results.scrub import scrub_bytes, scrub_text, scrub_text_count
from pytest_perfci.results.states import concerning, message_code, not_run
from pytest_perfci.stash import SESSION_KEY, SETTINGS_KEY, TARGET_PROPERTY

SAMPLE_PROPERTY = "perfci_sample"
INFRA_PROPERTY = "perfci_infrastructure"
CAPABILITY_PROPERTY = "perfci_capability"  # written by the perfci_capability fixture


@dataclass
class ResultsState:
    """Per process: what this run records into and judges against."""

    run_id: str
    results_dir: Path
    provider: str
    git_commit: str | None
    allure: bool
    baselines: Baselines | None = None
    history: History | None = None
    history_source: str | None = None
    s3_url: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    infras: dict[str, Infrastructure] = field(default_factory=dict)
    # secret-looking strings redacted as Allure files were written (one-element counter, see allure_scrub)
    redactions: list[int] = field(default_factory=lambda: [0])

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.run_id


STATE_KEY = pytest.StashKey[ResultsState]()
ITEM_KEY = pytest.StashKey[dict[str, Any]]()
RECORDER_KEY = pytest.StashKey["Recorder"]()


@pytest.hookimpl(trylast=True)  # after pytest_perfci.plugin stashed the settings
def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return
    session = config.stash.get(SESSION_KEY, None)
    state = ResultsState(
        run_id=settings.run_id, results_dir=Path(settings.results),
        provider=session.provider.name if session is not None else settings.effective_provider,
        git_commit=git_commit(config.rootpath), allure=allure_mod.active(config),
        endpoint_url=settings.endpoint_url, region=settings.region,
    )
    opts = settings.record  # options (and their env/ini spellings) come from the Settings model
    state.s3_url = opts.s3  # validated as an s3:// URL with the settings
    if opts.baseline is not None:
        try:
            state.baselines = load_baselines(opts.baseline)
        except BaselineError as exc:
            raise pytest.UsageError(f"{settings.origin('baseline')}: {exc}") from None
    source = opts.history
    if source:
        try:
            state.history = load_history(
                source, endpoint_url=settings.endpoint_url, region=settings.region, exclude_run=settings.run_id,
                k=opts.history_k, min_history=opts.history_min, method=opts.history_band,
            )
        except (ResultsFormatError, s3.S3UrlError, ValueError) as exc:
            raise pytest.UsageError(f"{settings.origin('history')}: {exc}") from None
        except s3.S3_ERRORS as exc:  # S3 unreachable, no credentials, no such bucket: say so before spending
            raise pytest.UsageError(f"{settings.origin('history')} {source}: cannot read: {exc}") from None
        state.history_source = source
    config.stash[STATE_KEY] = state
    if state.allure:  # every process that writes Allure files (xdist workers too) scrubs as it writes
        from pytest_perfci import allure_scrub

        allure_scrub.install(state.redactions)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsCollector(state, config), "perfci-results-collector")


# --- where a test ran -------------------------------------------------------------------------------


def _target_name(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return (callspec.params.get("host") if callspec is not None else None) or "local"


def infrastructure_of(request: pytest.FixtureRequest, host: Any, state: ResultsState) -> Infrastructure:
    name = getattr(host, "name", None) or _target_name(request)
    if name not in state.infras:
        session = request.config.stash.get(SESSION_KEY, None)
        facts = host.facts
        provider = session.provider.name if session is not None else state.provider
        state.infras[name] = Infrastructure.from_facts(
            facts, provider=provider, target=name, run_id=state.run_id, git_commit=state.git_commit,
            availability_zone=session.zone(name) if session is not None else None,
        )
    return state.infras[name]


@pytest.fixture(autouse=True)
def _perfci_results_host(request: pytest.FixtureRequest, _perfci_marker_gate: None) -> None:
    """For tests on a host: its infrastructure into the report, Allure labels; after the marker gate so a
    test that is skipped by markers never brings a host up."""
    state = request.config.stash.get(STATE_KEY, None)
    if state is None or "host" not in request.fixturenames:
        return
    first = _target_name(request) not in state.infras  # this test's setup brings the host up (in this process)
    started = time.monotonic()
    host = request.getfixturevalue("host")
    took = time.monotonic() - started
    infra = infrastructure_of(request, host, state)
    request.node.user_properties.append((INFRA_PROPERTY, infra.model_dump(mode="json")))
    request.node.stash[ITEM_KEY] = {
        "infra": infra, "acquired_s": took if first else None, "facts": host.facts.model_dump(mode="json"),
    }
    if state.allure:
        allure_mod.label_test(infra, request.node)


# --- recording samples -------------------------------------------------------------------------------


class Recorder:
    """What a test records: typed samples (judged against baseline and history) and raw attachments."""

    def __init__(self, request: pytest.FixtureRequest, state: ResultsState) -> None:
        self._request = request
        self._state = state
        self.records: list[ResultRecord] = []

    def _infra(self) -> Infrastructure:
        info = self._request.node.stash.get(ITEM_KEY, None)
        if info is not None:
            return info["infra"]
        return Infrastructure(provider=self._state.provider, target=_target_name(self._request),
                              run_id=self._state.run_id, git_commit=self._state.git_commit)

    def sample(self, name: str, value: float | None = None, unit: str = "", verdict: SampleVerdict = "info",
               *, direction: Direction = "both", **metadata: Any) -> ResultRecord:
        """Record one typed sample; returns it with its baseline/history judgements filled in."""
        infra = self._infra()
        node = self._request.node
        rec = ResultRecord(
            name=name, value=value, unit=unit, verdict=verdict, direction=direction, metadata=metadata,
            run_id=self._state.run_id, test=node.nodeid, suite=allure_mod.suite_name(Path(str(node.path))),
            infrastructure=infra,
        )
        if rec.value is not None:
            if self._state.baselines is not None:
                rec.baseline = self._state.baselines.judge(name, rec.value, unit, infra)
            if self._state.history is not None:
                rec.history = self._state.history.judge(name, rec.value, infra.key, direction, unit)
        node.user_properties.append((SAMPLE_PROPERTY, rec.model_dump(mode="json", by_alias=True)))
        self.records.append(rec)
        return rec

    def attach(self, name: str, body: str | bytes | dict[str, Any] | list[Any] | Path, kind: str = "text") -> None:
        """A raw output (perf output, prober JSON, a summary file) for Allure; scrubbed; no-op without
        --alluredir."""
        if not self._state.allure:
            return
        if isinstance(body, Path):
            allure_mod.attach_file(body, name, kind if kind != "text" else None)
        else:
            allure_mod.attach(name, body, kind)

    @property
    def regressions(self) -> list[str]:
        return [j.message for r in self.records for j in (r.baseline, r.history) if j is not None and j.failed]


@pytest.fixture
def perfci_record(request: pytest.FixtureRequest) -> Recorder:
    """perfci_record.sample(name, value, unit, verdict, direction=..., **metadata) and
    perfci_record.attach(name, body, kind): typed samples into the results, raw outputs into Allure."""
    state = request.config.stash.get(STATE_KEY, None)
    if state is None:
        raise RuntimeError("perfci results are not configured (pytest_perfci plugin disabled?)")
    recorder = Recorder(request, state)
    request.node.stash[RECORDER_KEY] = recorder
    return recorder


@pytest.fixture
def perfci_sample(perfci_record: Recorder) -> Callable[..., ResultRecord]:
    """sample(name, value, unit="", verdict="info", direction="both", **metadata): perfci_record.sample."""
    return perfci_record.sample


# A test body ending in one of these ended as designed: its verdict, not a crash of execute.
VERDICTS = (pytest.skip.Exception, pytest.xfail.Exception, pytest.fail.Exception, AssertionError)


@pytest.fixture
def perfci_capability(request: pytest.FixtureRequest) -> Callable[..., None]:
    """record(capability, ok, detail, host=None, finding=None): one cell of the end-of-run capability
    table and matrix. `finding` is the judge's verdict in the shared vocabulary (checks.verdict): the
    matrix then takes the cell's state and reason code from the judge instead of reading the sentence.

    Stored in the report's user_properties so it reaches the controller under xdist too.
    """
    name = _target_name(request)

    def record(capability: str, ok: bool, detail: str = "", host: Host | None = None,
               finding: Finding | None = None) -> None:
        summary = host.facts.summary() if host is not None else ""
        judged = {"state": finding.state.value, "code": finding.code} if finding is not None else {}
        cell = CapabilityRecord(target=name, capability=capability, ok=ok, detail=detail, facts=summary, **judged)
        request.node.user_properties.append((CAPABILITY_PROPERTY, cell.model_dump()))

    return record


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """The test body's steps (provision, ready, execute, verdict) and the regression verdict. execute
    is red only when the body crashed; the verdict step carries the test's status."""
    state = item.config.stash.get(STATE_KEY, None)
    on = state is not None and state.allure
    info = item.stash.get(ITEM_KEY, None)
    if on and info is not None:
        allure_mod.provision_and_ready(info["infra"], info["acquired_s"], info["facts"])
    outcome = "passed"
    held: BaseException | None = None
    try:
        with allure_mod.step("execute") if on else nullcontext():
            try:
                result = yield
            except VERDICTS as exc:
                outcome = ("xfailed" if isinstance(exc, pytest.xfail.Exception)
                           else "skipped" if isinstance(exc, pytest.skip.Exception) else "failed")
                held = exc
    except BaseException:
        outcome = "broken"
        raise
    finally:
        recorder = item.stash.get(RECORDER_KEY, None)
        regressions = recorder.regressions if recorder is not None else []
        if on:
            records = recorder.records if recorder is not None else []
            samples = [r.model_dump(mode="json", by_alias=True, exclude={"infrastructure"}) for r in records]
            allure_mod.verdict(item.config, samples,
                               "failed: regression" if regressions and outcome == "passed" else outcome)
            caps = [str(v["capability"]) for k, v in item.user_properties  # type: ignore[index]
                    if k == CAPABILITY_PROPERTY]
            allure_mod.label_story(list(dict.fromkeys(caps or [r.name for r in records])))
    if held is not None:
        raise held
    if regressions:
        pytest.fail("\n".join(regressions), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True, trylast=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_scrub(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Innermost: the report's captured output and failure text are scrubbed before anyone reads them:
    pytest's terminal report (a CI job's public log), --junitxml, allure-pytest's attachments, xdist's
    copy to the controller (found by the fault campaign's secrets kind, issue 16). The name starts
    with pytest_ because pytest registers no other name, specname or not."""
    report: pytest.TestReport = yield
    redacted = 0
    for i, (title, content) in enumerate(report.sections):
        clean, n = scrub_text_count(content)
        if n:
            report.sections[i] = (title, clean)
            redacted += n
    if report.longrepr is not None:
        clean, n = scrub_text_count(str(report.longrepr))
        if n:  # only then: the structured repr (colours, sections) becomes its scrubbed text
            report.longrepr = clean
            redacted += n
    state = item.config.stash.get(STATE_KEY, None)
    if redacted and state is not None:
        state.redactions[0] += redacted
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: runs after allure-pytest filled in the result
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    state = item.config.stash.get(STATE_KEY, None)
    if state is None or not state.allure or call.when != "call" or call.excinfo is None:
        return report
    exc = call.excinfo.value
    deliberate = isinstance(exc, pytest.xfail.Exception) or (
        isinstance(exc, pytest.fail.Exception) and not exc.pytrace)
    if deliberate:
        message = str(getattr(report, "wasxfail", "") or "").removeprefix("reason: ") or report.longreprtext
        judged = [str(v.get("code")) for k, v in item.user_properties  # type: ignore[union-attr]
                  if k == CAPABILITY_PROPERTY and isinstance(v, dict) and v.get("code")]
        code = message_code(message, judged)
        allure_mod.deliberate_status(item.config, item.nodeid,
                                     f"[{code}] {message}" if code != "OTHER" else message)
    return report


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    state = item.config.stash.get(STATE_KEY, None)
    with allure_mod.step("teardown") if state is not None and state.allure else nullcontext():
        return (yield)


# --- the controller: NDJSON, matrix, S3, environment.properties -----------------------------------------


def _ts(epoch: float) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def test_outcome(report: pytest.TestReport) -> tuple[str, str]:
    """(outcome, message): "xfailed"/"xpassed" apart from skipped/passed (a deliberate absence is not a
    skip), and the text the matrix takes a cell's full reason from (failure, xfail or skip reason)."""
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return ("xfailed" if report.skipped else "xpassed"), str(wasxfail)
    if report.failed:
        return "failed", scrub_text(failure_text(report))
    if report.skipped and isinstance(report.longrepr, tuple):
        return "skipped", skip_reason(report)
    return report.outcome, ""


def skip_reason(report: pytest.TestReport) -> str:
    """A skipped report's reason, as pytest.skip() was given it."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr or "")


def failure_text(report: pytest.TestReport) -> str:
    """The failure's own message: what pytest.fail(..., pytrace=False) was given (pytest prints only
    that), else the 'E ' lines of the traceback (the assertion), never the whole traceback."""
    text = report.longreprtext
    e_lines = [line[2:].strip() for line in text.splitlines() if line.startswith("E ")]
    return ("\n".join(e_lines) if e_lines else text).removeprefix("Failed: ")


def capability_cells(report: pytest.TestReport) -> list[CapabilityRecord]:
    """The capability cells a test recorded with the perfci_capability fixture."""
    return [CapabilityRecord.model_validate(v) for k, v in report.user_properties if k == CAPABILITY_PROPERTY]


def records_from_report(report: pytest.TestReport, run_id: str) -> list[ResultRecord]:
    """The samples and capability cells a test report carries, as NDJSON records."""
    props = list(report.user_properties)
    infra_docs = [v for k, v in props if k == INFRA_PROPERTY]
    infra = Infrastructure.model_validate(infra_docs[-1]) if infra_docs else None
    started, finished = _ts(report.start), _ts(report.stop)
    outcome, message = test_outcome(report)
    timing: dict[str, Any] = {"outcome": outcome, "test_started": started, "test_finished": finished}
    out = []
    for key, raw in props:
        value: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if key == SAMPLE_PROPERTY:
            out.append(ResultRecord.model_validate({**value, **timing}))
        elif key == CAPABILITY_PROPERTY:
            cell = CapabilityRecord.model_validate(value)
            cap_infra = infra or Infrastructure(target=cell.target, run_id=run_id)
            out.append(ResultRecord.model_validate({
                "name": cell.capability, "kind": "capability", "verdict": "pass" if cell.ok else "unavailable",
                "metadata": {"detail": cell.detail,
                             **({"state": cell.state, "code": cell.code} if cell.state else {}),
                             **({"message": m} if (m := concerning(message, cell.capability)) else {})},
                "run_id": run_id, "test": report.nodeid,
                "suite": allure_mod.suite_name(Path(report.fspath)), "infrastructure": cap_infra,
                "recorded_at": finished or datetime.now(UTC), **timing,
            }))
    return out


class ResultsCollector:
    """Controller side (or the only process): the one collector of what tests recorded (samples and
    capability cells, also from xdist workers); writes NDJSON, the matrix, the capability table, uploads."""

    def __init__(self, state: ResultsState, config: pytest.Config) -> None:
        self.state = state
        self.config = config
        self.records: list[ResultRecord] = []
        self.capabilities: list[CapabilityRecord] = []
        self.writer = NdjsonWriter(state.run_dir / "results.ndjson")
        self.infras: dict[str, Infrastructure] = {}
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.matrix_paths: list[Path] = []
        self.ran: set[str] = set()  # targets a test's call phase reached
        self.skipped: dict[str, list[str]] = {}  # target -> skip reasons of its tests, before the call phase
        self._failed_writes = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        target = next((str(v) for k, v in report.user_properties if k == TARGET_PROPERTY), None)
        if target is not None:
            if report.when == "call":
                self.ran.add(target)
            elif report.when == "setup" and report.skipped:
                self.skipped.setdefault(target, []).append(skip_reason(report))
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == INFRA_PROPERTY:
                infra = Infrastructure.model_validate(value)
                self.infras[infra.target] = infra
        self.capabilities.extend(capability_cells(report))
        records = records_from_report(report, self.state.run_id)
        if records:
            self.records.extend(records)
            with self._unwritten(self.writer.path):
                self.writer.write(records)

    @contextmanager
    def _unwritten(self, what: Path | str) -> Generator[None, None, None]:
        """A results file that cannot be written (a full disk) is one error line at the end and exit 1,
        never a traceback that stops the run before its teardown (issue 16); said once per file."""
        try:
            yield
        except OSError as exc:
            line = f"{what} not written ({type(exc).__name__}: {exc.strerror or exc})"
            if line not in self.errors:
                self.errors.append(line)
            self._failed_writes = True

    def not_run_records(self) -> list[ResultRecord]:
        """One "target" record per target no test ran on (never came up, or every test skipped)."""
        psession = self.config.stash.get(SESSION_KEY, None)
        out = []
        for target, skips in self.skipped.items():
            if target in self.ran:
                continue
            try:
                instance_type = psession.target(target).instance_type if psession is not None else None
            except KeyError:
                instance_type = None
            v = not_run(target, skips)
            infra = self.infras.get(target) or Infrastructure(
                provider=self.state.provider, target=target, instance_type=instance_type, run_id=self.state.run_id,
                git_commit=self.state.git_commit)
            out.append(ResultRecord(name=target, kind="target", verdict="unavailable", run_id=self.state.run_id,
                                    metadata={"state": v.state.value, "code": v.code, "detail": v.reason},
                                    infrastructure=infra))
        return out

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        unreached = self.not_run_records()
        if unreached:
            self.records.extend(unreached)
            with self._unwritten(self.writer.path):
                self.writer.write(unreached)
        files: list[Path] = [self.writer.path] if self.writer.count else []
        if any(r.kind in ("capability", "target") for r in self.records):
            with self._unwritten(self.state.run_dir / "matrix.md"):
                md, html, _ = write_matrix(self.records, self.state.run_dir,
                                           title=f"perfci capability matrix ({self.state.run_id})")
                self.matrix_paths = [md, html]
                files += self.matrix_paths
        if self.state.s3_url and files:
            try:
                client = s3.s3_client(self.state.endpoint_url, self.state.region)
                self.notes += s3.upload(files, self.state.s3_url, self.state.run_id, client)
            except (*s3.S3_ERRORS, s3.S3UrlError) as exc:  # results that did not land must not look green
                self.errors.append(f"upload to {self.state.s3_url} failed: {exc}")
                if session.exitstatus == 0:
                    session.exitstatus = 1
        alluredir = allure_mod.results_dir(self.config)
        if alluredir is not None:
            from pytest_perfci import allure_meta

            with self._unwritten(alluredir):
                if self.infras:
                    allure_mod.write_environment(alluredir, self.infras)
                allure_meta.write(alluredir)
            with self._unwritten(alluredir):
                redacted = self.state.redactions[0] + allure_mod.sweep(alluredir)
                if redacted:
                    self.notes.append(f"redacted {redacted} secret-looking string(s) in {alluredir}")
        if self._failed_writes and session.exitstatus == 0:
            session.exitstatus = 1  # results that did not land must not look green

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """--junitxml is written in junitxml's own sessionfinish: scrub it after, before CI uploads it."""
        xmlpath = getattr(config.option, "xmlpath", None)
        if xmlpath and Path(xmlpath).is_file():
            clean, n = scrub_bytes(Path(xmlpath).read_bytes())
            if n:
                try:
                    Path(xmlpath).write_bytes(clean)
                except OSError as exc:  # a full disk: a half-written file must not keep the secrets
                    Path(xmlpath).unlink(missing_ok=True)
                    sys.stderr.write(f"perfci: {xmlpath} removed: it held secrets and could not be "
                                     f"rewritten scrubbed ({type(exc).__name__}: {exc.strerror or exc})\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._results_summary(terminalreporter)
        if self.capabilities or any(r.kind == "target" for r in self.records):
            from pytest_perfci.results.terminal import grid

            terminalreporter.write_sep("=", "perfci capabilities")
            heads = {c.target: c.facts for c in self.capabilities if c.facts}
            _write_lines(terminalreporter, grid(build_matrix(self.records), heads))
        if self.capabilities:
            try:
                path = write_capabilities(self.capabilities, self.state.run_dir)
            except OSError as exc:
                terminalreporter.write_line(f"perfci: capabilities not written ({type(exc).__name__}: "
                                            f"{exc.strerror or exc})", red=True)
            else:
                terminalreporter.write_line(f"capabilities written to {path}")

    def _results_summary(self, tr: Any) -> None:
        if not (self.records or self.errors or self.notes):
            return
        tr.write_sep("=", "perfci results")
        samples = [r for r in self.records if r.kind == "measurement"]
        if self.writer.count:
            cells = sum(r.kind == "capability" for r in self.records)
            down = sum(r.kind == "target" for r in self.records)
            tr.write_line(f"{len(samples)} samples, {cells} capability cells"
                          + (f", {down} target(s) not run" if down else "") + f" written to {self.writer.path}")
        if samples:
            from pytest_perfci.results.terminal import samples_table

            _write_lines(tr, samples_table(samples))
        for r in samples:
            for j in (r.baseline, r.history):
                if j is not None and j.verdict == "fail":
                    tr.write_line(f"REGRESSION {r.test}: {j.message}", red=True)
        short = [r for r in samples if r.history is not None and r.history.verdict == "insufficient"]
        if short:
            tr.write_line(f"{len(short)} sample(s) with too little history for a regression verdict "
                          f"(from {self.state.history_source}), e.g. {short[0].history.message}")  # type: ignore[union-attr]
        if self.matrix_paths:
            tr.write_line(f"capability matrix: {', '.join(str(p) for p in self.matrix_paths)}")
        for note in self.notes:
            tr.write_line(note)
        for error in self.errors:
            tr.write_line(f"perfci: {error}", red=True)


def _write_lines(tr: Any, lines: list[list[tuple[str, dict[str, bool]]]]) -> None:
    """Coloured segments through pytest's writer (it drops colour for NO_COLOR and a non-TTY)."""
    for line in lines:
        for text, markup in line:
            tr.write(text, **markup)
        tr.write("\n")
