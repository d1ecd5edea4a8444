"""Checks derived from the spec: pure, per role."""

from __future__ import annotations

from pathlib import Path

from provision import spec, verify
from provision.model import Host, Role
from provision.verify_checks.test_checks import (
    KINDS,
    normalise_acl,
    parse_testparm,
    share_option_problems,
    undeclared_sections,
)

ROOT = Path(__file__).resolve().parent.parent


def test_workgroup_checks_per_peer() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    checks = verify.derive(net)
    by_host: dict[str, list[str]] = {}
    for c in checks:
        by_host.setdefault(c.host, []).append(c.name)
    assert set(by_host) == {"peer1", "peer2", "peer3"}
    expected = {"hostname", "address", "clock", "firewall", "smbd", "smb1 refused", "guest refused"}
    assert expected <= set(by_host["peer1"])
    assert "share projects" in by_host["peer1"] and "share handbook" in by_host["peer1"]
    # Members of the share's groups and listed users get local accounts; carol only where she is granted.
    assert {"user alice", "user bob", "user carol"} <= set(by_host["peer1"])
    assert "user carol" not in by_host["peer2"]
    assert "user carol" in by_host["peer3"]
    share = next(c for c in checks if c.host == "peer1" and c.name == "share projects")
    assert share.kind == "share_plan" and share.params["group"] == "staff" and not share.params["nt_acls"]
    assert ["valid users", "@staff"] in share.params["options"]
    assert "d:g::rwx" in share.params["acl"]
    fw = next(c for c in checks if c.kind == "firewall")
    assert fw.params["allow_from"] == ["10.231.0.0/24"]


def test_domain_checks_per_role() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    checks = verify.derive(net)
    kinds = {(c.host, c.kind) for c in checks}
    assert ("dc1", "directory") in kinds and ("dc2", "directory") not in kinds
    assert ("dc1", "replication") in kinds and ("dc2", "replication") in kinds
    assert ("fs1", "joined") in kinds and ("ws1", "joined") in kinds
    ws2 = next(c for c in checks if c.host == "ws2" and c.kind == "joined")
    assert ws2.params["client"] == "winbind"
    resolver = next(c for c in checks if c.host == "ws1" and c.kind == "resolver")
    assert resolver.params["dcs"] == ["10.231.0.21", "10.231.0.22"]


def test_every_derived_kind_has_a_check_function() -> None:
    import inspect

    for path in (ROOT / "inventories").glob("*.yml"):
        for c in verify.derive(spec.load_network(path)):
            assert c.kind in KINDS, c.kind
            # The parameters are exactly what the check takes (the host comes first).
            inspect.signature(KINDS[c.kind]).bind(None, **c.params)


def test_database_checks_name_the_cluster_the_role_keeps() -> None:
    import yaml

    defaults = yaml.safe_load((ROOT / "playbooks/roles/database_server/defaults/main.yml").read_text())
    version, cluster = defaults["database_server_version"], defaults["database_server_cluster"]
    checks = verify.derive(spec.load_network(ROOT / "inventories" / "lab-domain.yml"))
    services = next(c for c in checks if c.host == "db1" and c.kind == "database_services")
    keys = next(c for c in checks if c.host == "db1" and c.kind == "service_keys")
    assert services.params == {"unit": f"postgresql@{version}-{cluster}.service"}
    assert keys.params["keytab"] == f"/etc/postgresql/{version}/{cluster}/krb5.keytab"
    assert keys.params["principal"] == "postgres/db1.ad.lab.test@AD.LAB.TEST"


def test_join_check_matches_how_each_role_joins() -> None:
    """domain_member (winbind: net ads) on file, mail and database servers and winbind
    workstations; domain_client (sssd: adcli) on sssd workstations only."""
    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    joined = {c.host: c.params["client"] for c in verify.derive(net) if c.kind == "joined"}
    assert joined == {"fs1": "winbind", "mx1": "winbind", "db1": "winbind", "ws1": "sssd", "ws2": "winbind"}
    # The model says sssd for every host that leaves `client` out; only workstations choose.
    mx1 = net.host("mx1")
    assert mx1.role is Role.MAIL_SERVER and mx1.client == "sssd"
    assert verify.join_client(mx1) == "winbind"
    for role in (Role.MAIL_SERVER, Role.DATABASE_SERVER, Role.FILE_SERVER):
        assert verify.join_client(Host("h", "10.0.0.5", role, client="sssd")) == "winbind"
    assert verify.join_client(Host("h", "10.0.0.5", Role.WORKSTATION, client="sssd")) == "sssd"
    assert verify.join_client(Host("h", "10.0.0.5", Role.WORKSTATION, client="winbind")) == "winbind"


