"""The winbind members' reader of the directory's sudo rules (roles/domain_member/files/
provision_sudoers_sync.py): which sudoRole objects become which sudoers lines, what is left out,
and that visudo-checked output is what sudo reads. Pure functions, real parsing; the DC side
runs on the lab (tests/integration/test_domain.py)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "playbooks" / "roles" / "domain_member" / "files" / "provision_sudoers_sync.py"
_spec = importlib.util.spec_from_file_location("provision_sudoers_sync", PATH)
assert _spec is not None and _spec.loader is not None
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)

HERE = {"ws2", "ws2.ad.lab.test"}


def rule(cn: str, **attrs: list[str]) -> dict[str, list[str]]:
    return {"cn": [cn], "sudoRunAsUser": ["root"], **attrs}


def test_rules_for_this_host_become_sudoers_lines_in_order() -> None:
    entries = [
        rule("b", sudoUser=["bob"], sudoHost=["ws2"], sudoCommand=["/usr/bin/id"], sudoOption=["!authenticate"],
             sudoOrder=["2"]),
        rule("a", sudoUser=["%engineering", "%Domain Admins"], sudoHost=["ws2.ad.lab.test"], sudoCommand=["ALL"],
             sudoOrder=["1"]),
        rule("elsewhere", sudoUser=["carol"], sudoHost=["ws1"], sudoCommand=["ALL"]),
        rule("everywhere", sudoUser=["dave"], sudoHost=["ALL"], sudoCommand=["/usr/bin/uptime"], sudoOrder=["3"]),
    ]
    lines, skipped = sync.lines_for(entries, HERE)
    assert lines == [
        "# a: %engineering, %Domain Admins",
        "%engineering ALL=(root) ALL",
        "%Domain\\ Admins ALL=(root) ALL",
        "# b: bob",
        "bob ALL=(root) NOPASSWD: /usr/bin/id",
        "# everywhere: dave",
        "dave ALL=(root) /usr/bin/uptime",
    ]
    assert skipped == []


def test_accounts_this_host_resolves_are_written_by_id() -> None:
    """A DC's winbind calls its accounts LAB\\alice and LAB\\domain admins: sudo matches them by ID."""
    known = {("Domain Admins", True): 3000004, ("alice", False): 3000028}
    entries = [rule("a", sudoUser=["%Domain Admins", "alice", "%ghosts"], sudoHost=["ws2"], sudoCommand=["ALL"])]
    lines, _ = sync.lines_for(entries, HERE, lambda name, group: known.get((name, group)))
    assert lines == [
        "# a: %Domain Admins, alice, %ghosts",
        "%#3000004 ALL=(root) ALL",
        "#3000028 ALL=(root) ALL",
        "%ghosts ALL=(root) ALL",
    ]
    # The real resolver asks NSS: root and its group are known everywhere, a made-up name nowhere.
    assert sync.local_ids("root", False) == 0 and sync.local_ids("root", True) == 0
    assert sync.local_ids("no-such-account-here", True) is None


def test_what_sudoers_cannot_carry_safely_is_left_out_and_named() -> None:
    hostile = [
        rule("wild", sudoUser=["bob"], sudoHost=["ws2"], sudoCommand=["/bin/*"]),
        rule("runas", sudoUser=["bob"], sudoHost=["ws2"], sudoCommand=["ALL"], sudoRunAsUser=["postgres"]),
        rule("option", sudoUser=["bob"], sudoHost=["ws2"], sudoCommand=["ALL"], sudoOption=["setenv"]),
        rule("inject", sudoUser=["bob ALL=(ALL) ALL\n#"], sudoHost=["ws2"], sudoCommand=["ALL"]),
        rule("netgroup", sudoUser=["+admins"], sudoHost=["ws2"], sudoCommand=["ALL"]),
        rule("negated", sudoUser=["bob"], sudoHost=["ws2"], sudoCommand=["!/bin/sh"]),
        rule("nobody", sudoHost=["ws2"], sudoCommand=["ALL"]),
    ]
    lines, skipped = sync.lines_for(hostile, HERE)
    assert lines == []
    assert skipped == ["wild", "runas", "option", "inject", "netgroup", "negated", "nobody"]


