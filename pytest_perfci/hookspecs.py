"""Hooks a conftest.py or plugin can implement to extend perfci."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_perfci.hosts.base import Host
    from pytest_perfci.providers.base import Provider
    from pytest_perfci.settings import Settings


@pytest.hookspec(firstresult=True)
def pytest_perfci_make_provider(settings: Settings, config: pytest.Config) -> Provider | None:
    """Return a Provider (a pytest_perfci.providers.base.Provider subclass instance) to use instead of
    the registry's one for settings.effective_provider; anything else is a usage error.

    Creating a provider must not create resources: it is called at configure time, before
    collection, so that a wrong selection fails before anything costs money.
    """


@pytest.hookspec(firstresult=True)
def pytest_perfci_host_address(instance: Any) -> str | None:
    """Return how to reach a provisioned instance ("host", "host:port" or "user@host:port").

    Default: its public IP, else its private IP. Implement it for a bastion, a VPN, or tests that map
    instances to local SSH daemons.
    """


@pytest.hookspec
def pytest_perfci_prepare_host(host: Host, needs: tuple[str, ...]) -> None:
    """Prepare a host once, before its first test, after perfci installed what the suites need
    (`needs`, e.g. ("perf",)): your sysctls, services, files. Runs as its own Allure step with a
    progress line; raise to make the host's tests error with your message."""


@pytest.hookspec
def pytest_perfci_reset_host(host: Host) -> None:
    """Put a host back: after each test marked ``@pytest.mark.perfci_reset`` and once after the
    last test on the host (before it is released). Its own Allure step and progress line."""
