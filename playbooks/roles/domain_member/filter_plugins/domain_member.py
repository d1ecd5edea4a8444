"""Filters for the domain_member role.

``domain_member_shares`` turns the inventory's share entries (provision_shares)
into what smb.conf and the share directories need on a domain member: access
lists with domain-qualified names (``@"NETBIOS\\group"``), the POSIX ACL that
gives each principal exactly the access the share asks for (readers ``r-x``,
writers ``rwx``, nobody else anything beyond the mode's "other" digit), and the
directory mode that ACL implies. Names in the ACL stay names here; the role
resolves them to the domain's numeric IDs on the host (through winbind), so a
local group that happens to share a name (Debian has a local "staff") never
gets the access.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

_READ = 5  # r-x
_WRITE = 7  # rwx


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _uniq(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i.lower() in seen or seen.add(i.lower()))]


def _perm(bits: int) -> str:
    return ("r" if bits & 4 else "-") + ("w" if bits & 2 else "-") + ("x" if bits & 1 else "-")


def _mode(mode: Any, share: str) -> tuple[int, int, int, int]:
    text = str(mode or "2770").strip()
    text = text[2:] if text.startswith("0o") else text
    if not text.isdigit() or any(c in "89" for c in text) or not 3 <= len(text) <= 4:
        raise AnsibleFilterError(f"share '{share}': mode {mode!r} is not an octal mode like '2770'")
    text = text.rjust(4, "0")
    return int(text[0]), int(text[1]), int(text[2]), int(text[3])


def domain_member_shares(shares: Any, netbios: str) -> list[dict[str, Any]]:
    """Plan every share of this member; see the module docstring."""
    planned = []
    seen: set[str] = set()
    for raw in list(shares or []):
        name, path = raw.get("name"), raw.get("path")
        if not name or not path:
            raise AnsibleFilterError(f"every share needs a name and a path, got {raw!r}")
        if name.lower() in seen:
            raise AnsibleFilterError(f"share '{name}' is declared twice on this host")
        seen.add(name.lower())
        users = _uniq(_names(raw.get("users")))
        groups = _uniq(_names(raw.get("groups")))
        read_only = bool(raw.get("read_only", False))
        special, u_bits, g_bits, o_bits = _mode(raw.get("mode"), name)
        owner = raw.get("owner") or "root"
        group = raw.get("group") or (groups[0] if groups else "root")

        # Who gets what: the share's users and groups by its read_only flag,
        # then read_list (r-x) and write_list (rwx), write beating read.
        access: dict[tuple[str, str], int] = {}
        base = _READ if read_only else _WRITE
        for u in users:
            access[("u", u)] = base
        for g in groups:
            access[("g", g)] = base
        for listed, bits in ((raw.get("read_list"), _READ), (raw.get("write_list"), _WRITE)):
            for entry in _names(listed):
                key = ("g", entry.lstrip("@+&")) if entry[:1] in "@+&" else ("u", entry)
                access[key] = bits  # write_list comes second, so it wins

        # The owning group's entry (g::) carries that group's access exactly;
        # with no access declared for it, the mode's group digit stays.
        if group != "root" and ("g", group) in access:
            g_bits = access.pop(("g", group))
        named = sorted((k, n, b) for (k, n), b in access.items() if not (k == "u" and n == owner))
        if ("u", owner) in access:
            u_bits |= access[("u", owner)]
        mask = g_bits
        for _, _, bits in named:
            mask |= bits
        entries = [f"u::{_perm(u_bits)}", f"g::{_perm(g_bits)}", f"o::{_perm(o_bits)}"]
        if named:
            entries.append(f"m::{_perm(mask)}")
            entries += [f"{k}:{netbios}\\{n}:{_perm(b)}" for k, n, b in named]
        acl = entries + [f"d:{e}" for e in entries]
        eff_g = mask if named else g_bits

        def qualify(principal: str) -> str:
            if principal[:1] in "@+&":
                return f'{principal[0]}"{netbios}\\{principal.lstrip("@+&")}"'
            return f'"{netbios}\\{principal}"'

        planned.append(
            {
                "name": name,
                "path": path,
                "comment": raw.get("comment") or "",
                "valid_users": [qualify(u) for u in users] + [qualify("@" + g) for g in groups],
                "read_list": [qualify(e) for e in _uniq(_names(raw.get("read_list")))],
                "write_list": [qualify(e) for e in _uniq(_names(raw.get("write_list")))],
                "read_only": read_only,
                "browseable": bool(raw.get("browseable", True)),
                "owner": owner if owner == "root" else f"{netbios}\\{owner}",
                "group": group if group == "root" else f"{netbios}\\{group}",
                "mode": f"{special}{u_bits}{eff_g}{o_bits}",
                "create_mask": f"0{u_bits & 6}{eff_g & 6}{o_bits & 6}",
                "directory_mask": f"{special}{u_bits}{eff_g}{o_bits}",
                "acl": ",".join(acl),
                "acl_named": bool(named),
            }
        )
    return planned


class FilterModule:
    """domain_member filters."""

    def filters(self) -> dict[str, Any]:
        return {"domain_member_shares": domain_member_shares}
