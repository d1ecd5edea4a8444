"""The one share planner (playbooks/filter_plugins/samba_shares.py): same policy in both modes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "playbooks" / "filter_plugins" / "samba_shares.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("samba_shares_filter", PLUGIN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    # No __pycache__ left in playbooks/ (the converged digest skips it, packaging might not).
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = saved
    return mod


sp = _load()


def share(**kw: Any) -> dict[str, Any]:
    return {"name": "common", "path": "/srv/common", **kw}


def plain(acl: str, netbios: str = "LAB") -> str:
    """A domain ACL with the domain prefix dropped, to compare with a workgroup's."""
    return acl.replace(f"{netbios}\\", "")


def both(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return sp.plan_share(raw, "workgroup"), sp.plan_share(raw, "domain", "LAB")


def options(plan: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in plan["options"]}


# --------------------------------------------------------------------------- one policy, both modes

SHARES = [
    share(groups=["staff"]),
    share(groups=["staff"], read_only=True),
    share(groups=["staff"], read_only=True, write_list=["alice"]),
    share(groups=["staff"], read_only=True, write_list=["@engineering"]),
    share(users=["alice", "bob", "carol"], read_only=True, write_list=["alice"]),
    share(groups=["staff", "engineering"], read_list=["@engineering", "bob"]),
    share(users=["alice"], owner="alice", group="staff", mode="2750", read_only=True),
    share(users=["carol"]),
    share(),
    share(groups=["staff"], mode="2775", guest_ok=False),
]


@pytest.mark.parametrize("raw", SHARES, ids=lambda s: repr({k: v for k, v in s.items() if k not in ("name", "path")}))
def test_both_modes_give_the_same_acl_and_mode(raw: dict[str, Any]) -> None:
    wg, dom = both(raw)
    assert plain(dom["spec_acl"]) == wg["acl"] == wg["spec_acl"]
    assert dom["spec_mode"] == wg["mode"] == wg["spec_mode"]
    assert dom["create_mask"] == wg["create_mask"]
    assert dom["directory_mask"] == wg["directory_mask"]
    assert dom["acl_named"] == wg["acl_named"]
    assert dom["read_only"] == wg["read_only"]


def test_read_only_with_write_list() -> None:
    """Writers rwx, the read-only members r-x (the owning group too), everyone else nothing."""
    raw = share(groups=["staff"], read_only=True, write_list=["alice"])
    wg, dom = both(raw)
    assert wg["acl_entries"] == [
        "u::rwx",
        "g::r-x",
        "o::---",
        "m::rwx",
        "u:alice:rwx",
        "d:u::rwx",
        "d:g::r-x",
        "d:o::---",
        "d:m::rwx",
        "d:u:alice:rwx",
    ]
    assert dom["spec_acl"] == plain(dom["spec_acl"]).replace("u:alice", "u:LAB\\alice")
    assert "u:LAB\\alice:rwx" in dom["acl_entries"]
    # The mask (rwx for alice) shows as the group digit; staff stays r-x through g::.
    assert wg["mode"] == dom["mode"] == "2770"
    assert options(wg)["read only"] == options(dom)["read only"] == "yes"
    assert options(wg)["write list"] == "alice"
    # The domain's admins may write on a read-only share: setting an ACL is a write.
    assert options(dom)["write list"] == '"LAB\\alice" @"LAB\\domain admins"'


def test_read_only_group_share_without_writers_narrows_the_mode() -> None:
    wg, dom = both(share(groups=["staff"], read_only=True))
    assert wg["acl"] == plain(dom["spec_acl"]) == "u::rwx,g::r-x,o::---,d:u::rwx,d:g::r-x,d:o::---"
    assert wg["mode"] == dom["spec_mode"] == "2750"
    assert dom["mode"] == "2770"  # the admins' rwx entry widens the mask, nobody else gains
    assert wg["declared_mode"] == "2770"
    assert not wg["acl_named"]
    assert "inherit acls" not in options(wg)


def test_write_list_group_beats_read_only() -> None:
    wg, dom = both(share(groups=["staff"], read_only=True, write_list=["@engineering"]))
    assert "g:engineering:rwx" in wg["acl_entries"] and "d:g:engineering:rwx" in wg["acl_entries"]
    assert "g:LAB\\engineering:rwx" in dom["acl_entries"]
    assert "g::r-x" in wg["acl_entries"]
    assert options(wg)["write list"] == "@engineering"
    assert options(dom)["write list"] == '@"LAB\\engineering" @"LAB\\domain admins"'


def test_read_list_beats_a_writable_share_and_write_list_beats_read_list() -> None:
    wg, _ = both(share(groups=["staff"], users=["bob"], read_list=["bob", "@staff"], write_list=["bob"]))
    # staff is the owning group: on the read list, so g:: is r-x; bob writes.
    assert "g::r-x" in wg["acl_entries"]
    assert "u:bob:rwx" in wg["acl_entries"]


def test_users_versus_groups() -> None:
    wg, dom = both(share(users=["alice"], groups=["staff", "engineering"]))
    # The first group owns the directory (g::); the other group and the user get named entries.
    assert wg["group"] == "staff" and dom["group"] == "LAB\\staff"
    assert wg["owner"] == dom["owner"] == "root"
    assert [e for e in wg["acl_entries"] if not e.startswith("d:")] == [
        "u::rwx",
        "g::rwx",
        "o::---",
        "m::rwx",
        "g:engineering:rwx",
        "u:alice:rwx",
    ]
    assert options(wg)["valid users"] == "alice @staff @engineering"
    assert options(dom)["valid users"] == '"LAB\\alice" @"LAB\\staff" @"LAB\\engineering" @"LAB\\domain admins"'


def test_per_user_and_per_group_entries_with_defaults() -> None:
    wg, _ = both(share(users=["alice", "bob", "carol"], read_only=True, write_list=["alice"]))
    named = [e for e in wg["acl_entries"] if e.count(":") == 2 and not e.startswith(("d:", "m:"))]
    assert [e for e in named if e.split(":")[1]] == ["u:alice:rwx", "u:bob:r-x", "u:carol:r-x"]
    # Every access entry has its default twin, so new files inherit the same rights.
    access = [e for e in wg["acl_entries"] if not e.startswith("d:")]
    assert [e for e in wg["acl_entries"] if e.startswith("d:")] == [f"d:{e}" for e in access]
    assert options(wg)["inherit acls"] == "yes"


def test_owner_and_owning_group_use_the_base_entries() -> None:
    wg, dom = both(share(users=["alice"], owner="alice", group="staff", groups=["staff"], mode="2750"))
    assert "u:alice" not in wg["acl"] and "u:LAB\\alice" not in dom["acl"]
    assert wg["acl_entries"][:3] == ["u::rwx", "g::rwx", "o::---"]
    assert wg["owner"] == "alice" and dom["owner"] == "LAB\\alice"


def test_no_lists_keeps_the_mode() -> None:
    wg, dom = both(share(mode="2775"))
    assert wg["acl"] == plain(dom["spec_acl"]) == "u::rwx,g::rwx,o::r-x,d:u::rwx,d:g::rwx,d:o::r-x"
    assert "valid users" not in options(wg)
    assert wg["mode"] == "2775"


def test_guest_off_by_default_and_never_in_a_domain() -> None:
    wg, dom = both(share(groups=["staff"]))
    assert options(wg)["guest ok"] == options(dom)["guest ok"] == "no"
    wg, dom = both(share(groups=["staff"], guest_ok=True))
    assert options(wg)["guest ok"] == "yes" and wg["guest_ok"]
    assert options(dom)["guest ok"] == "no" and not dom["guest_ok"]


def test_workgroup_skips_entries_for_accounts_the_host_does_not_have() -> None:
    plan = sp.plan_share(share(users=["alice", "ghost"]), "workgroup", known_users=["alice"], known_groups=[])
    assert "u:alice:rwx" in plan["acl_entries"] and not any("ghost" in e for e in plan["acl_entries"])


def test_lines_are_the_section() -> None:
    plan = sp.plan_share(share(groups=["staff"], comment="Common files"), "workgroup")
    assert plan["lines"] == [
        "[common]",
        "   path = /srv/common",
        "   comment = Common files",
        "   valid users = @staff",
        "   read only = no",
        "   guest ok = no",
        "   browseable = yes",
        "   create mask = 0760",
        "   force create mode = 0100",
        "   directory mask = 2770",
        "   vfs objects = catia fruit streams_xattr",
        "   fruit:metadata = stream",
        "   fruit:model = MacSamba",
        "   fruit:posix_rename = yes",
        "   fruit:veto_appledouble = no",
        "   fruit:nfs_aces = no",
        "   fruit:wipe_intentionally_left_blank_rfork = yes",
        "   fruit:delete_empty_adfiles = yes",
        "   store dos attributes = yes",
        "   map archive = no",
    ]


# --------------------------------------------------------------------------- what clients get


def test_owner_gets_full_control_of_new_files_others_the_share_rights() -> None:
    """rwx for the owner is Full Control to Windows: an open asking for every right
    (GENERIC_ALL) needs it. Writers get rw- (Modify), readers r--; nobody else anything."""
    for mode, create, force in (("2770", "0760", "0100"), ("2750", "0740", "0100"), ("2775", "0764", "0100")):
        for plan in both(share(mode=mode)):
            assert options(plan)["create mask"] == create
            assert options(plan)["force create mode"] == force
    wg, dom = both(share(groups=["staff"], read_only=True))
    assert options(wg)["create mask"] == options(dom)["create mask"] == "0740"


def test_streams_and_macos_on_by_default_switchable_per_share() -> None:
    wg, dom = both(share(groups=["staff"]))
    assert options(wg)["vfs objects"] == "catia fruit streams_xattr"
    assert options(dom)["vfs objects"] == "catia fruit streams_xattr acl_xattr"
    assert options(wg)["fruit:nfs_aces"] == "no"  # fruit never rewrites the spec's modes
    wg, dom = both(share(groups=["staff"], macos=False))
    assert options(wg)["vfs objects"] == "streams_xattr" and not any(k.startswith("fruit:") for k in options(wg))
    assert options(dom)["vfs objects"] == "streams_xattr acl_xattr"
    wg, dom = both(share(groups=["staff"], streams=False))
    assert "vfs objects" not in options(wg) and not wg["macos"]  # fruit needs streams_xattr
    assert options(dom)["vfs objects"] == "acl_xattr"
    for plan in (wg, dom):
        assert options(plan)["store dos attributes"] == "yes" and options(plan)["map archive"] == "no"


def test_domain_admins_administer_every_domain_share() -> None:
    wg, dom = both(share(groups=["staff"]))
    assert "g:LAB\\domain admins:rwx" in dom["acl_entries"] and "d:g:LAB\\domain admins:rwx" in dom["acl_entries"]
    assert "domain admins" not in dom["spec_acl"] and "domain admins" not in wg["acl"]
    assert options(dom)["valid users"] == '@"LAB\\staff" @"LAB\\domain admins"'
    assert "write list" not in options(dom)  # a writable share needs no write list for them
    _, open_share = both(share())
    assert "valid users" not in options(open_share)  # everyone may connect: nothing to add


def test_domain_file_servers_store_nt_acls_with_inheritance() -> None:
    wg, dom = both(share(groups=["staff"]))
    assert dom["nt_acls"] and not wg["nt_acls"]
    assert options(dom)["map acl inherit"] == "yes" and "map acl inherit" not in options(wg)
    assert options(dom)["inherit acls"] == "yes"


def test_homes_follow_the_hosts_shares() -> None:
    peer = sp.samba_peer_plan([share(groups=["staff"], macos=False)], homes=True, users=[], groups=[])
    section = next(s for s in peer["sections"] if s["name"] == "homes")
    assert "   vfs objects = streams_xattr" in section["lines"]
    assert "   force create mode = 0100" in section["lines"]
    default = sp.samba_peer_plan([], homes=True, users=[], groups=[])
    assert "   vfs objects = catia fruit streams_xattr" in default["sections"][0]["lines"]


# --------------------------------------------------------------------------- defence in depth


@pytest.mark.parametrize("field", ["comment", "path", "name"], ids=["comment", "path", "name"])
@pytest.mark.parametrize("bad", ["x\n[evil]", "x\rpath = /etc", "x\ty", "x\x00", "x\x1b[1m", "x\u2028y", "x\\"])
def test_unsafe_values_are_refused(field: str, bad: str) -> None:
    raw = share(groups=["staff"])
    raw[field] = ("/srv/" + bad) if field == "path" else bad
    for mode in ("workgroup", "domain"):
        with pytest.raises(AnsibleFilterError):
            sp.plan_share(raw, mode, "LAB")


def test_a_domain_file_server_offers_homes_the_way_a_peer_does() -> None:
    planned = sp.samba_share_plan([share(groups=["staff"], macos=False)], "domain", "LAB")
    (section,) = sp.samba_homes_plan(True, planned)
    peer = sp.samba_peer_plan([share(groups=["staff"], macos=False)], homes=True, users=[], groups=[])
    assert section["lines"] == next(s for s in peer["sections"] if s["name"] == "homes")["lines"]
    assert "valid users = %S" in "\n".join(section["lines"])
    assert sp.samba_homes_plan(False, planned) == []
    with pytest.raises(AnsibleFilterError):
        sp.samba_homes_plan("yes please", planned)


@pytest.mark.parametrize("name", ["global", "GLOBAL", "Globals", "homes", "Printers", "print$", "IPC$", "ipc$"])
def test_reserved_section_names_are_refused(name: str) -> None:
    with pytest.raises(AnsibleFilterError, match="reserved"):
        sp.plan_share(share(name=name), "workgroup")
    with pytest.raises(AnsibleFilterError, match="reserved"):
        sp.samba_share_plan([share(name=name)], "domain", "LAB")
    with pytest.raises(AnsibleFilterError, match="reserved"):
        sp.samba_peer_plan([], [{"name": name}])


@pytest.mark.parametrize(
    "entry",
    [
        {"users": ["alice bob"]},
        {"users": ['al"ice']},
        {"groups": ["staff,root"]},
        {"write_list": ["alice:rwx"]},
        {"read_list": ["@staff\n"]},
        {"owner": "LAB\\alice"},
        {"users": ["@staff"]},
    ],
)
def test_unsafe_principals_are_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(AnsibleFilterError):
        sp.plan_share(share(**entry), "domain", "LAB")


def test_smb_conf_value() -> None:
    assert sp.smb_conf_value("LABWG") == "LABWG"
    assert sp.smb_conf_value(True) == "yes"
    assert sp.smb_conf_value(10000) == "10000"
    for bad in ("A\nB", "A\r", "A\\", "\x7f", None, ["x"]):
        with pytest.raises(AnsibleFilterError):
            sp.smb_conf_value(bad)


def test_duplicates_and_bad_modes_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="twice"):
        sp.samba_share_plan([share(), share(name="COMMON")], "workgroup")
    with pytest.raises(AnsibleFilterError, match="twice"):
        sp.samba_peer_plan([share()], [{"name": "Common"}])
    with pytest.raises(AnsibleFilterError, match="octal"):
        sp.plan_share(share(mode="2780"), "workgroup")
    with pytest.raises(AnsibleFilterError, match="mode"):
        sp.plan_share(share(), "standalone")
    with pytest.raises(AnsibleFilterError):
        sp.plan_share(share(), "domain", "")


