"""The Samba AD domain of inventories/lab-domain.yml, built and checked with real clients.

Two DCs (dc1 provisions, dc2 joins), a winbind file server (fs1) and two
workstations (ws1 sssd, ws2 winbind) on the lab network. The module brings the
lab up with fresh containers, runs ``provision apply`` once (timed: nothing to
a verified domain), then checks the result only with the tools an admin would
use: host, kinit, getent, id, wbinfo, smbclient -k, samba-tool, chronyc. The
last tests change the domain (a broken join repaired, a host unjoined, a host
removed from the spec), so they come last, in file order.

Secrets come from LAB_ADMIN_PW / LAB_ALICE_PW / LAB_BOB_PW (defaults below
satisfy the spec's policy) and reach the hosts only on stdin.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import smb2client
import yaml

from provision.lab import IDENTITY_FILE, KNOWN_HOSTS
from provision.spec import load_network

pytestmark = [
    pytest.mark.lab,
]

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "inventories" / "lab-domain.yml"
REALM = "AD.LAB.TEST"
DOMAIN = "ad.lab.test"
BASE = "DC=ad,DC=lab,DC=test"
SECRETS = {"LAB_ADMIN_PW": "Lab-Admin-Pw-2026!", "LAB_ALICE_PW": "Alice-Pw-2026!x", "LAB_BOB_PW": "Bob-Pw-2026!xy"}
DCS = {"dc1": "10.231.0.21", "dc2": "10.231.0.22"}
DOMAIN_WS = {"ws1": "10.231.0.31", "ws2": "10.231.0.32"}
TIMES: dict[str, float] = {}
# Hosts that get a second address before the first apply (like Vagrant's NAT interface).
NATTED = ("dc1", "dc2", "fs1", "ws1")


def _secrets() -> dict[str, str]:
    return {k: os.environ.get(k) or v for k, v in SECRETS.items()}


def run(address: str, command: str, *, stdin: str | None = None, timeout: float = 180,
        ) -> subprocess.CompletedProcess[str]:
    """A command on a lab host as root (key + strict known_hosts); secrets only on stdin."""
    argv = [
        "ssh", "-i", str(IDENTITY_FILE), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{address}", command,
    ]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


# A credential of the CI's own that has nothing to do with the spec: it must reach no artifact.
DECOY = {"PROVISION_TEST_DECOY_TOKEN": "decoy-" + os.urandom(8).hex()}


def provision(*args: str, timeout: float = 900, secrets: bool = True,
              ) -> tuple[subprocess.CompletedProcess[str], float]:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    env = {**os.environ, **(_secrets() if secrets else {}), **DECOY}
    if not secrets:
        for name in SECRETS:
            env.pop(name, None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "provision.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env, check=False)
    return proc, time.monotonic() - start


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def changed_hosts(rep: dict) -> dict[str, int]:
    return {h: s["changed"] for h, s in rep["hosts"].items() if s["changed"]}


@pytest.fixture(scope="module")
def network():
    return load_network(SPEC)


@pytest.fixture(scope="module")
def domain(lab_factory, network, tmp_path_factory):
    """The spec's hosts up (added beside other lab hosts under PROVISION_LAB_KEEP=1), then one apply.

    On fresh containers that apply builds the domain from nothing; on hosts that
    already hold it, it is a re-apply. The lab is never torn down here.
    """
    hosts = {h.name: h.address for h in network.hosts}
    start = time.monotonic()
    lab_factory(network.hosts)
    TIMES["lab up"] = time.monotonic() - start
    fresh = run(hosts["dc1"], "test -e /var/lib/samba/private/sam.ldb").returncode != 0
    if fresh:
        # A second address on some hosts, as Vagrant's NAT interface gives every machine: the
        # domain must publish only the spec address (Samba and DNS pinned to it).
        for name in NATTED:
            extra = "10.231.250." + hosts[name].rsplit(".", 1)[1]
            out = run(hosts[name], "dev=$(ip -o -4 addr show scope global | awk '{print $2; exit}') && "
                                   f"ip addr add {extra}/24 dev \"$dev\"")
            assert out.returncode == 0, out.stderr
    out = tmp_path_factory.mktemp("domain")
    # Preflight fails on a DC whose Samba already serves DNS (it holds port 53 as
    # "dns[master]"): only fresh hosts get it.
    skip = [] if fresh else ["--skip-preflight"]
    proc, seconds = provision("apply", str(SPEC), *skip, "--report-json", str(out / "first.json"),
                              "--keep-artifacts", str(out / "artifacts"))
    TIMES["first apply" + (" (fresh hosts)" if fresh else " (domain existed)")] = seconds
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return {"hosts": hosts, "dir": out, "start": start, "fresh": fresh, "first": report(out / "first.json"),
            "output": proc.stdout + proc.stderr}


def _verified(domain) -> None:
    key = "lab up + apply + verified" + (" (fresh hosts)" if domain["fresh"] else "")
    TIMES.setdefault(key, time.monotonic() - domain["start"])


# --------------------------------------------------------------------------- DNS, Kerberos, identities


def test_first_apply_succeeded_on_every_host(domain):
    rep = domain["first"]
    assert rep["ok"], rep
    assert set(rep["hosts"]) == set(domain["hosts"])
    assert not [h for h, s in rep["hosts"].items() if s["failed"] or s["unreachable"]]


@pytest.mark.parametrize("record", ["_ldap._tcp", "_kerberos._udp", "_kerberos._tcp", "_ldap._tcp.dc._msdcs"])
def test_srv_records_answer_from_both_dcs(domain, record):
    for dc, address in DCS.items():
        out = run(domain["hosts"]["ws1"], f"host -t SRV {record}.{DOMAIN} {address}")
        assert out.returncode == 0, (dc, out.stdout, out.stderr)
        targets = set(re.findall(r"has SRV record \d+ \d+ \d+ (\S+)\.$", out.stdout, re.M))
        assert targets == {f"dc1.{DOMAIN}", f"dc2.{DOMAIN}"}, (dc, out.stdout)


def test_every_host_has_a_and_ptr_records(domain):
    for name, address in domain["hosts"].items():
        fwd = run(domain["hosts"]["ws2"], f"host -t A {name}.{DOMAIN}")
        # Only the spec address, also on the hosts with a second one (NATTED).
        found = [line.rsplit(" ", 1)[-1] for line in fwd.stdout.splitlines() if " has address " in line]
        assert found == [address], fwd.stdout + fwd.stderr
        rev = run(domain["hosts"]["ws2"], f"host {address}")
        assert f"domain name pointer {name}.{DOMAIN}." in rev.stdout, rev.stdout + rev.stderr


@pytest.mark.parametrize("ws", ["ws1", "ws2"])
def test_kinit_of_a_spec_user_works_from_workstations(domain, ws):
    pw = _secrets()["LAB_ALICE_PW"]
    out = run(domain["hosts"][ws], f"KRB5CCNAME=FILE:/tmp/krb5cc_t_{ws} kinit alice@{REALM} >/dev/null "
                                   f"&& KRB5CCNAME=FILE:/tmp/krb5cc_t_{ws} klist; kdestroy -c /tmp/krb5cc_t_{ws}",
              stdin=pw + "\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Default principal: alice@{REALM}" in out.stdout
    wrong = run(domain["hosts"][ws], f"KRB5CCNAME=FILE:/tmp/krb5cc_w_{ws} kinit alice@{REALM}", stdin="not-it\n")
    assert wrong.returncode != 0


@pytest.mark.parametrize("ws", ["ws1", "ws2"])
def test_users_and_groups_resolve_on_workstations(domain, ws):
    address = domain["hosts"][ws]
    pw = run(address, "getent passwd alice")
    assert pw.returncode == 0 and pw.stdout.startswith("alice:"), pw.stdout + pw.stderr
    assert pw.stdout.rstrip().endswith(":/bin/bash")
    ident = run(address, "id alice; id bob")
    assert ident.returncode == 0, ident.stderr
    alice, bob = ident.stdout.splitlines()
    assert re.search(r"\bstaff\b", alice) and re.search(r"\bengineering\b", alice), alice
    assert re.search(r"\bstaff\b", bob) and not re.search(r"\bengineering\b", bob), bob
    # Domain groups, not Debian's local "staff" (gid 50).
    assert "(staff)" in alice and "50(staff)" not in alice
    _verified(domain)


def test_file_server_trusts_the_domain(domain):
    out = run(domain["hosts"]["fs1"], "wbinfo -t && wbinfo --ping-dc")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "succeeded" in out.stdout


# --------------------------------------------------------------------------- shares, as the spec says


def _smb(domain, user: str, share: str, commands: str) -> subprocess.CompletedProcess[str]:
    """smbclient -k from ws1 as ``user`` (kinit with the password on stdin)."""
    pw = _secrets()["LAB_ALICE_PW" if user == "alice" else "LAB_BOB_PW"]
    cc = f"FILE:/tmp/krb5cc_smb_{user}"
    script = (
        f"export KRB5CCNAME={cc}; kinit {user}@{REALM} >/dev/null || exit 90; "
        f"smbclient //fs1.{DOMAIN}/{share} --use-kerberos=required -c '{commands}'; rc=$?; kdestroy; exit $rc"
    )
    return run(domain["hosts"]["ws1"], script, stdin=pw + "\n")


@pytest.mark.parametrize(
    ("user", "share", "commands", "allowed"),
    [
        ("alice", "projects", "ls", True),
        ("alice", "projects", "put /etc/hostname t-alice; del t-alice", True),
        ("bob", "projects", "ls", False),
        ("alice", "common", "ls", True),
        ("bob", "common", "ls", True),
        ("alice", "common", "put /etc/hostname t-alice; del t-alice", True),
        ("bob", "common", "put /etc/hostname t-bob", False),
    ],
)
def test_share_access_is_exactly_the_spec(domain, user, share, commands, allowed):
    out = _smb(domain, user, share, commands)
    assert out.returncode != 90, "kinit failed: " + out.stderr
    text = out.stdout + out.stderr
    if allowed:
        assert out.returncode == 0 and "NT_STATUS" not in text, text
    else:
        assert re.search(r"NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED|NETWORK_ACCESS_DENIED)", text), text


def test_share_directories_carry_domain_acls(domain):
    dirs = "/srv/projects /srv/common"
    out = run(domain["hosts"]["fs1"], f"getfacl -p {dirs}; stat -c '%n %U %G %a' {dirs}")
    assert out.returncode == 0, out.stderr
    # winbind shows domain names without the domain (winbind use default domain).
    assert "/srv/projects root engineering 2770" in out.stdout, out.stdout
    assert "/srv/common root staff 2770" in out.stdout, out.stdout
    common = out.stdout.split("# file: /srv/common", 1)[1]
    assert "user:alice:rwx" in common and "group::r-x" in common and "other::---" in common, out.stdout
    gid = run(domain["hosts"]["fs1"], "stat -c %g /srv/common; getent group 'LAB\\staff' | cut -d: -f3").stdout.split()
    assert gid[0] == gid[1] != "50", gid  # the domain's staff, not Debian's local one


# --------------------------------------------------------------------------- real SMB2/3 clients, Windows ACLs


@pytest.mark.parametrize("behaviour", sorted(smb2client.BEHAVIOURS))
@pytest.mark.parametrize("share", ["projects", "common"])
def test_windows_and_macos_clients_get_what_a_default_share_gives(domain, behaviour, share):
    """As alice, who may write on both: full-access opens, locks, leases, durable handles, streams."""
    smb2client.BEHAVIOURS[behaviour](domain["hosts"]["fs1"], share, "LAB\\alice", _secrets()["LAB_ALICE_PW"])


def test_smb2_clients_still_get_only_what_the_spec_says(domain):
    fs1, bob = domain["hosts"]["fs1"], _secrets()["LAB_BOB_PW"]
    assert smb2client.connect_status(fs1, "projects", "LAB\\bob", bob) == smb2client.STATUS_ACCESS_DENIED
    assert smb2client.connect_status(fs1, "common", "LAB\\bob", bob) == 0
    assert smb2client.create_status(fs1, "common", "LAB\\bob", bob) == smb2client.STATUS_ACCESS_DENIED


def _smbcacls(domain, share: str, *args: str) -> subprocess.CompletedProcess[str]:
    """smbcacls on the share's root from ws2, as the domain's Administrator (password on stdin)."""
    quoted = " ".join(f"'{a}'" for a in args)
    script = (f"read -r PASSWD; export PASSWD; "
              f"smbcacls //fs1.{DOMAIN}/{share} '' -U 'LAB\\Administrator' {quoted}")
    return run(domain["hosts"]["ws2"], script, stdin=_secrets()["LAB_ADMIN_PW"] + "\n")


def test_nt_acl_set_from_windows_is_stored_reported_and_restored(domain, tmp_path):
    """A domain admin edits a share's permissions as Windows' Security tab would: the NT ACL
    is stored, verify and drift name the share, and the next apply restores the spec's ACL."""
    before = _smbcacls(domain, "projects")
    assert before.returncode == 0, before.stdout + before.stderr
    assert "LAB\\engineering" in before.stdout and "LAB\\bob" not in before.stdout
    changed = _smbcacls(domain, "projects", "--add", "ACL:LAB\\bob:ALLOWED/OI|CI/FULL")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "ACL:LAB\\bob:ALLOWED/OI|CI/FULL" in _smbcacls(domain, "projects").stdout  # stored, read back
    stored = run(domain["hosts"]["fs1"], "getfattr --absolute-names -n security.NTACL /srv/projects")
    assert stored.returncode == 0, "no NT ACL stored in the share's extended attributes"

    report = tmp_path / "drift.json"
    proc, _ = provision("drift", str(SPEC), "--limit", "fs1", "--report-json", str(report))
    assert proc.returncode == 6, proc.stdout[-3000:] + proc.stderr[-3000:]
    drift = json.loads(report.read_text())
    failed = {c["name"] for c in drift["verify"]["checks"] if c["status"] == "fail"}
    assert failed == {"share projects"}, failed
    assert any(o["host"] == "fs1" and "ACL" in o["task"] for o in drift["run"]["outcomes"]), drift["run"]

    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "fs1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = _smbcacls(domain, "projects")
    assert after.returncode == 0 and "LAB\\bob" not in after.stdout, after.stdout
    assert sorted(after.stdout.splitlines()) == sorted(before.stdout.splitlines())
    proc, _ = provision("verify", str(SPEC), "--limit", "fs1")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_backup_keeps_the_domain_shares_with_their_nt_acls_and_the_databases(domain, tmp_path):
    """provision backup: a file alice wrote over SMB comes back from the share's archive with its
    owner, POSIX ACL and NT ACL; the domain's archive holds the directory and SYSVOL; a
    database's dump restores; files 0600 in 0700 folders; no secret in the manifest; --keep
    removes the older backup."""
    fs1 = domain["hosts"]["fs1"]
    put = _smb(domain, "alice", "projects", "put /etc/hostname from-alice.txt")
    assert put.returncode == 0, put.stdout + put.stderr
    path = "/srv/projects/from-alice.txt"
    on_host = run(fs1, f"stat -c %u:%g {path}; getfacl -cpn {path}; "
                       f"getfattr --absolute-names --only-values -n security.NTACL {path} | base64 -w0")
    assert on_host.returncode == 0, on_host.stderr
    out = tmp_path / "backups"
    rep_path = tmp_path / "backup.json"
    proc, seconds = provision("backup", str(SPEC), "-o", str(out), "--report-json", str(rep_path))
    TIMES["backup (domain, 1 file server, mail, 2 databases)"] = seconds
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    folder = Path(report(rep_path)["folder"])
    text = (folder / "manifest.json").read_text()
    manifest = json.loads(text)
    assert set(manifest["hosts"]) == {"dc1", "fs1", "mx1", "db1"}, manifest["hosts"].keys()
    assert not any(value in text for value in _secrets().values())
    files = {(h, i["name"]): folder / i["file"] for h, e in manifest["hosts"].items() for i in e["items"]}
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files.values())
    # The share's file, extracted here as a restore would: owner, POSIX ACL and NT ACL intact.
    extracted = tmp_path / "x"
    extracted.mkdir()
    untar = subprocess.run(["tar", "--acls", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf",
                            str(files[("fs1", "share-projects")]), "-C", str(extracted)],
                           capture_output=True, text=True, check=False)
    assert untar.returncode == 0, untar.stderr
    local = extracted / path.lstrip("/")
    here = subprocess.run(f"stat -c %u:%g {local}; getfacl -cpn {local}; getfattr --absolute-names --only-values "
                          f"-n security.NTACL {local} | base64 -w0", shell=True, capture_output=True, text=True,
                          check=False)
    assert here.returncode == 0, here.stderr
    assert here.stdout.replace(str(extracted), "") == on_host.stdout, (here.stdout, on_host.stdout)
    # The domain: the directory's databases and SYSVOL with their NT ACLs, in samba-tool's format.
    listing = subprocess.run(["tar", "-tjf", str(files[("dc1", "domain")])], capture_output=True, text=True,
                             check=False)
    assert listing.returncode == 0, listing.stderr
    assert "private/sam.ldb" in listing.stdout and "sysvol" in listing.stdout
    # A database's dump is a real custom-format archive with the spec's table.
    restored = subprocess.run(["pg_restore", "--list", str(files[("db1", "db-ledger")])], capture_output=True,
                              text=True, check=False)
    assert restored.returncode == 0, restored.stderr
    # Retention: a second backup with --keep 1 removes the first; nothing is left on the hosts.
    proc, _ = provision("backup", str(SPEC), "-o", str(out), "--keep", "1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not folder.exists() and len(list(out.glob("labdom-*"))) == 1
    for name in ("dc1", "fs1", "mx1", "db1"):
        left = run(domain["hosts"][name], "ls -A /var/backups/provision 2>/dev/null | wc -l")
        assert left.stdout.strip() == "0", (name, left.stdout)


# --------------------------------------------------------------------------- policy, replication, time


def test_password_shorter_than_the_policy_is_refused(domain):
    out = run(DCS["dc1"], "samba-tool user setpassword bob --newpassword='Sh0rt!x'")
    assert out.returncode != 0
    assert "too short" in out.stdout + out.stderr, out.stdout + out.stderr
    policy = run(DCS["dc1"], "samba-tool domain passwordsettings show")
    assert re.search(r"Minimum password length: 10$", policy.stdout, re.M), policy.stdout
    assert re.search(r"Password complexity: on$", policy.stdout, re.M), policy.stdout


def _inbound(address: str, other: str) -> list[dict]:
    """The DC's inbound replication partnerships with ``other`` (samba-tool drs showrepl)."""
    out = run(address, "samba-tool drs showrepl --json")
    assert out.returncode == 0, out.stderr
    return [r for r in json.loads(out.stdout)["repsFrom"] if r["DSA"].upper().endswith("\\" + other.upper())]


def test_both_dcs_replicate(domain):
    """Each DC pulls all five naming contexts from the other. A pull that failed while the apply
    restarted the other DC is only retried at Samba's next periodic run (5 minutes): such a context
    is pulled once more on request, which must then succeed."""
    for dc, address in DCS.items():
        other = "dc2" if dc == "dc1" else "dc1"
        inbound = _inbound(address, other)
        assert len({r["NC dn"] for r in inbound}) == 5, (dc, inbound)
        for r in inbound:
            if r["consecutive failures"] or r["last success"] == "NTTIME(0)":
                nc = shlex.quote(r["NC dn"])
                pulled = run(address, f"samba-tool drs replicate {dc}.{DOMAIN} {other}.{DOMAIN} {nc}")
                assert pulled.returncode == 0, (dc, r, pulled.stdout + pulled.stderr)
        for r in _inbound(address, other):
            assert r["consecutive failures"] == 0 and r["last success"] != "NTTIME(0)", (dc, r)
        summary = run(address, "samba-tool drs showrepl --summary")
        assert "[ALL GOOD]" in summary.stdout, summary.stdout + summary.stderr


def test_sysvol_is_the_same_on_both_dcs(domain):
    cmd = "cd /var/lib/samba/sysvol && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
    digests = {dc: run(address, cmd).stdout for dc, address in DCS.items()}
    assert digests["dc1"] == digests["dc2"] and digests["dc1"], digests
    acl = run(DCS["dc2"], "samba-tool ntacl sysvolcheck")
    assert acl.returncode == 0, acl.stdout + acl.stderr


def test_workstations_take_time_from_the_dcs(domain):
    probe = run(domain["hosts"]["ws1"], "systemctl is-active chrony")
    if probe.stdout.strip() != "active":
        pytest.skip("chronyd does not run on this lab host (no CAP_SYS_TIME and no -x drop-in)")
    deadline = time.monotonic() + 60
    out = None
    while time.monotonic() < deadline:
        out = run(domain["hosts"]["ws1"], "chronyc -n sources")
        if re.search(r"^\^[*+]\s+10\.231\.0\.2[12]\b", out.stdout, re.M):
            break
        time.sleep(3)
    assert out is not None and re.search(r"^\^.\s+10\.231\.0\.2[12]\b", out.stdout, re.M), out.stdout if out else ""
    dc = run(DCS["dc1"], "chronyc -n clients; ls -ld /var/lib/samba/ntp_signd")
    assert "_chrony" in dc.stdout, dc.stdout


# --------------------------------------------------------------------------- idempotence and timing


# --------------------------------------------------------------------------- mail (mx1: Postfix + Dovecot)

MX = "10.231.0.26"
MAIL_HOST = f"mx1.{DOMAIN}"

# A mail client on a workstation: Python's smtplib and imaplib, TLS verified against the
# system store (where the network CA is installed), the server named as in its certificate.
# stdin: one JSON line of arguments (passwords included), then nothing; prints one JSON line.
MAIL_CLIENT = r"""
import imaplib, json, smtplib, ssl, sys, time
a = json.loads(sys.stdin.readline())
ctx = ssl.create_default_context()
out = {}
def outcome(fn):
    try:
        return ["ok", fn()]
    except Exception as exc:
        return [type(exc).__name__, str(exc)[:300]]
if a.get("send"):
    def send():
        with smtplib.SMTP(a["host"], 587, timeout=30) as s:
            s.starttls(context=ctx)
            s.login(a["user"], a["password"])
            head = (a["user"], a["domain"], a["to"], a["subject"])
            msg = "From: %s@%s\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n" % head
            s.sendmail("%s@%s" % (a["user"], a["domain"]), [a["to"]], msg)
        return "sent"
    out["send"] = outcome(send)
if a.get("relay"):
    def relay():
        with smtplib.SMTP(a["host"], 25, timeout=30) as s:
            s.ehlo("ws1.%s" % a["domain"])
            s.starttls(context=ctx)
            s.ehlo("ws1.%s" % a["domain"])
            s.mail("someone@%s" % a["domain"])
            code, text = s.rcpt(a["relay"])
            return [code, text.decode(errors="replace")]
    out["relay"] = outcome(relay)
if a.get("read"):
    def read():
        deadline = time.monotonic() + a.get("wait", 30)
        while True:
            with imaplib.IMAP4_SSL(a["host"], 993, ssl_context=ctx, timeout=30) as m:
                m.login(a["reader"], a["reader_password"])
                m.select("INBOX", readonly=True)
                typ, data = m.search(None, "SUBJECT", '"%s"' % a["subject"])
                if data and data[0].split() or time.monotonic() > deadline:
                    return len(data[0].split()) if data else 0
            time.sleep(1)
    out["read"] = outcome(read)
print(json.dumps(out))
"""


def mail(args: dict, host: str = "ws1") -> dict:
    """Run the mail client on a workstation with ``args`` (on stdin, never in argv)."""
    proc = run(DOMAIN_WS[host], f"python3 -c {shlex.quote(MAIL_CLIENT)}", stdin=json.dumps(args) + "\n", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mail_goes_from_one_domain_user_to_another(domain):
    pw = _secrets()
    subject = f"hello-{os.urandom(4).hex()}"
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "send": True, "user": "alice", "password": pw["LAB_ALICE_PW"],
                "to": f"bob@{DOMAIN}", "subject": subject, "read": True, "reader": "bob",
                "reader_password": pw["LAB_BOB_PW"]})
    assert out["send"] == ["ok", "sent"], out
    assert out["read"] == ["ok", 1], out


