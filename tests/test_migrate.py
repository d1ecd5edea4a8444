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
    assert steps[("printer", "office-pdf", "peer2")] == "stays"


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