# --------------------------------------------------------------------------- the peer plan


USERS = [
    {"name": "alice", "full_name": "Alice Doe", "groups": ["staff"], "shell": "/bin/bash"},
    {"name": "bob", "full_name": "Bob Roe", "groups": ["staff", "finance"], "shell": "/bin/bash"},
    {"name": "carol", "full_name": "Carol Poe", "groups": [], "shell": "/bin/bash"},
]
GROUPS = [{"name": "staff"}, {"name": "finance"}]


def test_peer_plan_sections_accounts_and_printers() -> None:
    plan = sp.samba_peer_plan(
        [share(name="projects", path="/srv/projects", groups=["staff"])],
        [{"name": "office-pdf", "uri": "file:///dev/null", "description": "Test queue", "groups": ["staff"]}],
        USERS,
        GROUPS,
        True,
        {"mode": "2770"},
    )
    assert [s["name"] for s in plan["sections"]] == ["homes", "projects", "office-pdf"]
    assert plan["user_names"] == ["alice", "bob", "carol"]  # homes: every declared user
    assert plan["groups"] == ["finance", "staff"]
    printer = plan["sections"][2]["lines"]
    assert printer[0] == "[office-pdf]" and "   printable = yes" in printer and "   valid users = @staff" in printer
    assert plan["printers"][0]["description"] == "Test queue"
    assert not plan["guest"]