def test_a_distribution_list_reaches_every_member(domain):
    pw = _secrets()
    subject = f"list-{os.urandom(4).hex()}"
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "send": True, "user": "bob", "password": pw["LAB_BOB_PW"],
                "to": f"staff@{DOMAIN}", "subject": subject, "read": True, "reader": "alice",
                "reader_password": pw["LAB_ALICE_PW"]})
    assert out == {"send": ["ok", "sent"], "read": ["ok", 1]}, out
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "read": True, "reader": "bob", "subject": subject,
                "reader_password": pw["LAB_BOB_PW"]})
    assert out["read"] == ["ok", 1], out


def test_a_wrong_password_is_refused_by_smtp_and_imap(domain):
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "send": True, "user": "alice", "password": "Not-her-pw-1",
                "to": f"bob@{DOMAIN}", "subject": "nope", "read": True, "reader": "bob",
                "reader_password": "Not-his-pw-1", "wait": 0})
    assert out["send"][0] == "SMTPAuthenticationError", out
    assert out["read"][0] == "error" and "AUTHENTICATIONFAILED" in out["read"][1], out


def test_an_unauthenticated_client_cannot_relay_or_invent_users(domain):
    # A reserved name (.invalid): refused before any lookup, and no lookup could leave the lab.
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "relay": "someone@outside.invalid"})
    assert out["relay"][0] == "ok" and out["relay"][1][0] == 554, out
    assert "Relay access denied" in str(out["relay"][1]), out
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "relay": f"nobody-here@{DOMAIN}"})
    assert out["relay"][1][0] == 550 and "User unknown" in str(out["relay"][1]), out
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "relay": f"alice@{DOMAIN}"})
    assert out["relay"][1][0] == 250, out


