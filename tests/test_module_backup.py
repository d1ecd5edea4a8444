"""The provision_backup module for real, through ansible with a local connection: archives of a tree with
everything Samba keeps outside the bytes of a file (numeric owners, POSIX access and default ACLs, the
security.NTACL, user.DOSATTRIB and user.DosStream.* xattrs, a sparse file) extracted again and compared;
PostgreSQL dumps of a throwaway cluster (the fixture of test_module_pg_access) restored into a new
database; the numbers of local accounts read from a throwaway root's etc/passwd and etc/group (and,
read-only, from this machine's); the refusals, check mode and the clean-up after a failure.

getfattr is not installed here, so extended attributes are read with os.listxattr/os.getxattr (the same
syscalls getfattr -d -m - makes); ACLs are compared with getfacl's own output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_module_pg_access
from ansible_modules import load_module, run_module
from test_module_pg_access import INITDB, Cluster

bk = load_module("provision_backup")
# The throwaway cluster of test_module_pg_access (module-scoped: one for this file's tests), not a copy of it.
pg = test_module_pg_access.pg
MODULE = "provision_backup"
NTACL = bytes.fromhex("0400040000000200040002000100") + b"\x00" * 24 + b"provision-test-ntacl"
RESTORE = ["tar", "--acls", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"]
needs_pg = pytest.mark.skipif(not INITDB, reason="no PostgreSQL server here (/usr/lib/postgresql/*/bin/initdb)")
needs_acl = pytest.mark.skipif(
    not (shutil.which("setfacl") and shutil.which("getfacl")), reason="setfacl/getfacl (package acl) not installed"
)


def sh(*argv: str, cwd: Path | None = None, stdin: Any = None) -> str:
    proc = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=False, cwd=cwd, timeout=120)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def xattrs(path: Path) -> dict[str, bytes]:
    """Every extended attribute of ``path`` itself, as getfattr -h -d -m - sees them."""
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A directory whose filesystem takes security.* xattrs from root (tmpfs and some others refuse
    security.NTACL): tmp_path when it does, else a directory in /var/tmp."""
    tried = []
    for parent in (tmp_path, Path("/var/tmp")):
        top = Path(tempfile.mkdtemp(prefix="provision-backup-", dir=parent))
        probe = top / "probe"
        probe.write_bytes(b"")
        try:
            os.setxattr(probe, "security.NTACL", NTACL)
        except OSError as exc:
            tried.append(f"{parent}: {exc}")
            shutil.rmtree(top)
            continue
        probe.unlink()
        try:
            yield top
        finally:
            shutil.rmtree(top, ignore_errors=True)
        return
    pytest.skip("no filesystem here lets root set security.NTACL: " + "; ".join(tried))


def make_tree(base: Path) -> Path:
    """A share as Samba leaves it: numeric owners nobody has, ACLs, NT ACLs, DOS attributes, streams."""
    src = base / "share"
    (src / "sub").mkdir(parents=True)
    src.chmod(0o2770)
    os.chown(src, 12345, 23456)
    sh("setfacl", "-m", "u:12345:rwx,g:23456:rwx,u:54321:r-x", str(src))
    sh("setfacl", "-d", "-m", "u::rwx,g::rwx,o::-,u:12345:rwx,g:23456:r-x", str(src))
    os.setxattr(src, "security.NTACL", NTACL + b"-dir")
    os.setxattr(src, "user.DOSATTRIB", b"0x10")
    doc = src / "doc.txt"
    doc.write_bytes(b"the content\n" * 100)
    os.chown(doc, 12345, 23456)
    doc.chmod(0o640)
    sh("setfacl", "-m", "g:54321:rw-", str(doc))
    os.setxattr(doc, "security.NTACL", NTACL)
    os.setxattr(doc, "user.DOSATTRIB", b"0x20\x00\x00\x03\x00\x03\x00\x00\x00\x11\x00\x00\x00\x20")
    os.setxattr(doc, "user.DosStream.Zone.Identifier:$DATA", b"[ZoneTransfer]\r\nZoneId=3\r\n\x00")
    os.setxattr(doc, "user.DosStream.notes:$DATA", bytes(range(256)))
    nested = src / "sub" / "-looks-like-an-option"
    nested.write_text("dash\n")
    os.chown(nested, 54321, 54321)
    os.chown(src / "sub", 54321, 23456)
    (src / "link").symlink_to("doc.txt")
    os.lchown(src / "link", 12345, 23456)
    sparse = src / "sparse.img"
    with open(sparse, "wb") as fh:
        fh.write(b"head")
        fh.seek(32 * 1024 * 1024 - 4)
        fh.write(b"tail")
    assert sparse.stat().st_blocks * 512 < 1024 * 1024, "the source file is not sparse on this filesystem"
    # What the excludes leave out: any component named cache, *.tmp anywhere, and one path from /.
    (src / "cache").mkdir()
    (src / "cache" / "big").write_bytes(b"x" * 1000)
    (src / "sub" / "cache").mkdir()
    (src / "scratch.tmp").write_text("tmp\n")
    (src / "skipme").mkdir()
    (src / "skipme" / "f").write_text("skipped\n")
    return src


