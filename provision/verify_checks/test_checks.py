"""The checks `provision verify` runs: testinfra tests, one function per kind.

``test_check`` is parametrized by the plugin with the checks derived from the
spec; each kind below asserts one property of one host with a message that
says what is wrong.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import time
from collections.abc import Callable
from typing import Any

from testinfra.host import Host

CheckFn = Callable[..., None]
KINDS: dict[str, CheckFn] = {}


def kind(fn: CheckFn) -> CheckFn:
    KINDS[fn.__name__.removeprefix("check_")] = fn
    return fn


def test_check(check: dict[str, Any], target: Host) -> None:
    KINDS[check["kind"]](target, **check["params"])


# --------------------------------------------------------------------------- every host


@kind
def check_host_key(host: Host) -> None:
    """Connecting at all proves it: the backend rejects unknown and changed keys."""
    res = host.run("true")
    assert res.rc == 0, f"a command over SSH failed (exit {res.rc}): {res.stderr.strip()}"


@kind
def check_hostname(host: Host, name: str) -> None:
    actual = host.check_output("hostname")
    assert actual == name, f"hostname is {actual!r}, the spec says {name!r}"


@kind
def check_address(host: Host, address: str) -> None:
    out = host.check_output("ip -o -4 addr show")
    found = [f.split("/")[0] for line in out.splitlines() for f in line.split() if "/" in f and "." in f]
    assert address in found, f"{address} is not configured (has {', '.join(found) or 'none'})"


@kind
def check_clock(host: Host, limit: float) -> None:
    before = time.time()
    remote = float(host.check_output("date +%s.%N"))
    offset = remote - (before + time.time()) / 2
    assert abs(offset) < limit, f"clock is off by {offset:+.0f} s (limit {limit:.0f} s; Kerberos fails at 300 s)"
    print(f"{offset:+.1f} s")


@kind
def check_firewall(host: Host, allow_from: list[str]) -> None:
    res = host.run("nft -j list table inet provision")
    assert res.rc == 0, "the provision nftables table is missing (firewall not loaded)"
    items = json.loads(res.stdout)["nftables"]
    sets = {i["set"]["name"]: i["set"] for i in items if "set" in i}
    elements = []
    for el in sets.get("allowed_v4", {}).get("elem", []):
        if isinstance(el, dict) and "prefix" in el:
            elements.append(f"{el['prefix']['addr']}/{el['prefix']['len']}")
        elif isinstance(el, str):
            elements.append(f"{el}/32")
    want = {str(ipaddress.ip_network(n)) for n in allow_from}
    got = {str(ipaddress.ip_network(n, strict=False)) for n in elements}
    assert got == want, f"allowed sources are {sorted(got)}, the spec says {sorted(want)}"
    chains = [i["chain"] for i in items if "chain" in i and i["chain"].get("hook") == "input"]
    assert chains and all(c.get("policy") == "drop" for c in chains), "input policy is not drop"
    open_rules = []
    for item in items:
        rule = item.get("rule")
        if not rule or not any("accept" in e for e in rule["expr"]):
            continue
        text = json.dumps(rule["expr"])
        benign = (
            ('"ct"' in text and "established" in text)
            or '"iifname"' in text
            or '"iif"' in text
            or ('"l4proto"' in text and "icmp" in text)
        )
        if not benign and "@allowed_v" not in text:
            open_rules.append(f"handle {rule.get('handle')}: {_describe(rule['expr'])}")
    assert not open_rules, "rules accept traffic from outside the spec's subnets: " + "; ".join(open_rules)


def _describe(expr: list[dict[str, Any]]) -> str:
    parts = []
    for e in expr:
        if "match" in e:
            left = e["match"]["left"]
            field = left.get("payload", {}).get("field") or next(iter(left), "")
            parts.append(f"{field} {e['match']['right']}")
        elif "accept" in e:
            parts.append("accept")
    return " ".join(parts)


# --------------------------------------------------------------------------- workgroup peers


@kind
def check_smbd(host: Host, netbios: bool) -> None:
    smbd = host.service("smbd")
    assert smbd.is_running, "smbd is not running"
    assert smbd.is_enabled, "smbd is not enabled at boot"
    assert host.socket("tcp://0.0.0.0:445").is_listening or host.socket("tcp://:::445").is_listening, (
        "nothing listens on port 445"
    )
    if not netbios:
        assert not host.service("nmbd").is_running, "nmbd (NetBIOS) runs although the spec turns NetBIOS off"


@kind
def check_smb1_refused(host: Host) -> None:
    res = host.run("smbclient -L //127.0.0.1 -N -m NT1 -t 5")
    assert res.rc != 0, "an SMB1 (NT1) session was accepted"


@kind
def check_guest_refused(host: Host) -> None:
    res = host.run("smbclient -L //127.0.0.1 -N -t 5")
    assert res.rc != 0, "anonymous/guest listing of shares was accepted"


# smb.conf parameters whose value is a list (order matters only for vfs objects).
_LIST_PARAMS = {"valid users", "invalid users", "read list", "write list", "admin users", "vfs objects"}
_OCTAL_PARAMS = {"create mask", "directory mask", "force create mode", "force directory mode"}
# What Samba uses for a parameter testparm leaves out because it is at its default.
SAMBA_DEFAULTS = {
    "comment": "",
    "read only": "yes",
    "guest ok": "no",
    "browseable": "yes",
    "store dos attributes": "yes",
    "map archive": "yes",
    "inherit acls": "no",
    "map acl inherit": "no",
    "create mask": "0744",
    "force create mode": "0000",
    "directory mask": "0755",
    "vfs objects": "",
}


def _tokens(value: str) -> list[str]:
    """A list parameter's entries, quotes removed, backslashes kept (LAB\\alice)."""
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace += ","
    lexer.escape = ""
    return [t.lower() for t in lexer]


