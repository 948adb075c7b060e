"""A real moto server in its own process on 127.0.0.1, shared by the tests that need EC2/S3/SSM.

Its own process (not a thread) so that its state outlives a pytest that a kill test shoots, exactly
as AWS would. Every test gets a clean server (POST /moto-api/reset) and AWS variables that can only
reach it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10)

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """Variables for this process and for pytest subprocesses: dummy credentials, local endpoint only."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": self.url,
            "PERFCI_LOCAL_ONLY": "1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self, service: str, region: str = "us-east-1") -> object:
        import boto3

        return boto3.client(
            service, region_name=region, endpoint_url=self.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def state(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as resp:
            return json.loads(resp.read())


def start_moto(log: Path) -> MotoServer:
    """moto_server, plus EC2 placement groups (tests/moto_placement.py: moto 5.2.5 has none)."""
    port = free_port()
    program = Path(__file__).with_name("moto_placement.py")
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(program), "-H", "127.0.0.1", "-p", str(port)], stdout=fh,
                                stderr=fh, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
            return MotoServer(url, proc)
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"moto_server did not come up on {url}: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a loaded machine: do not fail the last test's teardown over it
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture
def moto(moto_session: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A clean moto server, and this process's AWS variables pointing only at it."""
    moto_session.reset()
    for key, value in moto_session.env().items():
        monkeypatch.setenv(key, value)
    return moto_session
