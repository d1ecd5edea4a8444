"""A workgroup grown into a domain (issue 20): what the migration does to every user, group, share and host.

``provision grow`` writes the domain spec; ``provision plan NEW-SPEC --from-workgroup SPEC`` shows,
before anything happens, the fate of each object of the workgroup: users and groups move into the
directory (users keep their passwords: the NT hashes of the peers' password databases are carried,
the newest where peers disagree), each share stays where it is or moves to the file server that
now carries it (owners mapped from the peers' local IDs to the domain's by name, ACLs rewritten for
the domain's groups), each peer joins the domain, and the peers' local accounts are retired
(disabled, never deleted; homes kept). Nothing of the workgroup is deleted.

``run`` performs it (``provision apply NEW-SPEC --from-workgroup SPEC``), phase by phase, each recorded
on this controller (``migration.json`` beside the record of the last apply) so that running the
command again resumes after the last phase that completed:

1. ``backup``: a backup of the workgroup (``provision backup``), the way back; its ``accounts`` files
   are also where the peers' local user and group numbers are read (``ids``, kept in the record).
2. ``dcs``: the domain spec applied to the domain controllers only: the domain, its users and groups.
3. ``accounts`` (playbooks/migrate.yml): each peer's Samba password hashes are read and the newest of
   every user is written into the directory, inside one play run (never logged, never on disk here);
   then the peers' local accounts are disabled and renamed out of the domain's way.
4. ``copy``: the shares (and home folders) the domain spec serves from another host than their peer
   (``provision grow --file-server``) are copied there: taken from the peer now that its Samba has
   stopped (a backup of just those folders, owners by number, ACLs and extended attributes), put
   on the new host at the same paths by the restore role. The peer's copy stays.
5. ``apply``: the whole domain spec: the peers join as file servers and workstations.
6. ``owners`` (playbooks/migrate.yml): the shares' and homes' files, in place and copied, go from the
   old local numbers (those of the peer they came from) to the domain's users and groups, by name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import changes, paths
from provision.errors import EXIT_APPLY_FAILED, EXIT_INVALID_SPEC, ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.results import Progress, RunResult


class MigrationError(ProvisionError):
    """The two specs are not a workgroup and the domain grown from it."""

    exit_code = EXIT_INVALID_SPEC


class MigrationFailed(ProvisionError):
    """A phase of the migration failed; running the command again resumes there."""

    exit_code = EXIT_APPLY_FAILED


@dataclass(frozen=True)
class Step:
    kind: str  # user, group, share, printer, host
    name: str
    where: str  # host(s), or "directory"
    action: str


@dataclass(frozen=True)
class Migration:
    workgroup: str
    domain: str
    realm: str
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workgroup": self.workgroup,
            "domain": self.domain,
            "realm": self.realm,
            "steps": [{"kind": s.kind, "name": s.name, "where": s.where, "action": s.action} for s in self.steps],
        }

    def text(self) -> str:
        from provision import report

        rows = [(s.kind, s.name, s.where, s.action) for s in self.steps]
        head = f"migration of workgroup '{self.workgroup}' into the domain {self.realm} ('{self.domain}'):"
        tail = "nothing of the workgroup is deleted: local accounts are disabled, homes and files stay"
        return "\n".join([head, report.table(("kind", "name", "where", "what happens"), rows), tail])


def _names(items: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(items)) or "-"


def _share_homes(domain: Network) -> dict[str, Host]:
    """Share name -> the domain host that carries it."""
    return {s.name.lower(): h for h in domain.hosts for s in h.shares}


def plan(workgroup: Network, domain: Network) -> Migration:
    """What migrating ``workgroup`` into ``domain`` does, object by object."""
    if workgroup.mode is not Mode.WORKGROUP:
        raise MigrationError(f"--from-workgroup names a {workgroup.mode.value} spec, not a workgroup")
    if domain.mode is not Mode.DOMAIN or domain.domain is None:
        raise MigrationError("the spec to migrate into is not a domain spec (provision grow writes one)")
    peers = [h for h in workgroup.hosts if h.role is Role.PEER]
    missing = [p.name for p in peers if p.name not in {h.name for h in domain.hosts}]
    if missing:
        raise MigrationError(
            f"peer(s) {', '.join(missing)} of the workgroup are not hosts of the domain spec: "
            "every peer must stay (as a workstation or a file server); remove it from the workgroup first"
        )
    accounts = changes.peer_accounts(workgroup)
    holders: dict[str, set[str]] = {}
    for peer_name, names in accounts.items():
        for name in names:
            holders.setdefault(name, set()).add(peer_name)
    steps: list[Step] = []
    dom_users = {u.name for u in domain.users}
    for u in workgroup.users:
        held = holders.get(u.name, set())
        if u.name not in dom_users:
            steps.append(Step("user", u.name, _names(held), "not in the domain spec: local accounts stay, disabled"))
            continue
        if held:
            how = f"password carried from the Samba database of {_names(held)}"
            how += " (the most recently set where they differ)" if len(held) > 1 else ""
            how += f"; local account retired on {_names(held)} (disabled, home kept)"
        else:
            how = "no peer has an account: created with the spec's password"
        steps.append(Step("user", u.name, "directory", f"directory user; {how}"))
    steps += [
        Step("user", u.name, "directory", "new directory user (the spec's password)")
        for u in domain.users
        if u.name not in {w.name for w in workgroup.users}
    ]
    dom_groups = {g.name for g in domain.groups}
    for g in workgroup.groups:
        action = (
            "directory group, same members" if g.name in dom_groups else "not in the domain spec: local groups stay"
        )
        steps.append(Step("group", g.name, "directory" if g.name in dom_groups else "peers", action))
    carried = _share_homes(domain)
    for peer in peers:
        for s in peer.shares:
            target = carried.get(s.name.lower())
            if target is None:
                action = f"no longer shared; {s.path} stays on {peer.name} as it is"
            elif target.name == peer.name:
                action = f"stays in {s.path}; owners mapped to the domain's users and groups by name, ACLs rewritten"
            else:
                action = (
                    f"copied to {target.name}:{_path(target, s.name)}; owners mapped by name, ACLs rewritten; "
                    f"the copy on {peer.name} stays"
                )
            steps.append(Step("share", s.name, peer.name, action))
        if peer.homes:
            target = next((h for h in domain.hosts if h.homes), None)
            where = (
                "stay"
                if target is not None and target.name == peer.name
                else (f"copied to {target.name}" if target is not None else "no longer shared")
            )
            steps.append(Step("share", "homes", peer.name, f"home directories {where}; owners mapped by name"))
        printers = {p.name.lower(): h for h in domain.hosts for p in h.printers}
        for p in peer.printers:
            target = printers.get(p.name.lower())
            if target is None:
                action = f"no longer shared; the queue stays on {peer.name}"
            elif target.name == peer.name:
                action = "stays; shared to the domain's users and groups"
            else:
                action = (
                    f"served by {target.name} (a queue to the same device); the queue on {peer.name} stays, unshared"
                )
            steps.append(Step("printer", p.name, peer.name, action))
    for h in domain.hosts:
        before = workgroup.host(h.name) if h.name in {w.name for w in workgroup.hosts} else None
        if before is None:
            steps.append(Step("host", h.name, h.address, f"new {h.role.value.replace('_', ' ')}"))
            continue
        users = accounts.get(h.name, frozenset())
        action = f"peer joins the domain as a {h.role.value.replace('_', ' ')}"
        if h.role is Role.WORKSTATION:
            action += f" ({h.client})"
        action += f"; local accounts {_names(users)} retired" if users else ""
        steps.append(Step("host", h.name, h.address, action))
    return Migration(workgroup.name, domain.name, domain.domain.realm, tuple(steps))


def _path(host: Host, share: str) -> str:
    return next((s.path for s in host.shares if s.name.lower() == share.lower()), "?")


# --------------------------------------------------------------------------- the run

PHASES = ("backup", "dcs", "accounts", "copy", "apply", "owners")
COPY_DIR = "migration-copy"  # beside the record: the copies on their way, removed once put
RETIRED_PREFIX = "wg-"  # the migrate role's migrate_retired_prefix
RECORD = "migration.json"
FORMAT = "provision-migration"


def _record_path(domain: Network) -> Path:
    return paths.state_dir(domain) / RECORD


def load_record(workgroup: Network, domain: Network) -> dict[str, Any]:
    """The record of this migration's completed phases (empty when it has not begun)."""
    path = _record_path(domain)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"format": FORMAT, "workgroup": workgroup.name, "realm": _realm(domain), "done": [], "ids": {}}
    except (OSError, ValueError) as exc:
        raise MigrationError(f"{path}: unreadable ({exc}); move it away to start the migration over") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MigrationError(f"{path}: not a provision migration record")
    if data.get("workgroup") != workgroup.name or data.get("realm") != _realm(domain):
        raise MigrationError(
            f"{path} records the migration of workgroup {data.get('workgroup')!r} into {data.get('realm')!r}, "
            f"not of {workgroup.name!r} into {_realm(domain)!r}"
        )
    return data


