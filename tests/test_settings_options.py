"""Every setting is spelt four ways, all generated from the Settings fields: a pytest option, a
`perfci plan` option (run settings), a PERFCI_* variable and a perfci_* ini / [tool.perfci] key.

Each spelling of each field is round-tripped through the real parsers into the same typed value,
and an error names the spelling the bad value really came from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.cli import build_parser
from pytest_perfci.settings import Settings, SettingsError, load_settings, option_specs, read_pyproject_table

ROOT = Path(__file__).resolve().parent.parent

# dest -> (what a user types, the typed value the settings must hold). A new field without a line here
# fails test_every_field_has_a_sample, so its spellings are round-tripped too.
SAMPLES: dict[str, tuple[str, Any]] = {
    "provider": ("inventory", "inventory"),
    "instance_type": ("c7g.metal", ("c7g.metal",)),
    "region": ("eu-west-2", "eu-west-2"),
    "run_id": ("perfci-opt-1", "perfci-opt-1"),
    "owner": ("alice", "alice"),
    "keep": ("true", True),
    "prepare": ("true", True),
    "results": ("out/results", Path("out/results")),
    "ami": ("arm64=ami-0123456789abcdef0", ("arm64=ami-0123456789abcdef0",)),
    "ttl": ("90m", timedelta(minutes=90)),
    "ttl_max": ("48h", timedelta(hours=48)),
    "spot": ("true", True),
    "server_type": ("c7gn.large", "c7gn.large"),
    "net_seconds": ("2", 2),
    "ssh_cidr": ("203.0.113.7/32", "203.0.113.7/32"),
    "ssh_user": ("ubuntu", "ubuntu"),
    "root_volume_gb": ("40", 40),
    "endpoint_url": ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    "max_types": ("12", 12),
    "schedule": ("serial", "serial"),
    "inventory": ("lab.toml", Path("lab.toml")),
    "label": ("spr", ("spr",)),
    "s3": ("s3://perf-results/weekly", "s3://perf-results/weekly"),
    "baseline": ("baseline.toml", Path("baseline.toml")),
    "history": ("s3://perf-results/weekly", "s3://perf-results/weekly"),
    "history_k": ("2.5", 2.5),
    "history_min": ("7", 7),
    "history_band": ("sigma", "sigma"),
    "kops_node_size": ("c7i.2xlarge", "c7i.2xlarge"),
    "kops_nodes": ("5", 5),
    "kops_zones": ("us-east-1a", ("us-east-1a",)),
    "kops_control_plane_size": ("m7i.large", "m7i.large"),
    "kops_k8s_version": ("1.31.0", "1.31.0"),
    "kops_state": ("s3://kops-state/x", "s3://kops-state/x"),
    "kops_networking": ("cilium", "cilium"),
    "kops_validate_wait": ("30m", "30m"),
    "kops_binary": ("/opt/kops", "/opt/kops"),
    "cl2_binary": ("/opt/clusterloader2", "/opt/clusterloader2"),
    "cl2_testconfig": ("config.yaml", Path("config.yaml")),
    "cl2_baseline": ("cl2-baseline.json", Path("cl2-baseline.json")),
    "cl2_slo": ("pod_startup_p99=90", ("pod_startup_p99=90",)),
    "cl2_perfdash_job": ("nightly", "nightly"),
    "qemu_machine": ("arm64-partial", ("arm64-partial",)),
    "qemu_port": ("2222", 2222),
}



def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    obj: Any = settings
    for part in path:
        obj = getattr(obj, part)
    return obj


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in option_specs():
        for name in spec.envs:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KOPS_STATE_STORE", raising=False)


def test_every_field_has_a_flag_an_env_and_an_ini_key_all_distinct() -> None:
    specs = option_specs()
    models: list[Any] = [Settings, *(Settings.model_fields[s].annotation for s in ("record", "kops", "cl2", "qemu"))]
    fields = sum(len(m.model_fields) for m in models) - 4  # the four section fields themselves
    assert len(specs) == fields, "a field without Opt metadata has no spellings"
    for attr in ("dest", "ini", "env"):
        values = [getattr(s, attr) for s in specs]
        assert len(values) == len(set(values)), attr
    flags = [f for s in specs for f in s.flags]
    assert len(flags) == len(set(flags))
    for spec in specs:
        assert re.fullmatch(r"--[a-z0-9][a-z0-9-]+", spec.flag), spec.flag
        assert re.fullmatch(r"PERFCI_[A-Z0-9_]+", spec.env), spec.env
        assert spec.ini == f"perfci_{spec.dest}" and spec.opt.help


def test_every_field_has_a_sample() -> None:
    assert set(SAMPLES) == {s.dest for s in option_specs()}


@pytest.mark.parametrize("spec", option_specs(), ids=lambda s: s.dest)
def test_each_spelling_round_trips_to_the_same_value(spec: Any, pytester: pytest.Pytester) -> None:
    raw, expected = SAMPLES[spec.dest]
    argv = [spec.flag] if spec.kind == "flag" else [f"{spec.flag}={raw}"]
    config = pytester.parseconfig(*argv)
    cli = {s.dest: config.getoption(f"perfci_{s.dest}") for s in option_specs()}
    from_cli = load_settings(cli, env={})
    from_env = load_settings({}, env={spec.env: raw})
    from_ini = load_settings({}, {spec.dest: raw}, env={})
    for settings, origin in ((from_cli, spec.flag), (from_env, spec.env), (from_ini, f"[tool.perfci] {spec.dest}")):
        assert value_at(settings, spec.path) == expected, origin
        assert settings.origin(spec.dest) == origin
    assert value_at(load_settings({}, env={}), spec.path) != expected, "the sample must differ from the default"


def test_ini_keys_reach_the_settings_through_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperfci_kops_nodes = 4\nperfci_history_band = sigma\nperfci_region = eu-west-1\n")
    pytester.makeconftest("""
