"""The one share planner of the Samba roles (playbook-level filter plugin).

Ansible loads ``filter_plugins/`` next to a playbook for every role of that
playbook (and for a playbook that ``import_playbook`` pulls in from elsewhere,
such as the engine's generated rollout), so ``samba_workgroup`` (peers) and
``domain_member`` (file servers) plan their shares here, with one policy:

* The share's ``users`` and ``groups`` get ``r-x`` on a read-only share and
  ``rwx`` on a writable one; ``read_list`` entries get ``r-x`` and
  ``write_list`` entries ``rwx`` whatever the share's default (write beats
  read, as in smb.conf). Nobody else gets anything beyond the mode's "other"
  digit.
* The owning group's entry (``g::``) carries exactly that group's access when
  the group is on the share's lists (else the mode's group digit); the owner
  (``u::``) gets the mode's user digit plus whatever the lists grant it.
  Everyone else listed gets a named entry, plus the same default entries
  (``d:...``), which new files and directories inherit. On disk the ACL mask
  is the group digit of the mode, so the directory's mode carries the mask.
* In a workgroup names are local accounts; in a domain they are the domain's
  (``NETBIOS\\name`` on disk, ``"NETBIOS\\name"`` / ``@"NETBIOS\\group"`` in
  smb.conf) and guests are always refused (``map to guest = never``).

* New files give their owner rwx (Full Control to Windows clients, so opens that
  ask for all rights succeed) and everyone else the share's rights without x.
  DOS attributes, alternate data streams and (``macos``) Apple metadata live in
  extended attributes; a domain file server also stores NT ACLs (``acl_xattr``).

The planner is also the only place that writes share (and printer, and
``[homes]``) option lines for smb.conf. Behind the spec's own validation it
refuses, as defence in depth, any value with a newline, CR or other control
character, any value ending in a backslash (smb.conf's line continuation) and
any section name smb.conf reserves (``global``, ``globals``, ``homes``,
``printers``, ``print$``, ``ipc$``, in any case). Role templates pass their
own [global] values through ``smb_conf_value`` for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleFilterError

MODES = ("workgroup", "domain")

# Section names smb.conf gives a meaning of its own (compared case-insensitively).
RESERVED_SECTIONS = frozenset({"global", "globals", "homes", "printers", "print$", "ipc$"})

# POSIX permission bits of one octal digit.
_R, _W, _X = 4, 2, 1
READ = _R | _X  # r-x: list and read
WRITE = _R | _W | _X  # rwx: create, rename, delete

# C0 and C1 control characters (newline, CR, tab, NUL, ESC...) and the Unicode line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters an account name may not contain: they separate list entries in
# smb.conf (space, comma), quote, qualify a domain name, separate ACL fields
# (':' and ','), mark groups or expand as smb.conf macros.
_NAME_BAD = re.compile(r"[\s,\"'\\/:;=@+&%#\[\]*?<>|]")
_GROUP_PREFIXES = "@+&"

_DEFAULT_MODE = "2770"

# The AD group whose members administer a domain file server's shares.
DOMAIN_ADMINS = "domain admins"


# --------------------------------------------------------------------------- safe values


def smb_conf_value(value: Any, what: str = "value") -> str:
    """``value`` as smb.conf text, refusing anything that could end or continue the line."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int | str):
        text = str(value)
    else:
        raise AnsibleFilterError(f"smb.conf {what}: {value!r} is not a string")
    bad = _CONTROL.search(text)
    if bad:
        raise AnsibleFilterError(
            f"smb.conf {what}: {text!r} contains the control character {bad.group()!r} "
            "(newline, carriage return, tab...), which could start a new smb.conf line"
        )
    if text.endswith("\\"):
        raise AnsibleFilterError(
            f"smb.conf {what}: {text!r} ends with a backslash, which would continue the smb.conf line"
        )
    return text


def smb_conf_section(name: Any, what: str = "share") -> str:
    """A section name the inventory may declare: safe, and not one smb.conf reserves."""
    text = smb_conf_value(name, f"{what} name")
    if not text.strip():
        raise AnsibleFilterError(f"every {what} needs a name")
    if text != text.strip() or "[" in text or "]" in text:
        raise AnsibleFilterError(f"{what} name {text!r}: no brackets and no leading or trailing blanks")
    if text.lower() in RESERVED_SECTIONS:
        raise AnsibleFilterError(
            f"{what} name {text!r} is reserved in smb.conf ({', '.join(sorted(RESERVED_SECTIONS))}, in any case)"
        )
    return text


