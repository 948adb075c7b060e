"""The plugin as pytest sees it: options, ini/env precedence, markers, target ids, summary."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.usefixtures("clean_perfci_env")


@pytest.fixture
def clean_perfci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PERFCI_PROVIDER", "PERFCI_INSTANCE_TYPE", "PERFCI_REGION", "PERFCI_RUN_ID", "PERFCI_KEEP",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")


def test_help_shows_the_perfci_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "perfci: provision machines and check what their hardware gives:",
            "  --provider=NAME*",
            "  --instance-type=TYPE[[],TYPE[]]*",
            "  --region=REGION*",
            "  --perfci-run-id=ID*",
            "  --perfci-keep*",
            "  --perfci-results=DIR*",
        ]
    )


def test_markers_are_registered_and_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.instance_type(*types):*",
            '@pytest.mark.arch("x86_64"|"arm64"):*',
            "@pytest.mark.metal:*",
            "@pytest.mark.requires(pmc=True, resctrl=True):*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--provider=azure"], "ERROR: --provider: 'azure' is not allowed; choose one of: local, inventory, ec2, kops, qemu"),
        (["--instance-type=m7i"], "ERROR: --instance-type: 'm7i' is not an EC2 instance type name*"),
        (["--region=moon-1"], "ERROR: --region: 'moon-1' is not an AWS region name*"),
        (["--perfci-run-id=x"], "ERROR: --perfci-run-id: 'x' is not a valid run id*"),
        (["--provider=local", "--instance-type=c7g.metal"], "ERROR: perfci: --provider=local runs on this machine*"),
        (["--provider=kops"], "ERROR: --provider=kops needs a node size: --node-size TYPE or --instance-type TYPE"),
        (["--instance-type=c7g.metal"], "ERROR: perfci: no AWS region: pass --region or set AWS_DEFAULT_REGION"),
    ],
)
def test_bad_options_are_usage_errors_before_anything_runs(
    pytester: pytest.Pytester, args: list[str], first_line: str
) -> None:
    pytester.makepyfile("def test_x(host):\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([first_line])
    result.stdout.no_fnmatch_line("*must not run*")


def test_settings_precedence_through_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyprojecttoml('[tool.perfci]\nrun-id = "from-pyproject"\nregion = "eu-west-1"\n')
    pytester.makepyfile(
        "def test_x(perfci_settings):\n"
        "    print('SETTINGS', perfci_settings.run_id, perfci_settings.region)\n"
    )
    pytester.runpytest("-s").stdout.fnmatch_lines(["*SETTINGS from-pyproject eu-west-1"])
    monkeypatch.setenv("PERFCI_RUN_ID", "from-env")
    pytester.runpytest("-s").stdout.fnmatch_lines(["*SETTINGS from-env eu-west-1"])
    pytester.runpytest("-s", "--perfci-run-id=from-cli").stdout.fnmatch_lines(["*SETTINGS from-cli eu-west-1"])


def test_ini_key_is_a_source_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperfci_region = ap-south-1\n")
    pytester.makepyfile("def test_x(perfci_settings):\n    assert perfci_settings.region == 'ap-south-1'\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_host_is_parametrised_per_target_and_is_this_machine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import platform
        def test_where(host):
            assert host.run("uname -m").stdout.strip() == platform.machine()
            assert host.facts.kernel == platform.release()
        def test_all(hosts):
            assert [h.name for h in hosts] == ["local"]
        """
    )
    result = pytester.runpytest("-v", "--strict-markers")
    result.stdout.fnmatch_lines(["*test_where[[]local[]] PASSED*", "*test_all PASSED*"])


def test_markers_that_exclude_the_target_skip_with_its_name(pytester: pytest.Pytester) -> None:
    import platform

    other = "arm64" if platform.machine() == "x86_64" else "x86_64"
    pytester.makepyfile(
        f"""
        import pytest
        @pytest.mark.arch("{other}")
        def test_other_arch(host): pass
        @pytest.mark.instance_type("m7i.metal-24xl")
        def test_type(host): pass
        @pytest.mark.requires(resctrl=True)
        def test_resctrl(host): pass
        @pytest.mark.requires(resctrl=False)
        def test_no_resctrl(host): pass
        """
    )
    result = pytester.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random(
        [
            f"SKIPPED*target local is {platform.machine().replace('aarch64', 'arm64')}, test needs arch {other}",
            "SKIPPED*target local (no known instance type) is not one of instance_type('m7i.metal-24xl',)",
            "SKIPPED*target local lacks resctrl (kernel lists no resctrl filesystem*), test requires resctrl=True",
        ]
    )