@pytest.mark.parametrize("dc", sorted(DCS))
def test_the_mail_domain_has_its_mx_record_on_every_dc(domain, dc):
    proc = run(DOMAIN_WS["ws1"], f"host -t MX {DOMAIN} {DCS[dc]}")
    assert f"mail is handled by 10 {MAIL_HOST}." in proc.stdout, proc.stdout + proc.stderr
    proc = run(DOMAIN_WS["ws1"], f"host {MAIL_HOST} {DCS[dc]}")
    assert f"has address {MX}" in proc.stdout, proc.stdout + proc.stderr


def test_the_mail_server_binds_with_its_own_account_not_the_administrator(domain):
    for path in ("/etc/dovecot/dovecot-ldap-passdb.conf.ext", "/etc/dovecot/dovecot-ldap-userdb.conf.ext",
                 "/etc/postfix/ldap-mailboxes.cf", "/etc/postfix/ldap-lists.cf", "/etc/postfix/ldap-senders.cf"):
        proc = run(MX, f"grep -iE '^(dn|bind_dn) *=' {path}; stat -c '%U:%G %a' {path}")
        assert "CN=mail-mx1,CN=Users," in proc.stdout and "Administrator" not in proc.stdout, proc.stdout
        # Only root (and Postfix's proxymap, as group postfix) can read the password.
        assert proc.stdout.split()[-2:] in (["root:postfix", "640"], ["root:root", "600"]), proc.stdout
    # The account is a plain user: no group but Domain Users, and the password lives only on mx1.
    groups = run(DCS["dc1"], "samba-tool user getgroups mail-mx1").stdout.splitlines()
    assert groups == ["Domain Users"], groups
    assert run(MX, "stat -c '%U %a' /var/lib/provision/mail-ldap.secret").stdout.split() == ["root", "600"]



