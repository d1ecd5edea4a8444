#!/usr/bin/python3
r"""The directory's login and sudo policy for this host, as files PAM and sudo read, on a winbind member
or a DC; and group memberships no older than winbind's cache time.

sssd members ask the directory themselves (ad_access_filter, sssd's sudo provider); winbind has
neither, so this runs from a systemd timer and asks a DC with the machine account (net ads search -P):

- Who may log in: the users in this host's login group, nested groups followed (LDAP's in-chain
  match), one name per line in the file pam_listfile reads (the name as the directory spells it,
  in lower case, and both after WORKGROUP\). The login group is a distribution group, so it is in
  no user's token: winbind could not tell it from the user's groups, the directory can.
- Sudo: the sudoRole objects naming this host (or ALL), as sudoers lines checked with visudo. A
  rule it cannot express safely (wildcards, netgroups, negations, run-as other than root, options
  other than !authenticate) is left out and named on stderr.

Each file is replaced (atomically) only when it differs. When no DC answers, the files stay as they
were: nothing is dropped or opened up while offline.

winbind answers a user's groups from the logon data it cached at the user's last password logon
(the netsamlogon cache), which no timeout expires: a user taken out of a sudo rule's group on the DCs
would keep it. Entries older than --max-age seconds are dropped (net cache samlogon delete), so
winbind asks a DC again.
"""

from __future__ import annotations

import argparse
import calendar
import grp
import os
import pwd
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ATTRS = ["cn", "sudoUser", "sudoHost", "sudoCommand", "sudoRunAsUser", "sudoRunAs", "sudoOption", "sudoOrder"]
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. $-]{0,63}$")
COMMAND = re.compile(r"^(ALL|/[^\s,:=\\*?\[\]'\"!]+( [^\s,:=\\*?\[\]'\"!]+)*)$")


# sAMAccountType of user accounts: people and service accounts, not computers or trusts.
USER_ACCOUNT = "805306368"
IN_CHAIN = "1.2.840.113556.1.4.1941"


def ldap_escape(value: str) -> str:
    """``value`` as an LDAP filter's assertion value (RFC 4515)."""
    return "".join(f"\\{ord(c):02x}" if c in "\\*()\0" else c for c in value)


def login_filter(group_dn: str) -> str:
    """The users in ``group_dn``, directly or through nested groups."""
    return f"(&(sAMAccountType={USER_ACCOUNT})(memberOf:{IN_CHAIN}:={ldap_escape(group_dn)}))"


def parse(output: str) -> list[dict[str, list[str]]]:
    """``net ads search`` output as entries, each attribute -> values."""
    entries: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    for line in output.splitlines()[1:]:
        if not line.strip():
            if current:
                entries.append(current)
            current = {}
            continue
        key, sep, value = line.partition(": ")
        if sep:
            current.setdefault(key, []).append(value)
    if current:
        entries.append(current)
    return entries


