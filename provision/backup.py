"""``provision backup``: what each host's data is, backed up through playbooks/backup.yml, kept
on the controller with a manifest.

What is backed up, per role (the plan is made here, from the model, and reaches the
hosts as ``!unsafe`` data):

- the first DC: the domain, with ``samba-tool domain backup offline`` (the directory with
  its secrets, SYSVOL and its NT ACLs; no credentials needed, the DC keeps serving);
- file, mail and database servers (winbind members): their join state, the machine
  account's secrets and the idmap database (``/var/lib/samba`` without caches, the keytab);
- file servers and peers: each share's files with owners, POSIX ACLs and every extended
  attribute (``security.NTACL`` included; see the module provision_backup);
- peers: the numbers of their local users and groups first (the archives hold owners by
  number, and the apply would number accounts made again in the spec's order), then their
  Samba password database (``/var/lib/samba/private``) and the role's record of the accounts
  it made (accounts the restore makes again stay the role's to delete);
- mail servers: the mailboxes (``/var/vmail``);
- database servers: the roles (``pg_dumpall --globals-only``) and each database of the
  spec (``pg_dump -Fc``).

Workstations hold no data of the network: they keep working without a rejoin.

A backup is ``DIR/NETWORK-YYYYMMDDTHHMMSSZ/`` (0700): ``HOST/ITEM.*`` (0600) and
``manifest.json`` (what, from where, when, sizes, SHA-256; nothing secret). A backup
without a manifest did not finish and is removed: it may hold the domain's secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provision import changes, paths, runner
from provision.errors import EXIT_APPLY_FAILED, ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.results import Check, Progress, RunResult

FORMAT = "provision-backup"
VERSION = 1
MANIFEST = "manifest.json"
# playbooks/roles/mail_server/defaults/main.yml: mail_server_mail_dir
MAIL_DIR = "/var/vmail"
# playbooks/roles/samba_workgroup/defaults/main.yml: samba_workgroup_state_file - which local
# accounts the role made (and so deletes again when the spec drops them; one it finds is adopted).
WORKGROUP_STATE = "/var/lib/provision/samba_workgroup.json"
# Caches winbind rebuilds by itself, and sockets and locks: not data.
SAMBA_EXCLUDES = ("*cache*.tdb", "/var/lib/samba/lock", "/var/lib/samba/private/msg.sock", "*.pid")


class BackupError(ProvisionError):
    """The backup did not complete (what is missing is in the message; nothing partial is kept)."""

    exit_code = EXIT_APPLY_FAILED


@dataclass(frozen=True)
class Item:
    """One file a host makes: an item of the provision_backup module."""

    name: str
    kind: str  # tar, samba_domain, pg_dump, pg_globals, accounts
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    database: str | None = None
    missing_ok: bool = False
    users: tuple[str, ...] = ()  # accounts: the local users whose numbers are kept
    groups: tuple[str, ...] = ()  # accounts: the local groups whose numbers are kept

    def holds(self) -> list[str]:
        """What the manifest says the item holds."""
        if self.kind == "accounts":
            return [f"user {u}" for u in self.users] + [f"group {g}" for g in self.groups]
        return list(self.paths) or ([self.database] if self.database else [])

    def module_args(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.paths:
            out["paths"] = list(self.paths)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        if self.database is not None:
            out["database"] = self.database
        if self.missing_ok:
            out["missing_ok"] = True
        if self.users:
            out["users"] = list(self.users)
        if self.groups:
            out["groups"] = list(self.groups)
        return out


def _share_items(host: Host) -> list[Item]:
    return [Item(f"share-{s.name.lower()}", "tar", (s.path,)) for s in host.shares]


def _accounts_item(network: Network, host: Host) -> list[Item]:
    """The accounts item of a peer: the users the roles' planner gives it an account, their
    personal groups, and every group of the spec (the apply makes each on every peer)."""
    users = sorted(changes.peer_accounts(network).get(host.name, ()))
    groups = sorted({g.name for g in network.groups} | set(users))
    return [Item("accounts", "accounts", users=tuple(users), groups=tuple(groups))] if users or groups else []


def host_items(network: Network, host: Host) -> list[Item]:
    """What ``host`` backs up (empty: nothing of the network's lives there)."""
    items: list[Item] = []
    if host.role is Role.DOMAIN_CONTROLLER:
        # One DC holds the whole directory; the others are rebuilt by joining it.
        if network.domain is not None and network.domain.dcs and host.name == network.domain.dcs[0]:
            items.append(Item("domain", "samba_domain"))
        return items
    if host.role in (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER):
        items.append(Item("join-state", "tar", ("/var/lib/samba", "/etc/krb5.keytab"), SAMBA_EXCLUDES, missing_ok=True))
    if host.role is Role.PEER:
        items += _accounts_item(network, host)  # first: the restore makes the owners before the files
        items.append(Item("passdb", "tar", ("/var/lib/samba/private",), SAMBA_EXCLUDES))
        items.append(Item("workgroup-state", "tar", (WORKGROUP_STATE,), missing_ok=True))
    if host.role in (Role.PEER, Role.FILE_SERVER):
        items += _share_items(host)
        if host.homes:
            items.append(Item("homes", "tar", ("/home",), missing_ok=True))
    if host.role is Role.MAIL_SERVER:
        items.append(Item("mailboxes", "tar", (MAIL_DIR,), missing_ok=True))
    if host.role is Role.DATABASE_SERVER:
        items.append(Item("pg-globals", "pg_globals"))
        items += [Item(f"db-{d.name}", "pg_dump", database=d.name) for d in host.databases]
    return items


def plan(network: Network, hosts: list[Host] | None = None) -> dict[str, list[Item]]:
    """Host name -> its items, for the hosts that hold data."""
    chosen = network.hosts if hosts is None else hosts
    out = {h.name: host_items(network, h) for h in chosen}
    return {name: items for name, items in out.items() if items}


def require_plan(network: Network, hosts: list[Host] | None = None) -> dict[str, list[Item]]:
    """The plan, or BackupError when none of ``hosts`` holds data (before anything is contacted)."""
    planned = plan(network, hosts)
    if not planned:
        raise BackupError("none of these hosts holds data of the network (workstations need no backup)")
    return planned


def default_dir(network: Network) -> Path:
    """Where backups are kept unless -o says otherwise: policies.backup.directory, else beside the
    network's other state."""
    chosen = network.policies.backup.directory
    return Path(chosen) if chosen else paths.state_dir(network) / "backups"


def created(folder: Path) -> datetime | None:
    """When a backup folder was made, from its name (NETWORK-YYYYMMDDTHHMMSSZ)."""
    try:
        return datetime.strptime(folder.name.rsplit("-", 1)[-1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def age_check(network: Network, root: Path | None = None, now: datetime | None = None) -> Check | None:
    """verify's check of policies.backup.max_age: the newest complete backup is younger (None when
    the spec sets no maximum age)."""
    limit = network.policies.backup.max_age_hours
    if limit is None:
        return None
    root = root or default_dir(network)
    now = now or datetime.now(UTC)
    name = "backup age"
    found = [(when, p) for p in backups(root, network) if (when := created(p)) is not None]
    if not found:
        return Check("controller", name, "fail", f"no complete backup of '{network.name}' in {root}")
    when, newest = max(found)
    hours = (now - when).total_seconds() / 3600
    detail = f"newest {newest.name} is {hours:.1f} h old (policies.backup.max_age {limit} h)"
    return Check("controller", name, "fail" if hours > limit else "pass", detail)


@dataclass
class BackupResult:
    folder: Path
    run: RunResult
    manifest: dict[str, Any] = field(default_factory=dict)
    removed: list[Path] = field(default_factory=list)  # older backups retention removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "manifest": self.manifest,
            "removed": [str(p) for p in self.removed],
            "run": self.run.to_dict(),
        }


def sha256(path: Path) -> str:
    """The hex SHA-256 of a backup file (the manifest records it; restore checks it)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _private(folder: Path) -> None:
    """Fetched files come with the controller's umask: make the backup root's alone."""
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            (Path(root) / d).chmod(0o700)
        for f in files:
            (Path(root) / f).chmod(0o600)
    folder.chmod(0o700)


def manifest(network: Network, folder: Path, planned: dict[str, list[Item]], seconds: float) -> dict[str, Any]:
    """What the backup holds, checked: every planned file fetched, its SHA-256 the host's."""
    hosts: dict[str, Any] = {}
    problems: list[str] = []
    total = 0
    for name, items in planned.items():
        index = folder / name / "files.json"
        try:
            made = {f["name"]: f for f in json.loads(index.read_text())}
        except (OSError, ValueError, TypeError, KeyError):
            problems.append(f"{name}: no list of the files it made ({index.name})")
            continue
        entries = []
        for item in items:
            found = made.get(item.name)
            local = folder / name / Path(str(found["file"])).name if found else None
            if found is None or local is None or not local.is_file():
                problems.append(f"{name}: {item.name} was not fetched")
                continue
            digest = sha256(local)
            if digest != found.get("sha256"):
                problems.append(f"{name}: {item.name}: checksum differs from the host's")
                continue
            size = local.stat().st_size
            total += size
            entries.append(
                {
                    "name": item.name,
                    "kind": item.kind,
                    "file": f"{name}/{local.name}",
                    "size": size,
                    "sha256": digest,
                    "seconds": found.get("seconds"),
                    "holds": item.holds(),
                }
            )
        index.unlink(missing_ok=True)
        hosts[name] = {"role": network.host(name).role.value, "address": network.host(name).address, "items": entries}
    if problems:
        raise BackupError("backup incomplete: " + "; ".join(problems))
    return {
        "format": FORMAT,
        "version": VERSION,
        "network": network.name,
        "mode": network.mode.value,
        "realm": network.domain.realm if network.mode is Mode.DOMAIN and network.domain else None,
        "created": folder.name.rsplit("-", 1)[-1],
        "source": str(Path(network.source).resolve()) if network.source else "",
        "seconds": round(seconds, 1),
        "bytes": total,
        "hosts": hosts,
    }


def backups(root: Path, network: Network) -> list[Path]:
    """The complete backups of ``network`` under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{network.name}-*") if p.is_dir() and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: p.name)


def prune(root: Path, network: Network, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest complete backups; returns what was removed."""
    old = backups(root, network)[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p)
    return old


def run(
    network: Network,
    root: Path,
    hosts: list[Host] | None = None,
    keep: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    items: dict[str, list[Item]] | None = None,
) -> BackupResult:
    """Back up ``hosts`` (default: all that hold data) into a new folder under ``root``; ``items``
    chooses fewer items per host than the spec backs up (a migration's copy of the shares it moves)."""
    planned = require_plan(network, hosts) if items is None else {h: list(i) for h, i in items.items() if i}
    if not planned:
        raise BackupError("nothing to back up")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = root / f"{network.name}-{stamp}"
    folder.mkdir(mode=0o700)
    options = runner.RunOptions(
        playbook="backup.yml",
        limit=list(planned),
        with_secrets=False,
        variables={
            "provision_backup_plan": {h: [i.module_args() for i in items] for h, items in planned.items()},
            "provision_backup_stamp": stamp,
            "provision_backup_dest": str(folder),
        },
    )
    start = time.monotonic()
    done = False
    try:
        result = runner.run(network, options, progress=progress)
        out = BackupResult(folder, result)
        if result.ok:
            _private(folder)
            out.manifest = manifest(network, folder, planned, time.monotonic() - start)
            (folder / MANIFEST).write_text(json.dumps(out.manifest, indent=1) + "\n")
            (folder / MANIFEST).chmod(0o600)
            done = True
            if keep:
                out.removed = prune(root, network, keep)
        return out
    finally:
        if not done:  # a partial backup may hold the domain's secrets and restores nothing
            shutil.rmtree(folder, ignore_errors=True)
