"""provision restore's controller side: the backup checked against its manifest and the spec, what
each host still holds read from the probe's output, and the recovery chosen from the topology."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision import backup, restore, spec
from provision.cli import cli
from provision.restore import HOLDS, LOST, HostState

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "inventories" / "lab-domain.yml"
DOMAIN = spec.load_network(SPEC)
WORKGROUP = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
SUFFIX = {"tar": ".tar.gz", "samba_domain": ".tar.bz2", "pg_dump": ".dump", "pg_globals": ".sql", "accounts": ".json"}
STAMP = "20261206T120000Z"


def make_backup(tmp_path: Path, network=DOMAIN) -> Path:  # type: ignore[no-untyped-def]
    """A complete backup of ``network`` as provision backup leaves it (files, then the manifest)."""
    planned = backup.plan(network)
    folder = tmp_path / f"{network.name}-{STAMP}"
    for host, items in planned.items():
        (folder / host).mkdir(parents=True)
        index = []
        for item in items:
            data = f"{host}:{item.name}".encode() * 3
            name = item.name + SUFFIX[item.kind]
            (folder / host / name).write_bytes(data)
            index.append({"name": item.name, "kind": item.kind, "file": f"/x/{name}", "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest(), "seconds": 0.1})
        (folder / host / "files.json").write_text(json.dumps(index))
    manifest = backup.manifest(network, folder, planned, 2.0)
    (folder / backup.MANIFEST).write_text(json.dumps(manifest))
    return folder


def _edit(folder: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = folder / backup.MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _states(**status: str) -> dict[str, HostState]:
    """Every DC and data host holding its data, except the ones named (-> their status)."""
    names = [h.name for h in DOMAIN.hosts if h.name in ("dc1", "dc2", "fs1", "mx1", "db1")]
    return {n: HostState(n, status.get(n, HOLDS), "") for n in names}


def test_a_whole_backup_opens_with_what_the_spec_allows(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    assert set(found.files) == {"dc1", "fs1", "mx1", "db1"}
    share = found.file("fs1", "share-projects")
    assert share is not None and share.paths == ("/srv/projects",)
    item = share.module_item()
    assert item["file"] == "share-projects.tar.gz" and item["paths"] == ["/srv/projects"] and len(item["sha256"]) == 64
    assert found.file("db1", "db-ledger") is not None and found.file("db1", "db-ledger").database == "ledger"  # type: ignore[union-attr]
    assert found.created is not None and found.notes == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(network="other"), "backup of network 'other'"),
        (lambda m: m.update(realm="OTHER.TEST"), "realm 'OTHER.TEST'"),
        (lambda m: m.update(mode="workgroup"), "workgroup network"),
        (lambda m: m.update(version=99), "version 99"),
        (lambda m: m["hosts"]["fs1"].update(role="workstation"), "fs1: was a workstation"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(file="../../etc/shadow"), "not a file of the host's"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(file="dc1/domain.tar.bz2"), "not a file of the host's"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(file="/srv/x"), "not a file of the host's"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(size=1), "the manifest says 1"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(sha256="0" * 64), "altered or damaged"),
        (lambda m: m["hosts"]["fs1"]["items"][1].update(kind="pg_dump"), "share-projects is a pg_dump"),
    ],
)
def test_a_backup_that_is_not_this_networks_or_was_altered_is_refused(tmp_path: Path, change, message) -> None:  # type: ignore[no-untyped-def]
    folder = make_backup(tmp_path)
    _edit(folder, change)
    with pytest.raises(restore.BackupInvalid, match=message) as info:
        restore.open_backup(DOMAIN, folder)
    assert info.value.exit_code == 2


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    folder = make_backup(tmp_path)
    (folder / "mx1" / "mailboxes.tar.gz").write_bytes(b"changed")
    (folder / "db1" / "db-ledger.dump").unlink()
    _edit(folder, lambda m: m.update(network="other"))
    with pytest.raises(restore.BackupInvalid) as info:
        restore.open_backup(DOMAIN, folder)
    text = str(info.value)
    assert "network 'other'" in text and "mx1: mailboxes" in text and "db1: db-ledger" in text


def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    folder = make_backup(tmp_path)
    target = folder / "fs1" / "share-projects.tar.gz"
    (tmp_path / "elsewhere").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(restore.BackupInvalid, match=r"share-projects: .* is missing"):
        restore.open_backup(DOMAIN, folder)


def test_a_backup_without_manifest_is_not_a_backup(tmp_path: Path) -> None:
    folder = make_backup(tmp_path)
    (folder / backup.MANIFEST).unlink()
    with pytest.raises(restore.BackupInvalid, match="did not finish"):
        restore.open_backup(DOMAIN, folder)


def test_items_the_spec_no_longer_has_are_noted_not_restored(tmp_path: Path) -> None:
    folder = make_backup(tmp_path)
    fs1 = DOMAIN.host("fs1")
    smaller = replace(DOMAIN, hosts=tuple(replace(h, shares=h.shares[:1]) if h is fs1 else h for h in DOMAIN.hosts))
    found = restore.open_backup(smaller, folder)
    assert found.file("fs1", "share-common") is None
    assert any("share-common is in the backup, no longer in the spec" in n for n in found.notes)


@pytest.mark.parametrize(
    ("host", "output", "status"),
    [
        ("dc1", "sam DC=ad,DC=lab,DC=test\njoined no\npassdb no\n", HOLDS),
        ("dc1", "sam dc=AD,dc=lab,dc=test\n", HOLDS),
        ("dc1", "sam none\njoined no\n", LOST),
        ("dc1", "sam DC=other,DC=test\n", restore.FOREIGN),
        ("fs1", "sam none\njoined yes\npassdb no\n", HOLDS),
        ("fs1", "sam none\njoined no\npassdb yes\n", LOST),
        ("ws1", "", HOLDS),
    ],
)
def test_the_probe_output_says_what_a_host_holds(host: str, output: str, status: str) -> None:
    assert restore.judge(DOMAIN, DOMAIN.host(host), output).status == status


def test_the_probe_runs_posix_sh_as_root_with_the_domain_quoted() -> None:
    script = restore.probe_script(DOMAIN)
    assert "sudo -n sh -c" in script and "DOMAIN=" in script
    out = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    if shutil.which("sh"):
        # Run for real here: this machine holds no domain, so every answer is "lost".
        here = subprocess.run(["sh", "-c", restore.PROBE], capture_output=True, text=True, check=False,
                              env={"DOMAIN": "LAB", "PATH": "/usr/bin:/bin"})
        facts = dict(line.split(" ", 1) for line in here.stdout.splitlines())
        assert facts["joined"] in ("yes", "no") and "sam" in facts and "passdb" in facts


def test_nothing_lost_means_nothing_to_do(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    plan = restore.decide(DOMAIN, found, _states())
    assert not plan.anything and not plan.rolls_back and plan.phase_vars(restore.PHASE_FILES) == {}


def test_every_dc_lost_restores_the_domain_on_the_first_and_the_others_join(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    plan = restore.decide(DOMAIN, found, _states(dc1=LOST, dc2=LOST, fs1=LOST))
    assert plan.rolls_back and plan.join_source is None
    steps = {s.host: s for s in plan.steps}
    assert steps["dc1"].domain is not None and "restored from the backup" in steps["dc1"].action
    assert steps["dc2"].domain is None and "joins dc1" in steps["dc2"].action
    assert [f.name for f in steps["fs1"].files] == ["join-state", "share-projects", "share-common"]
    assert "no rejoin" in steps["fs1"].action
    assert steps["mx1"].action == "untouched" and steps["ws1"].action.startswith("untouched")
    files = plan.phase_vars(restore.PHASE_FILES)
    assert set(files) == {"dc1", "fs1"}
    assert files["dc1"]["domain"]["server_name"] == "dc1"
    assert files["dc1"]["sources"] == [str(found.folder / "dc1" / "domain.tar.bz2")]
    assert [i["name"] for i in files["fs1"]["files"]] == ["join-state", "share-projects", "share-common"]
    assert files["fs1"]["files"][0]["paths"] == ["/var/lib/samba", "/etc/krb5.keytab"]
    assert plan.phase_vars(restore.PHASE_DATABASES) == {}
    text = restore.plan_text(found, plan)
    assert "goes back to 2026-12-06 12:00 UTC" in text and "then the spec is applied" in text


def test_a_lost_first_dc_rejoins_a_survivor_with_no_rollback(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    plan = restore.decide(DOMAIN, found, _states(dc1=LOST))
    assert not plan.rolls_back and plan.join_source == "dc2"
    files = plan.phase_vars(restore.PHASE_FILES)
    assert files == {"dc2": {"remove_dcs": ["DC1"], "sources": []}}


def test_a_lost_second_dc_rejoins_the_first(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    plan = restore.decide(DOMAIN, found, _states(dc2=LOST))
    assert plan.join_source is None and not plan.rolls_back
    assert plan.phase_vars(restore.PHASE_FILES) == {"dc1": {"remove_dcs": ["DC2"], "sources": []}}


def test_a_lost_database_server_gets_its_databases_after_the_apply(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    plan = restore.decide(DOMAIN, found, _states(db1=LOST))
    before = plan.phase_vars(restore.PHASE_FILES)["db1"]
    after = plan.phase_vars(restore.PHASE_DATABASES)["db1"]
    assert [i["name"] for i in before["files"]] == ["join-state"]
    assert [i["name"] for i in after["files"]] == ["pg-globals", "db-projects", "db-ledger"]
    assert after["files"][2]["database"] == "ledger" and "paths" not in after["files"][2]


def test_a_foreign_domain_on_a_dc_stops_the_restore(tmp_path: Path) -> None:
    found = restore.open_backup(DOMAIN, make_backup(tmp_path))
    states = _states()
    states["dc2"] = HostState("dc2", restore.FOREIGN, "holds DC=x: left alone")
    with pytest.raises(restore.RestoreError, match="dc2: holds DC=x"):
        restore.decide(DOMAIN, found, states)


def _lost_peer1(found: restore.Backup) -> restore.Plan:
    states = {n: HostState(n, HOLDS, "") for n in found.files}
    states["peer1"] = HostState("peer1", LOST, "")
    return restore.decide(WORKGROUP, found, states)


def test_a_lost_peer_gets_its_accounts_first_then_its_password_database_and_shares(tmp_path: Path) -> None:
    found = restore.open_backup(WORKGROUP, make_backup(tmp_path, WORKGROUP))
    plan = _lost_peer1(found)
    files = plan.phase_vars(restore.PHASE_FILES)["peer1"]["files"]
    assert [i["name"] for i in files] == ["accounts", "passdb", "workgroup-state", "share-projects", "share-handbook"]
    assert set(plan.phase_vars(restore.PHASE_FILES)) == {"peer1"}
    # The names the spec lets the host make; the numbers are the file's.
    assert files[0] == {"name": "accounts", "kind": "accounts", "file": "accounts.json",
                        "sha256": found.file("peer1", "accounts").sha256,  # type: ignore[union-attr]
                        "users": ["alice", "bob", "carol"], "groups": ["alice", "bob", "carol", "finance", "staff"]}
    assert not any("numbers" in n for n in plan.notes)


def test_a_peers_accounts_go_first_whatever_order_the_manifest_has(tmp_path: Path) -> None:
    folder = make_backup(tmp_path, WORKGROUP)
    _edit(folder, lambda m: m["hosts"]["peer1"]["items"].reverse())
    plan = _lost_peer1(restore.open_backup(WORKGROUP, folder))
    assert [i["name"] for i in plan.phase_vars(restore.PHASE_FILES)["peer1"]["files"]] == [
        "accounts", "share-handbook", "share-projects", "workgroup-state", "passdb"]


def test_a_backup_without_the_accounts_of_a_lost_peer_warns_about_the_owners(tmp_path: Path) -> None:
    folder = make_backup(tmp_path, WORKGROUP)
    _edit(folder, lambda m: m["hosts"]["peer1"].update(items=m["hosts"]["peer1"]["items"][1:]))
    found = restore.open_backup(WORKGROUP, folder)
    assert "peer1: accounts is not in the backup (new since?); nothing to put back" in found.notes
    plan = _lost_peer1(found)
    assert [i["name"] for i in plan.phase_vars(restore.PHASE_FILES)["peer1"]["files"]] == [
        "passdb", "workgroup-state", "share-projects", "share-handbook"]
    assert any(n.startswith("peer1: the backup holds no numbers of its local accounts") for n in plan.notes)


def test_cli_refuses_a_damaged_backup_before_contacting_anything(tmp_path: Path) -> None:
    folder = make_backup(tmp_path)
    (folder / "fs1" / "share-projects.tar.gz").write_bytes(b"damaged")
    result = CliRunner().invoke(cli, ["restore", str(SPEC), "--from", str(folder), "--plan-only"])
    assert result.exit_code == 2, result.output
    assert "share-projects" in result.output and "preflight" not in result.output
    assert "Traceback" not in result.output
