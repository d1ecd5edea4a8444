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
