"""The provision_restore_files module for real, through ansible with a local connection: trees backed up
with provision_backup (the tree of test_module_backup: numeric owners, POSIX ACLs, security.NTACL and the
other xattrs, a sparse file) restored into a fresh root and compared; paths set aside, empty directories
kept; the refusals - a copy that is not the backup's file, and archives built by hand that would write
outside their paths (absolute and '..' names, devices, fifos, hard links out, extraction through a
symbolic link, a name Python and GNU tar read differently); check mode. PostgreSQL roles and a database
dumped from the throwaway cluster of test_module_pg_access and restored; a database with data is left
alone. Local accounts made again with their numbers before the archive whose files they own, in a
throwaway root with useradd and groupadd --prefix (never on this machine, whose account files every
such test compares before and after), and the accounts files refused with nothing made."""

from __future__ import annotations

import grp
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
import test_module_backup
import test_module_pg_access
from ansible_modules import load_module, run_module
from test_module_backup import accounts_root, getfacl, make_tree, mode, needs_acl, needs_pg, snapshot, xattrs
from test_module_pg_access import Cluster

rf = load_module("provision_restore_files")
# The fixtures of test_module_backup (a filesystem that takes security.NTACL) and test_module_pg_access
# (a throwaway cluster, one for this file), not copies of them.
base = test_module_backup.base
pg = test_module_pg_access.pg
MODULE = "provision_restore_files"
STAMP = "20240502T101500Z"


def all_paths(top: Path) -> list[str]:
    """Every path of a tree, relative, "." first."""
    return [".", *sorted(str(p.relative_to(top)) for p in top.rglob("*"))]


def state(top: Path) -> dict[str, Any]:
    """A tree as it is (type, owner, mode, xattrs, content or link): what "nothing changed" compares."""
    return snapshot(top, all_paths(top)) if top.exists() else {}