def normalise(key: str, value: str) -> Any:
    """A parameter's value in a form that compares the way Samba reads it."""
    key = key.lower()
    value = value.strip()
    if key in _LIST_PARAMS:
        tokens = _tokens(value)
        return tokens if key == "vfs objects" else sorted(set(tokens))
    if key in _OCTAL_PARAMS:
        return int(value, 8) if value else 0
    low = value.lower()
    if low in ("yes", "true", "on", "no", "false", "off"):
        return low in ("yes", "true", "on")
    return value if key in ("path", "comment") else low


def share_option_problems(expected: list[list[str]], actual: dict[str, str]) -> list[str]:
    """How smb.conf's section differs from the planned one: values that differ, and
    parameters nobody planned (a ``force user`` or ``root preexec`` added by hand)."""
    want = {k.lower(): v for k, v in expected}
    problems = []
    for key, value in want.items():
        have = actual.get(key, SAMBA_DEFAULTS.get(key))
        if have is None or normalise(key, have) != normalise(key, value):
            problems.append(f"{key} = {have if have is not None else '(unset)'}, the spec means {value}")
    for key in sorted(set(actual) - set(want)):
        problems.append(f"{key} = {actual[key]} is set by hand (not from the spec)")
    return problems


def _unqualified(name: str) -> str:
    """An account as getfacl shows it: octal escapes undone, without NETBIOS\\ (winbind default domain)."""
    name = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), name)
    return name.rsplit("\\", 1)[-1].lower()


def normalise_acl(entries: list[str]) -> set[str]:
    """ACL entries in one notation: planner's ``d:u:LAB\\alice:rwx`` and getfacl's ``default:user:alice:rwx``."""
    long = {"u": "user", "g": "group", "o": "other", "m": "mask"}
    out = set()
    for raw in entries:
        e = raw.strip()
        if not e or e.startswith("#"):
            continue
        default = e.startswith(("d:", "default:"))
        e = e.split(":", 1)[1] if default else e
        kind, _, rest = e.partition(":")
        who, _, perms = rest.rpartition(":")
        out.add(f"{'default:' if default else ''}{long.get(kind, kind)}:{_unqualified(who)}:{perms}")
    return out


def _section(host: Host, name: str) -> dict[str, str]:
    """One smb.conf section as Samba reads it (testparm): parameter (lower case) -> value."""
    res = host.run("testparm -s --section-name=%s 2>/dev/null", name)
    actual = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            actual[key.strip().lower()] = value.strip()
    return actual


