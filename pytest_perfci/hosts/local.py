"""This very machine as a Host: the embedded default needs no cloud account and no SSH."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

from pytest_perfci.hosts.result import CommandFailed, CommandTimeout, Result, as_shell
from pytest_perfci.models.facts import FACTS_SCRIPT, Facts, parse_facts


class LocalHost:
    """Runs commands with subprocess; a string is shell text, a sequence is exec'd without a shell."""

    def __init__(self, name: str = "local", **known: str | None) -> None:
        self.name = name
        self._known = known

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        full_env = {**os.environ, **env} if env else None
        args: str | list[str] = cmd if isinstance(cmd, str) else list(cmd)
        start = time.perf_counter()
        # A new session lets a timeout kill the whole process group, not just the shell in front of it.
        try:
            proc = subprocess.Popen(
                args,
                shell=isinstance(cmd, str),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                start_new_session=timeout is not None,
            )
        except (FileNotFoundError, PermissionError) as exc:
            # The answer a shell (and so SSHHost) gives for a program it cannot run: 127/126, not an exception.
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            result = Result(as_shell(cmd), "", f"{args[0]}: {exc.strerror}\n", code, 0.0, self.name)
            if check:
                raise CommandFailed(result) from None
            return result
        with proc:
            # Bytes, decoded without newline translation: \r progress output stays as SSHHost returns it.
            try:
                raw_out, raw_err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise CommandTimeout(self.name, as_shell(cmd), timeout or 0) from None
        out, err = raw_out.decode("utf-8", "replace"), raw_err.decode("utf-8", "replace")
        result = Result(as_shell(cmd), out, err, proc.returncode, time.perf_counter() - start, self.name)
        if check and result.failed:
            raise CommandFailed(result)
        return result

    def sudo(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        if os.geteuid() == 0:
            return self.run(cmd, timeout=timeout, check=check, env=env)
        # -n: never prompt; a test run has no one to type a password.
        return self.run(["sudo", "-n", "sh", "-c", as_shell(cmd)], timeout=timeout, check=check, env=env)

    def put(self, local: str | Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: str | Path) -> None:
        shutil.copyfile(remote, local)

    @cached_property
    def facts(self) -> Facts:
        text = self.run(["sh", "-c", FACTS_SCRIPT], timeout=60).stdout
        facts = parse_facts(text, **self._known)
        return facts if facts.hostname else facts.model_copy(update={"hostname": socket.gethostname()})

    def close(self) -> None:
        """Nothing to release; present so every Host can be closed the same way."""

    def __repr__(self) -> str:
        return f"LocalHost({self.name!r})"
