#!/usr/bin/python
"""Ansible module: find the roles of a play already converged on a host, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_converged
short_description: Fingerprint what the roles of a play manage and tell which must run
description:
  - Fast re-apply. For every role in I(roles) it hashes what the role's watch list names (files,
    directories with their ACLs, whole directory trees, systemd units, packages, accounts, command
    outputs) and compares that, and the controller's digest of the role's inputs, with what was
    recorded on the host after the role last converged.
  - A role is clean only when both match and its wanted Samba passwords (I(passwords)) are the
    stored ones. Everything else (never recorded, changed inputs, a file edited or a service stopped
    by hand, an unreadable record, a role without a watch list) is dirty. A role already known to be
    dirty is not fingerprinted, so a first apply pays for no command of a watch list.
  - With I(record), the named roles' fingerprints are stored instead (after they converged).
  - Reports C(changed=false) always; the state file is provision's own bookkeeping, not managed
    configuration. Check mode answers the same and records nothing.
  - Standard library only on the host, beyond Ansible's own module code; Samba's Python bindings
    where I(passwords) are given (present once Samba is).
version_added: "0.1.0"
author: provision maintainers
options:
  state_file:
    description: Where the host keeps the fingerprints of its converged roles (written mode 0600).
    type: path
    required: true
  roles:
    description:
      - Each role of the play, by name, with C(inputs) (the controller's digest of its variables and
        code) and C(watch) (a dict of lists - files, dirs, trees, units, packages, users, groups,
        commands - or null when the role has none and so always runs).
      - Worked out by the action plugin from I(inputs_of) for the probe; given as is to record.
    type: dict
    default: {}
  inputs_of:
    description:
      - The probe - the roles of the play, in play order. The module's action plugin (on the controller)
        turns them into I(roles) and I(passwords) from the task's variables and removes this option.
    type: list
    elements: str
  ignore:
    description:
      - With I(inputs_of), a regular expression of variable names left out of the inputs (secrets,
        run-time switches); secrets' values are also scrubbed from the rest. Used by the action plugin.
    type: str
    default: password|secret
  passwords:
    description: By role, the Samba passwords it wants (user to password), checked by NT hash.
    type: dict
    default: {}
  record:
    description: Store these roles' fingerprints (they just converged) instead of comparing.
    type: list
    elements: str
    default: []
  full:
    description:
      - Every role runs, whatever its fingerprints say (C(provision apply --full)); the answer
        still carries the trees and facts.
    type: bool
    default: false
  packages:
    description:
      - Debian packages the play's roles install, whatever the roles' state. The answer's
        C(packages_installed) says which of them are installed and configured, so that a host which
        has them all skips its apt run (a module run and an apt cache update) even when the roles
        run. One dpkg-query.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Fingerprint what the roles of this play manage
  provision_converged:
    state_file: /var/lib/provision/converged.json
    roles:
      base: {inputs: 5d41402abc4b2a76b9719d911017c592, watch: {files: [/etc/hosts], units: [chrony.service]}}
  register: converged_probe

- name: Record the roles that converged
  provision_converged:
    state_file: /var/lib/provision/converged.json
    roles: "{{ converged_probe.request }}"
    record: [base]
"""

RETURN = r"""
dirty:
  description: The roles that must run, in name order (all of them with I(full)).
  returned: success
  type: list
  elements: str
reasons:
  description: Why each dirty role runs (never recorded, inputs changed, live state changed, no watch list...).
  returned: success
  type: dict
why:
  description: The reasons as one line, or that every role is converged.
  returned: success
  type: str
trees:
  description: Digest of each watched directory tree, by path (compared across hosts).
  returned: success
  type: dict
cap_sys_time:
  description: Whether the service manager may set the clock (chronyd needs it).
  returned: success
  type: bool
facts:
  description:
    - The few host facts the roles use - python (this interpreter), ssh_connection, hostname (the
      running one) and apt_lists (whether /var/lib/apt/lists holds any package index).
  returned: success
  type: dict
request:
  description: I(roles) back, for the record step.
  returned: success
  type: dict
packages_installed:
  description:
    - Those of I(packages) that are installed and configured (dpkg status C(ii) or C(hi)), in the
      order given. A package not named here is missing, half-installed or unknown.
  returned: success
  type: list
  elements: str
recorded:
  description: The roles whose fingerprints were stored.
  returned: success
  type: list
  elements: str
"""

import grp  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

ENV = dict(os.environ, LC_ALL="C", SYSTEMD_PAGER="", SYSTEMD_COLORS="0")


