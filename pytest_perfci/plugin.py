"""pytest hooks only: options, markers, target parametrisation, fixtures and the terminal summary.

Everything with logic lives elsewhere (settings, markers, session, checks) so this file reads as the
list of places where perfci meets pytest.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_perfci import markers
from pytest_perfci import schedule as scheduling
from pytest_perfci.cleanup import signals
from pytest_perfci.handoff import HandoffClient
from pytest_perfci.hosts.base import Host
from pytest_perfci.prepare import steps as prepare_steps
from pytest_perfci.prepare.needs import NeedError
from pytest_perfci.progress import Board, live_terminal
from pytest_perfci.providers.base import Pair, Provider, TargetUnavailable, WorkerInput
from pytest_perfci.session import HOST_FIXTURE, TeardownIncomplete
from pytest_perfci.settings import (
    Settings,
    SettingsError,
    load_settings,
    option_specs,
    read_pyproject_table,
)
from pytest_perfci.stash import SESSION_KEY, SETTINGS_KEY, TARGET_PROPERTY
from pytest_perfci.tags import suite_tag

if TYPE_CHECKING:
    from pytest_perfci.providers.base import ProviderContext
    from pytest_perfci.session import ProviderSession

# Results (samples, NDJSON/S3, baselines/history, matrix, Allure): its own hooks, options and fixtures.
pytest_plugins = ["pytest_perfci.results.plugin"]
REQUESTED_PROPERTY = "perfci_requested"  # the alias or query a target's real type was resolved from


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_perfci import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


# Options, ini keys and PERFCI_* variables are generated from the Settings fields (settings.option_specs).
_GROUPS = {
    "": ("perfci", "perfci: provision machines and check what their hardware gives"),
    "record": ("perfci", ""),
    "kops": ("perfci-kops", "perfci: kops cluster (--provider=kops)"),
    "cl2": ("perfci-cl2", "perfci: ClusterLoader2 (suites/cl2)"),
    "qemu": ("perfci-qemu", "perfci: target twins on this machine (--provider=qemu)"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for spec in option_specs():
        group = parser.getgroup(*_GROUPS[spec.section])
        group.addoption(*spec.flags, **spec.argparse_kwargs())
        parser.addini(spec.ini, f"default for {spec.flag} (CLI > {spec.env} > this)", default=None)


def _ini_values(config: pytest.Config) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in option_specs():
        value = config.getini(spec.ini)
        if value not in (None, "", []):
            values[spec.dest] = value
    values.update(read_pyproject_table(config.rootpath))
    return values


def pytest_configure(config: pytest.Config) -> None:
    for doc in (*markers.MARKERS.values(), *prepare_steps.MARKER_DOCS):
        config.addinivalue_line("markers", doc)
    cli = {spec.dest: config.getoption(f"perfci_{spec.dest}") for spec in option_specs()}
    raw_input = getattr(config, "workerinput", {}).get(WorkerInput.KEY)
    worker = WorkerInput.model_validate_json(raw_input) if raw_input is not None else None
    if worker is not None:
        cli["run_id"] = worker.run_id  # xdist workers share the controller's run id
    try:
        settings = load_settings(cli, _ini_values(config))
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    if worker is None and (why := unwritable_dir(Path(settings.results))) is not None:
        # found now, not at the first test's write, and before anything is created
        raise pytest.UsageError(f"{settings.origin('results')}: {str(settings.results)!r} {why}")
    if worker is None and settings.effective_provider == "ec2" and settings.ssh_cidr:
        from pytest_perfci.providers.ec2.network import cidr_warning

        if (note := cidr_warning(settings.ssh_cidr)) is not None:
            progress_printer(config)(note)
    from pytest_perfci.providers import make_provider
    from pytest_perfci.session import ProviderSession

    try:
        provider = config.hook.pytest_perfci_make_provider(settings=settings, config=config)
        if provider is None:
            provider = make_provider(settings, provider_context(config))
        elif not isinstance(provider, Provider):
            raise pytest.UsageError(
                f"pytest_perfci_make_provider returned {type(provider).__name__}, which is not a "
                "pytest_perfci.providers.base.Provider subclass"
            )
        if worker is not None and worker.resolution is not None:
            provider.adopt_resolution(worker.resolution)  # no catalogue call per worker
        handles = None if worker is None else worker.handles if worker.handoff is None else {}
        session = ProviderSession(settings, provider, handles)
        if worker is not None and worker.handoff is not None:
            session.handoff = HandoffClient(Path(worker.handoff))
        session.targets  # noqa: B018 - naming the targets validates the selection before anything is created
        if worker is None and (why := schedule_conflict(config, session)) is not None:
            raise pytest.UsageError(f"{settings.origin('schedule')}: {settings.schedule!r} {why}")
        if worker is None:
            provider.validate()  # API-side checks (types exist, AMI arch, credentials): still nothing created
            session.name_reap()  # a signal's line names the run's whole reap command, in every phase
    except (ValueError, RuntimeError) as exc:
        # Bad selection, unknown type, AMI/arch mismatch, no credentials: one line, nothing created.
        raise pytest.UsageError(f"perfci: {exc}" if not str(exc).startswith(("perfci", "-")) else str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    config.stash[SESSION_KEY] = session
    _wire_preparation(config, session)
    if worker is None:
        config.pluginmanager.register(Lifecycle(config, session), "perfci-lifecycle")
        # SIGTERM/SIGHUP (a cancelled CI job) unwind like Ctrl-C, so every finalizer and teardown runs.
        config.add_cleanup(signals.install())


def schedule_conflict(config: pytest.Config, session: ProviderSession) -> str | None:
    """Why --perfci-schedule cannot be honoured in this run (checked before anything is created), or None."""
    schedule = session.settings.schedule
    if schedule == "parallel":
        return None
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        return ("runs one target's tests after another's in this process; it does not combine with xdist "
                "(-n/--dist), whose controller brings every target up at once: use parallel with -n")
    if schedule == "serial" and len(session.targets) > 1:
        if session.settings.keep:
            return "releases each target before the next one; --perfci-keep keeps them all: drop one of the two"
        if type(session.provider).release is Provider.release:
            return (f"needs a provider that releases one target at a time (ec2); {session.provider.name} "
                    "releases all at the end, so they would be alive together: use pipeline or parallel")
    return None


def _wire_preparation(config: pytest.Config, session: ProviderSession) -> None:
    """Each host is prepared once before its first test and reset after its last (prepare.steps)."""
    progress = progress_printer(config)
    settings = session.settings
    session.on_prepare = lambda host: prepare_steps.prepare(
        config, session.provider.prepare, host, session.needs, allowed=settings.prepare, progress=progress)
    session.on_last = lambda host: prepare_steps.reset(config, host, why="after the last test", progress=progress)


def unwritable_dir(path: Path) -> str | None:
    """Why results could not be written under `path` (without creating it), or None."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe == path and not path.is_dir():
        return "is not a directory"
    if not probe.is_dir():
        return f"cannot be created: {str(probe)!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return "is not writable" if probe == path else f"cannot be created: {str(probe)!r} is not writable"
    return None


