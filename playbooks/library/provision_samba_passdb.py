#!/usr/bin/python
"""Ansible module: Samba passwords (tdbsam) set, enabled and removed in one step, compared by NT hash."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_samba_passdb
short_description: Keep the Samba passwords of local accounts as wanted, without a password on a command line
description:
  - For every account in I(passwords), the NT hash of the wanted password (computed with
    python3-samba) is compared with the one C(pdbedit -L -w) shows; only a missing or different
    one is set, with C(smbpasswd -s -a) reading it on stdin. Disabled accounts are enabled.
    Nothing is ever a logon attempt, so the comparison cannot count towards a lockout.
  - Accounts in I(absent) lose their Samba password entry (C(pdbedit -x)); the system account
    stays (the role decides about those).
  - Check mode reports what would change; diff mode lists the accounts (never a password).
version_added: "0.1.0"
author: provision maintainers
options:
  passwords:
    description: Wanted password by account name; secret.
    type: dict
    default: {}
    no_log: true
  absent:
    description: Accounts whose Samba entry is removed.
    type: list
    elements: str
    default: []
requirements: [python3-samba, samba-common-bin (pdbedit, smbpasswd)]
"""

EXAMPLES = r"""
- name: Set, enable and remove Samba passwords
  provision_samba_passdb:
    passwords: "{{ {'alice': alice_password} }}"
    absent: [bob]
  no_log: true
"""

RETURN = r"""
set:
  description: Accounts whose password was (or would be) set.
  returned: success
  type: list
  elements: str
enabled:
  description: Accounts that were (or would be) enabled.
  returned: success
  type: list
  elements: str
removed:
  description: Accounts whose Samba entry was (or would be) removed.
  returned: success
  type: list
  elements: str
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run_or_fail  # noqa: E402


def nt_hash(password: str) -> str:
    from samba.credentials import Credentials

    creds = Credentials()
    creds.set_password(password)
    return str(creds.get_nt_hash().hex().upper())


def passdb(module: AnsibleModule) -> dict[str, tuple[str, str]]:
    """Account -> (NT hash, flags) as pdbedit's smbpasswd format shows them."""
    out = run_or_fail(module, ["pdbedit", "-L", "-w"], "pdbedit -L -w failed")
    entries: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        fields = line.split(":")
        if len(fields) >= 5:
            entries[fields[0]] = (fields[3].upper(), fields[4])
    return entries


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "passwords": {"type": "dict", "default": {}, "no_log": True},
            "absent": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    wanted: dict[str, Any] = module.params["passwords"]
    absent: list[str] = module.params["absent"]
    both = sorted(set(wanted) & set(absent))
    if both:
        module.fail_json(msg=f"accounts both wanted and absent: {', '.join(both)}")
    for name, password in wanted.items():
        if not isinstance(password, str) or not password:
            module.fail_json(msg=f"the password of {name} is empty")
    entries = passdb(module)
    to_set = sorted(n for n, pw in wanted.items() if n not in entries or entries[n][0] != nt_hash(pw))
    to_enable = sorted(n for n in wanted if n in entries and "D" in entries[n][1])
    to_remove = sorted(n for n in absent if n in entries)
    result: dict[str, Any] = {
        "changed": bool(to_set or to_enable or to_remove),
        "set": to_set,
        "enabled": to_enable,
        "removed": to_remove,
    }
    if module._diff and result["changed"]:
        before = [f"{n}: {'no entry' if n not in entries else 'other password'}" for n in to_set]
        before += [f"{n}: disabled" for n in to_enable] + [f"{n}: present" for n in to_remove]
        after = [f"{n}: wanted password" for n in to_set] + [f"{n}: enabled" for n in to_enable]
        after += [f"{n}: removed" for n in to_remove]
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}
    if module.check_mode:
        module.exit_json(**result)
    for name in to_set:
        pw = wanted[name]
        run_or_fail(
            module,
            ["smbpasswd", "-s", "-a", "--", name],
            f"smbpasswd could not set the password of {name}",
            data=f"{pw}\n{pw}\n",
        )
    for name in to_enable:
        run_or_fail(module, ["smbpasswd", "-e", "--", name], f"smbpasswd could not enable {name}")
    for name in to_remove:
        run_or_fail(module, ["pdbedit", "-x", "-u", name], f"pdbedit could not remove {name}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