def _save(domain: Network, data: dict[str, Any]) -> None:
    """Atomically, 0600 (the record holds numbers and names, never a secret)."""
    target = _record_path(domain)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{RECORD}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    Path(tmp).replace(target)


def _realm(domain: Network) -> str:
    return domain.domain.realm if domain.domain else ""


@dataclass(frozen=True)
class Copy:
    """A folder of a peer that the domain spec serves from another host: copied there, same path."""

    peer: str
    target: str
    share: str | None  # None: the peer's home folders
    path: str

    @property
    def item(self) -> str:
        """The backup item that carries it (backup.host_items' name)."""
        return "homes" if self.share is None else f"share-{self.share.lower()}"

    @property
    def what(self) -> str:
        return "home folders" if self.share is None else f"share {self.share}"


def copies(workgroup: Network, domain: Network) -> list[Copy]:
    """The peers' shares and home folders that move (a share the domain spec no longer has stays
    unshared on its peer; a share that stays on its peer is not copied)."""
    carried = _share_homes(domain)
    homes = next((h.name for h in domain.hosts if h.homes), None)
    out: list[Copy] = []
    for peer in (h for h in workgroup.hosts if h.role is Role.PEER):
        for s in peer.shares:
            target = carried.get(s.name.lower())
            if target is not None and target.name != peer.name:
                out.append(Copy(peer.name, target.name, s.name, s.path))
        if peer.homes and homes is not None and homes != peer.name:
            out.append(Copy(peer.name, homes, None, "/home"))
    return out


