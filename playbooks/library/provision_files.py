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
  - I(commands) rebuild what is derived from the files (a certificate store, the PAM stack)
    in the same run, only after one of their paths changed - one module run instead of one
    command task each.
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
        description: The whole content of the file; exactly one of I(content) and I(src).
        type: str
      src:
        description:
          - A file on the host whose content this file gets (e.g. a configuration a tool generated
            elsewhere); exactly one of I(content) and I(src).
        type: path
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
    description:
      - Directories to create first (missing parents included), each C({path, owner, group, mode,
        exclusive}).
      - With C(exclusive=true) the directory holds only the listed files - other regular files and
        links directly inside it are removed (and reported in C(changed_files)); subdirectories are
        left alone.
    type: list
    elements: dict
    default: []
  absent:
    description:
      - Files the role no longer wants (a setting switched off); each is removed when present, and reported
        in C(changed_files). A path listed in I(files) too is refused.
    type: list
    elements: path
    default: []
  commands:
    description:
      - Commands run, in order, after the files were written and removed, each only when this run
        changed one of its I(paths); not run in check mode (reported in C(commands) all the same).
      - A failing command fails the module with its output and puts the files it was due for
        back as they were (a file that was new is removed again), so the next run changes them
        and runs it again.
    type: list
    elements: dict
    default: []
    suboptions:
      argv:
        description: The command, run without a shell.
        type: list
        elements: str
        required: true
      paths:
        description:
          - Files or directories; a directory stands for every file in it. The command runs when
            one of them was written, created or removed by this run.
        type: list
        elements: path
        required: true
      argv_if_replaced:
        description:
          - Run instead of I(argv) when a matching file existed before this run (changed or
            removed), not only created - a store that adds new files cheaply but must be rebuilt
            when one it holds went or changed.
        type: list
        elements: str
"""

EXAMPLES = r"""
- name: Write the role's configuration
  provision_files:
    directories:
      - {path: /etc/chrony/conf.d, mode: "0755"}
    files:
      - path: /etc/hosts
        content: "{{ lookup('provision_template', 'hosts.j2') }}"
      - path: /etc/nftables.conf
        content: "{{ lookup('provision_template', 'nftables.conf.j2') }}"
        mode: "0755"
        validate: nft -c -f %s
  register: base_files

- name: Write the trusted CAs and add them to the system store
  provision_files:
    directories:
      - {path: /usr/local/share/ca-certificates/provision, mode: "0755", exclusive: true}
    files:
      - path: /usr/local/share/ca-certificates/provision/network-ca.crt
        content: "{{ network_ca_pem }}"
    commands:
      - argv: [update-ca-certificates]
        argv_if_replaced: [update-ca-certificates, --fresh]
        paths: [/usr/local/share/ca-certificates/provision]
"""

RETURN = r"""
changed_files:
  description: Paths of the files that were (or in check mode would be) written.
  returned: success
  type: list
  elements: str
created_files:
  description:
    - Those of C(changed_files) that did not exist before (a store rebuilt from a directory can
      then add them instead of relinking everything).
  returned: success
  type: list
  elements: str
changed_directories:
  description: Directories that were (or would be) created or changed.
  returned: success
  type: list
  elements: str
commands:
  description: The commands that ran (or in check mode would run), each as one shell-quoted line.
  returned: success
  type: list
  elements: str
"""

import os  # noqa: E402
import shlex  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_fileops import Refused, current, ids, octal  # noqa: E402

FILE_SPEC = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str"},
    "src": {"type": "path"},
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
    "exclusive": {"type": "bool", "default": False},
}
COMMAND_SPEC = {
    "argv": {"type": "list", "elements": "str", "required": True},
    "paths": {"type": "list", "elements": "path", "required": True},
    "argv_if_replaced": {"type": "list", "elements": "str"},
}


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


def strays(directory: str, listed: set[str]) -> list[str]:
    """Regular files and links directly in ``directory`` that are not in ``listed``."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [e.path for e in entries if e.path not in listed and (e.is_symlink() or e.is_file(follow_symlinks=False))]


