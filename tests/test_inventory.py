"""Inventory provider: file parsing and its one-line errors, label selection, and host locks, resets and
release against a real OpenSSH sshd on 127.0.0.1 (tests/sshd.py), whose "remote" host is this machine,
so the lock directory can be looked at directly.
"""

# ruff: noqa: F811 - test arguments named `sshd` are the fixture imported from tests.sshd

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_perfci.hosts import AuthenticationFailed
from pytest_perfci.providers.inventory import (
    DEFAULT_LOCK_DIR,
    InventoryError,
    InventoryProvider,
    InventoryReleaseError,
    LockHeld,
    LockOwner,
    load_inventory,
)
from pytest_perfci.settings import Settings
from tests.sshd import SshdServer, sshd  # noqa: F401 - fixture, until conftest registers it

DATA = Path(__file__).parent / "data" / "inventory"


def settings(inventory: Path, *labels: str, run_id: str = "run-a", owner: str = "alice") -> Settings:
    return Settings(inventory=inventory, label=labels, run_id=run_id, owner=owner)


# -- parsing -------------------------------------------------------------------------------------------


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """The example inventories next to the (dummy) key file they name by relative path."""
    for name in ("good.toml", "good.yaml"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "lab_ed25519").write_text("dummy: never read by the loader\n")
    return tmp_path


@pytest.mark.parametrize("name", ["good.toml", "good.yaml"])
def test_good_inventory_parses_with_defaults_and_resolved_paths(lab_dir: Path, name: str) -> None:
    inv = load_inventory(lab_dir / name)
    spr1, spr2, grv = inv.hosts
    assert [h.name for h in inv.hosts] == ["lab-spr-1", "lab-spr-2", "lab-grv-1"]
    assert (spr1.address, spr1.port, spr1.user) == ("10.0.0.5", 22, "perf")
    assert spr1.key == lab_dir / "lab_ed25519"  # relative to the inventory file, not the cwd
    assert spr1.known_hosts == lab_dir / "lab_known_hosts"
    assert spr1.host_key_policy == "accept-new"
    assert spr1.labels == ("x86_64", "spr", "metal")
    assert spr1.instance_type == "m7i.metal-24xl"
    assert spr1.reset == "sudo systemctl restart irqbalance"
    assert spr1.lock_dir == DEFAULT_LOCK_DIR == "/var/tmp/perfci.lock"
    assert (spr2.address, spr2.port, spr2.reset, spr2.instance_type) == ("10.0.0.6", 2222, None, None)
    assert (grv.address, grv.port, grv.user) == ("fd00::7", 22, "root")
    assert (grv.lock_dir, grv.reset_timeout) == ("/run/perfci.lock", 120)


def test_toml_and_yaml_describe_the_same_hosts(lab_dir: Path) -> None:
    assert load_inventory(lab_dir / "good.toml").hosts == load_inventory(lab_dir / "good.yaml").hosts


BAD = [
    (
        "bad_unknown_field.toml",
        "hosts[0] (lab-1): unknown field 'adress' (did you mean 'address'?); allowed:",
    ),
    ("bad_missing_address.toml", "hosts[1] (lab-2): missing field 'address' (required)"),
    ("bad_duplicate.toml", "hosts[1] (lab-1): duplicate name 'lab-1' (also hosts[0])"),
    ("bad_key_missing.toml", "hosts[0] (lab-1): key file "),
    ("bad_syntax.toml", "invalid TOML: "),
    ("bad_syntax.yaml", "invalid YAML at line 6, column 4: "),
    (
        "bad_policy.yaml",
        "[defaults]: host_key_policy = 'trust-me' is not allowed; use 'reject', 'accept-new' or 'warn'",
    ),
    ("bad_no_user.toml", "hosts[0] (lab-1): no user; set user on the host or in [defaults]"),
    ("bad_port_conflict.toml", "hosts[0] (lab-1): address says port 2222 but port = 22"),
    ("bad_label.yaml", "hosts[0] (lab-1): labels = ['spr,metal']: label 'spr,metal' is not allowed"),
    ("bad_top_level.yaml", "unknown field 'default' (did you mean 'defaults'?); allowed: defaults, hosts"),
    ("bad_no_hosts.toml", "no [[hosts]] entries"),
    ("bad_address_port.toml", "hosts[0] (lab-1): address = '10.0.0.5:ssh': port 'ssh' is not a number"),
    ("bad_lock_dir.toml", "hosts[0] (lab-1): lock_dir = 'var/tmp/perfci.lock': must be an absolute path"),
    ("bad_defaults_field.yaml", "[defaults]: unknown field 'labels'; allowed: user, key,"),
    ("bad_not_a_table.yaml", "expected a table with 'defaults' and 'hosts', got a list"),
    ("bad_known_hosts_missing.toml", "hosts[0] (lab-1): known_hosts file "),
]


