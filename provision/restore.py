"""``provision restore``: the right recovery for what was lost, chosen from the topology.

A backup (provision/backup.py) is checked before anything is contacted: its manifest must be of
this network, mode and realm, and every file must have the size and SHA-256 the manifest says.
What the backup may put back on a host, and where, comes from the spec (backup.host_items), never
from the backup itself: an archive that strays outside its paths is refused on the host.

Then every host that holds data is looked at over SSH (``probe``): a DC holds the domain or not,
a member server holds its join state or not, a peer its password database or not. ``decide``
chooses per host:

- DCs: when any DC still holds the domain, a lost DC is removed from the directory of a survivor
  (its NTDS settings, accounts, DNS records; FSMO roles it held move to the survivor) and joins
  again during the apply: never a restore, which would roll the directory back. Only when every
  DC is lost, the backup is restored onto the first DC (samba-tool domain backup restore) and
  the others join it.
- A lost file, mail or database server gets its join state back (so it needs no rejoin and its
  ID mappings stay), its shares with owners, POSIX ACLs and NT ACLs, its mailboxes, and after
  the apply its databases (only into empty ones).
- A lost peer gets its local users and groups made again with the numbers they had (before its
  files, whose owners are numbers; the names are the spec's, the numbers the backup's), then its
  password database, the role's record of the accounts it made, and its shares back.
- Workstations hold no data: they keep working, and a lost one is joined by the apply.

Hosts that still hold their data are not touched by the first phase. The run is: the files back
(playbooks/restore.yml), the spec applied (site.yml, which rebuilds everything else), the
databases back (restore.yml again, phase databases).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko

from provision import backup, preflight, runner
from provision.errors import EXIT_APPLY_FAILED, EXIT_INVALID_SPEC, ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.results import Progress, RunResult

HOLDS = "holds"
LOST = "lost"
FOREIGN = "foreign"
PHASE_FILES = "files"
PHASE_DATABASES = "databases"
DB_KINDS = frozenset({"pg_dump", "pg_globals"})
MEMBER_SERVERS = (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER)


class BackupInvalid(ProvisionError):
    """The backup folder is not a whole, unaltered backup of this network (bad input: exit 2)."""

    exit_code = EXIT_INVALID_SPEC


class RestoreError(ProvisionError):
    """The restore cannot be done or did not complete."""

    exit_code = EXIT_APPLY_FAILED


@dataclass(frozen=True)
class File:
    """One file of the backup, checked, and where the spec allows it to go."""

    host: str
    name: str
    kind: str
    path: Path  # on the controller
    sha256: str
    size: int
    paths: tuple[str, ...] = ()  # tar: what the spec backs up under this name
    database: str | None = None
    users: tuple[str, ...] = ()  # accounts: the users the spec lets it make (numbers come from the file)
    groups: tuple[str, ...] = ()  # accounts: the groups the spec lets it make

    def module_item(self) -> dict[str, Any]:
        """The item of provision_restore_files (the file is copied as its plain name)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "file": self.path.name, "sha256": self.sha256}
        if self.kind == "tar":
            out["paths"] = list(self.paths)
        if self.database is not None:
            out["database"] = self.database
        if self.kind == "accounts":
            out["users"] = list(self.users)
            out["groups"] = list(self.groups)
        return out


@dataclass(frozen=True)
class Backup:
    folder: Path
    manifest: dict[str, Any]
    files: dict[str, tuple[File, ...]]  # host -> its files the spec still knows
    notes: tuple[str, ...] = ()  # what the backup and the spec disagree on

    @property
    def created(self) -> datetime | None:
        return backup.created(self.folder)

    def file(self, host: str, name: str) -> File | None:
        return next((f for f in self.files.get(host, ()) if f.name == name), None)