def content(spec: dict[str, Any]) -> bytes:
    """The wanted bytes of a file: its ``content``, or what its ``src`` on the host holds."""
    if (spec["content"] is None) == (spec["src"] is None):
        raise Refused(f"{spec['path']}: give exactly one of content and src")
    if spec["content"] is not None:
        return str(spec["content"]).encode("utf-8")
    try:
        with open(spec["src"], "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise Refused(f"{spec['path']}: its src {spec['src']} does not exist") from None


def matches(path: str, wanted: list[str]) -> bool:
    """Whether ``path`` is one of ``wanted`` or lies under one of them."""
    path = os.path.normpath(path)
    return any(path == w or path.startswith(w.rstrip("/") + "/") for w in map(os.path.normpath, wanted))


def commands_due(
    commands: list[dict[str, Any]], changed: list[str], created: list[str]
) -> list[tuple[list[str], list[str]]]:
    """Each command one of whose paths this run changed, in order, with the changed files it is
    due for; its ``argv_if_replaced`` form when one of those files existed before."""
    due = []
    for command in commands:
        hit = [p for p in changed if matches(p, command["paths"])]
        if not hit:
            continue
        replaced = any(p not in created for p in hit)
        due.append((command["argv_if_replaced"] if replaced and command["argv_if_replaced"] else command["argv"], hit))
    return due


Saved = tuple[bytes, os.stat_result] | str | None


def save(path: str) -> Saved:
    """What is at ``path`` now, to put back: a regular file's bytes and lstat, a link's target, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path)
    with open(path, "rb") as fh:
        return fh.read(), st


def put_back(path: str, saved: Saved) -> None:
    """Undo this run's change of ``path`` (best effort: the command's failure is what is reported)."""
    try:
        if os.path.lexists(path):
            os.unlink(path)
        if isinstance(saved, str):
            os.symlink(saved, path)
        elif saved is not None:
            data, st = saved
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, stat.S_IMODE(st.st_mode))
    except OSError:
        pass


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True, "options": FILE_SPEC},
            "directories": {"type": "list", "elements": "dict", "default": [], "options": DIR_SPEC},
            "absent": {"type": "list", "elements": "path", "default": []},
            "commands": {"type": "list", "elements": "dict", "default": [], "options": COMMAND_SPEC},
        },
        supports_check_mode=True,
    )
    check = module.check_mode
    changed_dirs: list[str] = []
    changed_files: list[str] = []
    created_files: list[str] = []
    diffs: list[dict[str, str]] = []
    ran: list[str] = []
    saved: dict[str, Saved] = {}
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
            data = content(spec)
            uid, gid = ids(spec["owner"], spec["group"])
            mode = octal(spec["mode"])
            old, st = current(path)
            same_content = old == data
            same_meta = st is not None and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)
            if same_content and same_meta:
                continue
            changed_files.append(path)
            if st is None:
                created_files.append(path)
            saved[path] = None if st is None or old is None else (old, st)
            if not same_content:
                before = "" if old is None else old.decode("utf-8", "replace")
                after = data.decode("utf-8", "replace")
                diffs.append({"before": before, "after": after, "before_header": path, "after_header": path})
            if check:
                continue
            if same_content and st is not None:
                os.chown(path, uid, gid)
                os.chmod(path, mode)
            else:
                if not os.path.isdir(os.path.dirname(path)):
                    raise Refused(f"the directory of {path} does not exist")
                write(module, path, data, uid, gid, mode, spec.get("validate"))
        unwanted = []
        for path in module.params["absent"]:
            if path in seen:
                raise Refused(f"{path} is both wanted and absent")
            if os.path.lexists(path):
                unwanted.append(path)
        for spec in module.params["directories"]:
            if spec["exclusive"]:
                unwanted += strays(os.path.normpath(spec["path"]), {os.path.normpath(p) for p in seen})
        for path in unwanted:
            changed_files.append(path)
            diffs.append({"before": f"{path}\n", "after": "", "before_header": path, "after_header": path})
            if not check:
                saved[path] = save(path) if module.params["commands"] else None
                os.unlink(path)
        for argv, paths in commands_due(module.params["commands"], changed_files, created_files):
            ran.append(shlex.join(argv))
            if check:
                continue
            rc, out, err = module.run_command(argv)
            if rc != 0:
                for path in paths:
                    put_back(path, saved.get(path))
                raise Refused(
                    f"{shlex.join(argv)} failed ({rc}); {', '.join(paths)} put back as they were: "
                    f"{(err or out).strip()[-2000:]}"
                )
    except (Refused, OSError) as exc:
        module.fail_json(msg=str(exc), changed_files=changed_files, changed_directories=changed_dirs, commands=ran)
    result: dict[str, Any] = {
        "changed": bool(changed_files or changed_dirs),
        "changed_files": changed_files,
        "created_files": created_files,
        "changed_directories": changed_dirs,
        "commands": ran,
    }
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
