#!/usr/bin/python
"""Ansible module: a tree's owners, groups and named ACL entries moved from old IDs to the accounts
that now carry the names (a workgroup's local users become the domain's)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_owner_map
short_description: Move a tree's file owners, groups and ACL entries from old numeric IDs to named accounts
description:
  - When a workgroup peer joins a domain, its files belong to the numbers of its local accounts, while
    the same names now resolve to the domain's users and groups (other numbers). This module walks
    each of O(paths) (one filesystem each, symbolic links not followed) and, for every entry whose
    owner or group is one of the old numbers, changes it to the number the name resolves to now. It
    rewrites the named entries of POSIX access and default ACLs the same way, and with O(drop_ntacl)
    removes Samba's C(security.NTACL) attribute, which holds the peer's own SIDs (Samba derives the NT
    ACL from the POSIX one once it is gone).
  - Every name is resolved before anything changes; a name that does not resolve, or resolves to an ID
    that is itself one of the old ones, fails the run with nothing changed. The mode bits a change of
    owner clears (setuid, setgid) are put back.
  - Idempotent - once no entry carries an old number, nothing changes. Check mode counts what would change.
version_added: "0.1.0"
author: provision maintainers
options:
  paths:
    description:
      - Absolute, normalized paths of existing directories (the shares and home folders); never C(/) nor
        a directory of the system (C(/etc), C(/usr), C(/var/lib) and the like).
    type: list
    elements: str
    required: true
  users:
    description: Owners to move, each from an old UID to the user a name resolves to now.
    type: list
    elements: dict
    default: []
    suboptions:
      from:
        description: The old UID (not 0). Give this or O(users[].from_name).
        type: int
      from_name:
        description:
          - A user name whose UID as it resolves now is the old one (taking files back from the domain's
            accounts to local ones while the host is still joined).
        type: str
      to:
        description: The user name; resolved on the host when the module runs.
        type: str
        required: true
      optional:
        description: With O(users[].from_name), skip the pair when that name does not resolve here.
        type: bool
        default: false
  groups:
    description: Groups to move, each from an old GID to the group a name resolves to now.
    type: list
    elements: dict
    default: []
    suboptions:
      from:
        description: The old GID (not 0). Give this or O(groups[].from_name).
        type: int
      from_name:
        description:
          - A group name whose GID as it resolves now is the old one (taking files back from the domain's
            accounts to local ones while the host is still joined).
        type: str
      to:
        description: The group name; resolved on the host when the module runs.
        type: str
        required: true
      optional:
        description: With O(groups[].from_name), skip the pair when that name does not resolve here.
        type: bool
        default: false
  drop_ntacl:
    description: Remove C(security.NTACL) from every entry of the trees.
    type: bool
    default: true
notes:
  - Needs root (C(become)).
"""

EXAMPLES = r"""
- name: Give the peer's files to the domain's users and groups
  provision_owner_map:
    paths: [/srv/projects, /home]
    users:
      - {from: 1001, to: alice}
      - {from: 1002, to: bob}
    groups:
      - {from: 1001, to: alice}
      - {from: 1003, to: staff}
"""

RETURN = r"""
owners:
  description: Entries whose owner or group changed (would change in check mode).
  returned: success
  type: int
acls:
  description: Entries whose POSIX ACLs changed.
  returned: success
  type: int
ntacls:
  description: Entries whose C(security.NTACL) was removed.
  returned: success
  type: int
entries:
  description: Entries looked at.
  returned: success
  type: int
"""

import errno  # noqa: E402
import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_posix_acl import (  # noqa: E402
    ACCESS,
    DEFAULT,
    GROUP,
    USER,
    Entry,
    decode,
    encode,
)

NTACL = "security.NTACL"
# Never walked: the system's own trees.
SYSTEM = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var/lib")


class Failed(Exception):
    """The request cannot be carried out; nothing was changed."""


@dataclass
class Counts:
    entries: int = 0
    owners: int = 0
    acls: int = 0
    ntacls: int = 0
    errors: list[str] = field(default_factory=list)


