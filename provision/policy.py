"""Who may log in where, and who may sudo what: the spec's policies.access and policies.sudo,
evaluated offline (``provision policy test``, ``plan``) and checked (rules).

Access rules are read in order and the first whose accounts and hosts both match decides;
an account no rule matches is refused. Sudo rules add up. Absent sections mean the
defaults: every user on workstations and peers, the domain's administrators (Domain
Admins) only on servers and domain controllers, and sudo for nobody. Root's key login
from the controller is the break-glass path: no policy applies to it.

In a domain the rules also name the built-in Domain Admins group (spelt ``domain-admins``),
whose members the directory knows, not the spec; ``everyone`` means the spec's users and the
Domain Admins. The answer per host is kept in the directory (``directory``): one login
group per host (the DCs' own too) and one sudoRole per rule, which the hosts read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provision.errors import EXIT_INVALID_SPEC, ProvisionError
from provision.model import AccessRule, Host, Mode, Network, Role, SudoRule

# The domain's own administrators' group: the default on servers and domain controllers.
DOMAIN_ADMINS = "Domain Admins"
# How policies name it (account names of the spec are lower case; the rules fold spellings).
DOMAIN_ADMINS_GROUP = "domain-admins"
# The directory's login group of a member is this prefix and its name (the playbooks name it
# so); spec accounts may not start with it.
LOGIN_GROUP_PREFIX = "provision-login-"
# Roles whose hosts every user may log in to when policies.access is absent.
OPEN_ROLES = frozenset({Role.WORKSTATION.value, Role.PEER.value})
# The warning for an access rule earlier rules leave nothing to decide.
NEVER_MATCHES = "the rule can never match: earlier rules decide every account and host it names"
SHOWN = 8  # names listed in one message before "and N more"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may USER log in on HOST": allowed or not, and by which rule."""

    allowed: bool
    rule: int | None  # index in policies.access; None: no rule matched, or the default
    reason: str


def default_access(network: Network) -> tuple[AccessRule, ...]:
    """The access rules an absent policies.access stands for."""
    open_roles = tuple(sorted(OPEN_ROLES))
    rules = [AccessRule(everyone=True, roles=open_roles)]
    if network.mode is Mode.DOMAIN:
        rules.append(AccessRule(groups=(DOMAIN_ADMINS_GROUP,), roles=("all",)))
    return tuple(rules)


def group_members(network: Network) -> dict[str, set[str]]:
    """Group name -> user names; in a domain, domain-admins has one pseudo-member, DOMAIN_ADMINS
    (a name with a space, which no user of the spec can have)."""
    members: dict[str, set[str]] = {g.name: set() for g in network.groups}
    if network.mode is Mode.DOMAIN:
        members[DOMAIN_ADMINS_GROUP] = {DOMAIN_ADMINS}
    for u in network.users:
        for g in u.groups:
            members.setdefault(g, set()).add(u.name)
    return members


def _covers_host(rule: AccessRule | SudoRule, host: Host) -> bool:
    return "all" in rule.roles or host.role.value in rule.roles or host.name in rule.hosts


def _covers_user(rule: AccessRule | SudoRule, user: str, members: Mapping[str, set[str]]) -> bool:
    if isinstance(rule, AccessRule) and rule.everyone:
        return True
    return user in rule.users or any(user in members.get(g, ()) for g in rule.groups)


def describe(rule: AccessRule | SudoRule) -> str:
    """A rule in one line, in the spec's own terms."""
    who = (["everyone"] if isinstance(rule, AccessRule) and rule.everyone else []) + [
        *(f"user {u}" for u in rule.users),
        *(f"group {DOMAIN_ADMINS if g == DOMAIN_ADMINS_GROUP else g}" for g in rule.groups),
    ]
    where = [*(f"role {r}" for r in rule.roles), *(f"host {h}" for h in _hosts_text(rule.hosts))]
    return f"{', '.join(who) or 'nobody'} on {', '.join(where) or 'no host'}"


def _hosts_text(names: Sequence[str]) -> list[str]:
    return list(names) if len(names) <= SHOWN else [*names[:SHOWN], f"... ({len(names) - SHOWN} more)"]