def check_copies(workgroup: Network, domain: Network) -> list[Copy]:
    """The copies, or MigrationError naming every one that cannot be made as the specs say."""
    found = copies(workgroup, domain)
    problems: list[str] = []
    by_target: dict[str, list[str]] = {}  # the peers whose home folders go to each host
    for c in found:
        if c.share is None:
            by_target.setdefault(c.target, []).append(c.peer)
            continue
        there = next(s for s in domain.host(c.target).shares if s.name.lower() == c.share.lower())
        if there.path != c.path:
            problems.append(
                f"{c.what} moves from {c.peer} to {c.target} with another path ({c.path} -> {there.path}): "
                f"a copy keeps its path; give it {c.path} on {c.target}"
            )
    for target, peers in sorted(by_target.items()):
        if len(peers) > 1:
            problems.append(
                f"the home folders of {', '.join(peers)} would all be {target}:/home, where the same user's "
                "folders of two peers would collide; keep homes on one peer, or copy them by hand first"
            )
    if problems:
        raise MigrationError("cannot copy the shares that move: " + "; ".join(problems))
    return found


def read_ids(found: Any, peers: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per peer, the local numbers of its users and groups, and the users' shells (for a rollback),
    from the backup's ``accounts`` files."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for peer in peers:
        f = found.file(peer, "accounts")
        if f is None:
            raise MigrationError(f"the workgroup's backup {found.folder} has no account numbers of {peer}")
        data = json.loads(f.path.read_text())
        out[peer] = {
            "users": {str(n): int(e["uid"]) for n, e in data.get("users", {}).items()},
            "primary": {str(n): int(e["gid"]) for n, e in data.get("users", {}).items()},
            "groups": {str(n): int(g) for n, g in data.get("groups", {}).items()},
            "shells": {str(n): str(e.get("shell") or "/bin/sh") for n, e in data.get("users", {}).items()},
        }
    return out


def host_plan(workgroup: Network, domain: Network, ids: dict[str, Any], phase: str) -> dict[str, dict[str, Any]]:
    """migrate.yml's provision_migrate_plan for ``phase``: host -> what it does."""
    peers = [h for h in workgroup.hosts if h.role is Role.PEER]
    dom_groups = {g.name for g in domain.groups}
    accounts = changes.peer_accounts(workgroup)
    moved = copies(workgroup, domain)
    out: dict[str, dict[str, Any]] = {}
    if phase == "accounts":
        for peer in peers:
            users = sorted(accounts.get(peer.name, frozenset()))
            groups = sorted({g for u in workgroup.users if u.name in users for g in u.groups})
            out[peer.name] = {
                "export": {"users": users, "groups": []},
                "retire": {"users": users, "groups": [g for g in groups if g in dom_groups]},
                # A workstation serves nothing; a peer whose folders are copied away stops serving
                # them before the copy is taken (the apply starts a file server's Samba again).
                "stop_samba": domain.host(peer.name).role is Role.WORKSTATION
                or any(c.peer == peer.name for c in moved),
            }
        return out
    # Where each folder now lies, and the peer whose numbers its files carry.
    places: dict[tuple[str, str], set[str]] = {}
    for peer in peers:
        target = domain.host(peer.name)
        kept = [s.path for s in peer.shares if any(t.path == s.path for t in target.shares)]
        if peer.homes and target.homes:
            kept.append("/home")
        if kept:
            places.setdefault((peer.name, peer.name), set()).update(kept)
    for c in moved:
        places.setdefault((c.target, c.peer), set()).add(c.path)
    for (host, peer_name), folders in sorted(places.items()):
        owners = _owner_map(workgroup, domain, ids.get(peer_name, {}), sorted(folders))
        if owners is not None:
            out.setdefault(host, {"owners": []})["owners"].append(owners)
    return out


def _owner_map(workgroup: Network, domain: Network, mine: dict[str, Any], folders: list[str]) -> dict[str, Any] | None:
    """provision_owner_map's arguments for ``folders``, whose files carry the numbers ``mine`` of one peer."""
    dom_users = {u.name for u in domain.users}
    dom_groups = {g.name for g in domain.groups}
    private = set(mine.get("primary", {}).values())
    # The domain's accounts by their qualified names (NETBIOS\name): a local name never answers.
    nb = domain.domain.netbios if domain.domain else ""
    local_users = sorted(mine.get("users", {}).items())
    to_users: list[dict[str, Any]] = [{"from": uid, "to": f"{nb}\\{n}"} for n, uid in local_users if n in dom_users]
    # A user-private group keeps its number (now the retired wg- group's): mapping it to a
    # domain group would let that group's members in.
    known = mine.get("groups", {})
    numbered = [(n, gid) for n, gid in sorted(known.items()) if n in dom_groups and gid not in private]
    to_groups: list[dict[str, Any]] = [{"from": gid, "to": f"{nb}\\{n}"} for n, gid in numbered]
    # The peer's other groups of the spec that the backup did not number: system groups such as
    # Debian's staff (gid 50), which keep their names locally; moved by name where they exist.
    # A copy on another host carries the same numbers: Debian gives its system groups the same ones.
    used = sorted({g for u in workgroup.users if u.name in mine.get("users", {}) for g in u.groups})
    to_groups += [
        {"from_name": g, "to": f"{nb}\\{g}", "optional": True} for g in used if g in dom_groups and g not in known
    ]
    if not (to_users or to_groups):
        return None
    return {"paths": folders, "users": to_users, "groups": to_groups}


@dataclass
class MigrationResult:
    plan: Migration
    done_before: tuple[str, ...] = ()
    runs: dict[str, RunResult] = field(default_factory=dict)  # phase -> its run
    phase_seconds: dict[str, float] = field(default_factory=dict)
    backup: str = ""
    seconds: float = 0.0
    kind: str = "migration"  # or rollback

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "backup": self.backup,
            "resumed_after": list(self.done_before),
            "phase_seconds": {p: round(t, 1) for p, t in self.phase_seconds.items()},
            "plan": self.plan.to_dict(),
            "runs": {phase: r.to_dict() for phase, r in self.runs.items()},
        }

    def raise_for_status(self) -> None:
        for phase, r in self.runs.items():
            if not r.ok:
                failed = ", ".join(r.failed_hosts()) or r.status
                lines = [f"{o.host}: {o.task}: {o.message}" for o in r.failures()[:20]]
                raise MigrationFailed(
                    "\n  ".join(
                        [
                            f"the {phase} phase failed on: {failed}; run the same command again to resume "
                            f"(the workgroup's backup is {self.backup})",
                            *lines,
                        ]
                    )
                )