def _account(value: Any, what: str) -> str:
    """A user or group name (no '@' prefix), safe for smb.conf lists and ACL entries."""
    text = smb_conf_value(value, what)
    if not text or _NAME_BAD.search(text):
        raise AnsibleFilterError(f"{what}: {text!r} is not a plain account name")
    return text


def _principal(value: Any, what: str) -> tuple[str, str, str]:
    """An smb.conf list entry: (prefix, kind, name); '@'/'+'/'&' mark a group."""
    text = smb_conf_value(value, what)
    stripped = text.lstrip(_GROUP_PREFIXES)
    prefix = text[: len(text) - len(stripped)]
    if len(prefix) > 2:
        raise AnsibleFilterError(f"{what}: {text!r} is not a user or @group")
    return prefix, ("g" if prefix else "u"), _account(stripped, what)


def _names(value: Any) -> list[Any]:
    """A list of non-empty entries from None, a string or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [v for v in value if v]


def _uniq(items: Iterable[str]) -> list[str]:
    """First spelling of each name, compared case-insensitively (as Samba does)."""
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i.lower() not in seen:
            seen.add(i.lower())
            out.append(i)
    return out


def _bool(value: Any, default: bool, what: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "on", "1", "no", "false", "off", "0"):
        return value.strip().lower() in ("yes", "true", "on", "1")
    raise AnsibleFilterError(f"{what}: {value!r} is not a boolean")


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


def _yesno(value: bool) -> str:
    return "yes" if value else "no"


def _lines(name: str, options: list[tuple[str, str]]) -> list[str]:
    """The section as smb.conf lines; every value checked once more on the way out."""
    return [f"[{name}]"] + [f"   {key} = {smb_conf_value(value, f'[{name}] {key}')}" for key, value in options]


def _mode_arg(mode: Any) -> str:
    if mode not in MODES:
        raise AnsibleFilterError(f"share planning mode must be one of {', '.join(MODES)}, got {mode!r}")
    return str(mode)


# --------------------------------------------------------------------------- file system features

# vfs_fruit's settings as Samba's manual page recommends them for macOS clients;
# nfs_aces = no keeps fruit from rewriting the spec's modes from Apple's NFS ACEs.
FRUIT_OPTIONS = (
    ("fruit:metadata", "stream"),
    ("fruit:model", "MacSamba"),
    ("fruit:posix_rename", "yes"),
    ("fruit:veto_appledouble", "no"),
    ("fruit:nfs_aces", "no"),
    ("fruit:wipe_intentionally_left_blank_rfork", "yes"),
    ("fruit:delete_empty_adfiles", "yes"),
)


def vfs_objects(streams: bool, macos: bool, nt_acls: bool) -> list[str]:
    """The share's VFS modules, in stacking order: catia before fruit before streams_xattr."""
    modules = ["catia", "fruit"] if macos and streams else []
    if streams:
        modules.append("streams_xattr")
    if nt_acls:
        modules.append("acl_xattr")
    return modules


def file_system_options(streams: bool, macos: bool, nt_acls: bool) -> list[tuple[str, str]]:
    """What a share stores beside the file data, the same for every share role.

    DOS attributes live in the ``user.DOSATTRIB`` xattr only (``map archive = no``),
    so attribute changes never touch the modes the spec sets. Alternate data streams
    (a download's Zone.Identifier, Apple's AFP_AfpInfo) live in xattrs. On a domain
    file server NT ACLs are stored too (``acl_xattr``), with inheritance mapped, so
    Windows' Security tab works on what lies below the share's root.
    """
    options: list[tuple[str, str]] = []
    modules = vfs_objects(streams, macos, nt_acls)
    if modules:
        options.append(("vfs objects", " ".join(modules)))
    if macos and streams:
        options += FRUIT_OPTIONS
    options += [("store dos attributes", "yes"), ("map archive", "no")]
    if nt_acls:
        options.append(("map acl inherit", "yes"))
    return options


# --------------------------------------------------------------------------- the policy