def test_peer_plan_only_creates_accounts_a_share_needs() -> None:
    plan = sp.samba_peer_plan([share(groups=["finance"])], [], USERS, GROUPS, False, None)
    assert plan["user_names"] == ["bob"]
    assert [s["name"] for s in plan["sections"]] == ["common"]


def test_peer_plan_refuses_an_unsafe_printer_description() -> None:
    with pytest.raises(AnsibleFilterError):
        sp.samba_peer_plan([], [{"name": "lp", "description": "x\n[global]\n   include = /tmp/x"}], USERS, GROUPS)


def test_peer_accounts_and_print_queues_in_the_modules_form() -> None:
    users = [{"name": "alice", "full_name": "Alice L", "groups": ["staff"]}, {"name": "bob", "shell": "/bin/sh"}]
    plan = sp.samba_peer_plan([share(users=["alice", "bob"])], [{"name": "laser", "uri": "ipp://10.231.0.9/ipp"}],
                              users, [{"name": "staff"}])
    assert sp.samba_peer_accounts(plan["users"], "/bin/bash") == [
        {"name": "alice", "comment": "Alice L", "shell": "/bin/bash", "groups": ["staff"]},
        {"name": "bob", "comment": "", "shell": "/bin/sh", "groups": []},
    ]
    # CUPS shows the queue name when the description is empty: the plan says it explicitly.
    assert [p["queue"] for p in plan["printers"]] == [
        {"name": "laser", "uri": "ipp://10.231.0.9/ipp", "description": "laser"}]