# --------------------------------------------------------------------------- databases (db1: PostgreSQL, Kerberos)

DB_HOST = f"db1.{DOMAIN}"
# libpq on a workstation: TLS verified against the system store (the network CA), Kerberos
# (GSSAPI) sign-on with the user's ticket; no password is ever typed.
PSQL = (f"psql 'host={DB_HOST} sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt "
        "gssencmode=disable dbname=%s user=%s' -XAtq -v ON_ERROR_STOP=1")


def sql(user: str | None, database: str, *statements: str) -> subprocess.CompletedProcess[str]:
    """Statements on db1 from ws1 as ``user`` with a ticket from kinit (password on stdin), or
    with no ticket at all (``user`` None connects as alice without one)."""
    commands = " ".join(f"-c {shlex.quote(s)}" for s in statements)
    who = user or "alice"
    if user is None:
        return run(DOMAIN_WS["ws1"], f"kdestroy -A 2>/dev/null; {PSQL % (database, who)} {commands}")
    pw = _secrets()[f"LAB_{user.upper()}_PW"]
    script = (f"export KRB5CCNAME=FILE:$(mktemp); kinit {who}@{REALM} >/dev/null && {PSQL % (database, who)} "
              f"{commands}; rc=$?; kdestroy; exit $rc")
    return run(DOMAIN_WS["ws1"], script, stdin=pw + "\n")


