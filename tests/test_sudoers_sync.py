"""The winbind members' reader of the directory's sudo rules (roles/domain_member/files/
provision_sudoers_sync.py): which sudoRole objects become which sudoers lines, what is left out,
and that visudo-checked output is what sudo reads. Pure functions, real parsing; the DC side
runs on the lab (tests/integration/test_domain.py)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

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
