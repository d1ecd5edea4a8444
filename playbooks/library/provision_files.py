#!/usr/bin/python
"""Ansible module: several files a role owns, written in one step, each only when it differs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_files
short_description: Write a role's configuration files in one step
description:
  - Each file's content (rendered on the controller, typically with the
    C(ansible.builtin.template) lookup), owner, group and mode are compared with the
    file on the host; only files that differ are written, atomically (a temporary file
    in the same directory, validated when asked, then renamed over the old one).
  - One module run instead of one template task per file; a template task costs a
    stat and a copy on the host, this costs one run for all of a role's files.
  - A symbolic link at a file's path is replaced by the file itself (it is not followed).
  - Reports which files changed (C(changed_files)) so the role can restart exactly
    the services that read them. Supports check mode and diff mode (one diff per file).
version_added: "0.1.0"
author: provision maintainers
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      owner:
        description: User that owns the file.
        type: str
        default: root
      group:
        description: Group of the file.
        type: str
        default: root
      mode:
        description: Octal permission bits, e.g. C("0644").
        type: str
        default: "0644"
      validate:
        description:
          - Command that checks the new content before it replaces the file; C(%s) is
            the temporary file's path. The file is not written when it exits non-zero.
        type: str
  directories:
    description: Directories to create first (missing parents included), each C({path, owner, group, mode}).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Write the role's configuration
  provision_files:
    directories:
      - {path: /etc/chrony/conf.d, mode: "0755"}
    files:
      - path: /etc/hosts
        content: "{{ lookup('ansible.builtin.template', 'hosts.j2') }}"
      - path: /etc/nftables.conf
        content: "{{ lookup('ansible.builtin.template', 'nftables.conf.j2') }}"
        mode: "0755"
        validate: nft -c -f %s
  register: base_files
"""

RETURN = r"""
changed_files:
  description: Paths of the files that were (or in check mode would be) written.
  returned: success
  type: list
  elements: str
changed_directories:
  description: Directories that were (or would be) created or changed.
  returned: success
  type: list
  elements: str
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shlex  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

FILE_SPEC = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "mode": {"type": "str", "default": "0644"},
    "validate": {"type": "str"},
}
DIR_SPEC = {
    "path": {"type": "path", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "mode": {"type": "str", "default": "0755"},
}


class Refused(Exception):
    """A file or directory that cannot be what the role asks (the message says why)."""


def ids(owner: str, group: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise Refused(f"user {owner!r} does not exist") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise Refused(f"group {group!r} does not exist") from None
    return uid, gid


def octal(mode: str) -> int:
    try:
        value = int(str(mode), 8)
    except ValueError:
        raise Refused(f"mode {mode!r} is not octal") from None
    if not 0 <= value <= 0o7777:
        raise Refused(f"mode {mode!r} is out of range")
    return value


def current(path: str) -> tuple[bytes | None, os.stat_result | None]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISLNK(st.st_mode):
        return None, None  # a link is replaced by the file itself (as the template module does)
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path} exists and is not a regular file")
    with open(path, "rb") as fh:
        return fh.read(), st


def write(module: AnsibleModule, path: str, data: bytes, uid: int, gid: int, mode: int, validate: str | None) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".provision-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        if validate:
            if "%s" not in validate:
                raise Refused(f"validate for {path} must contain %s")
            argv = [a.replace("%s", tmp) for a in shlex.split(validate)]
            rc, out, err = module.run_command(argv)
            if rc != 0:
                raise Refused(f"{path}: the new content fails '{validate}': {(err or out).strip()[-2000:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_directory(spec: dict[str, Any], check: bool) -> bool:
    path = spec["path"]
    uid, gid = ids(spec["owner"], spec["group"])
    mode = octal(spec["mode"])
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not check:
            os.makedirs(path, mode=0o755, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(f"{path} exists and is not a directory")
    if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode):
        return False
    if not check:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True, "options": FILE_SPEC},
            "directories": {"type": "list", "elements": "dict", "default": [], "options": DIR_SPEC},
        },
        supports_check_mode=True,
    )
    check = module.check_mode
    changed_dirs: list[str] = []
    changed_files: list[str] = []
    diffs: list[dict[str, str]] = []
    try:
        for spec in module.params["directories"]:
            if ensure_directory(spec, check):
                changed_dirs.append(spec["path"])
        seen: set[str] = set()
        for spec in module.params["files"]:
            path = spec["path"]
            if path in seen:
                raise Refused(f"{path} is listed twice")
            seen.add(path)
            data = spec["content"].encode("utf-8")
            uid, gid = ids(spec["owner"], spec["group"])
            mode = octal(spec["mode"])
            old, st = current(path)
            same_content = old == data
            same_meta = st is not None and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)
            if same_content and same_meta:
                continue
            changed_files.append(path)
            if not same_content:
                before = "" if old is None else old.decode("utf-8", "replace")
                diffs.append({"before": before, "after": spec["content"], "before_header": path, "after_header": path})
            if check:
                continue
            if same_content and st is not None:
                os.chown(path, uid, gid)
                os.chmod(path, mode)
            else:
                if not os.path.isdir(os.path.dirname(path)):
                    raise Refused(f"the directory of {path} does not exist")
                write(module, path, data, uid, gid, mode, spec.get("validate"))
    except (Refused, OSError) as exc:
        module.fail_json(msg=str(exc), changed_files=changed_files, changed_directories=changed_dirs)
    result: dict[str, Any] = {
        "changed": bool(changed_files or changed_dirs),
        "changed_files": changed_files,
        "changed_directories": changed_dirs,
    }
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
