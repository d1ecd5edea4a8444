#!/usr/bin/python
"""Ansible module: put one host's backup files back - local accounts with their numbers, archives of paths,
PostgreSQL roles and databases."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_restore_files
short_description: Put one host's backup files back on a host that was lost
description:
  - Runs as root on the host that replaces a lost one and restores each item of O(items) from
    its file in O(src_dir) - the files provision_backup made (C(NAME.json), C(NAME.tar.gz),
    C(NAME.sql), C(NAME.dump)), copied there by the controller.
  - Everything is checked before anything changes - the names, the options of each kind, the
    tools, and every file - it must be a regular file in O(src_dir) (not a symbolic link) that
    only root can write, its SHA-256 must be O(items[].sha256) (otherwise the copy is not the
    backup's file), and every archive is inspected whole. A request that fails a check changes
    nothing and names the item. O(src_dir) itself must be root's and writable by root alone - a
    file must not change between its check and its use (the module reads each through the
    one descriptor it checked).
  - A C(tar) archive is a trust boundary - a tampered backup must not write outside its own
    paths. It is refused, with nothing extracted, when any member has an absolute name, a C(..)
    component or a name that is not normalized, lies outside every one of O(items[].paths), is
    a device or a fifo (or of any type GNU tar does not write for files, directories and links),
    is a hard link to anything but an earlier file of the archive inside the paths, lies below a
    member that is not a directory (extraction through a symbolic link), is a file with the
    set-user-ID or set-group-ID bit or carries a C(security.capability) attribute (a backup of
    data holds no privileged programs), or when the archive has a global extended header or
    data after its end. Python's tarfile and GNU tar both read the archive and must agree on
    every member's type, name, mode and link target, so no difference between the two parsers
    can hide a member from the inspection.
  - An C(accounts) item makes the local groups and users of its file (provision_backup's kind
    C(accounts)) again with the numbers they had, before anything is set aside or extracted - the
    archives hold owners by number. Only the names of O(items[].groups) and O(items[].users) are
    made (the spec decides, not the file; the others are said in RV(restored[].holds)). The file
    is refused whole, with nothing made, when it is larger than 1 MiB or not UTF-8 JSON of that
    shape (a name twice included), a name is not C([a-z_][a-z0-9_.-]{0,31}), an id lies outside
    1000..59999 (regular accounts only, never root nor a system account), two entries share an
    id, a home or shell is not an absolute, normalized path, or a field holds C(:) or a control
    character. A group that is missing is made with C(groupadd --gid), a user with
    C(useradd --uid --gid --no-user-group --no-create-home --home-dir --shell --comment) (no
    password - the apply sets it); one that exists with the same number is kept. A group or user
    that exists with another number, or whose number belongs to another name here, fails the
    item naming both, before anything is made; so does a user whose primary group is neither on
    the host nor made by the item. When O(root) is not C(/), the accounts are read from its
    C(etc/passwd) and C(etc/group) and made there with C(--prefix).
  - Then, before any archive is extracted, each path of O(items[].paths) that the archive holds
    and that exists on the host (below O(root)) is renamed aside to
    C(PATH.before-restore-STAMP) - on the same filesystem, so nothing is copied and nothing is
    lost - unless it is an empty directory (or a mount point holding only an empty
    C(lost+found)), which is kept and extracted into. A path below one set aside goes with it.
    A mount point that is not empty cannot be renamed and fails the check; so does a
    C(PATH.before-restore-STAMP) that exists already. A path the archive does not hold (it
    did not exist when the backup was made) is left as it is.
  - Archives are extracted with GNU tar into O(root) -
    C(tar --extract --gzip --acls --xattrs --xattrs-include=* --numeric-owner --same-owner
    --preserve-permissions), limited to the paths the archive holds - owners by number, POSIX
    ACLs and every extended attribute, Samba's NT ACLs (C(security.NTACL)) included (they need
    C(--xattrs-include=*)). Parents that do not exist are made C(0755 root:root).
  - A C(pg_globals) item is fed to C(psql) (C(ON_ERROR_STOP=0), terse errors) as the
    C(postgres) user over the local socket - a role that exists already is expected (the
    C(CREATE ROLE) fails and the C(ALTER ROLE) after it sets its attributes and password hash);
    any other error fails the item and is quoted without password hashes.
  - A C(pg_dump) item is restored with C(pg_restore --exit-on-error --single-transaction) as the
    C(postgres) user into its database, which must exist (the apply creates it from the spec).
    A database that holds any table, view, sequence or function outside C(pg_catalog) and
    C(information_schema) is never overwritten - the item is reported in RV(not_restored).
  - The files are fed to the tools on stdin (the C(postgres) user cannot open the root-owned
    files); commands run without a shell, their arguments a list, in the C locale, PostgreSQL
    tools without the caller's C(PG*) environment. Nothing of the files is logged.
  - Check mode makes every check, inspects the archives and asks PostgreSQL which databases are
    empty, then reports what would be restored, set aside and skipped without changing
    anything or running a tool that writes.
version_added: "0.1.0"
author: provision maintainers
options:
  src_dir:
    description:
      - Absolute path of the directory on the host that holds the backup files, owned by root
        and writable by root alone.
    type: str
    required: true
  stamp:
    description:
      - When the restore was started, C(YYYYMMDDTHHMMSSZ) (UTC) - it names what is set aside,
        C(PATH.before-restore-STAMP).
    type: str
    required: true
  root:
    description:
      - The directory the archives are extracted into - the absolute paths of
        O(items[].paths) are seen from it (a path P lands at ROOT/P) - and whose C(etc/passwd),
        C(etc/group), C(etc/shadow) and C(etc/gshadow) the accounts are made in. Not C(/) only
        in tests.
    type: str
    default: /
  items:
    description:
      - What to restore, in order - an C(accounts) item first and only one (it makes the owners of
        the archives' files), a C(pg_globals) item before the C(pg_dump) items whose owners it creates.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The item's name - C([a-z0-9][a-z0-9._-]*), unique among the items.
        type: str
        required: true
      kind:
        description:
          - C(accounts) (local users and groups with their numbers, JSON), C(tar) (a gzip'd GNU
            tar), C(pg_globals) (C(pg_dumpall --globals-only)) or C(pg_dump) (C(pg_dump --format=custom)).
        type: str
        required: true
        choices: [accounts, tar, pg_globals, pg_dump]
      file:
        description: The file's name in O(src_dir) - a plain name, no C(/).
        type: str
        required: true
      sha256:
        description: The hex SHA-256 the backup recorded for the file.
        type: str
        required: true
      paths:
        description:
          - C(tar) only, required there - the absolute, normalized paths (not C(/)) the archive
            may hold; every member must be one of them or lie below one.
        type: list
        elements: str
      users:
        description:
          - C(accounts) only - the users of the file that may be made (the others are not);
            O(items[].users) or O(items[].groups) is required there.
        type: list
        elements: str
      groups:
        description:
          - C(accounts) only - the groups of the file that may be made (the others are not).
        type: list
        elements: str
      database:
        description: C(pg_dump) only, required there - the database to restore into.
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
  - A run that fails after it changed something reports in RV(set_aside) and RV(restored)
    what it had done by then; the accounts an C(accounts) item made before a C(groupadd) or
    C(useradd) failed are named in the message.
"""