def test_metal_marker_on_a_vm(pytester: pytest.Pytester) -> None:
    from pytest_perfci.hosts.local import LocalHost

    if not LocalHost().facts.virtualised:
        pytest.skip("this machine is not virtualised")
    pytester.makepyfile("import pytest\n@pytest.mark.metal\ndef test_m(host): pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*target local is virtualised (*), test needs metal"])


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('arch("sparc")', "@pytest.mark.arch('sparc',) is not allowed; use one of ('x86_64', 'arm64')"),
        ("requires(cuda=True)", "@pytest.mark.requires*is not allowed*"),
        ('requires(pmc="yes")', "@pytest.mark.requires*is not allowed*"),
        ("instance_type()", "@pytest.mark.instance_type needs one or more type names"),
        ("metal(True)", "@pytest.mark.metal takes no arguments"),
    ],
)
def test_malformed_markers_are_usage_errors(pytester: pytest.Pytester, mark: str, message: str) -> None:
    pytester.makepyfile(f"import pytest\n@pytest.mark.{mark}\ndef test_m(host): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: test_malformed_markers_are_usage_errors.py::test_m*: {message}"])


def test_capability_table_and_results_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_cap(host, perfci_capability):
            perfci_capability("widgets", True, "3 counted", host=host)
            perfci_capability("gadgets", False, "no gadget PMU")
        """
    )
    result = pytester.runpytest("--perfci-run-id=run-abc", "--perfci-results=out")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= perfci capabilities =*",
            "* · *",  # the column group: architecture · metal/VM
            "capability  *",
            "gadgets     -- [[]1[]]",  # the test passed: an accepted absence, its reason as note 1
            "widgets     ok [[]2[]]",
            "1 available  1 absent as expected",
            "[[]1[]] no gadget PMU",
            "[[]2[]] 3 counted",
            "local: * kernel *",
            "capabilities written to out/run-abc/capabilities.json",
        ]
    )
    records = json.loads((pytester.path / "out" / "run-abc" / "capabilities.json").read_text())
    assert [(r["capability"], r["ok"]) for r in records] == [("widgets", True), ("gadgets", False)]


def test_capability_table_survives_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_cap(host, perfci_capability, n):
            perfci_capability(f"cap{n}", n % 2 == 0, f"detail {n}")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--perfci-results=out")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(["cap0        ok [[]*[]]", "cap3        -- [[]*[]]", "[[]*[]] detail 3"])


COLOUR_SUITE = """
import pytest

def test_cycles(host, perfci_capability, perfci_sample):
    perfci_capability("cycles", False, "no hardware PMU exposed")
    perfci_capability("branches", True, "1e6")
    perfci_sample("mini.copy", 100.0, "MiB/s", "pass", direction="higher")
    pytest.fail("cycles: expected available [docs], observed unavailable: no hardware PMU exposed", pytrace=False)
"""


@pytest.mark.parametrize(("env", "coloured"), [({"FORCE_COLOR": "1"}, True),
                                               ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False), ({}, False)],
                         ids=["force-color", "no-color", "not-a-tty"])
def test_capability_grid_and_samples_table_colour_only_where_allowed(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], coloured: bool) -> None:
    for var in ("FORCE_COLOR", "NO_COLOR", "PY_COLORS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    pytester.makepyfile(test_c=COLOUR_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfci-results=out")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # the grid's own section, not pytest's short summary (untruncated under CI=true, it repeats the reason)
    grid = out.split("perfci capabilities")[1].split("short test summary info")[0]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", grid)
    assert re.search(r"^PMC cycles +FAIL NO-PMU \[1\]", plain, re.MULTILINE), plain
    assert re.search(r"^PMC branches +ok \[2\]$", plain, re.MULTILINE) and "[2] 1e6" in plain
    assert plain.count("no hardware PMU exposed") == 1  # the reason once, as note [1]
    table = re.sub(r"\x1b\[[0-9;]*m", "", out.split("perfci results")[1])
    assert re.search(r"^metric +target +value +verdict$", table, re.MULTILINE)
    assert re.search(r"^mini\.copy +\S+ +100 MiB/s +pass$", table, re.MULTILINE)
    assert ("\x1b[31m\x1b[1mFAIL NO-PMU [1]" in grid) is coloured
    assert ("\x1b[" in grid) is coloured


@pytest.mark.parametrize("sub", ["", "deeper/results"])
def test_results_dir_that_cannot_be_a_directory_is_a_usage_error_before_anything_runs(
        pytester: pytest.Pytester, sub: str) -> None:
    (pytester.path / "afile").write_text("x")
    target = "afile" + (f"/{sub}" if sub else "")
    pytester.makepyfile("def test_x(host):\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest(f"--perfci-results={target}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = ("is not a directory" if not sub else "cannot be created: 'afile' is not a directory")
    assert result.stderr.lines[0] == f"ERROR: --perfci-results: {target!r} {expected}", result.stderr.lines
