#!/usr/bin/python3
"""Sudo rules of the directory (sudoRole objects) as a sudoers file, for a winbind member or a DC; and
group memberships no older than winbind's cache time.

sssd members read sudoRole objects with sssd's sudo provider; winbind has none, so this runs
from a systemd timer: it asks a DC with the machine account (net ads search -P), keeps the
rules that name this host (or ALL), writes them as sudoers lines, checks the file with visudo
and puts it in place only when it differs. A rule it cannot express safely (wildcards, netgroups,
negations, run-as other than root, options other than !authenticate) is left out and named on
stderr. When no DC answers, the file stays as it was: rules are not dropped while offline.

winbind answers a user's groups from the logon data it cached at the user's last password logon
(the netsamlogon cache), which no timeout expires: a user taken out of a login group on the DCs
would keep logging in with a key or a Kerberos ticket. Entries older than MAX_AGE seconds are
dropped (net cache samlogon delete), so winbind asks a DC again.

Usage: provision-sudoers-sync HOST_NAME HOST_FQDN SUDOERS_FILE MAX_AGE
"""

from __future__ import annotations

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


def search() -> list[dict[str, list[str]]]:
    """The sudoRole objects of the directory, each as attribute -> values."""
    proc = subprocess.run(
        ["net", "ads", "search", "-P", "(objectClass=sudoRole)", *ATTRS],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("Got "):
        raise RuntimeError(f"no DC answered: {(proc.stderr or proc.stdout).strip()[-300:]}")
    entries: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines()[1:]:
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


def expire_logon_data(max_age: int) -> None:
    """Drop cached logon data (each user's groups) older than ``max_age`` seconds."""
    listed = subprocess.run(["net", "cache", "samlogon", "list"], capture_output=True, text=True, check=False)
    for sid in stale_logon_data(listed.stdout, max_age, time.time()):
        subprocess.run(["net", "cache", "samlogon", "delete", sid], capture_output=True, check=False)


def main() -> int:
    host, fqdn, target, max_age = sys.argv[1:5]
    expire_logon_data(int(max_age))
    try:
        entries = search()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"provision-sudoers-sync: {exc}; {target} left as it is", file=sys.stderr)
        return 1
    lines, skipped = lines_for(entries, {host.lower(), fqdn.lower()}, local_ids)
    for cn in skipped:
        print(f"provision-sudoers-sync: rule {cn} left out: not expressible safely here", file=sys.stderr)
    text = "# Sudo rules of the directory (sudoRole) for this host, by provision-sudoers-sync.\n"
    text += "".join(f"{line}\n" for line in lines)
    try:
        with open(target) as f:
            if f.read() == text:
                return 0
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".provision-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o440)
        check = subprocess.run(["visudo", "-cf", tmp], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            print(f"provision-sudoers-sync: visudo refused the rules: {check.stdout}{check.stderr}", file=sys.stderr)
            return 1
        os.rename(tmp, target)
        tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)
    print(f"provision-sudoers-sync: {target} now holds {sum(not line.startswith('#') for line in lines)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