def test_a_domain_user_signs_on_to_postgresql_with_a_ticket(domain):
    proc = sql("alice", "projects", "select current_user", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    assert proc.returncode == 0 and proc.stdout.split() == ["alice", "t"], proc.stdout + proc.stderr


def test_read_write_read_only_and_no_access_are_what_the_spec_says(domain):
    # alice writes (engineering, the owner, may); as the owner group, so the table is shared at once.
    proc = sql("alice", "projects", "set role engineering", "create table if not exists notes (line text)",
               "insert into notes values ('from alice')")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = sql("bob", "projects", "select count(*) from notes")
    assert proc.returncode == 0 and int(proc.stdout.strip()) >= 1, proc.stdout + proc.stderr
    proc = sql("bob", "projects", "insert into notes values ('from bob')")
    assert proc.returncode != 0 and "permission denied for table notes" in proc.stderr, proc.stdout + proc.stderr
    proc = sql("bob", "ledger", "select 1")
    assert proc.returncode != 0 and "permission denied for database" in proc.stderr, proc.stdout + proc.stderr
    # The cluster's own database is not the spec's: no remote entry for it at all.
    proc = sql("alice", "postgres", "select 1")
    assert proc.returncode != 0 and "pg_hba.conf rejects connection" in proc.stderr, proc.stdout + proc.stderr


def test_without_a_ticket_postgresql_refuses(domain):
    proc = sql(None, "projects", "select 1")
    assert proc.returncode != 0 and "GSSAPI" in proc.stderr, proc.stdout + proc.stderr



# --------------------------------------------------------------------------- login and sudo policy
# inventories/lab-domain.yml: staff (alice, bob) log in on workstations, engineering (alice) on
# every member, Domain Admins everywhere, DCs included; engineering may sudo anything on the
# members, Domain Admins everywhere. The DCs keep it in the directory.

FQDN = {name: f"{name}.{DOMAIN}" for name in ("ws1", "ws2", "fs1", "dc1")}
ADDRESS = {"ws1": "10.231.0.31", "ws2": "10.231.0.32", "fs1": "10.231.0.25", **DCS}


def _trust_host_key(src: str, target: str) -> str:
    """A known_hosts file on ``src`` with ``target``'s host key, read over the lab's root SSH (no TOFU)."""
    key = run(ADDRESS[target], "cat /etc/ssh/ssh_host_ed25519_key.pub")
    assert key.returncode == 0, key.stderr
    path = f"/tmp/known_hosts_{target}"
    line = f"{FQDN[target]} {' '.join(key.stdout.split()[:2])}"
    assert run(ADDRESS[src], f"printf '%s\\n' {shlex.quote(line)} > {path}; chmod 644 {path}").returncode == 0
    return path


def _password(user: str) -> str:
    return _secrets()["LAB_ALICE_PW" if user == "alice" else "LAB_BOB_PW"]


def _gssapi_ssh(user: str, src: str, target: str, pw: str | None = None) -> subprocess.CompletedProcess[str]:
    """On workstation ``src``, as ``user`` with a fresh Kerberos ticket (password on stdin), ``ssh`` to
    ``target`` offering GSSAPI only: no password is typed, the ticket is the credential."""
    known = _trust_host_key(src, target)
    pw = _password(user) if pw is None else pw
    inner = (
        f"export KRB5CCNAME=FILE:/tmp/krb5cc_ssh_$(id -u); kinit {user}@{REALM} >/dev/null && "
        f"ssh -o PreferredAuthentications=gssapi-with-mic -o GSSAPIAuthentication=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known} -o ConnectTimeout=10 "
        f"{user}@{FQDN[target]} id -un; rc=$?; kdestroy; exit $rc"
    )
    return run(ADDRESS[src], f"su -s /bin/sh -c {shlex.quote(inner)} {user}", stdin=pw + "\n")


@pytest.mark.parametrize(("user", "src", "target", "allowed"), [
    ("alice", "ws1", "ws2", True),   # sssd -> winbind, staff on a workstation
    ("bob", "ws2", "ws1", True),     # winbind -> sssd
    ("alice", "ws1", "fs1", True),   # engineering on every host
    ("bob", "ws1", "fs1", False),    # staff only: not on the file server
])
def test_kerberos_ssh_logins_follow_the_policy(domain, user, src, target, allowed):
    out = _gssapi_ssh(user, src, target)
    if allowed:
        assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == user, out.stdout + out.stderr
    else:
        assert out.returncode != 0 and user not in out.stdout, out.stdout + out.stderr


def _password_ssh(user: str, target: str, pw: str, command: str = "id -un") -> str | None:
    """From the controller with paramiko, host key checked against the lab's known_hosts: ``command``'s
    output (the password also on its stdin, for sudo -S), or None when the login is refused."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(KNOWN_HOSTS))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(ADDRESS[target], username=user, password=pw, allow_agent=False, look_for_keys=False,
                       timeout=15, auth_timeout=30)
    except paramiko.AuthenticationException:
        return None
    try:
        stdin, stdout, _ = client.exec_command(command, timeout=60)
        stdin.write(pw + "\n")
        stdin.channel.shutdown_write()
        return stdout.read().decode()
    finally:
        client.close()


@pytest.mark.parametrize(("user", "target", "allowed"), [("alice", "fs1", True), ("bob", "ws2", True),
                                                      ("bob", "fs1", False), ("alice", "dc1", False)])
def test_password_ssh_logins_follow_the_policy(domain, user, target, allowed):
    """A domain user's password opens a session where the policy lets them in, and nothing elsewhere
    (engineering logs in on every member, not on the DCs)."""
    out = _password_ssh(user, target, _password(user))
    if allowed:
        assert out is not None and out.strip() == user, f"{user} on {target}: {out!r}"
    else:
        assert out is None, f"{user} logged in on {target}: {out!r}"


def test_a_domain_admin_made_in_the_directory_administers_the_dcs(domain):
    """Domain Admins log in on the DCs (password and Kerberos ticket) and sudo there, as on every
    member: an account added to Domain Admins in the directory, outside the spec, needs no apply."""
    import secrets as pysecrets

    pw = f"Adm1n!{pysecrets.token_urlsafe(12)}"
    # A new name each run: hosts' caches never map it to an account an earlier run deleted.
    admin = f"ops{pysecrets.token_hex(3)}"
    made = run(DCS["dc1"], f"samba-tool user create {admin} {shlex.quote(pw)} && "
                           f"samba-tool group addmembers 'Domain Admins' {admin}")
    assert made.returncode == 0, made.stdout + made.stderr
    try:
        # dc2 learns the account now, not at its next pull (run on dc1 with its machine account).
        synced = run(DCS["dc1"], f"samba-tool drs replicate dc2.{DOMAIN} dc1.{DOMAIN} {BASE}")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        for target in ("dc1", "dc2", "fs1"):
            # The hosts' login lists follow within the reader's period (360 s); the test runs it now.
            read = run(ADDRESS[target], "systemctl start provision-sudoers-sync.service")
            assert read.returncode == 0, read.stdout + read.stderr
            out = _password_ssh(admin, target, pw, "id -un; sudo -S -p '' id -u")
            assert out is not None and out.split()[-2:] in ([admin, "0"], [f"LAB\\{admin}", "0"]), (target, out)
        ticket = _gssapi_ssh(admin, "ws1", "dc1", pw)
        assert ticket.returncode == 0 and admin in ticket.stdout, ticket.stdout + ticket.stderr
        # Who is no Domain Admin stays out, and gets no sudo there.
        assert _password_ssh("bob", "dc2", _password("bob")) is None
        listed = run(DCS["dc1"], "sudo -l -U alice")
        assert "(root)" not in listed.stdout, listed.stdout
    finally:
        run(DCS["dc1"], f"samba-tool user delete {admin}")


def test_login_groups_are_in_no_token_and_kept_so(domain, tmp_path):
    """Login groups are global distribution groups: no user's ticket or logon token carries them (a
    user allowed on thousands of hosts would otherwise carry thousands of group SIDs), so neither
    sssd nor winbind lists them among a user's groups, while the login list still follows them. One
    made a domain local security group by hand (the path AD allows: universal, domain local, then
    security) and one made a security group are converted back by the next run on the DCs."""
    for group, steps in (("provision-login-dc2", (8, 4, -2147483644)), ("provision-login-fs1", (-2147483646,))):
        for kind in steps:
            ldif = (f"dn: CN={group},OU=Provision Policy,{BASE}\nchangetype: modify\n"
                    f"replace: groupType\ngroupType: {kind}\n")
            out = run(DCS["dc1"], "ldbmodify -H /var/lib/samba/private/sam.ldb", stdin=ldif)
            assert out.returncode == 0, out.stdout + out.stderr
    rep = tmp_path / "dcs.json"
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "dc1,dc2", "--report-json", str(rep))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "dc1" in changed_hosts(report(rep)), report(rep)["hosts"]
    for group in ("provision-login-dc1", "provision-login-dc2", "provision-login-fs1", "provision-login-ws1"):
        shown = run(DCS["dc1"], f"samba-tool group show {group} --attributes=groupType").stdout
        assert "groupType: 2\n" in shown, (group, shown)
    for ws in ("ws1", "ws2"):
        groups = run(ADDRESS[ws], "id -Gn alice").stdout
        assert "engineering" in groups and "provision-login" not in groups, (ws, groups)
    tokens = run(ADDRESS["ws2"], "wbinfo --user-domgroups=$(wbinfo -n alice | cut -d' ' -f1) | xargs -n1 wbinfo -s")
    assert tokens.returncode == 0 and "engineering" in tokens.stdout, tokens.stdout + tokens.stderr
    assert "provision-login" not in tokens.stdout, tokens.stdout
    # The login list follows the group all the same (alice through engineering, nested; bob is staff).
    listed = run(ADDRESS["fs1"], "cat /etc/security/provision-logins").stdout.split()
    assert "alice" in listed and "LAB\\alice" in listed and "bob" not in listed, listed


def _sudo(address: str, user: str) -> subprocess.CompletedProcess[str]:
    """``user`` runs ``sudo id -u`` with their password (sudo -S reads it from stdin)."""
    pw = _secrets()["LAB_ALICE_PW" if user == "alice" else "LAB_BOB_PW"]
    return run(address, f"su -s /bin/sh -c 'sudo -S -p \"\" id -u' {user}", stdin=pw + "\n")


@pytest.mark.parametrize("ws", ["ws1", "ws2"])
def test_sudo_follows_the_policy_on_both_clients(domain, ws):
    address = domain["hosts"][ws]
    admin = _sudo(address, "alice")
    assert admin.returncode == 0 and admin.stdout.strip() == "0", admin.stdout + admin.stderr
    other = _sudo(address, "bob")
    assert other.returncode != 0 and other.stdout.strip() != "0", other.stdout + other.stderr


def test_root_logs_in_with_keys_only_and_members_accept_tickets(domain):
    for name in ("ws1", "ws2", "fs1", "dc1", "dc2"):
        settings = run(ADDRESS[name], "sshd -T | grep -Ei '^(permitrootlogin|gssapiauthentication) '").stdout
        assert "permitrootlogin without-password" in settings and "gssapiauthentication yes" in settings, settings


CA_FILE = "/usr/local/share/ca-certificates/provision/ca-1.crt"
# TLS to a DC's LDAPS port verified through OpenSSL's hash lookup in /etc/ssl/certs only.
VERIFY_DC = ("openssl s_client -connect dc1.ad.lab.test:636 -servername dc1.ad.lab.test "
             "-verify_hostname dc1.ad.lab.test -verify_return_error -no-CAfile -CApath /etc/ssl/certs "
             "</dev/null 2>&1 | grep -c 'Verify return code: 0 (ok)'")


def test_a_replaced_ca_file_is_relinked_and_tls_verifies_again(domain):
    """Another CA put under the network CA's file name, the store rebuilt: OpenSSL's hash lookup
    no longer finds the network CA and TLS to a DC fails. The next apply writes the file back and
    relinks the store from scratch (update-ca-certificates --fresh); adding the file alone, as a
    first apply does, would leave no hash link for it."""
    ws1 = domain["hosts"]["ws1"]
    assert run(ws1, VERIFY_DC).stdout.strip() == "1"
    res = run(ws1, f"cp /usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt {CA_FILE} "
                   "&& update-ca-certificates --fresh >/dev/null")
    assert res.returncode == 0, res.stdout + res.stderr
    assert run(ws1, VERIFY_DC).stdout.strip() == "0"
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "ws1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert run(ws1, VERIFY_DC).stdout.strip() == "1"


def test_second_apply_changes_nothing(domain):
    path = domain["dir"] / "second.json"
    proc, seconds = provision("apply", str(SPEC), "--skip-preflight", "--report-json", str(path))
    TIMES["re-apply (nothing to change)"] = seconds
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rep = report(path)
    changes = [(o["host"], o["task"]) for o in rep["outcomes"] if o["status"] == "changed"]
    assert changed_hosts(rep) == {}, changes
    assert set(rep["hosts"]) == set(domain["hosts"])
    # Converged hosts leave each play right after the probe: not one skipped task per role
    # (dc1 stays: it reconciles the directory on every apply).
    clean = {h: s for h, s in rep["hosts"].items() if h != "dc1"}
    assert {h: s["skipped"] for h, s in clean.items() if s["skipped"]} == {}
    assert all(s["ok"] <= 6 for s in clean.values()), clean


def test_artifacts_hold_no_environment_value_outside_the_allow_list(domain):
    """Every value of the test's environment that the allow-list does not name (the decoy
    token, the spec's secrets, whatever CI sets) is absent from the artifacts and output."""
    from provision.secrets import ENV_ALLOW

    env = {**os.environ, **_secrets(), **DECOY}
    # A value the playbooks themselves carry (DEBIAN_FRONTEND=noninteractive in a task) is in
    # the artifacts because a task says it, not because the environment leaked.
    code = "".join(p.read_text(errors="replace") for p in (REPO / "playbooks").rglob("*") if p.is_file())
    suspects = {
        k: v for k, v in env.items()
        if k not in ENV_ALLOW and k != "PATH" and len(v) >= 8 and not os.path.exists(v) and v not in code
    }
    assert DECOY["PROVISION_TEST_DECOY_TOKEN"] in suspects.values()
    blobs = [domain["output"]] + [
        p.read_text(errors="replace") for p in (domain["dir"] / "artifacts").rglob("*") if p.is_file()
    ]
    assert len(blobs) > 3  # the artifacts are real
    leaked = sorted(k for k, v in suspects.items() if any(v in b for b in blobs))
    assert leaked == [], f"environment values in the artifacts: {leaked}"


