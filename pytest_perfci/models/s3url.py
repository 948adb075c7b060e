"""The one reading of an `s3://bucket[/prefix]` URL (results upload and history, perfdash export).

Checked when options are read, before anything is created or uploaded, so it must not import botocore.
"""

from __future__ import annotations

import re
from typing import Final

# Bucket naming rules (3-63 characters: lower-case letters, digits, dots and hyphens; letter or digit
# at both ends); the prefix is free text.
_S3_URL: Final = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


class S3UrlError(ValueError):
    """Not an s3://bucket[/prefix] URL; str() is one line naming the value."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without leading/trailing slash) of s3://bucket[/prefix]."""
    m = _S3_URL.match(url.strip())
    if not m:
        raise S3UrlError(f"{url!r} is not an s3://bucket[/prefix] URL")
    return m["bucket"], (m["prefix"] or "").strip("/")


def is_s3_url(text: str) -> bool:
    """Whether a results/history source names S3 (then parse_s3_url says whether it is well formed)."""
    return text.startswith("s3://")
