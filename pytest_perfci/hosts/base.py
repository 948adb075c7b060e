"""The handle a test gets: one protocol every provider yields, whatever the transport.

Modelled on pytest-testinfra's backends and fabric's Connection: `run` returns a Result, `sudo`
elevates, `put`/`get` move files, and `facts` says truthfully where the commands ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from pytest_perfci.hosts.result import Result
from pytest_perfci.models.facts import Facts


@runtime_checkable
class Host(Protocol):
    name: str

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result: ...

    def sudo(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result: ...

    def put(self, local: str | Path, remote: str) -> None: ...

    def get(self, remote: str, local: str | Path) -> None: ...

    @property
    def facts(self) -> Facts: ...

    def close(self) -> None: ...