def test_logon_data_older_than_the_cache_time_is_picked() -> None:
    now = time.time()
    fresh = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now - 10))
    old = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now - 4000))
    listing = (
        "SID    Name    When cached\n-----\n"
        f"S-1-5-21-1-2-3-1106     LAB\\alice     {fresh} UTC\n"
        f"S-1-5-21-1-2-3-1107     LAB\\bob       {old} UTC\n"
    )
    assert sync.stale_logon_data(listing, 300, now) == ["S-1-5-21-1-2-3-1107"]


def test_the_login_search_follows_nested_groups_and_escapes_the_dn() -> None:
    plain = sync.login_filter("CN=provision-login-ws2,OU=Provision Policy,DC=ad,DC=lab,DC=test")
    assert plain == ("(&(sAMAccountType=805306368)(memberOf:1.2.840.113556.1.4.1941:="
                     "CN=provision-login-ws2,OU=Provision Policy,DC=ad,DC=lab,DC=test))")
    # Filter syntax in a DN stays data: a DN cannot widen the search.
    odd = sync.login_filter("CN=a\\,b (x)*,OU=P,DC=lab")
    assert odd.endswith(":=CN=a\\5c,b \\28x\\29\\2a,OU=P,DC=lab))"), odd
    assert odd.count("(") == odd.count(")") == 3


def test_the_login_list_names_each_user_as_pam_listfile_compares_them() -> None:
    output = (
        "Got 3 replies\n\n"
        "sAMAccountName: alice\n\n"
        "sAMAccountName: OpsAdmin\n\n"
        "sAMAccountName: evil\nname\n\n"
    )
    entries = sync.parse(output)
    assert entries == [{"sAMAccountName": ["alice"]}, {"sAMAccountName": ["OpsAdmin"]}, {"sAMAccountName": ["evil"]}]
    names, skipped = sync.login_names(entries, "LAB")
    assert names == sorted({"alice", "LAB\\alice", "lab\\alice", "OpsAdmin", "opsadmin", "LAB\\OpsAdmin",
                            "lab\\OpsAdmin", "LAB\\opsadmin", "lab\\opsadmin", "evil", "LAB\\evil", "lab\\evil"})
    hostile = [{"sAMAccountName": ["bob\nroot"]}, {"sAMAccountName": ["-x"]}, {"sAMAccountName": ["ws1$"]},
               {"sAMAccountName": ["a" * 80]}]
    names, skipped = sync.login_names(hostile, "LAB")
    assert names == [] and len(skipped) == 4


def test_a_file_is_replaced_only_when_it_differs_and_only_once_checked(tmp_path: Path) -> None:
    target = tmp_path / "provision-logins"
    assert sync.replace(str(target), "alice\n", 0o644) is True
    assert target.read_text() == "alice\n" and target.stat().st_mode & 0o777 == 0o644
    assert sync.replace(str(target), "alice\n", 0o644) is False
    try:
        sync.replace(str(target), "bob\n", 0o644, ["false"])
    except RuntimeError as exc:
        assert "false refused it" in str(exc)
    else:
        raise AssertionError("a refused file was written")
    assert target.read_text() == "alice\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provision-logins"]


def test_without_a_dc_both_files_stay_as_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logins, sudoers = tmp_path / "logins", tmp_path / "sudoers"
    logins.write_text("alice\n")
    sudoers.write_text("# rules\n")
    rc = sync.main(["--host=ws2", "--fqdn=ws2.ad.lab.test", f"--sudoers={sudoers}", "--max-age=300",
                    "--login-group=CN=provision-login-ws2,OU=Provision Policy,DC=ad,DC=lab,DC=test",
                    f"--logins={logins}", "--workgroup=LAB"])
    assert rc == 1
    assert logins.read_text() == "alice\n" and sudoers.read_text() == "# rules\n"
    err = capsys.readouterr().err
    assert f"{logins} left as it is" in err and f"{sudoers} left as it is" in err
