"""The migration plan of a workgroup grown into a domain: every user, group, share, printer and host
of the workgroup gets a line saying what happens to it, and nothing is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provision import backup, grow, migrate, spec
from provision.cli import cli
from provision.model import Network

ROOT = Path(__file__).resolve().parent.parent
WG_SPEC = ROOT / "inventories" / "lab-workgroup.yml"
GROWN_SPEC = ROOT / "inventories" / "lab-grown.yml"
WORKGROUP = spec.load_network(WG_SPEC)
GROWN = spec.load_network(GROWN_SPEC)


def _steps(m: migrate.Migration) -> dict[tuple[str, str, str], str]:
    return {(s.kind, s.name, s.where): s.action for s in m.steps}


def test_every_object_of_the_workgroup_has_a_line() -> None:
    m = migrate.plan(WORKGROUP, GROWN)
    steps = _steps(m)
    assert {name for kind, name, _ in steps if kind == "user"} == {u.name for u in WORKGROUP.users}
    assert {name for kind, name, _ in steps if kind == "group"} == {g.name for g in WORKGROUP.groups}
    shares = {(h.name, s.name) for h in WORKGROUP.hosts for s in h.shares}
    assert {(where, name) for kind, name, where in steps if kind == "share" and name != "homes"} == shares
    assert {name for kind, name, _ in steps if kind == "host"} == {h.name for h in GROWN.hosts}
    assert m.realm == "AD.LABWG.TEST" and "nothing of the workgroup is deleted" in m.text()


def test_users_keep_their_passwords_and_their_local_accounts_are_retired() -> None:
    steps = _steps(migrate.plan(WORKGROUP, GROWN))
    # carol has an account only where a share names her (handbook on peer1, scratch and homes on peer3).
    carol = steps[("user", "carol", "directory")]
    assert "password carried from the Samba database of peer1, peer3" in carol
    assert "retired on peer1, peer3 (disabled, home kept)" in carol
    assert "local accounts alice, bob retired" in steps[("host", "peer2", "10.231.0.12")]
    assert steps[("host", "dc1", "10.231.0.21")] == "new domain controller"


def test_shares_stay_in_place_on_peers_that_become_file_servers() -> None:
    steps = _steps(migrate.plan(WORKGROUP, GROWN))
    assert steps[("share", "projects", "peer1")].startswith("stays in /srv/projects; owners mapped")
    assert steps[("share", "homes", "peer3")].startswith("home directories stay")
    assert steps[("printer", "office-pdf", "peer2")] == "stays; shared to the domain's users and groups"


def test_shares_moved_to_a_new_file_server_are_copied_and_the_originals_stay(tmp_path: Path) -> None:
    out = tmp_path / "grown.yml"
    options = grow.Options(
        realm="AD.LABWG.TEST",
        dcs=(grow.parse_new_host("dc1=10.231.0.21"), grow.parse_new_host("dc2=10.231.0.22")),
        netbios=None,
        admin_password={"env": "DOMAIN_ADMIN_PASSWORD"},
        client="winbind",
        file_server=grow.parse_new_host("fs1=10.231.0.25"),
    )
    grown = grow.grow(WG_SPEC, out, options)
    grow.write(grown)
    steps = _steps(migrate.plan(WORKGROUP, spec.load_network(out)))
    assert steps[("share", "finance", "peer2")].startswith("copied to fs1:/srv/finance")
    assert "the copy on peer2 stays" in steps[("share", "finance", "peer2")]
    assert steps[("host", "peer2", "10.231.0.12")].startswith("peer joins the domain as a workstation (winbind)")
    assert steps[("host", "fs1", "10.231.0.25")] == "new file server"
    assert steps[("printer", "office-pdf", "peer2")] == (
        "served by fs1 (a queue to the same device); the queue on peer2 stays, unshared")


def test_the_specs_must_be_a_workgroup_and_a_domain() -> None:
    with pytest.raises(migrate.MigrationError, match="not a workgroup"):
        migrate.plan(GROWN, GROWN)
    with pytest.raises(migrate.MigrationError, match="not a domain spec"):
        migrate.plan(WORKGROUP, WORKGROUP)


def test_a_peer_missing_from_the_domain_spec_is_refused() -> None:
    from dataclasses import replace

    smaller = replace(GROWN, hosts=tuple(h for h in GROWN.hosts if h.name != "peer3"))
    with pytest.raises(migrate.MigrationError, match="peer3 of the workgroup are not hosts"):
        migrate.plan(WORKGROUP, smaller)


def test_cli_plan_from_workgroup_prints_the_table_and_json() -> None:
    result = CliRunner().invoke(cli, ["plan", str(GROWN_SPEC), "--from-workgroup", str(WG_SPEC)])
    assert result.exit_code == 0, result.output
    assert "migration of workgroup 'labwg'" in result.output and "peer joins the domain" in result.output
    result = CliRunner().invoke(cli, ["plan", str(GROWN_SPEC), "--from-workgroup", str(GROWN_SPEC)])
    assert result.exit_code == 2 and "not a workgroup" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------- the run's pieces

IDS = {
    "peer1": {"users": {"alice": 1001, "bob": 1002, "carol": 1003}, "primary": {"alice": 1001, "bob": 1002,
              "carol": 1003}, "groups": {"staff": 1010, "finance": 1011, "alice": 1001}},
    "peer3": {"users": {"alice": 1001, "bob": 1002, "carol": 1003}, "primary": {"alice": 1001, "bob": 1002,
              "carol": 1003}, "groups": {"staff": 1010}},
}


def test_the_accounts_phase_reads_and_retires_exactly_the_peers_accounts() -> None:
    plan = migrate.host_plan(WORKGROUP, GROWN, IDS, "accounts")
    assert set(plan) == {"peer1", "peer2", "peer3"}
    assert plan["peer2"]["export"] == {"users": ["alice", "bob"], "groups": []}
    assert plan["peer2"]["retire"] == {"users": ["alice", "bob"], "groups": ["finance", "staff"]}
    assert plan["peer1"]["stop_samba"] is False  # peers serving shares stay file servers


def test_owners_move_by_name_and_private_groups_keep_their_numbers() -> None:
    plan = migrate.host_plan(WORKGROUP, GROWN, IDS, "owners")
    assert set(plan) == {"peer1", "peer3"}  # peer2 has no ids here: nothing it could map
    [owners] = plan["peer3"]["owners"]
    assert owners["paths"] == ["/home", "/srv/scratch"]
    assert {"from": 1003, "to": "LABWG\\carol"} in owners["users"]  # the domain's, by its qualified name
    # staff moves to the domain's group; alice's private group 1001 stays (now the retired wg-alice's).
    assert plan["peer1"]["owners"][0]["groups"] == [{"from": 1011, "to": "LABWG\\finance"},
                                                    {"from": 1010, "to": "LABWG\\staff"}]
    # peer3's backup did not number finance (a system group, say): it moves by its local name, if there.
    assert {"from_name": "finance", "to": "LABWG\\finance", "optional": True} in owners["groups"]
    assert plan["peer1"]["owners"][0]["paths"] == ["/srv/handbook", "/srv/projects"]


def _moved(tmp_path: Path) -> Network:
    """lab-workgroup.yml grown with --file-server: every peer's shares and homes move to fs1."""
    out = tmp_path / "grown.yml"
    options = grow.Options(
        realm="AD.LABWG.TEST",
        dcs=(grow.parse_new_host("dc1=10.231.0.21"),),
        netbios=None,
        admin_password={"env": "DOMAIN_ADMIN_PASSWORD"},
        client="sssd",
        file_server=grow.parse_new_host("fs1=10.231.0.25"),
    )
    grow.write(grow.grow(WG_SPEC, out, options))
    return spec.load_network(out)