@kind
def check_share_plan(
    host: Host,
    name: str,
    path: str,
    options: list[list[str]],
    owner: str,
    group: str,
    mode: str,
    acl: list[str],
    nt_acls: bool,
) -> None:
    """The share is exactly what the planner (the roles' own) makes of the spec: its smb.conf
    section, its directory's owner, group, mode and ACL, and on a domain file server no NT
    ACL of its own on the share's root (one set from Windows overrides the spec's)."""
    actual = _section(host, name)
    assert actual, f"share [{name}] is not configured in smb.conf"
    problems = [f"smb.conf [{name}]: {p}" for p in share_option_problems(options, actual)]
    st = host.run("stat -c '%%U\t%%G\t%%a' %s", path)
    assert st.rc == 0, f"{path} does not exist"
    user, grp, octal = st.stdout.strip().split("\t")
    if _unqualified(user) != _unqualified(owner) or _unqualified(grp) != _unqualified(group):
        problems.append(f"{path} is owned by {user}:{grp}, the spec means {owner}:{group}")
    if int(octal, 8) != int(mode, 8):
        problems.append(f"{path} has mode {int(octal, 8):04o}, the spec means {int(mode, 8):04o}")
    facl = host.run("getfacl -cE --absolute-names %s", path)
    have, want = normalise_acl(facl.stdout.splitlines()), normalise_acl(acl)
    if have != want:
        extra, missing = sorted(have - want), sorted(want - have)
        parts = [f"extra {', '.join(extra)}"] if extra else []
        parts += [f"missing {', '.join(missing)}"] if missing else []
        problems.append(f"{path} ACL differs: " + "; ".join(parts))
    if nt_acls and host.run("getfattr --absolute-names -n security.NTACL %s", path).rc == 0:
        problems.append(f"{path} carries an NT ACL set by hand (from Windows or smbcacls); the next apply removes it")
    assert not problems, "; ".join(problems)


def parse_testparm(text: str) -> list[tuple[str, dict[str, str]]]:
    """The sections of ``testparm -s`` output, in order: (name as written, {parameter: value}).

    Parameter names are lower-cased; comments and blank lines are skipped.
    """
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].strip(), {}))
            continue
        key, sep, value = line.partition("=")
        if sep and sections:
            sections[-1][1][key.strip().lower()] = value.strip()
    return sections


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "1", "on")


def undeclared_sections(
    sections: list[tuple[str, dict[str, str]]], shares: list[str], printers: list[str], builtin: list[str]
) -> list[str]:
    """What smb.conf serves beyond the spec, one description each ("share [x] (path /p)", "printer [y]").

    Names compare case-insensitively, as Samba's do; [global] is never a share.
    """
    allowed = {n.lower() for n in (*shares, *printers, *builtin, "global")}
    out = []
    for name, params in sections:
        if name.lower() in allowed:
            continue
        printable = _yes(params.get("printable")) or _yes(params.get("print ok"))
        path = params.get("path")
        out.append(f"{'printer' if printable else 'share'} [{name}]" + (f" (path {path})" if path else ""))
    return out


@kind
def check_served_shares(host: Host, shares: list[str], printers: list[str], builtin: list[str]) -> None:
    """Every section smb.conf serves is one the spec declares (or one the roles add)."""
    res = host.run("testparm --suppress-prompt")
    assert res.rc == 0, f"testparm cannot read smb.conf: {(res.stderr or res.stdout).strip()[-300:]}"
    sections = parse_testparm(res.stdout)
    extra = undeclared_sections(sections, shares, printers, builtin)
    assert not extra, "smb.conf serves what the spec does not declare: " + "; ".join(extra)
    print(", ".join(f"[{name}]" for name, _ in sections if name.lower() != "global") or "no shares")


@kind
def check_printer(host: Host, name: str, uri: str, options: list[list[str]]) -> None:
    """The printer is served as planned: its smb.conf section, and a CUPS queue to the spec's device
    that is enabled and accepting jobs (what provision_print_queues keeps)."""
    actual = _section(host, name)
    assert actual, f"printer [{name}] is not configured in smb.conf"
    problems = [f"smb.conf [{name}]: {p}" for p in share_option_problems(options, actual)]
    # lpstat -v shortens file: URIs; lpoptions shows the device as it was given.
    opts = host.run("lpoptions -p %s", name)
    device = next((w.split("=", 1)[1] for w in shlex.split(opts.stdout) if w.startswith("device-uri=")), None)
    if opts.rc != 0 or device is None:
        problems.append(f"CUPS has no queue {name}")
    else:
        if device != uri:
            problems.append(f"queue {name} prints to {device}, the spec means {uri}")
        if not re.search(rf"^printer {re.escape(name)} .*enabled since", host.run("lpstat -p %s", name).stdout, re.M):
            problems.append(f"queue {name} is disabled")
        if not re.search(rf"^{re.escape(name)} accepting requests", host.run("lpstat -a %s", name).stdout, re.M):
            problems.append(f"queue {name} rejects jobs")
    assert not problems, "; ".join(problems)


