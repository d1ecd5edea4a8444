#!/usr/bin/python
"""Ansible module: bring an AD domain back on a DC - restored from its backup when every DC was lost,
or a lost DC removed from the directory of a surviving one so that it can join again."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_restore_dc
short_description: Restore a Samba AD domain from its backup, or remove a lost DC from the directory
description:
  - Runs as root on a Samba AD DC host, with python3-samba and samba-tool installed.
  - O(action=restore) is the recovery when every DC of the domain was lost. This host, which holds no
    directory database, gets the domain back from O(src), a C(samba-tool domain backup offline) file, as
    the DC O(server_name) - the directory rolls back to the time of the backup, with its users, groups,
    computer accounts, passwords, SYSVOL and NT ACLs. C(samba-tool domain backup restore) does the
    work - it seizes every FSMO role, removes every other DC from the directory (they join again
    afterwards) and changes the krbtgt password twice.
  - That command refuses a new server name that the backup already holds - the normal case, as the DC
    is rebuilt under its own name. So the module first extracts the backup, renames the old account
    and server object of O(server_name) (to C(NAME-OLD), which the restore then removes like every
    other old DC) and hands the restore that copy. Nothing in O(src) changes.
  - The restore lays the database out as Debian's Samba expects it - C(/var/lib/samba/private) and
    SYSVOL in C(/var/lib/samba/sysvol), NT ACLs kept - and leaves the services stopped; smb.conf is
    written and samba-ad-dc started by the samba_dc role afterwards.
  - Nothing is deleted - what was in C(/var/lib/samba), C(/var/cache/samba) and C(/etc/samba/smb.conf)
    before is renamed to C(PATH.before-restore-STAMP). A restore that fails puts them back and moves
    its partial result to C(/var/lib/samba.failed-restore-STAMP).
  - A host that already holds a directory database of O(realm) is left alone (not changed); one of
    another domain is refused.
  - O(action=remove_dead) runs on a DC that holds the domain and removes the DC O(name), which was lost,
    from its directory - C(samba-tool domain demote --remove-other-dead-server) - its NTDS settings,
    server and computer objects and DNS records; FSMO roles it held are seized by this DC. Only then
    can a rebuilt DC of that name join again without a stale DSA that replication keeps calling. The
    references the removal leaves behind (the DNS partitions' C(msDS-NC-Replica-Locations), stale DN
    strings) are then fixed with C(samba-tool dbcheck --fix) on those attributes only, as
    C(samba-tool domain backup restore) does. Not changed when the directory holds no such DC.
  - Check mode reports what would happen and changes nothing.
version_added: "0.1.0"
author: provision maintainers
options:
  action:
    description: C(restore) the domain on this host, or C(remove_dead) a lost DC from this DC's directory.
    type: str
    required: true
    choices: [restore, remove_dead]
  realm:
    description:
      - The domain's realm (C(AD.EXAMPLE.COM)); the backup and any database on this host must be of it.
    type: str
    required: true
  src:
    description:
      - O(action=restore) only, required there - absolute path of the C(samba-tool domain backup) file on this
        host.
    type: path
  sha256:
    description:
      - O(action=restore) only, required there - the hex SHA-256 the file must have (the backup's manifest).
    type: str
  server_name:
    description:
      - O(action=restore) only, required there - the NetBIOS name of this DC (at most 15 letters, digits or
        C(-)).
    type: str
  stamp:
    description:
      - O(action=restore) only, required there - C(YYYYMMDDTHHMMSSZ), in the names of what is set aside.
    type: str
  name:
    description:
      - O(action=remove_dead) only, required there - the NetBIOS name of the lost DC; never this DC's own.
    type: str
notes:
  - Needs root (C(become)).
"""

EXAMPLES = r"""
- name: Restore the domain on the first DC (every DC was lost)
  provision_restore_dc:
    action: restore
    realm: AD.EXAMPLE.COM
    src: /var/backups/provision/restore/domain.tar.bz2
    sha256: 0f343b0931126a20f133d67c2b018a3b5e2a8c1e6a1c6b3f8a0f2e1d4c5b6a79
    server_name: DC1
    stamp: 20240501T030000Z

- name: Remove the lost DC dc1 from the directory of dc2
  provision_restore_dc:
    action: remove_dead
    realm: AD.EXAMPLE.COM
    name: DC1
"""

RETURN = r"""
set_aside:
  description: What was renamed out of the way, as C({path, to}).
  returned: always
  type: list
  elements: dict
seconds:
  description: How long the restore or removal took; null when nothing was done.
  returned: always
  type: float
state:
  description:
    - C(restored), C(present) (this host already held the domain), C(removed), C(absent) (no such DC in the
      directory), or what would be in check mode.
  returned: success
  type: str
"""

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run  # noqa: E402
from ansible.module_utils.provision_fileops import Refused, move_aside  # noqa: E402

