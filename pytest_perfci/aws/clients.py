"""boto3 clients with botocore's own retry modes and a fail-closed guard against real endpoints.

Throttling is botocore's job (adaptive retry mode), not ours. The guard exists because a test that
reaches real AWS is a bug that costs money: with PERFCI_LOCAL_ONLY=1 (set by the project's tests
and inherited by every pytest they start) any request to a non-loopback host is refused before it
is sent.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

if TYPE_CHECKING:  # boto3 is imported on first use: loading the plugin must stay cheap for every run
    import boto3
    from botocore.config import Config
    from types_boto3_ec2 import EC2Client
    from types_boto3_s3 import S3Client
    from types_boto3_ssm import SSMClient


@cache
def retry_config() -> Config:
    from botocore.config import Config

    return Config(retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=10, read_timeout=60)


def teardown_config(connect_timeout: float = 5.0, read_timeout: float = 20.0, attempts: int = 3) -> Config:
    """For deleting: a hung endpoint must not hold a teardown (shielded from Ctrl-C) for ~700 s.

    botocore's default here would be 10 attempts x 60 s read timeout per call; teardown clients give
    each call at most ``attempts`` x ``read_timeout`` (the engine's overall deadline bounds the rest).
    """
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": attempts},
                  connect_timeout=connect_timeout, read_timeout=read_timeout)


class RealEndpointRefused(RuntimeError):
    """A request would have left this machine while PERFCI_LOCAL_ONLY=1."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_only() -> bool:
    return os.environ.get("PERFCI_LOCAL_ONLY", "") not in ("", "0", "false")


def _guard(request: Any, **_: Any) -> None:
    if local_only() and not is_loopback_url(request.url):
        raise RealEndpointRefused(
            f"refusing {urlsplit(request.url).hostname}: PERFCI_LOCAL_ONLY=1 allows loopback endpoints only"
        )


def session(region: str | None = None) -> boto3.Session:
    """A session whose every client carries the endpoint guard; region defaults as boto3's does."""
    import boto3

    sess = boto3.Session(region_name=region)
    sess.events.register("before-send", _guard)
    return sess


@overload
def client(sess: boto3.Session, service: Literal["ec2"], endpoint_url: str | None = None,
           config: Config | None = None) -> EC2Client: ...
@overload
def client(sess: boto3.Session, service: Literal["s3"], endpoint_url: str | None = None,
           config: Config | None = None) -> S3Client: ...
@overload
def client(sess: boto3.Session, service: Literal["ssm"], endpoint_url: str | None = None,
           config: Config | None = None) -> SSMClient: ...
@overload
def client(sess: boto3.Session, service: str, endpoint_url: str | None = None, config: Config | None = None
           ) -> Any: ...


def client(sess: boto3.Session, service: str, endpoint_url: str | None = None, config: Config | None = None) -> Any:
    """A client with adaptive retries (or ``config``); endpoint from the argument, else AWS_ENDPOINT_URL."""
    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    if local_only() and (url is None or not is_loopback_url(url)):
        raise RealEndpointRefused(
            f"refusing endpoint {url or 'AWS default'} for {service}: PERFCI_LOCAL_ONLY=1 allows loopback only"
        )
    # `service` is any service name here; the overloads above give callers the typed client of ec2/s3/ssm.
    return sess.client(service, endpoint_url=url, config=config or retry_config())  # type: ignore[call-overload]


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """The S3 client of results upload/history and the perfdash export (region as boto3 defaults it)."""
    return client(session(region), "s3", endpoint_url=endpoint_url)
