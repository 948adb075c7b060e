"""Providers: local (this machine), and later inventory, ec2, kops."""

from __future__ import annotations

from pytest_perfci.providers.base import Provider, Target
from pytest_perfci.providers.local import LocalProvider
from pytest_perfci.settings import Settings


def make_provider(settings: Settings) -> Provider:
    """The provider for a validated Settings; unbuilt providers were already refused by plugin checks."""
    name = settings.effective_provider
    if name == "local":
        return LocalProvider()
    if name == "inventory":
        from pytest_perfci.providers.inventory import InventoryProvider

        return InventoryProvider(settings)
    raise NotImplementedError(f"provider {name!r} is not available in this version")


__all__ = ["LocalProvider", "Provider", "Target", "make_provider"]