def open_backup(network: Network, folder: Path) -> Backup:
    """The backup in ``folder``, checked whole against its manifest and the spec; every problem at once."""
    problems: list[str] = []
    mpath = folder / backup.MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise BackupInvalid(f"{folder}: no {backup.MANIFEST}; not a backup, or one that did not finish") from None
    except (OSError, ValueError) as exc:
        raise BackupInvalid(f"{mpath}: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("hosts"), dict):
        raise BackupInvalid(f"{mpath}: not a provision backup manifest")
    if manifest.get("format") != backup.FORMAT or manifest.get("version") != backup.VERSION:
        problems.append(
            f"format {manifest.get('format')!r} version {manifest.get('version')!r} "
            f"(this provision reads {backup.FORMAT} {backup.VERSION})"
        )
    if manifest.get("network") != network.name:
        problems.append(f"it is a backup of network {manifest.get('network')!r}, the spec is {network.name!r}")
    if manifest.get("mode") != network.mode.value:
        problems.append(f"it is a backup of a {manifest.get('mode')} network, the spec is a {network.mode.value}")
    realm = network.domain.realm if network.mode is Mode.DOMAIN and network.domain else None
    if manifest.get("realm") != realm:
        problems.append(f"it is a backup of realm {manifest.get('realm')!r}, the spec's is {realm!r}")
    files: dict[str, tuple[File, ...]] = {}
    notes: list[str] = []
    names = {h.name for h in network.hosts}
    for host, entry in manifest["hosts"].items():
        if host not in names:
            notes.append(f"{host}: in the backup, no longer in the spec; not restored")
            continue
        spec_host = network.host(host)
        if not isinstance(entry, dict) or entry.get("role") != spec_host.role.value:
            role = entry.get("role") if isinstance(entry, dict) else None
            problems.append(f"{host}: was a {role} in the backup, the spec says {spec_host.role.value}")
            continue
        expected = {i.name: i for i in backup.host_items(network, spec_host)}
        found: list[File] = []
        for item in entry.get("items") or []:
            checked = _check_item(folder, host, item, expected, problems, notes)
            if checked is not None:
                found.append(checked)
        for missing in sorted(set(expected) - {f.name for f in found}):
            notes.append(f"{host}: {missing} is not in the backup (new since?); nothing to put back")
        files[host] = tuple(found)
    if problems:
        raise BackupInvalid(f"{folder}: cannot restore from this backup: " + "; ".join(problems[:20]))
    return Backup(folder, manifest, files, tuple(notes))


def _check_item(
    folder: Path,
    host: str,
    item: Any,
    expected: dict[str, backup.Item],
    problems: list[str],
    notes: list[str],
) -> File | None:
    """One manifest entry: a file of this host's folder, as big and with the digest the manifest says."""
    if not isinstance(item, dict):
        problems.append(f"{host}: an item is not an object")
        return None
    name, kind, rel = item.get("name"), item.get("kind"), item.get("file")
    if not isinstance(name, str) or not isinstance(rel, str):
        problems.append(f"{host}: an item has no name or file")
        return None
    parts = PurePosixPath(rel).parts
    if len(parts) != 2 or parts[0] != host or parts[1] in (".", "..") or rel.startswith("/"):
        problems.append(f"{host}: {name}: file {rel!r} is not a file of the host's folder")
        return None
    spec_item = expected.get(name)
    if spec_item is None:
        notes.append(f"{host}: {name} is in the backup, no longer in the spec; not restored")
        return None
    if kind != spec_item.kind:
        problems.append(f"{host}: {name} is a {kind} in the backup, the spec backs up a {spec_item.kind}")
        return None
    path = folder / host / parts[1]
    if path.is_symlink() or not path.is_file():
        problems.append(f"{host}: {name}: {path} is missing")
        return None
    size = path.stat().st_size
    if size != item.get("size"):
        problems.append(f"{host}: {name}: {path} has {size} bytes, the manifest says {item.get('size')}")
        return None
    digest = backup.sha256(path)
    if digest != item.get("sha256"):
        problems.append(f"{host}: {name}: {path} does not have the SHA-256 the manifest records (altered or damaged)")
        return None
    return File(
        host,
        name,
        spec_item.kind,
        path,
        digest,
        size,
        spec_item.paths,
        spec_item.database,
        spec_item.users,
        spec_item.groups,
    )


# --- what each host still holds -------------------------------------------------------------

PROBE = r"""
sam=/var/lib/samba/private/sam.ldb
nc=""
if [ -f "$sam" ] && command -v ldbsearch >/dev/null 2>&1; then
  nc=$(ldbsearch -H "$sam" -s base -b '' defaultNamingContext 2>/dev/null | sed -n 's/^defaultNamingContext: //p')
fi
[ -f "$sam" ] && echo "sam ${nc:-unreadable}" || echo "sam none"
sec=/var/lib/samba/private/secrets.tdb
if [ -n "$DOMAIN" ] && [ -f "$sec" ] && grep -a -q -F "SECRETS/MACHINE_PASSWORD/$DOMAIN" "$sec"; then
  echo "joined yes"
else
  echo "joined no"
fi
[ -s /var/lib/samba/private/passdb.tdb ] && echo "passdb yes" || echo "passdb no"
"""


@dataclass(frozen=True)
class HostState:
    host: str
    status: str  # holds, lost, foreign
    detail: str


def probe_script(network: Network) -> str:
    """PROBE run as root (sudo -n unless the login is root), the domain name as its only input."""
    domain = network.domain.netbios.upper() if network.mode is Mode.DOMAIN and network.domain else ""
    inner = f"DOMAIN={shlex.quote(domain)}; export DOMAIN; {PROBE}"
    return f'if [ "$(id -u)" = 0 ]; then sh -c {shlex.quote(inner)}; else sudo -n sh -c {shlex.quote(inner)}; fi'


def judge(network: Network, host: Host, output: str) -> HostState:
    """What ``host`` still holds, from the probe's output."""
    facts = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    if host.role is Role.DOMAIN_CONTROLLER:
        nc = facts.get("sam", "none")
        want = backup_base_dn(network)
        if nc == "none":
            return HostState(host.name, LOST, "no directory database")
        if nc.lower() == want.lower():
            return HostState(host.name, HOLDS, f"holds {want}")
        return HostState(host.name, FOREIGN, f"holds {nc}, not {want}: left alone")
    if host.role in MEMBER_SERVERS:
        if facts.get("joined") == "yes":
            return HostState(host.name, HOLDS, "joined (machine account secret present)")
        return HostState(host.name, LOST, "no join state")
    if host.role is Role.PEER:
        if facts.get("passdb") == "yes":
            return HostState(host.name, HOLDS, "password database present")
        return HostState(host.name, LOST, "no password database")
    return HostState(host.name, HOLDS, "holds no data")


def backup_base_dn(network: Network) -> str:
    realm = network.domain.realm if network.domain else ""
    return ",".join(f"DC={p}" for p in realm.lower().split("."))


def probe(network: Network, hosts: list[Host], timeout: float = 30.0) -> dict[str, HostState]:
    """Each host's state over SSH (hosts preflight accepted), concurrently."""
    script = probe_script(network)

    def one(host: Host) -> HostState:
        try:
            client = preflight.open_client(network, host.address, host.connection)
        except (OSError, paramiko.SSHException) as exc:
            raise RestoreError(f"{host.name}: cannot log in to look at it: {exc}") from None
        try:
            _, stdout, _ = client.exec_command(script, timeout=timeout)
            out = stdout.read().decode(errors="replace")
            if stdout.channel.recv_exit_status() != 0:
                raise RestoreError(f"{host.name}: looking at its Samba state failed")
            return judge(network, host, out)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        states = list(pool.map(one, hosts))
    return {s.host: s for s in states}


def hosts_to_probe(network: Network, found: Backup) -> list[Host]:
    """The DCs and every host the backup holds data of."""
    return [h for h in network.hosts if h.role is Role.DOMAIN_CONTROLLER or h.name in found.files]


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    host: str
    role: str
    state: str
    action: str
    files: tuple[File, ...] = ()  # put back before the apply
    databases: tuple[File, ...] = ()  # put back after it
    domain: File | None = None  # restored onto this DC
    remove_dcs: tuple[str, ...] = ()  # lost DCs this surviving DC removes from its directory


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    join_source: str | None = None  # the DC lost DCs join (when not the first)
    notes: tuple[str, ...] = ()

    @property
    def anything(self) -> bool:
        return any(s.files or s.databases or s.domain or s.remove_dcs or s.state == LOST for s in self.steps)

    @property
    def rolls_back(self) -> bool:
        """Whether the directory goes back to the time of the backup."""
        return any(s.domain is not None for s in self.steps)

    def phase_vars(self, phase: str) -> dict[str, Any]:
        """The restore.yml plan of one phase: host -> what it does."""
        out: dict[str, Any] = {}
        for s in self.steps:
            chosen = s.databases if phase == PHASE_DATABASES else s.files
            entry: dict[str, Any] = {}
            if phase == PHASE_FILES and s.remove_dcs:
                entry["remove_dcs"] = [d.upper() for d in s.remove_dcs]
            if phase == PHASE_FILES and s.domain is not None:
                entry["domain"] = {"file": s.domain.path.name, "sha256": s.domain.sha256, "server_name": s.host}
            if chosen:
                entry["files"] = [f.module_item() for f in chosen]
            if entry:
                entry["sources"] = sorted(
                    {str(f.path) for f in chosen}
                    | ({str(s.domain.path)} if entry.get("domain") and s.domain else set())
                )
                out[s.host] = entry
        return out


def decide(network: Network, found: Backup, states: dict[str, HostState]) -> Plan:
    """What to do on each host, from what it still holds (see the module docstring)."""
    foreign = [s for s in states.values() if s.status == FOREIGN]
    if foreign:
        raise RestoreError("; ".join(f"{s.host}: {s.detail}" for s in foreign))
    steps: list[Step] = []
    notes: list[str] = list(found.notes)
    dcs = [h for h in network.hosts if h.role is Role.DOMAIN_CONTROLLER]
    alive = [h for h in dcs if states[h.name].status == HOLDS]
    lost_dcs = [h for h in dcs if states[h.name].status == LOST]
    join_source: str | None = None
    if dcs and lost_dcs and alive:
        survivor = alive[0]
        if dcs[0] in lost_dcs:
            join_source = survivor.name
        for h in dcs:
            st = states[h.name]
            if h in lost_dcs:
                steps.append(
                    Step(
                        h.name,
                        h.role.value,
                        st.status,
                        f"removed from the directory of {survivor.name}, then joins it again (no rollback)",
                    )
                )
            elif h == survivor:
                steps.append(
                    Step(
                        h.name,
                        h.role.value,
                        st.status,
                        f"removes {', '.join(d.name for d in lost_dcs)} from its directory",
                        remove_dcs=tuple(d.name for d in lost_dcs),
                    )
                )
            else:
                steps.append(Step(h.name, h.role.value, st.status, "untouched"))
    elif dcs and lost_dcs:
        first = dcs[0]
        domain = found.file(first.name, "domain")
        if domain is None:
            raise RestoreError(f"every DC is lost, and the backup holds no domain backup of {first.name}")
        when = found.created.strftime("%Y-%m-%d %H:%M UTC") if found.created else "the backup"
        steps.append(
            Step(
                first.name,
                first.role.value,
                LOST,
                f"the domain restored from the backup (every DC is lost): the directory goes back to {when}",
                domain=domain,
            )
        )
        steps += [Step(h.name, h.role.value, LOST, f"joins {first.name} again") for h in dcs[1:]]
    else:
        steps += [Step(h.name, h.role.value, states[h.name].status, "untouched") for h in dcs]
    for h in network.hosts:
        if h.role is Role.DOMAIN_CONTROLLER:
            continue
        seen = states.get(h.name)
        files = found.files.get(h.name, ())
        if seen is None:
            steps.append(
                Step(
                    h.name,
                    h.role.value,
                    "-",
                    "untouched (holds no data)" if h.role is Role.WORKSTATION else "untouched (nothing in the backup)",
                )
            )
            continue
        if seen.status == HOLDS:
            steps.append(Step(h.name, h.role.value, seen.status, "untouched"))
            continue
        # The accounts first: the archives after them hold their owners by number.
        before = tuple(sorted((f for f in files if f.kind not in DB_KINDS), key=lambda f: f.kind != "accounts"))
        after = tuple(f for f in files if f.kind in DB_KINDS)
        what = ", ".join(f.name for f in files) or "nothing in the backup"
        steps.append(
            Step(
                h.name,
                h.role.value,
                seen.status,
                f"put back: {what}" + ("; no rejoin" if any(f.name == "join-state" for f in files) else ""),
                files=before,
                databases=after,
            )
        )
        if (
            h.role is Role.PEER
            and any(f.name.startswith("share-") or f.name == "homes" for f in files)
            and not any(f.kind == "accounts" for f in files)
            and any(i.kind == "accounts" for i in backup.host_items(network, h))
        ):
            # A backup made before the accounts item: the apply numbers the accounts in the spec's order.
            notes.append(
                f"{h.name}: the backup holds no numbers of its local accounts (made before they were backed up); "
                "its files come back with the user and group numbers they had, so if users were added since "
                "the peer was first set up, check the owners (ls -ln) before users work there"
            )
    return Plan(tuple(steps), join_source, tuple(notes))


def plan_text(found: Backup, plan: Plan) -> str:
    """The plan as the operator reads it before anything happens."""
    from provision import report

    rows = [(s.host, s.role, s.state, s.action) for s in plan.steps]
    lines = [f"restore from {found.folder.name} ({found.manifest.get('bytes', 0):,} bytes)"]
    lines.append(report.table(("host", "role", "state", "what happens"), rows))
    lines += [f"note: {n}" for n in plan.notes]
    if plan.anything:
        lines.append(
            "then the spec is applied (site.yml) to every host"
            + ("; then the databases are put back" if any(s.databases for s in plan.steps) else "")
        )
    return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    plan: Plan
    runs: dict[str, RunResult] = field(default_factory=dict)  # phase -> its run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "join_source": self.plan.join_source,
            "steps": [{"host": s.host, "role": s.role, "state": s.state, "action": s.action} for s in self.plan.steps],
            "runs": {phase: r.to_dict() for phase, r in self.runs.items()},
        }

    def raise_for_status(self) -> None:
        for phase, r in self.runs.items():
            if not r.ok:
                failed = ", ".join(r.failed_hosts()) or r.status
                raise RestoreError(f"the restore failed in phase {phase} on: {failed}")


