"""Host handles: the object a test gets to run commands on a target."""

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.hosts.result import (
    AuthenticationFailed,
    CommandFailed,
    CommandTimeout,
    HostError,
    HostUnreachable,
    Result,
)

__all__ = [
    "AuthenticationFailed",
    "CommandFailed",
    "CommandTimeout",
    "Host",
    "HostError",
    "HostUnreachable",
    "LocalHost",
    "Result",
]
