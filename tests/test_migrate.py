"""The migration plan of a workgroup grown into a domain: every user, group, share, printer and host
of the workgroup gets a line saying what happens to it, and nothing is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provision import grow, migrate, spec
from provision.cli import cli

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
    assert steps[("printer", "office-pdf", "peer2")].startswith("no longer shared (a domain file server shares")


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
    owners = plan["peer3"]["owners"]
    assert owners["paths"] == ["/home", "/srv/scratch"]
    assert {"from": 1003, "to": "LABWG\\carol"} in owners["users"]  # the domain's, by its qualified name
    # staff moves to the domain's group; alice's private group 1001 stays (now the retired wg-alice's).
    assert plan["peer1"]["owners"]["groups"] == [{"from": 1011, "to": "LABWG\\finance"},
                                                 {"from": 1010, "to": "LABWG\\staff"}]
    # peer3's backup did not number finance (a system group, say): it moves by its local name, if there.
    assert {"from_name": "finance", "to": "LABWG\\finance", "optional": True} in owners["groups"]
    assert plan["peer1"]["owners"]["paths"] == ["/srv/handbook", "/srv/projects"]


def test_a_share_moved_to_another_host_is_refused_before_anything_runs(tmp_path: Path) -> None:
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
    moved = migrate.moved_shares(WORKGROUP, spec.load_network(out))
    assert "finance (peer2 -> fs1)" in moved and "homes (peer3 -> fs1)" in moved
    assert migrate.moved_shares(WORKGROUP, GROWN) == []
    with pytest.raises(migrate.MigrationError, match="copying a share to a new file server is not built yet"):
        migrate.run(WORKGROUP, spec.load_network(out), tmp_path / "backups")


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
    back = owners["peer3"]["owners"]
    assert back["paths"] == ["/home", "/srv/scratch"]
    # While joined, alice is the domain's account and wg-alice the retired local one.
    assert {"from_name": "LABWG\\carol", "to": "wg-carol"} in back["users"]
    assert owners["peer1"]["owners"]["groups"] == [{"from_name": "LABWG\\finance", "to": "wg-finance"},
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
