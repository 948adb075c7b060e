"""Where hosts come from: a provider names its targets at collection time and brings them up lazily.

Naming targets without provisioning lets pytest build test ids (test_x[m7i.metal-24xl]) and apply
markers before a single resource exists, so a bad selection costs nothing.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from pytest_perfci.hosts.base import Host


class TargetUnavailable(Exception):
    """A provider cannot bring this target up (e.g. no capacity anywhere); its tests skip with the
    reason while the rest of the run goes on."""


class Target(BaseModel):
    """One machine a run checks; `name` is the test-id fragment and the summary row."""

    model_config = ConfigDict(frozen=True)

    name: str
    provider: str
    instance_type: str | None = None
    # What the user asked for when it was not this exact name: an alias (m7i.metal) or an attribute
    # query (arch=arm64,metal=true); kept in the test's metadata while ids use the real name.
    requested: str | None = None


class Provider(Protocol):
    name: str

    def targets(self) -> list[Target]:
        """What this run will check; must not create anything."""
        ...

    def acquire(self, target: Target) -> Host:
        """Bring the target up (or attach to it) and return a ready handle."""
        ...

    def release_all(self) -> object:
        """Destroy or release everything acquired; idempotent, safe after partial failures.

        May return a report (EC2 does); callers must not depend on it."""
        ...