EXAMPLES = r"""
- name: Put the backup of peer1 back, its local accounts first
  provision_restore_files:
    src_dir: /var/lib/provision/restore/20240501T030000Z
    stamp: "20240502T101500Z"
    items:
      - name: accounts
        kind: accounts
        file: accounts.json
        sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
        users: [alice, bob]
        groups: [alice, bob, staff]
      - name: share-projects
        kind: tar
        file: share-projects.tar.gz
        sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        paths: [/srv/projects]

- name: Put the backup of fs1 back
  provision_restore_files:
    src_dir: /var/lib/provision/restore/20240501T030000Z
    stamp: "20240502T101500Z"
    items:
      - name: join-state
        kind: tar
        file: join-state.tar.gz
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        paths: [/var/lib/samba, /etc/krb5.keytab]
      - name: share-projects
        kind: tar
        file: share-projects.tar.gz
        sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        paths: [/srv/shares/projects]
  register: restore

- name: Put the databases of db1 back
  provision_restore_files:
    src_dir: /var/lib/provision/restore/20240501T030000Z
    stamp: "20240502T101500Z"
    items:
      - name: pg-globals
        kind: pg_globals
        file: pg-globals.sql
        sha256: fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13
      - name: db-projects
        kind: pg_dump
        file: db-projects.dump
        sha256: a4e624d686e03ed2767c0abd85c14426b0b1157d2ce81d27bb4fe4f6f01d688a
        database: projects
"""

RETURN = r"""
restored:
  description: The items restored (in check mode, that would be restored), in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The item's name.
      type: str
    kind:
      description: The item's kind.
      type: str
    holds:
      description:
        - What was put back - for C(tar) the paths of O(items[].paths) the archive holds (as seen
          from O(root)), for C(pg_dump) the database, for C(pg_globals) one line saying the roles,
          for C(accounts) a line per group and user, created or kept, with its number, and one
          for the names of the file not made.
      type: list
      elements: str
      sample: [/srv/shares/projects]
    seconds:
      description: How long it took; null in check mode.
      type: float
set_aside:
  description: What was renamed aside before the archives were extracted (in check mode, would be).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path on the host (below O(root)).
      type: str
      sample: /srv/shares/projects
    to:
      description: Where it is now, beside it.
      type: str
      sample: /srv/shares/projects.before-restore-20240502T101500Z
not_restored:
  description:
    - Items not restored, with why - a database that holds data, an archive that holds none of its paths.
    - Not called C(skipped) - Ansible would take a list there that is not empty for a skipped task.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The item's name.
      type: str
    why:
      description: Why it was not restored.
      type: str
item:
  description: On failure, the name of the item that failed (absent when the request itself is refused).
  returned: failure
  type: str
"""

import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import IO, Any, NamedTuple, cast  # noqa: E402

from ansible.module_utils import provision_archive  # noqa: E402
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_archive import CHUNK, PG_USER, Account, Failed, absolute, inside, need  # noqa: E402
from ansible.module_utils.provision_commands import ENV  # noqa: E402
from ansible.module_utils.provision_fileops import Refused, move_aside  # noqa: E402

STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
KINDS = ("accounts", "tar", "pg_globals", "pg_dump")
ONLY = provision_archive.only(("paths",), ("users", "groups"))
ACCOUNTS_MAX = 1 << 20  # bytes of an accounts file: thousands of accounts
USER_FIELDS = frozenset({"uid", "gid", "group", "home", "shell", "gecos"})
# What provision_backup's archives hold back: owners by number, POSIX ACLs, every xattr (without
# --xattrs-include=* GNU tar restores only user.* and security.NTACL is silently lost).
EXTRACT_OPTIONS = (
    "--acls",
    "--xattrs",
    "--xattrs-include=*",
    "--numeric-owner",
    "--same-owner",
    "--preserve-permissions",
)
# Member types a backup of files, directories and links has, with the letter GNU tar lists them by.
TYPES = {
    tarfile.REGTYPE: "-",
    tarfile.AREGTYPE: "-",
    tarfile.CONTTYPE: "C",
    tarfile.GNUTYPE_SPARSE: "S",
    tarfile.DIRTYPE: "d",
    tarfile.SYMTYPE: "l",
    tarfile.LNKTYPE: "h",
}
SPECIAL = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a fifo"}
# A line of `tar --list --verbose --quoting-style=c`: mode, owner, size, date, time, "name", and
# ` -> "target"` (symbolic link) or ` link to "target"` (hard link). Quoted names hold no bare '"'.
QUOTED = r'"((?:[^"\\]|\\.)*)"'
LISTED = re.compile(rf'(\S+) [^"]*{QUOTED}(?: -> {QUOTED}| link to {QUOTED})?')
C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34, "'": 39, "?": 63}
# psql's error for a role of the globals that the new cluster has already: expected, not a failure.
ROLE_EXISTS = re.compile(r'ERROR:\s+role ".*" already exists$')
PROBLEM = re.compile(r"\b(ERROR|FATAL|PANIC):")
HASHES = re.compile(r"SCRAM-SHA-256\$[^\s'\"]*|md5[0-9a-f]{32}")
# What makes a database hold data: relations (tables, views, materialized views, sequences,
# foreign and partitioned tables) and functions outside the catalogs.
OBJECTS = (
    "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
    " AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p'))"
    " + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))"
)


class Accounts(NamedTuple):
    """What an accounts item does, checked against the host."""

    groups: tuple[tuple[str, int], ...]  # to make: name, gid
    users: tuple[tuple[str, Account, str], ...]  # to make: name, account, primary group
    kept: tuple[str, ...]  # there already with the same number
    left_out: tuple[str, ...]  # in the file, not named by the item


class Item(NamedTuple):
    """One checked item: its open file and what restoring it does."""

    name: str
    kind: str
    file: str
    fd: int
    paths: tuple[str, ...] = ()  # tar: the paths the archive may hold
    held: tuple[str, ...] = ()  # tar: those it holds (a member is the path or lies below it)
    database: str = ""
    port: int = 5432
    socket_dir: str = "/var/run/postgresql"
    skip: str = ""  # why it is not restored
    accounts: Accounts | None = None

    def holds(self) -> list[str]:
        if self.accounts is not None:
            made = [f"group {g} ({gid}) created" for g, gid in self.accounts.groups]
            made += [f"user {u} ({a.uid}) created" for u, a, _ in self.accounts.users]
            left = self.accounts.left_out
            return [
                *made,
                *self.accounts.kept,
                *([f"not made, not named by the item - {', '.join(left)}"] if left else []),
            ]
        if self.kind == "tar":
            return list(self.held)
        if self.kind == "pg_dump":
            return [self.database]
        return [f"PostgreSQL roles with their password hashes and memberships (port {self.port})"]


def below(root: str, path: str) -> str:
    """Where the absolute ``path`` (as seen from ``root``) is on the host."""
    return os.path.join(root, path.lstrip("/")) if root != "/" else path


def tail(text: str) -> str:
    """A tool's last words for a message, without password hashes."""
    return HASHES.sub("<hash>", provision_archive.tail(text))


def run(argv: list[str], stdin: int | None = None) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of ``argv``; ``stdin`` is a descriptor read from its start (a file the
    tool could not open itself, or that must be the one checked) or nothing."""
    if stdin is not None:
        os.lseek(stdin, 0, os.SEEK_SET)
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        env=provision_archive.tool_env(ENV),
        cwd="/",
        check=False,
    )
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------- the files


def open_src_dir(src_dir: str) -> int:
    """A descriptor of ``src_dir``: a real directory (not a link), root's and writable by root alone."""
    try:
        fd = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Failed(f"src_dir {src_dir} cannot be opened as a directory (a symbolic link is refused): {exc}") from None
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o022:
        os.close(fd)
        raise Failed(f"src_dir {src_dir} must be owned by root and writable by root alone")
    return fd


def open_file(src_fd: int, src_dir: str, name: str, file: Any) -> int:
    """A descriptor of the item's file: a regular file in src_dir (not a link), root's, written by root alone."""
    if not isinstance(file, str) or not file or "/" in file or "\0" in file or file in (".", ".."):
        raise Failed(f"item {name}: file {file!r} is not a plain file name", name)
    path = os.path.join(src_dir, file)
    try:
        # O_NONBLOCK: a fifo in its place must not hang the open; it is refused below.
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_fd)
    except FileNotFoundError:
        raise Failed(f"item {name}: {path} does not exist", name) from None
    except OSError as exc:
        raise Failed(f"item {name}: {path} cannot be opened (a symbolic link is refused): {exc}", name) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Failed(f"item {name}: {path} is not a regular file", name)
    if st.st_uid != 0 or st.st_mode & 0o022:
        os.close(fd)
        raise Failed(f"item {name}: {path} must be owned by root and writable by root alone", name)
    os.set_blocking(fd, True)
    return fd


# --------------------------------------------------------------------------- inspecting an archive


