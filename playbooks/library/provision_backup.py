#!/usr/bin/python
"""Ansible module: one host's backup files - archives of paths, the AD domain database, PostgreSQL dumps,
the numbers of local accounts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_backup
short_description: Make one host's backup files in a new directory
description:
  - Runs as root and writes each item of O(items) as one file into O(dest), every file
    C(0600 root:root) and O(dest) itself C(0700 root:root) - the files hold password hashes
    and the domain's secrets. No secret passes through the module - an offline domain backup
    and C(pg_dump) as the C(postgres) user need none.
  - O(dest) must not exist or be empty, so a backup never mixes with an older one. A run that
    fails removes every file it made (and O(dest) when it created it) - a partial backup is
    not left to look like a whole one - and names the item that failed.
  - A C(tar) item is a gzip'd GNU tar (POSIX format, gzip's default level 6) of its O(items[].paths),
    made with C(--acls --xattrs --xattrs-include=* --numeric-owner --sparse) - owners by number,
    POSIX access and default ACLs and every extended attribute - Samba's NT ACL
    (C(security.NTACL)), C(user.DOSATTRIB), the C(user.DosStream.*) streams of vfs_streams_xattr.
    Members are stored relative to C(/), so C(tar --acls --xattrs --xattrs-include='*'
    --numeric-owner -xpzf FILE -C /) restores them where they were. The extraction needs
    C(--xattrs-include='*') too - without it GNU tar restores only C(user.*) attributes and the
    NT ACLs are lost. When O(dest) lies inside one of the paths it is left out of the archive.
    tar's exit code 1 (a file changed while it was read) is a warning, not a failure.
  - A C(samba_domain) item is C(samba-tool domain backup offline) (on an AD DC, with the
    databases locked while they are copied, the DC may keep running), whose
    C(samba-backup-*.tar.bz2) becomes C(NAME.tar.bz2); it is restored with
    C(samba-tool domain backup restore).
  - A C(pg_dump) item is C(pg_dump --format=custom) of one database (restored with
    C(pg_restore)), a C(pg_globals) item C(pg_dumpall --globals-only) (roles with their
    password hashes, role memberships, tablespaces), both run as the C(postgres) user over the
    local socket (peer authentication), their output streamed into the file as root.
  - An C(accounts) item is C(NAME.json) - the numbers of the local users of O(items[].users) and
    the groups of O(items[].groups), so provision_restore_files can make them again with the same
    numbers before archives with numeric owners come back. It holds one JSON object -
    C(users) (by name, each user's C(uid), C(gid), C(group) - the name of its primary group, which
    joins the groups - C(home), C(shell) and C(gecos)) and C(groups) (by name, each group's gid) -
    and never a password or a hash (C(/etc/shadow) is not read). Names not on the host, and accounts that are not
    regular ones (an id outside 1000..59999, a home or shell that is not an absolute, normalized
    path, a field with C(:) or a control character) are left out and said in RV(files[].paths).
  - Commands run without a shell, their arguments a list, in the C locale.
  - A backup is an action, so a run that succeeds is always C(changed). Check mode checks
    everything a run would need (O(dest), names, paths, the tools) and reports the files it
    would make, without writing anything or running a tool.
version_added: "0.1.0"
author: provision maintainers
options:
  dest:
    description:
      - Absolute path of the directory to make the files in; created C(0700 root:root) with its
        missing parents, or an existing empty directory (made C(0700 root:root)).
    type: str
    required: true
  root:
    description:
      - Where an C(accounts) item reads the host's accounts - C(/) through the system's name
        service, any other directory from its C(etc/passwd) and C(etc/group). Not C(/) only in
        tests, and then every item must be of kind C(accounts).
    type: str
    default: /
  items:
    description: The files to make, in order; each is C(DEST/NAME) plus the suffix of its kind.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The stem of the file's name - C([a-z0-9][a-z0-9._-]*), unique among the items.
        type: str
        required: true
      kind:
        description:
          - C(tar) (C(NAME.tar.gz)), C(samba_domain) (C(NAME.tar.bz2)), C(pg_dump) (C(NAME.dump)),
            C(pg_globals) (C(NAME.sql)) or C(accounts) (C(NAME.json)).
        type: str
        required: true
        choices: [tar, samba_domain, pg_dump, pg_globals, accounts]
      paths:
        description:
          - C(tar) only, required there - absolute, normalized paths to archive (a directory with
            everything below it, a symbolic link as the link). Each must exist unless
            O(items[].missing_ok).
        type: list
        elements: str
      exclude:
        description:
          - C(tar) only - glob patterns of what to leave out (tar's C(--exclude); C(*) matches
            C(/) too, an excluded directory goes with all it holds). A pattern that starts with
            C(/) is matched against the whole path (C(/var/lib/samba/private/msg.sock)), any
            other against the path's last components (C(*.tmp), C(cache)).
        type: list
        elements: str
      missing_ok:
        description:
          - C(tar) only - leave out paths that do not exist instead of failing (C(false) when not given).
        type: bool
      users:
        description:
          - C(accounts) only - local users whose numbers to record (with their primary groups),
            each C([a-z_][a-z0-9_.-]{0,31}); O(items[].users) or O(items[].groups) is required there.
        type: list
        elements: str
      groups:
        description:
          - C(accounts) only - local groups whose numbers to record, named as O(items[].users) are.
        type: list
        elements: str
      database:
        description: C(pg_dump) only, required there - the database to dump.
        type: str
      cluster_port:
        description:
          - C(pg_dump) and C(pg_globals) only - the cluster's port (it names the socket file);
            5432 when not given.
        type: int
      socket_dir:
        description:
          - C(pg_dump) and C(pg_globals) only - the directory of the cluster's Unix socket;
            C(/var/run/postgresql) when not given.
        type: str
notes:
  - Needs root (C(become)).
"""

