#!/usr/bin/python
"""Ansible module: the workgroup's passwords carried into the domain as NT hashes, so users keep them
(issue 20). Runs on the first DC, in the same play run that read the hashes on the peers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_migrate_passwords
short_description: Set directory users' NT hashes from a workgroup's Samba password databases
description:
  - A workgroup peer's Samba password database holds each user's NT hash, the key the user's password
    makes; the domain can take that key as it is, so users keep their passwords without anyone knowing
    them. For each user named in O(users), the hash of the most recent change among O(sources) (one
    entry per peer, as M(provision_workgroup_export) returns C(hashes)) is written to the directory
    through Samba's own C(samba_dsdb) password backend, the path C(samba-tool domain classicupgrade)
    takes for an NT4 domain.
  - The directory then holds only that key (RC4) for the user; the AES keys come with the user's next
    password change, as after a classic upgrade.
  - A user whose directory hash already equals the newest one is unchanged; a user with no hash in any
    source, or missing from the directory, is reported and left alone. Check mode compares only.
  - The hashes are secrets - the task must set C(no_log).
version_added: "0.1.0"
author: provision maintainers
options:
  users:
    description: Directory user names whose passwords are carried (the users of both specs).
    type: list
    elements: str
    required: true
  sources:
    description:
      - Per peer, user name to C({nt, last_set}) (32 hex digits, Unix time); the newest C(last_set) wins.
    type: list
    elements: dict
    required: true
notes:
  - Needs root and Samba's Python bindings (python3-samba) on an AD DC.
"""

EXAMPLES = r"""
- name: Carry the workgroup's passwords into the directory
  provision_migrate_passwords:
    users: [alice, bob]
    sources: "{{ peers | map('extract', hostvars, ['peer_export', 'hashes']) | list }}"
  no_log: true
"""

RETURN = r"""
carried:
  description: Users whose NT hash was set (would be set in check mode), with the peer-side change time.
  returned: success
  type: dict
unchanged:
  description: Users whose directory hash already was the newest.
  returned: success
  type: list
  elements: str
without:
  description: Users no source holds a hash for, or the directory does not have (left alone).
  returned: success
  type: list
  elements: str
"""

import importlib  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

NT = re.compile(r"[0-9a-fA-F]{32}")


def newest(users: Iterable[str], sources: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(user -> the newest valid {nt, last_set}, users without one); a malformed entry is ignored."""
    wanted = list(users)
    best: dict[str, dict[str, Any]] = {}
    for source in sources:
        for name, entry in (source or {}).items():
            if name not in wanted or not isinstance(entry, Mapping):
                continue
            nt, last = str(entry.get("nt", "")), entry.get("last_set")
            if not NT.fullmatch(nt) or not isinstance(last, int) or isinstance(last, bool):
                continue
            if name not in best or last > best[name]["last_set"]:
                best[name] = {"nt": nt.lower(), "last_set": last}
    return best, [u for u in wanted if u not in best]


def open_pdb(module: AnsibleModule) -> Any:
    try:
        param = importlib.import_module("samba.param")
        s3param = importlib.import_module("samba.samba3.param")
        passdb = importlib.import_module("samba.samba3.passdb")
    except ImportError as exc:
        module.fail_json(msg=f"python3-samba is not installed here (for {sys.executable}): {exc}; run this on the DC")
    lp = param.LoadParm()
    lp.load_default()
    # passdb reads the source3 configuration, which is global to the process: load the DC's smb.conf.
    s3 = s3param.get_context()
    s3.load(lp.configfile)
    passdb.set_secrets_dir(s3.get("private dir"))
    return passdb.PDB("samba_dsdb")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "str", "required": True},
            "sources": {"type": "list", "elements": "dict", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    best, without = newest(module.params["users"], module.params["sources"])
    carried: dict[str, int] = {}
    unchanged: list[str] = []
    if best:
        pdb = open_pdb(module)
        for name, entry in best.items():
            try:
                account = pdb.getsampwnam(name)
            except Exception:  # passdb raises its own error type (passdb.error) for a missing user
                without.append(name)
                continue
            want = bytes.fromhex(entry["nt"])
            if account.nt_passwd == want:
                unchanged.append(name)
                continue
            carried[name] = entry["last_set"]
            if not module.check_mode:
                account.nt_passwd = want
                pdb.update_sam_account(account)
    module.exit_json(changed=bool(carried), carried=carried, unchanged=sorted(unchanged), without=sorted(without))


if __name__ == "__main__":
    main()