@kind
def check_local_user(host: Host, name: str) -> None:
    assert host.user(name).exists, f"user {name} does not exist"
    res = host.run("pdbedit -L -u %s", name)
    assert res.rc == 0, f"user {name} has no Samba account"


# Asks PAM's account phase (what pam_access or pam_listfile, pam_sss and pam_winbind decide at an SSH logon)
# for each user named in argv, as sshd would from a remote address, and prints "USER in",
# "USER out" or "USER absent". No authentication and no session: nothing is created on the
# host (su would run the session phase: home directories, a systemd user manager).
PAM_ACCOUNT_PROBE = r"""
import ctypes, pwd, sys
pam = ctypes.CDLL("libpam.so.0")
Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
class Conv(ctypes.Structure):
    _fields_ = [("conv", Callback), ("appdata", ctypes.c_void_p)]
conv = Conv(Callback(lambda n, msg, resp, data: 19), None)  # PAM_CONV_ERR: nothing to ask
PAM_TTY, PAM_RHOST, PAM_NEW_AUTHTOK_REQD = 3, 4, 12
pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Conv), ctypes.POINTER(ctypes.c_void_p)]
pam.pam_set_item.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
pam.pam_acct_mgmt.argtypes = [ctypes.c_void_p, ctypes.c_int]
pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
for user in sys.argv[1:]:
    try:
        pwd.getpwnam(user)
    except KeyError:
        print(user, "absent")
        continue
    handle = ctypes.c_void_p()
    rc = pam.pam_start(b"sshd", user.encode(), ctypes.byref(conv), ctypes.byref(handle))
    if rc == 0:
        pam.pam_set_item(handle, PAM_TTY, b"ssh")
        pam.pam_set_item(handle, PAM_RHOST, b"192.0.2.1")
        rc = pam.pam_acct_mgmt(handle, 0)
        pam.pam_end(handle, rc)
    # A password that must be changed still lets the user in (to change it).
    print(user, "in" if rc in (0, PAM_NEW_AUTHTOK_REQD) else "out")
"""


@kind
def check_login_policy(host: Host, expected: dict[str, dict[str, Any]]) -> None:
    """The policy as PAM and sudo apply it: PAM's account phase for sshd (pam_access or pam_listfile, pam_sss,
    pam_winbind) decides for each user with an account here, and sudo -l lists what each may
    run as root."""
    names = " ".join(shlex.quote(n) for n in sorted(expected))
    script = (
        f"python3 -c {shlex.quote(PAM_ACCOUNT_PROBE)} {names} && for u in {names}; do "
        'echo "$u sudo $(sudo -n -l -U "$u" 2>/dev/null | grep -F "(root)" | tr -s " " | tr "\\n" ";")"; done'
    )
    res = host.run(script)
    assert res.rc == 0, f"cannot ask PAM and sudo: {res.stderr.strip()[:200]}"
    login: dict[str, str] = {}
    sudo: dict[str, str] = {}
    for line in res.stdout.splitlines():
        name, _, rest = line.partition(" ")
        if rest.startswith("sudo"):
            sudo[name] = rest[4:].strip()
        else:
            login[name] = rest.strip()
    problems = []
    for name, want in sorted(expected.items()):
        if login.get(name) == "absent":
            continue
        if (login.get(name) == "in") != want["login"]:
            problems.append(f"{name} {'may not' if want['login'] else 'may'} log in")
        granted = sudo.get(name, "")
        for command in want["sudo"]:
            if command not in granted:
                problems.append(f"{name} may not sudo {command}")
        if not want["sudo"] and granted:
            problems.append(f"{name} may sudo ({granted.strip(';')})")
    assert not problems, "; ".join(problems)


# --------------------------------------------------------------------------- domain