def share_access(
    users: Iterable[str],
    groups: Iterable[str],
    read_only: bool,
    read_list: Iterable[tuple[str, str]],
    write_list: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], int]:
    """Who gets what on disk: (kind 'u'/'g', name) -> permission bits, in declaration order.

    The share's users and groups by its read_only flag, then read_list (r-x),
    then write_list (rwx), so a write list entry beats everything else.
    Names compare case-insensitively; the first spelling is kept.
    """
    access: dict[tuple[str, str], int] = {}
    spelled: dict[tuple[str, str], tuple[str, str]] = {}

    def grant(kind: str, name: str, bits: int) -> None:
        key = spelled.setdefault((kind, name.lower()), (kind, name))
        access[key] = bits

    base = READ if read_only else WRITE
    for u in users:
        grant("u", u, base)
    for g in groups:
        grant("g", g, base)
    for kind, name in read_list:
        grant(kind, name, READ)
    for kind, name in write_list:
        grant(kind, name, WRITE)
    return access


def _acl_entries(u_bits: int, g_bits: int, o_bits: int, named: list[tuple[str, str, int]]) -> tuple[list[str], int]:
    """A directory's access entries and their default twins, and the group digit on disk (the mask)."""
    entries = [f"u::{_perm(u_bits)}", f"g::{_perm(g_bits)}", f"o::{_perm(o_bits)}"]
    mask = g_bits
    if named:
        for _, _, bits in named:
            mask |= bits
        entries.append(f"m::{_perm(mask)}")
        entries += [f"{kind}:{who}:{_perm(bits)}" for kind, who, bits in named]
    return entries + [f"d:{e}" for e in entries], mask


