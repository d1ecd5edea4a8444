"""provision.changes: what the next apply adds, changes and removes (real specs, real models)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision import changes, spec, state
from provision.changes import ADD, CHANGE, KINDS, REMOVE, Change, Changes
from provision.model import Network

ROOT = Path(__file__).resolve().parent.parent
WORKGROUP = ROOT / "inventories" / "lab-workgroup.yml"
DOMAIN = ROOT / "inventories" / "lab-domain.yml"
BRANCH = ROOT / "inventories" / "branch-office.yml"


def _variant(tmp_path: Path, base: Path, edit: Callable[[dict[str, Any]], None], name: str = "spec.yml") -> Network:
    """The model of ``base`` after ``edit`` changed its YAML, written in tmp_path."""
    data = yaml.safe_load(base.read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec.load_network(path)


def _host(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in data["hosts"] if h["name"] == name)


def _only(result: Changes, kind: str, name: str | None = None) -> Change:
    found = [c for c in result if c.kind == kind and (name is None or c.name == name)]
    assert len(found) == 1, found
    return found[0]


def _fields(change: Change) -> dict[str, tuple[Any, Any]]:
    return {f.name: (f.before, f.after) for f in change.fields}


# --------------------------------------------------------------------------- removals


def test_workgroup_user_and_share_removed_are_exactly_two_removals(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["users"] = [u for u in d["users"] if u["name"] != "bob"]
        peer1 = _host(d, "peer1")
        peer1["shares"] = [s for s in peer1["shares"] if s["name"] != "handbook"]

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    assert result.counts() == (0, 0, 2)
    assert changes.summary_line(result) == "0 to add, 0 to change, 2 to remove"
    user, share = result.removals()
    assert (user.kind, user.name, user.host) == ("user", "bob", None)
    # bob has an account on every peer (staff shares on peer1 and peer2, homes on peer3).
    assert "on peer1, peer2, peer3: its Samba account is removed" in user.note
    assert "home directory is kept" in user.note
    assert (share.kind, share.name, share.host) == ("share", "\\\\peer1\\handbook", "peer1")
    assert "leaves smb.conf" in share.note and "/srv/handbook and its files are kept" in share.note
    # carol is not in staff: handbook was the only reason for her account on peer1.
    assert "carol no longer needs an account on peer1" in share.note
    assert _fields(share)["path"] == ("/srv/handbook", None)


def test_domain_user_and_share_removed_and_what_follows(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["users"] = [u for u in d["users"] if u["name"] != "bob"]
        fs1 = _host(d, "fs1")
        fs1["shares"] = [s for s in fs1["shares"] if s["name"] != "common"]
        _host(d, "db1")["databases"][0].pop("read_only")  # the spec may not name bob any more

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    assert [(c.action, c.kind, c.name) for c in result] == [
        (REMOVE, "user", "bob"),
        (REMOVE, "mailbox", "bob@ad.lab.test"),
        (CHANGE, "database", "projects"),
        (REMOVE, "share", "\\\\fs1\\common"),
    ]
    assert result.counts() == (0, 1, 3)
    user = _only(result, "user")
    assert "deleted from the directory if provision created it" in user.note
    assert "home directories on the members are kept" in user.note
    assert "PostgreSQL role on db1 is dropped" in user.note
    mailbox = _only(result, "mailbox")
    assert mailbox.host is None
    assert "/var/vmail/bob on mx1 is kept" in mailbox.note
    database = _only(result, "database")
    assert database.host == "db1" and _fields(database) == {"read_only_users": (["bob"], [])}
    share = _only(result, "share")
    assert "/srv/common and its files are kept" in share.note


def test_database_left_out_is_kept_unmanaged(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        _host(d, "db1")["databases"] = [db for db in _host(d, "db1")["databases"] if db["name"] != "ledger"]

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    assert result.counts() == (0, 0, 1)
    (removal,) = result.removals()
    assert (removal.kind, removal.name, removal.host) == ("database", "ledger", "db1")
    assert removal.note.startswith(changes.UNMANAGED)
    assert "never dropped" in removal.note and "pg_hba.conf" in removal.note


def test_domain_host_removed_prunes_its_account_and_records_but_keeps_its_shares(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["hosts"] = [h for h in d["hosts"] if h["name"] != "fs1"]

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    assert [(c.action, c.kind, c.name, c.host) for c in result] == [
        (REMOVE, "host", "fs1", "fs1"),
        (REMOVE, "computer account", "fs1", "fs1"),
        (REMOVE, "dns record", "fs1.ad.lab.test A 10.231.0.25", "fs1"),
    ]
    host, account, record = result
    assert "not contacted" in host.note and "2 share(s)" in host.note and "--unjoin fs1" in host.note
    assert "deleted from OU=Provisioned Computers by the first DC" in account.note
    assert "held back" not in account.note
    assert "A and PTR records are deleted" in record.note


def test_domain_controller_removed_is_not_demoted(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["hosts"] = [h for h in d["hosts"] if h["name"] != "dc2"]

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    kinds = [(c.action, c.kind) for c in result if c.host == "dc2"]
    # A DC has no account in the computer OU: only its DNS record goes.
    assert kinds == [(REMOVE, "host"), (REMOVE, "dns record")]
    assert "not demoted" in _only(result, "host").note
    domain = _only(result, "domain")  # the DC list changes too
    assert _fields(domain) == {"dcs": (["dc1", "dc2"], ["dc1"])}


def test_many_hosts_leaving_at_once_are_held_back_by_the_safety_net(tmp_path: Path) -> None:
    before = spec.load_network(BRANCH)

    def edit(d: dict[str, Any]) -> None:
        _host(d, "ws[01:40]")["name"] = "ws[01:20]"

    result = changes.diff(before, _variant(tmp_path, BRANCH, edit))
    assert result.counts() == (0, 0, 60)  # 20 hosts, their accounts and their DNS records
    accounts = [c for c in result if c.kind == "computer account"]
    assert len(accounts) == 20
    assert all("held back: 20 of 43 computer accounts" in c.note for c in accounts)
    records = [c for c in result if c.kind == "dns record"]
    assert all("held back: 20 of 45 DNS names" in c.note for c in records)


def test_workgroup_group_removed_is_left_in_place(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["groups"] = [g for g in d["groups"] if g["name"] != "finance"]
        d["users"][1]["groups"] = ["staff"]
        _host(d, "peer2")["shares"] = []

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    group = _only(result, "group")
    assert group.action == REMOVE and group.note.startswith(changes.UNMANAGED)
    assert _fields(_only(result, "user")) == {"groups": (["staff", "finance"], ["staff"])}
    assert _only(result, "share").action == REMOVE


# --------------------------------------------------------------------------- additions and changes


def test_added_domain_host_gets_account_and_record(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["hosts"].append({"name": "ws10", "address": "10.231.0.40", "role": "workstation"})

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    assert [(c.action, c.kind, c.name) for c in result] == [
        (ADD, "host", "ws10"),
        (ADD, "computer account", "ws10"),
        (ADD, "dns record", "ws10.ad.lab.test A 10.231.0.40"),
    ]
    assert _fields(result.changes[0])["role"] == (None, "workstation")
    assert "OU=Provisioned Computers" in result.changes[1].note


def test_added_peer_lists_what_it_gets(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["hosts"].append(
            {
                "name": "peer4",
                "address": "10.231.0.14",
                "role": "peer",
                "shares": [{"name": "media", "path": "/srv/media", "groups": ["staff"]}],
            }
        )

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    assert [(c.action, c.kind, c.name, c.host) for c in result] == [
        (ADD, "host", "peer4", "peer4"),
        (ADD, "share", "\\\\peer4\\media", "peer4"),
    ]
    assert _fields(result.changes[1])["groups"] == (None, ["staff"])


def test_share_access_change_is_one_change_with_field_changes(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        common = _host(d, "fs1")["shares"][1]
        common["read_only"] = False
        common["write_list"] = []
        common["groups"] = ["staff", "engineering"]

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    (change,) = result
    assert (change.action, change.kind, change.name, change.host) == (CHANGE, "share", "\\\\fs1\\common", "fs1")
    assert _fields(change) == {
        "groups": (["staff"], ["staff", "engineering"]),
        "read_only": (True, False),
        "write_list": (["alice"], []),
    }


def test_peer_share_access_change_tells_which_accounts_go(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        _host(d, "peer2")["shares"][0]["groups"] = []
        _host(d, "peer2")["shares"][0]["users"] = ["alice"]
        _host(d, "peer2")["printers"] = []

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    assert result.counts() == (0, 1, 1)
    share = _only(result, "share")
    # peer2 needed bob (finance, staff) and alice (staff); now only alice.
    assert "bob no longer needs an account on peer2" in share.note
    printer = _only(result, "printer")
    assert printer.action == REMOVE and "CUPS queue is deleted" in printer.note


def test_host_address_and_role_changes(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        _host(d, "ws1")["address"] = "10.231.0.41"
        _host(d, "ws2")["role"] = "file_server"

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    ws1 = [c for c in result if c.host == "ws1"]
    assert [(c.action, c.kind) for c in ws1] == [(CHANGE, "host"), (CHANGE, "dns record")]
    assert ws1[1].name == "ws1.ad.lab.test A 10.231.0.41"
    assert _fields(ws1[1]) == {"address": ("10.231.0.31", "10.231.0.41")}
    ws2 = _only(result, "host", "ws2")
    assert _fields(ws2)["role"] == ("workstation", "file_server")
    assert "changes role (workstation → file_server)" in ws2.note


def test_realm_change_is_flagged_as_impossible(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["domain"]["realm"] = "NEW.LAB.TEST"

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    domain = _only(result, "domain")
    assert domain.action == CHANGE and domain.name == "NEW.LAB.TEST"
    assert "cannot change an existing domain's realm" in domain.note and "would fail" in domain.note
    # Everything named after the zone moves with it: records and mailboxes change, none is removed.
    assert not result.removals()
    assert {c.kind for c in result} == {"domain", "dns record", "mailbox", "mail list"}


def test_rollout_and_policy_changes(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["rollout"] = {"batch": "20%"}
        d["policies"]["firewall"] = {"enabled": False}
        d["policies"]["access"] = [{"groups": ["staff"], "roles": ["peer"]}]
        d["policies"]["sudo"] = [{"users": ["alice"], "roles": ["peer"], "nopasswd": True}]

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    assert all(c.host is None and c.action == CHANGE for c in result)
    rollout = _only(result, "rollout")
    assert _fields(rollout) == {"batch": (50, "20%")} and "touches no host" in rollout.note
    firewall = _only(result, "policy", "firewall")
    assert _fields(firewall) == {"enabled": (True, False)} and "firewall table is removed" in firewall.note
    access = _only(result, "policy", "access rules")
    assert _fields(access) == {"source": ("defaults", "spec"), "rule 1": (None, "allow groups staff on roles peer")}
    sudo = _only(result, "policy", "sudo rules")
    assert _fields(sudo)["rule 1"] == (None, "users alice on roles peer may run ALL without a password")
    assert result.counts() == (0, 4, 0)


def test_password_reference_change_shows_references_never_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_ALICE_PW", "Old-Secret-123")
    monkeypatch.setenv("NEW_ALICE_PW", "New-Secret-456")
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["users"][0]["password"] = {"env": "NEW_ALICE_PW"}

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    (change,) = result
    assert change.kind == "user" and _fields(change) == {"password": ("env:LAB_ALICE_PW", "env:NEW_ALICE_PW")}
    assert "password reference changed (env:LAB_ALICE_PW → env:NEW_ALICE_PW)" in change.note
    dumped = json.dumps(changes.diff(None, before).to_records() + result.to_records())
    assert "Old-Secret-123" not in dumped and "New-Secret-456" not in dumped


# --------------------------------------------------------------------------- whole diffs


@pytest.mark.parametrize("path", [WORKGROUP, DOMAIN, BRANCH], ids=["workgroup", "domain", "branch"])
def test_no_change_is_empty(path: Path) -> None:
    network = spec.load_network(path)
    result = changes.diff(network, network)
    assert not result and len(result) == 0 and result.counts() == (0, 0, 0)
    assert changes.summary_line(result) == "no changes"
    assert result.to_records() == [] and result.by_host() == {}


def test_nothing_recorded_means_everything_is_an_addition() -> None:
    network = spec.load_network(DOMAIN)
    result = changes.diff(None, network)
    add, change, remove = result.counts()
    assert change == remove == 0 and add == len(result)
    assert changes.summary_line(result) == f"{add} to add, 0 to change, 0 to remove"
    by_kind: dict[str, int] = {}
    for c in result:
        by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
    assert by_kind == {
        "network": 1,
        "connection": 1,
        "domain": 1,
        "rollout": 1,
        "policy": 7,
        "group": 2,
        "user": 2,
        "mailbox": 2,
        "mail list": 1,
        "host": 7,
        "computer account": 5,  # every member, not the two DCs
        "dns record": 8,  # 7 A records and the mail domain's MX
        "share": 2,
        "database": 2,
    }
    assert _only(result, "mail list").name == "staff@ad.lab.test"
    assert _only(result, "dns record", "ad.lab.test MX mx1.ad.lab.test").host == "mx1"


def test_order_is_host_then_kind_then_name(tmp_path: Path) -> None:
    before = spec.load_network(WORKGROUP)

    def edit(d: dict[str, Any]) -> None:
        d["hosts"].append({"name": "peer10", "address": "10.231.0.20", "role": "peer"})
        d["hosts"].append({"name": "peer9", "address": "10.231.0.19", "role": "peer"})
        d["users"].append({"name": "dave", "password": {"env": "DAVE_PW"}})
        d["groups"].append({"name": "admins"})
        _host(d, "peer1")["shares"].append({"name": "alpha", "path": "/srv/alpha"})
        d["rollout"] = {"batch": 5}

    result = changes.diff(before, _variant(tmp_path, WORKGROUP, edit))
    assert [(c.host, c.kind, c.name) for c in result] == [
        (None, "rollout", "rollout"),
        (None, "group", "admins"),
        (None, "user", "dave"),
        ("peer1", "share", "\\\\peer1\\alpha"),
        ("peer9", "host", "peer9"),
        ("peer10", "host", "peer10"),  # digits compare as numbers
    ]
    assert list(result.by_host()) == [None, "peer1", "peer9", "peer10"]
    assert [c.kind for c in result.by_host()[None]] == ["rollout", "group", "user"]
    # The order is the documented key's, whatever order the changes were found in.
    assert sorted(reversed(result.changes), key=changes.order_key) == list(result)


def test_records_are_plain_json_with_stable_fields(tmp_path: Path) -> None:
    before = spec.load_network(DOMAIN)

    def edit(d: dict[str, Any]) -> None:
        d["users"] = [u for u in d["users"] if u["name"] != "bob"]
        _host(d, "db1")["databases"][0].pop("read_only")
        _host(d, "mx1")["mail"] = {"max_message_mb": 50}

    result = changes.diff(before, _variant(tmp_path, DOMAIN, edit))
    records = json.loads(json.dumps(result.to_records()))
    assert changes.RECORD_VERSION == 1
    assert len(records) == len(result)
    for r in records:
        assert list(r) == ["action", "kind", "name", "host", "fields", "note"]
        assert r["action"] in (ADD, CHANGE, REMOVE) and r["kind"] in KINDS
        assert isinstance(r["name"], str) and (r["host"] is None or isinstance(r["host"], str))
        assert isinstance(r["note"], str)
        for f in r["fields"]:
            assert list(f) == ["name", "before", "after"]
    mx1 = next(r for r in records if r["host"] == "mx1")
    assert mx1 == {
        "action": "change",
        "kind": "host",
        "name": "mx1",
        "host": "mx1",
        "fields": [
            {
                "name": "mail",
                "before": {"imap_starttls": False, "max_message_mb": 25},
                "after": {"imap_starttls": False, "max_message_mb": 50},
            }
        ],
        "note": "",
    }
    user = next(r for r in records if r["kind"] == "user")
    assert user["action"] == "remove" and user["host"] is None
    assert {"name": "password", "before": "env:LAB_BOB_PW", "after": None} in user["fields"]


def test_diff_against_the_recorded_model(own_state: Path, tmp_path: Path) -> None:
    applied = spec.load_network(WORKGROUP)
    state.record(applied)
    recorded = state.load(applied.name)
    assert recorded is not None
    assert not changes.diff(recorded, applied)

    def edit(d: dict[str, Any]) -> None:
        _host(d, "peer3")["homes"] = False

    result = changes.diff(recorded, _variant(tmp_path, WORKGROUP, edit))
    (change,) = result
    assert (change.kind, change.host) == ("host", "peer3")
    assert "[homes] share is no longer offered; home directories are kept" in change.note
    # Without homes, peer3 needs only carol (its scratch share).
    assert "alice, bob no longer need an account on peer3" in change.note


def test_execution_nodes_are_rollout_changes_that_touch_no_host(tmp_path: Path) -> None:
    nodes = ROOT / "inventories" / "lab-nodes.yml"
    before = spec.load_network(nodes)

    def edit(d: dict[str, Any]) -> None:
        d["rollout"]["execution_nodes"] = [
            {"name": "node1", "address": "10.231.4.91"},
            {"name": "node3", "address": "10.231.4.93"},
        ]

    result = changes.diff(before, _variant(tmp_path, nodes, edit))
    assert [(c.action, c.kind, c.name, c.host) for c in result] == [
        (CHANGE, "rollout", "execution node node1", None),
        (REMOVE, "rollout", "execution node node2", None),
        (ADD, "rollout", "execution node node3", None),
    ]
    assert _fields(result.changes[0]) == {"address": ("10.231.4.11", "10.231.4.91")}
    assert all("touches no host" in c.note for c in result)


def test_a_field_the_model_gains_is_compared_too() -> None:
    # Host fields are taken from the model (all but the excluded ones), so a new one shows.
    assert "connection" not in changes.HOST_FIELDS and "range_name" not in changes.HOST_FIELDS
    assert {"address", "role", "os", "homes", "client", "mail", "tls"} <= set(changes.HOST_FIELDS)
    network = spec.load_network(DOMAIN)
    ws1 = network.host("ws1")
    moved = dataclasses.replace(ws1, os="debian13")
    after = dataclasses.replace(network, hosts=tuple(moved if h is ws1 else h for h in network.hosts))
    (change,) = changes.diff(network, after)
    assert (change.kind, change.host, _fields(change)) == ("host", "ws1", {"os": ("debian12", "debian13")})


def test_the_controllers_key_and_known_hosts_files_are_no_change() -> None:
    # --identity / --known-hosts replace them for one run: the next plan must not list them.
    network = spec.load_network(DOMAIN)
    overridden = network.with_connection(known_hosts_file="/ci/known_hosts", identity_file="/ci/key")
    assert not changes.diff(overridden, network)
    moved = dataclasses.replace(network, ssh=dataclasses.replace(network.ssh, port=2222))
    (change,) = changes.diff(network, moved)
    assert (change.kind, change.name, _fields(change)) == ("connection", "ssh", {"port": (22, 2222)})
    assert "firewalls then allow SSH on the new port" in change.note
