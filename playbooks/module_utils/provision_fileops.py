"""File steps the playbooks' modules share: owners, modes and what a path holds now.

provision_files and provision_service_account write root-owned configuration the same
way; these are the checks both make before they write, so both refuse the same things
with the same words.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat


class Refused(Exception):
    """A file or directory that cannot be what the role asks (the message says why)."""


def ids(owner: str, group: str) -> tuple[int, int]:
    """uid and gid of ``owner`` and ``group``, which must exist on the host."""
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
    """Permission bits from their octal text ("0640")."""
    try:
        value = int(str(mode), 8)
    except ValueError:
        raise Refused(f"mode {mode!r} is not octal") from None
    if not 0 <= value <= 0o7777:
        raise Refused(f"mode {mode!r} is out of range")
    return value


def current(path: str) -> tuple[bytes | None, os.stat_result | None]:
    """The file's content and lstat; (None, None) when missing or a symbolic link (which is replaced,
    never followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISLNK(st.st_mode):
        return None, None
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path} exists and is not a regular file")
    with open(path, "rb") as fh:
        return fh.read(), st


def move_aside(path: str, to: str) -> None:
    """Move ``path`` to ``to`` (which must not exist), keeping everything it holds.

    A rename where one is possible. Across filesystems, and on overlayfs for a directory of
    the lower layer (a container's image: rename answers EXDEV), ``cp -a`` copies it with
    owners, modes, ACLs and every extended attribute, and only then is the original removed.
    """
    import errno
    import shutil
    import subprocess

    if os.path.lexists(to):
        raise Refused(f"{to} exists: {path} is not moved over it")
    try:
        os.rename(path, to)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    proc = subprocess.run(
        ["cp", "-a", "--no-target-directory", "--", path, to],
        capture_output=True,
        text=True,
        check=False,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    )
    if proc.returncode != 0:
        shutil.rmtree(to, ignore_errors=True)
        raise Refused(f"cannot move {path} to {to}: {proc.stderr.strip()[-300:]}")
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