class Reader:
    """The open file for Python's gzip, read with pread (GNU tar reads the same descriptor at the same time)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self.fd, CHUNK if size is None or size < 0 else size, self.offset)
        self.offset += len(data)
        return data


class ZeroTail:
    """The decompressed archive for tarfile; remembers where its last byte that is not zero was, so
    data after the archive's end (which another reader might take for more members) is seen."""

    def __init__(self, src: gzip.GzipFile) -> None:
        self.src = src
        self.offset = 0
        self.last = -1

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        used = len(data.rstrip(b"\0"))
        if used:
            self.last = self.offset + used - 1
        self.offset += len(data)
        return data


def member_path(raw: str, directory: bool) -> str | None:
    """The absolute path a member name lands at (seen from root), or None when the name is not one
    GNU tar writes: relative, normalized, no '..', no NUL (a directory may end in '/')."""
    if "\0" in raw or raw.startswith("/") or ".." in raw.split("/"):
        return None
    name = raw[:-1] if directory and raw.endswith("/") else raw
    if not name or name == "." or os.path.normpath(name) != name:
        return None
    return "/" + name


def unquote_c(text: str) -> str:
    """A name of GNU tar's --quoting-style=c (without its quotes), decoded as tarfile decodes names."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in "01234567":
            end = i + 1
            while end < len(text) and end < i + 4 and text[end] in "01234567":
                end += 1
            out.append(int(text[i + 1 : end], 8) & 0xFF)
            i = end
        elif nxt in C_ESCAPES:
            out.append(C_ESCAPES[nxt])
            i += 2
        else:
            raise ValueError(f"unknown escape \\{nxt}")
    return out.decode("utf-8", "surrogateescape")


def listed(line: bytes) -> tuple[str, str, str, str | None] | None:
    """(type letter, name, permissions, link target) of a line of GNU tar's verbose listing."""
    match = LISTED.fullmatch(line.rstrip(b"\n").decode("utf-8", "surrogateescape"))
    if not match or len(match.group(1)) < 10:
        return None
    mode, name, symlink, hardlink = match.groups()
    target = symlink if symlink is not None else hardlink
    try:
        name = unquote_c(name)
        target = None if target is None else unquote_c(target)
    except (ValueError, IndexError):
        return None
    if mode[0] == "d" and name.endswith("/"):
        name = name[:-1]
    return mode[0], name, mode[1:10], target