def _migrate_run(domain: Network, hosts: list[str], variables: dict[str, Any], progress: Any) -> RunResult:
    from provision import runner

    options = runner.RunOptions(playbook="migrate.yml", limit=hosts, with_secrets=False, variables=variables)
    return runner.run(domain, options, progress=progress)


def run(
    workgroup: Network,
    domain: Network,
    backup_root: Path,
    progress: Callable[[Progress], None] | None = None,
) -> MigrationResult:
    """The migration, from the first phase the record does not hold; stops at the first that fails."""
    from provision import backup, restore, runner

    steps = plan(workgroup, domain)
    moved = check_copies(workgroup, domain)
    record = load_record(workgroup, domain)
    out = MigrationResult(steps, tuple(record["done"]), backup=str(record.get("backup", "")))
    peers = [h.name for h in workgroup.hosts if h.role is Role.PEER]
    dcs = [h.name for h in domain.hosts if h.role is Role.DOMAIN_CONTROLLER]
    start = time.monotonic()

    mark = [start]

    def finish(phase: str) -> None:
        record["done"] = [*record["done"], phase]
        _save(domain, record)
        now = time.monotonic()
        out.phase_seconds[phase] = now - mark[0]
        mark[0] = now

    try:
        if "backup" not in record["done"]:
            made = backup.run(workgroup, backup_root, [workgroup.host(p) for p in peers], progress=progress)
            out.runs["backup"] = made.run
            if not made.run.ok or made.manifest is None:
                return out
            found = restore.open_backup(workgroup, made.folder)
            record["backup"] = out.backup = str(made.folder)
            record["ids"] = read_ids(found, peers)
            finish("backup")
        if "dcs" not in record["done"]:
            out.runs["dcs"] = runner.run(domain, runner.RunOptions(limit=dcs), progress=progress)
            if not out.runs["dcs"].ok:
                return out
            finish("dcs")
        if "accounts" not in record["done"]:
            carried = sorted({u.name for u in workgroup.users} & {u.name for u in domain.users})
            variables = {
                "provision_migrate_phase": "accounts",
                "provision_migrate_plan": host_plan(workgroup, domain, record["ids"], "accounts"),
                "provision_migrate_peers": peers,
                "provision_migrate_users": carried,
                "provision_migrate_first_dc": dcs[0],
            }
            out.runs["accounts"] = _migrate_run(domain, [*peers, dcs[0]], variables, progress)
            if not out.runs["accounts"].ok:
                return out
            finish("accounts")
        if "copy" not in record["done"]:
            if moved:
                copied = _copy(workgroup, domain, moved, progress)
                out.runs.update(copied)
                if not all(r.ok for r in copied.values()):
                    return out
            finish("copy")
        if "apply" not in record["done"]:
            out.runs["apply"] = runner.run(domain, runner.RunOptions(), progress=progress)
            if not out.runs["apply"].ok:
                return out
            finish("apply")
        if "owners" not in record["done"]:
            owners = host_plan(workgroup, domain, record["ids"], "owners")
            if owners:
                variables = {"provision_migrate_phase": "owners", "provision_migrate_plan": owners}
                out.runs["owners"] = _migrate_run(domain, sorted(owners), variables, progress)
                if not out.runs["owners"].ok:
                    return out
            finish("owners")
        return out
    finally:
        out.seconds = time.monotonic() - start


