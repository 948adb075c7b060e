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
    assert {line.split(': ')[0] for line in find_leaks(tmp_path)} == {str(tmp_path / n) for n in ('a.txt', 'sub/b.json', 'c.bin')}
    assert scrub_tree(tmp_path) == 3
    assert find_leaks(tmp_path) == []
    assert REDACTED in (tmp_path / "sub" / "b.json").read_text()
    assert (tmp_path / "c.bin").read_bytes().startswith(b"\xff\xfe ")  # non-UTF-8 bytes kept as they were
    assert scrub_tree(tmp_path) == 0


def test_new_shapes_key_pair_spaced_field_and_secret_assignment() -> None:
    shapes = [
        f"AKIAIOSFODNN7EXAMPLE {SECRET}",                     # a bare secret right after its key id
        f"AKIAIOSFODNN7EXAMPLE,{SECRET}",                     # credentials CSV
        f"aws_secret_access_key {SECRET}",                    # KEY VALUE with a space
        f"secret={SECRET}",
        f"client_secret: {SECRET}",
    ]
    for text in shapes:
        out, n = scrub_text_count(text)
        assert n >= 1 and SECRET not in out and "wJalrXUtnFEMI" not in out, out
        assert scrub_text_count(out)[1] == 0, f"scrubbing is idempotent: {out}"


def _generated_keys(tmp_path: Path) -> dict[str, str]:
    """Real private keys of every kind a run might print, generated here (never stored in the repo)."""
    import subprocess

    keys = {}
    for kind in ("ed25519", "rsa", "ecdsa"):
        path = tmp_path / f"id_{kind}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
        keys[f"openssh-{kind}"] = path.read_text()
    openssl = [("pkcs1-rsa", "openssl genrsa 2048 2>/dev/null | openssl rsa -traditional 2>/dev/null"),
               ("pkcs8-rsa", "openssl genpkey -algorithm RSA 2>/dev/null"),
               ("pkcs8-ed25519", "openssl genpkey -algorithm ed25519"),
               ("pkcs8-ec", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
               ("sec1-p256", "openssl ecparam -name prime256v1 -genkey -noout"),
               ("sec1-p384", "openssl ecparam -name secp384r1 -genkey -noout")]
    for name, cmd in openssl:
        keys[name] = subprocess.run(["sh", "-c", cmd], check=True, capture_output=True, text=True).stdout
    return keys


def test_private_key_bodies_without_armour(tmp_path: Path) -> None:
    for name, pem in _generated_keys(tmp_path).items():
        body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        assert body_lines, name
        text = "before\n" + "\n".join(body_lines) + "\nafter"
        out = scrub_text(text)
        assert out.startswith("before\n") and out.endswith("\nafter"), (name, out)
        long_lines = [line for line in body_lines if len(line) >= 16]
        assert not any(line in out for line in long_lines), (name, out)
        assert find_leaks_in(out) == [], name
        # the same body as one JSON string (how it sits inside an Allure result)
        escaped = "\\n".join(body_lines)
        assert body_lines[0] not in scrub_text(f'{{"stdout": "{escaped}"}}'), name


def test_key_body_then_a_credential_pair_on_the_next_line(tmp_path: Path) -> None:
    """Found by the fault campaign (secrets kind): a body printed right before `AKIA... SECRET` took the
    key id as one more body line, and the secret after it stayed in clear. Every body line and the
    secret go, in plain text and as one JSON string; trailing blanks after a body line keep it body."""
    for pem in _generated_keys(tmp_path).values():
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        pair = f"AKIAIOSFODNN7EXAMPLE {SECRET}"
        for text in ("\n".join([*body, pair, "after"]), "\\n".join([*body, pair])):
            out = scrub_text(text)
            assert SECRET not in out and "AKIAIOSFODNN7EXAMPLE" not in out, out
            assert not any(line in out for line in body if len(line) >= 16), out
        padded = scrub_text("\n".join(line + "  " for line in body))
        assert not any(line in padded for line in body if len(line) >= 16), padded


def find_leaks_in(text: str) -> list[str]:
    from pytest_perfci.results.scrub import LEAK_PATTERNS

    return [p.pattern for p in LEAK_PATTERNS if p.search(text)]


def test_certificates_and_public_keys_are_not_key_bodies(tmp_path: Path) -> None:
    import subprocess

    cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj /CN=x 2>/dev/null"
    cert = subprocess.run(["sh", "-c", cmd], check=True, capture_output=True, text=True).stdout
    body = "\n".join(line for line in cert.splitlines() if not line.startswith("-----"))
    assert scrub_text(body) == body
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    pub = (tmp_path / "k.pub").read_text()
    assert scrub_text(pub) == pub
