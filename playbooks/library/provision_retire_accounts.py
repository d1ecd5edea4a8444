#!/usr/bin/python
"""Ansible module: a workgroup peer's local accounts retired when the peer joins the domain - disabled and
renamed out of the domain's way, never deleted (issue 20)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_retire_accounts
short_description: Disable and rename a former workgroup peer's local users and groups, keeping them
description:
  - When a workgroup grows into a domain, the names of the peer's local users and groups become the
    directory's. A local C(alice) in C(/etc/passwd) would shadow the domain's C(alice) (the files come
    first in C(nsswitch.conf)), so each named local user is disabled and renamed with O(prefix) - locked
    password, expired account, C(nologin) shell - and keeps its UID, home directory and files. Its
    user-private group (same name, its primary group) is renamed with it; each of O(groups) is renamed
    too, unless it is a system group (below 1000, such as Debian's C(staff)), which keeps its name. The
    peer's Samba password database entry of the user is disabled first.
  - Only the local files are read (C(/etc/passwd), C(/etc/group), C(/etc/shadow)), never NSS, which
    already answers with the domain's accounts once the peer is joined.
  - Idempotent - a name already retired is only completed where a step is missing. A name that exists
    both as itself and retired is a conflict; every conflict is reported and nothing changes.
  - With O(state=restored) (a rolled back migration) each retired user gets its name back, is unlocked and
    no longer expired, gets its shell from O(shells) back and its Samba password database entry enabled;
    renamed groups get their names back.
  - Check mode reports what would change; diff mode shows the account lines before and after.
version_added: "0.1.0"
author: provision maintainers
options:
  users:
    description: Local user names to retire.
    type: list
    elements: str
    default: []
  groups:
    description: Local group names to rename (user-private groups of O(users) are renamed anyway).
    type: list
    elements: str
    default: []
  prefix:
    description: What a retired name starts with (C(wg-alice)).
    type: str
    default: wg-
  root:
    description: The directory whose C(etc/) holds the account files (the shadow tools' C(--prefix)); tests only.
    type: path
    default: /
  passdb:
    description:
      - Disable (enable, when restored) the user's entry in Samba's password database (C(pdbedit), where
        installed).
    type: bool
    default: true
  state:
    description: V(retired) takes the names out of the way; V(restored) puts them back.
    type: str
    choices: [retired, restored]
    default: retired
  shells:
    description: With O(state=restored), user name to the login shell it had (default C(/bin/sh)).
    type: dict
    default: {}
notes:
  - Needs root (C(become)).
"""

EXAMPLES = r"""
- name: Retire the workgroup's local accounts
  provision_retire_accounts:
    users: [alice, bob]
    groups: [staff]
"""

RETURN = r"""
retired:
  description: Per name changed (would change in check mode), what was done to it (also when restored).
  returned: success
  type: dict
  sample: {alice: [passdb disabled, locked, expired, shell nologin, renamed wg-alice]}
missing:
  description: Names with no local account (nothing to retire).
  returned: success
  type: list
  elements: str
"""

import os  # noqa: E402
import re  # noqa: E402
from typing import NamedTuple  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run, run_or_fail  # noqa: E402

NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
NOLOGIN = "/usr/sbin/nologin"
SETTABLE = "NDHLX"  # the account flags pdbedit -c sets


def read_table(path: str) -> dict[str, list[str]]:
    """Name -> fields of a colon file (passwd, group, shadow); a missing file is empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    return {f[0]: f for f in (line.split(":") for line in lines) if len(f) > 2 and f[0]}


def user_steps(passwd: dict[str, list[str]], shadow: dict[str, list[str]], name: str, new: str) -> list[str]:
    """What retiring ``name`` still needs, with ``new`` its retired name."""
    current = new if new in passwd else name
    steps: list[str] = []
    sh = shadow.get(current)
    if sh is not None and not sh[1].startswith("!"):
        steps.append("locked")
    if sh is not None and (len(sh) < 8 or sh[7] != "1"):
        steps.append("expired")
    if passwd[current][6] != NOLOGIN:
        steps.append("shell nologin")
    if current == name:
        steps.append(f"renamed {new}")
    return steps


class Local(NamedTuple):
    """The host's own account files (never NSS), name -> fields."""

    passwd: dict[str, list[str]]
    group: dict[str, list[str]]
    shadow: dict[str, list[str]]