SAMBA_DIR = "/var/lib/samba"
PRIVATE = "/var/lib/samba/private"
SAM = "/var/lib/samba/private/sam.ldb"
CACHE_DIR = "/var/cache/samba"
SMB_CONF = "/etc/samba/smb.conf"
# What references a removed DC: fixed after the removal (samba's own restore fixes the same).
STALE_DC_ATTRS = ("msDS-NC-Replica-Locations", "lastKnownParent", "interSiteTopologyGenerator")
SERVICES = ("samba-ad-dc.service", "smbd.service", "nmbd.service", "winbind.service")
NETBIOS = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
REALM = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})+")
STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
SHA256 = re.compile(r"[0-9a-f]{64}")
# Only what a samba-tool backup holds: relative names, plain files and directories.
SAFE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE)


class Failed(Exception):
    """The request cannot be carried out; the message says why."""


def base_dn(realm: str) -> str:
    return ",".join(f"DC={part}" for part in realm.lower().split("."))


def tail(text: str) -> str:
    return text.strip()[-1500:]


def ldbsearch(
    module: AnsibleModule, path: str, base: str, scope: str, expression: str, *attrs: str
) -> list[dict[str, str]]:
    """Entries of the database at ``path`` (through ldbsearch, which loads Samba's ldb modules the
    way samba itself opens the file), each as {"dn": ..., attribute: first value}."""
    tool = module.get_bin_path("ldbsearch")
    if not tool:
        raise Failed("ldbsearch is not installed (package ldb-tools)")
    argv = [tool, "-H", path, "-s", scope, "-b", base, expression, *attrs]
    rc, out, err = run(module, argv)
    if rc != 0:
        raise Failed(f"ldbsearch of {path} failed ({rc}): {tail(err or out)}")
    entries: list[dict[str, str]] = []
    for line in out.splitlines():
        key, sep, value = line.partition(": ")
        if not sep or line.startswith((" ", "#")):
            continue
        if key == "dn":
            entries.append({"dn": value})
        elif entries and key in attrs:
            entries[-1].setdefault(key, value)
    return entries


def naming_context(module: AnsibleModule, path: str) -> tuple[str, str] | None:
    """The defaultNamingContext and dsServiceName of the database at ``path`` (None: no database)."""
    if not os.path.isfile(path):
        return None
    found = ldbsearch(module, path, "", "base", "(objectClass=*)", "defaultNamingContext", "dsServiceName")
    if not found or "defaultNamingContext" not in found[0]:
        return None
    return found[0]["defaultNamingContext"], found[0].get("dsServiceName", "")


def ldap_escape(value: str) -> str:
    """``value`` as a literal in an LDAP filter (RFC 4515)."""
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def safe_extract(src: str, dest: str) -> None:
    """Extract the backup (a tar samba-tool wrote) refusing anything but plain, relative members."""
    with tarfile.open(src) as tf:
        members = tf.getmembers()
        for m in members:
            parts = m.name.split("/")
            if m.name.startswith("/") or ".." in parts or m.type not in SAFE_TYPES:
                raise Failed(f"{src}: member {m.name!r} is not a plain file or directory below the backup's root")
        tf.extractall(dest, members=members)  # noqa: S202 - every member checked above


def rename_old_dc(work: str, server_name: str, realm: str) -> str | None:
    """In the extracted backup, move the old DC ``server_name`` out of the way (account and server
    object renamed to NAME-OLD): the restore adds the new DC under its name and removes every other
    DC, that one included. Returns the name used, or None when the backup holds no such DC."""
    import ldb  # type: ignore[import-not-found]
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(os.path.join(work, "etc", "smb.conf"))
    samdb = SamDB(
        url=os.path.join(work, "private", "sam.ldb"), session_info=system_session(), lp=lp, flags=ldb.FLG_DONT_CREATE_DB
    )
    if str(samdb.domain_dn()).lower() != base_dn(realm).lower():
        raise Failed(f"the backup holds the domain {samdb.domain_dn()}, not {base_dn(realm)} ({realm})")
    config = samdb.get_config_basedn()
    servers = samdb.search(config, scope=ldb.SCOPE_SUBTREE, expression="(objectClass=server)", attrs=["cn"])
    taken = {str(s["cn"][0]).upper() for s in servers}
    name = server_name.upper()
    if name not in taken:
        return None
    old = f"{name[:11]}-OLD"
    n = 0
    while old in taken:
        n += 1
        old = f"{name[:10]}-OLD{n}"
    accounts = samdb.search(
        samdb.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={ldb.binary_encode(name)}$)",
        attrs=["servicePrincipalName"],
    )
    samdb.transaction_start()
    try:
        for acc in accounts:
            msg = ldb.Message(acc.dn)
            msg["sAMAccountName"] = ldb.MessageElement(f"{old}$", ldb.FLAG_MOD_REPLACE, "sAMAccountName")
            if "servicePrincipalName" in acc:
                # SPNs are unique in the directory: the new account takes them.
                msg["servicePrincipalName"] = ldb.MessageElement([], ldb.FLAG_MOD_DELETE, "servicePrincipalName")
            samdb.modify(msg)
            samdb.rename(acc.dn, sibling(samdb, acc.dn, old))
        for srv in servers:
            if str(srv["cn"][0]).upper() == name:
                samdb.rename(srv.dn, sibling(samdb, srv.dn, old))
    except Exception:
        samdb.transaction_cancel()
        raise
    samdb.transaction_commit()
    return old