EXCLUDED = ("cache", "sub/cache", "scratch.tmp", "skipme")


def kept(src: Path) -> list[str]:
    """The tree's paths (relative, "." first) that the archive must hold."""
    out = ["."]
    for path in sorted(src.rglob("*")):
        rel = str(path.relative_to(src))
        if not any(rel == e or rel.startswith(e + "/") for e in EXCLUDED):
            out.append(rel)
    return out


def snapshot(src: Path, rels: list[str]) -> dict[str, Any]:
    """Per path: type, owner, group, mode, mtime, every xattr, the link target or content digest."""
    snap: dict[str, Any] = {}
    for rel in rels:
        path = src / rel
        st = path.lstat()
        what = os.readlink(path) if path.is_symlink() else sha256(path) if path.is_file() else "dir"
        snap[rel] = (stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), int(st.st_mtime),
                     xattrs(path), what)
    return snap


def getfacl(src: Path, rels: list[str]) -> str:
    return sh("getfacl", "--numeric", "--physical", "--", *[r for r in rels if not (src / r).is_symlink()], cwd=src)


def tar_item(name: str, *paths: Path | str, **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": "tar", "paths": [str(p) for p in paths], **more}


# --------------------------------------------------------------------------- tar, for real


@needs_acl
def test_tar_round_trip_keeps_owners_acls_every_xattr_and_sparseness(base: Path) -> None:
    src = make_tree(base)
    dest = base / "backup"
    excludes = ["cache", "*.tmp", f"{src}/skipme"]
    result = run_module(MODULE, {"dest": str(dest), "items": [tar_item("share", src, exclude=excludes)]})
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    [entry] = result["files"]
    archive = dest / "share.tar.gz"
    assert entry["name"] == "share" and entry["kind"] == "tar" and entry["file"] == str(archive)
    assert entry["paths"] == [str(src)]
    assert entry["size"] == archive.stat().st_size > 0
    assert entry["sha256"] == sh("sha256sum", str(archive)).split()[0]
    assert isinstance(entry["seconds"], float) and entry["seconds"] >= 0
    assert mode(dest) == (0, 0, 0o700) and mode(archive) == (0, 0, 0o600)
    assert sorted(os.listdir(dest)) == ["share.tar.gz"]

    # Members are relative to /, so a restore extracts with -C /; the excludes are not there.
    prefix = str(src).lstrip("/")
    members = sh("tar", "-tzf", str(archive)).splitlines()
    assert all(m.startswith(prefix + "/") for m in members), members
    inside = sorted(m[len(prefix) + 1 :] for m in members)
    assert "sub/-looks-like-an-option" in inside and "doc.txt" in inside
    assert not [m for m in inside if "cache" in m or m.endswith(".tmp") or "skipme" in m], inside

    restored = base / "restored"
    restored.mkdir()
    sh(*RESTORE, str(archive), "-C", str(restored))
    copy = restored / prefix
    rels = kept(src)
    assert kept(copy) == rels  # nothing excluded came back, nothing is missing
    before, after = snapshot(src, rels), snapshot(copy, rels)
    assert after == before
    assert getfacl(copy, rels) == getfacl(src, rels)
    # Spelled out, what Samba needs back: the NT ACL, DOS attributes, streams, ACLs, numeric owners.
    doc = xattrs(copy / "doc.txt")
    assert doc["security.NTACL"] == NTACL
    assert doc["user.DosStream.notes:$DATA"] == bytes(range(256))
    assert doc["user.DOSATTRIB"].startswith(b"0x20")
    assert xattrs(copy)["security.NTACL"] == NTACL + b"-dir"
    assert "system.posix_acl_default" in xattrs(copy) and "system.posix_acl_access" in doc
    assert "group:54321:rw-" in getfacl(copy, ["doc.txt"])
    assert "default:user:12345:rwx" in getfacl(copy, ["."])
    assert mode(copy / "doc.txt") == mode(src / "doc.txt") and mode(copy / "doc.txt")[:2] == (12345, 23456)
    assert mode(copy / "sub" / "-looks-like-an-option")[:2] == (54321, 54321) and mode(copy)[:2] == (12345, 23456)
    sparse = copy / "sparse.img"
    assert sparse.stat().st_size == 32 * 1024 * 1024 and sparse.stat().st_blocks * 512 < 1024 * 1024
    with open(sparse, "rb") as fh:
        assert fh.read(4) == b"head" and (fh.seek(-4, os.SEEK_END), fh.read())[1] == b"tail"

    # GNU tar stores every xattr when it creates an archive, but restores only user.* unless told
    # --xattrs-include='*': the NT ACLs would silently be lost - the restore must give it.
    bare = base / "bare"
    bare.mkdir()
    sh("tar", "--xattrs", "--numeric-owner", "-xpzf", str(archive), "-C", str(bare))
    lost = xattrs(bare / prefix / "doc.txt")
    assert "security.NTACL" not in lost and lost["user.DOSATTRIB"] == doc["user.DOSATTRIB"]


def test_check_mode_writes_nothing_and_reports_what_it_would_make(base: Path) -> None:
    (base / "data").mkdir()
    dest = base / "backup"
    args = {"dest": str(dest), "items": [tar_item("data", base / "data"), tar_item("etc", base / "data")]}
    result = run_module(MODULE, args, check=True)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    assert result["files"] == [
        {"name": "data", "kind": "tar", "file": str(dest / "data.tar.gz"), "size": None, "sha256": None,
         "seconds": None, "paths": [str(base / "data")]},
        {"name": "etc", "kind": "tar", "file": str(dest / "etc.tar.gz"), "size": None, "sha256": None,
         "seconds": None, "paths": [str(base / "data")]},
    ]
    assert not dest.exists()
    dest.mkdir(mode=0o755)
    assert not run_module(MODULE, args, check=True)["_failed"]
    assert os.listdir(dest) == [] and mode(dest) == (0, 0, 0o755)  # not even made private
    # Check mode predicts the failures a run would have.
    missing = run_module(MODULE, {"dest": str(dest), "items": [tar_item("gone", base / "nope")]}, check=True)
    assert missing["_failed"] and missing["item"] == "gone", missing["_stdout"]


def test_a_missing_path_fails_naming_the_item_unless_missing_ok(base: Path) -> None:
    (base / "here").mkdir()
    (base / "here" / "f").write_text("f\n")
    dest = base / "backup"
    items = [tar_item("first", base / "here"), tar_item("state", base / "here", base / "absent")]
    failed = run_module(MODULE, {"dest": str(dest), "items": items})
    assert failed["_failed"] and failed["item"] == "state", failed["_stdout"]
    assert failed["msg"] == f"item state: path {base / 'absent'} does not exist (missing_ok is not set)"
    assert not dest.exists()  # refused before anything was made

    items[1]["missing_ok"] = True
    result = run_module(MODULE, {"dest": str(dest), "items": items})
    assert not result["_failed"], result["_stdout"]
    assert [f["paths"] for f in result["files"]] == [[str(base / "here")], [str(base / "here")]]
    assert sorted(os.listdir(dest)) == ["first.tar.gz", "state.tar.gz"]
    # All of them missing: an empty archive, which says so.
    only = run_module(MODULE, {"dest": str(base / "b2"), "items": [tar_item("x", base / "absent", missing_ok=True)]})
    assert only["files"][0]["paths"] == [] and sh("tar", "-tzf", only["files"][0]["file"]) == ""


def test_dest_must_be_new_or_empty(base: Path) -> None:
    (base / "data").mkdir()
    dest = base / "backup"
    dest.mkdir()
    (dest / "old.tar.gz").write_text("an older backup\n")
    item = [tar_item("data", base / "data")]
    for args in ({"dest": str(dest), "items": item}, {"dest": str(dest / "old.tar.gz"), "items": item}):
        result = run_module(MODULE, args)
        assert result["_failed"] and result["msg"].startswith(f"dest {args['dest']} "), result["_stdout"]
        assert "item" not in result
    assert os.listdir(dest) == ["old.tar.gz"]
    # An empty one is used and made private; missing parents are made too.
    (dest / "old.tar.gz").unlink()
    dest.chmod(0o755)
    assert not run_module(MODULE, {"dest": str(dest), "items": item})["_failed"]
    assert mode(dest) == (0, 0, 0o700)
    deep = base / "a" / "b" / "c"
    assert not run_module(MODULE, {"dest": str(deep), "items": item})["_failed"]
    assert mode(deep) == (0, 0, 0o700) and os.listdir(deep) == ["data.tar.gz"]


def test_dest_inside_an_archived_directory_is_left_out_and_nested_paths_are_stored_once(base: Path) -> None:
    (base / "data" / "inner").mkdir(parents=True)
    (base / "data" / "inner" / "f").write_text("f\n")
    (base / "data[1]").mkdir()  # dest's name has wildcard characters: excluded literally, not as a pattern
    dest = base / "data[1]" / "backup"
    items = [tar_item("one", base / "data"), tar_item("all", base, base / "data" / "inner", base)]
    result = run_module(MODULE, {"dest": str(dest), "items": items})
    assert not result["_failed"], result["_stdout"]
    assert result["files"][1]["paths"] == [str(base), str(base / "data" / "inner")]
    members = sh("tar", "-tzf", str(dest / "all.tar.gz")).splitlines()
    rel = str(base).lstrip("/")
    assert f"{rel}/data[1]/" in members and not [m for m in members if m.startswith(f"{rel}/data[1]/backup")]
    assert members.count(f"{rel}/data/inner/f") == 1


@pytest.mark.parametrize(
    ("items", "item", "message"),
    [
        ([{"name": "Bad", "kind": "tar", "paths": ["/etc"]}], None, "item name 'Bad' is not"),
        ([{"name": "-x", "kind": "tar", "paths": ["/etc"]}], None, "item name '-x' is not"),
        ([{"name": "a", "kind": "tar", "paths": ["/etc"]}] * 2, "a", "item a is listed twice"),
        ([{"name": "a", "kind": "pg_globals", "paths": ["/etc"]}], "a", "paths does not apply to kind pg_globals"),
        ([{"name": "a", "kind": "tar", "paths": ["/etc"], "database": "x"}], "a", "database does not apply"),
        ([{"name": "a", "kind": "samba_domain", "missing_ok": False}], "a", "missing_ok does not apply"),
        ([{"name": "a", "kind": "tar", "cluster_port": 5433, "paths": ["/etc"]}], "a", "cluster_port does not"),
        ([{"name": "a", "kind": "tar"}], "a", "kind tar needs paths"),
        ([{"name": "a", "kind": "tar", "paths": ["etc"]}], "a", "path 'etc' is not an absolute, normalized"),
        ([{"name": "a", "kind": "tar", "paths": ["/etc/../root"]}], "a", "is not an absolute, normalized"),
        ([{"name": "a", "kind": "tar", "paths": ["/etc"], "exclude": ["/"]}], "a", "would match nothing or"),
        ([{"name": "a", "kind": "pg_dump"}], "a", "kind pg_dump needs database"),
        ([{"name": "a", "kind": "pg_dump", "database": "x host=evil"}], "a", "database name 'x host=evil' is not"),
        ([{"name": "a", "kind": "pg_dump", "database": "--file=/etc/x"}], "a", "database name '--file=/etc/x'"),
        ([{"name": "a", "kind": "pg_globals", "cluster_port": 0}], "a", "cluster_port 0 is not a port"),
        ([{"name": "a", "kind": "tar", "paths": ["/etc"], "users": ["alice"]}], "a", "users does not apply to kind"),
        ([{"name": "a", "kind": "pg_globals", "groups": ["staff"]}], "a", "groups does not apply to kind pg_globals"),
        ([{"name": "a", "kind": "accounts", "users": ["al"], "paths": ["/etc"]}], "a", "paths does not apply to kind"),
        ([{"name": "a", "kind": "accounts", "groups": ["x"], "database": "x"}], "a", "database does not apply to kind"),
        ([{"name": "a", "kind": "accounts"}], "a", "kind accounts needs users or groups"),
        ([{"name": "a", "kind": "accounts", "users": [], "groups": []}], "a", "kind accounts needs users or groups"),
        ([{"name": "a", "kind": "accounts", "users": ["../etc"]}], "a", "account name '../etc' is not"),
        ([{"name": "a", "kind": "accounts", "groups": ["Staff"]}], "a", "account name 'Staff' is not"),
        ([{"name": "a", "kind": "accounts", "users": ["-o"]}], "a", "account name '-o' is not"),
        ([{"name": "a", "kind": "accounts", "users": ["a" * 33]}], "a", "is not [a-z_][a-z0-9_.-]{0,31}"),
        ([], None, "items is empty"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_made(
    tmp_path: Path, items: list[dict[str, Any]], item: str | None, message: str
) -> None:
    if "pg_" in str(items) and not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed: the tool check comes first")
    dest = tmp_path / "backup"
    result = run_module(MODULE, {"dest": str(dest), "items": items})
    assert result["_failed"] and message in result["msg"], result["_stdout"]
    assert result.get("item") == item
    assert not dest.exists()


def test_dest_and_paths_are_checked(tmp_path: Path) -> None:
    for dest, message in (("backup", "dest 'backup' is not"), ("/", "dest '/' is not"), ("/tmp/x/../y", "is not")):
        result = run_module(MODULE, {"dest": dest, "items": [tar_item("a", "/etc")]})
        assert result["_failed"] and message in result["msg"], result["_stdout"]
    inner = tmp_path / "backup" / "sub"
    result = run_module(MODULE, {"dest": str(tmp_path / "backup"), "items": [tar_item("a", inner)]})
    assert result["_failed"] and result["msg"] == f"item a: path {inner} is inside dest {tmp_path / 'backup'}"


def test_samba_domain_needs_samba_tool(tmp_path: Path) -> None:
    if shutil.which("samba-tool") or os.path.exists("/usr/bin/samba-tool"):
        pytest.skip("samba-tool is installed here: its absence cannot be shown (and there is no DC to back up)")
    items = [tar_item("etc", "/etc/hostname"), {"name": "ad", "kind": "samba_domain"}]
    args = {"dest": str(tmp_path / "backup"), "items": items}
    for check in (True, False):
        result = run_module(MODULE, args, check=check)
        assert result["_failed"] and result["item"] == "ad", result["_stdout"]
        assert result["msg"] == (
            "item ad: samba-tool is not installed on this host "
            "(kind samba_domain runs samba-tool domain backup offline on an AD DC)"
        )
        assert not (tmp_path / "backup").exists()


def test_commands_are_argument_lists_that_no_value_can_turn_into_an_option() -> None:
    item = bk.Item("db", "pg_dump", "/b/db.dump", (), database="projects", port=5433, socket_dir="/run/pg")
    assert bk.pg_argv("/usr/sbin/runuser", "/usr/bin/pg_dump", item) == [
        "/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/pg_dump", "--host=/run/pg", "--port=5433",
        "--username=postgres", "--no-password", "--format=custom", "--dbname=projects",
    ]
    tar = bk.Item("t", "tar", "/b/t.tar.gz", (), tops=("/srv/a", "/"), exclude=("*.tmp", "/srv/a/cache"))
    argv = bk.tar_argv("/usr/bin/tar", "/b/t.tar.gz", tar, "/b")
    assert argv[:4] == ["/usr/bin/tar", "--create", "--file=/b/t.tar.gz", "--gzip"]
    assert "--xattrs-include=*" in argv and "--acls" in argv and "--numeric-owner" in argv and "--sparse" in argv
    assert argv[-3:] == ["--null", "--verbatim-files-from", "--files-from=-"]
    # Unanchored first, then the rooted pattern anchored, then dest (inside "/") anchored and literal.
    assert argv[argv.index("--directory=/") + 1 : -3] == [
        "--exclude=*.tmp", "--anchored", "--exclude=srv/a/cache", "--anchored", "--no-wildcards", "--exclude=b",
    ]
    assert [bk.member(p) for p in tar.tops] == ["srv/a", "."]


def test_nested_paths_behind_a_symlink_are_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "real" / "x").mkdir(parents=True)
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "via").symlink_to(tmp_path / "real")
    assert bk.covered(str(tmp_path / "real" / "x"), str(tmp_path / "real"))
    assert not bk.covered(str(tmp_path / "top" / "via" / "x"), str(tmp_path / "top"))  # tar stores `via` as a link
    assert not bk.covered(str(tmp_path / "topx"), str(tmp_path / "top"))
    assert bk.covered("/etc/x", "/") and not bk.covered("/", "/")


# --------------------------------------------------------------------------- local accounts

# A password hash in the throwaway shadow files: never in a backup.
HASH = "$6$provisiontest$c2VjcmV0LWhhc2gtbmV2ZXItYmFja2VkLXVw"


def accounts_root(top: Path, passwd: list[str], group: list[str]) -> Path:
    """A root whose etc/passwd, group, shadow and gshadow hold root's entries and these: what the
    accounts kind reads instead of the system's (root other than /) and useradd and groupadd change
    with --prefix. No test makes an account on this machine."""
    etc = top / "etc"
    etc.mkdir(parents=True)
    users = ["root:x:0:0:root:/root:/bin/bash", *passwd]
    groups = ["root:x:0:", *group]
    (etc / "passwd").write_text("".join(f"{line}\n" for line in users))
    (etc / "group").write_text("".join(f"{line}\n" for line in groups))
    (etc / "shadow").write_text("".join(f"{line.split(':')[0]}:{HASH}:19000:0:99999:7:::\n" for line in users))
    (etc / "gshadow").write_text("".join(f"{line.split(':')[0]}:!::\n" for line in groups))
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)
    return top


# alice and bob with their personal groups, staff; a system account, a user whose home is not a
# path useradd would take, one sharing alice's uid, one whose primary group has no name.
SOURCE_PASSWD = [
    "alice:x:1001:1001:Alice Doe,,,:/home/alice:/bin/bash",
    "bob:x:1002:1002:Bob Roe:/home/bob:/usr/sbin/nologin",
    "daemonish:x:999:999:system:/var/lib/daemonish:/usr/sbin/nologin",
    "odd:x:1003:1003::home/odd:/bin/sh",
    "twin:x:1001:1001:Alice's twin:/home/twin:/bin/bash",
    "orphan:x:1004:1444::/home/orphan:/bin/sh",
]
SOURCE_GROUP = ["alice:x:1001:", "bob:x:1002:", "staff:x:1500:alice,bob", "daemonish:x:999:", "odd:x:1003:",
                "nogroup:x:65534:"]


def test_accounts_are_recorded_with_their_numbers_and_nothing_secret(tmp_path: Path) -> None:
    root = accounts_root(tmp_path / "root", SOURCE_PASSWD, SOURCE_GROUP)
    dest = tmp_path / "backup"
    item = {"name": "accounts", "kind": "accounts", "users": ["bob", "alice", "carol", "daemonish", "odd", "twin",
                                                           "orphan"], "groups": ["staff", "finance", "nogroup"]}
    args = {"dest": str(dest), "root": str(root), "items": [item]}
    holds = [
        "users bob (1002), alice (1001)",
        "groups staff (1500), bob (1002), alice (1001)",
        "left out, not on this host - user carol, group finance",
        "left out, user daemonish: uid 999 is not a regular account's (1000..59999)",
        "left out, user odd: home 'home/odd' is not an absolute, normalized path",
        "left out, user twin: uid 1001 is user alice's too",
        "left out, user orphan: its primary group 1444 has no name here",
        "left out, group nogroup: gid 65534 is not a regular group's",
    ]
    check = run_module(MODULE, args, check=True)
    assert not check["_failed"] and not dest.exists(), check["_stdout"]
    assert check["files"][0]["paths"] == holds and check["files"][0]["file"] == str(dest / "accounts.json")

    result = run_module(MODULE, args)
    assert not result["_failed"] and result["changed"] is True, result["_stdout"]
    [entry] = result["files"]
    made = dest / "accounts.json"
    assert entry["paths"] == holds and entry["kind"] == "accounts" and entry["sha256"] == sha256(made)
    assert mode(made) == (0, 0, 0o600)
    assert json.loads(made.read_text()) == {
        "users": {
            "alice": {"uid": 1001, "gid": 1001, "group": "alice", "home": "/home/alice", "shell": "/bin/bash",
                      "gecos": "Alice Doe,,,"},
            "bob": {"uid": 1002, "gid": 1002, "group": "bob", "home": "/home/bob", "shell": "/usr/sbin/nologin",
                    "gecos": "Bob Roe"},
        },
        "groups": {"alice": 1001, "bob": 1002, "staff": 1500},
    }
    assert HASH not in made.read_text() and "$6$" not in made.read_text()  # shadow is never read


def test_accounts_read_through_the_name_service_when_root_is_slash(tmp_path: Path) -> None:
    """The live system, read-only: root (uid 0) is never recorded, a name that is not there is said."""
    dest = tmp_path / "backup"
    item = {"name": "accounts", "kind": "accounts", "users": ["root", "provision-no-such-user"], "groups": ["root"]}
    result = run_module(MODULE, {"dest": str(dest), "items": [item]})
    assert not result["_failed"], result["_stdout"]
    assert result["files"][0]["paths"] == [
        "users none",
        "groups none",
        "left out, not on this host - user provision-no-such-user",
        "left out, user root: uid 0 is not a regular account's (1000..59999)",
        "left out, group root: gid 0 is not a regular group's",
    ]
    assert json.loads((dest / "accounts.json").read_text()) == {"users": {}, "groups": {}}


def test_a_root_other_than_slash_is_for_accounts_only(tmp_path: Path) -> None:
    root = accounts_root(tmp_path / "root", [], [])
    items = [{"name": "accounts", "kind": "accounts", "groups": ["staff"]}, tar_item("etc", "/etc/hostname")]
    result = run_module(MODULE, {"dest": str(tmp_path / "backup"), "root": str(root), "items": items})
    assert result["_failed"] and result["msg"] == "a root other than / is for items of kind accounts only"
    result = run_module(MODULE, {"dest": str(tmp_path / "backup"), "root": "etc", "items": items[:1]})
    assert result["_failed"] and "root 'etc' is not an absolute" in result["msg"], result["_stdout"]
    bare = tmp_path / "bare"
    bare.mkdir()
    result = run_module(MODULE, {"dest": str(tmp_path / "backup"), "root": str(bare), "items": items[:1]})
    assert result["_failed"] and f"{bare}/etc/passwd cannot be read" in result["msg"], result["_stdout"]
    assert not (tmp_path / "backup").exists()


# --------------------------------------------------------------------------- PostgreSQL, for real


@needs_pg
def test_pg_dump_and_globals_restore_into_a_new_database(pg: Cluster, tmp_path: Path) -> None:
    pg.sql("CREATE ROLE bk_alice LOGIN PASSWORD 'Secret-Backup-1'; CREATE DATABASE bk_src OWNER bk_alice")
    pg.sql("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'one'), (2, 'zwei'); "
           "GRANT SELECT ON notes TO PUBLIC", db="bk_src", user="bk_alice")
    dest = tmp_path / "backup"
    conn = {"socket_dir": str(pg.sockdir), "cluster_port": pg.port}
    items = [{"name": "bk-src", "kind": "pg_dump", "database": "bk_src", **conn},
             {"name": "globals", "kind": "pg_globals", **conn}]
    check = run_module(MODULE, {"dest": str(dest), "items": items}, check=True)
    assert not check["_failed"] and not dest.exists(), check["_stdout"]
    assert [f["file"] for f in check["files"]] == [str(dest / "bk-src.dump"), str(dest / "globals.sql")]

    result = run_module(MODULE, {"dest": str(dest), "items": items})
    assert not result["_failed"], result["_stdout"]
    dump, globals_sql = dest / "bk-src.dump", dest / "globals.sql"
    assert [f["paths"] for f in result["files"]] == [
        [f"PostgreSQL database bk_src (port {pg.port})"],
        [f"PostgreSQL roles with their password hashes, memberships and tablespaces (port {pg.port})"],
    ]
    for entry, path in zip(result["files"], (dump, globals_sql), strict=True):
        assert mode(path) == (0, 0, 0o600)
        assert entry["size"] == path.stat().st_size > 0
        assert entry["sha256"] == sh("sha256sum", str(path)).split()[0]
    assert dump.read_bytes().startswith(b"PGDMP")  # the custom format
    text = globals_sql.read_text()
    assert "CREATE ROLE bk_alice;" in text and "SCRAM-SHA-256$" in text  # why the files are 0600

    # The dump restores: postgres cannot read the 0600 file, so pg_restore reads it on stdin.
    pg.sql("CREATE DATABASE bk_copy")
    with open(dump, "rb") as fh:
        sh("runuser", "-u", "postgres", "--", str(pg.bindir / "pg_restore"), f"--host={pg.sockdir}",
           f"--port={pg.port}", "--dbname=bk_copy", "--exit-on-error", stdin=fh)
    assert pg.sql("SELECT string_agg(id || '=' || body, ',' ORDER BY id) FROM notes", db="bk_copy") == "1=one,2=zwei"
    assert pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", db="bk_copy") == "bk_alice"


@needs_pg
def test_a_failing_dump_removes_everything_the_run_made(pg: Cluster, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    dest = tmp_path / "backup"
    dest.mkdir()
    items = [tar_item("data", tmp_path / "data"),
             {"name": "nodb", "kind": "pg_dump", "database": "bk_no_such_db", "socket_dir": str(pg.sockdir),
              "cluster_port": pg.port}]
    result = run_module(MODULE, {"dest": str(dest), "items": items})
    assert result["_failed"] and result["item"] == "nodb", result["_stdout"]
    assert result["msg"].startswith("item nodb: pg_dump failed (1): ") and "bk_no_such_db" in result["msg"]
    assert os.listdir(dest) == []  # the tar that succeeded went too: a partial backup is no backup
    # A dest the run made goes with it.
    result = run_module(MODULE, {"dest": str(tmp_path / "new"), "items": items})
    assert result["_failed"] and not (tmp_path / "new").exists()
