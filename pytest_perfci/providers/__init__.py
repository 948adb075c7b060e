"""Providers: where hosts come from (local, inventory, ec2, kops; the table is `registry.PROVIDERS`).

Names are loaded on first use (PEP 562) so that `settings` can read the registry at plugin start
without importing any provider.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_perfci.providers.base import Provider, ProviderContext
    from pytest_perfci.settings import Settings

_EXPORTS = {
    "Provider": "base", "ProviderContext": "base", "Target": "base", "TargetUnavailable": "base",
    "WorkerHandle": "base", "KeptHost": "base",
    "LocalProvider": "local",
    "PROVIDERS": "registry", "provider_class": "registry",
}


def make_provider(settings: Settings, context: ProviderContext | None = None) -> Provider:
    """The provider for a validated Settings, from the registry; creating it creates nothing."""
    from pytest_perfci.providers.base import ProviderContext
    from pytest_perfci.providers.registry import provider_class

    cls = provider_class(settings.effective_provider)
    return cls.from_settings(settings, context or ProviderContext())


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "PROVIDERS", "KeptHost", "LocalProvider", "Provider", "ProviderContext", "Target", "TargetUnavailable",
    "WorkerHandle", "make_provider", "provider_class",
]