EXAMPLES = r"""
- name: Back up this host
  provision_backup:
    dest: /var/backups/provision/20240501T0300
    items:
      - name: samba-config
        kind: tar
        paths: [/etc/samba, /etc/krb5.conf]
      - name: share-projects
        kind: tar
        paths: [/srv/shares/projects, /srv/shares/archive]
        exclude: ["*.tmp", /srv/shares/projects/.recycle]
        missing_ok: true
      - name: domain
        kind: samba_domain
      - name: db-projects
        kind: pg_dump
        database: projects
      - name: pg-globals
        kind: pg_globals
      - name: accounts
        kind: accounts
        users: [alice, bob]
        groups: [staff]
  register: backup
"""

RETURN = r"""
files:
  description: One entry per item, in order - the file made (in check mode, that would be made).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The item's name.
      type: str
    kind:
      description: The item's kind.
      type: str
    file:
      description: Absolute path of the file on the host.
      type: str
      sample: /var/backups/provision/20240501T0300/samba-config.tar.gz
    size:
      description: Its size in bytes; null in check mode.
      type: int
    sha256:
      description: The hex SHA-256 of its content; null in check mode.
      type: str
    seconds:
      description: How long making it took; null in check mode.
      type: float
    paths:
      description:
        - What it holds - for C(tar) the absolute paths archived (those of O(items[].paths) that
          exist); for C(accounts) a line of the users and one of the groups with their numbers,
          then a line for each name left out and why; for the other kinds one line that says
          what was dumped.
      type: list
      elements: str
item:
  description: On failure, the name of the item that failed (absent when the request itself is refused).
  returned: failure
  type: str
"""

import contextlib  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

from ansible.module_utils import provision_archive  # noqa: E402
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_archive import PG_USER, Failed, absolute, inside, need, tail  # noqa: E402
from ansible.module_utils.provision_commands import ENV  # noqa: E402