def backup(dest: Path, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = run_module("provision_backup", {"dest": str(dest), "items": items})
    assert not result["_failed"], result["_stdout"]
    files: list[dict[str, Any]] = result["files"]
    return files


def as_item(made: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A restore item for a file provision_backup made."""
    return {"name": made["name"], "kind": made["kind"], "file": Path(made["file"]).name, "sha256": made["sha256"],
            **more}


def restore(src_dir: Path, items: list[dict[str, Any]], root: Path | None = None, *, check: bool = False,
            stamp: str = STAMP) -> dict[str, Any]:
    args: dict[str, Any] = {"src_dir": str(src_dir), "stamp": stamp, "items": items}
    if root is not None:
        args["root"] = str(root)
    return run_module(MODULE, args, check=check)


def at(root: Path, path: str | Path) -> Path:
    """Where an absolute path (as seen from root) lands."""
    return root / str(path).lstrip("/")


def private_file(path: Path, data: bytes) -> dict[str, str]:
    """A file as the controller leaves it in src_dir (0600 root); its name and SHA-256 for an item."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}


# --------------------------------------------------------------------------- tar, for real


@needs_acl
def test_a_backed_up_tree_comes_back_with_owners_acls_every_xattr_and_sparseness(base: Path) -> None:
    src = make_tree(base)
    dest = base / "backup"
    [made] = backup(dest, [{"name": "share", "kind": "tar", "paths": [str(src)]}])
    root = base / "root"
    root.mkdir()
    result = restore(dest, [as_item(made, paths=[str(src)])], root)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    [entry] = result["restored"]
    assert entry["name"] == "share" and entry["kind"] == "tar" and entry["holds"] == [str(src)]
    assert isinstance(entry["seconds"], float) and entry["seconds"] >= 0
    assert result["set_aside"] == [] and result["not_restored"] == []

    copy = at(root, src)
    rels = all_paths(src)
    assert all_paths(copy) == rels
    assert snapshot(copy, rels) == snapshot(src, rels)  # owners, modes, mtimes, every xattr, content, links
    assert getfacl(copy, rels) == getfacl(src, rels)
    assert xattrs(copy / "doc.txt")["security.NTACL"] == test_module_backup.NTACL
    assert xattrs(copy)["security.NTACL"] == test_module_backup.NTACL + b"-dir"
    assert "default:user:12345:rwx" in getfacl(copy, ["."]) and mode(copy)[:2] == (12345, 23456)
    assert os.readlink(copy / "link") == "doc.txt"
    sparse = copy / "sparse.img"
    assert sparse.stat().st_size == 32 * 1024 * 1024 and sparse.stat().st_blocks * 512 < 1024 * 1024
    with open(sparse, "rb") as fh:
        assert fh.read(4) == b"head" and (fh.seek(-4, os.SEEK_END), fh.read())[1] == b"tail"
    # Parents the archive does not hold are made as the system's are.
    assert mode(copy.parent) == (0, 0, 0o755)


def test_names_gnu_tar_quotes_and_hard_links_pass_the_inspection_and_come_back(base: Path) -> None:
    src = base / "odd"
    src.mkdir()
    names = ["new\nline", 'quote"d', "back\\slash", "tab\there", "arrow -> x", "link to y", " lead", "-opt",
             "ünïcöde ✓", "?\\?(trigraph", "x" * 150]
    for i, name in enumerate(names):
        (src / name).write_text(f"{i}\n")
    raw = os.fsencode(src) + b"/latin1-\xe9"  # not UTF-8: surrogate-escaped by Python, octal to GNU tar
    with open(raw, "wb") as fh:
        fh.write(b"bytes\n")
    deep = src / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "f").write_text("deep\n")
    os.link(src / "-opt", deep / "hard")
    os.link(src / "-opt", src / "hard too")
    (src / "long-link").symlink_to("t" * 200)
    (src / "odd-link").symlink_to('we"ird\n -> target')
    dest = base / "backup"
    [made] = backup(dest, [{"name": "odd", "kind": "tar", "paths": [str(src)]}])
    root = base / "root"
    root.mkdir()
    result = restore(dest, [as_item(made, paths=[str(src)])], root)
    assert not result["_failed"], result["_stdout"]
    copy = at(root, src)
    assert state(copy) == state(src)
    assert os.stat(copy / "-opt").st_ino == os.stat(deep_copy := at(root, deep) / "hard").st_ino
    assert os.stat(deep_copy).st_nlink == 3


def test_existing_paths_are_set_aside_empty_directories_kept_and_paths_not_held_left_alone(base: Path) -> None:
    data = base / "data"
    for sub in ("full", "empty", "nested/inner"):
        (data / sub).mkdir(parents=True)
        (data / sub / "f").write_text(f"backed up {sub}\n")
    (data / "full").chmod(0o750)
    (data / "empty").chmod(0o711)
    (data / "single").write_text("a file\n")
    paths = [data / "full", data / "empty", data / "single", data / "nested", data / "nested" / "inner",
             data / "absent"]
    dest = base / "backup"
    [made] = backup(dest, [{"name": "data", "kind": "tar", "paths": [str(p) for p in paths], "missing_ok": True}])

    root = base / "root"
    (at(root, data / "full") / "old").mkdir(parents=True)
    (at(root, data / "full") / "old" / "keep").write_text("what the new host had\n")
    at(root, data / "empty").mkdir(mode=0o700)
    at(root, data / "single").symlink_to("/etc/hostname")
    (at(root, data / "nested") / "inner").mkdir(parents=True)
    (at(root, data / "nested") / "inner" / "mine").write_text("new host's\n")
    at(root, data / "absent").write_text("not in the backup: stays\n")
    item = as_item(made, paths=[str(p) for p in paths])
    before = state(root)

    checked = restore(dest, [item], root, check=True)
    assert not checked["_failed"] and checked["changed"] is True, checked["_stdout"]
    assert state(root) == before  # check mode changes nothing
    assert checked["restored"] == [{"name": "data", "kind": "tar", "seconds": None,
                                    "holds": [str(p) for p in paths[:5]]}]

    result = restore(dest, [item], root)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    aside = [at(root, data / n) for n in ("full", "nested", "single")]
    assert result["set_aside"] == [{"path": str(p), "to": f"{p}.before-restore-{STAMP}"} for p in aside]
    assert result["set_aside"] == checked["set_aside"]
    # What was there is intact at the new name; the nested path went with its parent.
    old = Path(f"{at(root, data / 'full')}.before-restore-{STAMP}")
    assert (old / "old" / "keep").read_text() == "what the new host had\n"
    assert os.readlink(f"{at(root, data / 'single')}.before-restore-{STAMP}") == "/etc/hostname"
    assert Path(f"{at(root, data / 'nested')}.before-restore-{STAMP}/inner/mine").read_text() == "new host's\n"
    # The backup is back; the empty directory was kept and took the archive's mode; the rest stays.
    for sub in ("full", "empty", "nested/inner"):
        assert (at(root, data) / sub / "f").read_text() == f"backed up {sub}\n"
    assert not (at(root, data / "full") / "old").exists()
    assert stat.S_IMODE(at(root, data / "full").stat().st_mode) == 0o750
    assert stat.S_IMODE(at(root, data / "empty").stat().st_mode) == 0o711
    assert at(root, data / "single").read_text() == "a file\n" and not at(root, data / "single").is_symlink()
    assert at(root, data / "absent").read_text() == "not in the backup: stays\n"

    # Again with the same stamp: the names to set aside to are taken - refused before anything changes.
    before = state(root)
    again = restore(dest, [item], root)
    assert again["_failed"] and again["item"] == "data", again["_stdout"]
    assert "before-restore-" in again["msg"] and "exists already" in again["msg"]
    assert state(root) == before


def test_an_archive_that_holds_none_of_its_paths_is_skipped(base: Path) -> None:
    dest = base / "backup"
    [made] = backup(dest, [{"name": "gone", "kind": "tar", "paths": [str(base / "nope")], "missing_ok": True}])
    root = base / "root"
    at(root, base / "nope").mkdir(parents=True)
    (at(root, base / "nope") / "f").write_text("stays\n")
    result = restore(dest, [as_item(made, paths=[str(base / "nope")])], root)
    assert not result["_failed"] and result["changed"] is False, result["_stdout"]
    assert result["restored"] == [] and result["set_aside"] == []
    assert result["not_restored"] == [{"name": "gone", "why": "the archive holds none of its paths (none existed when "
                                                         "the backup was made)"}]
    assert (at(root, base / "nope") / "f").read_text() == "stays\n"


def test_a_file_that_is_not_the_backups_is_refused_before_anything_changes(base: Path) -> None:
    (base / "data").mkdir()
    (base / "data" / "f").write_text("f\n")
    dest = base / "backup"
    [made] = backup(dest, [{"name": "data", "kind": "tar", "paths": [str(base / "data")]}])
    root = base / "root"
    at(root, base / "data").mkdir(parents=True)
    (at(root, base / "data") / "live").write_text("live\n")
    before = state(root)
    good = as_item(made, paths=[str(base / "data")])
    (dest / "link.tar.gz").symlink_to(dest / "data.tar.gz")
    (dest / "dir.tar.gz").mkdir()
    cases = [
        ({"sha256": "0" * 64}, "the SHA-256 of"),
        ({"file": "missing.tar.gz"}, "does not exist"),
        ({"file": "link.tar.gz"}, "cannot be opened (a symbolic link is refused)"),
        ({"file": "dir.tar.gz"}, "is not a regular file"),
        ({"file": "../backup/data.tar.gz"}, "is not a plain file name"),
        ({"sha256": "xyz"}, "is not 64 hex digits"),
    ]
    for change, message in cases:
        result = restore(dest, [{**good, "name": "ok"}, {**good, **change}], root)
        assert result["_failed"] and result["item"] == "data" and message in result["msg"], (change, result["msg"])
        assert result["set_aside"] == [] and result["restored"] == []
        assert state(root) == before
    # Only root may be able to change a file between its check and its use.
    (dest / "data.tar.gz").chmod(0o620)
    result = restore(dest, [good], root)
    assert result["_failed"] and "must be owned by root and writable by root alone" in result["msg"]
    (dest / "data.tar.gz").chmod(0o600)
    dest.chmod(0o777)
    result = restore(dest, [good], root)
    assert result["_failed"] and result["msg"] == f"src_dir {dest} must be owned by root and writable by root alone"
    assert "item" not in result
    dest.chmod(0o700)
    assert state(root) == before
    assert not restore(dest, [good], root)["_failed"]  # and the same request, right, goes through


# --------------------------------------------------------------------------- hostile archives


def member(name: str, data: bytes = b"", **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def archive(members: list[tuple[tarfile.TarInfo, bytes]], **options: Any) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, **options) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue())


