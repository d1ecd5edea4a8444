"""provision backup's controller side: what each role backs up, the manifest's checks, retention."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from provision import backup, spec

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
WORKGROUP = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")


def _kinds(network, host: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(i.name, i.kind) for i in backup.plan(network).get(host, [])]


def test_domain_plan_by_role() -> None:
    planned = backup.plan(DOMAIN)
    assert _kinds(DOMAIN, "dc1") == [("domain", "samba_domain")]
    assert "dc2" not in planned and "ws1" not in planned and "ws2" not in planned  # rebuilt by joining; no data
    assert _kinds(DOMAIN, "fs1") == [("join-state", "tar"), ("share-projects", "tar"), ("share-common", "tar")]
    assert _kinds(DOMAIN, "mx1") == [("join-state", "tar"), ("mailboxes", "tar")]
    assert _kinds(DOMAIN, "db1") == [
        ("join-state", "tar"), ("pg-globals", "pg_globals"), ("db-projects", "pg_dump"), ("db-ledger", "pg_dump"),
    ]
    share = planned["fs1"][1]
    assert share.paths == ("/srv/projects",) and not share.missing_ok
    join = planned["fs1"][0].module_args()
    assert join["paths"] == ["/var/lib/samba", "/etc/krb5.keytab"] and "*cache*.tdb" in join["exclude"]


def test_workgroup_plan_has_accounts_first_then_passdb_shares_and_homes() -> None:
    assert _kinds(WORKGROUP, "peer1") == [
        ("accounts", "accounts"), ("passdb", "tar"), ("workgroup-state", "tar"), ("share-projects", "tar"),
        ("share-handbook", "tar")]
    # The role's record of the accounts it made: they stay its to delete after a restore.
    state = backup.plan(WORKGROUP)["peer1"][2]
    assert state.paths == ("/var/lib/provision/samba_workgroup.json",) and state.missing_ok
    assert ("homes", "tar") in _kinds(WORKGROUP, "peer3")
    assert all(items[0].kind == "accounts" for items in backup.plan(WORKGROUP).values())


def test_a_peers_accounts_item_names_its_users_their_groups_and_every_spec_group() -> None:
    from provision import changes

    planned = backup.plan(WORKGROUP)
    # peer1's shares name staff (alice, bob) and carol; peer2 only staff (its finance share and queue).
    peer1, peer2 = planned["peer1"][0], planned["peer2"][0]
    assert peer1.users == ("alice", "bob", "carol") and peer2.users == ("alice", "bob")
    assert set(peer2.users) == changes.peer_accounts(WORKGROUP)["peer2"]  # the roles' own planner decides
    # Each user's personal group, and every group of the spec: the apply makes them all on every peer.
    assert peer1.groups == ("alice", "bob", "carol", "finance", "staff")
    assert peer2.groups == ("alice", "bob", "finance", "staff")
    assert peer2.module_args() == {"name": "accounts", "kind": "accounts", "users": ["alice", "bob"],
                                   "groups": ["alice", "bob", "finance", "staff"]}
    assert peer2.holds() == ["user alice", "user bob", "group alice", "group bob", "group finance", "group staff"]
    # Not on the other roles.
    assert not any(i.kind == "accounts" for items in backup.plan(DOMAIN).values() for i in items)


def _fetched(folder: Path, host: str, files: dict[str, bytes], lie: str | None = None) -> None:
    """A host's folder as the backup role leaves it: its files and files.json."""
    (folder / host).mkdir(parents=True)
    index = []
    for name, data in files.items():
        path = folder / host / f"{name}.tar.gz"
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest() if name != lie else "0" * 64
        index.append({"name": name, "kind": "tar", "file": f"/var/backups/provision/x/{name}.tar.gz",
                      "size": len(data), "sha256": digest, "seconds": 0.1, "paths": []})
    (folder / host / "files.json").write_text(json.dumps(index))


def test_manifest_checks_every_planned_file(tmp_path: Path) -> None:
    planned = {"fs1": backup.plan(DOMAIN)["fs1"]}
    folder = tmp_path / "labdom-20261206T120000Z"
    _fetched(folder, "fs1", {"join-state": b"j", "share-projects": b"p" * 10, "share-common": b"c"})
    m = backup.manifest(DOMAIN, folder, planned, 1.0)
    assert m["format"] == "provision-backup" and m["network"] == "labdom" and m["created"] == "20261206T120000Z"
    assert m["bytes"] == 12 and [i["name"] for i in m["hosts"]["fs1"]["items"]] == [
        "join-state", "share-projects", "share-common"]
    assert m["hosts"]["fs1"]["items"][1]["holds"] == ["/srv/projects"]
    assert not (folder / "fs1" / "files.json").exists()


def test_manifest_says_which_accounts_a_peer_holds(tmp_path: Path) -> None:
    planned = {"peer2": backup.plan(WORKGROUP)["peer2"]}
    folder = tmp_path / "labwg-20261206T120000Z"
    _fetched(folder, "peer2", {i.name: i.name.encode() for i in planned["peer2"]})
    m = backup.manifest(WORKGROUP, folder, planned, 1.0)
    first = m["hosts"]["peer2"]["items"][0]
    assert first["name"] == "accounts" and first["kind"] == "accounts"
    assert first["holds"] == ["user alice", "user bob", "group alice", "group bob", "group finance", "group staff"]


