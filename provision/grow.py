"""``provision grow``: a domain spec written from a workgroup spec (issue 20, first part).

The output is a spec *document*, so the workgroup's YAML document is transformed (secret
references stay as the user wrote them) rather than the model; the result is then validated
exactly as ``provision validate`` would, and nothing is written unless it is valid. Every
decision is returned as a ``Choice`` so the operator sees what became of each user, host,
share and policy. No host is contacted; the migration itself is ``provision apply NEW --from-workgroup SPEC``
(provision/migrate.py).
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision import rules, spec
from provision.errors import EXIT_INVALID_SPEC, Problem, ProvisionError, SpecError, UnreadableSpec
from provision.model import Mode, Network, Role
from provision.resources import schemas_dir

DEFAULT_ADMIN_PASSWORD_ENV = "DOMAIN_ADMIN_PASSWORD"  # noqa: S105 - a variable's name, not a password
CLIENTS = ("sssd", "winbind")
# The rule appended to a given policies.access: without it the domain's own administrators
# could log in nowhere (an absent policies.access lets them in everywhere but workstations).
DOMAIN_ADMINS_RULE: dict[str, Any] = {"groups": ["domain-admins"], "roles": ["all"]}
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$")
_REALM = re.compile(r"[A-Z0-9]([A-Z0-9-]{0,61}[A-Z0-9])?(\.[A-Z0-9]([A-Z0-9-]{0,61}[A-Z0-9])?)+")
_HOST_REF = re.compile(r"hosts\[(\d+)\]")
_ROLE_ORDER = (Role.FILE_SERVER.value, Role.WORKSTATION.value)


class GrowError(ProvisionError):
    """The workgroup cannot be grown as asked (a domain spec given, an output that exists)."""

    exit_code = EXIT_INVALID_SPEC


class OutputExists(ProvisionError):
    """-o names an existing file and --force was not given (as ``init``: exit 8)."""


@dataclass(frozen=True, slots=True)
class NewHost:
    """A host the domain gets that the workgroup does not have (--dc, --file-server)."""

    name: str
    address: str

    def arg(self) -> str:
        return f"{self.name}={self.address}"


def parse_new_host(text: str) -> NewHost:
    """NAME=ADDRESS, strictly: one '=', both sides non-empty. ValueError otherwise.

    Only the form is checked here; the name and address are judged by the spec's own rules
    when the grown spec is validated (reserved names, duplicates, subnets, hostile text)."""
    if text.count("=") != 1:
        raise ValueError(f"{rules.clip(text)} is not NAME=ADDRESS (exactly one '=')")
    name, _, address = text.partition("=")
    if not name or not address:
        raise ValueError(f"{rules.clip(text)} is not NAME=ADDRESS (a name and an address, e.g. dc1=10.20.0.2)")
    return NewHost(name, address)


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asks for; see ``provision grow --help``."""

    realm: str
    dcs: tuple[NewHost, ...]
    netbios: str | None = None  # None: the workgroup's name
    admin_password: Mapping[str, str] = field(default_factory=lambda: {"env": DEFAULT_ADMIN_PASSWORD_ENV})
    client: str = "sssd"  # of the workstations the peers become
    file_server: NewHost | None = None  # None: a peer that serves something becomes a file server


@dataclass(frozen=True, slots=True)
class Choice:
    """One decision grow made, as one line for the operator."""

    text: str
    warning: bool = False

    def line(self) -> str:
        return f"warning: {self.text}" if self.warning else self.text