def test_the_shares_and_homes_that_move_are_copied_at_their_paths(tmp_path: Path) -> None:
    moved = _moved(tmp_path)
    copies = {(c.peer, c.target, c.item, c.path) for c in migrate.check_copies(WORKGROUP, moved)}
    assert copies == {
        ("peer1", "fs1", "share-projects", "/srv/projects"),
        ("peer1", "fs1", "share-handbook", "/srv/handbook"),
        ("peer2", "fs1", "share-finance", "/srv/finance"),
        ("peer3", "fs1", "share-scratch", "/srv/scratch"),
        ("peer3", "fs1", "homes", "/home"),
    }
    assert migrate.copies(WORKGROUP, GROWN) == []  # in place: nothing is copied
    # Each is an item a backup of its peer makes (the copy phase takes exactly those).
    for c in migrate.copies(WORKGROUP, moved):
        assert c.item in {i.name for i in backup.host_items(WORKGROUP, WORKGROUP.host(c.peer))}, c
    # Every peer stops serving before its folders are taken.
    accounts = migrate.host_plan(WORKGROUP, moved, IDS, "accounts")
    assert all(accounts[p]["stop_samba"] for p in ("peer1", "peer2", "peer3"))


def test_copied_files_are_mapped_on_the_new_host_with_the_numbers_of_their_peer(tmp_path: Path) -> None:
    moved = _moved(tmp_path)
    ids = {**IDS, "peer3": {"users": {"carol": 1005}, "primary": {"carol": 1005}, "groups": {"staff": 1020}}}
    plan = migrate.host_plan(WORKGROUP, moved, ids, "owners")
    assert set(plan) == {"fs1"}  # the peers keep their copies as they were
    maps = {tuple(m["paths"]): m for m in plan["fs1"]["owners"]}
    assert set(maps) == {("/srv/handbook", "/srv/projects"), ("/home", "/srv/scratch")}
    # The same user has other numbers on two peers: each folder is mapped with its own peer's.
    assert {"from": 1003, "to": "LABWG\\carol"} in maps[("/srv/handbook", "/srv/projects")]["users"]
    assert maps[("/home", "/srv/scratch")]["users"] == [{"from": 1005, "to": "LABWG\\carol"}]
    assert {"from": 1020, "to": "LABWG\\staff"} in maps[("/home", "/srv/scratch")]["groups"]
    # A rollback leaves the new file server's copy to the domain; the peers' files were never changed.
    assert migrate.rollback_plan(WORKGROUP, moved, ids, "owners_back") == {}