SUFFIX = {"tar": ".tar.gz", "samba_domain": ".tar.bz2", "pg_dump": ".dump", "pg_globals": ".sql", "accounts": ".json"}
ONLY = provision_archive.only(("paths", "exclude", "missing_ok"), ("users", "groups"))
# Everything Samba keeps outside the file's bytes: owners by number, POSIX ACLs, every xattr
# (security.NTACL, user.DOSATTRIB, user.DosStream.*); POSIX format, the one that holds them.
TAR_OPTIONS = ("--format=posix", "--acls", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sparse")


class Item(NamedTuple):
    """One checked item: the file it makes and what goes into it."""

    name: str
    kind: str
    file: str
    holds: tuple[str, ...]
    tops: tuple[str, ...] = ()  # tar: the paths to name to tar, none inside another
    exclude: tuple[str, ...] = ()
    database: str = ""
    port: int = 5432
    socket_dir: str = "/var/run/postgresql"
    data: str = ""  # accounts: the JSON to write


def covered(path: str, top: str) -> bool:
    """Whether archiving ``top`` already archives ``path`` under the same name: it lies below ``top``
    and no symbolic link is on the way down (tar stores a link, it does not follow it)."""
    if path == top or not inside(path, top):
        return False
    return os.path.realpath(path) == os.path.join(os.path.realpath(top), os.path.relpath(path, top))


def member(path: str) -> str:
    """The archive name of ``path``: relative to /, so ``tar -C /`` puts it back."""
    return path.lstrip("/") or "."


def exclude_options(patterns: tuple[str, ...], dest: str, tops: tuple[str, ...]) -> list[str]:
    """tar's --exclude options, positional: unanchored patterns first, then those written from /
    (anchored), then ``dest`` when an archived directory holds it (anchored and literal)."""
    plain = [p for p in patterns if not p.startswith("/")]
    rooted = [p.lstrip("/") for p in patterns if p.startswith("/")]
    options = [f"--exclude={p}" for p in plain]
    if rooted:
        options += ["--anchored", *(f"--exclude={p}" for p in rooted)]
    if any(inside(dest, top) for top in tops):
        options += ["--anchored", "--no-wildcards", f"--exclude={member(dest)}"]
    return options


def tar_argv(tar: str, out: str, item: Item, dest: str) -> list[str]:
    """The tar command of a tar item; the member names follow on stdin, NUL-terminated and verbatim
    (a name that starts with '-' is never read as an option)."""
    return [
        tar,
        "--create",
        f"--file={out}",
        "--gzip",
        *TAR_OPTIONS,
        "--directory=/",
        *exclude_options(item.exclude, dest, item.tops),
        "--null",
        "--verbatim-files-from",
        "--files-from=-",
    ]


def pg_argv(runuser: str, tool: str, item: Item) -> list[str]:
    """pg_dump or pg_dumpall as the postgres user over the local socket; never prompts."""
    argv = provision_archive.pg_command(runuser, tool, item.socket_dir, item.port)
    if item.kind == "pg_dump":
        return [*argv, "--format=custom", f"--dbname={item.database}"]
    return [*argv, "--globals-only"]


def plan(module: AnsibleModule, dest: str, raw: list[dict[str, Any]], root: str = "/") -> list[Item]:
    """Every item checked before anything is made: names, options for the kind, paths, tools."""
    items: list[Item] = []
    seen: set[str] = set()
    for spec in raw:
        name, kind = provision_archive.check_item(spec, seen, ONLY)
        file = os.path.join(dest, name + SUFFIX[kind])
        if kind == "tar":
            items.append(tar_item(name, file, dest, spec))
            need(module, "tar", name, "kind tar archives with GNU tar")
            need(module, "gzip", name, "kind tar compresses with gzip")
        elif kind == "accounts":
            items.append(accounts_item(name, file, spec, root))
        elif kind == "samba_domain":
            need(module, "samba-tool", name, "kind samba_domain runs samba-tool domain backup offline on an AD DC")
            items.append(
                Item(name, kind, file, ("the AD domain's databases, secrets, sysvol and Samba configuration",))
            )
        else:
            port, socket_dir = provision_archive.pg_socket(name, spec)
            tool = "pg_dump" if kind == "pg_dump" else "pg_dumpall"
            need(module, "runuser", name, f"{tool} runs as the {PG_USER} user")
            need(module, tool, name, f"kind {kind} runs it")
            provision_archive.pg_user(name)
            if kind == "pg_dump":
                database = provision_archive.pg_database(name, spec)
                holds = (f"PostgreSQL database {database} (port {port})",)
            else:
                database = ""
                holds = (f"PostgreSQL roles with their password hashes, memberships and tablespaces (port {port})",)
            items.append(Item(name, kind, file, holds, database=database, port=port, socket_dir=socket_dir))
    return items


def tar_item(name: str, file: str, dest: str, spec: dict[str, Any]) -> Item:
    paths = spec.get("paths")
    if not paths:
        raise Failed(f"item {name}: kind tar needs paths", name)
    held: list[str] = []
    for path in paths:
        if not absolute(path):
            raise Failed(f"item {name}: path {path!r} is not an absolute, normalized path", name)
        if inside(path, dest):
            raise Failed(f"item {name}: path {path} is inside dest {dest}", name)
        if not os.path.lexists(path):
            if spec.get("missing_ok"):
                continue
            raise Failed(f"item {name}: path {path} does not exist (missing_ok is not set)", name)
        if path not in held:
            held.append(path)
    top = [p for p in held if not any(covered(p, other) for other in held)]
    exclude = spec.get("exclude") or []
    for pattern in exclude:
        if not pattern or not pattern.strip("/"):
            raise Failed(f"item {name}: exclude pattern {pattern!r} would match nothing or everything", name)
    return Item(name, "tar", file, tuple(held), tops=tuple(top), exclude=tuple(exclude))


def accounts_item(name: str, file: str, spec: dict[str, Any], root: str) -> Item:
    """The item's users (with their primary groups) and groups as they are here, read now: what
    useradd and groupadd need to make them again with the same numbers. A name that is not here,
    or not an account the restore can make again, is left out and said."""
    users, groups = provision_archive.account_names(name, spec)
    have_users, have_groups = provision_archive.local_accounts(root)
    group_of: dict[int, str] = {}
    for group, gid in have_groups.items():
        group_of.setdefault(gid, group)
    kept_users: dict[str, dict[str, Any]] = {}
    wanted = list(groups)
    missing: list[str] = []
    left_out: list[str] = []
    uids: dict[int, str] = {}
    for user in users:
        account = have_users.get(user)
        if account is None:
            missing.append(f"user {user}")
            continue
        group = group_of.get(account.gid)
        if group is None:
            problem = f"user {user}: its primary group {account.gid} has no name here"
        else:
            problem = provision_archive.account_problem(user, account, group)
        if not problem and account.uid in uids:
            problem = f"user {user}: uid {account.uid} is user {uids[account.uid]}'s too"
        if problem:
            left_out.append(problem)
            continue
        uids[account.uid] = user
        kept_users[user] = {**account._asdict(), "group": group}
        if group not in wanted:
            wanted.append(str(group))
    kept_groups: dict[str, int] = {}
    gids: dict[int, str] = {}
    for group in wanted:
        gid = have_groups.get(group)
        if gid is None:
            missing.append(f"group {group}")
        elif not provision_archive.regular(gid):
            left_out.append(f"group {group}: gid {gid} is not a regular group's")
        elif gid in gids:
            left_out.append(f"group {group}: gid {gid} is group {gids[gid]}'s too")
        else:
            gids[gid] = group
            kept_groups[group] = gid
    for user, entry in list(kept_users.items()):
        if kept_groups.get(entry["group"]) != entry["gid"]:  # its primary group was left out
            del kept_users[user]
            left_out.append(f"user {user}: its primary group {entry['group']} is left out")
    holds = [
        "users " + (", ".join(f"{u} ({e['uid']})" for u, e in kept_users.items()) or "none"),
        "groups " + (", ".join(f"{g} ({gid})" for g, gid in kept_groups.items()) or "none"),
        *(["left out, not on this host - " + ", ".join(missing)] if missing else []),
        *(f"left out, {why}" for why in left_out),
    ]
    data = json.dumps({"users": kept_users, "groups": kept_groups}, indent=1, sort_keys=True) + "\n"
    return Item(name, "accounts", file, tuple(holds), data=data)


def prepare_dest(dest: str, check: bool) -> bool:
    """Check ``dest`` (missing, or an empty directory) and, unless in check mode, make it
    0700 root:root; whether this run created it."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        if not check:
            os.makedirs(dest, mode=0o700)
            os.chown(dest, 0, 0)
            os.chmod(dest, 0o700)
        return True
    if not stat.S_ISDIR(st.st_mode):
        raise Failed(f"dest {dest} exists and is not a directory")
    if os.listdir(dest):
        raise Failed(f"dest {dest} is not empty: a backup goes into a new or empty directory")
    if not check:
        os.chown(dest, 0, 0)
        os.chmod(dest, 0o700)
    return False


def new_file(path: str) -> int:
    """A new, empty 0600 file (never an existing one, never through a link); its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def make_tar(module: AnsibleModule, item: Item, dest: str) -> None:
    os.close(new_file(item.file))
    rc, out, err = module.run_command(
        tar_argv(need(module, "tar", item.name, "kind tar"), item.file, item, dest),
        data="".join(member(top) + "\0" for top in item.tops),
        binary_data=True,
        environ_update=ENV,
        expand_user_and_vars=False,
        cwd="/",
    )
    if rc == 1:
        module.warn(f"item {item.name}: files changed while tar read them: {tail(err or out)}")
    elif rc != 0:
        raise Failed(f"item {item.name}: tar failed ({rc}): {tail(err or out)}", item.name)


def make_accounts(item: Item) -> None:
    with os.fdopen(new_file(item.file), "w", encoding="utf-8") as fh:
        fh.write(item.data)


def make_samba_domain(module: AnsibleModule, item: Item, dest: str) -> None:
    """samba-tool writes samba-backup-<timestamp>.tar.bz2 (its online and rename backups put the
    realm before the timestamp; the pattern takes both) into a directory of its own here, created
    empty so exactly one such file must appear; that file becomes the item's."""
    staging = os.path.join(dest, f".{item.name}.samba-tool")
    os.mkdir(staging, 0o700)
    try:
        argv = [need(module, "samba-tool", item.name, "kind samba_domain"), "domain", "backup", "offline"]
        rc, out, err = module.run_command(
            [*argv, f"--targetdir={staging}"], environ_update=ENV, expand_user_and_vars=False, cwd="/"
        )
        if rc != 0:
            raise Failed(
                f"item {item.name}: samba-tool domain backup offline failed ({rc}): {tail(err or out)}", item.name
            )
        found = [
            p for p in glob.glob(os.path.join(glob.escape(staging), "samba-backup-*.tar.bz2")) if os.path.isfile(p)
        ]
        if len(found) != 1:
            raise Failed(
                f"item {item.name}: samba-tool domain backup offline succeeded but wrote "
                f"{len(found)} samba-backup-*.tar.bz2 files instead of one: {tail(out)}",
                item.name,
            )
        os.rename(found[0], item.file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def make_pg(module: AnsibleModule, item: Item) -> None:
    """The dump streams from the tool's stdout into the file: run_command would hold a whole
    database in memory. The tool runs as postgres, which cannot open files in dest itself."""
    tool = "pg_dump" if item.kind == "pg_dump" else "pg_dumpall"
    argv = pg_argv(need(module, "runuser", item.name, tool), need(module, tool, item.name, tool), item)
    env = provision_archive.tool_env(ENV)
    with os.fdopen(new_file(item.file), "wb") as fh:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.PIPE, env=env, cwd="/", check=False
        )
    if proc.returncode != 0:
        raise Failed(
            f"item {item.name}: {tool} failed ({proc.returncode}): {tail(proc.stderr.decode('utf-8', 'replace'))}",
            item.name,
        )


def digest(path: str) -> tuple[int, str]:
    """Size and hex SHA-256 of a file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size_and_sha: tuple[int, str] = provision_archive.checksum(fd)
    finally:
        os.close(fd)
    return size_and_sha


def remove(paths: list[str], dest: str | None) -> None:
    """Undo a failed run (best effort: the failure is what is reported)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if dest is not None:
        shutil.rmtree(dest, ignore_errors=True)


def entry(item: Item, size: int | None, sha256: str | None, seconds: float | None) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": item.kind,
        "file": item.file,
        "size": size,
        "sha256": sha256,
        "seconds": seconds,
        "paths": list(item.holds),
    }