@dataclass(frozen=True)
class Grown:
    """The domain spec grow would write, and why it looks as it does."""

    source: Path
    output: Path
    document: dict[str, Any]
    text: str  # the file's whole text, header comments included
    choices: tuple[Choice, ...]
    warnings: tuple[Problem, ...]  # the grown spec's validation warnings (paths of the grown spec)
    network: Network

    def summary(self) -> str:
        """One line: the realm and how many hosts of each role."""
        roles: dict[str, int] = {}
        for h in self.network.hosts:
            roles[h.role.value] = roles.get(h.role.value, 0) + 1
        realm = self.network.domain.realm if self.network.domain else "?"
        counts = ", ".join(f"{n} {role}" for role, n in roles.items())
        return f"domain {realm}, {len(self.network.hosts)} hosts ({counts})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "output": str(self.output),
            "realm": self.network.domain.realm if self.network.domain else None,
            "hosts": {h.name: h.role.value for h in self.network.hosts},
            "choices": [{"text": c.text, "warning": c.warning} for c in self.choices],
            "warnings": [{"path": p.path, "message": p.message} for p in self.warnings],
        }


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> str:
    """The source spec's text, bounded like ``spec.check`` reads it (read once, so the text
    grown from is the text validated)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(spec.MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise UnreadableSpec(f"{path}: cannot read the spec: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [Problem("(root)", f"cannot read spec: {exc.reason}")]) from None


def _load_workgroup(path: Path) -> tuple[dict[str, Any], Network]:
    """The workgroup's document as written and its model; SpecError or GrowError otherwise."""
    text = _read(path)
    result = spec.check_text(text, str(path), base_dir=path.parent)
    if result.errors or result.network is None:
        raise SpecError(result.source, result.errors)
    if result.network.mode is not Mode.WORKGROUP:
        raise GrowError(
            f"{path} is a {result.network.mode.value} spec (network.mode: {result.network.mode.value}); "
            "provision grow starts from a workgroup spec"
        )
    data = spec.read_yaml(text, str(path))
    assert isinstance(data, dict)  # it validated
    return data, result.network


# --------------------------------------------------------------------------- growing


@dataclass
class _Growth:
    """The document being built, its choices and problems, and where each part came from."""

    source: Path
    choices: list[Choice] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # grown-spec path -> where it came from
    carried: set[str] = field(default_factory=set)  # grown-spec paths of things the workgroup named
    # --file-server: what the new file server already holds, for the network-wide shares' checks.
    sections: dict[str, str] = field(default_factory=dict)  # lower-case smb.conf section -> what
    folders: list[tuple[str, str, str]] = field(default_factory=list)  # (path, peer, what)

    def choose(self, text: str, warning: bool = False) -> None:
        self.choices.append(Choice(text, warning))

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def of(self, path: str) -> str:
        """A path of the workgroup spec, said as such."""
        return f"{path} of {self.source.name}"


def grow(source: Path, output: Path, options: Options, force: bool = False) -> Grown:
    """The domain spec grown from the workgroup spec at ``source``, to be written at ``output``.

    Raises SpecError with every problem (paths of the grown spec, each saying where its part
    came from) when the source is invalid or the result would not validate; GrowError when the
    source is not a workgroup; OutputExists when ``output`` exists and not ``force``, before
    anything else. Writes nothing (``write`` does)."""
    _check_output(output, force)
    if _same_file(source, output):
        raise GrowError(
            f"{output} is the workgroup spec itself; the migration reads it (--from-workgroup): "
            "write the domain spec to another file"
        )
    data, workgroup = _load_workgroup(source)
    g = _Growth(source)
    doc: dict[str, Any] = {}
    for key, value in data.items():
        if key == "network":
            doc[key] = _network(value)
            doc["domain"] = _domain(workgroup, options, g)
        elif key == "hosts":
            doc[key] = _hosts(data, workgroup, options, g)
        elif key not in ("domain",):
            doc[key] = copy.deepcopy(value)
    if "shares" in doc:
        _network_shares(doc, options, g)
    _accounts(doc, g)
    _policies(doc, g)
    _rollout(doc, g)
    _file_paths(doc, source.parent, output.parent, g)
    kept = [k for k in data if k not in ("network", "hosts", "users", "groups", "shares", "policies", "rollout")]
    if kept:
        g.choose(f"kept: {', '.join(kept)}")

    text = _header(source, output, workgroup) + _dump(doc)
    try:
        result = spec.check_text(text, str(output), base_dir=output.parent)
    except SpecError as exc:  # pragma: no cover - the text is dumped by PyYAML from plain data
        raise GrowError(f"the grown spec does not read back: {exc.problems[0].message}") from None
    mine = {p.path for p in g.problems}
    problems = g.problems + [_traced(p, g) for p in result.errors if p.path not in mine]
    if problems or result.network is None:
        raise SpecError(f"{output} (grown from {source}; not written)", problems)
    if spec.read_yaml(text, str(output)) != doc:  # pragma: no cover - a PyYAML round-trip bug
        raise GrowError("the grown spec does not read back as it was built; nothing was written")
    warnings = tuple(_traced(p, g) for p in result.warnings)
    return Grown(source, output, doc, text, tuple(g.choices), warnings, result.network)


