#!/usr/bin/python
"""Ansible module: a share directory's POSIX ACL exactly as planned, compared on numeric IDs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_share_acl
short_description: Set a share directory's POSIX ACL (access and default) exactly
description:
  - Compares the directory's C(system.posix_acl_access) and C(system.posix_acl_default)
    extended attributes with the ACL the share planner made of the spec and rewrites
    both when they differ; nothing else of the directory is touched.
  - Named entries are resolved through NSS on the host (local files, winbind or sssd),
    so C(LAB\alice) becomes the domain account's ID and a local account of the same
    name never gets the share's access.
  - Can remove extended attributes that would override the ACL, such as the NT ACL
    Samba's acl_xattr stores when someone sets permissions from Windows
    (C(security.NTACL)) and Samba's record of the ACL's inheritance (C(user.SAMBA_PAI)).
  - Supports check mode and diff mode (getfacl-like text before and after).
version_added: "0.1.0"
author: provision maintainers
options:
  path:
    description: The share's directory; it must exist.
    type: path
    required: true
  acl:
    description:
      - Entries as the share planner writes them, access and default together,
        e.g. C(u::rwx), C(g:LAB\staff:r-x), C(m::rwx), C(o::---), C(d:u::rwx).
      - A mask is added when a named entry needs one and none is given.
    type: list
    elements: str
    required: true
  remove_xattrs:
    description: Extended attributes to remove from the directory when present.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Share ACL as planned, no NT ACL of its own on the root
  provision_share_acl:
    path: /srv/projects
    acl: [u::rwx, g::rwx, o::---, "g:LAB\\domain admins:rwx", d:u::rwx, d:g::rwx, d:o::---]
    remove_xattrs: [security.NTACL, user.SAMBA_PAI]
"""

RETURN = r"""
acl:
  description: The directory's ACL after the module ran (getfacl-like, with names).
  returned: success
  type: str
removed_xattrs:
  description: The extended attributes that were (or in check mode would be) removed.
  returned: success
  type: list
  elements: str
"""

import errno  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_posix_acl import AclError, parse, read, render, write  # noqa: E402


def present_xattrs(path: str, names: list[str]) -> list[str]:
    found = []
    for name in names:
        try:
            os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                continue
            raise
        found.append(name)
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "acl": {"type": "list", "elements": "str", "required": True},
            "remove_xattrs": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isdir(path):
        module.fail_json(msg=f"{path} is not a directory")
    try:
        want_access, want_default = parse(module.params["acl"])
        have_access, have_default = read(path)
        stale = present_xattrs(path, module.params["remove_xattrs"])
    except (AclError, OSError) as exc:
        module.fail_json(msg=f"{path}: {exc}")
    before = render(have_access, have_default)
    after = render(want_access, want_default)
    changed = (have_access, have_default) != (want_access, want_default) or bool(stale)
    if changed and not module.check_mode:
        try:
            for name in stale:
                os.removexattr(path, name, follow_symlinks=False)
            write(path, want_access, want_default)
        except OSError as exc:
            module.fail_json(msg=f"{path}: cannot set the ACL: {exc}")
    result = {"changed": changed, "acl": after if changed else before, "removed_xattrs": stale}
    if module._diff and changed:
        extra = "".join(f"xattr {name}\n" for name in stale)
        result["diff"] = {"before": before + extra, "after": after, "before_header": path, "after_header": path}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