def main() -> None:
    item_spec = provision_archive.item_options(
        SUFFIX,
        {
            "paths": {"type": "list", "elements": "str"},
            "exclude": {"type": "list", "elements": "str"},
            "missing_ok": {"type": "bool"},
            "users": {"type": "list", "elements": "str"},
            "groups": {"type": "list", "elements": "str"},
        },
    )
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "str", "required": True},
            "root": {"type": "str", "default": "/"},
            "items": {"type": "list", "elements": "dict", "required": True, "options": item_spec},
        },
        supports_check_mode=True,
    )
    dest, root = module.params["dest"], module.params["root"]
    check = module.check_mode
    if not absolute(dest) or dest == "/":
        module.fail_json(msg=f"dest {dest!r} is not an absolute, normalized path below /")
    if not absolute(root) or not os.path.isdir(root):
        module.fail_json(msg=f"root {root!r} is not an absolute, normalized path of a directory")
    if root != "/" and any(i["kind"] != "accounts" for i in module.params["items"]):
        module.fail_json(msg="a root other than / is for items of kind accounts only")
    if os.geteuid() != 0:
        module.fail_json(msg="provision_backup must run as root (become: true)")
    os.umask(0o077)  # whatever a tool writes on its own is private too
    made: list[str] = []
    files: list[dict[str, Any]] = []
    created: str | None = None
    current: Item | None = None
    try:
        items = plan(module, dest, module.params["items"], root)
        if not items:
            raise Failed("items is empty: there is nothing to back up")
        if prepare_dest(dest, check) and not check:
            created = dest
        for current in items:
            if check:
                files.append(entry(current, None, None, None))
                continue
            started = time.monotonic()
            made.append(current.file)
            if current.kind == "tar":
                make_tar(module, current, dest)
            elif current.kind == "accounts":
                make_accounts(current)
            elif current.kind == "samba_domain":
                make_samba_domain(module, current, dest)
            else:
                make_pg(module, current)
            os.chown(current.file, 0, 0)
            os.chmod(current.file, 0o600)
            size, sha256 = digest(current.file)
            files.append(entry(current, size, sha256, round(time.monotonic() - started, 3)))
    except (Failed, OSError) as exc:
        remove(made, created)
        module.fail_json(**provision_archive.failure(exc, current.name if current else None))
    module.exit_json(changed=True, files=files)


if __name__ == "__main__":
    main()