def _files_run(
    network: Network, plan: Plan, phase: str, stamp: str, progress: Callable[[Progress], None] | None
) -> RunResult | None:
    hosts = plan.phase_vars(phase)
    if not hosts:
        return None
    return put_back(network, hosts, phase, stamp, progress)


def put_back(
    network: Network,
    hosts: dict[str, Any],
    phase: str,
    stamp: str,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """restore.yml on ``hosts`` (host -> its entry: sources, files, ...), phase ``phase``."""
    realm = network.domain.realm if network.domain else ""
    options = runner.RunOptions(
        playbook="restore.yml",
        limit=list(hosts),
        with_secrets=False,
        variables={
            "provision_restore_plan": hosts,
            "provision_restore_phase": phase,
            "provision_restore_stamp": stamp,
            "provision_restore_realm": realm,
        },
    )
    return runner.run(network, options, progress=progress)


def run(network: Network, plan: Plan, progress: Callable[[Progress], None] | None = None) -> RestoreResult:
    """Files back, the spec applied, databases back; stops at the first phase that fails."""
    start = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RestoreResult(plan)
    try:
        first = _files_run(network, plan, PHASE_FILES, stamp, progress)
        if first is not None:
            out.runs[PHASE_FILES] = first
            if not first.ok:
                return out
        variables = {"provision_domain_join_source": plan.join_source} if plan.join_source else {}
        applied = runner.run(network, runner.RunOptions(variables=variables), progress=progress)
        out.runs["apply"] = applied
        if not applied.ok:
            return out
        last = _files_run(network, plan, PHASE_DATABASES, stamp, progress)
        if last is not None:
            out.runs[PHASE_DATABASES] = last
        return out
    finally:
        out.seconds = time.monotonic() - start
