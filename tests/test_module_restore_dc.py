"""The provision_restore_dc module: its refusals for real through ansible (a local connection), and the
pure steps of a domain restore. The restore itself needs a Samba AD DC; the lab's restore drill in
tests/integration/test_domain.py runs it."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from ansible_modules import load_module, run_module

dc = load_module("provision_restore_dc")
MODULE = "provision_restore_dc"
REALM = "AD.LAB.TEST"


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tf:
        for m in members:
            data = b"x" * m.size if m.isreg() else None
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


def test_a_plain_backup_extracts(tmp_path: Path) -> None:
    src = _tar(tmp_path / "b.tar", [_member("private", tarfile.DIRTYPE), _member("private/sam.ldb"),
                                     _member("etc/smb.conf")])
    dc.safe_extract(str(src), str(tmp_path / "out"))
    assert (tmp_path / "out" / "private" / "sam.ldb").read_bytes() == b"xxx"


@pytest.mark.parametrize(
    "member",
    [
        _member("/etc/passwd"),
        _member("../outside"),
        _member("private/../../outside"),
        _member("private/link", tarfile.SYMTYPE, "/etc"),
        _member("private/hard", tarfile.LNKTYPE, "/etc/shadow"),
        _member("dev", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["absolute", "dotdot", "inner-dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_a_hostile_backup_extracts_nothing(tmp_path: Path, member: tarfile.TarInfo) -> None:
    src = _tar(tmp_path / "b.tar", [_member("private/sam.ldb"), member])
    out = tmp_path / "out"
    with pytest.raises(dc.Failed, match="is not a plain file or directory"):
        dc.safe_extract(str(src), str(out))
    assert not out.exists() or not any(out.rglob("*"))


def test_filter_values_are_escaped() -> None:
    assert dc.ldap_escape("DC1") == "DC1"
    assert dc.ldap_escape("a*(b)\\") == "a\\2a\\28b\\29\\5c"
    assert dc.base_dn("AD.Lab.Test") == "DC=ad,DC=lab,DC=test"


def _args(tmp_path: Path, **over: object) -> dict[str, object]:
    src = tmp_path / "domain.tar.bz2"
    if not src.exists():
        src.write_bytes(b"not really a backup")
    args: dict[str, object] = {
        "action": "restore",
        "realm": REALM,
        "src": str(src),
        "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "server_name": "dc1",
        "stamp": "20261206T120000Z",
    }
    args.update(over)
    return {k: v for k, v in args.items() if v is not None}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the module runs as root only")


@needs_root
@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"server_name": "a-name-far-too-long"}, "is not a NetBIOS name"),
        ({"server_name": "dc1;rm"}, "is not a NetBIOS name"),
        ({"stamp": "yesterday"}, "is not YYYYMMDDTHHMMSSZ"),
        ({"sha256": "0" * 64}, "SHA-256 differs from the manifest"),
        ({"sha256": None}, "action restore needs sha256"),
        ({"name": "DC2"}, "name applies to action remove_dead only"),
        ({"realm": "not a realm"}, "is not a DNS name"),
        ({"src": "/nonexistent/domain.tar.bz2"}, "is not a regular file"),
    ],
)
def test_a_restore_request_is_checked_before_anything_happens(tmp_path: Path, over, message) -> None:  # type: ignore[no-untyped-def]
    result = run_module(MODULE, _args(tmp_path, **over))
    assert result["_failed"] and message in result["msg"], result


@needs_root
def test_remove_dead_takes_no_restore_options_and_needs_a_dc(tmp_path: Path) -> None:
    result = run_module(MODULE, {"action": "remove_dead", "realm": REALM, "name": "DC1", "stamp": "20261206T120000Z"})
    assert result["_failed"] and "stamp applies to action restore only" in result["msg"], result
    result = run_module(MODULE, {"action": "remove_dead", "realm": REALM, "name": "DC1"})
    assert result["_failed"], result
    held = Path("/var/lib/samba/private/sam.ldb").exists()
    assert held or "holds no directory database" in result["msg"], result


@needs_root
@pytest.mark.skipif(bool(shutil.which("samba-tool")), reason="this machine has samba-tool")
def test_without_samba_tool_the_restore_says_what_to_install(tmp_path: Path) -> None:
    result = run_module(MODULE, _args(tmp_path))
    assert result["_failed"] and "samba-tool is not installed" in result["msg"], result