@pytest.mark.parametrize(("name", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_inventory_is_one_line_naming_file_and_place(name: str, expected: str) -> None:
    path = DATA / name
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_syntax_errors_carry_line_numbers() -> None:
    with pytest.raises(InventoryError, match=r"at line 6, column \d+"):
        load_inventory(DATA / "bad_syntax.toml")
    with pytest.raises(InventoryError, match=r"at line 6, column 4"):
        load_inventory(DATA / "bad_syntax.yaml")


def test_missing_key_error_names_the_resolved_path(tmp_path: Path) -> None:
    inv = tmp_path / "lab.toml"
    inv.write_text('[[hosts]]\nname = "a"\naddress = "h"\nuser = "u"\nkey = "keys/k"\n')
    with pytest.raises(InventoryError, match=f"key file {tmp_path}/keys/k does not exist"):
        load_inventory(inv)


def test_file_not_found_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"lab\.toml: inventory file not found$"):
        load_inventory(tmp_path / "lab.toml")
    (tmp_path / "lab.json").write_text("{}")
    with pytest.raises(
        InventoryError, match=r"unknown inventory format '\.json'; use \.toml, \.yaml or \.yml"
    ):
        load_inventory(tmp_path / "lab.json")


def test_yaml_without_pyyaml_says_what_to_do(monkeypatch: pytest.MonkeyPatch, lab_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    with pytest.raises(InventoryError, match=r"good\.yaml: reading YAML inventories needs PyYAML"):
        load_inventory(lab_dir / "good.yaml")
    load_inventory(lab_dir / "good.toml")  # TOML needs nothing extra


# -- label selection -------------------------------------------------------------------------------------


def test_labels_select_hosts_carrying_all_of_them(lab_dir: Path) -> None:
    def names(*labels: str) -> list[str]:
        return [t.name for t in InventoryProvider(settings(lab_dir / "good.toml", *labels)).targets()]

    assert names() == ["lab-spr-1", "lab-spr-2", "lab-grv-1"]
    assert names("spr") == ["lab-spr-1", "lab-spr-2"]
    assert names("spr", "metal") == ["lab-spr-1"]
    assert names("metal") == ["lab-spr-1", "lab-grv-1"]
    targets = InventoryProvider(settings(lab_dir / "good.toml", "metal")).targets()
    assert [(t.provider, t.instance_type) for t in targets] == [
        ("inventory", "m7i.metal-24xl"),
        ("inventory", "c7g.metal"),
    ]


def test_no_matching_host_lists_the_labels_present(lab_dir: Path) -> None:
    provider = InventoryProvider(settings(lab_dir / "good.toml", "graviton", "spr"))
    with pytest.raises(InventoryError) as exc:
        provider.targets()
    message = str(exc.value)
    assert "\n" not in message
    assert "no host carries all of the labels graviton, spr" in message
    assert "labels present: arm64, graviton, metal, spr, x86_64" in message


def test_provider_needs_an_inventory_and_checks_it_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="--provider=inventory needs --perfci-inventory FILE"):
        InventoryProvider(Settings(run_id="run-a"))
    with pytest.raises(InventoryError, match="duplicate name"):
        InventoryProvider(settings(DATA / "bad_duplicate.toml"))


# -- against a real sshd: locks, resets, release ------------------------------------------------------------


def write_inventory(path: Path, server: SshdServer, hosts: list[dict[str, object]]) -> Path:
    """A TOML inventory whose hosts all point at the loopback sshd (each its own lock_dir)."""
    lines = [
        "[defaults]",
        f'user = "{server.user}"',
        f'key = "{server.client_key}"',
        f'known_hosts = "{server.known_hosts}"',
        "connect_timeout = 5",
    ]
    for host in hosts:
        lines += ["", "[[hosts]]", f'address = "{server.address}:{server.port}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in host.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def lab(tmp_path: Path, sshd: SshdServer) -> dict[str, Path]:
    lock = tmp_path / "locks" / "perfci.lock"
    lock.parent.mkdir()
    marker = tmp_path / "reset-marker"
    inv = write_inventory(
        tmp_path / "lab.toml",
        sshd,
        [
            {
                "name": "box",
                "labels": ["x86_64", "loopback"],
                "lock_dir": str(lock),
                # Records that the reset ran, and that it ran while our lock was still held.
                "reset": f"if test -d {lock}; then echo locked; else echo unlocked; fi > {marker}",
            }
        ],
    )
    return {"inventory": inv, "lock": lock, "marker": marker}


@pytest.fixture
def providers() -> Iterator[list[InventoryProvider]]:
    """Providers a test creates; released at the end whatever happened (release errors ignored there)."""
    made: list[InventoryProvider] = []
    yield made
    for p in made:
        try:
            p.release_all()
        except InventoryReleaseError:
            pass


def owner_of(lock: Path) -> LockOwner:
    parsed = LockOwner.parse((lock / "owner").read_text())
    assert parsed is not None
    return parsed


def test_lock_taken_during_the_run_and_removed_after(lab: dict[str, Path], providers: list) -> None:
    provider = InventoryProvider(settings(lab["inventory"], "loopback", run_id="run-a", owner="alice"))
    providers.append(provider)
    (target,) = provider.targets()
    host = provider.acquire(target)
    assert host.run("echo hi").stdout == "hi\n"
    assert provider.acquire(target) is host  # one handle per target
    assert lab["lock"].is_dir()
    owner = owner_of(lab["lock"])
    assert (owner.run_id, owner.owner, owner.pid) == ("run-a", "alice", os.getpid())
    assert owner.controller == provider.controller
    assert (
        timedelta(hours=2) - timedelta(seconds=5)
        <= owner.expires_at - owner.acquired_at
        <= timedelta(hours=2)
    )
    assert abs(datetime.now(UTC) - owner.acquired_at) < timedelta(minutes=1)

    provider.release_all()
    assert not lab["lock"].exists()
    assert not list(lab["lock"].parent.iterdir())  # no temp owner files or takeover mutex left behind
    provider.release_all()  # idempotent
    assert not lab["lock"].exists()


def test_reset_command_runs_after_the_run_while_still_locked(lab: dict[str, Path], providers: list) -> None:
    provider = InventoryProvider(settings(lab["inventory"]))
    providers.append(provider)
    provider.acquire(provider.targets()[0])
    assert not lab["marker"].exists()
    provider.release_all()
    assert lab["marker"].read_text() == "locked\n"
    lab["marker"].unlink()
    provider.release_all()  # nothing acquired any more: no second reset
    assert not lab["marker"].exists()


def test_a_second_run_cannot_take_a_held_lock(lab: dict[str, Path], providers: list) -> None:
    first = InventoryProvider(settings(lab["inventory"], run_id="run-a", owner="alice"))
    second = InventoryProvider(settings(lab["inventory"], run_id="run-b", owner="bob"))
    providers += [first, second]
    first.acquire(first.targets()[0])
    with pytest.raises(LockHeld) as exc:
        second.acquire(second.targets()[0])
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("box: in use by run run-a of alice (pid ")
    assert " since " in message and " expires " in message and str(lab["lock"]) in message
    assert owner_of(lab["lock"]).run_id == "run-a"  # untouched
    second.release_all()  # it holds nothing: must not remove run-a's lock
    assert owner_of(lab["lock"]).run_id == "run-a"
    first.release_all()
    assert not lab["lock"].exists()


def test_an_expired_lock_is_taken_over_and_its_old_owner_cannot_remove_it(
    lab: dict[str, Path], providers: list, caplog: pytest.LogCaptureFixture
) -> None:
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    stale = InventoryProvider(
        settings(lab["inventory"], run_id="run-old", owner="carol"), now=lambda: three_hours_ago
    )
    fresh = InventoryProvider(settings(lab["inventory"], run_id="run-new", owner="dave"))
    providers += [stale, fresh]
    stale.acquire(stale.targets()[0])  # its 2 h expiry passed an hour ago
    assert owner_of(lab["lock"]).run_id == "run-old"

    caplog.set_level("WARNING")
    fresh.acquire(fresh.targets()[0])
    assert owner_of(lab["lock"]).run_id == "run-new"
    (note,) = fresh.notes
    assert note.startswith(f"box: took over lock {lab['lock']}: run run-old of carol")
    assert note.endswith("had expired")
    assert note in caplog.text

    with pytest.raises(InventoryReleaseError, match="box: lock .* now belongs to run run-new of dave"):
        stale.release_all()
    assert owner_of(lab["lock"]).run_id == "run-new"  # the old run did not delete the new run's lock
    fresh.release_all()
    assert not lab["lock"].exists()


def test_a_lock_whose_controller_process_died_is_taken_over(lab: dict[str, Path], providers: list) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that no longer exists on this controller (SIGKILLed pytest)
    dead = InventoryProvider(settings(lab["inventory"], run_id="run-dead"), pid=child.pid)
    providers.append(dead)
    dead.acquire(dead.targets()[0])
    dead._held.clear()  # it "died": never releases
    dead.release_all()

    live = InventoryProvider(settings(lab["inventory"], run_id="run-live"))
    providers.append(live)
    live.acquire(live.targets()[0])
    assert owner_of(lab["lock"]).run_id == "run-live"
    assert "its process is gone from this controller" in live.notes[0]


def test_an_ownerless_lock_is_taken_over_only_when_old(lab: dict[str, Path], providers: list) -> None:
    lab["lock"].mkdir()
    old = time.time() - 600
    os.utime(lab["lock"], (old, old))
    provider = InventoryProvider(settings(lab["inventory"]))
    providers.append(provider)
    provider.acquire(provider.targets()[0])
    assert owner_of(lab["lock"]).run_id == "run-a"
    assert "had no owner file" in provider.notes[0]


def test_an_unreadable_owner_file_is_respected(lab: dict[str, Path], providers: list) -> None:
    lab["lock"].mkdir()
    (lab["lock"] / "owner").write_text("held by the nightly netperf cron\n")
    provider = InventoryProvider(settings(lab["inventory"]))
    providers.append(provider)
    with pytest.raises(LockHeld, match="unreadable owner file .*nightly netperf cron.*remove it by hand"):
        provider.acquire(provider.targets()[0])
    assert (lab["lock"] / "owner").read_text() == "held by the nightly netperf cron\n"


def test_xdist_workers_of_one_run_share_the_lock_and_only_its_creator_removes_it(
    lab: dict[str, Path], providers: list
) -> None:
    creator = InventoryProvider(settings(lab["inventory"], run_id="run-x"))
    worker = InventoryProvider(settings(lab["inventory"], run_id="run-x"), pid=os.getpid() + 100000)
    providers += [creator, worker]
    creator.acquire(creator.targets()[0])
    worker.acquire(worker.targets()[0]).run("true")
    worker.release_all()
    assert lab["lock"].is_dir() and not lab["marker"].exists()  # no reset, no unlock from a joiner
    creator.release_all()
    assert not lab["lock"].exists() and lab["marker"].exists()


def test_a_failed_reset_is_reported_and_other_hosts_are_still_released(
    tmp_path: Path,
    sshd: SshdServer,
) -> None:
    locks = [tmp_path / "lock-1", tmp_path / "lock-2"]
    marker = tmp_path / "reset-2"
    inv = write_inventory(
        tmp_path / "two.toml",
        sshd,
        [
            {"name": "one", "lock_dir": str(locks[0]), "reset": "echo no irqbalance here >&2; exit 3"},
            {"name": "two", "lock_dir": str(locks[1]), "reset": f"touch {marker}"},
        ],
    )
    provider = InventoryProvider(settings(inv))
    for target in provider.targets():
        provider.acquire(target)
    assert all(lock.is_dir() for lock in locks)
    with pytest.raises(InventoryReleaseError) as exc:
        provider.release_all()
    assert (
        str(exc.value)
        == "one: reset command 'echo no irqbalance here >&2; exit 3' exited 3: no irqbalance here"
    )
    assert marker.exists()
    assert not any(lock.exists() for lock in locks)
    provider.release_all()  # idempotent after a failure too


def test_a_wrong_key_fails_with_its_path_and_takes_no_lock(
    tmp_path: Path,
    sshd: SshdServer,
    providers: list,
) -> None:
    wrong = tmp_path / "wrong_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    lock = tmp_path / "lock"
    inv = write_inventory(
        tmp_path / "lab.toml", sshd, [{"name": "box", "key": "wrong_ed25519", "lock_dir": str(lock)}]
    )
    provider = InventoryProvider(settings(inv))
    providers.append(provider)
    with pytest.raises(AuthenticationFailed) as exc:
        provider.acquire(provider.targets()[0])
    message = str(exc.value)
    assert str(wrong) in message
    for line in wrong.read_text().splitlines():
        if not line.startswith("-----"):
            assert line not in message
    assert not lock.exists()


def test_default_lock_dir_on_this_machine(tmp_path: Path, sshd: SshdServer, providers: list) -> None:
    """The real default path, /var/tmp/perfci.lock (skipped if another run on this machine holds it)."""
    if Path(DEFAULT_LOCK_DIR).exists():
        pytest.skip(f"{DEFAULT_LOCK_DIR} exists: another run holds this machine")
    inv = write_inventory(tmp_path / "lab.toml", sshd, [{"name": "box"}])
    provider = InventoryProvider(settings(inv, run_id="run-default"))
    providers.append(provider)
    provider.acquire(provider.targets()[0])
    assert owner_of(Path(DEFAULT_LOCK_DIR)).run_id == "run-default"
    provider.release_all()
    assert not Path(DEFAULT_LOCK_DIR).exists()


def test_runs_racing_for_one_expired_lock_leave_exactly_one_winner(
    lab: dict[str, Path], providers: list
) -> None:
    import threading

    expired = LockOwner(
        "run-old",
        "carol",
        1,
        "elsewhere",
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2020, 1, 1, 2, tzinfo=UTC),
    )
    lab["lock"].mkdir()
    (lab["lock"] / "owner").write_text(expired.line() + "\n")
    racers = [InventoryProvider(settings(lab["inventory"], run_id=f"run-{i}")) for i in range(6)]
    providers += racers
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(racers))

    def race(p: InventoryProvider) -> None:
        start.wait()
        try:
            p.acquire(p.targets()[0])
            outcomes[p.settings.run_id] = "won"
        except LockHeld as e:
            outcomes[p.settings.run_id] = str(e)
        except Exception as e:  # noqa: BLE001 - recorded so the assertion shows what went wrong
            outcomes[p.settings.run_id] = f"unexpected {type(e).__name__}: {e}"

    threads = [threading.Thread(target=race, args=(p,)) for p in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [run for run, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(racers) and len(winners) == 1, outcomes
    assert owner_of(lab["lock"]).run_id == winners[0]
    assert all(
        f"in use by run {winners[0]}" in o or "being taken by another run" in o
        for o in outcomes.values()
        if o != "won"
    )


def test_yaml_anchors_and_aliases_are_refused_before_expansion(tmp_path: Path) -> None:
    """Nested aliases ("billion laughs") would expand to gigabytes inside safe_load."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nhosts: []\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(bomb)
    assert str(exc.value) == (f"{bomb}: YAML anchors and aliases (&name, *name) are not allowed in an inventory "
                              "(line 1, column 5); write each host out, or use [defaults]")


def test_oversized_inventory_and_long_values_give_a_bounded_line(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(InventoryError, match=r"bytes is not an inventory \(at most 1,048,576\)$"):
        load_inventory(big)
    long_name = tmp_path / "long.toml"
    long_name.write_text('[[hosts]]\nname = "' + "n" * 5000 + '"\naddress = "h:ssh"\nuser = "u"\n')
    with pytest.raises(InventoryError) as exc:
        load_inventory(long_name)
    assert len(str(exc.value)) <= 400 and "\n" not in str(exc.value) and str(exc.value).endswith(" chars)")