def access(network: Network, user: str, host: Host, members: Mapping[str, set[str]] | None = None) -> Decision:
    """May ``user`` (a user of the spec) log in on ``host``? First matching rule decides.
    ``members``: group_members(network), when the caller asks many questions."""
    members = group_members(network) if members is None else members
    given = network.policies.access
    rules = given if given is not None else default_access(network)
    for i, rule in enumerate(rules):
        if _covers_host(rule, host) and _covers_user(rule, user, members):
            verb = "allowed" if rule.allow else "refused"
            if given is None:
                return Decision(rule.allow, None, f"{verb} by the default policy ({describe(rule)})")
            return Decision(rule.allow, i, f"{verb} by policies.access[{i}] ({describe(rule)})")
    if given is None:
        return Decision(
            False, None, f"refused by the default policy: only {DOMAIN_ADMINS} may log in on a {host.role.value}"
        )
    return Decision(False, None, f"refused: no rule of policies.access matches ({len(rules)} rules, first match wins)")


def sudo(
    network: Network, user: str, host: Host, members: Mapping[str, set[str]] | None = None
) -> list[tuple[int, SudoRule]]:
    """The sudo rules that grant ``user`` something on ``host`` (they add up)."""
    members = group_members(network) if members is None else members
    return [
        (i, rule)
        for i, rule in enumerate(network.policies.sudo or ())
        if _covers_host(rule, host) and _covers_user(rule, user, members)
    ]


def administrators(network: Network, host: Host) -> list[str]:
    """Users of the spec who may both log in on ``host`` and run anything there as root."""
    members = group_members(network)
    return sorted(
        u.name
        for u in network.users
        if access(network, u.name, host, members).allowed
        and any("ALL" in rule.commands for _, rule in sudo(network, u.name, host, members))
    )


# --------------------------------------------------------------------------- checks (raw spec)


