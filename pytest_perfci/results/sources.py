"""Where earlier results are read from: an NDJSON file, a directory (every *.ndjson below) or an s3:// prefix.

One reader for `--perfci-history` and the `perfci matrix/report/export` commands, so all accept the
same places and say the same thing when one cannot be read. S3 clients come from aws.clients (boto3
loads on first use, not when this module is imported).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pytest_perfci.aws.clients import s3_client
from pytest_perfci.models.s3url import S3UrlError, is_s3_url
from pytest_perfci.results import s3
from pytest_perfci.results.model import ResultRecord, ResultsFormatError, read_local
from pytest_perfci.results.s3 import read_prefix


class UnreadableResults(Exception):
    """A results place could not be read; str() is the one line a command prints after its own name."""


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


def add_source_arguments(parser: argparse.ArgumentParser, metavar: str = "RESULTS") -> None:
    """The places to read (one or more) and --endpoint-url: the same for every command that reads results."""
    parser.add_argument("results", nargs="+", metavar=metavar, help="NDJSON file, directory or s3://bucket/prefix")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint override (default AWS_ENDPOINT_URL)")


def read_all(sources: Sequence[str], *, endpoint_url: str | None = None) -> list[ResultRecord]:
    """Every record of every place, for the perfci commands; UnreadableResults names what failed
    (a malformed file or URL, or S3: no such bucket, no credentials, endpoint refused)."""
    try:
        return [r for source in sources for r in read_records(source, endpoint_url=endpoint_url)]
    except (ResultsFormatError, S3UrlError) as exc:
        raise UnreadableResults(str(exc)) from None
    except s3.S3_ERRORS as exc:  # evaluated only when reading failed: botocore loads only then
        raise UnreadableResults(f"cannot read {' '.join(sources)}: {exc}") from None
