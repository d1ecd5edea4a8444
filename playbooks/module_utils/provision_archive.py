"""The backup items provision_backup makes and provision_restore_files puts back.

The two modules take the same items - names, kinds, the PostgreSQL options - so they check
them here: a name or database one accepts the other never refuses, and both refuse with the
same words. Both run the PostgreSQL tools the same way too: as the postgres user over the
local socket, never prompting, and only the command line says where to connect. Nothing here
imports Ansible; ``module`` is the caller's AnsibleModule.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
from collections.abc import Iterable, Mapping
from typing import Any

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# The database names provision_pg_access accepts: never a conninfo string (no '=', no ':') nor an option.
DATABASE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
PG_KINDS = frozenset({"pg_dump", "pg_globals"})
PG_USER = "postgres"
CHUNK = 1 << 20
# The options of the PostgreSQL kinds, as AnsibleModule takes them and with the kinds that take them.
PG_OPTIONS = {"database": {"type": "str"}, "cluster_port": {"type": "int"}, "socket_dir": {"type": "str"}}
PG_ONLY = {"database": frozenset({"pg_dump"}), "cluster_port": PG_KINDS, "socket_dir": PG_KINDS}


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


def only(tar_options: Iterable[str]) -> dict[str, frozenset[str]]:
    """Options that only some kinds take - ``tar_options`` the tar kind's - given to another kind
    they are refused, not ignored."""
    return {**{option: frozenset({"tar"}) for option in tar_options}, **PG_ONLY}


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