def provider_context(config: pytest.Config) -> ProviderContext:
    """What a provider may use from this run: the address hook and the terminal's progress lines."""
    from pytest_perfci.providers.base import ProviderContext

    return ProviderContext(
        address=lambda instance: config.hook.pytest_perfci_host_address(instance=instance),
        progress=progress_printer(config),
        suite=suite_tag([str(a) for a in config.args]),
    )


BOARD_KEY = pytest.StashKey[Board]()


def progress_printer(config: pytest.Config) -> Board:
    """Progress lines on the real terminal, even from inside a captured fixture setup: the run's one
    Board (pytest_perfci.progress), so a target's status lines rewrite one line in place on a TTY and
    repeat no identical poll elsewhere."""
    board = config.stash.get(BOARD_KEY, None)
    if board is not None:
        return board

    def reporter() -> Any:
        return config.pluginmanager.get_plugin("terminalreporter")

    def write(text: str) -> None:
        tr = reporter()
        capman = config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            if tr is not None:
                tr.ensure_newline()  # after pytest's "path/test_x.py " (no newline yet)
                tr.write(text, flush=True)
            else:  # configure time (no reporter yet) or an xdist worker
                sys.stderr.write(text)
                sys.stderr.flush()

    def live() -> bool:
        tr = reporter()
        return tr is not None and live_terminal(bool(tr.isatty()))

    board = Board(write, live=live, width=lambda: reporter()._tw.fullwidth if reporter() is not None else 80)
    config.stash[BOARD_KEY] = board
    return board


