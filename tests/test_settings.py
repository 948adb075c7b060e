"""Settings: precedence CLI > PERFCI_* > [tool.perfci]/ini, and one clear line per bad value."""

from __future__ import annotations

import pytest

from pytest_perfci.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PERFCI_PROVIDER", "PERFCI_INSTANCE_TYPE", "PERFCI_REGION", "PERFCI_RUN_ID", "PERFCI_KEEP",
                 "PERFCI_RESULTS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_local_machine() -> None:
    s = load_settings({})
    assert s.provider is None and s.effective_provider == "local"
    assert s.instance_types == ()
    assert s.run_id.startswith("perfci-") and len(s.run_id) == len("perfci-20261128-050506-848917")


def test_instance_types_repeatable_and_comma_separated_imply_ec2() -> None:
    s = load_settings({"instance_type": ["m7i.metal-24xl,c7g.metal", " m7i.2xlarge "]})
    assert s.instance_types == ("m7i.metal-24xl", "c7g.metal", "m7i.2xlarge")
    assert s.effective_provider == "ec2"


def test_cli_beats_env_beats_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    ini = {"region": "eu-west-1", "run_id": "from-ini", "keep": "false"}
    assert load_settings({}, ini).region == "eu-west-1"
    monkeypatch.setenv("PERFCI_REGION", "eu-central-1")
    monkeypatch.setenv("PERFCI_KEEP", "true")
    s = load_settings({}, ini)
    assert (s.region, s.keep, s.run_id) == ("eu-central-1", True, "from-ini")
    s = load_settings({"region": "us-west-2", "keep": None}, ini)
    assert (s.region, s.keep) == ("us-west-2", True)


def test_env_instance_type_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFCI_INSTANCE_TYPE", "c7g.metal,m7i.2xlarge")
    assert load_settings({}).instance_types == ("c7g.metal", "m7i.2xlarge")


@pytest.mark.parametrize(
    ("cli", "first_line"),
    [
        ({"provider": "azure"}, "--provider: 'azure' is not allowed; choose one of: local, inventory, ec2, kops, qemu"),
        ({"instance_type": ["m7i"]}, "--instance-type: 'm7i' is not an EC2 instance type name"),
        ({"instance_type": ["c7g.metal,M7I.LARGE"]}, "--instance-type: 'M7I.LARGE' is not an EC2 instance type"),
        ({"region": "mars-north-1x"}, "--region: 'mars-north-1x' is not an AWS region name"),
        ({"run_id": "Has Spaces"}, "--perfci-run-id: 'Has Spaces' is not a valid run id"),
        ({"provider": "local", "instance_type": ["m7i.large"]}, "perfci: --provider=local runs on this machine"),
        # TTL: bounded on both sides, huge numbers are a line (not an OverflowError), the override is capped
        ({"ttl": "10m"}, "--perfci-ttl: '10m' is too short a TTL; the minimum is 15m"),
        ({"ttl": "100000h"}, "--perfci-ttl: '100000h' is longer than 168h"),
        ({"ttl": "9" * 30 + "h"}, f"--perfci-ttl: '{'9' * 30}h' is longer than 168h"),
        ({"ttl": "25h"}, ("--perfci-ttl: '25h' is too long a TTL; the maximum is 24h (an orphan lives one TTL); "
                          "for a long benchmark raise it with --perfci-ttl-max (at most 168h)")),
        ({"ttl": "49h", "ttl_max": "48h"}, "--perfci-ttl: '49h' is too long a TTL; the maximum is 48h"),
        ({"ttl_max": "200h"}, "--perfci-ttl-max: '200h' is longer than 168h"),
        ({"ssh_cidr": "2001:db8::/64"}, ("--perfci-ssh-cidr: '2001:db8::/64' is an IPv6 block; instances are "
                                         "reached over IPv4")),
        ({"ssh_user": "root@x -oProxyCommand=sh"}, "--perfci-ssh-user: 'root@x -oProxyCommand=sh' is not a login name"),
        ({"ssh_user": "Admin"}, "--perfci-ssh-user: 'Admin' is not a login name"),
    ],
)
def test_bad_values_name_the_value_and_what_is_allowed(cli: dict[str, object], first_line: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(cli)
    assert str(info.value).splitlines()[0].startswith(first_line)


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFCI_PROVIDER", "gcp")
    with pytest.raises(SettingsError, match=r"^PERFCI_PROVIDER: 'gcp' is not allowed"):
        load_settings({})


def test_bad_ini_value_names_the_table() -> None:
    with pytest.raises(SettingsError, match=r"^\[tool.perfci\] region: 'nowhere' is not an AWS region"):
        load_settings({}, {"region": "nowhere"})


def test_ttl_max_lets_a_long_benchmark_through() -> None:
    from datetime import timedelta

    s = load_settings({"ttl": "30h", "ttl_max": "48h"})
    assert (s.ttl, s.ttl_max) == (timedelta(hours=30), timedelta(hours=48))
    assert load_settings({"ttl": "15m"}).ttl == timedelta(minutes=15)
    assert load_settings({"ssh_user": "ec2-user"}).ssh_user == "ec2-user"


def test_bad_ttl_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFCI_TTL", "100000h")
    with pytest.raises(SettingsError, match=r"^PERFCI_TTL: '100000h' is longer than 168h"):
        load_settings({})
