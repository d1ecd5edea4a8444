"""The backup items provision_backup makes and provision_restore_files puts back.

The two modules take the same items - names, kinds, the PostgreSQL options, the local
accounts' names - so they check them here: a name or database one accepts the other never
refuses, and both refuse with the same words; a local account the backup writes is one the
restore can make again (account_problem), both read the host's accounts the same way
(local_accounts). Both run the PostgreSQL tools the same way too: as the postgres user over the
local socket, never prompting, and only the command line says where to connect. Nothing here
imports Ansible; ``module`` is the caller's AnsibleModule.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# The database names provision_pg_access accepts: never a conninfo string (no '=', no ':') nor an option.
DATABASE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
PG_KINDS = frozenset({"pg_dump", "pg_globals"})
PG_USER = "postgres"
CHUNK = 1 << 20
# The options of the PostgreSQL kinds, as AnsibleModule takes them and with the kinds that take them.
PG_OPTIONS = {"database": {"type": "str"}, "cluster_port": {"type": "int"}, "socket_dir": {"type": "str"}}
PG_ONLY = {"database": frozenset({"pg_dump"}), "cluster_port": PG_KINDS, "socket_dir": PG_KINDS}
# Kind accounts: local user and group names as useradd and groupadd take them, and the ids of
# regular accounts (login.defs UID_MIN..UID_MAX and GID_MIN..GID_MAX) - never root's nor a system account's.
ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
FIRST_ID, LAST_ID = 1000, 59999
# What a passwd field must not hold: its separator, a line break or any other control character.
PASSWD_UNSAFE = re.compile(r"[:\x00-\x1f\x7f]")
NUMBER = re.compile(r"[0-9]{1,10}")


class Failed(Exception):
    """The request or one item cannot be carried out; ``item`` names the item when there is one."""

    def __init__(self, message: str, item: str | None = None) -> None:
        super().__init__(message)
        self.item = item


def failure(exc: Exception, current: str | None) -> dict[str, Any]:
    """fail_json's ``msg`` and ``item`` for a refusal, or for an OSError met while ``current`` was handled."""
    if isinstance(exc, Failed):
        return {"msg": str(exc), **({"item": exc.item} if exc.item else {})}
    if current:
        return {"msg": f"item {current}: {exc}", "item": current}
    return {"msg": str(exc)}