def test_check_without_secrets_sends_none_and_touches_nothing(domain, tmp_path):
    probe = "sha256sum /var/lib/provision/converged.json /etc/samba/smb.conf /etc/krb5.keytab 2>/dev/null"
    before = {h: run(a, probe).stdout for h, a in domain["hosts"].items()}
    path = tmp_path / "dry.json"
    proc, _ = provision("apply", str(SPEC), "--check", "--no-secrets", "--full", "--skip-preflight",
                        "--report-json", str(path), "--keep-artifacts", str(tmp_path / "artifacts"), secrets=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rep = report(path)
    assert rep["check"] and rep["ok"]
    assert {o["task"] for o in rep["outcomes"] if o["status"] == "unknown"}, "nothing reported as unknown"
    assert {h: run(a, probe).stdout for h, a in domain["hosts"].items()} == before
    blobs = [proc.stdout + proc.stderr] + [p.read_text(errors="replace")
                                            for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    for value in _secrets().values():
        assert not any(value in b for b in blobs)


def test_a_disabled_user_can_neither_log_in_nor_receive(domain):
    pw = _secrets()
    dc1 = DCS["dc1"]
    assert run(dc1, "samba-tool user disable bob").returncode == 0
    try:
        out = mail({"host": MAIL_HOST, "domain": DOMAIN, "relay": f"bob@{DOMAIN}", "read": True, "reader": "bob",
                    "reader_password": pw["LAB_BOB_PW"], "subject": "x", "wait": 0})
        assert out["relay"][1][0] == 550, out
        assert out["read"][0] == "error", out
    finally:
        assert run(dc1, "samba-tool user enable bob").returncode == 0
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "relay": f"bob@{DOMAIN}"})
    assert out["relay"][1][0] == 250, out


def test_a_user_added_to_the_spec_gets_a_mailbox_on_the_next_apply(domain, tmp_path):
    data = yaml.safe_load(SPEC.read_text())
    data["users"].append({"name": "carol", "password": {"env": "LAB_CAROL_PW"}, "groups": ["staff"]})
    spec = tmp_path / "lab-domain.yml"
    spec.write_text(yaml.safe_dump(data))
    env_pw = {"LAB_CAROL_PW": "Carol-Pw-2026!z"}
    os.environ.setdefault("LAB_CAROL_PW", env_pw["LAB_CAROL_PW"])
    # The directory (dc1) makes the user; the mail server finds her there: nothing else changes.
    proc, _ = provision("apply", str(spec), "--skip-preflight", "--limit", "dc1,mx1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert run(MX, "ls /etc/passwd | xargs grep -c carol").stdout.strip() == "0"  # no local account file
    subject = f"welcome-{os.urandom(4).hex()}"
    out = mail({"host": MAIL_HOST, "domain": DOMAIN, "send": True, "user": "alice",
                "password": _secrets()["LAB_ALICE_PW"], "to": f"carol@{DOMAIN}", "subject": subject,
                "read": True, "reader": "carol", "reader_password": os.environ["LAB_CAROL_PW"]})
    assert out == {"send": ["ok", "sent"], "read": ["ok", 1]}, out


def _flush_client_caches(sssd: tuple[str, ...] = ("ws1",), winbind: tuple[str, ...] = ("ws2",)) -> None:
    """What a member would learn within its cache lifetime, now: sssd's cache and sudo rules
    (sss_cache, a restart for the rules), winbind's cached groups and logon data (net cache),
    on the members named."""
    for host in sssd:
        assert run(ADDRESS[host], "sss_cache -E && systemctl restart sssd").returncode == 0, host
    # winbind: its cached groups, and each user's groups from the last logon (which the role's
    # reader drops once older than winbind's cache time).
    flush = ("net cache flush && net cache samlogon list | awk '/^S-1-/ {print $1}' "
             "| xargs -r -n1 net cache samlogon delete && systemctl stop winbind "
             "&& rm -f /var/lib/samba/winbindd_cache.tdb && systemctl start winbind "
             "&& (for i in $(seq 30); do wbinfo -t >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1) "
             "&& systemctl start provision-sudoers-sync.service")
    for host in winbind:
        assert run(ADDRESS[host], flush).returncode == 0, host


def test_a_policy_change_on_the_dcs_alone_reaches_the_workstations(domain, tmp_path):
    """Change who may log in and sudo, apply to the DCs only (--limit), and the workstations
    enforce the new rules from the directory; the full spec again puts the old ones back."""
    data = yaml.safe_load(SPEC.read_text())
    data["policies"]["access"].insert(0, {"users": ["bob"], "roles": ["workstation"], "allow": False})
    data["policies"]["sudo"].append({"users": ["bob"], "hosts": ["ws1", "ws2"], "commands": ["/usr/bin/id"],
                                     "nopasswd": True})
    changed = tmp_path / "lab-domain-policy.yml"
    changed.write_text(yaml.safe_dump(data, sort_keys=False))
    rep = tmp_path / "dcs.json"
    proc, _ = provision("apply", str(changed), "--skip-preflight", "--limit", "dc1,dc2", "--report-json", str(rep))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert set(report(rep)["hosts"]) == {"dc1", "dc2"}
    try:
        _flush_client_caches()
        for ws in ("ws1", "ws2"):
            refused = run(ADDRESS[ws], "su -s /bin/sh -c true bob")
            assert refused.returncode != 0, f"{ws}: bob still logs in"
            assert run(ADDRESS[ws], "su -s /bin/sh -c true alice").returncode == 0
        out = _gssapi_ssh("alice", "ws1", "ws2")
        assert out.returncode == 0, out.stdout + out.stderr
        # Both read the new sudo rule from the directory: sssd within its smart refresh (60 s); the
        # winbind member's reader runs every 300 s, so it is started by hand here, again each round
        # (the DC it asks may not have replicated the rule yet): bob's one command, no password.
        for ws in ("ws1", "ws2"):
            deadline = time.monotonic() + 150
            while True:
                if ws == "ws2":
                    run(ADDRESS[ws], "systemctl start provision-sudoers-sync.service")
                listed = run(ADDRESS[ws], "sudo -l -U bob").stdout
                if "/usr/bin/id" in listed or time.monotonic() > deadline:
                    break
                time.sleep(5)
            assert "/usr/bin/id" in listed and "NOPASSWD" in listed, f"{ws}: {listed}"
    finally:
        proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "dc1,dc2")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        _flush_client_caches()
    for ws in ("ws1", "ws2"):
        assert run(ADDRESS[ws], "su -s /bin/sh -c true bob").returncode == 0, f"{ws}: bob refused after the revert"
    for ws in ("ws1", "ws2"):
        assert "/usr/bin/id" not in run(ADDRESS[ws], "sudo -l -U bob").stdout, ws


