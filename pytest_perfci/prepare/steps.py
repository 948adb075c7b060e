"""Where preparation meets the pytest run: once per host before its first test, resets after tests
that ask and after the last one; each as an Allure step with a progress line."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import pytest

from pytest_perfci.hosts.base import Host
from pytest_perfci.models.preparation import Preparation
from pytest_perfci.prepare.host import refresh_facts
from pytest_perfci.prepare.needs import normalise

NEEDS_MARK = "perfci_needs"
RESET_MARK = "perfci_reset"
MARKER_DOCS = (
    (f"{NEEDS_MARK}(*tools): what the test needs on its host (e.g. \"perf\", \"stress-ng\"); hosts the run creates "
    "get it installed, local/inventory hosts only with --perfci-prepare (else the missing tool is reported once "
    "with the command that would install it). Put it in a module's pytestmark for a whole suite."),
    (f"{RESET_MARK}: call the pytest_perfci_reset_host hook after this test (it is also called once after the "
    "last test on each host)."),
)


def collected_needs(items: Iterable[pytest.Item]) -> tuple[str, ...]:
    """The union of every collected test's perfci_needs (NeedError names a bad tool name)."""
    return normalise(str(a) for item in items for m in item.iter_markers(NEEDS_MARK) for a in m.args)


@contextlib.contextmanager
def _step(config: pytest.Config, title: str) -> Iterator[None]:
    from pytest_perfci import allure as allure_mod

    if allure_mod.active(config):
        with allure_mod.step(title):
            yield
    else:
        yield


def _attach(config: pytest.Config, name: str, body: str) -> None:
    from pytest_perfci import allure as allure_mod

    if allure_mod.active(config) and body:
        allure_mod.attach(name, body)


def prepare(config: pytest.Config, provider_prepare: Callable[..., Preparation], host: Host,
            needs: tuple[str, ...], *, allowed: bool, progress: Callable[[str], None]) -> Preparation:
    """The provider's preparation, then the users' hook; one line per need, once per host."""
    with _step(config, f"prepare {host.name}: {', '.join(needs) or 'nothing needed'}"):
        prep = provider_prepare(host, needs, allowed=allowed)
        for item in prep.items:
            progress(f"{host.name}: {item.line()}")
            _attach(config, f"prepare {host.name} {item.need}: package manager output", item.log)
        refresh_facts(host)
    if config.hook.pytest_perfci_prepare_host.get_hookimpls():
        with _step(config, f"pytest_perfci_prepare_host({host.name})"):
            progress(f"{host.name}: pytest_perfci_prepare_host")
            config.hook.pytest_perfci_prepare_host(host=host, needs=needs)
    return prep


def reset(config: pytest.Config, host: Host, *, why: str, progress: Callable[[str], None]) -> None:
    """The users' reset hook, if any implements it."""
    if not config.hook.pytest_perfci_reset_host.get_hookimpls():
        return
    with _step(config, f"pytest_perfci_reset_host({host.name}) {why}"):
        progress(f"{host.name}: pytest_perfci_reset_host ({why})")
        config.hook.pytest_perfci_reset_host(host=host)