def _network(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in raw.items() if k != "workgroup"}
    out["mode"] = Mode.DOMAIN.value
    return out


def _domain(workgroup: Network, options: Options, g: _Growth) -> dict[str, Any]:
    # realm in lower case is taken as meant; anything the upper case would not make valid is
    # left as typed, for the validation to say what is wrong with it.
    upper = options.realm.upper()
    realm = upper if options.realm.isascii() and _REALM.fullmatch(upper) else options.realm
    netbios = options.netbios if options.netbios is not None else workgroup.workgroup
    ref = dict(options.admin_password)
    why = "--netbios" if options.netbios is not None else "the workgroup's name, so users keep seeing it"
    g.choose(
        f"network {workgroup.name}: workgroup {workgroup.workgroup} -> domain {realm}, NetBIOS name {netbios} ({why})"
    )
    kind, value = next(iter(ref.items()))
    g.choose(f"domain.admin_password: {{{kind}: {value}}} (the domain's Administrator password, a reference)")
    for k in ("realm", "netbios", "admin_password"):
        g.origins[f"domain.{k}"] = {
            "realm": "--realm",
            "netbios": "--netbios" if options.netbios is not None else "the workgroup's name",
            "admin_password": "--admin-password-env/--admin-password-file",
        }[k]
    return {"realm": realm, "netbios": netbios, "admin_password": ref}


