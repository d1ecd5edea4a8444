"""Workgroup mode on real Debian 12 hosts of the lab, checked with real clients.

One lab for the module: apply lab-workgroup.yml, then prove access with
smbclient from the peers themselves, idempotency, verify, drift after breaking
a host by hand, repair, and convergence after a spec change.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import smb2client
from click.testing import CliRunner

from provision import spec
from provision.cli import cli

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "inventories" / "lab-workgroup.yml"
PASSWORDS = {"alice": "Alice-Lab-Pw-2026", "bob": "Bob-Lab-Pw-2026", "carol": "Carol-Lab-Pw-2026"}
ENV = {f"LAB_{u.upper()}_PW": pw for u, pw in PASSWORDS.items()}


def provision(*args: str) -> tuple[int, str]:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def applied(lab_factory, tmp_path_factory) -> Iterator[dict[str, str]]:
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    state = tmp_path_factory.mktemp("state")
    os.environ["XDG_STATE_HOME"] = str(state)
    try:
        net = spec.load_network(SPEC)
        lab_factory(net.hosts)
        report = state / "first.json"
        code, out = provision("apply", str(SPEC), "--report-json", str(report))
        assert code == 0, out
        yield {h.name: h.address for h in net.hosts}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def smb(lab_ssh, from_addr: str, target: str, share: str, user: str | None, command: str,
        extra: str = "") -> tuple[int, str]:
    """smbclient on a peer against another peer; the password goes in through PASSWD, not argv."""
    if user is None:
        auth = "-N"
        env = ""
    else:
        auth = f"-U {user}"
        env = f"PASSWD={shlex.quote(PASSWORDS[user])} "
    cmd = f"{env}smbclient //{target}/{share} {auth} {extra} -t 10 -c {shlex.quote(command)}"
    res = lab_ssh.run(from_addr, cmd)
    return res.returncode, res.stdout + res.stderr


def can_read(lab_ssh, src, target, share, user) -> bool:
    return smb(lab_ssh, src, target, share, user, "ls")[0] == 0


def can_write(lab_ssh, src, target, share, user) -> bool:
    name = f"w-{user}-{src.rsplit('.', 1)[-1]}"
    code, out = smb(lab_ssh, src, target, share, user, f"put /etc/hostname {name}; del {name}")
    return code == 0 and "NT_STATUS" not in out


def test_access_is_exactly_what_the_spec_says(applied, lab_ssh) -> None:
    a = applied
    for src in a.values():  # from every peer
        # peer1/projects: group staff (alice, bob) read-write; carol refused
        assert can_write(lab_ssh, src, "peer1", "projects", "alice")
        assert can_write(lab_ssh, src, "peer1", "projects", "bob")
        assert not can_read(lab_ssh, src, "peer1", "projects", "carol")
    src = a["peer2"]
    # peer1/handbook: read only for alice, bob, carol; alice is on the write list
    assert can_read(lab_ssh, src, "peer1", "handbook", "carol")
    assert not can_write(lab_ssh, src, "peer1", "handbook", "bob")
    assert can_write(lab_ssh, src, "peer1", "handbook", "alice")
    # peer2/finance: group finance (bob) only
    assert can_write(lab_ssh, a["peer1"], "peer2", "finance", "bob")
    assert not can_read(lab_ssh, a["peer1"], "peer2", "finance", "alice")
    # peer3/scratch: carol only; peer3 shares homes too
    assert can_write(lab_ssh, a["peer1"], "peer3", "scratch", "carol")
    assert not can_read(lab_ssh, a["peer1"], "peer3", "scratch", "alice")
    assert can_write(lab_ssh, a["peer1"], "peer3", "alice", "alice")  # [homes]


def test_anonymous_guest_and_smb1_are_refused(applied, lab_ssh) -> None:
    src = applied["peer3"]
    for target in ("peer1", "peer2"):
        res = lab_ssh.run(src, f"smbclient -N -L //{target} -t 10")
        assert res.returncode != 0, res.stdout
        assert smb(lab_ssh, src, target, "IPC$", None, "ls")[0] != 0
        code, out = smb(lab_ssh, src, target, "projects" if target == "peer1" else "finance", "alice", "ls",
                        extra="-m NT1")
        assert code != 0, out


# --------------------------------------------------------------------------- real SMB2/3 clients


@pytest.mark.parametrize("behaviour", sorted(smb2client.BEHAVIOURS))
@pytest.mark.parametrize(("peer", "share"), [("peer1", "projects"), ("peer1", "handbook")])
def test_windows_and_macos_clients_get_what_a_default_share_gives(applied, behaviour, peer, share) -> None:
    """As an allowed writer (alice): full-access opens, locks, leases, durable handles, streams."""
    smb2client.BEHAVIOURS[behaviour](applied[peer], share, "alice", PASSWORDS["alice"])


def test_smb2_clients_still_get_only_what_the_spec_says(applied) -> None:
    peer1 = applied["peer1"]
    # carol is not in staff: refused at the door of [projects].
    assert smb2client.connect_status(peer1, "projects", "carol", PASSWORDS["carol"]) == smb2client.STATUS_ACCESS_DENIED
    # bob may read [handbook] but not write (only alice is on its write list).
    assert smb2client.connect_status(peer1, "handbook", "bob", PASSWORDS["bob"]) == 0
    assert smb2client.create_status(peer1, "handbook", "bob", PASSWORDS["bob"]) == smb2client.STATUS_ACCESS_DENIED
    assert smb2client.create_status(peer1, "handbook", "alice", PASSWORDS["alice"]) == 0


def test_second_apply_changes_nothing(applied, tmp_path) -> None:
    report = tmp_path / "second.json"
    arts = tmp_path / "artifacts"
    code, out = provision("apply", str(SPEC), "--skip-preflight", "--report-json", str(report),
                          "--keep-artifacts", str(arts))
    assert code == 0, out
    # The converged probe gets the wanted Samba passwords on stdin: none may reach the
    # events, the artifacts or the output.
    files = [p for p in arts.rglob("*") if p.is_file()]
    assert files
    for pw in PASSWORDS.values():
        assert pw not in out
        assert not [p for p in files if pw in p.read_text(errors="replace")]
    data = json.loads(report.read_text())
    changed = {h: s["changed"] for h, s in data["hosts"].items()}
    assert changed == {"peer1": 0, "peer2": 0, "peer3": 0}, [o for o in data["outcomes"] if o["status"] == "changed"]


BASE_APT_TASK = "Install the base packages (and those of the roles that follow)"


def test_only_a_host_that_lost_a_package_runs_apt(applied, lab_ssh, tmp_path) -> None:
    """The probe tells which packages a host has, and its name: peer1, which lost chrony, runs
    apt and gets it back from the lab's repository; peer2 and peer3, whose base role runs for
    other reasons (a hosts file and the running host name changed by hand; /etc/hostname), have
    them all and run no apt, not even a cache update. The apply after that changes nothing."""
    peer1, peer2, peer3 = applied["peer1"], applied["peer2"], applied["peer3"]
    res = lab_ssh.run(peer1, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q chrony")
    assert res.returncode == 0, res.stdout + res.stderr
    assert lab_ssh.run(peer2, "echo '10.231.9.9 by-hand' >> /etc/hosts && hostname by-hand").returncode == 0
    assert lab_ssh.run(peer3, "echo by-hand > /etc/hostname").returncode == 0
    arts = tmp_path / "artifacts"
    code, out = provision("apply", str(SPEC), "--skip-preflight", "--keep-artifacts", str(arts))
    assert code == 0, out
    status = lab_ssh.run(peer1, "dpkg-query -W -f '${db:Status-Abbrev}' chrony")
    assert status.stdout == "ii ", status.stdout + status.stderr
    assert "by-hand" not in lab_ssh.run(peer2, "cat /etc/hosts").stdout
    assert lab_ssh.run(peer3, "cat /etc/hostname").stdout == "peer3\n"
    ran: dict[tuple[str, str], tuple[str, bool]] = {}
    for path in arts.rglob("job_events/*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if event["event"] in ("runner_on_ok", "runner_on_skipped"):
            ran[data["task"], data["host"]] = (event["event"], bool((data.get("res") or {}).get("changed")))
    skipped = ("runner_on_skipped", False)
    apt = {h: r for (task, h), r in ran.items() if task == BASE_APT_TASK}
    assert apt == {"peer1": ("runner_on_ok", True), "peer2": skipped, "peer3": skipped}, apt
    # peer2's running name is set back; peer3's was right all along: its file is written back,
    # its running name left alone (ansible.builtin.hostname took the wrong file's name there).
    name = {h: r for (task, h), r in ran.items() if task == "Set the running host name"}
    assert name == {"peer1": skipped, "peer2": ("runner_on_ok", True), "peer3": skipped}, name
    assert [lab_ssh.run(a, "hostname").stdout for a in (peer2, peer3)] == ["peer2\n", "peer3\n"]
    report = tmp_path / "again.json"
    code, out = provision("apply", str(SPEC), "--skip-preflight", "--report-json", str(report))
    assert code == 0, out
    data = json.loads(report.read_text())
    changed = {h: s["changed"] for h, s in data["hosts"].items()}
    assert changed == {"peer1": 0, "peer2": 0, "peer3": 0}, [o for o in data["outcomes"] if o["status"] == "changed"]


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def skew_clock(lab_ssh, address: str, offset: str | None) -> None:
    """Skew one lab host's clock as everything run over SSH there sees it (offset None: undo).

    Lab hosts are containers on one kernel: CLOCK_REALTIME is not namespaced (time
    namespaces only offset the monotonic and boot clocks), so setting one host's
    clock would set them all, the controller's included. Instead libfaketime (the
    controller's Debian package) is preloaded into every SSH session of that one
    host through /etc/environment (pam_env): the commands verify runs there read a
    clock `offset` off. (Preloading it into sshd itself breaks sshd's sandbox.) A
    real host skews for real and chrony's makestep repairs it; an apply cannot
    repair a preloaded fake, so the test undoes it.
    """
    if offset is None:
        res = lab_ssh.run(address, "sed -i '/^LD_PRELOAD=/d; /^FAKETIME=/d' /etc/environment")
    else:
        blob = base64.b64encode(FAKETIME.read_bytes()).decode()
        res = lab_ssh.run(
            address,
            "base64 -d > /usr/local/lib/libfaketime.so.1 && "
            "printf 'LD_PRELOAD=/usr/local/lib/libfaketime.so.1\\nFAKETIME=%s\\n' "
            f"{shlex.quote(offset)} >> /etc/environment",
            stdin=blob,
        )
    assert res.returncode == 0, res.stderr


def test_verify_passes_then_names_exactly_what_was_broken(applied, lab_ssh, tmp_path) -> None:
    if not FAKETIME.exists():
        pytest.skip(f"{FAKETIME} missing: apt-get install libfaketime (make deps does)")
    code, out = provision("verify", str(SPEC))
    assert code == 0, out

    peer2 = applied["peer2"]
    breakage = " && ".join([
        "systemctl stop smbd",
        "chmod 0777 /srv/finance",
        "pdbedit -x -u bob >/dev/null && userdel bob",
        "nft add rule inet provision input tcp dport 8080 accept",
        # A section made by hand (or injected): served, but not in the spec.
        "printf '[backdoor]\\n  path = /etc\\n  read only = no\\n' >> /etc/samba/smb.conf",
    ])
    res = lab_ssh.run(peer2, breakage)
    assert res.returncode == 0, res.stderr
    skew_clock(lab_ssh, peer2, "+10m")
    skewed = lab_ssh.run(peer2, "date +%s")
    assert abs(int(skewed.stdout) - time.time() - 600) < 60, skewed.stdout
    report = tmp_path / "verify.json"
    code, out = provision("verify", str(SPEC), "--report-json", str(report), "--junit", str(tmp_path / "v.xml"))
    assert code == 6, out
    failed = {(c["host"], c["name"]) for c in json.loads(report.read_text())["checks"] if c["status"] == "fail"}
    assert failed == {
        ("peer2", "smbd"), ("peer2", "share finance"), ("peer2", "user bob"), ("peer2", "firewall"),
        ("peer2", "clock"), ("peer2", "no undeclared shares"),
    }, out
    assert "share [backdoor] (path /etc)" in out, out
    assert re.search(r"clock is off by \+(59\d|60\d) s", out), out

    drift_report = tmp_path / "drift.json"
    code, out = provision("drift", str(SPEC), "--limit", "peer2", "--report-json", str(drift_report))
    assert code == 6, out
    drift = json.loads(drift_report.read_text())
    assert drift["drifted"] is True
    changed_tasks = {o["task"] for o in drift["run"]["outcomes"] if o["status"] == "changed"}
    assert changed_tasks, out
    assert {o["host"] for o in drift["run"]["outcomes"] if o["status"] == "changed"} == {"peer2"}

    # The clock is the one thing an apply cannot put right here (see skew_clock).
    skew_clock(lab_ssh, peer2, None)
    code, out = provision("apply", str(SPEC), "--skip-preflight", "--limit", "peer2")
    assert code == 0, out
    code, out = provision("verify", str(SPEC))
    assert code == 0, out
    assert can_write(lab_ssh, applied["peer1"], "peer2", "finance", "bob")


def test_spec_change_converges(applied, lab_ssh, tmp_path) -> None:
    """Add a share, remove a user: the hosts follow the spec exactly, then back again."""
    import yaml

    data = yaml.safe_load(SPEC.read_text())
    data["users"] = [u for u in data["users"] if u["name"] != "carol"]
    for h in data["hosts"]:
        if h["name"] == "peer3":
            h["shares"] = [{"name": "drop", "path": "/srv/drop", "users": ["alice"]}]
        for s in h.get("shares", []):
            s["users"] = [u for u in s.get("users", []) if u != "carol"]
    changed = tmp_path / "changed.yml"
    changed.write_text(yaml.safe_dump(data))
    # The copy lives elsewhere: the lab's ssh settings must be absolute paths to still work.
    assert data["ssh"]["identity_file"].startswith("/") and data["ssh"]["known_hosts_file"].startswith("/")
    code, out = provision("apply", str(changed), "--skip-preflight")
    assert code == 0, out
    peer3 = applied["peer3"]
    assert lab_ssh.run(peer3, "getent passwd carol").returncode != 0
    assert lab_ssh.run(peer3, "pdbedit -L -u carol").returncode != 0
    assert lab_ssh.run(peer3, "testparm -s --section-name=scratch 2>/dev/null | grep -q path").returncode != 0
    assert lab_ssh.run(peer3, "test -d /srv/scratch").returncode == 0  # data is never deleted
    assert can_write(lab_ssh, applied["peer1"], "peer3", "drop", "alice")
    code, out = provision("verify", str(changed))
    assert code == 0, out
    # And back to the original spec.
    code, out = provision("apply", str(SPEC), "--skip-preflight")
    assert code == 0, out
    assert can_write(lab_ssh, applied["peer1"], "peer3", "scratch", "carol")


def _may_log_in(lab_ssh, address: str, user: str) -> bool:
    """A real PAM account check: root's su runs the account phase (pam_access) for the user."""
    return lab_ssh.run(address, f"su -s /bin/sh -c true {shlex.quote(user)}").returncode == 0


def test_login_and_sudo_policy_is_enforced_and_taken_back(applied, lab_ssh, tmp_path) -> None:
    """policies.access / policies.sudo on the peers' local users: su (PAM account phase)
    and sudo prove what the spec says; a second apply changes nothing; removing the
    section gives Debian's PAM and no sudoers file back."""
    import yaml

    data = yaml.safe_load(SPEC.read_text())
    data["policies"]["access"] = [
        {"users": ["bob"], "hosts": ["peer1"], "allow": False},
        {"groups": ["staff"], "roles": ["peer"]},
    ]
    data["policies"]["sudo"] = [
        {"users": ["alice"], "roles": ["all"]},
        {"users": ["bob"], "hosts": ["peer2"], "commands": ["/usr/bin/systemctl restart smbd"], "nopasswd": True},
    ]
    with_policy = tmp_path / "policy.yml"
    with_policy.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = provision("apply", str(with_policy), "--skip-preflight")
    assert code == 0, out
    peer1, peer2 = applied["peer1"], applied["peer2"]
    assert _may_log_in(lab_ssh, peer1, "alice")
    assert not _may_log_in(lab_ssh, peer1, "bob")  # refused by the first rule
    assert not _may_log_in(lab_ssh, peer1, "carol")  # no rule lets her in (not in staff)
    assert _may_log_in(lab_ssh, peer2, "bob")
    assert lab_ssh.run(peer1, "su -s /bin/sh -c true root").returncode == 0  # root always
    # sudo: alice may run anything (with her password), bob only his one command, without one.
    listed = lab_ssh.run(peer1, "sudo -l -U alice").stdout
    assert "(root) ALL" in listed, listed
    nopasswd = lab_ssh.run(peer2, "su -s /bin/sh -c 'sudo -n /usr/bin/systemctl restart smbd' bob")
    assert nopasswd.returncode == 0, nopasswd.stdout + nopasswd.stderr
    other = lab_ssh.run(peer2, "su -s /bin/sh -c 'sudo -n /usr/bin/id' bob")
    assert other.returncode != 0
    assert lab_ssh.run(peer2, "su -s /bin/sh -c 'sudo -n true' alice").returncode != 0  # asks her password
    report = tmp_path / "again.json"
    code, out = provision("apply", str(with_policy), "--skip-preflight", "--report-json", str(report))
    assert code == 0, out
    assert sum(h["changed"] for h in json.loads(report.read_text())["hosts"].values()) == 0
    # verify asks PAM and sudo the same questions on every peer, and names a peer whose
    # policy file was edited by hand; the next apply puts it back.
    code, out = provision("verify", str(with_policy))
    assert code == 0, out
    assert lab_ssh.run(peer1, "sed -i '/^-:bob:ALL$/d' /etc/security/provision-access.conf").returncode == 0
    assert _may_log_in(lab_ssh, peer1, "bob")
    verified = tmp_path / "verify.json"
    code, out = provision("verify", str(with_policy), "--report-json", str(verified))
    assert code == 6, out
    failed = [c for c in json.loads(verified.read_text())["checks"] if c["status"] == "fail"]
    assert [(c["host"], c["name"]) for c in failed] == [("peer1", "login and sudo policy")], failed
    assert "bob may log in" in failed[0]["detail"]
    code, out = provision("apply", str(with_policy), "--skip-preflight")
    assert code == 0, out
    assert not _may_log_in(lab_ssh, peer1, "bob")
    # provision policy test answers the same questions offline.
    code, out = provision("policy", "test", str(with_policy), "bob", "peer1")
    assert code == 1 and "policies.access[0]" in out
    # Back to the spec without a policy: PAM and sudoers as Debian has them.
    code, out = provision("apply", str(SPEC), "--skip-preflight")
    assert code == 0, out
    assert _may_log_in(lab_ssh, peer1, "bob") and _may_log_in(lab_ssh, peer1, "carol")
    left = lab_ssh.run(peer1, "grep -c pam_access /etc/pam.d/common-account; ls /etc/sudoers.d")
    assert left.stdout.split()[0] == "0" and "provision" not in left.stdout, left.stdout


def _plan(path: Path) -> dict:
    result = CliRunner().invoke(cli, ["plan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_lists_exactly_the_removals_and_apply_asks_before_them(applied, lab_ssh, smaller_workgroup) -> None:
    """The lab as applied, then a spec without user bob and share handbook: plan lists exactly
    those two removals; apply without a terminal refuses without --yes and changes nothing;
    apply --yes removes them (the share's files stay); back to the spec afterwards."""
    code, out = provision("apply", str(SPEC), "--skip-preflight")  # the record plan compares with
    assert code == 0, out
    assert _plan(SPEC)["changes"] == []
    smaller = smaller_workgroup
    planned = _plan(smaller)
    assert [(c["action"], c["kind"], c["name"], c["host"]) for c in planned["changes"]] == [
        ("remove", "user", "bob", None),
        ("remove", "share", "\\\\peer1\\handbook", "peer1"),
    ], planned["changes"]
    assert planned["summary"] == {"add": 0, "change": 0, "remove": 2}
    text = CliRunner().invoke(cli, ["plan", str(smaller)]).output
    assert "Plan: 0 to add, 0 to change, 2 to remove." in text and "REMOVE user bob" in text
    peer1 = applied["peer1"]
    assert lab_ssh.run(peer1, "echo kept > /srv/handbook/kept.txt").returncode == 0
    # No terminal and no --yes: refused before any host is contacted, nothing changed.
    refused = CliRunner().invoke(cli, ["apply", str(smaller), "--skip-preflight"])
    assert refused.exit_code == 5, refused.output
    assert "--yes" in refused.output and "REMOVE share \\\\peer1\\handbook" in refused.output
    assert lab_ssh.run(peer1, "getent passwd bob").returncode == 0
    code, out = provision("apply", str(smaller), "--skip-preflight", "--yes")
    assert code == 0, out
    for address in applied.values():
        assert lab_ssh.run(address, "pdbedit -L -u bob").returncode != 0
    assert lab_ssh.run(peer1, "testparm -s --section-name=handbook 2>/dev/null | grep -q path").returncode != 0
    assert lab_ssh.run(peer1, "cat /srv/handbook/kept.txt").stdout.strip() == "kept"  # data is never deleted
    assert _plan(smaller)["changes"] == []
    # Back to the lab's spec: bob and the share come back (additions need no confirmation).
    code, out = provision("apply", str(SPEC), "--skip-preflight")
    assert code == 0, out
    assert can_write(lab_ssh, applied["peer2"], "peer1", "handbook", "alice")
    assert _plan(SPEC)["changes"] == []


def test_the_anchor_lock_refuses_a_second_controller_and_breaks_only_a_dead_one(applied, lab_ssh) -> None:
    """A record on peer1 (the workgroup's anchor) of a run on another controller: live, it
    blocks apply (exit 3, naming it) and --force-unlock refuses it; stale (no heartbeat for
    10 minutes), apply names it stale and --force-unlock breaks it; the run then releases its own."""
    from dataclasses import replace

    from provision import lock

    peer1 = applied["peer1"]
    other = replace(lock.Holder.mine("labwg", "apply --limit peer2"), host="ctl-elsewhere", pid=4242, boot_id="b")
    path = "/run/provision-lock/labwg.lock"
    write = f"mkdir -p -m 700 /run/provision-lock && cat > {path} && chmod 600 {path}"
    assert lab_ssh.run(peer1, write, stdin=other.to_json() + "\n").returncode == 0
    try:
        code, out = provision("apply", str(SPEC), "--skip-preflight")
        assert code == 3, out
        assert "locked on peer1" in out and "ctl-elsewhere" in out and "apply --limit peer2" in out
        code, out = provision("apply", str(SPEC), "--skip-preflight", "--force-unlock")
        assert code == 3 and "--force-unlock refused" in out and "alive" in out, out
        assert lab_ssh.run(peer1, f"touch -d '10 minutes ago' {path}").returncode == 0
        code, out = provision("apply", str(SPEC), "--skip-preflight")
        assert code == 3 and "stale" in out and "--force-unlock" in out, out
        code, out = provision("apply", str(SPEC), "--skip-preflight", "--force-unlock")
        assert code == 0, out
        assert "broke the lock of 'labwg' on peer1" in out
        assert lab_ssh.run(peer1, f"test -e {path}").returncode != 0  # released at the end
    finally:
        lab_ssh.run(peer1, f"rm -f {path}")


def test_a_lost_peer_comes_back_with_its_account_numbers_passwords_and_files(applied, lab_ssh, lab_factory,
                                                                             tmp_path) -> None:
    """peer3 (carol's scratch share and everyone's home) after a user joined the spec later: aaron
    sorts first but got the next free number, so an apply on an empty machine would number the
    accounts differently. Backed up, replaced by an empty machine (lab wipe), restored: every
    account keeps its number, carol's file is hers, her password works, and aaron's home is his."""
    import yaml

    data = yaml.safe_load(SPEC.read_text())
    data["users"].append({"name": "aaron", "full_name": "Aaron Late", "password": {"env": "LAB_AARON_PW"}})
    grown = tmp_path / "with-aaron.yml"
    grown.write_text(yaml.safe_dump(data, sort_keys=False))
    os.environ["LAB_AARON_PW"] = "Aaron-Lab-Pw-2026"
    peer3 = applied["peer3"]
    try:
        code, out = provision("apply", str(grown), "--skip-preflight", "--limit", "peer3")
        assert code == 0, out
        code, out = smb(lab_ssh, applied["peer1"], peer3, "scratch", "carol", "put /etc/hostname carol.txt")
        assert code == 0 and "NT_STATUS" not in out, out
        ids = "for u in alice bob carol aaron; do id -u $u; done; stat -c %U:%u /srv/scratch/carol.txt /home/aaron"
        before = lab_ssh.run(peer3, ids).stdout
        assert "carol:" in before and before.split()[3] != "1000", before  # aaron is not the first number
        code, out = provision("backup", str(grown), "-o", str(tmp_path / "backups"), "--limit", "peer3")
        assert code == 0, out
        folder = next((tmp_path / "backups").glob("labwg-*"))
        code, out = provision("lab", "wipe", "peer3")
        assert code == 0, out
        lab_factory(spec.load_network(SPEC).hosts)
        assert lab_ssh.run(peer3, "id -u aaron").returncode != 0
        code, out = provision("restore", str(grown), "--from", str(folder), "--yes")
        assert code == 0, out
        assert "peer3" in out and "put back: accounts" in out, out
        assert lab_ssh.run(peer3, ids).stdout == before
        code, out = smb(lab_ssh, applied["peer1"], peer3, "scratch", "carol", "get carol.txt /dev/null")
        assert code == 0 and "NT_STATUS" not in out, out
    finally:
        os.environ.pop("LAB_AARON_PW", None)


# --------------------------------------------------------------------------- the workgroup grows into a domain

GROWN_REALM = "AD.LABWG.TEST"
# (peer, share, file, the user who writes it); carol's scratch and alice's home are on peer3.
MIGRATED_FILES = (
    ("peer1", "projects", "m-alice.txt", "alice"),
    ("peer1", "handbook", "m-hand.txt", "alice"),
    ("peer2", "finance", "m-bob.txt", "bob"),
    ("peer3", "scratch", "m-carol.txt", "carol"),
    ("peer3", "alice", "m-home.txt", "alice"),
)
BOB_NEWER = "Bob-Newer-Pw-2026"  # set on peer2 only, after the others: the newest wins
# What the migration test saw before migrating, for the rollback test after it.
BEFORE_MIGRATION: dict[str, object] = {}
IDS = "for u in alice bob carol; do id -u $u; done; stat -c %U:%u:%g /srv/scratch/m-carol.txt /home/alice/m-home.txt"


def _access(lab_ssh, src: str, user: str, password: str, *, kerberos: bool,
            server: str | None = None) -> dict[tuple[str, str, str], str]:
    """What ``user`` may do to each migrated file over SMB, from ``src``: (peer, share, op) -> ok/no;
    asked of ``server`` when the peers' shares moved there."""
    lines = []
    for peer, share, name, _ in MIGRATED_FILES:
        target = f"{server or peer}.{GROWN_REALM.lower()}" if kerberos else peer
        auth = "--use-kerberos=required" if kerberos else f"-U {user}"
        probe = f"w-{user}"
        for op, command in (("read", f"get {name} /dev/null"), ("write", f"put /etc/hostname {probe}; del {probe}")):
            lines.append(
                f"out=$(smbclient //{target}/{share} {auth} -t 10 -c {shlex.quote(command)} 2>&1); "
                f"if [ $? = 0 ] && ! printf %s \"$out\" | grep -q NT_STATUS; then r=ok; else r=no; fi; "
                f"echo {peer} {share} {op} $r"
            )
    if kerberos:
        head = (f"export KRB5CCNAME=FILE:/tmp/krb5cc_m_{user}; kinit {user}@{GROWN_REALM} >/dev/null "
                f"<<< {shlex.quote(password)} || exit 90; ")
        script, env = head + "\n".join(lines) + "\nkdestroy", ""
    else:
        script, env = "\n".join(lines), f"export PASSWD={shlex.quote(password)}\n"
    res = lab_ssh.run(src, "bash -c " + shlex.quote(env + script))
    assert res.returncode == 0, res.stdout + res.stderr
    return {tuple(line.split()[:3]): line.split()[3] for line in res.stdout.splitlines() if line.count(" ") == 3}


def _kinit_ok(lab_ssh, address: str, user: str, password: str) -> bool:
    cc = f"FILE:/tmp/krb5cc_k_{user}"
    script = (f"KRB5CCNAME={cc} kinit {user}@{GROWN_REALM} >/dev/null && KRB5CCNAME={cc} klist >/dev/null; "
              f"r=$?; kdestroy -c {cc} 2>/dev/null; exit $r")
    return lab_ssh.run(address, script, stdin=password + "\n").returncode == 0


def _verified_and_converged(path: Path, tmp_path: Path) -> None:
    """provision verify passes, and another apply changes nothing on any host."""
    code, out = provision("verify", str(path))
    assert code == 0, out[-4000:]
    report = tmp_path / "again.json"
    code, out = provision("apply", str(path), "--skip-preflight", "--report-json", str(report))
    assert code == 0, out[-4000:]
    data = json.loads(report.read_text())
    assert {h: s["changed"] for h, s in data["hosts"].items()} == dict.fromkeys(data["hosts"], 0), [
        (o["host"], o["task"]) for o in data["outcomes"] if o["status"] == "changed"]


@pytest.fixture(scope="module")
def grown_spec(tmp_path_factory) -> Path:
    """lab-workgroup.yml grown into a domain with two new DCs, as `provision grow` writes it."""
    grown = tmp_path_factory.mktemp("grown") / "grown.yml"
    code, out = provision("grow", str(SPEC), "--to", "domain", "--realm", GROWN_REALM,
                          "--dc", "dc1=10.231.0.21", "--dc", "dc2=10.231.0.22", "-o", str(grown))
    assert code == 0, out
    return grown


SPEC_PASSWORDS = {"LAB_ALICE_PW": "Spec-Alice-2026x", "LAB_BOB_PW": "Spec-Bob-2026xy",
                  "LAB_CAROL_PW": "Spec-Carol-2026z", "DOMAIN_ADMIN_PASSWORD": "Lab-Admin-Pw-2026!"}


def test_the_workgroup_grows_into_a_domain_keeping_every_password_file_and_permission(applied, lab_ssh, lab_factory,
                                                                                       grown_spec, tmp_path,
                                                                                       monkeypatch) -> None:
    """The issue's proof: lab-workgroup.yml, files written as its users, then `provision grow` with two
    new DCs and `apply --from-workgroup`. Every user gets a ticket with the password the workgroup had
    (bob's newest, set on one peer only; the domain spec's own passwords are other ones and do not
    work), each file is readable and writable by exactly the users who could before, now over
    Kerberos, owners are the domain's users, verify passes, a second apply changes nothing, and a
    second migration run finds nothing left to do."""
    code, out = provision("apply", str(SPEC), "--skip-preflight")  # the spec again (the tests before changed it)
    assert code == 0, out
    peers = applied
    for peer, share, name, user in MIGRATED_FILES:
        code, out = smb(lab_ssh, peers["peer1"], peer, share, user, f"put /etc/hostname {name}")
        assert code == 0 and "NT_STATUS" not in out, (peer, share, out)
    before = {u: _access(lab_ssh, peers["peer1"], u, PASSWORDS[u], kerberos=False) for u in PASSWORDS}
    assert before["carol"][("peer1", "projects", "read")] == "no"
    assert before["bob"][("peer2", "finance", "write")] == "ok"
    # bob changes his password on peer2 only, after the others were set.
    time.sleep(1)
    res = lab_ssh.run(peers["peer2"], "smbpasswd -s bob", stdin=f"{BOB_NEWER}\n{BOB_NEWER}\n")
    assert res.returncode == 0, res.stdout + res.stderr
    owners_before = lab_ssh.run(peers["peer3"], "stat -c %U /srv/scratch/m-carol.txt /home/alice/m-home.txt").stdout
    assert owners_before.split() == ["carol", "alice"]
    BEFORE_MIGRATION.update(access=before, ids=lab_ssh.run(peers["peer3"], IDS).stdout)

    grown = grown_spec
    domain = spec.load_network(grown)
    lab_factory(domain.hosts)
    # The domain spec's passwords are not the workgroup's: only a carried password can work.
    spec_pw = SPEC_PASSWORDS
    for k, v in spec_pw.items():
        monkeypatch.setenv(k, v)
    code, out = provision("apply", str(grown), "--skip-preflight")
    assert code == 2 and "was last applied as a workgroup" in out, out  # a plain apply is refused
    start = time.monotonic()
    report_path = tmp_path / "migration.json"
    code, out = provision("apply", str(grown), "--from-workgroup", str(SPEC), "--yes",
                          "--report-json", str(report_path))
    seconds = time.monotonic() - start
    assert code == 0, out[-6000:]
    print(f"\nmigration of the 3-peer lab into a domain with 2 new DCs: {seconds:.0f} s")
    assert "migration: done" in out, out[-3000:]
    result = json.loads(report_path.read_text())
    assert result["ok"] and Path(result["backup"]).is_dir(), result

    for user, password in PASSWORDS.items():
        newest = BOB_NEWER if user == "bob" else password
        assert _kinit_ok(lab_ssh, peers["peer1"], user, newest), user
        assert not _kinit_ok(lab_ssh, peers["peer1"], user, spec_pw[f"LAB_{user.upper()}_PW"]), user
    assert not _kinit_ok(lab_ssh, peers["peer1"], "bob", PASSWORDS["bob"])  # older than peer2's

    after = {u: _access(lab_ssh, peers["peer1"], u, BOB_NEWER if u == "bob" else PASSWORDS[u], kerberos=True)
             for u in PASSWORDS}
    assert after == before
    owners = lab_ssh.run(peers["peer3"], "stat -c %U:%u /srv/scratch/m-carol.txt /home/alice/m-home.txt; "
                                         "id -u carol; id -u alice").stdout.split()
    assert [o.split(":")[0].split("\\")[-1].lower() for o in owners[:2]] == ["carol", "alice"], owners
    assert owners[0].split(":")[1] == owners[2] and int(owners[2]) >= 10000, owners  # the domain's numbers
    # The local accounts are retired, not deleted: renamed, locked, expired, nologin, home kept.
    retired = lab_ssh.run(peers["peer1"], "grep -E '^wg-(alice|bob|carol):' /etc/passwd; "
                                          "grep -cE '^(alice|bob|carol):' /etc/passwd").stdout.splitlines()
    assert len(retired) == 4 and retired[-1] == "0", retired
    assert all(r.endswith(":/usr/sbin/nologin") for r in retired[:3]), retired

    _verified_and_converged(grown, tmp_path)
    code, out = provision("apply", str(grown), "--from-workgroup", str(SPEC), "--yes", "--skip-preflight")
    assert code == 0 and "owners: done before (resumed)" in out, out[-3000:]


def test_a_migration_rolls_back_to_the_working_workgroup(applied, lab_ssh, grown_spec, tmp_path,
                                                         monkeypatch) -> None:
    """After the migration above, `apply --from-workgroup --rollback`: the files go back to the local
    accounts, the peers leave the domain, the retired accounts get their names, shells and logins
    back, the workgroup spec is applied. Access with the workgroup's passwords, account numbers and
    owners are what they were before the migration; verify passes; the DCs are left alone."""
    if not BEFORE_MIGRATION:
        pytest.skip("the migration test did not get as far as migrating")
    monkeypatch.setenv("DOMAIN_ADMIN_PASSWORD", SPEC_PASSWORDS["DOMAIN_ADMIN_PASSWORD"])
    start = time.monotonic()
    code, out = provision("apply", str(grown_spec), "--from-workgroup", str(SPEC), "--rollback", "--yes")
    assert code == 0, out[-6000:]
    print(f"\nrollback of the 3-peer migration: {time.monotonic() - start:.0f} s")
    assert "rollback: done" in out, out[-3000:]
    peers = applied
    assert lab_ssh.run(peers["peer3"], IDS).stdout == BEFORE_MIGRATION["ids"]
    assert lab_ssh.run(peers["peer1"], "grep -c '^wg-' /etc/passwd").stdout.strip() == "0"
    # The workgroup applied again keeps its spec's passwords (bob's hand-set one on peer2 included).
    back = {u: _access(lab_ssh, peers["peer1"], u, PASSWORDS[u], kerberos=False) for u in PASSWORDS}
    assert back == BEFORE_MIGRATION["access"]
    _verified_and_converged(SPEC, tmp_path)
    BEFORE_MIGRATION["rolled_back"] = True


def test_shares_that_move_to_a_new_file_server_are_copied_with_their_access_and_owners(
        applied, lab_ssh, lab_factory, tmp_path, monkeypatch) -> None:
    """The same workgroup, back after the rollback, grown with `--file-server fs1=...`: every peer's
    shares and peer3's home folders are copied to the new file server at their paths while the
    peers become workstations. Each file is readable and writable there by exactly the users who
    could before (over Kerberos), its owner is the domain's user, the peers keep their copies, the
    file server verifies and a second apply changes nothing on it."""
    if not BEFORE_MIGRATION.get("rolled_back"):
        pytest.skip("the workgroup was not rolled back to its state before the migration")
    moved = tmp_path / "moved.yml"
    code, out = provision("grow", str(SPEC), "--to", "domain", "--realm", GROWN_REALM, "--dc", "dc1=10.231.0.21",
                          "--dc", "dc2=10.231.0.22", "--file-server", "fs1=10.231.0.25", "-o", str(moved))
    assert code == 0 and "fs1 -> new file server" in out, out
    domain = spec.load_network(moved)
    lab_factory(domain.hosts)
    for k, v in SPEC_PASSWORDS.items():
        monkeypatch.setenv(k, v)
    start = time.monotonic()
    report_path = tmp_path / "migration.json"
    code, out = provision("apply", str(moved), "--from-workgroup", str(SPEC), "--yes", "--skip-preflight",
                          "--report-json", str(report_path))
    assert code == 0, out[-6000:]
    phases = json.loads(report_path.read_text())["phase_seconds"]
    print(f"\nmigration with the shares copied to a new file server: {time.monotonic() - start:.0f} s {phases}")
    peers = applied
    fs1 = domain.host("fs1").address
    # The rollback's workgroup apply set the spec's passwords again: those are carried now.
    after = {u: _access(lab_ssh, peers["peer1"], u, PASSWORDS[u], kerberos=True, server="fs1") for u in PASSWORDS}
    assert after == BEFORE_MIGRATION["access"]
    owners = lab_ssh.run(fs1, "stat -c %U /srv/scratch/m-carol.txt /srv/finance/m-bob.txt "
                              "/home/alice/m-home.txt").stdout.split()
    assert [o.split("\\")[-1].lower() for o in owners] == ["carol", "bob", "alice"], owners
    # The peers keep their copies, still owned by the local (now retired) accounts' numbers.
    kept = lab_ssh.run(peers["peer3"], "stat -c %U /srv/scratch/m-carol.txt /home/alice/m-home.txt").stdout.split()
    assert kept == ["wg-carol", "wg-alice"], kept
    # peer2's printer (staff only) is now fs1's: a staff member prints there with a ticket, carol may not.
    for user, allowed in (("alice", True), ("carol", False)):
        script = (f"export KRB5CCNAME=FILE:/tmp/krb5cc_p_{user}; kinit {user}@{GROWN_REALM} >/dev/null "
                  f"<<< {shlex.quote(PASSWORDS[user])} && smbclient //fs1.{GROWN_REALM.lower()}/office-pdf "
                  "--use-kerberos=required -t 10 -c 'print /etc/hostname' 2>&1; kdestroy")
        res = lab_ssh.run(peers["peer1"], "bash -c " + shlex.quote(script))
        printed = "putting file /etc/hostname as" in res.stdout and "NT_STATUS" not in res.stdout
        assert printed is allowed, (user, res.stdout + res.stderr)
    code, out = provision("verify", str(moved), "--limit", "fs1")
    assert code == 0, out[-4000:]
    assert "printer office-pdf" in out, out[-4000:]
    report = tmp_path / "again.json"
    code, out = provision("apply", str(moved), "--skip-preflight", "--limit", "fs1", "--report-json", str(report))
    assert code == 0, out[-4000:]
    again = json.loads(report.read_text())
    assert again["hosts"]["fs1"]["changed"] == 0, [
        o["task"] for o in again["outcomes"] if o["status"] == "changed"]
