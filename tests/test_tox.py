"""tox.ini: the environments exist and the per-architecture ones do what the comments promise.

Parsed with configparser (tox 4 reads the same INI); where tox itself is installed (it is in the
`test` extra) `tox config` renders the commands with the documented posargs, offline.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from moto.ec2.models.instance_types import INSTANCE_TYPES  # moto's copy of the real EC2 catalogue

from pytest_perfci.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
ARCH_ENVS = {"x86_64": "x86_64", "arm64": "arm64"}


@pytest.fixture(scope="module")
def tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def _setenv(section: configparser.SectionProxy) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in section.get("setenv", "").splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_environments_exist(tox: configparser.ConfigParser) -> None:
    for env in ("unit", "lint", "x86_64", "arm64", "report"):
        assert tox.has_section(f"testenv:{env}"), env
        assert tox[f"testenv:{env}"].get("description"), f"{env} has no description"
    assert "pytest tests {posargs}" in tox["testenv:unit"]["commands"]
    lint = tox["testenv:lint"]["commands"]
    assert "ruff check" in lint and "mypy pytest_perfci" in lint


@pytest.mark.parametrize("env", sorted(ARCH_ENVS))
def test_arch_envs_list_only_types_of_their_architecture(tox: configparser.ConfigParser, env: str) -> None:
    section = tox[f"testenv:{env}"]
    types = [t for t in _setenv(section)["PERFCI_INSTANCE_TYPE"].split(",") if t]
    assert types, f"{env} lists no instance types"
    for name in types:
        archs = INSTANCE_TYPES[name]["ProcessorInfo"]["SupportedArchitectures"]
        assert ARCH_ENVS[env] in archs, f"{name} is {archs}, listed under {env}"
    assert any(INSTANCE_TYPES[t].get("BareMetal") for t in types), f"{env} should include a metal type"
    commands = section["commands"]
    assert commands.startswith("pytest suites/pmc suites/resctrl ") and commands.endswith("{posargs}")
    assert "--alluredir allure-results" in commands
    assert f"tox -e {env} -- --instance-type" in section["description"]


def test_posargs_override_the_listed_types_and_other_args_keep_them(
    tox: configparser.ConfigParser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tox -e arm64 -- --instance-type c7g.metal` runs c7g.metal only: the CLI beats PERFCI_INSTANCE_TYPE."""
    listed = _setenv(tox["testenv:arm64"])["PERFCI_INSTANCE_TYPE"]
    monkeypatch.setenv("PERFCI_INSTANCE_TYPE", listed)
    assert load_settings({}).instance_types == tuple(listed.split(","))          # tox -e arm64 -- -k cpi
    assert load_settings({"instance_type": ["c7g.metal"]}).instance_types == ("c7g.metal",)


def test_report_env_renders_allure_html_with_the_npm_cli(tox: configparser.ConfigParser) -> None:
    section = tox["testenv:report"]
    assert "npx --yes allure-commandline@" in section["commands"]
    assert "generate --clean {posargs:allure-results} -o allure-report" in section["commands"]
    assert section["commands_pre"].strip() == "java -version"  # fails first, and clearly, without Java
    assert "Java 17" in section["description"]


@pytest.mark.skipif(shutil.which("tox", path=str(Path(sys.executable).parent)) is None,
                    reason="tox is not installed next to this Python (pip install -e '.[test]' brings it)")
def test_tox_itself_renders_the_documented_override(tmp_path: Path) -> None:
    tox_exe = str(Path(sys.executable).parent / "tox")
    out = subprocess.run(
        [tox_exe, "--workdir", str(tmp_path), "-c", str(ROOT / "tox.ini"), "config", "-e", "arm64,x86_64",
         "-k", "commands", "set_env", "--", "--instance-type", "c7g.metal"],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert ("commands = pytest suites/pmc suites/resctrl --alluredir allure-results "
            "--perfci-results perfci-results/arm64 --instance-type c7g.metal") in out.stdout
    assert "PERFCI_INSTANCE_TYPE=c7g.metal,c7g.2xlarge" in out.stdout
    assert "PERFCI_INSTANCE_TYPE=m7i.metal-24xl,m7i.2xlarge" in out.stdout


def test_cuda_env_runs_the_gpu_suite_on_nvidia_types_of_both_architectures(tox: configparser.ConfigParser) -> None:
    section = tox["testenv:cuda"]
    assert section.get("description") and "tox -e cuda -- --instance-type" in section["description"]
    types = [t for t in _setenv(section)["PERFCI_INSTANCE_TYPE"].split(",") if t]
    archs = set()
    for name in types:
        gpus = INSTANCE_TYPES[name].get("GpuInfo", {}).get("Gpus", [])
        assert gpus and all(g["Manufacturer"] == "NVIDIA" for g in gpus), f"{name} has no NVIDIA GPU: {gpus}"
        archs.update(INSTANCE_TYPES[name]["ProcessorInfo"]["SupportedArchitectures"])
    assert {"x86_64", "arm64"} <= archs, f"the cuda env should cover both architectures, has {archs}"
    commands = section["commands"]
    assert commands.startswith("pytest suites/gpu ") and commands.endswith("{posargs}")
    assert "--alluredir allure-results" in commands and "perfci-results/{envname}" in commands
    load_settings({"instance_type": [_setenv(section)["PERFCI_INSTANCE_TYPE"]]})  # the types parse as settings