def plan(
    local: Local, users: list[str], groups: list[str], prefix: str
) -> tuple[dict[str, list[str]], dict[str, str], list[str], list[str]]:
    """(user -> steps, group -> new name, missing names, conflicts), from the local files only."""
    passwd, group, shadow = local
    steps: dict[str, list[str]] = {}
    renames: dict[str, str] = {}
    missing: list[str] = []
    conflicts: list[str] = []
    for name in users:
        new = prefix + name
        if name in passwd and new in passwd:
            conflicts.append(f"user {name}: both {name} and {new} exist")
            continue
        if name not in passwd and new not in passwd:
            missing.append(name)
            continue
        todo = user_steps(passwd, shadow, name, new)
        if todo:
            steps[name] = todo
        # The user-private group: the group of the same name that is the user's primary group.
        gid = passwd[name if name in passwd else new][3]
        if name in group and group[name][2] == gid:
            groups = [*groups, name]
    for name in dict.fromkeys(groups):
        new = prefix + name
        if name in group and not regular(group[name][2]):
            continue  # a system group (Debian's staff, say) keeps its name: the system uses it
        if name in group and new in group:
            conflicts.append(f"group {name}: both {name} and {new} exist")
        elif name in group:
            renames[name] = new
    return steps, renames, missing, conflicts


def regular(gid: str) -> bool:
    """A group the system's tools made for people (1000..59999), not one of the system's own."""
    return gid.isdigit() and 1000 <= int(gid) <= 59999


def set_passdb(module: AnsibleModule, name: str, disabled: bool) -> bool:
    """Disable (or enable) ``name`` in Samba's password database; False when nothing changes."""
    pdbedit = module.get_bin_path("pdbedit")
    if not pdbedit:
        return False
    rc, out, _ = run(module, [pdbedit, "-L", "-w", "-u", name])
    fields = out.strip().split(":")
    if rc != 0 or len(fields) < 5 or not fields[4].startswith("["):
        return False
    flags = fields[4].strip("[]").replace(" ", "")
    if ("D" in flags) == disabled:
        return False
    settable = "".join(f for f in flags if f in SETTABLE and f != "D")  # pdbedit -c takes only these
    wanted = settable + "D" if disabled else settable
    if not module.check_mode:
        run_or_fail(module, [pdbedit, "-r", "-u", name, "-c", f"[{wanted}]"], f"pdbedit could not change {name}")
    return True