def test_a_copy_that_cannot_be_made_as_the_specs_say_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from dataclasses import replace

    moved = _moved(tmp_path)
    fs1 = moved.host("fs1")
    other = replace(fs1, shares=tuple(replace(s, path="/data/finance") if s.name == "finance" else s
                                      for s in fs1.shares))
    hosts = tuple(other if h.name == "fs1" else h for h in moved.hosts)
    with pytest.raises(migrate.MigrationError, match=r"share finance moves from peer2 to fs1 with another path "
                                                     r"\(/srv/finance -> /data/finance\)"):
        migrate.check_copies(WORKGROUP, replace(moved, hosts=hosts))
    both = replace(WORKGROUP, hosts=tuple(replace(h, homes=True) if h.name == "peer1" else h
                                          for h in WORKGROUP.hosts))
    with pytest.raises(migrate.MigrationError, match="home folders of peer1, peer3 would all be fs1:/home"):
        migrate.check_copies(both, moved)
    with pytest.raises(migrate.MigrationError, match="home folders of peer1, peer3"):
        migrate.run(both, moved, tmp_path / "backups")  # before any host is contacted


def test_the_record_resumes_the_same_migration_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    fresh = migrate.load_record(WORKGROUP, GROWN)
    assert fresh["done"] == [] and fresh["realm"] == "AD.LABWG.TEST"
    migrate._save(GROWN, {**fresh, "done": ["backup", "dcs"], "ids": IDS})
    path = tmp_path / "provision" / "labwg" / "migration.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert migrate.load_record(WORKGROUP, GROWN)["done"] == ["backup", "dcs"]
    path.write_text(path.read_text().replace("AD.LABWG.TEST", "AD.OTHER.TEST"))
    with pytest.raises(migrate.MigrationError, match=r"not of 'labwg' into 'AD\.LABWG\.TEST'"):
        migrate.load_record(WORKGROUP, GROWN)


def test_cli_a_migration_is_the_whole_network_and_a_plain_apply_after_a_workgroup_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provision import state

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["apply", str(GROWN_SPEC), "--from-workgroup", str(WG_SPEC), "--check"])
    assert result.exit_code == 2 and "not with --check" in result.output
    state.record(WORKGROUP)
    result = CliRunner().invoke(cli, ["apply", str(GROWN_SPEC), "--yes"])
    assert result.exit_code == 2, result.output
    assert "was last applied as a workgroup" in result.output and "--from-workgroup" in result.output
    assert "Traceback" not in result.output


def test_a_rollback_takes_files_back_by_name_then_gives_the_accounts_their_names() -> None:
    owners = migrate.rollback_plan(WORKGROUP, GROWN, IDS, "owners_back")
    assert set(owners) == {"peer1", "peer3"}
    [back] = owners["peer3"]["owners"]
    assert back["paths"] == ["/home", "/srv/scratch"]
    # While joined, alice is the domain's account and wg-alice the retired local one.
    assert {"from_name": "LABWG\\carol", "to": "wg-carol"} in back["users"]
    assert owners["peer1"]["owners"][0]["groups"] == [{"from_name": "LABWG\\finance", "to": "wg-finance"},
                                                      {"from_name": "LABWG\\staff", "to": "wg-staff"}]
    # A group that kept its name (a system group) gets its files back under that name.
    assert {"from_name": "LABWG\\finance", "to": "finance"} in back["groups"]
    ids = {**IDS, "peer2": {"shells": {"alice": "/bin/bash"}}}
    accounts = migrate.rollback_plan(WORKGROUP, GROWN, ids, "accounts_back")
    assert accounts["peer2"]["restore"] == {"users": ["alice", "bob"], "groups": ["finance", "staff"],
                                            "shells": {"alice": "/bin/bash", "bob": "/bin/sh"}}


def test_cli_rollback_needs_the_workgroup_and_a_recorded_migration(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["apply", str(GROWN_SPEC), "--rollback"])
    assert result.exit_code == 2 and "--rollback goes with --from-workgroup" in result.output
    with pytest.raises(migrate.MigrationError, match="no migration of 'labwg' is recorded"):
        migrate.rollback(WORKGROUP, GROWN)