def test_manifest_refuses_a_missing_or_altered_file(tmp_path: Path) -> None:
    planned = {"fs1": backup.plan(DOMAIN)["fs1"]}
    folder = tmp_path / "a"
    _fetched(folder, "fs1", {"join-state": b"j", "share-projects": b"p"})
    with pytest.raises(backup.BackupError, match="share-common was not fetched"):
        backup.manifest(DOMAIN, folder, planned, 1.0)
    folder = tmp_path / "b"
    _fetched(folder, "fs1", {"join-state": b"j", "share-projects": b"p", "share-common": b"c"}, lie="share-common")
    with pytest.raises(backup.BackupError, match="checksum differs"):
        backup.manifest(DOMAIN, folder, planned, 1.0)


def test_retention_keeps_the_newest_complete_backups(tmp_path: Path) -> None:
    for stamp in ("20261201T000000Z", "20261202T000000Z", "20261203T000000Z"):
        (tmp_path / f"labdom-{stamp}").mkdir()
        (tmp_path / f"labdom-{stamp}" / "manifest.json").write_text("{}")
    (tmp_path / "labdom-20261204T000000Z").mkdir()  # no manifest: not a backup, never counted
    (tmp_path / "other-20261201T000000Z").mkdir()
    (tmp_path / "other-20261201T000000Z" / "manifest.json").write_text("{}")
    removed = backup.prune(tmp_path, DOMAIN, 2)
    assert [p.name for p in removed] == ["labdom-20261201T000000Z"]
    assert [p.name for p in backup.backups(tmp_path, DOMAIN)] == ["labdom-20261202T000000Z", "labdom-20261203T000000Z"]
    assert (tmp_path / "other-20261201T000000Z").exists()


def _with_backup_policy(tmp_path: Path, policy: str) -> Path:
    text = (ROOT / "inventories" / "lab-workgroup.yml").read_text() + f"  backup: {policy}\n"
    path = tmp_path / "site with space%.yml"
    path.write_text(text)
    return path


def test_age_check_follows_policies_backup_max_age(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    assert backup.age_check(WORKGROUP, tmp_path) is None  # no max_age: not checked
    net = spec.load_network(_with_backup_policy(tmp_path, "{max_age: 26h}"))
    assert net.policies.backup.max_age_hours == 26
    missing = backup.age_check(net, tmp_path / "none")
    assert missing is not None and missing.status == "fail" and "no complete backup" in missing.detail
    folder = tmp_path / "labwg-20261206T100000Z"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (tmp_path / "labwg-20261206T200000Z").mkdir()  # newer but incomplete: does not count
    fresh = backup.age_check(net, tmp_path, now=datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    assert fresh is not None and fresh.status == "pass" and "23.0 h old" in fresh.detail
    stale = backup.age_check(net, tmp_path, now=datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
    assert stale is not None and stale.status == "fail" and "27.0 h old" in stale.detail
    days = spec.load_network(_with_backup_policy(tmp_path, "{max_age: 7d, directory: /srv/backups/x}"))
    assert days.policies.backup.max_age_hours == 168 and backup.default_dir(days) == Path("/srv/backups/x")


def test_scheduled_units_pass_systemd_analyze(tmp_path: Path) -> None:
    import shutil

    from provision import schedule

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    spec_path = _with_backup_policy(tmp_path, '{schedule: "*-*-* 02:30:00", keep: 7}')
    net = spec.load_network(spec_path)
    written = schedule.write(net, spec_path, tmp_path / "kept $HOME", net.policies.backup.keep, tmp_path / "units")
    assert [p.name for p in written] == ["provision-backup-labwg.service", "provision-backup-labwg.timer"]
    service, timer = (p.read_text() for p in written)
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    # The spec's path keeps its space and % (systemd quoting), the folder's $ is not expanded.
    assert '"backup" "' + str(spec_path).replace("%", "%%") + '"' in service
    assert "kept $$HOME" in service and '"--keep" "7"' in service
    bad = spec.load_network(_with_backup_policy(tmp_path, '{schedule: "Mon..Fri 25:00"}'))
    with pytest.raises(schedule.ScheduleError, match="not a systemd calendar"):
        schedule.write(bad, spec_path, tmp_path, None, tmp_path / "units2")
    assert not (tmp_path / "units2").exists() or not any((tmp_path / "units2").iterdir())


def test_a_backup_policy_change_is_in_the_plan(tmp_path: Path) -> None:
    from provision import changes

    after = spec.load_network(_with_backup_policy(tmp_path, "{max_age: 26h, keep: 3}"))
    found = [(c.action, c.kind, c.name) for c in changes.diff(WORKGROUP, after)]
    assert found and all(kind == "policy" for _, kind, _ in found), found