def _serving(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Host name -> names of the network-wide shares (top-level shares[]) it serves."""
    out: dict[str, list[str]] = {}
    for s in data.get("shares", ()):
        for n in s.get("hosts", ()):
            out.setdefault(n, []).append(s["name"])
    return out


def _members(entry: Mapping[str, Any]) -> list[str]:
    return rules.expand_range(entry["name"]) or [entry["name"]]


def _hosts(data: Mapping[str, Any], workgroup: Network, options: Options, g: _Growth) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    new = [("--dc", h) for h in options.dcs]
    if options.file_server is not None:
        new.append(("--file-server", options.file_server))
    for flag, h in new:
        if "[" in h.name:
            g.problem(flag, f"{flag} {_printable(h.arg())}: names one host, not a range")
    for n, h in enumerate(options.dcs):
        g.origins[f"hosts[{len(out)}]"] = f"the new domain controller --dc {_printable(h.arg())}"
        out.append({"name": h.name, "address": h.address, "role": Role.DOMAIN_CONTROLLER.value})
        duty = "provisions the domain" if n == 0 else f"joins {options.dcs[0].name}"
        g.choose(f"{h.name} -> new domain controller {h.address} ({duty})")
    if len(options.dcs) == 1:
        g.choose("only one --dc: two domain controllers are recommended (one can be lost)", warning=True)
    serving = _serving(data)
    raw_hosts: list[dict[str, Any]] = data["hosts"]
    if options.file_server is not None:
        out.append(_file_server(raw_hosts, serving, options.file_server, len(out), g))
    for i, entry in enumerate(raw_hosts):
        members = _members(entry)
        shares = [s["name"] for s in entry.get("shares", ())]
        printers = [p["name"] for p in entry.get("printers", ())]
        homes = entry.get("homes") is True
        wide = sorted({s for m in members for s in serving.get(m, ())})
        k = len(out)
        g.origins[f"hosts[{k}]"] = f"peer '{entry['name']}' ({g.of(f'hosts[{i}]')})"
        g.carried.add(f"hosts[{k}]")
        if options.file_server is None and (shares or printers or homes or wide):
            if len(members) > 1:  # a range becomes one role
                partial = sorted({m for m in members if serving.get(m)})
                if wide and not (shares or printers or homes) and len(partial) < len(members):
                    g.problem(
                        f"hosts[{k}]",
                        f"only {', '.join(partial)} of range '{entry['name']}' serve network-wide shares: a range "
                        "becomes one role; split the range in the workgroup spec first, or use --file-server",
                    )
            out.append(_in_place(entry, k, g))
            what = _served(shares + wide, printers, homes)
            one = len(shares + wide + printers) == 1 and not homes
            place = "stays where it is" if one else "stay where they are"
            g.choose(f"{entry['name']} -> file_server {entry['name']} ({entry['address']}): {what} {place}")
            if "client" in entry:
                g.choose(f"{entry['name']}: client: {entry['client']} dropped (file servers always use winbind)")
        else:
            out.append(_workstation(entry, options.client))
            moved = _served(shares + wide, printers, homes)
            if options.file_server is not None and (shares or printers or homes or wide):
                fs = options.file_server.name
                g.choose(
                    f"{entry['name']} -> workstation ({options.client}): its {moved} move to {fs} "
                    "(the same paths; the migration copies the files)"
                )
            else:
                g.choose(f"{entry['name']} -> workstation ({options.client})")
    return out


def _served(shares: list[str], printers: list[str], homes: bool) -> str:
    parts = []
    if shares:
        parts.append(f"share{'s' if len(shares) > 1 else ''} {', '.join(shares)}")
    if printers:
        parts.append(f"printer{'s' if len(printers) > 1 else ''} {', '.join(printers)}")
    if homes:
        parts.append("home shares")
    if not parts:
        return "nothing"
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


_SERVED_KEYS = ("shares", "printers", "homes", "client")


def _in_place(entry: Mapping[str, Any], k: int, g: _Growth) -> dict[str, Any]:
    """A peer that serves something: the file server of its own shares and printers."""
    out = {"name": entry["name"], "address": entry["address"], "role": Role.FILE_SERVER.value}
    out.update({key: copy.deepcopy(v) for key, v in entry.items() if key not in ("name", "address", "role", "client")})
    for kind in ("shares", "printers"):
        for j, item in enumerate(out.get(kind, ())):
            g.carried.add(f"hosts[{k}].{kind}[{j}]")
            g.origins[f"hosts[{k}].{kind}[{j}]"] = f"{kind[:-1]} '{item['name']}' of peer '{entry['name']}'"
    return out


def _workstation(entry: Mapping[str, Any], client: str) -> dict[str, Any]:
    out = {"name": entry["name"], "address": entry["address"], "role": Role.WORKSTATION.value, "client": client}
    out.update(
        {key: copy.deepcopy(v) for key, v in entry.items() if key not in ("name", "address", "role", *_SERVED_KEYS)}
    )
    return out


def _file_server(
    raw_hosts: list[dict[str, Any]], serving: Mapping[str, list[str]], fs: NewHost, k: int, g: _Growth
) -> dict[str, Any]:
    """--file-server: one new host that serves every peer's shares, printers and homes.

    Each share keeps its name and path; two of them that would be one section of smb.conf,
    or one folder (or one inside the other) from different peers, are problems: the files of
    two machines cannot become one share without someone deciding how."""
    out: dict[str, Any] = {"name": fs.name, "address": fs.address, "role": Role.FILE_SERVER.value}
    g.origins[f"hosts[{k}]"] = f"the new file server --file-server {_printable(fs.arg())}"
    shares: list[dict[str, Any]] = []
    printers: list[dict[str, Any]] = []
    sections, folders = g.sections, g.folders
    homes_from: list[str] = []
    for i, entry in enumerate(raw_hosts):
        peer = entry["name"]
        members = _members(entry)
        wide = [m for m in members if serving.get(m)]
        anything = entry.get("shares") or entry.get("printers") or entry.get("homes") is True or wide
        if anything and len(members) > 1:
            g.problem(
                g.of(f"hosts[{i}]"),
                f"range '{peer}' serves shares, printers or homes on each of its {len(members)} hosts: their "
                f"folders cannot become one on {fs.name}; give each host its own entry in the workgroup spec first",
            )
            continue
        if entry.get("homes") is True:
            homes_from.append(peer)
        for kind, items in (("shares", shares), ("printers", printers)):
            for j, item in enumerate(entry.get(kind, ())):
                where = f"hosts[{k}].{kind}[{len(items)}]"
                what = f"{kind[:-1]} '{item['name']}' of peer '{peer}' ({g.of(f'hosts[{i}].{kind}[{j}]')})"
                g.origins[where] = what
                g.carried.add(where)
                _claim(sections, item["name"], what, f"{where}.name", fs.name, g)
                if kind == "shares":
                    _folder(folders, item["path"], peer, what, f"{where}.path", fs.name, g)
                else:
                    _local_printer(item, what, f"{where}.uri", fs.name, g)
                items.append(copy.deepcopy(item))
    if shares:
        out["shares"] = shares
    if printers:
        out["printers"] = printers
    if homes_from:
        out["homes"] = True
    if shares or printers or homes_from:
        what = _served([s["name"] for s in shares], [p["name"] for p in printers], bool(homes_from))
    else:
        what = "nothing yet (no peer shares anything)"
    g.choose(f"{fs.name} -> new file server {fs.address}: serves {what}")
    if homes_from:
        g.choose(f"home shares of {', '.join(homes_from)} -> {fs.name} (homes: true)")
    return out


def _claim(sections: dict[str, str], name: str, what: str, path: str, fs: str, g: _Growth) -> None:
    other = sections.get(name.lower())
    if other is not None:
        g.problem(
            path,
            f"{what} and {other} would both be [{name.lower()}] on {fs} (smb.conf section names are "
            "case-insensitive): rename one in the workgroup spec first",
        )
    else:
        sections[name.lower()] = what


def _folder(
    folders: list[tuple[str, str, str]], path: str, peer: str, what: str, where: str, fs: str, g: _Growth
) -> None:
    for other, other_peer, other_what in folders:
        if other_peer == peer:
            continue  # already so on the peer: the validation's own warning says it
        if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
            how = "the same folder" if path == other else "one folder inside the other"
            g.problem(
                where,
                f"{what} and {other_what} would be {how} on {fs} ({path}, {other}): the files of two "
                "peers would mix; change one path in the workgroup spec first",
            )
            break
    folders.append((path, peer, what))


# Device URIs of a printer attached to the peer itself: the queue cannot move to another host.
_LOCAL_DEVICES = ("usb", "parallel", "serial", "hp", "hpfax", "scsi", "cups-pdf")


def _local_printer(item: Mapping[str, Any], what: str, where: str, fs: str, g: _Growth) -> None:
    scheme = str(item.get("uri", "file:///dev/null")).partition(":")[0].lower()
    if scheme in _LOCAL_DEVICES:
        g.problem(
            where,
            f"{what} is attached to the peer ({scheme}:): its queue cannot move to {fs}; connect the printer "
            "to the network (ipp://, socket://) or grow without --file-server so the peer keeps serving it",
        )


def _network_shares(doc: dict[str, Any], options: Options, g: _Growth) -> None:
    """Top-level shares[]: served where they were (the peers became file servers), or by --file-server."""
    shares: list[dict[str, Any]] = doc["shares"]
    for j, s in enumerate(shares):
        g.carried.add(f"shares[{j}]")
        g.origins[f"shares[{j}]"] = f"network-wide share '{s['name']}' ({g.of(f'shares[{j}]')})"
    if options.file_server is None:
        return
    fs = options.file_server.name
    sections, folders = g.sections, g.folders
    for j, s in enumerate(shares):
        what = g.origins[f"shares[{j}]"]
        peers = list(s.get("hosts", ()))
        if len(peers) > 1:
            g.problem(
                f"shares[{j}].hosts",
                f"{what} is served by {', '.join(peers)}: their folders cannot become one on {fs}; "
                "keep it on one peer in the workgroup spec first",
            )
        _claim(sections, s["name"], what, f"shares[{j}].name", fs, g)
        _folder(folders, s["path"], ",".join(peers), what, f"shares[{j}].path", fs, g)
        s["hosts"] = [fs]
        g.choose(f"network-wide share {s['name']} ({', '.join(peers)}) -> served by {fs}")


def _accounts(doc: Mapping[str, Any], g: _Growth) -> None:
    for kind in ("users", "groups"):
        items = doc.get(kind) or []
        for j, item in enumerate(items):
            g.carried.add(f"{kind}[{j}]")
            g.origins[f"{kind}[{j}]"] = f"workgroup {kind[:-1]} '{item['name']}' ({g.of(f'{kind}[{j}]')})"
        if not items:
            continue
        names = ", ".join(i["name"] for i in items)
        if kind == "users":
            g.choose(f"users {names} -> directory users (passwords carried over by the migration)")
        else:
            g.choose(f"groups {names} -> directory groups (memberships as the users list them)")


def _peer_roles(doc: Mapping[str, Any]) -> list[str]:
    """The roles the workgroup's peers have in the grown spec (carried hosts, not the new ones)."""
    present = {h["role"] for h in doc["hosts"] if h["role"] != Role.DOMAIN_CONTROLLER.value}
    return [r for r in _ROLE_ORDER if r in present]


def _policies(doc: dict[str, Any], g: _Growth) -> None:
    pol = doc.get("policies")
    if not isinstance(pol, dict):
        return
    roles = _peer_roles(doc)
    for section in ("access", "sudo"):
        rules_ = pol.get(section)
        if not isinstance(rules_, list):
            continue
        for i, rule in enumerate(rules_):
            g.origins[f"policies.{section}[{i}]"] = g.of(f"policies.{section}[{i}]")
            old = list(rule.get("roles", ()))
            if not any(r in ("peer", "all") for r in old):
                continue
            new: list[str] = []
            for r in old:
                for n in roles if r in ("peer", "all") else [r]:
                    if n not in new:
                        new.append(n)
            rule["roles"] = new
            why = (
                "the workgroup's 'all' meant its peers; the new domain controllers stay for the domain's administrators"
                if "all" in old
                else "the roles the peers became"
            )
            g.choose(f"policies.{section}[{i}]: roles {', '.join(old)} -> {', '.join(new)} ({why})")
    if isinstance(pol.get("access"), list):
        pol["access"].append(copy.deepcopy(DOMAIN_ADMINS_RULE))
        g.choose(
            f"policies.access[{len(pol['access']) - 1}]: added {{groups: [domain-admins], roles: [all]}}: the "
            "domain's administrators may log in everywhere (as they may without policies.access)"
        )
    elif "access" not in pol or pol.get("access") is None:
        _default_access(doc, g)
    smb = pol.get("smb")
    if isinstance(smb, dict) and smb.get("signing") == "auto":
        smb["signing"] = "mandatory"
        g.choose("policies.smb.signing: auto -> mandatory (a domain always requires SMB signing)")


def _default_access(doc: Mapping[str, Any], g: _Growth) -> None:
    servers = [h["name"] for h in doc["hosts"] if h["role"] == Role.FILE_SERVER.value]
    if servers:
        g.choose(
            "policies.access absent: the domain's default applies: every user may log in on workstations, "
            f"only the domain's administrators on the domain controllers and file servers ({', '.join(servers)}); "
            "add policies.access to let users log in there"
        )


def _rollout(doc: dict[str, Any], g: _Growth) -> None:
    ro = doc.get("rollout")
    if not isinstance(ro, dict) or "order" not in ro:
        return
    old = ro.pop("order")
    stages = ", ".join(s if isinstance(s, str) else "+".join(s) for s in old)
    g.choose(
        f"rollout.order ({stages}) -> the domain's default order (domain controllers, then file servers, "
        "then workstations)"
    )
    if not ro:
        del doc["rollout"]


def _file_refs(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(path, mapping, key) of every controller file the spec names that the folder resolves."""
    for j, u in enumerate(doc.get("users") or ()):
        if "file" in u["password"]:
            yield f"users[{j}].password.file", u["password"], "file"
    ssh = doc.get("ssh")
    if isinstance(ssh, dict):
        for key in ("identity_file", "known_hosts_file"):
            if key in ssh:
                yield f"ssh.{key}", ssh, key
    for k, ref in enumerate((doc.get("tls") or {}).get("ca_certificates", ())):
        yield f"tls.ca_certificates[{k}].file", ref, "file"


def _file_paths(doc: Mapping[str, Any], source_dir: Path, output_dir: Path, g: _Growth) -> None:
    """Relative paths are resolved against the spec's folder: keep them pointing at the same files."""
    src, out = source_dir.resolve(), output_dir.resolve()
    if src == out:
        return
    for path, holder, key in _file_refs(doc):
        value = holder[key]
        if value.startswith(("/", "~")):
            continue
        holder[key] = posixpath.normpath(os.path.relpath(src / value, out)).replace(os.sep, "/")
        g.choose(f"{path}: {value} -> {holder[key]} (relative to the new spec's folder, the same file)")


# --------------------------------------------------------------------------- problems


def _traced(p: Problem, g: _Growth) -> Problem:
    """A problem of the grown spec, with where its parts came from (no line: the file does not exist)."""
    notes: list[str] = []
    where = _origin(p.path, g.origins)
    if where is not None:
        prefix, text = where
        if prefix.startswith(("users[", "groups[")) and prefix in g.carried:
            message = (
                f"{text} cannot be carried into the domain as it is: {p.message}; rename it in the workgroup "
                "spec first (and wherever it is named)"
            )
            return Problem(p.path, message, None, p.severity)
        notes.append(f"{prefix} is {text}")
        if p.path.endswith(".name") and prefix in g.carried and p.severity == "error":
            notes.append("rename it in the workgroup spec first")
    for ref in dict.fromkeys(_HOST_REF.findall(p.message)):
        key = f"hosts[{ref}]"
        if key in g.origins and not (where and where[0].startswith(key)):
            notes.append(f"{key} is {g.origins[key]}")
    message = f"{p.message} ({'; '.join(notes)})" if notes else p.message
    return Problem(p.path, message, None, p.severity)


def _origin(path: str, origins: Mapping[str, str]) -> tuple[str, str] | None:
    best = None
    for prefix, text in origins.items():
        if (path == prefix or path.startswith((prefix + ".", prefix + "["))) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, text)
    return best


# --------------------------------------------------------------------------- writing


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, as the example specs are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_FLOW_WIDTH = 72  # a mapping of scalars shorter than this stays on one line: {env: ALICE_PW}


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _represent_dict(dumper: _Dumper, data: dict[str, Any]) -> yaml.Node:
    short = sum(len(str(k)) + len(str(v)) + 2 for k, v in data.items()) < _FLOW_WIDTH
    flat = all(_scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v)) for v in data.values())
    flow = flat and short
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _represent_list(dumper: _Dumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=all(_scalar(v) for v in data))


