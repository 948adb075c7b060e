"""The scrubber: key material and AWS credentials are redacted, ordinary text (git commits) is not."""

from __future__ import annotations

from pathlib import Path

from pytest_perfci.results.scrub import REDACTED, find_leaks, scrub_text, scrub_text_count, scrub_tree

# Assembled at run time so this file is not itself a key.
PEM = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAA\n-----END " + \
      "OPENSSH PRIVATE KEY-----"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the AWS documentation example


def test_private_keys_whole_or_truncated() -> None:
    out = scrub_text(f"before\n{PEM}\nafter")
    assert "PRIVATE KEY" not in out and "b3BlbnNz" not in out
    assert out.startswith("before\n") and out.endswith("\nafter")
    truncated = scrub_text("key:\n-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow\n")
    assert "MIIEow" not in truncated


def test_aws_credentials_in_the_shapes_they_travel_in() -> None:
    shapes = [
        f"AWS_SECRET_ACCESS_KEY={SECRET}",
        f'{{"SecretAccessKey": "{SECRET}", "SessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKEN"}}',
        f"aws_secret_access_key = {SECRET}",
        f"<SecretAccessKey>{SECRET}</SecretAccessKey>",
        f"{{'aws_secret_access_key': '{SECRET}'}}",
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&X-Amz-Signature=abcdef0123",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request",
        "key id AKIAIOSFODNN7EXAMPLE",
    ]
    for text in shapes:
        out, n = scrub_text_count(text)
        assert n >= 1, text
        assert SECRET not in out and "AKIAIOSFODNN7EXAMPLE" not in out and "IQoJb3Jp" not in out, out
        assert "abcdef0123" not in out
        assert scrub_text_count(out)[1] == 0, f"scrubbing is idempotent: {out}"


def test_ordinary_text_is_left_alone() -> None:
    text = ("commit 4e5529288050fe3346ef83f717b824a6d64c6f85 instructions 21000123 cycles 3.2e7 "
            "ami-0123456789abcdef0 secret sauce, password policy")
    assert scrub_text(text) == text


def test_tree_sweep_and_leak_finder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"stdout\n{PEM}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(f'{{"aws_secret_access_key": "{SECRET}"}}')
    (tmp_path / "c.bin").write_bytes(b"\xff\xfe AKIAIOSFODNN7EXAMPLE \x00")
    assert len(find_leaks(tmp_path)) == 3
    assert scrub_tree(tmp_path) == 3
    assert find_leaks(tmp_path) == []
    assert REDACTED in (tmp_path / "sub" / "b.json").read_text()
    assert (tmp_path / "c.bin").read_bytes().startswith(b"\xff\xfe ")  # non-UTF-8 bytes kept as they were
    assert scrub_tree(tmp_path) == 0