def run(argv: list[str]) -> dict[str, Any]:
    try:
        res = subprocess.run(argv, capture_output=True, env=ENV, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": type(exc).__name__}
    return {"rc": res.returncode, "out": hashlib.sha256(res.stdout).hexdigest()}


def owner(st: os.stat_result) -> list[Any]:
    user: str | int
    group: str | int
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = st.st_uid
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = st.st_gid
    return [user, group, oct(st.st_mode)]


def stat(path: str) -> os.stat_result | int:
    try:
        return os.lstat(path)
    except OSError as exc:
        return exc.errno or -1


def file_state(path: str) -> dict[str, Any]:
    st = stat(path)
    if isinstance(st, int):
        return {"absent": st}
    state: dict[str, Any] = {"meta": owner(st)}
    if os.path.islink(path):
        state["link"] = os.readlink(path)
    elif os.path.isfile(path):
        with open(path, "rb") as fh:
            state["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    return state


def acl(path: str, name: str) -> str | None:
    try:
        return hashlib.sha256(os.getxattr(path, name, follow_symlinks=False)).hexdigest()
    except OSError:
        return None


def dir_state(path: str) -> dict[str, Any]:
    st = stat(path)
    if isinstance(st, int):
        return {"absent": st}
    return {
        "meta": owner(st),
        "acl": acl(path, "system.posix_acl_access"),
        "default_acl": acl(path, "system.posix_acl_default"),
        # An NT ACL stored by Samba's acl_xattr (set from Windows or smbcacls) overrides the spec's.
        "nt_acl": acl(path, "security.NTACL"),
    }


def tree_state(path: str) -> dict[str, Any]:
    """One digest of a whole tree: names, types, link targets and file contents
    (not owners: trees are compared across hosts whose ids may differ)."""
    digest = hashlib.sha256()
    if isinstance(stat(path), int):
        return {"absent": True}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files) + dirs:
            full = os.path.join(root, name)
            entry = ["d"] if os.path.isdir(full) and not os.path.islink(full) else file_state(full)
            if isinstance(entry, dict):
                entry.pop("meta", None)
            digest.update(json.dumps([os.path.relpath(full, path), entry], sort_keys=True).encode())
    return {"sha256": digest.hexdigest()}


def units_state(names: list[str]) -> dict[str, Any]:
    if not names:
        return {}
    props = "Id,LoadState,ActiveState,UnitFileState"
    res = subprocess.run(
        ["systemctl", "show", "--property=" + props, "--", *names],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    return {"rc": res.returncode, "show": res.stdout.strip().split("\n\n")}


def dpkg_query(fmt: str, names: list[str]) -> subprocess.CompletedProcess[str]:
    """dpkg-query -W of ``names`` (unknown ones are left out of its output, rc 1)."""
    return subprocess.run(
        ["dpkg-query", "-W", "-f", fmt, "--", *names], capture_output=True, text=True, env=ENV, timeout=60, check=False
    )


def packages_state(names: list[str]) -> dict[str, Any]:
    if not names:
        return {}
    res = dpkg_query("${Package} ${db:Status-Abbrev} ${Version}\n", names)
    return {"rc": res.returncode, "out": sorted(res.stdout.splitlines())}


def host_facts() -> dict[str, Any]:
    """The few host facts the roles use, so that plays need not gather facts: this interpreter,
    SSH_CONNECTION (whose address the firewall must keep allowed), the running host name
    (base sets it only where it differs) and whether apt has package lists at all (an image
    whose lists were wiped looks freshly updated to apt's cache_valid_time, and then finds no
    package to install)."""
    try:
        apt_lists = any("_Packages" in name for name in os.listdir("/var/lib/apt/lists"))
    except OSError:
        apt_lists = False
    return {
        "python": sys.executable,
        "ssh_connection": os.environ.get("SSH_CONNECTION", ""),
        "hostname": socket.gethostname(),
        "apt_lists": apt_lists,
    }


def installed_packages(names: list[str]) -> list[str]:
    """Those of ``names`` dpkg has installed and configured, with no error flag (in ``names`` order)."""
    if not names:
        return []
    res = dpkg_query("${Package}\t${db:Status-Abbrev}\n", names)
    ok = set()
    for line in res.stdout.splitlines():
        name, _, status = line.partition("\t")
        if status.rstrip() in ("ii", "hi"):
            ok.add(name)
    return [n for n in names if n in ok]


def account_state(name: str) -> list[Any] | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem)
    return [pw.pw_uid, pw.pw_gid, pw.pw_gecos, pw.pw_dir, pw.pw_shell, groups]


def group_state(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def samba_passwords(wanted: dict[str, str]) -> bool:
    """Whether every wanted Samba password is the stored one (NT hashes, no logon)."""
    if not wanted:
        return True
    try:
        from samba.credentials import Credentials  # python3-samba, present once Samba is
    except ImportError:
        return False
    try:
        res = subprocess.run(["pdbedit", "-L", "-w"], capture_output=True, text=True, env=ENV, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    stored: dict[str, tuple[str, bool]] = {}
    for line in res.stdout.splitlines():
        fields = line.split(":")
        if len(fields) >= 5:
            stored[fields[0]] = (fields[3].upper(), "D" in fields[4])
    for user, password in sorted(wanted.items()):
        creds = Credentials()
        creds.set_password(password)
        if stored.get(user) != (creds.get_nt_hash().hex().upper(), False):
            return False
    return True


def cap_sys_time() -> bool:
    """Whether the service manager may set the clock (CAP_SYS_TIME, bit 25 of CapBnd)."""
    try:
        with open("/proc/1/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapBnd:"):
                    return bool(int(line.split()[1], 16) >> 25 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True


def fingerprint(watch: dict[str, Any], trees: dict[str, Any]) -> str:
    """Digest of everything ``watch`` names; its trees are read from ``trees`` (digested once)."""
    state = {
        "files": {p: file_state(p) for p in watch.get("files", [])},
        "dirs": {p: dir_state(p) for p in watch.get("dirs", [])},
        "trees": {p: trees[p] for p in watch.get("trees", [])},
        "units": units_state(watch.get("units", [])),
        "packages": packages_state(watch.get("packages", [])),
        "users": {u: account_state(u) for u in watch.get("users", [])},
        "groups": {g: group_state(g) for g in watch.get("groups", [])},
        "commands": [[argv, run(argv)] for argv in watch.get("commands", [])],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def probe(
    state_file: str,
    roles: dict[str, Any],
    passwords: dict[str, Any],
    record: list[str],
    write: bool,
    full: bool = False,
    packages: list[str] | None = None,
) -> dict[str, Any]:
    """The answer for every role of ``roles``; with ``record``, stores those roles (when ``write``).

    The play decides from ``dirty`` alone (a meta task's condition is evaluated for every host
    in the controller's main process, so it must read a plain answer, not derive one).
    """
    stored = load(state_file)
    answer: dict[str, Any] = {
        "dirty": [],
        "reasons": {},
        "recorded": [],
        "trees": {},
        "cap_sys_time": cap_sys_time(),
        "facts": host_facts(),
        "request": roles,
        "packages_installed": installed_packages(packages or []),
    }
    for role, spec in sorted(roles.items()):
        if not isinstance(spec, dict) or spec.get("watch") is None:
            answer["dirty"].append(role)
            answer["reasons"][role] = "no watch list"
            continue
        # Trees are answered for every role, dirty or not: roles compare them across hosts.
        for tree in spec["watch"].get("trees", []):
            answer["trees"].setdefault(tree, tree_state(tree).get("sha256"))
        if full and role not in record:
            answer["dirty"].append(role)
            answer["reasons"][role] = "full run asked for"
            continue
        if role in record:
            stored[role] = {"inputs": spec.get("inputs"), "live": fingerprint(spec["watch"], answer["trees"])}
            answer["recorded"].append(role)
            continue
        old = stored.get(role)
        # A role already known to be dirty is not fingerprinted: a first apply pays
        # for no command of a watch list.
        if not isinstance(old, dict):
            reason = "never recorded"
        elif old.get("inputs") != spec.get("inputs"):
            reason = "inputs changed"
        elif old.get("live") != fingerprint(spec["watch"], answer["trees"]):
            reason = "live state changed"
        elif not samba_passwords(passwords.get(role) or {}):
            reason = "a Samba password differs"
        else:
            continue
        answer["dirty"].append(role)
        answer["reasons"][role] = reason
    answer["why"] = "; ".join(f"{r}: {why}" for r, why in sorted(answer["reasons"].items())) or (
        "nothing to do: every role is converged"
    )
    if answer["recorded"] and write:
        os.makedirs(os.path.dirname(state_file), mode=0o700, exist_ok=True)
        tmp = state_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(stored, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, state_file)
    return answer


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state_file": {"type": "path", "required": True},
            "roles": {"type": "dict", "default": {}},
            "inputs_of": {"type": "list", "elements": "str"},
            "ignore": {"type": "str", "default": "password|secret"},
            "passwords": {"type": "dict", "default": {}, "no_log": True},
            "record": {"type": "list", "elements": "str", "default": []},
            "full": {"type": "bool", "default": False},
            "packages": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    answer = probe(
        p["state_file"],
        p["roles"],
        p["passwords"],
        p["record"],
        write=not module.check_mode,
        full=p["full"],
        packages=p["packages"],
    )
    module.exit_json(changed=False, **answer)


if __name__ == "__main__":
    main()