def plan_share(
    share: dict[str, Any],
    mode: str,
    netbios: str = "",
    defaults: dict[str, Any] | None = None,
    known_users: Iterable[str] | None = None,
    known_groups: Iterable[str] | None = None,
) -> dict[str, Any]:
    """One share -> its smb.conf section, its directory's owner, group and mode, and its POSIX ACL.

    ``mode`` is ``workgroup`` (names are local accounts) or ``domain`` (names
    are the domain ``netbios``'s accounts). ``defaults`` fills what the share
    leaves out (``mode``). ``known_users`` / ``known_groups``, when given,
    limit the named ACL entries to accounts that exist on the host.
    """
    mode = _mode_arg(mode)
    domain = mode == "domain"
    if domain:
        netbios = _account(netbios, "domain NetBIOS name")
    if not isinstance(share, dict):
        raise AnsibleFilterError(f"a share must be a mapping, got {share!r}")
    name = smb_conf_section(share.get("name"), "share")
    path = smb_conf_value(share.get("path") or "", f"share '{name}' path")
    if not path.startswith("/"):
        raise AnsibleFilterError(f"share '{name}' needs an absolute path, got {path!r}")
    comment = smb_conf_value(share.get("comment") or "", f"share '{name}' comment")
    users = _uniq(_account(u, f"share '{name}' users") for u in _names(share.get("users")))
    groups = _uniq(_account(g, f"share '{name}' groups") for g in _names(share.get("groups")))
    read_list = [_principal(e, f"share '{name}' read_list") for e in _names(share.get("read_list"))]
    write_list = [_principal(e, f"share '{name}' write_list") for e in _names(share.get("write_list"))]
    read_only = _bool(share.get("read_only"), False, f"share '{name}' read_only")
    # A domain member maps nobody to guest (map to guest = never): guests are refused there.
    guest_ok = _bool(share.get("guest_ok"), False, f"share '{name}' guest_ok") and not domain
    browseable = _bool(share.get("browseable"), True, f"share '{name}' browseable")
    streams = _bool(share.get("streams"), True, f"share '{name}' streams")
    # vfs_fruit hands every stream but Apple's own to streams_xattr: no streams, no fruit.
    macos = _bool(share.get("macos"), True, f"share '{name}' macos") and streams
    owner = _account(share.get("owner") or "root", f"share '{name}' owner")
    # The schema says: the share's first group, else root.
    group = _account(share.get("group") or (groups[0] if groups else "root"), f"share '{name}' group")
    declared = share.get("mode") or (defaults or {}).get("mode") or _DEFAULT_MODE
    special, u_bits, g_bits, o_bits = _mode_digits(declared, name)
    declared_mode = f"{special}{u_bits}{g_bits}{o_bits}"

    access = share_access(
        users, groups, read_only, [(k, n) for _, k, n in read_list], [(k, n) for _, k, n in write_list]
    )
    # The owner's entry (u::) and the owning group's (g::) come first.
    for (kind, who), bits in list(access.items()):
        if kind == "u" and who.lower() == owner.lower() and owner != "root":
            u_bits |= bits
            del access[(kind, who)]
        elif kind == "g" and who.lower() == group.lower() and group != "root":
            g_bits = bits
            del access[(kind, who)]
    known_u = None if known_users is None else {n.lower() for n in known_users}
    known_g = None if known_groups is None else {n.lower() for n in known_groups}

    def exists(kind: str, who: str) -> bool:
        known = known_u if kind == "u" else known_g
        return who != "root" and (known is None or who.lower() in known)

    named = sorted((kind, who, bits) for (kind, who), bits in access.items() if exists(kind, who))

    def on_disk(who: str) -> str:
        return f"{netbios}\\{who}" if domain else who

    # The spec's ACL: the same in both modes (names qualified in a domain).
    spec_entries, eff_g = _acl_entries(u_bits, g_bits, o_bits, [(k, on_disk(w), b) for k, w, b in named])
    # On a domain file server the domain's administrators also administer every share
    # (Full Control, as BUILTIN\Administrators on a Windows file server), so the Security
    # tab and smbcacls work for them; the spec cannot name that group itself.
    admin = [("g", on_disk(DOMAIN_ADMINS), WRITE)] if domain else []
    acl_entries, disk_g = _acl_entries(u_bits, g_bits, o_bits, [(k, on_disk(w), b) for k, w, b in named] + admin)

    def conf_user(who: str) -> str:
        return f'"{netbios}\\{who}"' if domain else who

    def conf_principal(prefix: str, kind: str, who: str) -> str:
        if kind == "u":
            return conf_user(who)
        return f'{prefix}"{netbios}\\{who}"' if domain else f"{prefix}{who}"

    valid_users = [conf_user(u) for u in users] + [conf_principal("@", "g", g) for g in groups]
    conf_read = _uniq(conf_principal(*p) for p in read_list)
    conf_write = _uniq(conf_principal(*p) for p in write_list)
    if domain:
        admins = conf_principal("@", "g", DOMAIN_ADMINS)
        if valid_users:
            valid_users.append(admins)
        if read_only:
            conf_write.append(admins)  # setting an ACL is a write, refused on a read-only share
    directory_mask = f"{special}{u_bits}{eff_g}{o_bits}"
    # On disk the ACL mask is the mode's group digit: the directory's mode says so too.
    disk_mode = f"{special}{u_bits}{disk_g}{o_bits}"
    # Files: the owner gets rwx, which Samba maps to Full Control (acl map full control):
    # without it, an open asking for all rights (GENERIC_ALL, as Office and Explorer do)
    # is refused, and with it the locks, leases and durable handles that follow it. The
    # others get the share's rights without x (Modify, not Full Control, as on Windows).
    create_mask = f"0{u_bits}{eff_g & 6}{o_bits & 6}"
    force_create = f"0{u_bits & _X}00"

    options: list[tuple[str, str]] = [("path", path)]
    if comment:
        options.append(("comment", comment))
    if valid_users:
        options.append(("valid users", " ".join(valid_users)))
    options.append(("read only", _yesno(read_only)))
    if conf_read:
        options.append(("read list", " ".join(conf_read)))
    if conf_write:
        options.append(("write list", " ".join(conf_write)))
    options += [
        ("guest ok", _yesno(guest_ok)),
        ("browseable", _yesno(browseable)),
        ("create mask", create_mask),
        ("force create mode", force_create),
        ("directory mask", directory_mask),
    ]
    if named or domain:
        options.append(("inherit acls", "yes"))
    options += file_system_options(streams, macos, domain)

    return {
        "name": name,
        "path": path,
        "comment": comment,
        "users": users,
        "groups": groups,
        "valid_users": valid_users,
        "read_only": read_only,
        "read_list": conf_read,
        "write_list": conf_write,
        "guest_ok": guest_ok,
        "browseable": browseable,
        "owner": on_disk(owner) if owner != "root" else owner,
        "group": on_disk(group) if group != "root" else group,
        "declared_mode": declared_mode,
        "mode": disk_mode,
        "spec_mode": directory_mask,
        "create_mask": create_mask,
        "directory_mask": directory_mask,
        "force_create_mode": force_create,
        "streams": streams,
        "macos": macos,
        "nt_acls": domain,
        "acl_entries": acl_entries,
        "acl": ",".join(acl_entries),
        "spec_acl": ",".join(spec_entries),
        "acl_named": bool(named),
        "options": [list(o) for o in options],
        "lines": _lines(name, options),
    }