import pytest
from pytest_perfci.stash import SETTINGS_KEY

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    s = config.stash[SETTINGS_KEY]
    print("SEEN", s.kops.nodes, s.record.history_band, s.region, s.origin("kops_nodes"))
""")
    result = pytester.runpytest_inprocess("--collect-only", "-p", "no:cacheprovider", "-s")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["SEEN 4 sigma eu-west-1 [[]tool.perfci[]] kops_nodes"])


def test_perfci_plan_parser_is_generated_from_the_run_settings() -> None:
    parser = build_parser()
    plan = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "plan")[1]  # type: ignore[union-attr]
    plan_flags = {f for a in plan._actions for f in a.option_strings}
    run = {s.flag for s in option_specs() if s.section == ""}
    assert run <= plan_flags
    assert not {s.flag for s in option_specs() if s.section} & plan_flags  # results/kops/cl2 are not plan's
    args = parser.parse_args(["plan", "--perfci-ttl", "3h", "--instance-type", "c7g.metal", "--perfci-spot"])
    cli = {s.dest: getattr(args, f"perfci_{s.dest}") for s in option_specs() if s.section == ""}
    settings = load_settings(cli, env={})
    assert (settings.ttl, settings.instance_types, settings.spot) == (timedelta(hours=3), ("c7g.metal",), True)


def test_pyproject_sections_may_be_sub_tables(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.perfci]\nregion = "eu-west-1"\nmax-types = 3\n'
        '[tool.perfci.kops]\nnode-size = "c7i.large"\nnodes = 2\n'
        '[tool.perfci.results]\nhistory-min = 9\n'
    )
    table = read_pyproject_table(tmp_path)
    assert table == {"region": "eu-west-1", "max_types": 3, "kops_node_size": "c7i.large", "kops_nodes": 2,
                     "history_min": 9}
    s = load_settings({}, table, env={})
    assert (s.max_types, s.kops.node_size, s.kops.nodes, s.record.history_min) == (3, "c7i.large", 2, 9)


# --- errors name the real origin --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "first_line"),
    [
        ({"PERFCI_PROVIDER": "gcp"}, "PERFCI_PROVIDER: 'gcp' is not allowed; choose one of: local, inventory, ec2, kops, qemu"),
        ({"PERFCI_KOPS_NODES": "0"}, "PERFCI_KOPS_NODES: '0': input should be greater than or equal to 1"),
        ({"PERFCI_HISTORY_BAND": "iqr"}, "PERFCI_HISTORY_BAND: 'iqr' is not allowed; choose one of: mad, sigma"),
        ({"PERFCI_RESULTS_S3": "http://x"}, "PERFCI_RESULTS_S3: "),
        ({"PERFCI_CL2_SLO": "pod_startup=5"}, "PERFCI_CL2_SLO: 'pod_startup=5': unknown SLO 'pod_startup'"),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], first_line: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({}, env=env)
    assert str(info.value).splitlines()[0].startswith(first_line)


def test_env_origin_through_pytest_is_the_variable_not_the_flag(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's exact line: the plugin used to report PERFCI_PROVIDER=gcp as `--provider:`."""
    monkeypatch.setenv("PERFCI_PROVIDER", "gcp")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: PERFCI_PROVIDER: 'gcp' is not allowed; choose one of: local, inventory, ec2, kops, qemu"])
    readme = (ROOT / "README.md").read_text()
    assert "ERROR: PERFCI_PROVIDER: 'gcp' is not allowed; choose one of: local, inventory, ec2, kops, qemu" in readme


def test_cli_origin_beats_env_and_is_named(monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> None:
    monkeypatch.setenv("PERFCI_KOPS_NODES", "3")
    result = pytester.runpytest("-p", "no:cacheprovider", "--nodes=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --nodes: '-1': input should be greater than or equal to 1"])


def test_old_s3_spellings_are_aliases_of_the_one_results_option(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("--perfci-results-s3=s3://perf-results/cl2")
    assert config.getoption("perfci_s3") == "s3://perf-results/cl2"
    assert load_settings({}, env={"PERFCI_RESULTS_S3": "s3://a-bucket/p"}).record.s3 == "s3://a-bucket/p"
    both = load_settings({}, env={"PERFCI_S3": "s3://first/p", "PERFCI_RESULTS_S3": "s3://second/p"})
    assert both.record.s3 == "s3://first/p" and both.origin("s3") == "PERFCI_S3"


def test_readme_options_exist() -> None:
    """Every flag and variable the README's Options table names is a real spelling."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Options"):readme.index("Precedence:")]
    flags = set(re.findall(r"`(--[a-z0-9-]+)", table))
    envs = set(re.findall(r"`(PERFCI_[A-Z_]+)`", table))
    known_flags = {f for s in option_specs() for f in s.flags}
    known_envs = {e for s in option_specs() for e in s.envs}
    assert flags and flags <= known_flags, flags - known_flags
    assert envs and envs <= known_envs, envs - known_envs