def test_a_domain_file_server_serves_printers_to_the_domains_accounts_only() -> None:
    shares = sp.samba_share_plan([share(name="docs")], "domain", "LAB")
    [printer] = sp.samba_printer_plan(
        [{"name": "laser", "uri": "ipp://10.231.0.9/ipp", "users": ["carol"], "groups": ["staff"]}],
        "domain", "LAB", "/var/spool/samba", shares)
    # Qualified names: a local account called staff or carol never gets in; the domain's admins do.
    assert '   valid users = "LAB\\carol" @"LAB\\staff" @"LAB\\domain admins"' in printer["lines"]
    assert "   printable = yes" in printer["lines"] and "   guest ok = no" in printer["lines"]
    assert printer["queue"] == {"name": "laser", "uri": "ipp://10.231.0.9/ipp", "description": "laser"}
    # Without users or groups anyone the host lets in may print (as on a peer): no valid users line.
    [anyone] = sp.samba_printer_plan([{"name": "open", "uri": "ipp://10.231.0.9/ipp"}], "domain", "LAB")
    assert not any("valid users" in line for line in anyone["lines"])
    with pytest.raises(AnsibleFilterError, match="declared twice on this host: docs"):
        sp.samba_printer_plan([{"name": "DOCS", "uri": "ipp://10.231.0.9/ipp"}], "domain", "LAB", planned=shares)
    with pytest.raises(AnsibleFilterError):
        sp.samba_printer_plan([{"name": "laser", "groups": ["staff"]}], "domain", "")  # no NetBIOS name