def sibling(samdb: Any, dn: Any, cn: str) -> Any:
    """``dn`` with its first component replaced by CN=``cn``."""
    import ldb

    out = ldb.Dn(samdb, f"CN={ldb.binary_encode(cn)}")
    out.add_base(dn.parent())
    return out


def repack(work: str, out: str) -> None:
    """The extracted, edited backup as a tar again (samba-tool restore opens any tar)."""
    with tarfile.open(out, "w") as tf:
        for entry in sorted(os.listdir(work)):
            tf.add(os.path.join(work, entry), arcname=entry)


def stop_services(module: AnsibleModule) -> None:
    systemctl = module.get_bin_path("systemctl", required=True)
    for unit in SERVICES:
        rc, out, _ = run(module, [systemctl, "show", "--property=LoadState", "--value", unit])
        if rc == 0 and out.strip() not in ("", "not-found"):
            rc, out, err = run(module, [systemctl, "stop", unit])
            if rc != 0:
                raise Failed(f"cannot stop {unit}: {tail(err or out)}")


def debian_layout() -> None:
    """samba-tool lays a restore out as a self-contained tree (TARGET/state/sysvol, TARGET/etc,
    caches); Debian's Samba keeps its state in /var/lib/samba and SYSVOL in /var/lib/samba/sysvol."""
    state = os.path.join(SAMBA_DIR, "state")
    if os.path.isdir(state):
        for entry in os.listdir(state):
            target = os.path.join(SAMBA_DIR, entry)
            if os.path.lexists(target):
                raise Failed(f"the restore left {target} and {state}/{entry}: cannot lay it out")
            os.rename(os.path.join(state, entry), target)
        os.rmdir(state)
    for leftover in ("etc", "cache", "bind-dns"):
        shutil.rmtree(os.path.join(SAMBA_DIR, leftover), ignore_errors=True)
    for cache in ("gencache.tdb", "backup.txt"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SAMBA_DIR, cache))
    if not os.path.isdir(os.path.join(SAMBA_DIR, "sysvol")) or not os.path.isfile(SAM):
        raise Failed("the restore did not leave private/sam.ldb and sysvol in /var/lib/samba")


def restore(module: AnsibleModule, params: dict[str, Any]) -> dict[str, Any]:
    realm, src, stamp = params["realm"], params["src"], params["stamp"]
    server_name = params["server_name"]
    for option in ("src", "sha256", "server_name", "stamp"):
        if not params.get(option):
            raise Failed(f"action restore needs {option}")
    if params.get("name"):
        raise Failed("name applies to action remove_dead only")
    if not NETBIOS.fullmatch(server_name):
        raise Failed(f"server_name {server_name!r} is not a NetBIOS name (1 to 15 letters, digits or '-')")
    if not STAMP.fullmatch(stamp):
        raise Failed(f"stamp {stamp!r} is not YYYYMMDDTHHMMSSZ")
    if not SHA256.fullmatch(params["sha256"]):
        raise Failed("sha256 is not 64 lower-case hex digits")
    if not os.path.isabs(src) or os.path.islink(src) or not os.path.isfile(src):
        raise Failed(f"src {src} is not a regular file")
    if digest(src) != params["sha256"]:
        raise Failed(f"{src} is not the backup's file: its SHA-256 differs from the manifest's")
    samba_tool = module.get_bin_path("samba-tool")
    if not samba_tool:
        raise Failed("samba-tool is not installed (install the Samba AD DC packages first)")
    held = naming_context(module, SAM)
    if held is not None:
        if held[0].lower() != base_dn(realm).lower():
            raise Failed(f"{SAM} holds the domain {held[0]}, not {realm}: it is left alone")
        return {"state": "present", "set_aside": [], "seconds": None, "changed": False}
    if module.check_mode:
        return {"state": "restored", "set_aside": [], "seconds": None, "changed": True}

    started = time.monotonic()
    work = f"/var/lib/provision-restore-{stamp}"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "backup"), mode=0o700)
    aside: list[dict[str, str]] = []
    try:
        safe_extract(src, os.path.join(work, "backup"))
        rename_old_dc(os.path.join(work, "backup"), server_name, realm)
        clean = os.path.join(work, "clean.tar")
        repack(os.path.join(work, "backup"), clean)
        stop_services(module)
        for path in (SAMBA_DIR, CACHE_DIR, SMB_CONF):
            if os.path.lexists(path):
                to = f"{path}.before-restore-{stamp}"
                move_aside(path, to)
                aside.append({"path": path, "to": to})
        os.makedirs(CACHE_DIR, mode=0o755, exist_ok=True)
        argv = [samba_tool, "domain", "backup", "restore", f"--backup-file={clean}", f"--targetdir={SAMBA_DIR}"]
        rc, out, err = run(module, [*argv, f"--newservername={server_name.upper()}"])
        if rc != 0:
            raise Failed(f"samba-tool domain backup restore failed ({rc}): {tail(err or out)}")
        debian_layout()
        os.chmod(SAMBA_DIR, 0o755)  # noqa: S103 - Debian's mode of /var/lib/samba (private/ stays 0700)
    except BaseException as exc:
        undo(aside, stamp)
        if isinstance(exc, Failed):
            raise
        if isinstance(exc, Refused):
            raise Failed(str(exc)) from exc
        if isinstance(exc, Exception):
            raise Failed(f"restoring the domain failed: {type(exc).__name__}: {exc}") from exc
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"state": "restored", "set_aside": aside, "seconds": round(time.monotonic() - started, 1), "changed": True}


