"""POSIX ACLs as the kernel stores them (the ``system.posix_acl_*`` extended attributes).

Shared by the modules of the roles: reading and writing the two xattrs directly
compares ACLs exactly (numeric IDs, no getfacl text to parse) and needs no
``acl`` package on the host. Layout (linux/posix_acl_xattr.h): a little-endian
u32 version (2), then one (u16 tag, u16 perm, u32 id) per entry, sorted by tag
and id; ``id`` is 0xFFFFFFFF for the entries that name nobody (u::, g::, m::, o::).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"
VERSION = 2
UNDEFINED_ID = 0xFFFFFFFF

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TAGS = {"u": (USER_OBJ, USER), "g": (GROUP_OBJ, GROUP), "m": (MASK, MASK), "o": (OTHER, OTHER)}
_NAMES = {USER_OBJ: "user", USER: "user", GROUP_OBJ: "group", GROUP: "group", MASK: "mask", OTHER: "other"}
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


class AclError(ValueError):
    """An ACL entry that cannot be read, or a name that does not resolve."""


@dataclass(frozen=True, order=True)
class Entry:
    tag: int
    id: int
    perm: int

    def text(self, names: Callable[[int, int], str] | None = None) -> str:
        who = ""
        if self.tag in (USER, GROUP):
            who = names(self.tag, self.id) if names else str(self.id)
        bits = "".join(c if self.perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))
        return f"{_NAMES[self.tag]}:{who}:{bits}"


Acl = tuple[Entry, ...]


def _perm(text: str, raw: str) -> int:
    if len(text) != 3 or any(c not in ok for c, ok in zip(text, ("r-", "w-", "x-"), strict=True)):
        raise AclError(f"ACL entry {raw!r}: permissions must look like 'rwx', 'r-x' or '---'")
    return (4 if text[0] == "r" else 0) | (2 if text[1] == "w" else 0) | (1 if text[2] == "x" else 0)


def resolve_user(name: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise AclError(f"user {name!r} does not resolve on this host (getent passwd)") from None


def resolve_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise AclError(f"group {name!r} does not resolve on this host (getent group)") from None


def parse(entries: Iterable[str]) -> tuple[Acl, Acl]:
    """``['u::rwx', 'g:staff:r-x', 'd:u::rwx', ...]`` -> (access ACL, default ACL).

    Named entries are resolved through NSS (local files, winbind or sssd), so a
    domain name such as ``LAB\\alice`` becomes the domain account's ID on this host.
    A name made only of digits is taken as the ID itself.
    """
    access: list[Entry] = []
    default: list[Entry] = []
    for raw in entries:
        text = raw.strip()
        target = access
        if text.startswith("d:"):
            target, text = default, text[2:]
        kind, sep, rest = text.partition(":")
        who, sep2, perms = rest.rpartition(":")
        if not sep or not sep2 or kind not in _TAGS:
            raise AclError(f"ACL entry {raw!r} is not like 'u::rwx', 'g:NAME:r-x' or 'd:u::rwx'")
        plain, named = _TAGS[kind]
        if who and kind in ("m", "o"):
            raise AclError(f"ACL entry {raw!r}: mask and other entries name nobody")
        if who:
            ident = int(who) if who.isdigit() else (resolve_user(who) if kind == "u" else resolve_group(who))
            target.append(Entry(named, ident, _perm(perms, raw)))
        else:
            target.append(Entry(plain, UNDEFINED_ID, _perm(perms, raw)))
    return _complete(tuple(access)), _complete(tuple(default))


def _complete(acl: Acl) -> Acl:
    """Sorted as the kernel keeps it, with the mask the kernel requires when anyone is named."""
    if not acl:
        return acl
    tags = {e.tag for e in acl}
    missing = {USER_OBJ, GROUP_OBJ, OTHER} - tags
    if missing:
        raise AclError("an ACL needs its u::, g:: and o:: entries")
    if tags & {USER, GROUP} and MASK not in tags:
        mask = 0
        for e in acl:
            if e.tag in (USER, GROUP, GROUP_OBJ):
                mask |= e.perm
        acl = (*acl, Entry(MASK, UNDEFINED_ID, mask))
    seen = set()
    for e in acl:
        key = (e.tag, e.id)
        if key in seen:
            raise AclError(f"ACL names {_NAMES[e.tag]} {e.id if e.id != UNDEFINED_ID else ''} twice")
        seen.add(key)
    return tuple(sorted(acl))


def encode(acl: Acl) -> bytes:
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(e.tag, e.perm, e.id) for e in acl)


def decode(blob: bytes) -> Acl:
    if len(blob) < _HEADER.size or (len(blob) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"not a POSIX ACL xattr ({len(blob)} bytes)")
    (version,) = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise AclError(f"POSIX ACL xattr version {version}, expected {VERSION}")
    entries = [
        Entry(tag, ident, perm)
        for tag, perm, ident in (_ENTRY.unpack_from(blob, off) for off in range(_HEADER.size, len(blob), _ENTRY.size))
    ]
    return tuple(sorted(entries))


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def read(path: str) -> tuple[Acl, Acl]:
    """The directory's (access, default) ACL; with no access xattr, the one its mode bits make."""
    blob = _xattr(path, ACCESS)
    if blob is None:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        access: Acl = (
            Entry(USER_OBJ, UNDEFINED_ID, (mode >> 6) & 7),
            Entry(GROUP_OBJ, UNDEFINED_ID, (mode >> 3) & 7),
            Entry(OTHER, UNDEFINED_ID, mode & 7),
        )
    else:
        access = decode(blob)
    default_blob = _xattr(path, DEFAULT)
    return access, (decode(default_blob) if default_blob else ())


def write(path: str, access: Acl, default: Acl) -> None:
    """Set both ACLs (the kernel derives the mode's group bits from the mask)."""
    os.setxattr(path, ACCESS, encode(access), follow_symlinks=False)
    if default:
        os.setxattr(path, DEFAULT, encode(default), follow_symlinks=False)
    elif _xattr(path, DEFAULT) is not None:
        os.removexattr(path, DEFAULT, follow_symlinks=False)


def minimal(acl: Acl) -> bool:
    """True for an access ACL that only repeats the mode bits (no named entry, no mask)."""
    return all(e.tag in (USER_OBJ, GROUP_OBJ, OTHER) for e in acl)


def names(tag: int, ident: int) -> str:
    """The account an ID stands for (the ID itself when it does not resolve)."""
    try:
        return pwd.getpwuid(ident).pw_name if tag == USER else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def render(access: Acl, default: Acl) -> str:
    """getfacl-like text, for diffs."""
    lines = [e.text(names) for e in access] + ["default:" + e.text(names) for e in default]
    return "\n".join(lines) + "\n"