def test_postgresql_keeps_working_when_the_machine_password_changes(domain):
    db1 = "10.231.0.27"
    keytab = "/etc/postgresql/15/main/krb5.keytab"
    digest = f"sha256sum {keytab}"
    before = run(db1, digest).stdout
    assert run(db1, "net ads changetrustpw").returncode == 0
    # winbind rewrote /etc/krb5.keytab with the new keys; the path unit hands them to PostgreSQL.
    # (Samba may write them under the previous kvno; MIT's acceptor tries the principal's keys.)
    deadline = time.monotonic() + 60
    while run(db1, digest).stdout == before or run(db1, f"cmp -s /etc/krb5.keytab {keytab}").returncode:
        assert time.monotonic() < deadline, "PostgreSQL's keytab did not follow the machine password"
        time.sleep(1)
    # A DC that has not replicated the new password yet still seals tickets with the old key,
    # which the keytab no longer holds ("Decrypt integrity check failed"): the sign-on works
    # again once both DCs have it, seconds later. Each attempt takes a fresh ticket.
    deadline = time.monotonic() + 90
    proc = sql("alice", "projects", "select current_user")
    while proc.returncode != 0 and "integrity check failed" in proc.stderr and time.monotonic() < deadline:
        time.sleep(3)
        proc = sql("alice", "projects", "select current_user")
    assert proc.returncode == 0 and proc.stdout.strip() == "alice", proc.stdout + proc.stderr