def samba_share_plan(
    shares: Any,
    mode: str,
    netbios: str = "",
    defaults: Any = None,
    known_users: Any = None,
    known_groups: Any = None,
) -> list[dict[str, Any]]:
    """Every share of a host (see ``plan_share``); a name declared twice is refused."""
    planned = [
        plan_share(s, mode, netbios, dict(defaults or {}), known_users, known_groups) for s in list(shares or [])
    ]
    _refuse_duplicates(s["name"] for s in planned)
    return planned


def _refuse_duplicates(names: Iterable[str]) -> None:
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes:
        raise AnsibleFilterError(f"shares or printers declared twice on this host: {', '.join(dupes)}")


# --------------------------------------------------------------------------- workgroup peers


def plan_printer(
    printer: dict[str, Any], spool_path: str = "/var/spool/samba", mode: str = "workgroup", netbios: str = ""
) -> dict[str, Any]:
    """A printer: its CUPS queue and its smb.conf section. In a domain (``mode``), its users and
    groups are the domain ``netbios``'s accounts, by their qualified names (a local account of
    the same name never gets in), and the domain's administrators may print too."""
    if not isinstance(printer, dict):
        raise AnsibleFilterError(f"a printer must be a mapping, got {printer!r}")
    domain = _mode_arg(mode) == "domain"
    name = smb_conf_section(printer.get("name"), "printer")
    users = _uniq(_account(u, f"printer '{name}' users") for u in _names(printer.get("users")))
    groups = _uniq(_account(g, f"printer '{name}' groups") for g in _names(printer.get("groups")))
    if domain:
        netbios = _account(netbios, "domain NetBIOS name")
        users = [f'"{netbios}\\{u}"' for u in users]
        groups = [f'"{netbios}\\{g}"' for g in groups]
        if users or groups:
            groups.append(f'"{netbios}\\{DOMAIN_ADMINS}"')
    # CUPS shows the queue name when the info is empty; say so explicitly so
    # the idempotency check compares like with like.
    description = smb_conf_value(printer.get("description") or name, f"printer '{name}' description")
    uri = smb_conf_value(printer.get("uri") or "file:///dev/null", f"printer '{name}' uri")
    valid_users = users + [f"@{g}" for g in groups]
    options: list[tuple[str, str]] = [
        ("comment", description),
        ("printer name", name),
        ("path", smb_conf_value(spool_path, "spool path")),
        ("printable", "yes"),
    ]
    if valid_users:
        options.append(("valid users", " ".join(valid_users)))
    options += [("guest ok", "no"), ("browseable", "yes")]
    return {
        "name": name,
        "uri": uri,
        "description": description,
        # What the provision_print_queues module takes.
        "queue": {"name": name, "uri": uri, "description": description},
        "valid_users": valid_users,
        "options": [list(o) for o in options],
        "lines": _lines(name, options),
    }


def samba_printer_plan(
    printers: Any, mode: str, netbios: str = "", spool_path: str = "/var/spool/samba", planned: Any = None
) -> list[dict[str, Any]]:
    """Every printer of a host (see ``plan_printer``); a name declared twice, or also the name of
    one of the ``planned`` shares, is refused (one smb.conf section would replace the other)."""
    out = [plan_printer(p, spool_path, mode, netbios) for p in list(printers or [])]
    _refuse_duplicates([s["name"] for s in list(planned or [])] + [p["name"] for p in out])
    return out


def homes_section(comment: str = "Home directories", streams: bool = True, macos: bool = True) -> dict[str, Any]:
    """The [homes] section a peer with ``homes`` offers (each user sees only their own).

    Its owner gets Full Control of their files (u+x, see ``plan_share``); streams and
    macOS support follow the host's shares.
    """
    options: list[tuple[str, str]] = [
        ("comment", smb_conf_value(comment, "[homes] comment")),
        ("valid users", "%S"),
        ("read only", "no"),
        ("browseable", "no"),
        ("create mask", "0700"),
        ("force create mode", "0100"),
        ("directory mask", "0700"),
    ]
    options += file_system_options(streams, macos, nt_acls=False)
    return {"name": "homes", "options": [list(o) for o in options], "lines": _lines("homes", options)}


def samba_homes_plan(homes: Any, planned: Any) -> list[dict[str, Any]]:
    """The [homes] section of a host with ``homes`` (none without), its streams and macOS support
    following the host's planned shares, as on a peer."""
    if not _bool(homes, False, "homes"):
        return []
    shares = list(planned or [])
    return [homes_section("Home directories", all(s["streams"] for s in shares), all(s["macos"] for s in shares))]


