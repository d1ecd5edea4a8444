#!/usr/bin/python
"""Ansible module: what a workgroup peer knows of its users - local IDs, and the NT hashes of its Samba
password database - read for the migration into a domain (issue 20)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_workgroup_export
short_description: Read a workgroup peer's local account IDs and Samba password hashes for a migration
description:
  - Reads, for the users and groups named, their local numeric IDs (the files of the peer belong to
    them) and, with O(hashes), the NT hash and the time of the last password change that the peer's
    Samba password database (C(pdbedit -L -w)) holds for each user. The hash is what the domain gets,
    so users keep their passwords; where several peers hold one user, the newest change wins.
  - An NT hash is as good as the password - the task that asks for hashes must set C(no_log), and the
    result travels only inside the play (to the DC's task), never into a log or a file.
  - Reads only; never changed. Runs the same in check mode.
version_added: "0.1.0"
author: provision maintainers
options:
  users:
    description: User names to read.
    type: list
    elements: str
    default: []
  groups:
    description: Group names to read.
    type: list
    elements: str
    default: []
  hashes:
    description: Also read the users' NT hashes from the Samba password database (needs C(pdbedit)).
    type: bool
    default: false
notes:
  - Needs root (C(become)) for the password database.
"""

EXAMPLES = r"""
- name: Read the peer's users for the migration
  provision_workgroup_export:
    users: [alice, bob]
    groups: [staff]
    hashes: true
  register: peer_accounts
  no_log: true
"""

RETURN = r"""
users:
  description: Per user found locally, C({uid, gid}); names that do not exist are left out.
  returned: success
  type: dict
groups:
  description: Per group found locally, its GID.
  returned: success
  type: dict
hashes:
  description:
    - With O(hashes), per user the password database holds, C({nt, last_set, disabled}) - the NT hash
      (32 hex digits), the last change (Unix time) and whether the account is disabled. Secret.
  returned: success
  type: dict
"""

import grp  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run  # noqa: E402

NT = re.compile(r"[0-9A-F]{32}")
LCT = re.compile(r"LCT-([0-9A-F]{8})")


def parse_smbpasswd(text: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """``pdbedit -L -w`` lines (smbpasswd format: user:uid:LM:NT:[flags]:LCT-hex:) of the wanted users
    that have an NT hash; a line that does not parse is left out, never guessed."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 6 or fields[0] not in wanted:
            continue
        nt, flags, lct = fields[3].upper(), fields[4], LCT.fullmatch(fields[5].upper())
        if not NT.fullmatch(nt) or not flags.startswith("[") or lct is None:
            continue
        out[fields[0]] = {"nt": nt.lower(), "last_set": int(lct.group(1), 16), "disabled": "D" in flags}
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "hashes": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    users: dict[str, dict[str, int]] = {}
    for name in module.params["users"]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        users[name] = {"uid": entry.pw_uid, "gid": entry.pw_gid}
    groups: dict[str, int] = {}
    for name in module.params["groups"]:
        try:
            groups[name] = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    hashes: dict[str, dict[str, Any]] = {}
    if module.params["hashes"]:
        pdbedit = module.get_bin_path("pdbedit")
        if not pdbedit:
            module.fail_json(msg="pdbedit is not installed: this is not a Samba workgroup peer")
        rc, out, err = run(module, [pdbedit, "-L", "-w"])
        if rc != 0:
            module.fail_json(msg=f"pdbedit -L -w failed ({rc}): {err.strip()[-300:]}")
        hashes = parse_smbpasswd(out, set(module.params["users"]))
    module.exit_json(changed=False, users=users, groups=groups, hashes=hashes)


if __name__ == "__main__":
    main()