def test_every_role_of_domain_all_roles_gets_its_join_check() -> None:
    net = spec.load_network(ROOT / "tests" / "data" / "valid" / "domain-all-roles.yml")
    by_role: dict[Role, set[str]] = {}
    for c in verify.derive(net):
        if c.kind == "joined":
            by_role.setdefault(net.host(c.host).role, set()).add(c.params["client"])
    assert by_role[Role.MAIL_SERVER] == by_role[Role.DATABASE_SERVER] == by_role[Role.FILE_SERVER] == {"winbind"}


def test_served_shares_check_per_serving_host() -> None:
    wg = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    served = {c.host: c.params for c in verify.derive(wg) if c.kind == "served_shares"}
    assert served == {
        "peer1": {"shares": ["handbook", "projects"], "printers": [], "builtin": []},
        "peer2": {"shares": ["finance"], "printers": ["office-pdf"], "builtin": []},
        "peer3": {"shares": ["scratch"], "printers": [], "builtin": ["homes"]},
    }
    dom = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    served = {c.host: c.params for c in verify.derive(dom) if c.kind == "served_shares"}
    # DCs serve SYSVOL (samba_dc's template), the file server its shares; no other host runs smbd shares.
    assert served == {
        "dc1": {"shares": [], "printers": [], "builtin": ["netlogon", "sysvol"]},
        "dc2": {"shares": [], "printers": [], "builtin": ["netlogon", "sysvol"]},
        "fs1": {"shares": ["common", "projects"], "printers": [], "builtin": []},
    }


TESTPARM_PEER2 = """# Global parameters
[global]
\tdisable netbios = Yes
\tload printers = Yes
\tmap to guest = Never
\tprintcap name = cups
\tserver role = standalone server
\tworkgroup = LABWG


[finance]
\tcomment = Finance only
\tpath = /srv/finance
\tread only = No
\tvalid users = @finance


[office-pdf]
\tcomment = Test queue
\tpath = /var/spool/samba
\tprintable = Yes
\tprinter name = office-pdf
\tvalid users = @staff


[Backdoor]
\tpath = /etc
\tread only = No


[lp2]
\tpath = /var/spool/samba
\tprint ok = Yes
"""

TESTPARM_DC = """# Global parameters
[global]
\tnetbios name = DC1
\trealm = AD.LAB.TEST
\tserver role = active directory domain controller
\tworkgroup = LAB


[sysvol]
\tpath = /var/lib/samba/sysvol
\tread only = No


[netlogon]
\tpath = /var/lib/samba/sysvol/ad.lab.test/scripts
\tread only = No
"""


def test_parse_testparm_sections() -> None:
    sections = parse_testparm(TESTPARM_PEER2)
    assert [name for name, _ in sections] == ["global", "finance", "office-pdf", "Backdoor", "lp2"]
    params = dict(sections)
    assert params["finance"]["path"] == "/srv/finance"
    assert params["office-pdf"]["printable"] == "Yes"
    assert params["global"]["server role"] == "standalone server"
    assert parse_testparm("") == []


def test_undeclared_shares_and_printers_are_named() -> None:
    sections = parse_testparm(TESTPARM_PEER2)
    extra = undeclared_sections(sections, ["finance"], ["office-pdf"], [])
    assert extra == ["share [Backdoor] (path /etc)", "printer [lp2] (path /var/spool/samba)"]
    # Case-insensitive, as Samba's share names are.
    assert undeclared_sections(sections, ["FINANCE", "backdoor"], ["Office-PDF", "LP2"], []) == []


def test_dc_sections_the_role_writes_are_not_drift() -> None:
    sections = parse_testparm(TESTPARM_DC)
    assert undeclared_sections(sections, [], [], ["netlogon", "sysvol"]) == []
    assert undeclared_sections(sections, [], [], []) == [
        "share [sysvol] (path /var/lib/samba/sysvol)",
        "share [netlogon] (path /var/lib/samba/sysvol/ad.lab.test/scripts)",
    ]


def test_homes_is_allowed_only_where_the_spec_enables_it() -> None:
    text = "[global]\n\tworkgroup = LABWG\n\n[homes]\n\tvalid users = %S\n\n[scratch]\n\tpath = /srv/scratch\n"
    sections = parse_testparm(text)
    assert undeclared_sections(sections, ["scratch"], [], ["homes"]) == []
    assert undeclared_sections(sections, ["scratch"], [], []) == ["share [homes]"]