class _Section(dict[str, Any]):
    """A top-level section of the spec: always a block, as people write them."""


def _represent_section(dumper: _Dumper, data: _Section) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(_Section, _represent_section)
_Dumper.add_representer(list, _represent_list)


def _dump(doc: Mapping[str, Any]) -> str:
    doc = {k: _Section(v) if isinstance(v, dict) else v for k, v in doc.items()}
    text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    out = []
    for n, line in enumerate(text.splitlines()):
        if n and line[:1] not in ("", " ", "-"):
            out.append("")  # a blank line between the top-level sections
        out.append(line)
    return "\n".join(out) + "\n"


def _printable(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _modeline(source: Path, output: Path) -> str:
    """The source's yaml-language-server line, still pointing at the same schema from the
    output's folder; the installed schema's when the source has none."""
    try:
        first = source.read_text(encoding="utf-8").splitlines()[:1]
    except (OSError, UnicodeDecodeError):  # pragma: no cover - it was read a moment ago
        first = []
    m = _MODELINE.match(first[0]) if first else None
    target = (schemas_dir() / spec.ROOT_SCHEMA).as_uri()
    if m is not None:
        value = m[1]
        if "://" in value or value.startswith("/"):
            target = value
        else:
            schema = (source.parent.resolve() / value).resolve()
            target = posixpath.normpath(os.path.relpath(schema, output.parent.resolve())).replace(os.sep, "/")
    return f"# yaml-language-server: $schema={_printable(target)}\n"


def _header(source: Path, output: Path, workgroup: Network) -> str:
    name = _printable(str(source))
    return (
        _modeline(source, output)
        + f"# Written by provision grow from {name}, the workgroup '{workgroup.name}' grown into a domain.\n"
        + f"# Review it, then: provision plan {_printable(str(output.name))} --from-workgroup {name}\n"
        + "# and migrate (passwords, local accounts, joins, file owners) with provision apply --from-workgroup.\n"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def _check_output(path: Path, force: bool) -> None:
    if path.is_dir():
        raise OutputExists(f"{path} is a directory; name the new spec's file")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputExists(f"{path} exists; use --force to overwrite")


def write(grown: Grown, force: bool = False) -> Path:
    """Write the grown spec atomically, mode 0644 (it holds references, never secrets).

    Without ``force`` an existing file is never replaced, not even one that appears while
    writing: the file is linked into place, which fails when the name is taken."""
    path = grown.output
    _check_output(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(grown.text)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o644)
            if force:
                Path(tmp).replace(path)  # atomic: os.replace
            else:
                try:
                    os.link(tmp, path)  # atomic, and refuses a name taken meanwhile
                except FileExistsError:
                    raise OutputExists(f"{path} exists; use --force to overwrite") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
