"""NDJSON results to and from S3 (`--perfci-s3 s3://bucket/prefix`, history from an S3 prefix).

Layout: s3://bucket/prefix/<run_id>/results.ndjson (+ matrix.md, matrix.html), mirroring the local
results dir, so the same prefix is both where runs upload and where history reads from.
Clients come from pytest_perfci.aws.clients (adaptive retries, loopback-only guard in tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_perfci.aws.clients import s3_client
from pytest_perfci.models.s3url import S3UrlError, is_s3_url, parse_s3_url
from pytest_perfci.results.model import ResultRecord, parse_ndjson

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["S3UrlError", "is_s3_url", "join_key", "parse_s3_url", "read_prefix", "s3_client", "upload"]


def __getattr__(name: str) -> Any:
    """S3_ERRORS, built on first use so that URL checks at plugin start do not import botocore."""
    if name == "S3_ERRORS":
        from botocore.exceptions import BotoCoreError, ClientError

        from pytest_perfci.aws.clients import RealEndpointRefused

        # What reading or writing S3 can raise: no credentials, endpoint unreachable or refused, no bucket.
        return (BotoCoreError, ClientError, RealEndpointRefused, OSError)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def upload(files: Iterable[Path], url: str, run_id: str, client: S3Client) -> list[str]:
    """Upload files to s3://bucket/prefix/<run_id>/<name>; returns the s3:// URLs written."""
    bucket, prefix = parse_s3_url(url)
    written = []
    types = {".ndjson": "application/x-ndjson", ".md": "text/markdown; charset=utf-8",
             ".html": "text/html; charset=utf-8", ".json": "application/json"}
    for path in files:
        key = join_key(prefix, run_id, path.name)
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(),
                          ContentType=types.get(path.suffix, "application/octet-stream"))
        written.append(f"s3://{bucket}/{key}")
    return written


def read_prefix(url: str, client: S3Client) -> list[ResultRecord]:
    """Every record of every *.ndjson object under s3://bucket/prefix."""
    bucket, prefix = parse_s3_url(url)
    records: list[ResultRecord] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".ndjson"):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
                records.extend(parse_ndjson(body, f"s3://{bucket}/{obj['Key']}"))
    return records