def search(expression: str, attrs: list[str]) -> list[dict[str, list[str]]]:
    """The directory's entries matching ``expression``, asked with the machine account (results paged)."""
    proc = subprocess.run(
        ["net", "ads", "search", "-P", expression, *attrs],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("Got "):
        raise RuntimeError(f"no DC answered: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return parse(proc.stdout)


def login_names(entries: list[dict[str, list[str]]], workgroup: str) -> tuple[list[str], list[str]]:
    """The lines of the login list (pam_listfile compares the name as typed, case and all): each
    account's name as spelt, in lower case, and both after WORKGROUP\\; and the names left out
    (not a name sudo's and PAM's files can carry)."""
    names: set[str] = set()
    skipped: list[str] = []
    for entry in entries:
        for name in entry.get("sAMAccountName", []):
            if not NAME.match(name) or name.endswith("$"):
                skipped.append(name)
                continue
            for form in {name, name.lower()}:
                names.update((form, f"{workgroup}\\{form}", f"{workgroup.lower()}\\{form}"))
    return sorted(names), skipped


# Resolves a user (False) or group (True) name to its ID here; None when this host does not know it.
Resolver = Callable[[str, bool], "int | None"]


def no_ids(name: str, group: bool) -> int | None:
    return None


def local_ids(name: str, group: bool) -> int | None:
    """The ID NSS (winbind) gives the name. A DC's winbind names accounts DOMAIN\\name whatever
    smb.conf says, so sudo would not match "alice" or "%Domain Admins" there by name; by ID it does."""
    try:
        return grp.getgrnam(name).gr_gid if group else pwd.getpwnam(name).pw_uid
    except (KeyError, OSError):
        return None


def who(value: str, ids: Resolver = no_ids) -> str | None:
    """A sudoUser value as sudoers writes it: #uid or %#gid where this host resolves the name, else
    the user or %group by name (spaces escaped); None when not expressible."""
    group = value.startswith("%")
    name = value[1:] if group else value
    if not NAME.match(name):
        return None
    found = ids(name, group)
    if found is not None:
        return ("%#" if group else "#") + str(found)
    return ("%" if group else "") + name.replace(" ", "\\ ")


def lines_for(
    entries: list[dict[str, list[str]]], names: set[str], ids: Resolver = no_ids
) -> tuple[list[str], list[str]]:
    """sudoers lines of the rules naming one of ``names`` (or ALL), in sudoOrder, each rule after a
    comment with its name and accounts; and the rules left out."""
    kept: list[tuple[float, str, list[str]]] = []
    skipped: list[str] = []
    for entry in entries:
        cn = (entry.get("cn") or ["?"])[0]
        hosts = {h.lower() for h in entry.get("sudoHost", [])}
        if not (hosts & names or "all" in hosts):
            continue
        accounts = entry.get("sudoUser", [])
        users = [who(u, ids) for u in accounts]
        commands = entry.get("sudoCommand", [])
        runas = entry.get("sudoRunAsUser", []) + entry.get("sudoRunAs", [])
        options = entry.get("sudoOption", [])
        if (
            not users
            or None in users
            or not commands
            or not all(COMMAND.match(c) for c in commands)
            or any(r != "root" for r in runas)
            or any(o != "!authenticate" for o in options)
        ):
            skipped.append(cn)
            continue
        tag = "NOPASSWD: " if "!authenticate" in options else ""
        try:
            order = float((entry.get("sudoOrder") or ["0"])[0])
        except ValueError:
            order = 0.0
        rule = [f"{u} ALL=(root) {tag}{', '.join(commands)}" for u in users]
        kept.append((order, f"{cn}: {', '.join(accounts)}", rule))
    out = []
    for _, title, rule in sorted(kept):
        out.append(f"# {title}")
        out.extend(rule)
    return out, skipped


def stale_logon_data(listing: str, max_age: int, now: float) -> list[str]:
    """SIDs of the logon data (``net cache samlogon list``) cached more than ``max_age`` seconds ago."""
    stale = []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 7 or not parts[0].startswith("S-1-"):
            continue
        try:
            stamp = time.strptime(" ".join(parts[-6:-1]), "%a %b %d %H:%M:%S %Y")
            cached = float(calendar.timegm(stamp)) if parts[-1] == "UTC" else time.mktime(stamp)
        except ValueError:
            cached = 0.0
        if now - cached > max_age:
            stale.append(parts[0])
    return stale


def replace(target: str, text: str, mode: int, check: list[str] | None = None) -> bool:
    """Put ``text`` at ``target`` when it differs, atomically; ``check`` (with the new file's path
    appended) must accept it first. Whether the file changed."""
    try:
        with open(target) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".provision-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        if check:
            proc = subprocess.run([*check, tmp], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{check[0]} refused it: {proc.stdout}{proc.stderr}".strip())
        os.rename(tmp, target)
        tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)
    return True


def expire_logon_data(max_age: int) -> None:
    """Drop cached logon data (each user's groups) older than ``max_age`` seconds."""
    listed = subprocess.run(
        ["net", "cache", "samlogon", "list"], capture_output=True, text=True, check=False, timeout=60
    )
    for sid in stale_logon_data(listed.stdout, max_age, time.time()):
        subprocess.run(["net", "cache", "samlogon", "delete", sid], capture_output=True, check=False, timeout=60)


def sync_logins(args: argparse.Namespace) -> None:
    entries = search(login_filter(args.login_group), ["sAMAccountName"])
    names, skipped = login_names(entries, args.workgroup)
    for name in skipped:
        print(f"provision-sudoers-sync: account {name!r} left out of the login list", file=sys.stderr)
    if replace(args.logins, "".join(f"{n}\n" for n in names), 0o644):
        print(f"provision-sudoers-sync: {args.logins} now lets {len(entries) - len(skipped)} accounts log in")


def sync_sudo(args: argparse.Namespace) -> None:
    entries = search("(objectClass=sudoRole)", ATTRS)
    lines, skipped = lines_for(entries, {args.host.lower(), args.fqdn.lower()}, local_ids)
    for cn in skipped:
        print(f"provision-sudoers-sync: rule {cn} left out: not expressible safely here", file=sys.stderr)
    text = "# Sudo rules of the directory (sudoRole) for this host, by provision-sudoers-sync.\n"
    text += "".join(f"{line}\n" for line in lines)
    if replace(args.sudoers, text, 0o440, ["visudo", "-cf"]):
        print(f"provision-sudoers-sync: {args.sudoers} now holds {sum(not x.startswith('#') for x in lines)} lines")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="provision-sudoers-sync", description="The directory's login and sudo policy for this host."
    )
    parser.add_argument("--host", required=True, help="this host's short name, as sudoHost names it")
    parser.add_argument("--fqdn", required=True, help="this host's fully qualified name")
    parser.add_argument("--sudoers", required=True, help="the sudoers file to write")
    parser.add_argument("--max-age", type=int, required=True, help="seconds winbind's logon data is trusted")
    parser.add_argument("--login-group", required=True, help="DN of this host's login group")
    parser.add_argument("--logins", required=True, help="the login list to write (pam_listfile)")
    parser.add_argument("--workgroup", required=True, help="the domain's NetBIOS name")
    args = parser.parse_args(argv)
    failed = False
    try:
        expire_logon_data(args.max_age)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"provision-sudoers-sync: winbind's logon data not expired: {exc}", file=sys.stderr)
        failed = True
    for step in (sync_logins, sync_sudo):
        try:
            step(args)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            target = args.logins if step is sync_logins else args.sudoers
            print(f"provision-sudoers-sync: {exc}; {target} left as it is", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
