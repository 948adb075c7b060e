"""The provider table: ``--provider`` name -> "module:Class", imported only when chosen.

A lazy table (in the style of testinfra's backend table) keeps plugin start cheap (boto3 and paramiko
load only for the provider a run uses) and avoids registration by import side effect: a provider
exists because it has a line here, not because something happened to import its module.

Adding a provider: subclass :class:`pytest_perfci.providers.base.Provider` and add one line below.
The order is the order ``--provider`` errors list the choices in.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_perfci.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "local": "pytest_perfci.providers.local:LocalProvider",
    "inventory": "pytest_perfci.providers.inventory:InventoryProvider",
    "ec2": "pytest_perfci.providers.ec2.provider:EC2Provider",
    "kops": "pytest_perfci.providers.kops:KopsProvider",
    "qemu": "pytest_perfci.providers.qemu:QemuProvider",
}


class UnknownProvider(ValueError):
    """A provider name with no line in PROVIDERS."""


def names() -> tuple[str, ...]:
    return tuple(PROVIDERS)


def provider_class(name: str) -> type[Provider]:
    """Import and return the class registered as `name`."""
    try:
        spec = PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(f"{name!r} is not allowed; choose one of: {', '.join(PROVIDERS)}") from None
    module, _, attr = spec.partition(":")
    cls: type[Provider] = getattr(import_module(module), attr)
    return cls