def _copy(
    workgroup: Network, domain: Network, moved: list[Copy], progress: Callable[[Progress], None] | None
) -> dict[str, RunResult]:
    """The copy phase: the moving folders taken from their peers (a backup of just them, checked as
    any backup is), then put on their new hosts by the restore role at the same paths. The copies
    on this controller go once put, or once failed (the peers keep the originals)."""
    from provision import backup, restore

    # The very items a backup of the peer makes of those folders (names, paths, missing_ok).
    wanted: dict[str, set[str]] = {}
    for c in moved:
        wanted.setdefault(c.peer, set()).add(c.item)
    items = {
        peer: [i for i in backup.host_items(workgroup, workgroup.host(peer)) if i.name in names]
        for peer, names in sorted(wanted.items())
    }
    root = paths.state_dir(domain) / COPY_DIR
    shutil.rmtree(root, ignore_errors=True)  # what an interrupted copy left
    runs: dict[str, RunResult] = {}
    try:
        made = backup.run(workgroup, root, [workgroup.host(p) for p in items], progress=progress, items=items)
        runs["copy take"] = made.run
        if not made.run.ok or made.manifest is None:
            return runs
        found = restore.open_backup(workgroup, made.folder)
        entries: dict[str, dict[str, Any]] = {}
        for c in moved:
            f = found.file(c.peer, c.item)
            if f is None:  # a missing_ok folder that did not exist: nothing to copy
                continue
            entry = entries.setdefault(c.target, {"files": [], "sources": []})
            entry["files"].append(f.module_item())
            entry["sources"].append(str(f.path))
        if entries:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            runs["copy put"] = restore.put_back(domain, entries, restore.PHASE_FILES, stamp, progress)
        return runs
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_text(result: MigrationResult) -> str:
    """One line per phase: what ran now, what a resumed run skipped."""
    from provision import report

    lines = [f"{p}: done before (resumed)" for p in result.done_before]
    lines += [
        f"{p}: {report.run_summary(r)}" + (f" ({result.phase_seconds[p]:.0f} s)" if p in result.phase_seconds else "")
        for p, r in result.runs.items()
    ]
    lines.append(f"workgroup backup: {result.backup or '-'}")
    complete = result.kind == "rollback" or set(PHASES) <= {*result.done_before, *result.phase_seconds}
    lines.append(f"{result.kind}: {'done' if result.ok and complete else 'FAILED'} in {result.seconds:.0f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the way back

ROLLBACK_PHASES = ("owners", "unjoin", "accounts", "workgroup")


def rollback_plan(workgroup: Network, domain: Network, ids: dict[str, Any], phase: str) -> dict[str, dict[str, Any]]:
    """migrate.yml's provision_migrate_plan for a rollback ``phase`` (owners_back or accounts_back)."""
    out: dict[str, dict[str, Any]] = {}
    forward = host_plan(workgroup, domain, ids, "owners" if phase == "owners_back" else "accounts")
    peers = {h.name for h in workgroup.hosts if h.role is Role.PEER}

    def local(p: dict[str, Any]) -> str:
        # The retired wg- account, or a system group, which kept its own name.
        name = str(p["to"]).split("\\", 1)[-1]
        return name if "from_name" in p else f"{RETIRED_PREFIX}{name}"

    for host, entry in forward.items():
        if phase == "owners_back" and "owners" in entry:
            if host not in peers:
                continue  # a new file server's copy stays the domain's, as the DCs do
            # While still joined, NETBIOS\\name is the domain's account and local() the peer's own.
            out[host] = {
                "owners": [
                    {
                        "paths": o["paths"],
                        "users": [{"from_name": p["to"], "to": local(p)} for p in o["users"]],
                        "groups": [{"from_name": p["to"], "to": local(p)} for p in o["groups"]],
                    }
                    for o in entry["owners"]
                ]
            }
        elif phase == "accounts_back" and "retire" in entry:
            users = entry["retire"]["users"]
            mine = ids.get(host, {}).get("shells", {})
            out[host] = {
                "restore": {
                    "users": users,
                    "groups": entry["retire"]["groups"],
                    "shells": {u: mine.get(u, "/bin/sh") for u in users},
                }
            }
    return out


def rollback(
    workgroup: Network,
    domain: Network,
    progress: Callable[[Progress], None] | None = None,
) -> MigrationResult:
    """Back to the working workgroup, from wherever the migration stopped: files to the local
    accounts (while the peers still resolve the domain's), the peers out of the domain, the local
    accounts back as they were, the workgroup spec applied. The DCs and the directory are left as
    they are; nothing is deleted."""
    from provision import runner

    steps = plan(workgroup, domain)
    record = load_record(workgroup, domain)
    done = list(record["done"])
    if not done:
        raise MigrationError(f"no migration of '{workgroup.name}' is recorded on this controller: nothing to roll back")
    back: list[str] = list(record.get("rolled_back", []))
    out = MigrationResult(
        steps, tuple(f"rollback {p}" for p in back), backup=str(record.get("backup", "")), kind="rollback"
    )
    peers = [h.name for h in workgroup.hosts if h.role is Role.PEER]
    start = time.monotonic()
    mark = [start]

    def finish(phase: str) -> None:
        back.append(phase)
        record["rolled_back"] = back
        _save(domain, record)
        now = time.monotonic()
        out.phase_seconds[f"rollback {phase}"] = now - mark[0]
        mark[0] = now

    def step(phase: str, result: RunResult) -> bool:
        out.runs[f"rollback {phase}"] = result
        if result.ok:
            finish(phase)
        return result.ok

    try:
        if "owners" not in back:
            owners = rollback_plan(workgroup, domain, record["ids"], "owners_back") if "owners" in done else {}
            if owners:
                variables = {"provision_migrate_phase": "owners", "provision_migrate_plan": owners}
                if not step("owners", _migrate_run(domain, sorted(owners), variables, progress)):
                    return out
            else:
                finish("owners")
        if "unjoin" not in back:
            if "apply" in done or "accounts" in done:
                options = runner.RunOptions(playbook="unjoin.yml", limit=peers)
                if not step("unjoin", runner.run(domain, options, progress=progress)):
                    return out
            else:
                finish("unjoin")
        if "accounts" not in back:
            accounts = rollback_plan(workgroup, domain, record["ids"], "accounts_back")
            variables = {"provision_migrate_phase": "accounts_back", "provision_migrate_plan": accounts}
            if not step("accounts", _migrate_run(domain, peers, variables, progress)):
                return out
        if "workgroup" not in back and not step(
            "workgroup", runner.run(workgroup, runner.RunOptions(), progress=progress)
        ):
            return out
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        _record_path(domain).replace(_record_path(domain).with_name(f"migration-rolled-back-{stamp}.json"))
        return out
    finally:
        out.seconds = time.monotonic() - start
