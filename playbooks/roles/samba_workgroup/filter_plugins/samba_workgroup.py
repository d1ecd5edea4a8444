"""Filters for the samba_workgroup role.

``samba_workgroup_plan`` turns the inventory contract (provision_shares,
provision_printers, provision_users, provision_groups, provision_homes) into
one normalised plan the tasks and templates read: which accounts and groups
this host needs, and per share the smb.conf values, the effective directory
mode and the POSIX ACL that lets Samba's access lists actually work on disk.

Doing this in Python keeps the set logic (group expansion, '@group' entries,
write-beats-read precedence, permission bit arithmetic) readable and testable
instead of spreading it over nested Jinja expressions.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

# POSIX permission bits of one octal digit.
_R, _W, _X = 4, 2, 1
_READ = _R | _X  # r-x: list and read
_WRITE = _R | _W | _X  # rwx: create, rename, delete


def _names(value: Any) -> list[str]:
    """A list of non-empty names from None, a string or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _uniq(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _perm(bits: int) -> str:
    return ("r" if bits & _R else "-") + ("w" if bits & _W else "-") + ("x" if bits & _X else "-")


def _mode_digits(mode: Any, share: str) -> tuple[int, int, int, int]:
    text = str(mode).strip()
    if text.startswith("0o"):
        text = text[2:]
    if not text.isdigit() or any(c in "89" for c in text) or not 3 <= len(text) <= 4:
        raise AnsibleFilterError(f"share '{share}': mode {mode!r} is not an octal mode like '2770'")
    text = text.rjust(4, "0")
    return int(text[0]), int(text[1]), int(text[2]), int(text[3])


def _split_principals(entries: list[str]) -> tuple[list[str], list[str]]:
    """Split smb.conf style principals into (users, groups) without the '@'/'+'/'&' prefix."""
    users: list[str] = []
    groups: list[str] = []
    for e in entries:
        if e[:1] in "@+&":
            groups.append(e.lstrip("@+&"))
        else:
            users.append(e)
    return users, groups


class _Directory:
    """Collects the POSIX access each principal needs on one share directory."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.groups: dict[str, int] = {}

    def grant(self, kind: str, name: str, bits: int, override: bool = False) -> None:
        table = self.users if kind == "u" else self.groups
        table[name] = bits if override or name not in table else table[name] | bits


def _plan_share(
    raw: dict[str, Any], known_users: set[str], known_groups: set[str], defaults: dict[str, Any]
) -> dict[str, Any]:
    name = raw.get("name")
    if not name or not raw.get("path"):
        raise AnsibleFilterError(f"every share needs a name and a path, got {raw!r}")
    users = _uniq(_names(raw.get("users")))
    groups = _uniq(_names(raw.get("groups")))
    read_list = _uniq(_names(raw.get("read_list")))
    write_list = _uniq(_names(raw.get("write_list")))
    read_only = bool(raw.get("read_only", False))
    owner = raw.get("owner") or "root"
    # The schema says: the share's first group, else root.
    group = raw.get("group") or (groups[0] if groups else "root")
    special, u_bits, g_bits, o_bits = _mode_digits(raw.get("mode") or defaults.get("mode", "2770"), name)

    # Who needs what on disk. Samba enforces read only / read list / write list
    # per connection; the POSIX ACL only has to be wide enough not to get in
    # the way: readers get r-x, writers rwx. A write list entry beats a read
    # list entry (smb.conf: "in both lists ... given write access").
    base = _READ if read_only else _WRITE
    d = _Directory()
    for u in users:
        d.grant("u", u, base)
    for g in groups:
        d.grant("g", g, base)
    ru, rg = _split_principals(read_list)
    for u in ru:
        d.grant("u", u, _READ, override=True)
    for g in rg:
        d.grant("g", g, _READ, override=True)
    wu, wg = _split_principals(write_list)
    for u in wu:
        d.grant("u", u, _WRITE, override=True)
    for g in wg:
        d.grant("g", g, _WRITE, override=True)

    entries: list[tuple[str, str, int]] = []
    for u, bits in d.users.items():
        if u == "root" or u not in known_users:
            continue
        if u == owner and (u_bits & bits) == bits:
            continue  # the owner entry (u::) already covers it
        entries.append(("u", u, bits))
    for g, bits in d.groups.items():
        if g == "root" or g not in known_groups:
            continue
        if g == group and (g_bits & bits) == bits:
            continue  # the owning group entry (g::) already covers it
        entries.append(("g", g, bits))
    entries.sort(key=lambda e: (e[0], e[1]))

    # The ACL mask must cover every named entry; on disk the mask *is* the
    # group digit of the mode, so the directory's effective mode carries it
    # (otherwise ansible.builtin.file and setfacl would undo each other).
    mask = g_bits
    for _, _, bits in entries:
        mask |= bits
    eff_g = mask if entries else g_bits
    acl = ""
    if entries:
        access = [f"u::{_perm(u_bits)}", f"g::{_perm(g_bits)}", f"o::{_perm(o_bits)}", f"m::{_perm(mask)}"]
        access += [f"{k}:{n}:{_perm(b)}" for k, n, b in entries]
        acl = ",".join(access + [f"d:{a}" for a in access])
    else:
        acl = ",".join([f"u::{_perm(u_bits)}", f"g::{_perm(g_bits)}", f"o::{_perm(o_bits)}"])

    valid_users = _uniq(users + [f"@{g}" for g in groups])
    return {
        "name": name,
        "path": raw["path"],
        "comment": raw.get("comment") or "",
        "users": users,
        "groups": groups,
        "valid_users": valid_users,
        "read_only": read_only,
        "read_list": read_list,
        "write_list": write_list,
        "guest_ok": bool(raw.get("guest_ok", False)),
        "browseable": bool(raw.get("browseable", True)),
        "owner": owner,
        "group": group,
        "declared_mode": f"{special}{u_bits}{g_bits}{o_bits}",
        "mode": f"{special}{u_bits}{eff_g}{o_bits}",
        # Files: never executable by default; directories: the share's rights.
        "create_mask": f"0{u_bits & 6}{eff_g & 6}{o_bits & 6}",
        "directory_mask": f"{special}{u_bits}{eff_g}{o_bits}",
        "acl": acl,
        "acl_named": bool(entries),
    }


def samba_workgroup_plan(
    shares: Any,
    printers: Any = None,
    users: Any = None,
    groups: Any = None,
    homes: bool = False,
    share_defaults: Any = None,
) -> dict[str, Any]:
    """Everything the role needs to know about this host, derived once."""
    shares = list(shares or [])
    printers = list(printers or [])
    declared_users = {u["name"]: u for u in (users or []) if u.get("name")}
    declared_groups = [g["name"] for g in (groups or []) if g.get("name")]
    defaults = dict(share_defaults or {})

    # Group membership, from the users' side (that is how the contract has it).
    members: dict[str, list[str]] = {}
    for u in declared_users.values():
        for g in _names(u.get("groups")):
            members.setdefault(g, []).append(u["name"])

    wanted: list[str] = []
    ref_groups: list[str] = []

    def want(principals: list[str]) -> None:
        pu, pg = _split_principals(principals)
        wanted.extend(pu)
        ref_groups.extend(pg)

    for s in shares:
        want(_names(s.get("users")))
        want([f"@{g}" for g in _names(s.get("groups"))])
        want(_names(s.get("read_list")))
        want(_names(s.get("write_list")))
        if s.get("owner") and s.get("owner") != "root":
            wanted.append(s["owner"])
        if s.get("group") and s.get("group") != "root":
            ref_groups.append(s["group"])
    for p in printers:
        want(_names(p.get("users")))
        want([f"@{g}" for g in _names(p.get("groups"))])
    for g in ref_groups:
        wanted.extend(members.get(g, []))
    if homes:
        wanted.extend(declared_users)
    # Only declared users become accounts: the engine validates references,
    # and an undeclared name has no full name, groups or password anyway.
    wanted_users = sorted({u for u in wanted if u in declared_users and u != "root"})

    need_groups = set(declared_groups) | {g for g in ref_groups if g != "root"}
    for u in wanted_users:
        need_groups.update(_names(declared_users[u].get("groups")))

    known_users = set(wanted_users)
    planned = [_plan_share(s, known_users, need_groups, defaults) for s in shares]
    names = [s["name"].lower() for s in planned]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnsibleFilterError(f"shares declared twice on this host: {', '.join(dupes)}")

    planned_printers = []
    for p in printers:
        if not p.get("name"):
            raise AnsibleFilterError(f"every printer needs a name, got {p!r}")
        pu = _uniq(_names(p.get("users")))
        pg = _uniq(_names(p.get("groups")))
        planned_printers.append(
            {
                "name": p["name"],
                "uri": p.get("uri") or "file:///dev/null",
                # CUPS shows the queue name when the info is empty; say so
                # explicitly so the idempotency check compares like with like.
                "description": p.get("description") or p["name"],
                "valid_users": _uniq(pu + [f"@{g}" for g in pg]),
            }
        )

    return {
        "shares": planned,
        "printers": planned_printers,
        "users": [
            {
                "name": n,
                "full_name": declared_users[n].get("full_name") or "",
                "groups": sorted(set(_names(declared_users[n].get("groups")))),
                "shell": declared_users[n].get("shell") or "",
            }
            for n in wanted_users
        ],
        "user_names": wanted_users,
        "groups": sorted(need_groups),
        "guest": any(s["guest_ok"] for s in planned),
    }


class FilterModule:
    """samba_workgroup filters."""

    def filters(self) -> dict[str, Any]:
        return {"samba_workgroup_plan": samba_workgroup_plan}