def test_domain_file_server_shares_are_checked_against_the_planner() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    shares = {c.name: c.params for c in verify.derive(net) if c.host == "fs1" and c.kind == "share_plan"}
    assert set(shares) == {"share projects", "share common"}
    common = shares["share common"]
    assert common["nt_acls"] and common["group"] == "LAB\\staff"
    assert dict(map(tuple, common["options"]))["vfs objects"] == "catia fruit streams_xattr acl_xattr"
    assert "g:LAB\\domain admins:rwx" in common["acl"]
    assert not any(c.kind == "share_plan" for c in verify.derive(net) if c.host != "fs1")


def test_printers_are_checked_where_their_role_serves_them() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    [printer] = [c for c in verify.derive(net) if c.kind == "printer"]
    assert (printer.host, printer.name, printer.params["uri"]) == ("peer2", "printer office-pdf", "file:///dev/null")
    assert ["valid users", "@staff"] in printer.params["options"]
    grown = spec.load_network(ROOT / "inventories" / "lab-grown.yml")
    [served] = [c for c in verify.derive(grown) if c.kind == "printer"]
    # On the domain file server the group is the domain's, by its qualified name.
    assert served.host == "peer2" and ["valid users", '@"LABWG\\staff" @"LABWG\\domain admins"'] in (
        served.params["options"])


def test_share_options_compare_the_way_samba_reads_them() -> None:
    planned = [
        ["path", "/srv/common"],
        ["valid users", '@"LAB\\staff" @"LAB\\domain admins"'],
        ["read only", "yes"],
        ["guest ok", "no"],
        ["create mask", "0760"],
        ["vfs objects", "catia fruit streams_xattr acl_xattr"],
        ["store dos attributes", "yes"],
    ]
    # testparm's spelling: defaults left out, quotes moved, case and leading zeros changed.
    testparm = {
        "path": "/srv/common",
        "valid users": '@LAB\\staff "@LAB\\domain admins"',
        "create mask": "0760",
        "vfs objects": "catia fruit streams_xattr acl_xattr",
    }
    assert share_option_problems(planned, testparm) == []
    assert share_option_problems(planned, {**testparm, "create mask": "0660"}) == [
        "create mask = 0660, the spec means 0760"
    ]
    hand = share_option_problems(planned, {**testparm, "force user": "root", "read only": "No"})
    assert hand == ["read only = No, the spec means yes", "force user = root is set by hand (not from the spec)"]
    assert share_option_problems(planned, {**testparm, "vfs objects": "fruit catia streams_xattr acl_xattr"})


def test_acls_compare_across_notations() -> None:
    planned = ["u::rwx", "g::r-x", "o::---", "m::rwx", "g:LAB\\domain admins:rwx", "d:u::rwx"]
    getfacl = ["user::rwx", "group::r-x", "other::---", "mask::rwx", "group:domain\\040admins:rwx", "default:user::rwx"]
    assert normalise_acl(planned) == normalise_acl(getfacl)
    assert normalise_acl(planned) != normalise_acl([*getfacl[:-1], "default:user::rw-"])


def test_verify_workers_follow_the_cores_not_the_fleet() -> None:
    """Workers cost CPU to start: 3 per core, at most 16, never more than the hosts."""
    assert verify.default_workers(100, cpus=2) == 6
    assert verify.default_workers(3, cpus=2) == 3
    assert verify.default_workers(100, cpus=32) == 16
    assert verify.default_workers(1, cpus=1) == 1


def test_login_policy_check_only_where_a_policy_is_enforced() -> None:
    net = spec.load_network(ROOT / "tests" / "data" / "valid" / "policies-workgroup.yml")
    checks = {c.host: c for c in verify.derive(net) if c.kind == "login_policy"}
    assert set(checks) == {h.name for h in net.hosts}
    assert checks["pc03"].params["expected"]["bob"] == {"login": False, "sudo": ["/usr/bin/systemctl restart smbd"]}
    assert checks["srv1"].params["expected"]["alice"] == {"login": True, "sudo": ["ALL"]}
    for path in (ROOT / "inventories").glob("*.yml"):
        derived = spec.load_network(path)
        checked = {c.host for c in verify.derive(derived) if c.kind == "login_policy"}
        # A workgroup without a policy keeps Debian's PAM; a domain always enforces one, DCs included.
        everywhere = {h.name for h in derived.hosts}
        assert checked == (everywhere if derived.mode.value == "domain" else set()), path.name
    domain = spec.load_network(ROOT / "tests" / "data" / "valid" / "policies-domain.yml")
    on = {c.host: c.params["expected"] for c in verify.derive(domain) if c.kind == "login_policy"}
    assert on["fs1"]["bob"] == {"login": False, "sudo": []} and on["fs1"]["alice"] == {"login": True, "sudo": ["ALL"]}
    # alice (admins) may log in on the DCs too, without sudo there; bob may not.
    assert on["dc1"]["alice"] == {"login": True, "sudo": []} and on["dc1"]["bob"]["login"] is False