def samba_peer_plan(
    shares: Any,
    printers: Any = None,
    users: Any = None,
    groups: Any = None,
    homes: Any = False,
    share_defaults: Any = None,
    homes_comment: str = "Home directories",
    spool_path: str = "/var/spool/samba",
) -> dict[str, Any]:
    """Everything a workgroup peer needs, derived once: accounts, shares, printers, sections."""
    shares = list(shares or [])
    printers = list(printers or [])
    homes = _bool(homes, False, "homes")
    declared_users = {u["name"]: u for u in (users or []) if u.get("name")}
    declared_groups = [g["name"] for g in (groups or []) if g.get("name")]

    # Group membership, from the users' side (that is how the contract has it).
    members: dict[str, list[str]] = {}
    for u in declared_users.values():
        for g in _names(u.get("groups")):
            members.setdefault(str(g), []).append(u["name"])

    wanted: list[str] = []
    ref_groups: list[str] = []

    def want(entries: list[Any], what: str, groups_only: bool = False) -> None:
        for e in entries:
            _, kind, name = _principal(f"@{e}" if groups_only else e, what)
            (ref_groups if kind == "g" else wanted).append(name)

    for s in shares:
        want(_names(s.get("users")), "share users")
        want(_names(s.get("groups")), "share groups", groups_only=True)
        want(_names(s.get("read_list")), "share read_list")
        want(_names(s.get("write_list")), "share write_list")
        if s.get("owner") and s.get("owner") != "root":
            wanted.append(_account(s["owner"], "share owner"))
        if s.get("group") and s.get("group") != "root":
            ref_groups.append(_account(s["group"], "share group"))
    for p in printers:
        want(_names(p.get("users")), "printer users")
        want(_names(p.get("groups")), "printer groups", groups_only=True)
    for g in ref_groups:
        wanted.extend(members.get(g, []))
    if homes:
        wanted.extend(declared_users)
    # Only declared users become accounts: the engine validates references,
    # and an undeclared name has no full name, groups or password anyway.
    wanted_users = sorted({u for u in wanted if u in declared_users and u != "root"})

    need_groups = set(declared_groups) | {g for g in ref_groups if g != "root"}
    for u in wanted_users:
        need_groups.update(str(g) for g in _names(declared_users[u].get("groups")))

    planned = [plan_share(s, "workgroup", "", dict(share_defaults or {}), wanted_users, need_groups) for s in shares]
    planned_printers = samba_printer_plan(printers, "workgroup", "", spool_path, planned)
    # [homes] follows the host's shares: macOS clients want fruit on every share or on none.
    homes_streams = all(s["streams"] for s in planned)
    homes_macos = all(s["macos"] for s in planned)
    homes_plan = [homes_section(homes_comment, homes_streams, homes_macos)] if homes else []
    sections = homes_plan + planned + planned_printers

    return {
        "shares": planned,
        "printers": planned_printers,
        "sections": [{"name": s["name"], "lines": s["lines"]} for s in sections],
        "users": [
            {
                "name": n,
                "full_name": declared_users[n].get("full_name") or "",
                "groups": sorted({str(g) for g in _names(declared_users[n].get("groups"))}),
                "shell": declared_users[n].get("shell") or "",
            }
            for n in wanted_users
        ],
        "user_names": wanted_users,
        "groups": sorted(need_groups),
        "guest": any(s["guest_ok"] for s in planned),
    }


def samba_peer_accounts(users: Any, default_shell: str = "/bin/bash") -> list[dict[str, Any]]:
    """A peer plan's ``users`` in the form the provision_local_accounts module takes."""
    return [
        {
            "name": u["name"],
            "comment": u.get("full_name") or "",
            "shell": u.get("shell") or default_shell,
            "groups": list(u.get("groups") or []),
        }
        for u in (users or [])
    ]


class FilterModule:
    """Share planning filters for the Samba roles."""

    def filters(self) -> dict[str, Any]:
        return {
            "samba_share_plan": samba_share_plan,
            "samba_homes_plan": samba_homes_plan,
            "samba_printer_plan": samba_printer_plan,
            "samba_peer_plan": samba_peer_plan,
            "samba_peer_accounts": samba_peer_accounts,
            "smb_conf_value": smb_conf_value,
        }
