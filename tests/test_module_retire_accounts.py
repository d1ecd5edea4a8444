"""provision_retire_accounts: a former peer's local accounts disabled and renamed out of the domain's way,
for real with the shadow tools under ``--prefix`` in a throwaway root (never this machine's accounts),
through ansible; and the migration's password choice (provision_migrate_passwords.newest)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ansible_modules import load_module, run_module

retire = load_module("provision_retire_accounts")
passwords = load_module("provision_migrate_passwords")

PASSWD = """root:x:0:0:root:/root:/bin/bash
alice:x:1001:1001:Alice Doe:/home/alice:/bin/bash
bob:x:1002:1002:Bob Roe:/home/bob:/bin/sh
carol:x:1003:1003:Carol Poe:/home/carol:/bin/bash
"""
GROUP = """root:x:0:
alice:x:1001:
bob:x:1002:
carol:x:1003:
staff:x:1010:alice,bob
finance:x:1011:bob
"""
SHADOW = """root:*:19000:0:99999:7:::
alice:$y$j9T$abc$def:19000:0:99999:7:::
bob:!:19000:0:99999:7:::
carol:$y$j9T$ghi$jkl:19000:0:99999:7:::
"""
GSHADOW = "".join(f"{line.split(':')[0]}:!::\n" for line in GROUP.splitlines())

needs_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("usermod"), reason="needs root and the shadow tools (usermod --prefix)"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text, mode in (
        ("passwd", PASSWD, 0o644),
        ("group", GROUP, 0o644),
        ("shadow", SHADOW, 0o640),
        ("gshadow", GSHADOW, 0o640),
    ):
        (etc / name).write_text(text)
        (etc / name).chmod(mode)
    return tmp_path


def table(root: Path, name: str) -> dict[str, list[str]]:
    return retire.read_table(str(root / "etc" / name))


def test_the_plan_reads_the_files_only_and_finds_private_groups_and_conflicts() -> None:
    passwd = {"alice": ["alice", "x", "1001", "1001", "", "/home/alice", "/bin/bash"],
              "wg-bob": ["wg-bob", "x", "1002", "1002", "", "/home/bob", "/usr/sbin/nologin"],
              "bob": ["bob", "x", "1005", "1005", "", "/home/b", "/bin/sh"]}
    group = {"alice": ["alice", "x", "1001", ""], "staff": ["staff", "x", "1010", ""]}
    shadow = {"alice": ["alice", "$y$", "1", "0", "99999", "7", "", "", ""]}
    local = retire.Local(passwd, group, shadow)
    steps, renames, missing, conflicts = retire.plan(local, ["alice", "bob", "dave"], ["staff"], "wg-")
    assert steps == {"alice": ["locked", "expired", "shell nologin", "renamed wg-alice"]}
    assert renames == {"staff": "wg-staff", "alice": "wg-alice"}  # alice's private group goes with her
    assert missing == ["dave"]
    assert conflicts == ["user bob: both bob and wg-bob exist"]


@needs_tools
def test_accounts_are_disabled_and_renamed_keeping_numbers_homes_and_others(root: Path) -> None:
    args = {"users": ["alice", "bob", "dave"], "groups": ["staff"], "root": str(root), "passdb": False}
    dry = run_module("provision_retire_accounts", args, check=True)
    assert not dry["_failed"] and dry["changed"], dry
    assert (root / "etc" / "passwd").read_text() == PASSWD  # check mode changed nothing
    done = run_module("provision_retire_accounts", args, diff=True)
    assert not done["_failed"] and done["changed"], done
    assert done["retired"]["alice"] == ["locked", "expired", "shell nologin", "renamed wg-alice"]
    assert done["retired"]["bob"] == ["expired", "shell nologin", "renamed wg-bob"]  # bob was locked already
    assert done["missing"] == ["dave"]
    passwd, group, shadow = table(root, "passwd"), table(root, "group"), table(root, "shadow")
    assert "alice" not in passwd and "bob" not in passwd
    assert passwd["wg-alice"][2:4] == ["1001", "1001"] and passwd["wg-alice"][5] == "/home/alice"
    assert passwd["wg-alice"][6] == "/usr/sbin/nologin"
    assert shadow["wg-alice"][1].startswith("!$y$") and shadow["wg-alice"][7] == "1"
    assert group["wg-alice"][2] == "1001" and group["wg-staff"][2] == "1010" and "staff" not in group
    assert passwd["carol"] == PASSWD.splitlines()[3].split(":")  # not named: untouched
    assert group["finance"][2] == "1011"
    again = run_module("provision_retire_accounts", args)
    assert not again["_failed"] and not again["changed"], again


@needs_tools
def test_a_half_retired_account_is_completed_and_a_conflict_changes_nothing(root: Path) -> None:
    etc = root / "etc"
    (etc / "passwd").write_text(PASSWD.replace("alice:x", "wg-alice:x"))
    (etc / "shadow").write_text(SHADOW.replace("alice:$y", "wg-alice:$y"))
    done = run_module("provision_retire_accounts", {"users": ["alice"], "root": str(root), "passdb": False})
    assert not done["_failed"] and done["retired"]["alice"] == ["locked", "expired", "shell nologin"], done
    (etc / "passwd").write_text(table_text := PASSWD + "wg-carol:x:1009:1009::/home/c:/bin/sh\n")
    bad = run_module("provision_retire_accounts", {"users": ["carol"], "root": str(root), "passdb": False})
    assert bad["_failed"] and "both carol and wg-carol exist" in bad["msg"], bad
    assert (etc / "passwd").read_text() == table_text


def test_hostile_names_are_refused(root: Path) -> None:
    for name in ("../etc", "Alice", "a:b", "x" * 32):
        out = run_module("provision_retire_accounts", {"users": [name], "root": str(root), "passdb": False})
        assert out["_failed"] and "names must be local account names" in out["msg"], (name, out)


def test_the_newest_hash_of_each_user_wins_and_malformed_entries_are_ignored() -> None:
    a, b, c = "a" * 32, "B" * 32, "c" * 32
    sources = [
        {"alice": {"nt": a, "last_set": 100}, "bob": {"nt": b, "last_set": 300}},
        {"alice": {"nt": c, "last_set": 200}, "bob": {"nt": "nothex", "last_set": 900},
         "mallory": {"nt": a, "last_set": 1}},
        {"bob": {"nt": c, "last_set": True}, "carol": "garbage"},
        None,
    ]
    best, without = passwords.newest(["alice", "bob", "carol"], sources)
    assert best == {"alice": {"nt": c, "last_set": 200}, "bob": {"nt": b.lower(), "last_set": 300}}
    assert without == ["carol"]


@needs_tools
def test_a_rollback_gives_every_retired_account_its_name_shell_and_login_back(root: Path) -> None:
    args = {"users": ["alice", "bob"], "groups": ["staff"], "root": str(root), "passdb": False}
    assert run_module("provision_retire_accounts", args)["changed"]
    back = {**args, "state": "restored", "shells": {"alice": "/bin/bash", "bob": "/bin/sh"}}
    dry = run_module("provision_retire_accounts", back, check=True)
    assert not dry["_failed"] and dry["changed"] and "wg-alice" in table(root, "passwd"), dry
    done = run_module("provision_retire_accounts", back)
    assert not done["_failed"] and done["changed"], done
    assert done["retired"]["alice"] == ["unlocked", "not expired", "shell /bin/bash", "renamed alice"]
    assert done["retired"]["bob"] == ["not expired", "shell /bin/sh", "renamed bob"]  # bob was locked before
    # Exactly as they were (the shadow tools may move a renamed line to the end).
    assert sorted((root / "etc" / "passwd").read_text().splitlines()) == sorted(PASSWD.splitlines())
    assert sorted((root / "etc" / "group").read_text().splitlines()) == sorted(GROUP.splitlines())
    shadow = table(root, "shadow")
    assert shadow["alice"][1] == "$y$j9T$abc$def" and shadow["alice"][7] == ""
    assert shadow["bob"][1] == "!"  # locked before the migration: still locked
    assert not run_module("provision_retire_accounts", back)["changed"]


def test_a_shell_must_be_an_absolute_path(root: Path) -> None:
    out = run_module("provision_retire_accounts", {"users": ["alice"], "root": str(root), "passdb": False,
                                                   "state": "restored", "shells": {"alice": "bash:x"}})
    assert out["_failed"] and "shells must be absolute paths" in out["msg"], out