def check_path(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/") or os.path.normpath(path) != path or path == "/":
        raise Failed(f"path {path!r} is not an absolute, normalized path below /")
    for top in SYSTEM:
        if path == top or path.startswith(top + "/"):
            raise Failed(f"path {path} is a directory of the system ({top}): refused")
    if os.path.islink(path) or not os.path.isdir(path):
        raise Failed(f"path {path} is not a directory")
    return path


def resolve(pairs: list[dict[str, Any]], lookup: Any, what: str) -> dict[int, int]:
    """Old ID -> the ID the name resolves to now; every problem before anything changes."""
    out: dict[int, int] = {}
    for pair in pairs:
        old, name = pair.get("from"), pair["to"]
        if (old is None) == (pair.get("from_name") is None):
            raise Failed(f"{what} {name!r}: give one of from and from_name")
        if old is None:
            try:
                old = lookup(pair["from_name"])
            except KeyError:
                if pair.get("optional"):
                    continue
                raise Failed(f"{what} {pair['from_name']!r} (from_name) does not resolve on this host") from None
        if not isinstance(old, int) or old <= 0:
            raise Failed(f"{what} {name!r}: from {old!r} is not a positive ID (0 is never moved)")
        try:
            new = lookup(name)
        except KeyError:
            raise Failed(f"{what} {name!r} does not resolve on this host (is the domain joined?)") from None
        if old in out and out[old] != new:
            raise Failed(f"{what} ID {old} is mapped twice")
        out[old] = new
    loops = sorted(set(out) & {n for o, n in out.items() if o != n})
    if loops:
        raise Failed(f"{what} ID(s) {loops} are both an old ID and what a name resolves to now: refused")
    return out


def remap_acl(blob: bytes, uids: dict[int, int], gids: dict[int, int]) -> bytes | None:
    """The ACL with its named entries moved, or None when none of them is an old ID."""
    acl = decode(blob)
    moved = tuple(
        Entry(e.tag, uids[e.id], e.perm)
        if e.tag == USER and e.id in uids
        else Entry(e.tag, gids[e.id], e.perm)
        if e.tag == GROUP and e.id in gids
        else e
        for e in acl
    )
    if moved == acl:
        return None
    out: bytes = encode(tuple(sorted(moved)))
    return out


def xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return None
        raise


def one(
    path: str, st: os.stat_result, uids: dict[int, int], gids: dict[int, int], drop: bool, check: bool, n: Counts
) -> None:
    n.entries += 1
    uid, gid = uids.get(st.st_uid, st.st_uid), gids.get(st.st_gid, st.st_gid)
    if (uid, gid) != (st.st_uid, st.st_gid):
        n.owners += 1
        if not check:
            os.lchown(path, uid, gid)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(os.lstat(path).st_mode) != stat.S_IMODE(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode))  # chown clears setuid/setgid
    if stat.S_ISLNK(st.st_mode):
        return
    changed_acl = False
    for name in (ACCESS, DEFAULT):
        blob = xattr(path, name)
        new = remap_acl(blob, uids, gids) if blob else None
        if new is not None:
            changed_acl = True
            if not check:
                os.setxattr(path, name, new, follow_symlinks=False)
    n.acls += changed_acl
    if drop and xattr(path, NTACL) is not None:
        n.ntacls += 1
        if not check:
            os.removexattr(path, NTACL, follow_symlinks=False)


def walk(top: str, uids: dict[int, int], gids: dict[int, int], drop: bool, check: bool, n: Counts) -> None:
    device = os.lstat(top).st_dev
    one(top, os.lstat(top), uids, gids, drop, check, n)
    for root, dirs, files in os.walk(top, onerror=lambda exc: n.errors.append(str(exc))):
        keep = []
        for name in dirs:
            path = os.path.join(root, name)
            st = os.lstat(path)
            one(path, st, uids, gids, drop, check, n)
            if st.st_dev == device and not stat.S_ISLNK(st.st_mode):
                keep.append(name)
        dirs[:] = keep
        for name in files:
            path = os.path.join(root, name)
            one(path, os.lstat(path), uids, gids, drop, check, n)


def main() -> None:
    pair = {
        "from": {"type": "int"},
        "from_name": {"type": "str"},
        "to": {"type": "str", "required": True},
        "optional": {"type": "bool", "default": False},
    }
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "required": True},
            "users": {"type": "list", "elements": "dict", "default": [], "options": pair},
            "groups": {"type": "list", "elements": "dict", "default": [], "options": pair},
            "drop_ntacl": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if os.geteuid() != 0:
        module.fail_json(msg="provision_owner_map must run as root (become: true)")
    p = module.params
    n = Counts()
    try:
        paths = [check_path(path) for path in p["paths"]]
        uids = resolve(p["users"], lambda name: pwd.getpwnam(name).pw_uid, "user")
        gids = resolve(p["groups"], lambda name: grp.getgrnam(name).gr_gid, "group")
        for path in paths:
            walk(path, uids, gids, p["drop_ntacl"], module.check_mode, n)
    except Failed as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{exc}", owners=n.owners, acls=n.acls, ntacls=n.ntacls, entries=n.entries)
    if n.errors:
        module.fail_json(msg="; ".join(n.errors[:5]), owners=n.owners, acls=n.acls, ntacls=n.ntacls, entries=n.entries)
    module.exit_json(
        changed=bool(n.owners or n.acls or n.ntacls), owners=n.owners, acls=n.acls, ntacls=n.ntacls, entries=n.entries
    )


if __name__ == "__main__":
    main()