@kind
def check_samba_dc(host: Host) -> None:
    svc = host.service("samba-ad-dc")
    assert svc.is_running, "samba-ad-dc is not running"
    assert svc.is_enabled, "samba-ad-dc is not enabled at boot"


@kind
def check_srv_records(host: Host, realm: str) -> None:
    for record in (f"_ldap._tcp.{realm}", f"_kerberos._udp.{realm}"):
        res = host.run("host -t SRV %s 127.0.0.1", record)
        assert res.rc == 0 and "has SRV record" in res.stdout, f"{record} does not resolve"


@kind
def check_mx_record(host: Host, domain: str, hosts: list[str]) -> None:
    res = host.run("host -t MX %s 127.0.0.1", domain)
    found = sorted(
        line.rsplit(" ", 1)[-1].rstrip(".") for line in res.stdout.splitlines() if "mail is handled by" in line
    )
    missing = sorted(set(hosts) - set(found))
    assert res.rc == 0 and not missing, f"MX of {domain} lacks {', '.join(missing)} (has {', '.join(found) or 'none'})"


@kind
def check_mail_services(host: Host) -> None:
    for unit in ("postfix.service", "dovecot.service"):
        state = host.run("systemctl is-active %s", unit).stdout.strip()
        assert state == "active", f"{unit} is {state}"


@kind
def check_tls_port(host: Host, port: int, starttls: str, name: str) -> None:
    """The service on ``port`` speaks TLS with a certificate for ``name`` that the host's trust store verifies."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-verify_hostname", name, "-verify_return_error"]
    argv += ["-starttls", starttls] if starttls else []
    res = host.run(shlex.join(argv) + " </dev/null 2>&1")
    codes = re.findall(r"Verify return code: (\d+) \(([^)]*)\)", res.stdout)
    assert codes and codes[-1][0] == "0", (
        f"port {port}: no verified TLS for {name}: {codes[-1][1] if codes else res.stdout.strip()[-200:]}"
    )


@kind
def check_mailboxes(host: Host, users: list[str], domain: str) -> None:
    """Every spec user is found by Postfix (mailbox map) and Dovecot (userdb), both from the directory."""
    missing = []
    for name in users:
        address = f"{name}@{domain}"
        postfix = host.run("postmap -q %s proxy:ldap:/etc/postfix/ldap-mailboxes.cf", address)
        dovecot = host.run("doveadm user %s", name)
        if postfix.rc != 0 or not postfix.stdout.strip():
            missing.append(f"{address} (postfix)")
        if dovecot.rc != 0:
            missing.append(f"{name} (dovecot)")
    assert not missing, "no mailbox for " + ", ".join(missing)


@kind
def check_database_services(host: Host, unit: str) -> None:
    for name in (unit, "provision-postgres-keytab.path"):
        state = host.run("systemctl is-active %s", name).stdout.strip()
        assert state == "active", f"{name} is {state}"


@kind
def check_service_keys(host: Host, principal: str, keytab: str) -> None:
    """A ticket the KDC issues now for the service opens with PostgreSQL's keytab (its keys
    follow the machine password); the ticket is asked for with the machine account's own."""
    account = host.run("net ads status -P").stdout
    name = next(
        (line.split(":", 1)[1].strip() for line in account.splitlines() if line.startswith("sAMAccountName:")), ""
    )
    assert name, "cannot read the machine account (net ads status -P)"
    script = 'c=$(mktemp) && trap "rm -f $c" EXIT && KRB5CCNAME=FILE:$c kinit -k %s && KRB5CCNAME=FILE:$c kvno -k %s %s'
    res = host.run(script, name, keytab, principal)
    assert res.rc == 0, (
        f"the keys of {principal} in {keytab} do not open a ticket: {(res.stderr or res.stdout).strip()[:200]}"
    )


@kind
def check_databases(host: Host, wanted: dict[str, dict[str, Any]]) -> None:
    """Each database exists with its owner, and every account named for it may connect."""
    sql = "select json_object_agg(datname, pg_get_userbyid(datdba)) from pg_database"
    res = host.run("runuser -u postgres -- psql -XAtq -c %s", sql)
    assert res.rc == 0, f"cannot ask PostgreSQL: {res.stderr.strip()[:200]}"
    owners = json.loads(res.stdout or "{}")
    problems = []
    for name, want in sorted(wanted.items()):
        if name not in owners:
            problems.append(f"{name} is missing")
            continue
        if owners[name] != want["owner"]:
            problems.append(f"{name} is owned by {owners[name]}, the spec says {want['owner']}")
        for role in want["connect"]:
            q = f"select has_database_privilege({_sql_literal(role)}, {_sql_literal(name)}, 'CONNECT')"
            ok = host.run("runuser -u postgres -- psql -XAtq -c %s", q).stdout.strip()
            if ok != "t":
                problems.append(f"{role} may not connect to {name}")
    assert not problems, "; ".join(problems)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@kind