OK = member("srv/x/ok", b"fine\n")
DIR = member("srv/x", type=tarfile.DIRTYPE, mode=0o755)


def sneaky_names() -> tuple[tarfile.TarInfo, bytes]:
    """pax records GNU tar and Python read differently: Python takes the last ('path'), GNU tar the
    sparse file's name whatever the order."""
    info, data = member("srv/x/ok", b"root::0:0::/root:/bin/sh\n")
    info.pax_headers = {"GNU.sparse.name": "etc/passwd", "path": "srv/x/ok"}
    return info, data


HOSTILE = {
    "absolute": ([DIR, member("/etc/shadow", b"x\n")], "has an absolute name"),
    "dot-dot": ([DIR, member("srv/x/../../etc/shadow", b"x\n")], "a '..'"),
    "dot-dot-dir": ([DIR, member("srv/x/..", type=tarfile.DIRTYPE)], "a '..'"),
    "not-normalized": ([DIR, member("srv/x/./ok", b"x\n")], "not normalized"),
    "outside": ([DIR, OK, member("etc/shadow", b"x\n")], "'etc/shadow' lies outside the item's paths"),
    "sibling": ([DIR, member("srv/xy/f", b"x\n")], "'srv/xy/f' lies outside"),
    "char-device": ([DIR, member("srv/x/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
                    "is a character device"),
    "block-device": ([DIR, member("srv/x/sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)], "is a block device"),
    "fifo": ([DIR, member("srv/x/pipe", type=tarfile.FIFOTYPE)], "is a fifo"),
    "hardlink-out": ([DIR, member("srv/x/h", type=tarfile.LNKTYPE, linkname="etc/shadow")],
                     "is a hard link to 'etc/shadow', outside"),
    "hardlink-absolute": ([DIR, member("srv/x/h", type=tarfile.LNKTYPE, linkname="/etc/shadow")],
                          "is a hard link to '/etc/shadow', outside"),
    "hardlink-to-nothing": ([DIR, member("srv/x/h", type=tarfile.LNKTYPE, linkname="srv/x/later"),
                             member("srv/x/later", b"x\n")], "which is not a file before it"),
    "through-symlink": ([DIR, member("srv/x/l", type=tarfile.SYMTYPE, linkname="/etc"),
                         member("srv/x/l/shadow", b"x\n")], "below /srv/x/l, which is not a directory"),
    "through-symlink-first": ([DIR, member("srv/x/l/d/shadow", b"x\n"),
                               member("srv/x/l", type=tarfile.SYMTYPE, linkname="../../etc")],
                              "below /srv/x/l, which is not a directory"),
    "top-is-a-link": ([member("srv/x", type=tarfile.SYMTYPE, linkname="/etc"), member("srv/x/shadow", b"x\n")],
                      "below /srv/x, which is not a directory"),
    "setuid": ([DIR, member("srv/x/sh", b"\x7fELF", mode=0o4755)], "is set-user-ID or set-group-ID"),
    "capability": ([DIR, member("srv/x/cap", b"x", pax_headers={"SCHILY.xattr.security.capability": "\x01"})],
                   "carries file capabilities"),
    "sneaky-name": ([DIR, sneaky_names()], "'etc/passwd' lies outside"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_with_nothing_written(base: Path, case: str) -> None:
    members, message = HOSTILE[case]
    dest = base / "backup"
    item = {"name": "evil", "kind": "tar", "paths": ["/srv/x"], **private_file(dest / "evil.tar.gz", archive(members))}
    root = base / "root"
    (root / "srv" / "x").mkdir(parents=True)
    (root / "srv" / "x" / "live").write_text("live data\n")
    (root / "etc").mkdir()
    before = state(root)
    result = restore(dest, [item], root, check=case == "through-symlink")  # check mode inspects alike
    assert result["_failed"] and result["item"] == "evil", result["_stdout"]
    assert result["msg"].startswith("item evil: the archive is refused - ") and message in result["msg"], result["msg"]
    assert result["set_aside"] == [] and result["restored"] == []
    assert state(root) == before


def test_archives_that_are_not_one_whole_tar_are_refused(base: Path) -> None:
    dest = base / "backup"
    root = base / "root"
    (root / "srv" / "x").mkdir(parents=True)
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(OK[0], io.BytesIO(OK[1]))
    hidden = archive([member("etc/shadow", b"x\n")])
    cases = {
        # A second gzip member after the archive's end: gzip -d would hand it on, tarfile stops before it.
        "appended": (archive([DIR, OK]) + hidden, "data after the end of the archive"),
        "global-header": (archive([DIR, OK], pax_headers={"comment": "x"}), "global extended header"),
        "global-path": (archive([DIR, OK], pax_headers={"path": "etc/shadow"}), "global extended header"),
        "not-gzip": (plain.getvalue(), "not a whole gzip'd tar archive"),
        "truncated": (archive([DIR, member("srv/x/big", os.urandom(100000))])[:5000], "not a whole gzip'd tar"),
        "garbage": (b"\x1f\x8b" + os.urandom(3000), "not a whole gzip'd tar archive"),
    }
    before = state(root)
    for case, (data, message) in cases.items():
        item = {"name": case, "kind": "tar", "paths": ["/srv/x"], **private_file(dest / f"{case}.tar.gz", data)}
        result = restore(dest, [item], root)
        assert result["_failed"] and result["item"] == case and message in result["msg"], (case, result["msg"])
        assert state(root) == before


def test_the_archives_inspection_and_gnu_tars_listing_are_read_alike() -> None:
    assert rf.unquote_c(r"a\nb\"c\\d\te\303\251\?\001") == 'a\nb"c\\d\te\u00e9?\x01'
    assert rf.unquote_c(r"latin\351") == "latin\udce9"  # as tarfile decodes a name that is not UTF-8
    assert rf.listed(b'-rw-r--r-- 0/0  3 2024-01-01 00:00 "srv/x/a -> b"\n') == ("-", "srv/x/a -> b", "rw-r--r--",
                                                                                   None)
    assert rf.listed(b'lrwxrwxrwx 0/0 0 2024-01-01 00:00 "srv/l" -> "/etc"\n') == ("l", "srv/l", "rwxrwxrwx", "/etc")
    assert rf.listed(b'hrwsr-xr-x 0/0 0 2024-01-01 00:00 "srv/h" link to "srv/f"\n') == ("h", "srv/h", "rwsr-xr-x",
                                                                                         "srv/f")
    assert rf.listed(b'drwxr-x--- 1/2 0 2024-01-01 00:00 "srv/d/"\n') == ("d", "srv/d", "rwxr-x---", None)
    assert rf.listed(b'-rw-r--r-- 0/0 3 2024-01-01 00:00 "unterminated\n') is None
    assert rf.member_path("srv/x/", True) == "/srv/x" and rf.member_path("srv/x/", False) is None
    for bad in ("/srv", "srv/../etc", "./srv", "srv//x", "srv/x/.", "", ".", "srv\0/x"):
        assert rf.member_path(bad, True) is None, bad


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("change", "item", "message"),
    [
        ({"name": "Bad"}, None, "item name 'Bad' is not"),
        ({"kind": "pg_globals"}, "a", "paths does not apply to kind pg_globals"),
        ({"database": "x"}, "a", "database does not apply to kind tar"),
        ({"cluster_port": 5433}, "a", "cluster_port does not apply to kind tar"),
        ({"socket_dir": "/run/postgresql"}, "a", "socket_dir does not apply to kind tar"),
        ({"paths": None}, "a", "kind tar needs paths"),
        ({"paths": ["/"]}, "a", "path '/' is not an absolute, normalized path below /"),
        ({"paths": ["srv"]}, "a", "path 'srv' is not an absolute"),
        ({"paths": ["/srv/../etc"]}, "a", "path '/srv/../etc' is not an absolute"),
        ({"kind": "pg_dump", "paths": None}, "a", "kind pg_dump needs database"),
        ({"kind": "pg_dump", "paths": None, "database": "x host=evil"}, "a", "database name 'x host=evil' is not"),
        ({"kind": "pg_globals", "paths": None, "cluster_port": 0}, "a", "cluster_port 0 is not a port"),
        ({"kind": "pg_globals", "paths": None, "socket_dir": "run"}, "a", "socket_dir 'run' is not"),
        ({"users": ["alice"]}, "a", "users does not apply to kind tar"),
        ({"kind": "accounts", "groups": ["staff"]}, "a", "paths does not apply to kind accounts"),
        ({"kind": "accounts", "paths": None}, "a", "kind accounts needs users or groups"),
        ({"kind": "accounts", "paths": None, "users": ["x/y"]}, "a", "account name 'x/y' is not"),
        ({"kind": "accounts", "paths": None, "users": ["alice"]}, "a", "the accounts file is refused"),
    ],
)
def test_bad_requests_are_refused_before_anything_changes(
    tmp_path: Path, change: dict[str, Any], item: str | None, message: str
) -> None:
    if "pg_" in str(change) and not shutil.which("psql"):
        pytest.skip("psql is not installed: the tool check comes first")
    src = tmp_path / "src"
    good = {"name": "a", "kind": "tar", "paths": ["/srv/x"], **private_file(src / "a.tar.gz", archive([DIR, OK]))}
    spec = {k: v for k, v in {**good, **change}.items() if v is not None}
    root = tmp_path / "root"
    root.mkdir()
    result = restore(src, [spec], root)
    assert result["_failed"] and message in result["msg"], result["_stdout"]
    assert result.get("item") == item
    assert os.listdir(root) == []


def test_the_request_itself_is_checked(tmp_path: Path) -> None:
    src = tmp_path / "src"
    good = {"name": "a", "kind": "tar", "paths": ["/srv/x"], **private_file(src / "a.tar.gz", archive([DIR, OK]))}
    root = tmp_path / "root"
    root.mkdir()
    for args, message in (
        ({"stamp": "2024-05-02"}, "stamp '2024-05-02' is not YYYYMMDDTHHMMSSZ"),
        ({"src_dir": "src"}, "src_dir 'src' is not an absolute"),
        ({"src_dir": str(tmp_path / "none")}, "cannot be opened as a directory"),
        ({"root": str(tmp_path / "none")}, "is not an absolute, normalized path of a directory"),
        ({"items": []}, "items is empty"),
        ({"items": [good, good]}, "item a is listed twice"),
    ):
        full = {"src_dir": str(src), "stamp": STAMP, "root": str(root), "items": [good], **args}
        result = run_module(MODULE, full)
        assert result["_failed"] and message in result["msg"], result["_stdout"]
    assert os.listdir(root) == []
    done = run_module(MODULE, {"src_dir": str(src), "stamp": STAMP, "root": str(root), "items": [good]})
    assert not done["_failed"] and (root / "srv" / "x" / "ok").read_text() == "fine\n", done["_stdout"]


# --------------------------------------------------------------------------- local accounts

# The source peer: alice and bob with their personal groups, staff, carol (whom the spec no longer names).
SOURCE_PASSWD = ["alice:x:1001:1001:Alice Doe,,,:/home/alice:/bin/bash",
                 "bob:x:1002:1002:Bob Roe:/home/bob:/usr/sbin/nologin",
                 "carol:x:1003:1003:Carol Poe:/home/carol:/bin/bash"]
SOURCE_GROUP = ["alice:x:1001:", "bob:x:1002:", "carol:x:1003:", "staff:x:1500:alice,bob"]
# The rebuilt peer: staff already made with its number, keep with 1010.
TARGET_PASSWD = ["keep:x:1010:1010::/home/keep:/bin/sh"]
TARGET_GROUP = ["keep:x:1010:", "staff:x:1500:"]
ALLOWED = {"users": ["alice", "bob"], "groups": ["alice", "bob", "staff"]}


def etc_state(root: Path) -> dict[str, bytes]:
    """The account files of a root, byte for byte."""
    return {name: (root / "etc" / name).read_bytes() for name in ("passwd", "group", "shadow", "gshadow")}


def system_accounts() -> dict[str, bytes]:
    """This machine's own account files: no test may change them."""
    return {name: Path("/etc", name).read_bytes() for name in ("passwd", "group", "shadow", "gshadow")}


def accounts_file(src: Path, doc: Any) -> dict[str, Any]:
    """An accounts item for ``doc`` (JSON, or bytes as they are), with the names the spec allows."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return {"name": "accounts", "kind": "accounts", **private_file(src / "accounts.json", data), **ALLOWED}


def test_accounts_come_back_with_their_numbers_before_the_files_they_own(base: Path) -> None:
    live = system_accounts()
    source = accounts_root(base / "source", SOURCE_PASSWD, SOURCE_GROUP)
    share = base / "share"
    share.mkdir()
    (share / "report.txt").write_text("bob's\n")
    os.chown(share / "report.txt", 1002, 1500)
    dest = base / "backup"
    [accounts] = run_module(
        "provision_backup", {"dest": str(dest), "root": str(source), "items": [
            {"name": "accounts", "kind": "accounts", "users": ["alice", "bob", "carol"], "groups": ["staff"]}]},
    )["files"]
    [tree] = backup(base / "backup2", [{"name": "share", "kind": "tar", "paths": [str(share)]}])
    shutil.copy(tree["file"], dest)
    items = [as_item(accounts, **ALLOWED), as_item(tree, paths=[str(share)])]
    root = accounts_root(base / "target", TARGET_PASSWD, TARGET_GROUP)
    before = etc_state(root)
    holds = [
        "group alice (1001) created", "group bob (1002) created",
        "user alice (1001) created", "user bob (1002) created",
        "group staff (1500) kept",
        "not made, not named by the item - group carol, user carol",
    ]

    check = restore(dest, items, root, check=True)
    assert not check["_failed"] and check["changed"] is True, check["_stdout"]
    assert [(r["name"], r["holds"], r["seconds"]) for r in check["restored"]] == [
        ("accounts", holds, None), ("share", [str(share)], None)]
    assert etc_state(root) == before and not at(root, share).exists()

    result = restore(dest, items, root)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    assert [(r["name"], r["holds"]) for r in result["restored"]] == [("accounts", holds), ("share", [str(share)])]
    after = {name: data.decode() for name, data in etc_state(root).items()}
    assert after["passwd"].splitlines()[-2:] == ["alice:x:1001:1001:Alice Doe,,,:/home/alice:/bin/bash",
                                                 "bob:x:1002:1002:Bob Roe:/home/bob:/usr/sbin/nologin"]
    assert after["group"].splitlines()[-2:] == ["alice:x:1001:", "bob:x:1002:"]
    # No password came back (the apply sets it): the new accounts are locked.
    assert [line.split(":")[:2] for line in after["shadow"].splitlines()[-2:]] == [["alice", "!"], ["bob", "!"]]
    assert [line.split(":")[0] for line in after["gshadow"].splitlines()[-2:]] == ["alice", "bob"]
    assert "carol" not in after["passwd"] + after["group"]
    assert not (root / "home" / "alice").exists()  # no home made: /home comes back from its own archive
    # The file is bob's and staff's again, by the numbers the accounts now have.
    assert mode(at(root, share) / "report.txt")[:2] == (1002, 1500)

    # Again: everything is there with its number, nothing is made, nothing changes.
    again = restore(dest, items[:1], root)
    assert not again["_failed"] and again["changed"] is False, again["_stdout"]
    assert again["restored"][0]["holds"] == [
        "group alice (1001) kept", "group bob (1002) kept", "group staff (1500) kept",
        "user alice (1001) kept", "user bob (1002) kept",
        "not made, not named by the item - group carol, user carol",
    ]
    assert system_accounts() == live


GOOD_USER = {"uid": 1001, "gid": 1001, "group": "alice", "home": "/home/alice", "shell": "/bin/bash",
             "gecos": "Alice Doe"}


def with_user(**change: Any) -> dict[str, Any]:
    return {"users": {"alice": {**GOOD_USER, **change}}, "groups": {"alice": 1001, "bob": 1002, "staff": 1500}}


# Each refused whole, nothing made: (the file, words of the message).
HOSTILE_ACCOUNTS: dict[str, tuple[Any, str]] = {
    "root's uid": (with_user(uid=0), "user alice: uid 0 is not a regular account's (1000..59999)"),
    "a system uid": (with_user(uid=999), "user alice: uid 999 is not a regular account's"),
    "a system gid": ({"users": {}, "groups": {"bob": 1002, "sudo": 27}}, "group sudo: gid 27 is not a regular"),
    "a name with a slash": ({"users": {"../alice": GOOD_USER}, "groups": {"alice": 1001}},
                            "user name '../alice' is not [a-z_][a-z0-9_.-]{0,31}"),
    "a colon in gecos": (with_user(gecos="Alice:0:0"), "user alice: gecos 'Alice:0:0' is not UTF-8 text without ':'"),
    "a newline in home": (with_user(home="/home/alice\nroot"), "user alice: home '/home/alice\\nroot' is not"),
    "a relative home": (with_user(home="home/alice"), "user alice: home 'home/alice' is not an absolute, normalized"),
    "a 2 MiB file": (json.dumps(with_user(gecos="x" * 10)).encode() + b" " * (2 << 20),
                     "it is larger than 1048576 bytes"),
    "a gid another group has here": ({"users": {}, "groups": {"bob": 1010}},
                                     "nothing was made - gid 1010 of group bob is group keep's here"),
    "a group here with another gid": ({"users": {}, "groups": {"alice": 1001, "staff": 1600}},
                                      "nothing was made - group staff has gid 1500 here, 1600 in the backup"),
    "a uid another user has here": (with_user(uid=1010), "nothing was made - uid 1010 of user alice is user keep's"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ACCOUNTS))
def test_a_hostile_accounts_file_is_refused_with_nothing_made(base: Path, case: str) -> None:
    live = system_accounts()
    doc, message = HOSTILE_ACCOUNTS[case]
    src = base / "src"
    root = accounts_root(base / "target", TARGET_PASSWD, TARGET_GROUP)
    before = etc_state(root)
    for check in (True, False):
        result = restore(src, [accounts_file(src, doc)], root, check=check)
        assert result["_failed"] and result["item"] == "accounts", result["_stdout"]
        assert message in result["msg"], result["msg"]
        assert result["restored"] == [] and etc_state(root) == before
    assert system_accounts() == live


def test_the_accounts_item_comes_first_and_once(base: Path) -> None:
    src = base / "src"
    accounts = accounts_file(src, with_user())
    tar = {"name": "a", "kind": "tar", "paths": ["/srv/x"], **private_file(src / "a.tar.gz", archive([DIR, OK]))}
    root = accounts_root(base / "target", TARGET_PASSWD, TARGET_GROUP)
    before = etc_state(root)
    for items in ([tar, accounts], [accounts, {**accounts, "name": "again"}]):
        result = restore(src, items, root)
        assert result["_failed"] and "kind accounts is the first item and the only one of its kind" in result["msg"]
        assert etc_state(root) == before and not (root / "srv").exists()


def read(tmp_path: Path, data: bytes) -> Any:
    """read_accounts of a file holding ``data``."""
    path = tmp_path / "accounts.json"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return rf.read_accounts("accounts", fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "not an object of users and groups"),
        (b'{"users": {}}', "not an object of users and groups"),
        (b'{"users": {}, "groups": {}, "shadow": {}}', "not an object of users and groups"),
        (b'{"users": [], "groups": {}}', "not an object of users and groups"),
        (b'{"users": {}, "groups": {"a": 1001, "a": 1002}}', "'a' is named twice in one object"),
        (b'{"users": {}, "groups": {"a": "1001"}}', "group a: gid '1001' is not a regular"),
        (b'{"users": {}, "groups": {"a": true}}', "group a: gid True is not a regular"),
        (b'{"users": {}, "groups": {"a": 1001.0}}', "group a: gid 1001.0 is not a regular"),
        (b'{"users": {}, "groups": {"a": NaN}}', "NaN is not a number of JSON"),
        (b'{"users": {}, "groups": {"a": 60000}}', "group a: gid 60000 is not a regular"),
        (b'{"users": {}, "groups": {"a": 1001, "b": 1001}}', "gid 1001 is group a's and group b's"),
        (b'{"users": {}, "groups": {"Root": 1001}}', "group name 'Root' is not"),
        (b'{"users": {}, "groups": {"-g": 1001}}', "group name '-g' is not"),
        (b'{"users": {}, "groups": {"\xff": 1001}}', "it is not UTF-8 JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "it is not UTF-8 JSON"),
        (b'{"users": {"alice": {"uid": 1001}}, "groups": {}}', "user alice is not an object of gecos, gid, group"),
        (json.dumps(with_user(shell="bin/sh")).encode(), "user alice: shell 'bin/sh' is not an absolute"),
        (json.dumps(with_user(home="/home/../root")).encode(), "user alice: home '/home/../root' is not an absolute"),
        (json.dumps(with_user(gecos="a\x1bb")).encode(), "user alice: gecos 'a\\x1bb' is not UTF-8 text"),
        (json.dumps(with_user(gecos="\udcff")).encode(), "user alice: gecos '\\udcff' is not UTF-8 text"),
        (json.dumps(with_user(group="Alice")).encode(), "user alice: primary group 'Alice' is not"),
        (json.dumps(with_user(gid=1002)).encode(), "user alice: gid 1002 is not its group alice's (1001)"),
        (json.dumps({"users": {"alice": GOOD_USER, "bob": {**GOOD_USER, "group": "bob", "gid": 1002}},
                     "groups": {}}).encode(), "uid 1001 is user alice's and user bob's"),
    ],
)
def test_accounts_files_of_the_wrong_shape_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(rf.Failed, match=r"^item accounts: the accounts file is refused - ") as caught:
        read(tmp_path, data)
    assert message in str(caught.value)


def test_a_user_whose_primary_group_is_nowhere_is_refused(tmp_path: Path) -> None:
    found = read(tmp_path, json.dumps({"users": {"alice": GOOD_USER}, "groups": {"staff": 1500}}).encode())
    root = accounts_root(tmp_path / "target", TARGET_PASSWD, TARGET_GROUP)
    with pytest.raises(rf.Failed, match="user alice: its primary group alice is neither here nor made by this item"):
        rf.plan_accounts("accounts", found, (("alice",), ("staff",)), str(root))
    # Named by the file but not allowed by the item: the same.
    found = read(tmp_path, json.dumps(with_user()).encode())
    with pytest.raises(rf.Failed, match="its primary group alice is neither here nor made"):
        rf.plan_accounts("accounts", found, (("alice",), ("staff",)), str(root))


def test_check_mode_against_this_machine_reads_and_makes_nothing(base: Path) -> None:
    """root / reads the accounts through the name service; check mode runs no groupadd."""
    gid = 59999
    if any(g.gr_gid == gid or g.gr_name == "provision-test-grp" for g in grp.getgrall()):
        pytest.skip(f"gid {gid} or provision-test-grp is taken on this machine")
    src = base / "src"
    item = {**accounts_file(src, {"users": {}, "groups": {"provision-test-grp": gid}}),
            "groups": ["provision-test-grp"]}
    live = system_accounts()
    result = restore(src, [item], check=True)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    assert result["restored"][0]["holds"] == [f"group provision-test-grp ({gid}) created"]
    with pytest.raises(KeyError):
        grp.getgrnam("provision-test-grp")
    assert system_accounts() == live


# --------------------------------------------------------------------------- PostgreSQL, for real


def pg_conn(pg: Cluster) -> dict[str, Any]:
    return {"socket_dir": str(pg.sockdir), "cluster_port": pg.port}


@needs_pg
def test_roles_and_a_database_come_back_into_an_empty_database(pg: Cluster, tmp_path: Path) -> None:
    pg.sql("CREATE ROLE rs_alice LOGIN PASSWORD 'Secret-Restore-1'; CREATE ROLE rs_bob LOGIN PASSWORD 'Bob-Pw-2'; "
           "CREATE ROLE rs_team NOLOGIN; GRANT rs_team TO rs_alice; CREATE DATABASE rs_src OWNER rs_alice")
    pg.sql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('one'), ('zwei');"
           "CREATE VIEW bodies AS SELECT body FROM notes; GRANT SELECT ON notes TO rs_team; "
           "CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2'", db="rs_src", user="rs_alice")
    hashes = pg.sql("SELECT string_agg(rolname || '=' || rolpassword, ',' ORDER BY rolname) FROM pg_authid "
                    "WHERE rolname LIKE 'rs_%'")
    dest = tmp_path / "backup"
    made = backup(dest, [{"name": "pg-globals", "kind": "pg_globals", **pg_conn(pg)},
                         {"name": "db-rs-src", "kind": "pg_dump", "database": "rs_src", **pg_conn(pg)}])
    # The new host: its apply made rs_bob and an empty rs_src; rs_alice and rs_team are not there yet.
    pg.sql("DROP DATABASE rs_src")
    pg.sql("DROP ROLE rs_alice; DROP ROLE rs_team; ALTER ROLE rs_bob PASSWORD 'Changed-Pw-3'; "
           "CREATE DATABASE rs_src")
    items = [as_item(made[0], **pg_conn(pg)), as_item(made[1], database="rs_src", **pg_conn(pg))]

    checked = restore(dest, items, check=True)
    assert not checked["_failed"] and checked["changed"] is True, checked["_stdout"]
    assert [(r["name"], r["seconds"]) for r in checked["restored"]] == [("pg-globals", None), ("db-rs-src", None)]
    assert pg.sql("SELECT count(*) FROM pg_authid WHERE rolname LIKE 'rs_%'") == "1"  # nothing ran

    result = restore(dest, items)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    assert [(r["name"], r["kind"], r["holds"]) for r in result["restored"]] == [
        ("pg-globals", "pg_globals", [f"PostgreSQL roles with their password hashes and memberships (port {pg.port})"]),
        ("db-rs-src", "pg_dump", ["rs_src"]),
    ]
    assert result["set_aside"] == [] and result["not_restored"] == []
    # The roles with their password hashes (rs_bob's back to the backup's), the membership, the data.
    assert pg.sql("SELECT string_agg(rolname || '=' || rolpassword, ',' ORDER BY rolname) FROM pg_authid "
                  "WHERE rolname LIKE 'rs_%'") == hashes
    assert "SCRAM-SHA-256" not in result["_stdout"]
    assert pg.sql("SELECT pg_has_role('rs_alice', 'rs_team', 'MEMBER')") == "t"
    assert pg.sql("SELECT string_agg(id || '=' || body, ',' ORDER BY id) FROM notes", db="rs_src") == "1=one,2=zwei"
    assert pg.sql("SELECT count(*) FROM bodies", db="rs_src") == "2"
    assert pg.sql("SELECT twice(21)", db="rs_src") == "42"
    assert pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", db="rs_src") == "rs_alice"
    assert pg.sql("INSERT INTO notes (body) VALUES ('drei') RETURNING id", db="rs_src") == "3"  # the sequence too
    assert pg.sql("SELECT has_table_privilege('rs_team', 'notes', 'SELECT')", db="rs_src") == "t"

    # Again: every role exists now (expected), and the database holds data - it is left alone.
    again = restore(dest, items)
    assert not again["_failed"], again["_stdout"]
    assert [r["name"] for r in again["restored"]] == ["pg-globals"]
    assert again["not_restored"] == [{"name": "db-rs-src", "why": "database rs_src already holds 4 tables, views, "
                                                              "sequences or functions: a restore never overwrites "
                                                              "live data"}]
    assert pg.sql("SELECT count(*) FROM notes", db="rs_src") == "3"


@needs_pg
def test_a_database_with_anything_in_it_is_skipped_and_a_missing_one_fails(pg: Cluster, tmp_path: Path) -> None:
    pg.sql("CREATE DATABASE rs_one")
    pg.sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('from the backup')", db="rs_one")
    dest = tmp_path / "backup"
    [made] = backup(dest, [{"name": "db", "kind": "pg_dump", "database": "rs_one", **pg_conn(pg)}])
    for name, ddl in (("rs_fn", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
                      ("rs_seq", "CREATE SCHEMA s; CREATE SEQUENCE s.q"),
                      ("rs_live", "CREATE TABLE t (v text); INSERT INTO t VALUES ('live')")):
        pg.sql(f"CREATE DATABASE {name}")
        pg.sql(ddl, db=name)
        for check in (True, False):
            result = restore(dest, [as_item(made, database=name, **pg_conn(pg))], check=check)
            assert not result["_failed"] and result["changed"] is False, result["_stdout"]
            assert result["restored"] == [] and result["not_restored"][0]["name"] == "db"
            assert result["not_restored"][0]["why"].startswith(f"database {name} already holds 1 ")
    assert pg.sql("SELECT string_agg(v, ',') FROM t", db="rs_live") == "live"

    missing = restore(dest, [as_item(made, database="rs_nowhere", **pg_conn(pg))])
    assert missing["_failed"] and missing["item"] == "db", missing["_stdout"]
    assert missing["msg"] == ("item db: database rs_nowhere does not exist on this host (the apply creates it from "
                              "the spec: restore after the apply)")


@needs_pg
def test_errors_other_than_an_existing_role_fail_the_globals_without_showing_hashes(
    pg: Cluster, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    script = ("CREATE ROLE postgres;\nCREATE ROLE rs_new;\n"
              "SELECT 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'::int;\nALTER ROLE rs_nobody NOLOGIN;\n")
    item = {"name": "globals", "kind": "pg_globals", **private_file(src / "g.sql", script.encode()), **pg_conn(pg)}
    result = restore(src, [item])
    assert result["_failed"] and result["item"] == "globals", result["_stdout"]
    assert result["msg"].startswith("item globals: psql reported errors: ")
    assert 'role "rs_nobody" does not exist' in result["msg"] and "<hash>" in result["msg"]
    assert "already exists" not in result["msg"]  # CREATE ROLE postgres: expected
    assert "c2FsdA" not in result["_stdout"] and "c3RvcmVk" not in result["_stdout"]
    assert pg.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'rs_new'") == "1"  # the rest ran