def _names(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if type(value) is list else []


def check(
    data: Mapping[str, Any],
    hosts: Sequence[tuple[str, str]],
    users: Mapping[str, set[str]],
    groups: set[str],
    mode: Any,
    expand: Any,
    bad: Callable[[str], bool] = lambda path: False,
) -> Iterable[tuple[str, str, str]]:
    """Problems of policies.access and policies.sudo as (severity, path, message).

    ``hosts``: (name, role) of every host after range expansion; ``users``: each user of
    the spec with its groups; ``expand``: the spec's range expansion (name -> names or None);
    ``bad``: whether the schema already refused a path (nothing more is said of it, and a
    policy with refused parts is not judged as a whole).
    """
    policies = data.get("policies") if type(data.get("policies")) is dict else {}
    assert isinstance(policies, dict)
    by_name = dict(hosts)
    present_roles = set(by_name.values())
    mode_roles = {r.value for r in Role if (r is Role.PEER) == (mode == "workgroup")}
    members: dict[str, set[str]] = {g: set() for g in groups}
    for u, gs in users.items():
        for g in gs:
            members.setdefault(g, set()).add(u)
    everybody = set(users)
    if mode == "domain":
        # The built-in Domain Admins: members unknown to the spec, one pseudo-member stands for them.
        groups = groups | {DOMAIN_ADMINS_GROUP}
        members[DOMAIN_ADMINS_GROUP] = {DOMAIN_ADMINS}
        everybody.add(DOMAIN_ADMINS)
    dcs = {n for n, r in hosts if r == Role.DOMAIN_CONTROLLER.value}
    covered: dict[str, list[tuple[set[str], set[str], Mapping[str, Any]]]] = {}
    whole = True  # every rule could be read: the administrators can be counted
    for section in ("access", "sudo"):
        rules = policies.get(section)
        if type(rules) is not list:
            whole = whole and rules is None
            continue
        seen: list[tuple[set[str], set[str], bool]] = []  # (accounts, hosts, everyone) of earlier rules
        for i, raw in enumerate(rules):
            where = f"policies.{section}[{i}]"
            if type(raw) is not dict or bad(where):
                whole = False
                continue
            broken = False
            accounts: set[str] = set()
            for kind, known in (("users", users), ("groups", groups)):
                for k, name in enumerate(_names(raw.get(kind))):
                    if name not in known:
                        broken = True
                        hint = " (the domain's Domain Admins are written domain-admins)" if mode == "domain" else ""
                        yield "error", f"{where}.{kind}[{k}]", f"'{name}' is not a {kind[:-1]} of the spec{hint}"
                    accounts |= members.get(name, set()) if kind == "groups" else {name}
            everyone = raw.get("everyone") is True
            if everyone:
                accounts = set(everybody)
            if not (_names(raw.get("users")) or _names(raw.get("groups")) or everyone):
                broken = True
                yield "error", where, "the rule names no account: give users, groups or everyone: true"
            targets: set[str] = set()
            roles = _names(raw.get("roles"))
            for k, role in enumerate(roles):
                if role == "all":
                    targets |= set(by_name)
                elif role not in mode_roles:
                    broken = True
                    yield "error", f"{where}.roles[{k}]", f"no host of a {mode} network has role {role}"
                else:
                    if role not in present_roles:
                        yield "warning", f"{where}.roles[{k}]", f"no host of the spec has role {role}"
                    targets |= {n for n, r in hosts if r == role}
            for k, sel in enumerate(_names(raw.get("hosts"))):
                names = expand(sel) or [sel]
                missing = [n for n in names if n not in by_name]
                if missing:
                    broken = True
                    shown = ", ".join(_hosts_text(missing))
                    yield "error", f"{where}.hosts[{k}]", f"not hosts of the spec: {shown}"
                targets |= {n for n in names if n in by_name}
            if not roles and not _names(raw.get("hosts")):
                broken = True
                yield "error", where, "the rule names no host: give roles or hosts"
            if broken:
                whole = False
                continue
            if section == "access":
                on_dcs = sorted(targets & dcs)
                if on_dcs and raw.get("allow", True) is not False and (everyone or accounts - {DOMAIN_ADMINS}):
                    yield (
                        "warning",
                        where,
                        f"lets users of the spec log in on domain controllers ({', '.join(_hosts_text(on_dcs))}): "
                        f"a DC holds every password of the domain; keep them to {DOMAIN_ADMINS_GROUP}",
                    )
                if not accounts and not everyone:
                    yield "warning", where, "the rule can never match: its groups have no members"
                elif seen and _shadowed(accounts, targets, everyone, seen):
                    yield (
                        "warning",
                        where,
                        "the rule can never match: earlier rules decide every account and host it names",
                    )
                seen.append((accounts, targets, everyone))
            covered.setdefault(section, []).append((accounts, targets, raw))
    if whole and (policies.get("access") is not None or policies.get("sudo")):
        yield from _check_administrators(policies, hosts, covered)


def _shadowed(
    accounts: set[str], targets: set[str], everyone: bool, earlier: list[tuple[set[str], set[str], bool]]
) -> bool:
    """Whether earlier rules already decide every (account, host) pair this rule covers."""
    for host in targets:
        decided: set[str] = set()
        for acc, tgt, all_users in earlier:
            if host in tgt:
                if all_users:
                    break
                decided |= acc
        else:
            if everyone or not accounts <= decided:
                return False
    return True


def _check_administrators(
    policies: Mapping[str, Any],
    hosts: Sequence[tuple[str, str]],
    covered: Mapping[str, list[tuple[set[str], set[str], Mapping[str, Any]]]],
) -> Iterable[tuple[str, str, str]]:
    """A policy that leaves no user able to log in and sudo ALL anywhere locks every
    administrator out but root's key: refused. Hosts without one are named in a warning."""
    grants: dict[str, set[str]] = {}
    for accounts, targets, raw in covered.get("sudo", []):
        commands = raw.get("commands", ["ALL"])
        if type(commands) is list and "ALL" in commands:
            for h in targets:
                grants.setdefault(h, set()).update(accounts)
    lacking = []
    for name, role in hosts:
        admins = grants.get(name, set())
        allowed: set[str] = set()
        if policies.get("access") is None:
            allowed = admins if role in OPEN_ROLES else set()
        else:
            decided: set[str] = set()
            for accounts, targets, raw in covered.get("access", []):
                if name in targets:
                    fresh = (admins if raw.get("everyone") is True else accounts) - decided
                    if raw.get("allow", True) is not False:
                        allowed |= fresh
                    decided |= fresh
            allowed &= admins
        if not allowed:
            lacking.append(name)
    if hosts and len(lacking) == len(hosts):
        yield (
            "error",
            "policies",
            "no user of the spec may both log in and run ALL with sudo on any host: the policy leaves "
            "no administrator but root's key",
        )
    elif lacking:
        yield (
            "warning",
            "policies",
            f"no user of the spec may both log in and sudo ALL on {', '.join(_hosts_text(lacking))}",
        )


# --------------------------------------------------------------------------- answers


def answer(network: Network, user: str, host_name: str) -> dict[str, Any]:
    """``provision policy test``: may ``user`` log in on ``host_name``, and sudo what, by which rule."""
    names = {u.name for u in network.users}
    if user not in names:
        raise PolicyQueryError(f"'{user}' is not a user of the spec (users: {', '.join(sorted(names)[:SHOWN])})")
    try:
        host = network.host(host_name)
    except KeyError:
        raise PolicyQueryError(f"'{host_name}' is not a host of the spec") from None
    decision = access(network, user, host)
    grants = sudo(network, user, host) if decision.allowed else []
    return {
        "user": user,
        "host": host.name,
        "role": host.role.value,
        "login": {"allowed": decision.allowed, "rule": decision.rule, "reason": decision.reason},
        "sudo": [
            {"rule": i, "commands": list(rule.commands), "nopasswd": rule.nopasswd, "reason": describe(rule)}
            for i, rule in grants
        ],
        "default": network.policies.access is None,
    }


def effective(network: Network) -> list[dict[str, Any]]:
    """``plan``: who may log in and who may sudo what, per role, or per group of hosts of a
    role when rules by host name make them differ."""
    rules = network.policies.access if network.policies.access is not None else default_access(network)
    members = group_members(network)
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for h in network.hosts:
        allowed = [u.name for u in network.users if access(network, u.name, h, members).allowed]
        login = list(allowed)
        if any(r.everyone and r.allow and _covers_host(r, h) for r in rules):
            refused = [u.name for u in network.users if u.name not in allowed]
            everyone = "every user of the spec" if network.mode is Mode.DOMAIN else "every user"
            login = [everyone + (f" but {', '.join(refused)}" if refused else "")]
        if network.mode is Mode.DOMAIN and access(network, DOMAIN_ADMINS, h, members).allowed:
            login.insert(0, DOMAIN_ADMINS)
            allowed.insert(0, DOMAIN_ADMINS)
        admins = []
        for name in allowed:
            if granted := sudo(network, name, h, members):
                commands = sorted({c for _, r in granted for c in r.commands})
                what = "ALL" if "ALL" in commands else ", ".join(commands)
                nopasswd = all(r.nopasswd for _, r in granted)
                admins.append(f"{name} ({what}{', no password' if nopasswd else ''})")
        groups.setdefault((h.role.value, tuple(login), tuple(admins)), []).append(h.name)
    per_role: dict[str, int] = {}
    for role, _, _ in groups:
        per_role[role] = per_role.get(role, 0) + 1
    return [
        {
            "role": role,
            "hosts": names if per_role[role] > 1 else [],
            "login": list(login),
            "sudo": list(admins),
        }
        for (role, login, admins), names in groups.items()
    ]


# --------------------------------------------------------------------------- the directory's copy


def directory(network: Network) -> dict[str, Any]:
    """What the first DC keeps in the directory for the domain's hosts to read (the DCs too):
    per host who may log in (and whether Domain Admins may), per sudo rule a sudoRole (the
    hosts by short and fully qualified name).

    A host's login group nests the spec's groups whose members may all log in there, and
    lists only the other allowed users one by one: on a campus of thousands of hosts a rule
    for a group of hundreds is a few members per host, not hundreds. Hosts the same rules
    cover get the same answer, worked out once."""
    if network.mode is not Mode.DOMAIN or network.domain is None:
        return {"logins": [], "sudo": []}
    members = group_members(network)
    given = network.policies.access
    access_rules = given if given is not None else default_access(network)
    spec_groups = sorted(g.name for g in network.groups)
    answers: dict[tuple[int, ...], dict[str, Any]] = {}
    logins = []
    for h in network.hosts:
        covering = tuple(i for i, rule in enumerate(access_rules) if _covers_host(rule, h))
        if covering not in answers:
            allowed = {u.name for u in network.users if access(network, u.name, h, members).allowed}
            nested: list[str] = []
            for i in covering:
                grant = access_rules[i]
                for g in spec_groups if grant.everyone else grant.groups:
                    if grant.allow and g in members and g not in nested and members[g] and members[g] <= allowed:
                        nested.append(g)
            through_groups: set[str] = set().union(*(members[g] for g in nested))
            answers[covering] = {
                "users": sorted(allowed - through_groups),
                "groups": sorted(nested),
                "admins": access(network, DOMAIN_ADMINS, h, members).allowed,
            }
        logins.append({"host": h.name, **answers[covering]})
    zone = network.domain.dns_domain
    rules = []
    for i, rule in enumerate(network.policies.sudo or ()):
        covered = [h.name for h in network.hosts if _covers_host(rule, h)]
        if not covered:
            continue
        rules.append(
            {
                "name": f"provision-sudo-{i}",
                "users": list(rule.users),
                "groups": [DOMAIN_ADMINS if g == DOMAIN_ADMINS_GROUP else g for g in rule.groups],
                "hosts": [n for name in covered for n in (name, f"{name}.{zone}")],
                "commands": list(rule.commands),
                "nopasswd": rule.nopasswd,
            }
        )
    return {"logins": logins, "sudo": rules}


class PolicyQueryError(ProvisionError):
    """A ``policy test`` question names a user or host the spec does not have."""

    exit_code = EXIT_INVALID_SPEC
