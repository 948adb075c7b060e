"""The EC2 provider: catalogue, AMIs, per-run access, launch, self-destruct, the resource kinds cleanup deletes.

Names are loaded on first use (PEP 562): importing one submodule (the catalogue for `perfci plan`, a
resource kind for `perfci reap`) must not drag in the provider, boto3 and paramiko. The pure parts
(instance types, the --instance-type query grammar) live in pytest_perfci.models.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AmiError": "ami", "AmiMismatch": "ami",
    "Catalog": "catalog", "InstanceTypeInfo": "catalog", "UnknownInstanceType": "catalog",
    "CapacityUnavailable": "launch", "LaunchError": "launch", "QuotaExceeded": "launch",
    "EC2Provider": "provider", "EC2SetupError": "provider", "InstanceRecord": "provider",
    "NoCredentials": "provider",
    "InstanceKind": "resources", "KeyPairKind": "resources", "SecurityGroupKind": "resources",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
