"""Where earlier results are read from: an NDJSON file, a directory (every *.ndjson below) or an s3:// prefix.

One reader for `perfci matrix` and `--perfci-history`, so both accept the same places. S3 clients
come from aws.clients (boto3 loads on first use, not when this module is imported).
"""

from __future__ import annotations

from pathlib import Path

from pytest_perfci.aws.clients import s3_client
from pytest_perfci.models.s3url import is_s3_url
from pytest_perfci.results.model import ResultRecord, read_local
from pytest_perfci.results.s3 import read_prefix


def read_records(source: str, *, endpoint_url: str | None = None, region: str | None = None,
                 missing_ok: bool = False) -> list[ResultRecord]:
    """Every record at `source`; a local path that does not exist is [] with missing_ok (a first run's
    history), else ResultsFormatError naming it. S3 errors are the caller's (results.s3.S3_ERRORS)."""
    if is_s3_url(source):
        return read_prefix(source, s3_client(endpoint_url, region))
    path = Path(source)
    if missing_ok and not path.exists():
        return []
    return read_local([path])