def item_options(kinds: Iterable[str], options: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The argument spec of one item: its name and kind, ``options`` of the module's own, the PostgreSQL ones."""
    return {
        "name": {"type": "str", "required": True},
        "kind": {"type": "str", "required": True, "choices": list(kinds)},
        **options,
        **PG_OPTIONS,
    }


def only(tar_options: Iterable[str], accounts_options: Iterable[str] = ()) -> dict[str, frozenset[str]]:
    """Options that only some kinds take - ``tar_options`` the tar kind's, ``accounts_options`` the
    accounts kind's - given to another kind they are refused, not ignored."""
    return {
        **{option: frozenset({"tar"}) for option in tar_options},
        **{option: frozenset({"accounts"}) for option in accounts_options},
        **PG_ONLY,
    }


def check_item(spec: Mapping[str, Any], seen: set[str], kinds_of: Mapping[str, frozenset[str]]) -> tuple[str, str]:
    """(name, kind) of an item whose name is valid and new (it joins ``seen``) and whose options fit its kind."""
    name, kind = spec["name"], spec["kind"]
    if not NAME.fullmatch(name):
        raise Failed(f"item name {name!r} is not [a-z0-9][a-z0-9._-]*")
    if name in seen:
        raise Failed(f"item {name} is listed twice", name)
    seen.add(name)
    for option, kinds in kinds_of.items():
        if spec.get(option) is not None and kind not in kinds:
            raise Failed(f"item {name}: {option} does not apply to kind {kind}", name)
    return name, kind


def absolute(path: Any) -> bool:
    """Whether ``path`` is an absolute, normalized path (what tar stores and restores must be predictable)."""
    return (
        isinstance(path, str) and path.startswith("/") and not path.startswith("//") and os.path.normpath(path) == path
    )


def inside(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or lies below it (both normalized)."""
    return path == top or top == "/" or path.startswith(top + "/")


def need(module: Any, tool: str, item: str, why: str) -> str:
    """The path of ``tool``, or a failure that names the item and says why it is needed."""
    path = module.get_bin_path(tool)
    if not path:
        raise Failed(f"item {item}: {tool} is not installed on this host ({why})", item)
    return str(path)


def tail(text: str) -> str:
    """A tool's last words, short enough for a message."""
    return text.strip()[-1500:]


def checksum(fd: int) -> tuple[int, str]:
    """Size and hex SHA-256 of an open file, read with pread (the descriptor's offset is left to the tools)."""
    sha = hashlib.sha256()
    size = 0
    while chunk := os.pread(fd, CHUNK, size):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def pg_socket(name: str, spec: Mapping[str, Any]) -> tuple[int, str]:
    """(port, socket directory) of a PostgreSQL item, checked."""
    port = 5432 if spec.get("cluster_port") is None else spec["cluster_port"]
    if not 0 < port < 65536:
        raise Failed(f"item {name}: cluster_port {port} is not a port", name)
    socket_dir = spec.get("socket_dir") or "/var/run/postgresql"
    if not absolute(socket_dir):
        raise Failed(f"item {name}: socket_dir {socket_dir!r} is not an absolute, normalized path", name)
    return port, socket_dir


def pg_database(name: str, spec: Mapping[str, Any]) -> str:
    """The database of a pg_dump item, checked."""
    database = spec.get("database") or ""
    if not database:
        raise Failed(f"item {name}: kind pg_dump needs database", name)
    if not DATABASE.fullmatch(database):
        raise Failed(
            f"item {name}: database name {database!r} is not 1 to 63 ASCII letters, digits, "
            "'_', '.' or '-' starting with a letter, a digit or '_'",
            name,
        )
    return str(database)


def pg_user(name: str) -> None:
    """The PostgreSQL tools run as the postgres user: it must exist."""
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        raise Failed(f"item {name}: there is no {PG_USER} user on this host", name) from None


def pg_command(runuser: str, tool: str, socket_dir: str, port: int) -> list[str]:
    """A PostgreSQL tool as the postgres user over the local socket, never prompting; its own options follow."""
    return [
        *(runuser, "-u", PG_USER, "--", tool),
        *(f"--host={socket_dir}", f"--port={port}", f"--username={PG_USER}", "--no-password"),
    ]


def tool_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` over ours without PGHOST, PGSERVICE, PGOPTIONS and the rest: only a PostgreSQL tool's
    command line says where it connects."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    out.update(env)
    return out


# --------------------------------------------------------------------------- kind accounts


class Account(NamedTuple):
    """A local user as passwd holds it (no password: that is in shadow, never read here)."""

    uid: int
    gid: int
    home: str
    shell: str
    gecos: str


def account_names(name: str, spec: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(users, groups) of an accounts item, each name checked, in order without repeats."""
    users, groups = spec.get("users") or [], spec.get("groups") or []
    if not users and not groups:
        raise Failed(f"item {name}: kind accounts needs users or groups", name)
    for account in (*users, *groups):
        if not isinstance(account, str) or not ACCOUNT.fullmatch(account):
            raise Failed(f"item {name}: account name {account!r} is not [a-z_][a-z0-9_.-]{{0,31}}", name)
    return tuple(dict.fromkeys(users)), tuple(dict.fromkeys(groups))


def regular(number: Any) -> bool:
    """Whether ``number`` is the id of a regular account (1000..59999), not root's nor a system account's."""
    return type(number) is int and FIRST_ID <= number <= LAST_ID


def account_problem(user: str, account: Account, group: Any) -> str:
    """Why ``user`` (primary group ``group``) cannot be made again as it is with useradd; empty when it can."""
    if not regular(account.uid):
        return f"user {user}: uid {account.uid!r} is not a regular account's ({FIRST_ID}..{LAST_ID})"
    if not regular(account.gid):
        return f"user {user}: gid {account.gid!r} is not a regular group's ({FIRST_ID}..{LAST_ID})"
    if not isinstance(group, str) or not ACCOUNT.fullmatch(group):
        return f"user {user}: primary group {group!r} is not [a-z_][a-z0-9_.-]{{0,31}}"
    for field, value in (("home", account.home), ("shell", account.shell), ("gecos", account.gecos)):
        if not isinstance(value, str) or PASSWD_UNSAFE.search(value) or not utf8(value):
            return f"user {user}: {field} {value!r} is not UTF-8 text without ':' and control characters"
    if not absolute(account.home):
        return f"user {user}: home {account.home!r} is not an absolute, normalized path"
    if not absolute(account.shell):
        return f"user {user}: shell {account.shell!r} is not an absolute, normalized path"
    return ""


def utf8(text: str) -> bool:
    """Whether ``text`` is UTF-8 (a name read with surrogateescape may not be)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fields(path: str, count: int) -> list[list[str]]:
    """The entries of a passwd or group file, split into their ``count`` fields (other lines skipped)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise Failed(f"{path} cannot be read: {exc}") from None
    return [f for f in (line.split(":") for line in lines if line and line[0] not in "#+-") if len(f) == count]


def local_accounts(root: str) -> tuple[dict[str, Account], dict[str, int]]:
    """The host's users and groups (name -> Account, name -> gid), the first entry of a name winning
    as for getpwnam: through NSS (pwd, grp) when ``root`` is /, else from ROOT/etc/passwd and
    ROOT/etc/group (a root other than / is a test's)."""
    users: dict[str, Account] = {}
    groups: dict[str, int] = {}
    if root == "/":
        for p in pwd.getpwall():
            users.setdefault(p.pw_name, Account(p.pw_uid, p.pw_gid, p.pw_dir, p.pw_shell, p.pw_gecos))
        for g in grp.getgrall():
            groups.setdefault(g.gr_name, g.gr_gid)
        return users, groups
    etc = os.path.join(root, "etc")
    for name, _, uid, gid, gecos, home, shell in _fields(os.path.join(etc, "passwd"), 7):
        if NUMBER.fullmatch(uid) and NUMBER.fullmatch(gid):
            users.setdefault(name, Account(int(uid), int(gid), home, shell, gecos))
    for name, _, gid, _ in _fields(os.path.join(etc, "group"), 4):
        if NUMBER.fullmatch(gid):
            groups.setdefault(name, int(gid))
    return users, groups