def inspect(tar: str, item: str, fd: int, paths: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse an archive that could write outside ``paths`` (see DOCUMENTATION); the paths it holds.

    Python reads the archive (gzip's multi-member streams as gzip -d reads them) while GNU tar lists
    the same file; each member must be the same to both, so what GNU tar extracts is what was checked."""
    nondir: set[str] = set()  # every member that is not a directory
    parents: set[str] = set()  # every directory a member lies in, within the paths
    held: set[str] = set()

    def refuse(why: str) -> Failed:
        return Failed(f"item {item}: the archive is refused - {why}", item)

    with tempfile.TemporaryFile() as errors:
        os.lseek(fd, 0, os.SEEK_SET)  # GNU tar reads through the descriptor's offset, Python with pread
        listing = subprocess.Popen(
            [tar, "--list", "--verbose", "--file=-", "--gzip", "--numeric-owner", "--quoting-style=c"],
            stdin=fd,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=provision_archive.tool_env(ENV),
            cwd="/",
        )
        assert listing.stdout is not None
        try:
            count = read_members(fd, listing.stdout, paths, nondir, parents, held, refuse)
            extra = listing.stdout.read(1)
        except BaseException:
            listing.kill()
            listing.wait()
            raise
        finally:
            listing.stdout.close()
        if extra:
            listing.kill()
            listing.wait()
            raise refuse(f"GNU tar lists more members than the {count} Python reads")
        rc = listing.wait()
        errors.seek(0)
        said = errors.read().decode("utf-8", "replace")
    if rc != 0:
        raise refuse(f"GNU tar cannot list it ({rc}): {tail(said)}")
    through = parents & nondir
    if through:
        first = min(through)
        raise refuse(f"members lie below {first}, which is not a directory in the archive (a link to go through)")
    return tuple(p for p in paths if p in held)


def read_members(
    fd: int,
    gnu: IO[bytes],
    paths: tuple[str, ...],
    nondir: set[str],
    parents: set[str],
    held: set[str],
    refuse: Callable[[str], Failed],
) -> int:
    """Python's pass over the archive, each member compared with GNU tar's line for it; how many there are."""
    count = 0
    try:
        with gzip.GzipFile(fileobj=cast(IO[bytes], Reader(fd)), mode="rb") as unzipped:
            stream = ZeroTail(unzipped)
            with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as archive:
                for info in archive:
                    count += 1
                    if archive.pax_headers:  # GNU tar applies its records to every member after it
                        raise refuse("it has a global extended header (provision_backup's archives have none)")
                    what = check_member(info, paths, nondir, parents, held, refuse)
                    line = gnu.readline()
                    if not line:
                        raise refuse(f"GNU tar lists {count - 1} members, Python reads more")
                    theirs = listed(line)
                    if theirs != what:
                        raise refuse(
                            f"member {count} is {what[1]!r} ({what[0]}{what[2]}) to Python and "
                            f"{line.decode('utf-8', 'replace').strip()!r} to GNU tar (the two read it differently)"
                        )
                if archive.pax_headers:
                    raise refuse("it has a global extended header (provision_backup's archives have none)")
                end = archive.offset
                while stream.read(CHUNK):
                    pass
                if stream.last >= end:
                    raise refuse("it has data after the end of the archive")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise refuse(f"it is not a whole gzip'd tar archive ({exc})") from None
    return count


def check_member(
    info: tarfile.TarInfo,
    paths: tuple[str, ...],
    nondir: set[str],
    parents: set[str],
    held: set[str],
    refuse: Callable[[str], Failed],
) -> tuple[str, str, str, str | None]:
    """Check one member as Python reads it; (type letter, name, permissions, link target) as GNU tar
    lists it, to compare."""
    raw = info.name
    if info.type in SPECIAL:
        raise refuse(f"member {raw!r} is {SPECIAL[info.type]}")
    if info.type not in TYPES:
        raise refuse(f"member {raw!r} has type {info.type!r}, which a backup of files and links never has")
    directory = info.isdir()
    # Every name a reader could take for it: the one tarfile settled on, the pax path and the
    # sparse file's real name (GNU tar prefers the latter whatever the order of the records).
    names = {raw, *(info.pax_headers[k] for k in ("path", "GNU.sparse.name") if k in info.pax_headers)}
    found: list[str] = []
    for name in sorted(names):
        path = member_path(name, directory)
        if path is None:
            raise refuse(f"member {name!r} has an absolute name, a '..' or a name that is not normalized")
        tops = [top for top in paths if inside(path, top)]
        if not tops:
            raise refuse(f"member {name!r} lies outside the item's paths")
        held.update(tops)
        found.append(path)
    for path in found:
        if not directory:
            nondir.add(path)
        top = min((t for t in paths if inside(path, t)), key=len)  # the outermost: parents are one set
        parent = os.path.dirname(path)
        while parent != "/" and inside(parent, top) and parent not in parents:
            parents.add(parent)
            parent = os.path.dirname(parent)
    if not directory and info.mode & (stat.S_ISUID | stat.S_ISGID):
        raise refuse(f"member {raw!r} is set-user-ID or set-group-ID")
    if any(k.startswith("SCHILY.xattr.security.capability") for k in info.pax_headers):
        raise refuse(f"member {raw!r} carries file capabilities (security.capability)")
    link: str | None = None
    if info.islnk():
        targets = {info.linkname, *([info.pax_headers["linkpath"]] if "linkpath" in info.pax_headers else [])}
        for target in sorted(targets):
            path = member_path(target, False)
            if path is None or not any(inside(path, top) for top in paths):
                raise refuse(f"member {raw!r} is a hard link to {target!r}, outside the item's paths")
            if path not in nondir or path in found:
                raise refuse(f"member {raw!r} is a hard link to {target!r}, which is not a file before it")
        link = info.linkname
    elif info.issym():
        link = info.linkname
    return TYPES[info.type], raw, stat.filemode(stat.S_IFREG | (info.mode & 0o7777))[1:], link


# --------------------------------------------------------------------------- the accounts


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are all different (json.loads would keep the last of two)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"{key!r} is named twice in one object")
        out[key] = value
    return out


def no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a number of JSON")


def read_accounts(name: str, fd: int) -> tuple[dict[str, tuple[Account, str]], dict[str, int]]:
    """The users (name -> account, primary group) and groups (name -> gid) of an accounts file,
    refused whole unless every entry is a regular account useradd and groupadd can make again."""

    def refuse(why: str) -> Failed:
        return Failed(f"item {name}: the accounts file is refused - {why}", name)

    raw = os.pread(fd, ACCOUNTS_MAX + 1, 0)
    if len(raw) > ACCOUNTS_MAX or os.fstat(fd).st_size > ACCOUNTS_MAX:
        raise refuse(f"it is larger than {ACCOUNTS_MAX} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys, parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise refuse(f"it is not UTF-8 JSON ({str(exc)[:200]})") from None
    if (
        not isinstance(doc, dict)
        or set(doc) != {"users", "groups"}
        or not all(isinstance(v, dict) for v in doc.values())
    ):
        raise refuse("it is not an object of users and groups, each an object")
    groups: dict[str, int] = {}
    gids: dict[int, str] = {}
    for group, gid in doc["groups"].items():
        if not provision_archive.ACCOUNT.fullmatch(group):
            raise refuse(f"group name {group!r} is not [a-z_][a-z0-9_.-]{{0,31}}")
        if not provision_archive.regular(gid):
            raise refuse(f"group {group}: gid {gid!r} is not a regular group's (1000..59999)")
        if gid in gids:
            raise refuse(f"gid {gid} is group {gids[gid]}'s and group {group}'s")
        gids[gid] = group
        groups[group] = gid
    users: dict[str, tuple[Account, str]] = {}
    uids: dict[int, str] = {}
    for user, entry in doc["users"].items():
        if not provision_archive.ACCOUNT.fullmatch(user):
            raise refuse(f"user name {user!r} is not [a-z_][a-z0-9_.-]{{0,31}}")
        if not isinstance(entry, dict) or set(entry) != USER_FIELDS:
            raise refuse(f"user {user} is not an object of {', '.join(sorted(USER_FIELDS))}")
        account = Account(entry["uid"], entry["gid"], entry["home"], entry["shell"], entry["gecos"])
        problem = provision_archive.account_problem(user, account, entry["group"])
        if problem:
            raise refuse(problem)
        if account.uid in uids:
            raise refuse(f"uid {account.uid} is user {uids[account.uid]}'s and user {user}'s")
        if entry["group"] in groups and groups[entry["group"]] != account.gid:
            raise refuse(
                f"user {user}: gid {account.gid} is not its group {entry['group']}'s ({groups[entry['group']]})"
            )
        uids[account.uid] = user
        users[user] = (account, entry["group"])
    return users, groups


def plan_accounts(
    name: str,
    found: tuple[dict[str, tuple[Account, str]], dict[str, int]],
    allowed: tuple[tuple[str, ...], tuple[str, ...]],
    root: str,
) -> Accounts:
    """What making the file's accounts (those ``allowed`` names: users, groups) does here; every
    conflict with the host's accounts at once, before anything is made."""
    users, groups = found
    allowed_users, allowed_groups = allowed
    have_users, have_groups = provision_archive.local_accounts(root)
    group_of: dict[int, str] = {}
    for group, gid in have_groups.items():
        group_of.setdefault(gid, group)
    user_of: dict[int, str] = {}
    for user, account in have_users.items():
        user_of.setdefault(account.uid, user)
    problems: list[str] = []
    make_groups: list[tuple[str, int]] = []
    make_users: list[tuple[str, Account, str]] = []
    kept: list[str] = []
    left_out: list[str] = []
    final = dict(have_groups)
    for group, gid in groups.items():
        here = have_groups.get(group)
        if group not in allowed_groups:
            left_out.append(f"group {group}")
        elif here == gid:
            kept.append(f"group {group} ({gid}) kept")
        elif here is not None:
            problems.append(f"group {group} has gid {here} here, {gid} in the backup")
        elif gid in group_of:
            problems.append(f"gid {gid} of group {group} is group {group_of[gid]}'s here")
        else:
            make_groups.append((group, gid))
            final[group] = gid
    for user, (account, group) in users.items():
        here_user = have_users.get(user)
        if user not in allowed_users:
            left_out.append(f"user {user}")
        elif group not in final:
            problems.append(f"user {user}: its primary group {group} is neither here nor made by this item")
        elif final[group] != account.gid:
            problems.append(
                f"user {user}: its primary group {group} has gid {final[group]} here, {account.gid} in the backup"
            )
        elif here_user is not None and here_user.uid == account.uid:
            kept.append(f"user {user} ({account.uid}) kept")
        elif here_user is not None:
            problems.append(f"user {user} has uid {here_user.uid} here, {account.uid} in the backup")
        elif account.uid in user_of:
            problems.append(f"uid {account.uid} of user {user} is user {user_of[account.uid]}'s here")
        else:
            make_users.append((user, account, group))
    if problems:
        raise Failed(f"item {name}: nothing was made - " + "; ".join(problems[:20]), name)
    return Accounts(tuple(make_groups), tuple(make_users), tuple(kept), tuple(left_out))


def make_accounts(module: AnsibleModule, item: Item, root: str, check: bool) -> int:
    """groupadd and useradd with the numbers of the backup (in ROOT with --prefix); how many were
    (in check mode, would be) made."""
    assert item.accounts is not None
    if check:
        return len(item.accounts.groups) + len(item.accounts.users)
    prefix = ["--prefix", root] if root != "/" else []
    commands = [
        (f"group {group}", ["groupadd", *prefix, "--gid", str(gid), "--", group]) for group, gid in item.accounts.groups
    ]
    commands += [
        (
            f"user {user}",
            [
                *("useradd", *prefix, "--uid", str(account.uid), "--gid", group, "--no-user-group"),
                *("--no-create-home", "--home-dir", account.home, "--shell", account.shell),
                *("--comment", account.gecos, "--", user),
            ],
        )
        for user, account, group in item.accounts.users
    ]
    made: list[str] = []
    for what, argv in commands:
        tool = need(module, argv[0], item.name, f"kind accounts makes {what.split()[0]}s with it")
        rc, out, err = run([tool, *argv[1:]])
        if rc != 0:
            before = f"; made before it - {', '.join(made)}" if made else ""
            raise Failed(f"item {item.name}: {argv[0]} of {what} failed ({rc}): {tail(err or out)}{before}", item.name)
        made.append(what)
    return len(made)


# --------------------------------------------------------------------------- the plan


def plan(
    module: AnsibleModule, src_fd: int, src_dir: str, raw: list[dict[str, Any]], opened: list[int], root: str = "/"
) -> list[Item]:
    """Every item checked before anything changes: names, options for the kind, tools, the files."""
    items: list[Item] = []
    seen: set[str] = set()
    for spec in raw:
        name, kind = provision_archive.check_item(spec, seen, ONLY)
        if not SHA256.fullmatch(spec["sha256"]):
            raise Failed(f"item {name}: sha256 {spec['sha256']!r} is not 64 hex digits", name)
        if kind == "accounts":
            if items:  # one accounts item, checked against the host as it is before anything is made
                raise Failed(f"item {name}: kind accounts is the first item and the only one of its kind", name)
            allowed = provision_archive.account_names(name, spec)
        elif kind == "tar":
            paths = tar_paths(name, spec.get("paths"))
            tar = need(module, "tar", name, "kind tar extracts with GNU tar")
            need(module, "gzip", name, "kind tar archives are gzip'd")
        else:
            port, socket_dir, database = pg_options(module, name, kind, spec)
        fd = open_file(src_fd, src_dir, name, spec["file"])
        opened.append(fd)
        file = os.path.join(src_dir, spec["file"])
        if provision_archive.checksum(fd)[1] != spec["sha256"].lower():
            raise Failed(f"item {name}: the SHA-256 of {file} is not the backup's: this is not the backup's file", name)
        if kind == "accounts":
            accounts = plan_accounts(name, read_accounts(name, fd), allowed, root)
            if accounts.groups:
                need(module, "groupadd", name, "kind accounts makes the missing groups with it")
            if accounts.users:
                need(module, "useradd", name, "kind accounts makes the missing users with it")
            items.append(Item(name, kind, file, fd, accounts=accounts))
            continue
        if kind == "tar":
            held = inspect(tar, name, fd, paths)
            skip = "" if held else "the archive holds none of its paths (none existed when the backup was made)"
            items.append(Item(name, kind, file, fd, paths=paths, held=held, skip=skip))
            continue
        item = Item(name, kind, file, fd, database=database, port=port, socket_dir=socket_dir)
        if kind == "pg_dump":
            objects = count_objects(module, item)
            if objects:
                item = item._replace(
                    skip=f"database {database} already holds {objects} tables, views, sequences or functions: "
                    "a restore never overwrites live data"
                )
        items.append(item)
    return items


def tar_paths(name: str, paths: Any) -> tuple[str, ...]:
    if not paths:
        raise Failed(f"item {name}: kind tar needs paths", name)
    out: list[str] = []
    for path in paths:
        if not absolute(path) or path == "/":
            raise Failed(f"item {name}: path {path!r} is not an absolute, normalized path below /", name)
        if path not in out:
            out.append(path)
    return tuple(out)


def pg_options(module: AnsibleModule, name: str, kind: str, spec: dict[str, Any]) -> tuple[int, str, str]:
    """(port, socket_dir, database) of a PostgreSQL item, checked, with its tools and the postgres user."""
    port, socket_dir = provision_archive.pg_socket(name, spec)
    database = provision_archive.pg_database(name, spec) if kind == "pg_dump" else ""
    need(module, "runuser", name, f"kind {kind} runs the PostgreSQL tools as the {PG_USER} user")
    need(module, "psql", name, f"kind {kind} asks PostgreSQL with psql")
    if kind == "pg_dump":
        need(module, "pg_restore", name, "kind pg_dump restores with pg_restore")
    provision_archive.pg_user(name)
    return port, socket_dir, database


def psql_argv(module: AnsibleModule, item: Item, database: str) -> list[str]:
    """psql as the postgres user over the local socket; never prompts, no psqlrc."""
    runuser = need(module, "runuser", item.name, "psql")
    psql = need(module, "psql", item.name, "psql")
    return [*provision_archive.pg_command(runuser, psql, item.socket_dir, item.port), "-X", f"--dbname={database}"]


def count_objects(module: AnsibleModule, item: Item) -> int:
    """How many tables, views, sequences and functions the item's database holds outside the catalogs."""
    rc, out, err = run([*psql_argv(module, item, item.database), "-qAt", "-v", "ON_ERROR_STOP=1", "-c", OBJECTS])
    if rc != 0:
        if f'database "{item.database}" does not exist' in err:
            raise Failed(
                f"item {item.name}: database {item.database} does not exist on this host "
                "(the apply creates it from the spec: restore after the apply)",
                item.name,
            )
        raise Failed(f"item {item.name}: psql cannot ask database {item.database} ({rc}): {tail(err)}", item.name)
    try:
        return int(out.strip())
    except ValueError:
        raise Failed(f"item {item.name}: psql answered {out.strip()[:200]!r} to a count", item.name) from None


def set_aside_plan(root: str, stamp: str, items: list[Item]) -> list[tuple[str, str, str]]:
    """(item, path on the host, where it goes) for every held path that exists and is not an empty
    directory - outer paths first, a path below one set aside goes with it."""
    holders: dict[str, str] = {}
    for item in items:
        if item.kind == "tar" and not item.skip:
            for path in item.held:
                holders.setdefault(path, item.name)
    chosen: list[str] = []
    out: list[tuple[str, str, str]] = []
    for path in sorted(holders):
        if any(inside(path, outer) for outer in chosen):
            continue
        host = below(root, path)
        if not os.path.lexists(host) or empty_dir(host):
            continue
        to = f"{host}.before-restore-{stamp}"
        name = holders[path]
        if os.path.lexists(to):
            raise Failed(f"item {name}: {to} exists already: {host} cannot be set aside", name)
        if os.path.ismount(host):
            raise Failed(
                f"item {name}: {host} is a mount point that is not empty: it cannot be set aside "
                "(empty it, or move what it holds, first)",
                name,
            )
        chosen.append(path)
        out.append((name, host, to))
    return out


def empty_dir(path: str) -> bool:
    """A real directory with nothing in it - or a mount point holding only an empty lost+found."""
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return False
    entries = os.listdir(path)
    if not entries:
        return True
    found = os.path.join(path, "lost+found")
    return (
        entries == ["lost+found"]
        and os.path.ismount(path)
        and stat.S_ISDIR(os.lstat(found).st_mode)
        and not os.listdir(found)
    )


# --------------------------------------------------------------------------- restoring


def set_aside(host: str, to: str, name: str) -> None:
    if os.path.lexists(to):  # checked in the plan; a rename must never replace what is there
        raise Failed(f"item {name}: {to} appeared since the check: {host} was not set aside", name)
    try:
        move_aside(host, to)
    except Refused as exc:
        raise Failed(f"item {name}: {exc}", name) from None


def extract(module: AnsibleModule, item: Item, root: str) -> None:
    """GNU tar into root, of the paths the archive holds only (a second fence behind the inspection)."""
    tar = need(module, "tar", item.name, "kind tar")
    tops = [p for p in item.held if not any(p != q and inside(p, q) for q in item.held)]
    argv = [tar, "--extract", "--file=-", "--gzip", *EXTRACT_OPTIONS, f"--directory={root}"]
    argv += ["--no-wildcards", "--anchored", "--", *(p.lstrip("/") for p in tops)]
    rc, out, err = run(argv, stdin=item.fd)
    if rc != 0:
        raise Failed(f"item {item.name}: tar failed ({rc}): {tail(err or out)}", item.name)


def restore_globals(module: AnsibleModule, item: Item) -> None:
    """The roles, as psql reads them from stdin; only roles that exist already may fail."""
    argv = [*psql_argv(module, item, "postgres"), "-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=terse", "-f", "-"]
    rc, _, err = run(argv, stdin=item.fd)
    problems = [HASHES.sub("<hash>", line.strip()) for line in err.splitlines() if PROBLEM.search(line)]
    problems = [line for line in problems if not ROLE_EXISTS.search(line)]
    if problems:
        raise Failed(f"item {item.name}: psql reported errors: {'; '.join(problems[:20])}", item.name)
    if rc != 0:
        raise Failed(f"item {item.name}: psql failed ({rc}): {tail(err)}", item.name)


def restore_database(module: AnsibleModule, item: Item) -> None:
    runuser = need(module, "runuser", item.name, "pg_restore")
    pg_restore = need(module, "pg_restore", item.name, "kind pg_dump")
    argv = provision_archive.pg_command(runuser, pg_restore, item.socket_dir, item.port)
    argv += [f"--dbname={item.database}", "--exit-on-error", "--single-transaction"]
    rc, out, err = run(argv, stdin=item.fd)
    if rc != 0:
        raise Failed(f"item {item.name}: pg_restore failed ({rc}): {tail(err or out)}", item.name)


def entry(item: Item, seconds: float | None) -> dict[str, Any]:
    return {"name": item.name, "kind": item.kind, "holds": item.holds(), "seconds": seconds}


def main() -> None:
    item_spec = provision_archive.item_options(
        KINDS,
        {
            "file": {"type": "str", "required": True},
            "sha256": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "str"},
            "users": {"type": "list", "elements": "str"},
            "groups": {"type": "list", "elements": "str"},
        },
    )
    module = AnsibleModule(
        argument_spec={
            "src_dir": {"type": "str", "required": True},
            "stamp": {"type": "str", "required": True},
            "root": {"type": "str", "default": "/"},
            "items": {"type": "list", "elements": "dict", "required": True, "options": item_spec},
        },
        supports_check_mode=True,
    )
    src_dir, stamp, root = module.params["src_dir"], module.params["stamp"], module.params["root"]
    check = module.check_mode
    if not absolute(src_dir) or src_dir == "/":
        module.fail_json(msg=f"src_dir {src_dir!r} is not an absolute, normalized path below /")
    if not STAMP.fullmatch(stamp):
        module.fail_json(msg=f"stamp {stamp!r} is not YYYYMMDDTHHMMSSZ")
    if not absolute(root) or not os.path.isdir(root):
        module.fail_json(msg=f"root {root!r} is not an absolute, normalized path of a directory")
    if os.geteuid() != 0:
        module.fail_json(msg="provision_restore_files must run as root (become: true)")
    os.umask(0o022)  # parents tar makes for a path are 0755, as the system's are
    opened: list[int] = []
    restored: list[dict[str, Any]] = []
    aside: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    current: str | None = None
    made = 0  # accounts created
    try:
        try:
            opened.append(open_src_dir(src_dir))
            items = plan(module, opened[0], src_dir, module.params["items"], opened, root)
            if not items:
                raise Failed("items is empty: there is nothing to restore")
            moves = set_aside_plan(root, stamp, items)
            skipped = [{"name": i.name, "why": i.skip} for i in items if i.skip]
            accounts = [i for i in items if i.accounts is not None]  # first in items: the owners come first
            for item in accounts:
                current = item.name
                started = time.monotonic()
                made += make_accounts(module, item, root, check)
                restored.append(entry(item, None if check else round(time.monotonic() - started, 3)))
            for current, host, to in moves:
                if not check:
                    set_aside(host, to, current)
                aside.append({"path": host, "to": to})
            for item in items[len(accounts) :]:
                current = item.name
                if item.skip:
                    continue
                if check:
                    restored.append(entry(item, None))
                    continue
                started = time.monotonic()
                if item.kind == "tar":
                    extract(module, item, root)
                elif item.kind == "pg_globals":
                    restore_globals(module, item)
                else:
                    restore_database(module, item)
                restored.append(entry(item, round(time.monotonic() - started, 3)))
        except (Failed, OSError) as exc:
            module.fail_json(
                **provision_archive.failure(exc, current), restored=restored, set_aside=aside, not_restored=skipped
            )
    finally:
        for fd in opened:
            os.close(fd)
    others = [r for r in restored if r["kind"] != "accounts"]
    module.exit_json(changed=bool(made or others or aside), restored=restored, set_aside=aside, not_restored=skipped)


if __name__ == "__main__":
    main()