def test_a_user_added_to_a_granted_group_gets_access_on_the_next_apply(domain, tmp_path):
    data = yaml.safe_load(SPEC.read_text())
    for u in data["users"]:
        if u["name"] == "bob":
            u["groups"] = [*u["groups"], "engineering"]
    db1 = next(h for h in data["hosts"] if h["name"] == "db1")
    for d in db1["databases"]:
        if d["name"] == "projects":
            d["read_only"] = {}  # bob now gets his access through engineering
    spec = tmp_path / "lab-domain.yml"
    spec.write_text(yaml.safe_dump(data))
    # Only the directory (dc1) and the database server change.
    proc, _ = provision("apply", str(spec), "--skip-preflight", "--limit", "dc1,db1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    proc = sql("bob", "projects", "insert into notes values ('bob, now an engineer')")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And back: out of the group, read only again; the rows stay.
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "dc1,db1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    proc = sql("bob", "projects", "insert into notes values ('again')")
    assert proc.returncode != 0 and "permission denied" in proc.stderr, proc.stdout + proc.stderr
    proc = sql("bob", "projects", "select count(*) from notes where line = 'bob, now an engineer'")
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stdout + proc.stderr
    # The file server (winbind) cached bob as an engineer, who may log in there, for its cache
    # time (300 s): the next tests verify every host at once, so it learns the change now.
    _flush_client_caches(sssd=(), winbind=("fs1",))


# --------------------------------------------------------------------------- joins repaired, left, removed


def _computers() -> set[str]:
    out = run(DCS["dc1"], "samba-tool computer list")
    assert out.returncode == 0, out.stderr
    return {line.strip().upper() for line in out.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize(("ws", "check"), [("ws1", "adcli testjoin"), ("ws2", "wbinfo -t")])
def test_a_deleted_computer_account_is_rejoined(domain, ws, check, tmp_path):
    assert run(DCS["dc1"], f"samba-tool computer delete {ws}").returncode == 0
    assert f"{ws.upper()}$" not in _computers()
    # verify names the broken join, on that host only.
    path = tmp_path / "verify.json"
    proc, _ = provision("verify", str(SPEC), "--report-json", str(path))
    assert proc.returncode == 6, proc.stdout[-4000:] + proc.stderr[-4000:]
    failed = {(c["host"], c["name"]) for c in report(path)["checks"] if c["status"] == "fail"}
    # The repair comes before the verdict on verify, so a wrong verdict leaves no broken join
    # behind for the next tests.
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", ws)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"{ws.upper()}$" in _computers()
    out = run(domain["hosts"][ws], check)
    assert out.returncode == 0, out.stdout + out.stderr
    # The A record is the first DC's to keep (a --limit run of the member alone leaves it):
    # the DC's directory role, run with the member in the inventory, puts it back.
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--full", "--limit", f"dc1,{ws}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    fwd = run(domain["hosts"]["ws2"], f"host -t A {ws}.{DOMAIN}")
    assert f"has address {domain['hosts'][ws]}" in fwd.stdout, fwd.stdout + fwd.stderr
    # The account went with its DNS records (samba-tool computer delete removes both). Without
    # its account the host may also be unable to ask the directory who may log in (once its
    # cache is empty); no other host is affected.
    assert failed - {(ws, "login and sudo policy")} == {(ws, "domain join"), (ws, "dns a record")}, failed


def test_unjoin_playbook_leaves_cleanly(domain):
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--unjoin", "ws1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "WS1$" not in _computers()
    out = run(domain["hosts"]["ws1"], "systemctl is-active sssd; test -e /etc/krb5.keytab; echo keytab=$?; "
                                      "grep -c pam_sss /etc/pam.d/common-auth; getent passwd alice")
    lines = out.stdout.splitlines()
    assert lines[0] != "active" and "keytab=1" in lines and lines[2] == "0", out.stdout
    assert "alice" not in out.stdout.split("\n", 3)[-1]
    # The domain's SSH drop-ins leave with it (sshd takes passwords and tickets no more than before).
    left = run(domain["hosts"]["ws1"], "ls /etc/ssh/sshd_config.d/ /etc/ssh/ssh_config.d/").stdout
    assert "00-provision.conf" not in left and "provision.conf" not in left, left
    # Back in: the next apply joins it again.
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--limit", "ws1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "WS1$" in _computers()


def test_host_removed_from_the_spec_loses_its_account_and_records(domain, tmp_path):
    data = yaml.safe_load(SPEC.read_text())
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "ws2"]
    smaller = tmp_path / "lab-domain-without-ws2.yml"
    smaller.write_text(yaml.safe_dump(data, sort_keys=False))
    rep_path = tmp_path / "removal.json"
    proc, _ = provision("apply", str(smaller), "--skip-preflight", "--report-json", str(rep_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "WS2$" not in _computers()
    assert {"WS1$", "FS1$"} <= _computers()
    gone = run(DCS["dc1"], f"host -t A ws2.{DOMAIN} 127.0.0.1; host {domain['hosts']['ws2']} 127.0.0.1")
    assert "has address" not in gone.stdout and "domain name pointer" not in gone.stdout, gone.stdout
    # And a second apply of that spec is quiet again.
    proc, _ = provision("apply", str(smaller), "--skip-preflight", "--report-json", str(rep_path))
    assert proc.returncode == 0
    assert changed_hosts(report(rep_path)) == {}


# --------------------------------------------------------------------------- restore drills

HAND_PW = "Hand-Set-Bob-2026!"  # bob's password set by hand on a DC, after the spec's


def _kinit(address: str, user: str, pw: str) -> subprocess.CompletedProcess[str]:
    cc = f"FILE:/tmp/krb5cc_drill_{user}"
    return run(address, f"KRB5CCNAME={cc} kinit {user}@{REALM} >/dev/null && KRB5CCNAME={cc} klist; kdestroy -c {cc}",
               stdin=pw + "\n")


DRILL_FILE = "/srv/projects/drill.txt"
# Owner, POSIX ACL, the NT ACL as Samba reads it and the raw security.NTACL bytes.
FILE_STATE = (f"stat -c %u:%g {DRILL_FILE}; getfacl -cpn {DRILL_FILE}; samba-tool ntacl get --as-sddl {DRILL_FILE}; "
              f"getfattr --absolute-names --only-values -n security.NTACL {DRILL_FILE} | sha256sum")
# The members' proof that their join holds, each with the tool of its client.
MEMBER_JOIN = {"fs1": "wbinfo -t", "mx1": "wbinfo -t", "db1": "wbinfo -t", "ws1": "adcli testjoin", "ws2": "wbinfo -t"}


def _joins_hold(domain) -> None:
    for name, check in MEMBER_JOIN.items():
        out = run(domain["hosts"][name], check)
        assert out.returncode == 0, (name, out.stdout + out.stderr)


def test_restore_drill_every_dc_and_every_server_lost(domain, lab_factory, network, tmp_path):
    """The issue's drill, and the mail and database servers too: a file alice wrote, a mail to her, a
    row in a database and a password set by hand, backed up; both DCs, the file, mail and database
    servers replaced by empty machines; provision restore brings the domain back onto dc1 from the
    backup (dc2 joins it), the servers' join state, shares, mailboxes and databases, without
    rejoining a workstation: kinit with the hand-set password, the file with the same owner, POSIX
    ACL and NT ACL, the mail, the row, every member's join and provision verify all hold."""
    hosts = domain["hosts"]
    # The tests before left ws2 out of the domain (a host removed from the spec): the spec again.
    proc, _ = provision("apply", str(SPEC), "--skip-preflight")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    put = _smb(domain, "alice", "projects", f"put /etc/hostname {Path(DRILL_FILE).name}")
    assert put.returncode == 0, put.stdout + put.stderr
    row = sql("alice", "projects", "set role engineering", "create table if not exists notes (line text)",
              "insert into notes values ('before the drill')")
    assert row.returncode == 0, row.stdout + row.stderr
    pw = _secrets()
    subject = f"drill-{os.urandom(4).hex()}"
    sent = mail({"host": MAIL_HOST, "domain": DOMAIN, "send": True, "user": "alice", "password": pw["LAB_ALICE_PW"],
                 "to": f"alice@{DOMAIN}", "subject": subject, "read": True, "reader": "alice",
                 "reader_password": pw["LAB_ALICE_PW"]})
    assert sent["read"] == ["ok", 1], sent
    before = run(hosts["fs1"], FILE_STATE)
    assert before.returncode == 0 and "O:" in before.stdout, before.stdout + before.stderr
    hand = run(DCS["dc1"], 'samba-tool user setpassword bob --newpassword="$(cat)"', stdin=HAND_PW)
    assert hand.returncode == 0, hand.stdout + hand.stderr
    keytabs = {ws: run(hosts[ws], "sha256sum /etc/krb5.keytab").stdout for ws in DOMAIN_WS}
    out = tmp_path / "backups"
    proc, seconds = provision("backup", str(SPEC), "-o", str(out), "--report-json", str(tmp_path / "backup.json"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    folder = Path(report(tmp_path / "backup.json")["folder"])
    TIMES["drill: backup"] = seconds

    # Both DCs and every server are lost: new, empty machines under the same names and addresses.
    lost = ("dc1", "dc2", "fs1", "mx1", "db1")
    proc, _ = provision("lab", "wipe", *lost, secrets=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lab_factory(network.hosts)
    for name in lost:
        assert run(hosts[name], "test -e /var/lib/samba/private/secrets.tdb").returncode != 0, name

    plan_path = tmp_path / "plan.json"
    proc, _ = provision("restore", str(SPEC), "--from", str(folder), "--plan-only", "--report-json", str(plan_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    steps = {s["host"]: s for s in report(plan_path)["steps"]}
    assert "restored from the backup" in steps["dc1"]["action"] and "joins dc1" in steps["dc2"]["action"]
    assert all(steps[n]["state"] == "lost" for n in lost) and steps["ws1"]["action"].startswith("untouched")

    rep_path = tmp_path / "restore.json"
    proc, seconds = provision("restore", str(SPEC), "--from", str(folder), "--yes", "--report-json", str(rep_path),
                              timeout=2400)
    TIMES["drill: restore (2 DCs, file, mail and database servers lost)"] = seconds
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-8000:]
    assert set(report(rep_path)["runs"]) == {"files", "apply", "databases"}

    # Every user signs on: the spec's password for alice, bob's hand-set one (the directory came back).
    assert _kinit(hosts["ws1"], "alice", _secrets()["LAB_ALICE_PW"]).returncode == 0
    bob = _kinit(hosts["ws2"], "bob", HAND_PW)
    assert bob.returncode == 0 and f"bob@{REALM}" in bob.stdout, bob.stdout + bob.stderr
    after = run(hosts["fs1"], FILE_STATE)
    assert after.returncode == 0 and after.stdout == before.stdout, (before.stdout, after.stdout)
    read = _smb(domain, "alice", "projects", f"get {Path(DRILL_FILE).name} /dev/null")
    assert read.returncode == 0, read.stdout + read.stderr
    rows = sql("alice", "projects", "select count(*) from notes where line = 'before the drill'")
    assert rows.returncode == 0 and int(rows.stdout.strip()) >= 1, rows.stdout + rows.stderr
    kept = mail({"host": MAIL_HOST, "domain": DOMAIN, "subject": subject, "read": True, "reader": "alice",
                 "reader_password": _secrets()["LAB_ALICE_PW"], "wait": 5})
    assert kept["read"] == ["ok", 1], kept
    _joins_hold(domain)
    # The workstations were not joined again: their keytabs are the ones from before.
    assert {ws: run(hosts[ws], "sha256sum /etc/krb5.keytab").stdout for ws in DOMAIN_WS} == keytabs
    proc, _ = provision("verify", str(SPEC))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    domain["drill_backup"] = folder


def test_restore_drill_one_dc_lost_rejoins_without_rollback(domain, lab_factory, network, tmp_path):
    """dc1 alone is lost: restore removes it from dc2's directory and joins it again from dc2 (no
    rollback: a password changed after the backup still works); replication is healthy both ways."""
    folder = domain.get("drill_backup")
    if folder is None:
        pytest.skip("needs the backup of the previous drill")
    changed = run(DCS["dc2"], 'samba-tool user setpassword bob --newpassword="$(cat)"', stdin=HAND_PW + "2")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    proc, _ = provision("lab", "wipe", "dc1", secrets=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lab_factory(network.hosts)
    # A plain apply would provision a second, empty domain on the new dc1: it stops instead.
    proc, _ = provision("apply", str(SPEC))
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "dc2 already hold(s) AD.LAB.TEST" in proc.stdout + proc.stderr, proc.stdout[-4000:]
    assert run(DCS["dc1"], "test -e /var/lib/samba/private/sam.ldb").returncode != 0
    rep_path = tmp_path / "restore.json"
    proc, seconds = provision("restore", str(SPEC), "--from", str(folder), "--yes", "--report-json", str(rep_path),
                              timeout=2400)
    TIMES["drill: restore (dc1 lost)"] = seconds
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-8000:]
    steps = {s["host"]: s for s in report(rep_path)["steps"]}
    assert "joins it again" in steps["dc1"]["action"] and "removes dc1" in steps["dc2"]["action"], steps
    assert report(rep_path)["join_source"] == "dc2"
    bob = _kinit(domain["hosts"]["ws1"], "bob", HAND_PW + "2")
    assert bob.returncode == 0, bob.stdout + bob.stderr
    # dc2 seized dc1's FSMO roles when dc1 was removed; the apply gave them back to dc1.
    roles = run(DCS["dc1"], "samba-tool fsmo show").stdout
    owners = [line for line in roles.splitlines() if " owner: " in line]
    assert len(owners) == 7 and all(",CN=DC1,CN=Servers," in line for line in owners), roles
    test_both_dcs_replicate(domain)
    _joins_hold(domain)
    for dc, address in DCS.items():  # no trace of dc1's former self in either directory
        check = run(address, "samba-tool dbcheck --cross-ncs")
        assert check.returncode == 0, (dc, check.stdout[-3000:] + check.stderr[-2000:])
    rep2 = tmp_path / "again.json"
    proc, _ = provision("apply", str(SPEC), "--skip-preflight", "--report-json", str(rep2))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert changed_hosts(report(rep2)) == {}


def test_report_times(domain):
    """Not a check: prints the figures (pytest -s shows them)."""
    print("\ndomain lab timings:", file=sys.__stderr__)
    for name, seconds in TIMES.items():
        print(f"  {name:<32} {seconds:7.1f} s", file=sys.__stderr__)
    (domain["dir"].parent / "domain-timings.json").write_text(json.dumps(TIMES, indent=2))