def undo(aside: list[dict[str, str]], stamp: str) -> None:
    """After a failed restore: its partial result out of the way, what was there before back."""
    for moved in reversed(aside):
        path = moved["path"]
        if os.path.lexists(path):
            with contextlib.suppress(OSError, Refused):
                move_aside(path, f"{path}.failed-restore-{stamp}")
        with contextlib.suppress(OSError, Refused):
            move_aside(moved["to"], path)


def remove_dead(module: AnsibleModule, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("name") or ""
    for option in ("src", "sha256", "server_name", "stamp"):
        if params.get(option):
            raise Failed(f"{option} applies to action restore only")
    if not NETBIOS.fullmatch(name):
        raise Failed(f"name {name!r} is not a NetBIOS name (1 to 15 letters, digits or '-')")
    held = naming_context(module, SAM)
    if held is None or held[0].lower() != base_dn(params["realm"]).lower():
        raise Failed(f"this host holds no directory database of {params['realm']}: run it on a surviving DC")
    config = f"CN=Configuration,{held[0]}"
    found = ldbsearch(module, SAM, config, "sub", f"(&(objectClass=server)(cn={ldap_escape(name)}))", "cn")
    if not found:
        return {"state": "absent", "set_aside": [], "seconds": None, "changed": False}
    if held[1].lower().endswith("," + found[0]["dn"].lower()):
        raise Failed(f"{name} is this DC itself: only a lost DC is removed")
    if module.check_mode:
        return {"state": "removed", "set_aside": [], "seconds": None, "changed": True}
    started = time.monotonic()
    samba_tool = module.get_bin_path("samba-tool", required=True)
    rc, out, err = run(module, [samba_tool, "domain", "demote", f"--remove-other-dead-server={name.upper()}"])
    if rc != 0:
        raise Failed(f"samba-tool domain demote --remove-other-dead-server={name} failed ({rc}): {tail(err or out)}")
    # The removal leaves one-way links to the dead DC's NTDS settings (the DNS partitions'
    # msDS-NC-Replica-Locations) and stale DN strings: what samba-tool domain backup restore
    # fixes after it removes old DCs, fixed here the same way and no further.
    check = [samba_tool, "dbcheck", "--cross-ncs", f"--attrs={' '.join(STALE_DC_ATTRS)}"]
    run(module, [*check, "--fix", "--yes"])
    rc, out, err = run(module, check)
    if rc != 0:
        raise Failed(f"{name} was removed, but references to it remain (samba-tool dbcheck): {tail(out or err)}")
    return {"state": "removed", "set_aside": [], "seconds": round(time.monotonic() - started, 1), "changed": True}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["restore", "remove_dead"]},
            "realm": {"type": "str", "required": True},
            "src": {"type": "path"},
            "sha256": {"type": "str"},
            "server_name": {"type": "str"},
            "stamp": {"type": "str"},
            "name": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if os.geteuid() != 0:
        module.fail_json(msg="provision_restore_dc must run as root (become: true)")
    if not REALM.fullmatch(params["realm"]):
        module.fail_json(msg=f"realm {params['realm']!r} is not a DNS name")
    os.umask(0o022)
    try:
        result = restore(module, params) if params["action"] == "restore" else remove_dead(module, params)
    except Failed as exc:
        module.fail_json(msg=str(exc), set_aside=[])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