def check_dbcheck(host: Host) -> None:
    res = host.run("samba-tool dbcheck --cross-ncs")
    assert res.rc == 0, f"samba-tool dbcheck found errors: {res.stdout.strip().splitlines()[-1:]}"


@kind
def check_replication(host: Host) -> None:
    res = host.run("samba-tool drs showrepl --summary")
    assert res.rc == 0 and "[ALL GOOD]" in res.stdout, f"replication is not healthy: {res.stdout.strip()[:300]}"


@kind
def check_directory(host: Host, users: list[str], groups: dict[str, list[str]]) -> None:
    listed = set(host.check_output("samba-tool user list").split())
    missing = sorted(set(users) - listed)
    assert not missing, f"users missing from the directory: {', '.join(missing)}"
    for group, members in groups.items():
        res = host.run("samba-tool group listmembers %s", group)
        assert res.rc == 0, f"group {group} is missing from the directory"
        have = set(res.stdout.split())
        assert set(members) <= have, f"group {group} lacks {', '.join(sorted(set(members) - have))}"


@kind
def check_password_policy(host: Host, min_length: int, history: int, lockout_threshold: int, complexity: bool) -> None:
    out = host.check_output("samba-tool domain passwordsettings show")
    values = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}
    assert values.get("Minimum password length") == str(min_length), (
        f"min length is {values.get('Minimum password length')}"
    )
    assert values.get("Password history length") == str(history), "password history differs"
    assert values.get("Account lockout threshold (attempts)") == str(lockout_threshold), "lockout threshold differs"
    assert values.get("Password complexity") == ("on" if complexity else "off"), "password complexity differs"


@kind
def check_joined(host: Host, client: str, realm: str) -> None:
    """The join as the host's role made it: winbind members (domain_member) by the trust
    secret (wbinfo -t: a netlogon logon of the machine account, which fails for a deleted
    or reset account as net ads testjoin does, at two thirds of its cost), sssd clients
    (domain_client) by a Kerberos logon of the machine account from its keytab (what adcli
    testjoin proves, without its 0.8 s of CLDAP pings)."""
    if client == "winbind":
        res = host.run("wbinfo -t")
        assert res.rc == 0, (
            f"the machine account in {realm} is broken (wbinfo -t): {res.stdout.strip() or res.stderr.strip()}"
        )
    else:
        res = host.run("klist -k /etc/krb5.keytab")
        machine = sorted({f.split()[-1] for f in res.stdout.splitlines() if f.strip().endswith(f"$@{realm}")})
        assert res.rc == 0 and machine, f"the host is not joined to {realm}: no machine account key in /etc/krb5.keytab"
        res = host.run("kinit -k -c MEMORY:provision-verify %s", machine[0])
        assert res.rc == 0, (
            f"the machine account {machine[0]} no longer logs on with its keytab (kinit -k): {res.stderr.strip()}"
        )


@kind
def check_domain_user(host: Host, name: str) -> None:
    res = host.run("getent passwd %s", name)
    assert res.rc == 0, f"domain user {name} does not resolve (getent passwd)"


@kind
def check_a_record(host: Host, fqdn: str, address: str) -> None:
    res = host.run("host -t A %s", fqdn)
    found = sorted(line.rsplit(" ", 1)[-1] for line in res.stdout.splitlines() if " has address " in line)
    assert res.rc == 0 and found == [address], f"A records of {fqdn}: {', '.join(found) or 'none'}; want {address} only"


@kind
def check_resolver(host: Host, dcs: list[str]) -> None:
    conf = host.file("/etc/resolv.conf").content_string
    servers = [line.split()[1] for line in conf.splitlines() if line.startswith("nameserver")]
    assert servers and all(s in dcs for s in servers), f"resolvers are {servers}, should be the DCs {dcs}"