def restore_plan(
    local: Local, users: list[str], groups: list[str], prefix: str, shells: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """(user -> steps, retired group -> its name again, conflicts) to undo ``plan``."""
    passwd, group, shadow = local
    steps: dict[str, list[str]] = {}
    renames: dict[str, str] = {}
    conflicts: list[str] = []
    for name in users:
        old = prefix + name
        if name in passwd and old in passwd:
            conflicts.append(f"user {name}: both {name} and {old} exist")
            continue
        current = old if old in passwd else name if name in passwd else None
        if current is None:
            continue
        todo: list[str] = []
        sh = shadow.get(current)
        # Unlocked only where a password hash is behind the lock: an account that had none stays locked.
        if sh is not None and sh[1].startswith("!") and sh[1].lstrip("!") not in ("", "*"):
            todo.append("unlocked")
        if sh is not None and len(sh) > 7 and sh[7] != "":
            todo.append("not expired")
        if passwd[current][6] != shells.get(name, "/bin/sh"):
            todo.append(f"shell {shells.get(name, '/bin/sh')}")
        if current == old:
            todo.append(f"renamed {name}")
        if todo:
            steps[name] = todo
        gid = passwd[current][3]
        if old in group and group[old][2] == gid:
            groups = [*groups, name]
    for name in dict.fromkeys(groups):
        old = prefix + name
        if name in group and old in group:
            conflicts.append(f"group {name}: both {name} and {old} exist")
        elif old in group:
            renames[old] = name
    return steps, renames, conflicts


def restore(module: AnsibleModule, local: Local) -> None:
    passwd = local.passwd
    p = module.params
    prefix, root = p["prefix"], p["root"]
    shells = {str(k): str(v) for k, v in p["shells"].items()}
    bad = [f"{u}: {s}" for u, s in shells.items() if not s.startswith("/") or ":" in s or "\n" in s]
    if bad:
        module.fail_json(msg="shells must be absolute paths: " + ", ".join(bad))
    steps, renames, conflicts = restore_plan(local, p["users"], p["groups"], prefix, shells)
    if conflicts:
        module.fail_json(msg="cannot restore: " + "; ".join(conflicts) + " (nothing was changed)")
    prefix_args = [] if root == "/" else ["--prefix", root]
    restored: dict[str, list[str]] = {}
    for old, name in renames.items():
        if not module.check_mode:
            cmd = [module.get_bin_path("groupmod", required=True), *prefix_args, "-n", name, old]
            run_or_fail(module, cmd, f"groupmod could not rename {old}")
        restored.setdefault(f"group {name}", []).append(f"renamed {name}")
    for name in p["users"]:
        todo = steps.get(name, [])
        current = prefix + name if prefix + name in passwd else name
        if todo and not module.check_mode:
            argv = [module.get_bin_path("usermod", required=True), *prefix_args]
            argv += ["-U"] if "unlocked" in todo else []
            argv += ["-e", ""] if "not expired" in todo else []
            argv += ["-s", shells.get(name, "/bin/sh")] if any(t.startswith("shell ") for t in todo) else []
            argv += ["-l", name] if current != name else []
            run_or_fail(module, [*argv, current], f"usermod could not restore {name}")
        done = list(todo)
        if p["passdb"] and root == "/" and (current in passwd) and set_passdb(module, name, disabled=False):
            done.append("passdb enabled")
        if done:
            restored[name] = done
    module.exit_json(changed=bool(restored), retired=restored, missing=[])


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "prefix": {"type": "str", "default": "wg-"},
            "root": {"type": "path", "default": "/"},
            "passdb": {"type": "bool", "default": True},
            "state": {"type": "str", "default": "retired", "choices": ["retired", "restored"]},
            "shells": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    prefix, root = p["prefix"], p["root"]
    bad = [n for n in [*p["users"], *p["groups"]] if not NAME.fullmatch(n) or not NAME.fullmatch(prefix + n)]
    if bad or not prefix or not os.path.isabs(root):
        module.fail_json(msg=f"names must be local account names, also with prefix {prefix!r}: {', '.join(bad)}")
    etc = os.path.join(root, "etc")
    local = Local(*(read_table(os.path.join(etc, name)) for name in ("passwd", "group", "shadow")))
    if p["state"] == "restored":
        restore(module, local)
        return
    passwd = local.passwd
    steps, renames, missing, conflicts = plan(local, p["users"], p["groups"], prefix)
    if conflicts:
        module.fail_json(msg="cannot retire: " + "; ".join(conflicts) + " (nothing was changed)")
    prefix_args = [] if root == "/" else ["--prefix", root]
    retired: dict[str, list[str]] = {}
    for name in p["users"]:
        done: list[str] = []
        if p["passdb"] and root == "/" and name in passwd and set_passdb(module, name, disabled=True):
            done.append("passdb disabled")
        todo = steps.get(name, [])
        if todo and not module.check_mode:
            argv = [module.get_bin_path("usermod", required=True), *prefix_args]
            argv += ["-L"] if "locked" in todo else []
            argv += ["-e", "1970-01-02"] if "expired" in todo else []
            argv += ["-s", NOLOGIN] if "shell nologin" in todo else []
            argv += ["-l", prefix + name] if name in passwd else []
            run_or_fail(module, [*argv, name if name in passwd else prefix + name], f"usermod could not retire {name}")
        if todo or done:
            retired[name] = done + todo
    for name, new in renames.items():
        if not module.check_mode:
            cmd = [module.get_bin_path("groupmod", required=True), *prefix_args, "-n", new, name]
            run_or_fail(module, cmd, f"groupmod could not rename {name}")
        retired.setdefault(f"group {name}", []).append(f"renamed {new}")
    diff: dict[str, str] = {}
    if module._diff and retired:
        diff = {
            "before": "".join(":".join(passwd[n]) + "\n" for n in p["users"] if n in passwd),
            "after": "".join(f"{prefix}{n} (retired)\n" for n in p["users"] if n in passwd),
        }
    module.exit_json(changed=bool(retired), retired=retired, missing=missing, diff=diff)


if __name__ == "__main__":
    main()
