"""Providers: local (this machine), and later inventory, ec2, kops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_perfci.providers.base import Provider, Target
from pytest_perfci.providers.local import LocalProvider
from pytest_perfci.settings import Settings


def make_provider(
    settings: Settings,
    *,
    address: Callable[[dict[str, Any]], str] | None = None,
    progress: Callable[[str], None] = print,
) -> Provider:
    """The provider for a validated Settings; creating it creates nothing (see Provider).

    `address` maps an EC2 instance description to "host[:port]" (the pytest_perfci_host_address
    hook); `progress` prints a line on the terminal during long waits.
    """
    name = settings.effective_provider
    if name == "local":
        return LocalProvider()
    if name == "inventory":
        from pytest_perfci.providers.inventory import InventoryProvider

        return InventoryProvider(settings)
    if name == "ec2":
        from pytest_perfci.cleanup.ledger import Ledger
        from pytest_perfci.providers.ec2 import EC2Provider

        ledger = Ledger(settings.results / "ledger.jsonl")
        return EC2Provider(settings, ledger=ledger, address=address, progress=progress)
    raise NotImplementedError(f"provider {name!r} is not available in this version")


__all__ = ["LocalProvider", "Provider", "Target", "make_provider"]
