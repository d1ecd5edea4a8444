"""provision_owner_map for real through ansible (local connection): a peer's tree whose files belong to
old local IDs is given to the accounts the names resolve to now (here the system's own ``nobody`` and
``nogroup`` stand in for the domain's users and groups), ACL entries included, NT ACLs removed; check
mode, idempotence and the refusals."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_modules import run_module

MODULE = "provision_owner_map"
OLD_UID, OLD_GID, OTHER = 41001, 41002, 41003
NEW_UID = pwd.getpwnam("nobody").pw_uid
NEW_GROUP = "nogroup" if any(g.gr_name == "nogroup" for g in grp.getgrall()) else "nobody"
NEW_GID = grp.getgrnam(NEW_GROUP).gr_gid
NTACL = b"\x04\x00\x04\x00" + b"\x00" * 28
needs = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setfacl"), reason="needs root and setfacl (package acl)"
)


@pytest.fixture
def tree() -> Iterator[Path]:
    """A share as a peer leaves it, on a filesystem that takes security.NTACL (not every tmpfs does)."""
    for parent in (None, "/var/tmp"):
        top = Path(tempfile.mkdtemp(prefix="provision-owner-map-", dir=parent))
        try:
            os.setxattr(top, "security.NTACL", NTACL)
        except OSError:
            shutil.rmtree(top)
            continue
        share = top / "share"
        (share / "sub").mkdir(parents=True)
        for path in (share, share / "sub"):
            os.chown(path, OLD_UID, OLD_GID)
            path.chmod(0o2770)
        doc = share / "sub" / "doc.txt"
        doc.write_text("x")
        os.chown(doc, OLD_UID, OLD_GID)
        doc.chmod(0o2750)  # setgid on a file: chown clears it, the module puts it back
        other = share / "other.txt"
        other.write_text("y")
        os.chown(other, OTHER, OTHER)
        (share / "link").symlink_to("/etc/passwd")
        os.lchown(share / "link", OLD_UID, OLD_GID)
        subprocess.run(["setfacl", "-m", f"u:{OLD_UID}:rwx,g:{OLD_GID}:r-x,u:{OTHER}:r--", str(share)], check=True)
        subprocess.run(["setfacl", "-d", "-m", f"u:{OLD_UID}:rwx,g:{OLD_GID}:rwx", str(share)], check=True)
        for path in (share, doc):
            os.setxattr(path, "security.NTACL", NTACL)
        try:
            yield share
        finally:
            shutil.rmtree(top, ignore_errors=True)
        return
    pytest.skip("no filesystem here takes security.NTACL from root")


def _args(share: Path, **over: object) -> dict[str, object]:
    args: dict[str, object] = {
        "paths": [str(share)],
        "users": [{"from": OLD_UID, "to": "nobody"}],
        "groups": [{"from": OLD_GID, "to": NEW_GROUP}],
    }
    args.update(over)
    return args


def _owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


@needs
def test_a_tree_moves_to_the_new_ids_with_its_acls_and_without_nt_acls(tree: Path) -> None:
    check = run_module(MODULE, _args(tree), check=True)
    assert check["changed"] and check["owners"] == 4 and check["ntacls"] == 2, check
    assert _owner(tree) == (OLD_UID, OLD_GID)  # check mode changed nothing
    result = run_module(MODULE, _args(tree))
    assert result["changed"] and result["owners"] == 4 and result["acls"] == 1 and result["ntacls"] == 2, result
    doc = tree / "sub" / "doc.txt"
    for path in (tree, tree / "sub", doc, tree / "link"):
        assert _owner(path) == (NEW_UID, NEW_GID), path
    assert _owner(tree / "other.txt") == (OTHER, OTHER)  # not in the map: left alone
    assert stat.S_IMODE(doc.stat().st_mode) == 0o2750 and stat.S_IMODE(tree.stat().st_mode) == 0o2770
    acl = subprocess.run(["getfacl", "-n", "-p", str(tree)], capture_output=True, text=True, check=True).stdout
    assert f"user:{NEW_UID}:rwx" in acl and f"group:{NEW_GID}:r-x" in acl and f"user:{OTHER}:r--" in acl, acl
    assert f"default:user:{NEW_UID}:rwx" in acl and str(OLD_UID) not in acl, acl
    assert "security.NTACL" not in os.listxattr(doc)
    assert Path(os.readlink(tree / "link")) == Path("/etc/passwd") and _owner(Path("/etc/passwd"))[0] == 0
    again = run_module(MODULE, _args(tree))
    assert not again["changed"] and again["owners"] == 0, again


@needs
@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"paths": ["/etc"]}, "a directory of the system"),
        ({"paths": ["/"]}, "not an absolute, normalized path below /"),
        ({"paths": ["relative"]}, "not an absolute, normalized path"),
        ({"users": [{"from": 0, "to": "nobody"}]}, "0 is never moved"),
        ({"users": [{"from": OLD_UID, "to": "no-such-user-here"}]}, "does not resolve on this host"),
        ({"users": [{"from": OLD_UID, "to": "nobody"}, {"from": NEW_UID, "to": "root"}]}, "both an old ID"),
    ],
)
def test_bad_requests_change_nothing(tree: Path, over: dict[str, object], message: str) -> None:
    result = run_module(MODULE, _args(tree, **over))
    assert result["_failed"] and message in result["msg"], result
    assert _owner(tree) == (OLD_UID, OLD_GID)


@needs
def test_owners_go_back_by_name_while_both_names_resolve(tree: Path) -> None:
    """Rolling a migration back: the domain's account (here nobody) hands its files to the retired
    local one (here daemon) by name, while the host still resolves both."""
    assert run_module(MODULE, _args(tree))["changed"]
    back = {"paths": [str(tree)], "users": [{"from_name": "nobody", "to": "daemon"}], "groups": []}
    result = run_module(MODULE, back)
    assert not result["_failed"] and result["owners"] == 4, result
    daemon = pwd.getpwnam("daemon").pw_uid
    assert _owner(tree / "sub" / "doc.txt") == (daemon, NEW_GID)
    assert f"user:{daemon}:rwx" in subprocess.run(["getfacl", "-n", "-p", str(tree)], capture_output=True,
                                                  text=True, check=True).stdout
    assert not run_module(MODULE, back)["changed"]


@needs
@pytest.mark.parametrize("pair", [{"to": "nobody"}, {"from": OLD_UID, "from_name": "nobody", "to": "daemon"},
                                  {"from_name": "no-such-user-here", "to": "nobody"}])
def test_a_pair_needs_exactly_one_resolvable_source(tree: Path, pair: dict[str, object]) -> None:
    result = run_module(MODULE, _args(tree, users=[pair]))
    assert result["_failed"] and ("give one of from and from_name" in result["msg"]
                                  or "(from_name) does not resolve" in result["msg"]), result
    assert _owner(tree) == (OLD_UID, OLD_GID)