def _settle(config: pytest.Config) -> None:
    board = config.stash.get(BOARD_KEY, None)
    if board is not None:
        board.settle()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    """A fixture that waited for targets (the `host` fixture) has returned: pytest writes next, so the
    live status block is left as it stands."""
    try:
        return (yield)
    finally:
        _settle(request.config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _settle(session.config)  # targets brought up at configure/session start (xdist handoff)


@pytest.hookimpl(trylast=True)
def pytest_perfci_host_address(instance: dict[str, Any]) -> str | None:
    """Default: public IP, else private IP (a conftest hook that returns a value wins)."""
    from pytest_perfci.providers.ec2.provider import default_address

    return default_address(instance)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand every worker the run id and, for providers that share hosts, where to ask the
    controller for each target: it brings one up when a worker first needs it (handoff.py), not here,
    before any worker has started (one typed WorkerInput, as JSON)."""
    session = node.config.stash[SESSION_KEY]
    settings = node.config.stash[SETTINGS_KEY]
    directory = (session.serve_handoff(Path(settings.results) / ".handoff" / settings.run_id)
                 if session.shares_hosts else None)
    handoff = WorkerInput(
        run_id=settings.run_id,
        resolution=session.provider.export_resolution(),
        handoff=str(directory) if directory is not None else None,
    )
    node.workerinput[WorkerInput.KEY] = handoff.model_dump_json()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller: with at least as many targets as workers, each worker takes whole targets
    (xdist_scheduler.py); otherwise xdist's own choice."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    from pytest_perfci.xdist_scheduler import TargetScheduling, by_target

    names = [t.name for t in session.targets]
    workers = int(config.getvalue("numprocesses") or 0) or len(config.getvalue("tx") or [])
    if not by_target(config.getvalue("dist"), workers, names, session.releases_early):
        return None
    progress_printer(config)(f"perfci: xdist: one target per worker at a time ({len(names)} targets, "
                             f"{workers} workers), so each machine is in use from its first test to its release")
    return TargetScheduling(config, log, names)


LATE_SHIELD_KEY = pytest.StashKey[contextlib.ExitStack]()


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, Any]:
    """Once the last test ran, a SIGINT/SIGTERM/SIGHUP must not cut off what follows (the matrix, the
    S3 upload, the Allure sweep, the teardown): from here through pytest_sessionfinish such a signal
    prints one line and is ignored (cleanup/signals.py), as during a teardown."""
    try:
        return (yield)
    finally:
        settings = session.config.stash.get(SETTINGS_KEY, None)
        if settings is not None and not hasattr(session.config, "workerinput"):
            stack = contextlib.ExitStack()
            stack.enter_context(signals.shielded(settings.run_id))
            session.config.stash[LATE_SHIELD_KEY] = stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, Any, Any]:
    """Outermost: lifts the late-signal shield once every sessionfinish implementation ran."""
    try:
        return (yield)
    finally:
        stack = session.config.stash.get(LATE_SHIELD_KEY, None)
        if stack is not None:
            del session.config.stash[LATE_SHIELD_KEY]
            stack.close()


@pytest.hookimpl(trylast=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_teardown(session: pytest.Session) -> None:
    """Teardown for processes that ran no session fixture (the xdist controller) or whose fixture was
    never set up; after the runner's own fixture teardown, so normally there is nothing left to do.
    (Named pytest_*: pytest registers no other name as a hook, whatever its marker says.)"""
    provider_session = session.config.stash.get(SESSION_KEY, None)
    if provider_session is None:
        return
    try:
        provider_session.close()
    except TeardownIncomplete as exc:
        sys.stderr.write(f"{exc}\n")
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if provider_session.is_worker or not provider_session.provider.creates_resources:
        return
    from pytest_perfci import allure as allure_mod

    alluredir = allure_mod.results_dir(session.config)
    if alluredir is not None and (props := lifecycle_properties(provider_session)):
        try:
            allure_mod.append_environment(alluredir, props)
        except OSError as exc:  # a full disk: one line, never a traceback after the teardown (issue 16)
            sys.stderr.write(f"perfci: {alluredir / 'environment.properties'} not written "
                             f"({type(exc).__name__}: {exc.strerror or exc})\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        try:
            session.close()  # last backstop (e.g. a usage error after configure); idempotent
        except TeardownIncomplete as exc:
            sys.stderr.write(f"{exc}\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """--perfci-keep: the "perfci kept" section (ssh command, expires-at, reap command per kept host);
    for providers that create machines, "perfci targets": when each was released, its instance-seconds."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None and session.settings.keep and not session.is_worker:
        from pytest_perfci import keep

        keep.report(terminalreporter, session.settings, session.provider)
    if session is not None and not session.is_worker and session.provider.creates_resources:
        lines = lifecycle_lines(session)
        if lines:
            terminalreporter.write_sep("=", f"perfci targets ({session.settings.schedule})")
            for line in lines:
                terminalreporter.write_line(line)


def _clock(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-4] + "Z"


def lifecycle_lines(session: ProviderSession) -> list[str]:
    """One line per target that was asked for: requested, ready after, released when and after what."""
    lines = []
    for name in [t.name for t in session.targets]:
        life = session.lives.get(name)
        if life is None or life.requested is None:
            continue
        ready = (f"in use after {life.acquired - life.requested:.1f}s" if life.acquired is not None
                 else "never in use")
        if life.released is None:
            released = "kept" if session.settings.keep else "not released"
        elif life.last_test is not None:
            released = f"released {_clock(life.released)} after its last test {life.last_test}"
        else:
            released = f"released {_clock(life.released)} at the end of the session"
        seconds = f"; {life.instance_seconds:.1f} instance-seconds" if life.instance_seconds is not None else ""
        error = f" (early release failed: {life.error}; released at the end)" if life.error else ""
        lines.append(f"{name}: requested {_clock(life.requested)}, {ready}, {released}{seconds}{error}")
    return lines


def lifecycle_properties(session: ProviderSession) -> dict[str, str]:
    """The same facts for Allure's environment widget (<target>.released, <target>.instance_seconds)."""
    out: dict[str, str] = {}
    for name, life in session.lives.items():
        if life.requested is None:
            continue
        out[f"{name}.requested"] = _clock(life.requested)
        if life.released is not None:
            out[f"{name}.released"] = _clock(life.released)
            out[f"{name}.released_after"] = life.last_test or "end of session"
        if life.instance_seconds is not None:
            out[f"{name}.instance_seconds"] = f"{life.instance_seconds:.1f}"
    return out


def _item_uses(item: pytest.Item, session: ProviderSession) -> frozenset[str]:
    """The targets one test uses: its `host` parameter, or every target for a test of `hosts`."""
    names = [t.name for t in session.targets]
    if "hosts" in getattr(item, "fixturenames", ()):
        return frozenset(names)
    name = _target_name(item)
    return frozenset({name}) if name in names else frozenset()


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_by_target(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests grouped by target, in the provider's order (after every other reordering), so a target's
    tests are together and it can be released after the last one; a no-op for providers that release
    everything at the end under the default schedule (the run order is then left as it was)."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    early = type(session.provider).release is not Provider.release and not session.settings.keep
    if not early and session.schedule == "parallel":
        return
    uses = [_item_uses(item, session) for item in items]
    items[:] = [items[i] for i in scheduling.order(uses, [t.name for t in session.targets])]


class Lifecycle:
    """Release each target after its last test and (pipeline) boot the next one in time: in the process
    that owns the targets, from the test reports; the xdist controller maps the workers' test ids."""

    def __init__(self, config: pytest.Config, session: ProviderSession) -> None:
        self.config = config
        self.session = session
        self.tracker: scheduling.Tracker | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.session.releases_early or self.session.schedule == "pipeline":
            uses = {item.nodeid: _item_uses(item, self.session) for item in session.items}
            self.tracker = scheduling.Tracker.of(self.session.schedule, uses)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Controller: every worker collects the same ids; a test id naming no target may use any."""
        if self.tracker is not None or not self.session.releases_early:
            return
        names = [t.name for t in self.session.targets]
        uses = {}
        for nodeid in ids:
            name = scheduling.target_of_id(nodeid, names)
            uses[nodeid] = frozenset({name}) if name is not None else frozenset(names)
        self.tracker = scheduling.Tracker.of(self.session.schedule, uses)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        worker = _worker_id(report)
        if worker is not None and report.when == "setup":
            self._worker_moved(worker, tracker.uses.get(report.nodeid, frozenset()))
        if report.when == "call":
            tracker.ran(report.nodeid, report.duration)
        if report.when != "teardown":
            return
        release, start = tracker.torn_down(report.nodeid, self._boot_s())
        if start is not None:
            self.session.prefetch(start)
        for name in release:
            self.session.release(name, after=report.nodeid)

    def _worker_moved(self, worker: str, uses: frozenset[str]) -> None:
        """Controller: a worker set up a test of `uses`. A worker's fixtures on target X live in the worker
        until its first test of another single target sets up (pytest then tears X's down, before that
        setup report is sent) or the worker ends: until then the worker holds X and X's release waits."""
        if len(uses) == 1:
            for name in self.session.held_by(worker):
                if name not in uses:
                    self.session.unhold(name, worker)
        for name in uses:
            self.session.hold(name, worker)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Controller: a worker ended (its session fixtures were torn down): it holds nothing any more."""
        worker = _node_id(node)
        if worker is not None:
            for name in self.session.held_by(worker):
                self.session.unhold(name, worker)

    def _boot_s(self) -> float | None:
        boots = [life.acquired - life.requested for life in self.session.lives.values()
                 if life.acquired is not None and life.requested is not None]
        return sum(boots) / len(boots) if boots else None


def _node_id(node: Any) -> str | None:
    """An xdist worker's id (gw0...) from its WorkerController; None for anything else."""
    return getattr(getattr(node, "gateway", None), "id", None)


def _worker_id(report: pytest.TestReport) -> str | None:
    """The xdist worker a report came from, at the controller (xdist sets `report.node`); else None."""
    return _node_id(getattr(report, "node", None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION_KEY, None)
    try:
        needs = prepare_steps.collected_needs(items)
    except NeedError as exc:
        raise pytest.UsageError(str(exc)) from None
    if session is not None:
        session.needs = needs
        session.provider.declare_needs(needs)  # before any host exists: EC2 installs at boot
        if any("topology" in getattr(item, "fixturenames", ()) for item in items):
            session.pairs_used = True  # an xdist worker tells the controller (handoff.py)
            session.provider.declare_pairs()  # before any host exists: EC2 places client and server together
    known: Collection[str] | None = None
    catalogue_read = False
    for item in items:
        try:
            markers.validate(item.iter_markers(), item.nodeid)
        except markers.MarkerError as exc:
            raise pytest.UsageError(str(exc)) from None
        type_marks = [m for m in item.iter_markers("instance_type")]
        if type_marks and session is not None:
            # The catalogue is read once, and only when a marker names a type that is not one of the
            # run's targets (as resolved, or as requested): an xdist worker adopted the controller's
            # resolution and must not list the catalogue again for names the run already knows.
            if not catalogue_read and markers.type_names(type_marks) - _target_spellings(session):
                catalogue_read = True
                try:
                    known = session.provider.known_instance_types()
                except (ValueError, RuntimeError) as exc:
                    raise pytest.UsageError(f"perfci: {exc}") from None
            error = markers.unknown_type_error(type_marks, item.nodeid, known)
            if error:
                raise pytest.UsageError(error)
        name = _target_name(item)
        if session is not None and name is not None:
            try:
                requested = session.target(name).requested
            except KeyError:  # a test that parametrises `host` itself
                continue
            _catalogue_skip(item, session, name)
            item.user_properties.append((TARGET_PROPERTY, name))  # a skip's report names its target
            if requested:  # ids carry the real type; what the user typed stays in the metadata
                item.user_properties.append((REQUESTED_PROPERTY, requested))


def _target_spellings(session: ProviderSession) -> set[str]:
    return {s for t in session.targets for s in (t.name, t.instance_type, t.requested) if s}


def _catalogue_skip(item: pytest.Item, session: ProviderSession, name: str) -> None:
    """Skip now, as a mark, a test whose markers the target's catalogue entry already excludes.

    The `host` fixture is session-scoped, so pytest sets it up (brings the target up) before any
    function-scoped gate runs; a skip mark is evaluated before fixtures, so an arch("arm64") test on
    m7i.large costs no RunInstances."""
    marks = [m for m in item.iter_markers() if m.name in markers.MARKERS]
    if not marks:
        return
    target = session.target(name)
    attrs = session.provider.type_info(target)
    if target.instance_type is None or attrs is None:
        return  # local, inventory: decided on the host's facts by the gate
    reason = markers.instance_type_reason(marks, name, target.instance_type, requested=target.requested,
                                          attrs=attrs) or markers.catalogue_reason(marks, name, attrs)
    if reason:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test id per target, named for it: test_cpi_count[local], test_cpi_count[m7i.metal-24xl]."""
    if "host" in metafunc.fixturenames:
        targets = metafunc.config.stash[SESSION_KEY].targets
        names = [t.name for t in targets]
        metafunc.parametrize("host", names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def perfci_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def perfci_session(pytestconfig: pytest.Config) -> Iterator[ProviderSession]:
    """The run's ProviderSession (targets, hosts, capabilities); its teardown releases every host,
    whatever happened in between."""
    session = pytestconfig.stash[SESSION_KEY]
    try:
        yield session
    finally:
        try:
            session.close()
        except TeardownIncomplete as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def perfci_provider(perfci_session: ProviderSession) -> Provider:
    """The run's Provider (e.g. the KopsProvider of suites/cl2); released by perfci_session's teardown."""
    return perfci_session.provider


@pytest.fixture(scope="session")
def host(request: pytest.FixtureRequest, perfci_session: ProviderSession) -> Iterator[Host]:
    """The target of this test id (one per target); brought up on first use and shared by the session.

    It holds the target while it lives: pytest tears a parametrized session fixture down (dependents
    first) only when the next target's first test sets up, and the target's early release waits for
    that, so no fixture finalizer runs against a machine that is already gone."""
    name = getattr(request, "param", None) or perfci_session.targets[0].name
    try:
        handle = perfci_session.host(name)
    except TargetUnavailable as exc:
        pytest.skip(f"target {name} unavailable: {exc}")
    perfci_session.hold(name, HOST_FIXTURE)
    try:
        yield handle
    finally:
        perfci_session.unhold(name, HOST_FIXTURE)


@pytest.fixture(scope="session")
def topology(host: Host, perfci_session: ProviderSession) -> Pair:
    """A client and a server for this test's target (Provider.pair): one pair per target, made after
    the target's host and shared by the session. Skips, saying why, where the provider gives none."""
    try:
        return perfci_session.pair(host.name)
    except TargetUnavailable as exc:
        pytest.skip(f"target {host.name}: no client/server pair: {exc}")


@pytest.fixture(scope="session")
def hosts(perfci_session: ProviderSession) -> list[Host]:
    """Every target of the run, for tests that compare machines."""
    if perfci_session.schedule == "serial" and len(perfci_session.targets) > 1:
        pytest.skip(f"needs all {len(perfci_session.targets)} targets at once; --perfci-schedule=serial keeps "
                    "one alive at a time")
    return [perfci_session.host(t.name) for t in perfci_session.targets]


def _target_name(request: pytest.FixtureRequest | pytest.Item) -> str | None:
    node = request if isinstance(request, pytest.Item) else request.node
    callspec = getattr(node, "callspec", None)
    return callspec.params.get("host") if callspec is not None else None


@pytest.fixture(autouse=True)
def _perfci_marker_gate(request: pytest.FixtureRequest) -> None:
    """Skip, with a reason naming the target, a test whose perfci markers exclude it."""
    marks = [m for m in request.node.iter_markers() if m.name in markers.MARKERS]
    name = _target_name(request)
    if not marks or name is None:
        return
    session = request.config.stash[SESSION_KEY]
    target = session.target(name)
    known_type = target.instance_type
    attrs = session.provider.type_info(target)  # catalogue facts, before any host exists
    if known_type is not None:  # (normally decided at collection already, see _catalogue_skip)
        reason = markers.instance_type_reason(marks, name, known_type, requested=target.requested, attrs=attrs)
        if reason:
            pytest.skip(reason)
    try:
        facts = session.host(name).facts
    except TargetUnavailable as exc:
        pytest.skip(f"target {name} unavailable: {exc}")
    reason = markers.instance_type_reason(marks, name, known_type or facts.instance_type,
                                          requested=target.requested, attrs=attrs or markers.facts_attrs(facts))
    reason = reason or markers.host_reason(marks, name, facts, lambda cap: session.capability(name, cap))
    if reason:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _perfci_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test marked perfci_reset: the pytest_perfci_reset_host hook on its host."""
    yield
    name = _target_name(request)
    if name is None or request.node.get_closest_marker(prepare_steps.RESET_MARK) is None:
        return
    session = request.config.stash[SESSION_KEY]
    prepare_steps.reset(request.config, session.host(name), why=f"after {request.node.name}",
                        progress=progress_printer(request.config))


@pytest.fixture(scope="session")
def perfci_preparation(request: pytest.FixtureRequest, host: Host, perfci_session: ProviderSession) -> Any:
    """What preparing this test's host did (prepare.outcome.Preparation): installed, missing, failed."""
    return perfci_session.preparation(host.name)
