#!/usr/bin/python
"""Ansible module: a role's local groups and accounts created and kept as declared, in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_local_accounts
short_description: Create local groups and accounts and keep their comment, shell and groups as declared
description:
  - One module run for all of a role's groups and accounts instead of one group task and
    one user task each. Groups are created with C(groupadd) when missing. Accounts are
    created with C(useradd) (a personal group, a home directory when I(create_home)) and
    otherwise corrected with C(usermod) where their comment (GECOS), login shell or
    supplementary groups differ; the supplementary groups become exactly the declared ones,
    so leaving a group in the spec takes the user out of it here too.
  - Nothing is ever deleted here (the roles decide about departed accounts, and keep their data).
  - Check mode reports what would change; diff mode shows each account before and after.
version_added: "0.1.0"
author: provision maintainers
options:
  groups:
    description: Groups that must exist.
    type: list
    elements: str
    default: []
  users:
    description: Accounts that must exist, each as declared.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The login name.
        type: str
        required: true
      comment:
        description: The GECOS field (full name).
        type: str
        default: ""
      shell:
        description: The login shell.
        type: str
        default: /bin/bash
      groups:
        description: Exactly the supplementary groups (they must exist or be in I(groups)).
        type: list
        elements: str
        default: []
  create_home:
    description: Give new accounts a home directory (from /etc/skel).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Create the groups and the accounts this host's shares need
  provision_local_accounts:
    groups: [staff]
    users:
      - {name: alice, comment: Alice Liddell, shell: /bin/bash, groups: [staff]}
    create_home: true
"""

RETURN = r"""
groups_created:
  description: Groups that were (or would be) created.
  returned: success
  type: list
  elements: str
users_created:
  description: Accounts that were (or would be) created.
  returned: success
  type: list
  elements: str
users_changed:
  description: Accounts whose comment, shell or groups were (or would be) corrected.
  returned: success
  type: list
  elements: str
"""

import grp  # noqa: E402
import pwd  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run_or_fail  # noqa: E402

USER_SPEC = {
    "name": {"type": "str", "required": True},
    "comment": {"type": "str", "default": ""},
    "shell": {"type": "str", "default": "/bin/bash"},
    "groups": {"type": "list", "elements": "str", "default": []},
}


def supplementary(name: str, primary_gid: int) -> list[str]:
    """The groups that list ``name`` as a member (its primary group aside), as NSS sees them."""
    return sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem and g.gr_gid != primary_gid)


def describe(comment: str, shell: str, groups: list[str]) -> str:
    return f"comment: {comment}\nshell: {shell}\ngroups: {', '.join(sorted(groups)) or '-'}\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "groups": {"type": "list", "elements": "str", "default": []},
            "users": {"type": "list", "elements": "dict", "default": [], "options": USER_SPEC},
            "create_home": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    check = module.check_mode

    def run(argv: list[str]) -> None:
        if not check:
            run_or_fail(module, argv, f"{' '.join(argv)} failed")

    groups_created: list[str] = []
    for name in p["groups"]:
        try:
            grp.getgrnam(name)
        except KeyError:
            groups_created.append(name)
            run(["groupadd", "--", name])
    known_groups = set(p["groups"])
    users_created: list[str] = []
    users_changed: list[str] = []
    diffs: list[dict[str, str]] = []
    for user in p["users"]:
        name, groups = user["name"], sorted(set(user["groups"]))
        for g in groups:
            if g not in known_groups:
                try:
                    grp.getgrnam(g)
                except KeyError:
                    if not check:
                        module.fail_json(msg=f"group {g} of {name} does not exist")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            users_created.append(name)
            diffs.append(
                {
                    "before_header": name,
                    "after_header": name,
                    "before": "absent\n",
                    "after": describe(user["comment"], user["shell"], groups),
                }
            )
            argv = ["useradd", "--user-group", "--comment", user["comment"], "--shell", user["shell"]]
            argv += ["--create-home"] if p["create_home"] else ["--no-create-home"]
            argv += ["--groups", ",".join(groups)] if groups else []
            run([*argv, "--", name])
            continue
        have_groups = supplementary(name, entry.pw_gid)
        argv = []
        if entry.pw_gecos != user["comment"]:
            argv += ["--comment", user["comment"]]
        if entry.pw_shell != user["shell"]:
            argv += ["--shell", user["shell"]]
        if have_groups != groups:
            argv += ["--groups", ",".join(groups)]
        if argv:
            users_changed.append(name)
            diffs.append(
                {
                    "before_header": name,
                    "after_header": name,
                    "before": describe(entry.pw_gecos, entry.pw_shell, have_groups),
                    "after": describe(user["comment"], user["shell"], groups),
                }
            )
            run(["usermod", *argv, "--", name])
    result: dict[str, Any] = {
        "changed": bool(groups_created or users_created or users_changed),
        "groups_created": groups_created,
        "users_created": users_created,
        "users_changed": users_changed,
    }
    if module._diff and (diffs or groups_created):
        result["diff"] = diffs + [
            {"before_header": f"group {g}", "after_header": f"group {g}", "before": "absent\n", "after": "present\n"}
            for g in groups_created
        ]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
