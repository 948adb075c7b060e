"""Redact key material and credentials from anything perfci writes where others read it.

Used on every Allure attachment and sample before it is written, on every NDJSON line, and as a
final sweep over the whole Allure results directory (which also holds what allure-pytest captured
from stdout/stderr/logging on its own). Patterns are anchored on what makes a string a secret (a PEM
private-key armour, an AWS key-id prefix, the name of a secret field) so that ordinary 40-character
hex strings such as git commits stay readable.
"""

from __future__ import annotations

import re
from pathlib import Path

REDACTED = "[REDACTED by perfci]"

# A whole PEM/OpenSSH/PGP private key block; a truncated one (no END line) is redacted to the end of the text.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|\Z)",
    re.DOTALL,
)
# A private key's base64 body without its armour lines (a log that dropped them, a `cat` cut short):
# recognised by the DER/OpenSSH prefix every such body starts with, then the base64 lines that follow
# (lines shorter than 16 characters end it, so a following ordinary word is kept; so does a line that
# is not base64 to its end: `AKIA... SECRET` after a body is a credential pair for _KEY_PAIR, not more
# body). Certificates (MIIC..TCC) and public keys do not start so.
_KEY_BODY = re.compile(
    r"(?:b3BlbnNzaC1rZXktdjE"                 # openssh-key-v1
    r"|MII[A-Za-z0-9+/]{5}AAKC"               # PKCS#1 RSA: SEQUENCE, INTEGER 0, INTEGER n
    r"|MII[A-Za-z0-9+/]{5}ADAN"               # PKCS#8 RSA: SEQUENCE, INTEGER 0, AlgorithmIdentifier
    r"|MIG[A-Za-z0-9+/]AgEAMB"                # PKCS#8 EC
    r"|MC4CAQAwBQYDK2Vw"                      # PKCS#8 Ed25519
    r"|MHcCAQEE|MIGkAgEBBD|MIHcAgEBBE)"       # SEC1 EC P-256 / P-384 / P-521
    r"[A-Za-z0-9+/=]*(?:[ \t]*(?:\r?\n|\\n)[A-Za-z0-9+/=]{16,}(?=[ \t]*(?:\r?\n|\\[nr]|[\"']|$)))*"
)
# AWS access key ids (long-term AKIA, temporary ASIA) — not secret alone, but half of a credential.
_ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
# A key id followed by its 40-character secret, however separated (`AKIA... wJalr...`, CSV, `id:secret`):
# the secret alone has no marker, its neighbour is the marker.
_KEY_PAIR = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}[\s,:;=|\"'/]{1,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# `aws_secret_access_key VALUE` with only whitespace between (shell history, `aws configure list`, prose):
# only for names that are nothing but a secret, and only a credential-looking value.
_SECRET_FIELD_SPACED = re.compile(
    r"(?i)((?:aws_)?secret_?access_?key|secretaccesskey|aws_session_token|session_?token)(\s+)"
    r"(?!\[REDACTED)([A-Za-z0-9/+=]{16,})"
)
# name [quote] [:=] [quote] value, for the names that carry secrets (env vars, ini files, JSON, XML).
_SECRET_FIELD = re.compile(
    r"(?i)((?:aws_)?secret_?access_?key|secretaccesskey|aws_session_token|session_?token|(?:client_)?secret|"
    r"x-amz-security-token|x-amz-signature|x-amz-credential|password|passwd|private_?key|key_?material)"
    r"([\"']?\s*(?:[:=]|=>)\s*[\"']?|>)"
    r"(?!\[REDACTED)([^\s\"'<>&,;}]{4,})"
)
_AUTHORIZATION = re.compile(r"(?im)^(\s*[\"']?authorization[\"']?\s*[:=]\s*[\"']?)(?!\s*\[REDACTED)([^\r\n\"']+)")
_SECRET_URL_PARAM = re.compile(r"(?i)([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)(?!\[REDACTED)([^&\s\"'<>]+)")


def scrub_text(text: str) -> str:
    return scrub_text_count(text)[0]


def scrub_text_count(text: str) -> tuple[str, int]:
    """(redacted text, number of redactions)."""
    total = 0
    text, n = _PRIVATE_KEY.subn(REDACTED, text)
    total += n
    text, n = _KEY_BODY.subn(REDACTED, text)
    total += n
    text, n = _KEY_PAIR.subn(REDACTED, text)
    total += n
    text, n = _SECRET_FIELD_SPACED.subn(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    total += n
    text, n = _SECRET_URL_PARAM.subn(lambda m: m.group(1) + REDACTED, text)
    total += n
    text, n = _SECRET_FIELD.subn(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    total += n
    text, n = _AUTHORIZATION.subn(lambda m: m.group(1) + REDACTED, text)
    total += n
    text, n = _ACCESS_KEY_ID.subn(REDACTED, text)
    total += n
    return text, total


def scrub_bytes(data: bytes) -> tuple[bytes, int]:
    """Text-like bytes are scrubbed (surrogateescape keeps invalid UTF-8 bytes as they were)."""
    text = data.decode("utf-8", errors="surrogateescape")
    clean, n = scrub_text_count(text)
    return (clean.encode("utf-8", errors="surrogateescape") if n else data), n


def scrub_tree(root: Path) -> int:
    """Redact in place every file under root; returns the number of redactions made."""
    total = 0
    if not root.is_dir():
        return 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        clean, n = scrub_bytes(data)
        if n:
            path.write_bytes(clean)
            total += n
    return total


# For tests and audits: what must never be found in a results directory after scrubbing.
LEAK_PATTERNS = (
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY"),
    _KEY_BODY,
    _ACCESS_KEY_ID,
    _SECRET_FIELD_SPACED,
    re.compile(r"(?i)(?:secret_?access_?key|aws_session_token)[\"']?\s*[:=]\s*[\"']?(?!\[REDACTED)[A-Za-z0-9/+=]{16,}"),
)


def find_leaks(root: Path) -> list[str]:
    """`file: pattern` for every file under root that still contains a secret-looking string."""
    leaks: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaks.extend(f"{path}: {pat.pattern}" for pat in LEAK_PATTERNS if pat.search(text))
    return leaks
