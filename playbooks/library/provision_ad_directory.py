#!/usr/bin/python
"""Ansible module: the directory of a Samba AD domain (users, groups, password policy, DNS, computers) in line."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_ad_directory
short_description: Bring the directory of a Samba AD domain in line with the inventory
description:
  - Runs on the first DC of a Samba AD domain, as root. Reads the directory, changes only
    what differs and reports every change, in this order - groups (and their descriptions),
    users (full name, login shell and, with O(enforce_passwords), password), group
    memberships, users and groups that left the inventory, the password policy, the OU
    that members join into, computer accounts of members that left, DNS A and PTR records.
  - Reads go straight to C(sam.ldb) (system session); writes use the code C(samba-tool)
    uses - C(SamDB.newuser), C(newgroup), C(add_remove_group_members), C(deleteuser),
    C(deletegroup), C(samba-tool domain passwordsettings set) and C(samba-tool computer delete)
    run in this process (no command line, so no secret in one), and the DNS server's RPC
    interface (what C(samba-tool dns) calls) for zones and records.
  - Only objects carrying O(marker) are ever deleted - users and groups this module created -
    and computer accounts in O(computer_ou). Members of a group that the inventory does not
    know are left alone.
  - Deletions of things that left the inventory (computer accounts, DNS names) are held back,
    with a warning, when they exceed the safety net of O(computers.prune_max) and
    O(computers.prune_max_percent); a partial inventory looks like that.
  - Needs Samba's Python bindings (python3-samba) on the host; fails saying so without them.
  - Supports check mode (nothing is changed; C(changes) says what would be) and diff mode
    (what the changed objects were before and are after, as text). On failure, C(changes)
    lists what was done before it (the last entry perhaps not); Samba's error text is reported with the
    passwords masked.
version_added: "0.1.0"
author: provision maintainers
options:
  netbios:
    description: NetBIOS name of the domain (the domain of the Administrator's credentials for DNS).
    type: str
    default: ""
  dns_domain:
    description: DNS zone of the domain, e.g. C(lab.example); the zone of the A records.
    type: str
    default: ""
  marker:
    description:
      - adminDescription given to the users and groups this module creates; only objects carrying
        it are ever deleted (when they leave O(users) or O(groups)). Must not be empty.
    type: str
    default: managed by provision
  users:
    description: Users of the domain. A user missing in the directory is created with its password from O(passwords).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Account name (sAMAccountName).
        type: str
        required: true
      full_name:
        description: Full name; the displayName, and the given name and surname of a new user (split at the last space).
        type: str
        default: ""
      groups:
        description: Groups of O(groups) the user is a member of (groups not in O(groups) are not managed).
        type: list
        elements: str
        default: []
      shell:
        description: Login shell (loginShell); empty leaves none.
        type: str
        default: ""
  groups:
    description: Groups of the domain.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Group name (sAMAccountName).
        type: str
        required: true
      description:
        description: The group's description.
        type: str
        default: ""
      mail:
        description:
          - The group's mail address (attribute C(mail)) - a distribution list the mail servers expand
            to the group's members; empty removes it.
        type: str
        default: ""
  passwords:
    description:
      - User name to password. Used to create users and, with O(enforce_passwords), to reset those
        whose password differs. Secret, never logged.
    type: dict
    default: {}
  admin_password:
    description:
      - Password of the domain's Administrator, for the DNS server's RPC interface; required with O(dns).
      - Secret, never logged.
    type: str
    default: ""
  enforce_passwords:
    description:
      - Reset a user's password whenever it differs from the supplied one (NT hashes compared, no logon attempted).
      - Off, passwords are only set when a user is created, so users may change their own.
    type: bool
    default: false
  policy:
    description: Password policy of the domain; leave out to leave the domain's policy alone.
    type: dict
    suboptions:
      min_length:
        description: Minimum password length (up to 255; above 14 it is written directly, samba-tool refuses it).
        type: int
        required: true
      complexity:
        description: Whether passwords must be complex.
        type: bool
        default: true
      history:
        description: How many earlier passwords may not be used again.
        type: int
        required: true
      max_age_days:
        description: Maximum password age in days; V(0) is never.
        type: int
        required: true
      min_age_days:
        description: Minimum password age in days.
        type: int
        required: true
      lockout_threshold:
        description: Failed logons before an account is locked out; V(0) is never.
        type: int
        required: true
      lockout_duration_minutes:
        description: How long an account stays locked out; V(0) is until an administrator unlocks it.
        type: int
        required: true
      lockout_window_minutes:
        description: After how many minutes the count of failed logons is reset.
        type: int
        required: true
  computer_ou:
    description:
      - OU, relative to the domain (e.g. C(OU=Provisioned Computers)), that members join into; created
        when missing. Only computer accounts in it are ever deleted. Leave out for neither.
    type: str
  computers:
    description: Computer accounts of the members, and the safety net for every deletion of what left the inventory.
    type: dict
    default: {}
    suboptions:
      members:
        description:
          - Host names of the members whose accounts are kept (compared as upper-case NetBIOS names - the first
            label, at most 15 characters).
        type: list
        elements: str
        default: []
      prune:
        description:
          - Delete the accounts in O(computer_ou) of members not in O(computers.members), and the DNS names of
            hosts that left O(dns.hosts). Never with a partial inventory.
        type: bool
        default: false
      prune_max:
        description:
          - At most this many accounts (or DNS names) are deleted in one run.
          - Beyond that none is, and a warning says so.
        type: int
        default: 10
      prune_max_percent:
        description: At most this share (percent, at least one) of them is deleted in one run; beyond it none is.
        type: int
        default: 50
  dns:
    description:
      - DNS A records for the hosts, and PTR records in reverse zones (at an octet boundary, created
        when missing) for the IPv4 subnets. Leave out to leave DNS alone. Needs O(admin_password).
    type: dict
    suboptions:
      server:
        description: Address of the DNS server's RPC interface (this DC).
        type: str
        default: 127.0.0.1
      hosts:
        description:
          - Host name to IPv4 address, for every host of the domain. Each keeps exactly this A record, the DCs
            too (Samba is pinned to that address); any other is stale and removed.
        type: dict
        default: {}
      subnets:
        description: Subnets whose reverse zones get PTR records (IPv6 subnets are ignored).
        type: list
        elements: str
        default: []
      mx:
        description:
          - MX records of the mail domain C(domain) (the zone itself or a name within it) pointing to the
            mail servers C(hosts) (host names of the zone), all with preference 10. MX records this module
            added earlier for servers that left C(hosts) are deleted (remembered in O(state_file)); others
            are left alone. Leave out (or C(hosts) empty) to add none.
        type: dict
        suboptions:
          domain:
            description: The mail domain.
            type: str
            required: true
          hosts:
            description: Host names of the mail servers.
            type: list
            elements: str
            default: []
  state_file:
    description:
      - Where the DNS names this module manages are remembered (mode 0600), so that the records of hosts that
        left the inventory can be removed. Leave out to forget them.
    type: path
  smb_conf:
    description: The smb.conf to load; Samba's default one when left out.
    type: path
"""

EXAMPLES = r"""
- name: Bring users, groups, password policy, DNS records and computer accounts in line
  provision_ad_directory:
    netbios: LAB
    dns_domain: lab.example
    users:
      - {name: alice, full_name: Alice Example, groups: [staff], shell: /bin/bash}
    groups:
      - {name: staff, description: Everyone}
    passwords: "{{ provision_user_passwords }}"
    admin_password: "{{ provision_domain_admin_password }}"
    policy:
      min_length: 12
      history: 24
      max_age_days: 90
      min_age_days: 1
      lockout_threshold: 5
      lockout_duration_minutes: 30
      lockout_window_minutes: 30
    computer_ou: OU=Provisioned Computers
    computers:
      members: [ws1, fs1]
      prune: true
    dns:
      hosts: {dc1: 10.20.0.2, ws1: 10.20.0.10, fs1: 10.20.0.5}
      subnets: [10.20.0.0/24]
    state_file: /var/lib/provision/domain_directory.json
  register: directory
  no_log: true
"""

RETURN = r"""
changes:
  description:
    - What was done, one sentence each (C(create user alice), C(add A ws1.lab.example -> 10.20.0.10)).
    - In check mode what would be done, each starting with C(would).
    - On failure, what was done before it; the last entry may be the change that failed (each is recorded
      just before it is made).
  returned: always
  type: list
  elements: str
warnings:
  description: Deletions the safety net held back, and why (also shown as warnings).
  returned: when there are any
  type: list
  elements: str
"""

import importlib  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_secrets import mask  # noqa: E402

NEVER = -0x8000000000000000
DAY = 24 * 60 * 60 * 10**7
MINUTE = 60 * 10**7
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000

USER_SPEC = {
    "name": {"type": "str", "required": True},
    "full_name": {"type": "str", "default": ""},
    "groups": {"type": "list", "elements": "str", "default": []},
    "shell": {"type": "str", "default": ""},
}
GROUP_SPEC = {
    "name": {"type": "str", "required": True},
    "description": {"type": "str", "default": ""},
    "mail": {"type": "str", "default": ""},
}
POLICY_SPEC = {
    "min_length": {"type": "int", "required": True},
    "complexity": {"type": "bool", "default": True},
    "history": {"type": "int", "required": True},
    "max_age_days": {"type": "int", "required": True},
    "min_age_days": {"type": "int", "required": True},
    "lockout_threshold": {"type": "int", "required": True},
    "lockout_duration_minutes": {"type": "int", "required": True},
    "lockout_window_minutes": {"type": "int", "required": True},
}
COMPUTERS_SPEC = {
    "members": {"type": "list", "elements": "str", "default": []},
    "prune": {"type": "bool", "default": False},
    "prune_max": {"type": "int", "default": 10},
    "prune_max_percent": {"type": "int", "default": 50},
}
DNS_SPEC = {
    "server": {"type": "str", "default": "127.0.0.1"},
    "hosts": {"type": "dict", "default": {}},
    "subnets": {"type": "list", "elements": "str", "default": []},
    "mx": {
        "type": "dict",
        "options": {
            "domain": {"type": "str", "required": True},
            "hosts": {"type": "list", "elements": "str", "default": []},
        },
    },
}
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "netbios": {"type": "str", "default": ""},
    "dns_domain": {"type": "str", "default": ""},
    "marker": {"type": "str", "default": "managed by provision"},
    "users": {"type": "list", "elements": "dict", "default": [], "options": USER_SPEC},
    "groups": {"type": "list", "elements": "dict", "default": [], "options": GROUP_SPEC},
    "passwords": {"type": "dict", "default": {}, "no_log": True},
    "admin_password": {"type": "str", "default": "", "no_log": True},
    "enforce_passwords": {"type": "bool", "default": False},
    "policy": {"type": "dict", "options": POLICY_SPEC},
    "computer_ou": {"type": "str"},
    "computers": {"type": "dict", "default": {}, "options": COMPUTERS_SPEC, "apply_defaults": True},
    "dns": {"type": "dict", "options": DNS_SPEC},
    "state_file": {"type": "path"},
    "smb_conf": {"type": "path"},
}

# Preference of the MX records of the mail servers: all equal, so senders spread over them.
MX_PREFERENCE = 10

# Samba's Python bindings (python3-samba) exist on the DC only. load_samba() binds
# them here, so that this file imports anywhere (unit tests, ansible-doc, ansible-lint).
ldb: Any = None
WERRORError: Any = None
werror: Any = None
system_session: Any = None
DONT_USE_KERBEROS: Any = None
Credentials: Any = None
dnsp: Any = None
dnsserver: Any = None
record_from_string: Any = None
LoadParm: Any = None
SamDB: Any = None


class Invalid(Exception):
    """The request cannot be carried out as given (the message says why; it holds no secret)."""


class MissingSamba(Exception):
    """Samba's Python bindings are not installed on the host."""


def load_samba() -> None:
    global ldb, WERRORError, werror, system_session, DONT_USE_KERBEROS, Credentials
    global dnsp, dnsserver, record_from_string, LoadParm, SamDB
    try:
        ldb = importlib.import_module("ldb")
        samba = importlib.import_module("samba")
        auth = importlib.import_module("samba.auth")
        credentials = importlib.import_module("samba.credentials")
        dcerpc_dnsp = importlib.import_module("samba.dcerpc.dnsp")
        dcerpc_dnsserver = importlib.import_module("samba.dcerpc.dnsserver")
        samba_dnsserver = importlib.import_module("samba.dnsserver")
        param = importlib.import_module("samba.param")
        samdb = importlib.import_module("samba.samdb")
    except ImportError as exc:
        raise MissingSamba(
            f"python3-samba is not installed on this host (for {sys.executable}): {exc}. "
            "This module runs on a Samba AD DC, with the interpreter Samba's Python bindings belong to."
        ) from None
    WERRORError, werror = samba.WERRORError, samba.werror
    system_session = auth.system_session
    DONT_USE_KERBEROS, Credentials = credentials.DONT_USE_KERBEROS, credentials.Credentials
    dnsp, dnsserver = dcerpc_dnsp, dcerpc_dnsserver
    record_from_string = samba_dnsserver.record_from_string
    LoadParm = param.LoadParm
    SamDB = samdb.SamDB


# --------------------------------------------------------------------------- the request


def _names(items: Iterable[Mapping[str, Any]], kind: str, problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for item in items:
        name = str(item.get("name") or "").strip()
        if not name:
            problems.append(f"a {kind} has no name")
        elif name.lower() in seen:
            problems.append(f"{kind} {name} is listed twice (names are compared without case)")
        else:
            seen[name.lower()] = name


def build_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """The module's options as the request the reconciliation reads, checked before anything is touched.

    Raises Invalid with every problem found; the message names options, users and hosts, never a password.
    """
    problems: list[str] = []
    marker = str(params.get("marker") or "")
    if not marker.strip():
        problems.append("marker must not be empty: it marks the only users and groups that may be deleted")
    users = [dict(u) for u in params.get("users") or []]
    groups = [dict(g) for g in params.get("groups") or []]
    _names(users, "user", problems)
    _names(groups, "group", problems)
    passwords: dict[str, str] = {}
    for name, value in (params.get("passwords") or {}).items():
        if value is not None and not isinstance(value, (str, int, float)):
            problems.append(f"the password of user {name} is not a string")
        elif value is not None and value != "":
            passwords[str(name)] = str(value)
    policy = params.get("policy")
    if policy is not None:
        for key, value in policy.items():
            if key != "complexity" and value is not None and int(value) < 0:
                problems.append(f"policy.{key} must not be negative")
        if policy.get("min_length") is not None and int(policy["min_length"]) > 255:
            problems.append("policy.min_length must be 255 at most (the directory's limit)")
    computer_ou = str(params.get("computer_ou") or "").strip() or None
    if computer_ou is not None and not computer_ou.upper().startswith("OU="):
        problems.append(f"computer_ou {computer_ou!r} is not an OU (OU=..., relative to the domain)")
    computers = dict(params.get("computers") or {})
    computers.setdefault("members", [])
    computers.setdefault("prune", False)
    computers.setdefault("prune_max", 10)
    computers.setdefault("prune_max_percent", 50)
    computers["members"] = list(computers["members"] or [])
    if computers["prune_max"] is None or int(computers["prune_max"]) < 0:
        problems.append("computers.prune_max must not be negative")
    if computers["prune_max_percent"] is None or not 0 <= int(computers["prune_max_percent"]) <= 100:
        problems.append("computers.prune_max_percent must be between 0 and 100")
    dns = params.get("dns")
    dns_request: dict[str, Any] | None = None
    if dns is not None:
        if not params.get("admin_password"):
            problems.append("dns needs admin_password (the DNS server's RPC interface is reached as Administrator)")
        if not str(params.get("netbios") or "").strip():
            problems.append("dns needs netbios (the domain of the Administrator)")
        if not str(params.get("dns_domain") or "").strip():
            problems.append("dns needs dns_domain (the zone of the A records)")
        hosts: dict[str, str] = {}
        for host, address in (dns.get("hosts") or {}).items():
            try:
                ipaddress.IPv4Address(str(address))
            except ValueError:
                problems.append(f"dns.hosts: the address of {host} ({address!r}) is not an IPv4 address")
                continue
            if not str(host).split(".")[0]:
                problems.append(f"dns.hosts: {host!r} is not a host name")
                continue
            hosts[str(host)] = str(address)
        for cidr in dns.get("subnets") or []:
            try:
                ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                problems.append(f"dns.subnets: {cidr!r} is not a network")
        dns_request = {
            "server": dns.get("server") or "127.0.0.1",
            "admin_password": params.get("admin_password") or "",
            "hosts": hosts,
            "subnets": [str(c) for c in dns.get("subnets") or []],
            "mx": mx_request(dns.get("mx"), str(params.get("dns_domain") or ""), problems),
        }
    if problems:
        raise Invalid("the request is not valid: " + "; ".join(problems))
    return {
        "netbios": str(params.get("netbios") or ""),
        "dns_domain": str(params.get("dns_domain") or ""),
        "marker": marker,
        "users": users,
        "groups": groups,
        "passwords": passwords,
        "enforce_passwords": bool(params.get("enforce_passwords")),
        "policy": dict(policy) if policy is not None else None,
        "computer_ou": computer_ou,
        "computers": computers,
        "dns": dns_request,
        "state_file": params.get("state_file") or None,
        "smb_conf": params.get("smb_conf") or None,
    }


def mx_request(mx: Mapping[str, Any] | None, zone: str, problems: list[str]) -> dict[str, Any] | None:
    """The MX part of the DNS request: the node of the zone that holds the records, and their targets."""
    if not mx:
        return None
    domain = str(mx.get("domain") or "").lower().rstrip(".")
    zone = zone.lower()
    if domain != zone and not domain.endswith("." + zone):
        problems.append(f"dns.mx.domain {domain!r} lies outside the zone {zone!r}")
        return None
    targets = []
    for host in mx.get("hosts") or []:
        name = str(host).split(".")[0].lower()
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
            problems.append(f"dns.mx.hosts: {host!r} is not a host name")
        targets.append(f"{name}.{zone}")
    node = "@" if domain == zone else domain[: -len(zone) - 1]
    return {"domain": domain, "node": node, "targets": sorted(set(targets))}


def secrets_of(params: Mapping[str, Any]) -> list[str]:
    """Every secret of the options (the users' passwords, the Administrator's): what no message may show."""
    values = [*(params.get("passwords") or {}).values(), params.get("admin_password")]
    return [str(s) for s in values if s is not None and str(s) != ""]


def error_message(exc: BaseException, secrets: Iterable[str]) -> str:
    """What a failure says: the exception's type and text, every secret masked."""
    text: str = mask(f"{type(exc).__name__}: {exc}", list(secrets))
    return text


# --------------------------------------------------------------------------- what differs (no Samba)


def split_full_name(full: str | None) -> tuple[str, str]:
    """Given name and surname of a full name: split at the last space, or all of it the given name."""
    full = (full or "").strip()
    given, _, surname = full.rpartition(" ") if " " in full else (full, "", "")
    return given, surname


def attributes_differ(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted attribute values that are not what the directory has (a missing one reads as empty)."""
    return {k: v for k, v in wanted.items() if current.get(k, "") != v}


def membership_delta(
    users: Iterable[Mapping[str, Any]], group: str, current: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Lower-case names of the spec users to add to and remove from ``group``, whose members are ``current``."""
    known = {u["name"].lower() for u in users}
    wanted = {u["name"].lower() for u in users if group.lower() in {x.lower() for x in u.get("groups") or []}}
    have = {c.lower() for c in current}
    # Only spec users are managed: members the spec does not know are left alone.
    return sorted((wanted - have) & known), sorted((have - wanted) & known)


def stale_marked(present: Iterable[str], keep: Iterable[str]) -> list[str]:
    """Of the marked objects ``present``, those the spec no longer has (names compared without case)."""
    keep_lower = {k.lower() for k in keep}
    return [name for name in present if name.lower() not in keep_lower]


def policy_ticks(n: int, unit: int) -> int:
    return NEVER if n == 0 else -int(n * unit)


def policy_differ(p: Mapping[str, Any], cur: Mapping[str, int]) -> list[tuple[str, str, int, str]]:
    """(samba-tool option, attribute, wanted attribute value, option value) for every setting that differs."""
    props = cur.get("pwdProperties", 0)
    complexity = p.get("complexity", True)
    complexity = True if complexity is None else complexity
    want_props = props | 1 if complexity else props & ~1
    table = [
        ("--complexity", "pwdProperties", want_props, "on" if complexity else "off"),
        ("--history-length", "pwdHistoryLength", int(p["history"]), str(p["history"])),
        ("--min-pwd-length", "minPwdLength", int(p["min_length"]), str(p["min_length"])),
        ("--min-pwd-age", "minPwdAge", -int(p["min_age_days"] * DAY), str(p["min_age_days"])),
        ("--max-pwd-age", "maxPwdAge", policy_ticks(p["max_age_days"], DAY), str(p["max_age_days"])),
        (
            "--account-lockout-threshold",
            "lockoutThreshold",
            int(p["lockout_threshold"]),
            str(p["lockout_threshold"]),
        ),
        (
            "--account-lockout-duration",
            "lockoutDuration",
            policy_ticks(p["lockout_duration_minutes"], MINUTE),
            str(p["lockout_duration_minutes"]),
        ),
        (
            "--reset-account-lockout-after",
            "lockOutObservationWindow",
            policy_ticks(p["lockout_window_minutes"], MINUTE),
            str(p["lockout_window_minutes"]),
        ),
    ]
    return [(opt, attr, want, val) for opt, attr, want, val in table if cur.get(attr) != want]


def policy_split(
    differ: list[tuple[str, str, int, str]],
) -> tuple[list[tuple[str, str, int, str]], list[tuple[str, str, int, str]]]:
    """The settings samba-tool sets, and those written directly."""
    # samba-tool refuses a minimum length above 14 (the Windows UI limit);
    # the directory accepts up to 255, so that one is written directly.
    direct = [d for d in differ if d[1] == "minPwdLength" and d[2] > 14]
    tool = [d for d in differ if d not in direct]
    return tool, direct


def netbios_names(hosts: Iterable[str]) -> set[str]:
    """The computer account names (without $) of host names: first label, upper case, 15 characters at most."""
    return {h.upper().split(".")[0][:15] for h in hosts}


def stale_computers(present: Iterable[tuple[str, str]], members: Iterable[str]) -> list[tuple[str, str]]:
    """Of the accounts ``present`` ((name, dNSHostName)), those of hosts that are no members."""
    keep = netbios_names(members)
    return [(n, dns) for n, dns in present if n.upper() not in keep]


def prune_limit(total: int, computers: Mapping[str, Any]) -> int:
    """How many of ``total`` things that left the inventory may be deleted in one run."""
    return min(int(computers.get("prune_max", 10)), max(1, total * int(computers.get("prune_max_percent", 50)) // 100))


def reverse_zone(cidr: str) -> ipaddress.IPv4Network | None:
    """The reverse zone (at an octet boundary, /8 to /24) an IPv4 subnet's PTR records go into."""
    net = ipaddress.ip_network(cidr, strict=False)
    if not isinstance(net, ipaddress.IPv4Network):
        return None
    prefix = max(8, min(24, net.prefixlen // 8 * 8))
    return net.supernet(new_prefix=prefix) if prefix < net.prefixlen else net


def zone_name(net: ipaddress.IPv4Network) -> str:
    octets = str(net.network_address).split(".")[: net.prefixlen // 8]
    return ".".join(reversed(octets)) + ".in-addr.arpa"


def ptr_label(address: str, net: ipaddress.IPv4Network) -> str:
    """The name of an address's PTR record in the reverse zone ``net``."""
    return ".".join(reversed(address.split(".")[net.prefixlen // 8 :]))


def reverse_zones(subnets: Iterable[str]) -> dict[str, ipaddress.IPv4Network]:
    nets = {}
    for cidr in subnets:
        net = reverse_zone(cidr)
        if net is not None:
            nets[zone_name(net)] = net
    return nets


def stale_dns_names(previous: Iterable[str], current: Iterable[str], gone: Iterable[str]) -> list[str]:
    """DNS names to remove: remembered ones no longer in the inventory, and those of just deleted accounts."""
    prev, cur = set(previous), set(current)
    return sorted((prev - cur) | (set(gone) - cur))


def diff_text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------- the reconciliation (Samba)


class Run:
    def __init__(self, spec: dict[str, Any], check: bool) -> None:
        self.spec = spec
        self.check = check
        self.changes: list[str] = []
        self.warnings: list[str] = []
        # What the changed objects were and will be, for diff mode.
        self.before: list[str] = []
        self.after: list[str] = []
        self.lp = LoadParm()
        if spec.get("smb_conf"):
            self.lp.load(spec["smb_conf"])
        else:
            self.lp.load_default()
        self.samdb = SamDB(url=self.lp.samdb_url(), session_info=system_session(), lp=self.lp)
        self.base = str(self.samdb.domain_dn())
        self.marker = spec["marker"]

    def change(self, text: str, before: Iterable[str] = (), after: Iterable[str] = ()) -> bool:
        """Record a change; True when it should really be made."""
        self.changes.append(("would " if self.check else "") + text)
        self.before.extend(before)
        self.after.extend(after)
        return not self.check

    # ------------------------------------------------------------------ helpers

    def find(self, name: str, kind: str, attrs: list[str]) -> Any:
        cls = {
            "user": "(objectClass=user)(!(objectClass=computer))",
            "group": "(objectClass=group)",
            "computer": "(objectClass=computer)",
        }[kind]
        res = self.samdb.search(
            base=self.base,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&{cls}(sAMAccountName={ldb.binary_encode(name)}))",
            attrs=attrs,
        )
        return res[0] if len(res) else None

    def marked(self, kind: str, attrs: list[str]) -> list[Any]:
        cls = {"user": "(objectClass=user)(!(objectClass=computer))", "group": "(objectClass=group)"}[kind]
        return list(
            self.samdb.search(
                base=self.base,
                scope=ldb.SCOPE_SUBTREE,
                expression=f"(&{cls}(adminDescription={ldb.binary_encode(self.marker)}))",
                attrs=attrs,
            )
        )

    def replace(self, dn: Any, attrs: Mapping[str, str | None]) -> None:
        m = ldb.Message()
        m.dn = dn
        for k, v in attrs.items():
            if v is None or v == "":
                m[k] = ldb.MessageElement([], ldb.FLAG_MOD_DELETE, k)
            else:
                m[k] = ldb.MessageElement(str(v), ldb.FLAG_MOD_REPLACE, k)
        self.samdb.modify(m)

    @staticmethod
    def first(msg: Any, attr: str) -> str:
        return str(msg[attr][0]) if attr in msg and len(msg[attr]) else ""

    def samba_tool(self, *args: str) -> str:
        """Run a samba-tool command in this process (no argv, secrets stay here)."""
        from samba.netcmd.main import cmd_sambatool

        # samba-tool writes to file descriptors 1 and 2, where the module's own
        # result goes: its output is captured in a temporary file instead.
        sys.stdout.flush()
        saved = os.dup(1), os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 1)
            os.dup2(capture.fileno(), 2)
            try:
                try:
                    status = cmd_sambatool()._run("samba-tool", *args)
                except SystemExit as exc:
                    status = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            capture.seek(0)
            out = capture.read().decode("utf-8", "replace")
        if status:
            raise RuntimeError(f"samba-tool {args[0]} {args[1]} failed: {out.strip()[-800:]}")
        return str(out)

    # ------------------------------------------------------------------ groups

    def groups(self) -> None:
        for g in self.spec.get("groups", []):
            name, desc, mail = g["name"], g.get("description") or "", g.get("mail") or ""
            msg = self.find(name, "group", ["description", "mail"])
            if msg is None:
                lines = [f"group {name}"] + ([f"group {name} description: {desc}"] if desc else [])
                lines += [f"group {name} mail: {mail}"] if mail else []
                if self.change(f"create group {name}", after=lines):
                    self.samdb.newgroup(name, description=desc or None)
                    attrs = {"adminDescription": self.marker} | ({"mail": mail} if mail else {})
                    self.replace(self.find(name, "group", []).dn, attrs)
                continue
            old_mail = self.first(msg, "mail")
            if old_mail != mail and self.change(
                f"set mail address of group {name}",
                before=[f"group {name} mail: {old_mail}"],
                after=[f"group {name} mail: {mail}"],
            ):
                self.replace(msg.dn, {"mail": mail or None})
            old = self.first(msg, "description")
            if old != desc and self.change(
                f"set description of group {name}",
                before=[f"group {name} description: {old}"],
                after=[f"group {name} description: {desc}"],
            ):
                self.replace(msg.dn, {"description": desc or None})

    # ------------------------------------------------------------------ users

    def users(self) -> None:
        passwords = self.spec.get("passwords") or {}
        enforce = bool(self.spec.get("enforce_passwords"))
        for u in self.spec.get("users", []):
            name = u["name"]
            full = (u.get("full_name") or "").strip()
            given, surname = split_full_name(full)
            shell = u.get("shell") or ""
            msg = self.find(name, "user", ["displayName", "loginShell", "unicodePwd"])
            if msg is None:
                if name not in passwords or not passwords[name]:
                    raise RuntimeError(f"user {name} does not exist and no password was given for it")
                if self.change(f"create user {name}", after=[f"user {name}"]):
                    self.samdb.newuser(
                        name,
                        passwords[name],
                        givenname=given or None,
                        surname=surname or None,
                        loginshell=shell or None,
                    )
                    self.replace(self.find(name, "user", []).dn, {"adminDescription": self.marker})
                continue
            wanted = {"displayName": full, "loginShell": shell}
            current = {k: self.first(msg, k) for k in wanted}
            differ = attributes_differ(current, wanted)
            if differ and self.change(
                f"set {', '.join(sorted(differ))} of user {name}",
                before=[f"user {name} {k}: {current[k]}" for k in sorted(differ)],
                after=[f"user {name} {k}: {differ[k]}" for k in sorted(differ)],
            ):
                self.replace(msg.dn, differ)
            if enforce and passwords.get(name):
                creds = Credentials()
                creds.set_password(passwords[name])
                stored = bytes(msg["unicodePwd"][0]) if "unicodePwd" in msg else b""
                if stored != creds.get_nt_hash() and self.change(
                    f"reset the password of user {name}",
                    before=[f"user {name} password: not the supplied one"],
                    after=[f"user {name} password: the supplied one"],
                ):
                    self.samdb.setpassword(
                        f"(sAMAccountName={ldb.binary_encode(name)})",
                        passwords[name],
                        force_change_at_next_login=False,
                        username=name,
                    )

    def memberships(self) -> None:
        spec_users = self.spec.get("users", [])
        users = {u["name"].lower(): u for u in spec_users}
        for g in self.spec.get("groups", []):
            name = g["name"]
            msg = self.find(name, "group", ["member"])
            current: set[str] = set()
            if msg is not None:  # None: check mode, group not created yet
                for dn in msg.get("member", []):
                    res = self.samdb.search(base=str(dn), scope=ldb.SCOPE_BASE, attrs=["sAMAccountName"])
                    if len(res):
                        current.add(self.first(res[0], "sAMAccountName").lower())
            add, remove = membership_delta(spec_users, name, current)
            if add and self.change(
                f"add {', '.join(add)} to group {name}", after=[f"group {name} member: {a}" for a in add]
            ):
                self.samdb.add_remove_group_members(name, [users[a]["name"] for a in add], add_members_operation=True)
            if remove and self.change(
                f"remove {', '.join(remove)} from group {name}", before=[f"group {name} member: {r}" for r in remove]
            ):
                self.samdb.add_remove_group_members(
                    name, [users[r]["name"] for r in remove], add_members_operation=False
                )

    def removals(self) -> None:
        # Only users and groups carrying the marker (created by this module) are ever deleted.
        users = [self.first(m, "sAMAccountName") for m in self.marked("user", ["sAMAccountName"])]
        for name in stale_marked(users, [u["name"] for u in self.spec.get("users", [])]):
            if self.change(f"delete user {name}", before=[f"user {name}"]):
                self.samdb.deleteuser(name)
        groups = [self.first(m, "sAMAccountName") for m in self.marked("group", ["sAMAccountName"])]
        for name in stale_marked(groups, [g["name"] for g in self.spec.get("groups", [])]):
            if self.change(f"delete group {name}", before=[f"group {name}"]):
                self.samdb.deletegroup(name)

    # ------------------------------------------------------------------ password policy

    def policy(self) -> None:
        p = self.spec.get("policy")
        if not p:
            return
        res = self.samdb.search(
            base=self.base,
            scope=ldb.SCOPE_BASE,
            attrs=[
                "minPwdLength",
                "pwdProperties",
                "pwdHistoryLength",
                "maxPwdAge",
                "minPwdAge",
                "lockoutThreshold",
                "lockoutDuration",
                "lockOutObservationWindow",
            ],
        )[0]
        cur = {k: int(self.first(res, k) or 0) for k in res if k != "dn"}
        differ = policy_differ(p, cur)
        if not differ:
            return
        if not self.change(
            "set password policy: " + ", ".join(f"{attr}={val}" for _, attr, _, val in differ),
            before=[f"password policy {attr}: {cur.get(attr)}" for _, attr, _, _ in differ],
            after=[f"password policy {attr}: {want}" for _, attr, want, _ in differ],
        ):
            return
        tool, direct = policy_split(differ)
        if tool:
            self.samba_tool(
                "domain",
                "passwordsettings",
                "set",
                "-H",
                self.samdb.url,
                *[f"{opt}={val}" for opt, _, _, val in tool],
            )
        if direct:
            self.replace(ldb.Dn(self.samdb, self.base), {"minPwdLength": str(direct[0][2])})

    # ------------------------------------------------------------------ computers

    def computer_ou(self) -> str | None:
        ou = self.spec.get("computer_ou")
        if not ou:
            return None
        dn = f"{ou},{self.base}"
        res = self.samdb.search(
            base=self.base,
            scope=ldb.SCOPE_ONELEVEL,
            expression=f"(distinguishedName={ldb.binary_encode(dn)})",
            attrs=[],
        )
        if not len(res) and self.change(f"create {ou}", after=[dn]):
            self.samdb.create_ou(dn, description="Computers joined by provision; removed when dropped from the spec")
        return dn

    def computers(self, ou_dn: str | None) -> list[str]:
        """Delete member accounts in the computer OU that the spec no longer has; returns their host names."""
        c = self.spec.get("computers") or {}
        if not ou_dn or not c.get("prune"):
            return []
        try:
            res = self.samdb.search(
                base=ou_dn,
                scope=ldb.SCOPE_SUBTREE,
                expression=f"(&(objectClass=computer)(userAccountControl:"
                f"{ldb.OID_COMPARATOR_AND}:={UF_WORKSTATION_TRUST_ACCOUNT}))",
                attrs=["sAMAccountName", "dNSHostName"],
            )
        except ldb.LdbError:
            return []  # OU not there yet (check mode)
        present = [(self.first(m, "sAMAccountName").rstrip("$"), self.first(m, "dNSHostName")) for m in res]
        stale = stale_computers(present, c.get("members", []))
        if not stale:
            return []
        if not self.prune_allowed(
            len(stale),
            len(present),
            f"computer accounts in {ou_dn} ("
            + ", ".join(n for n, _ in stale[:10])
            + (", ..." if len(stale) > 10 else "")
            + ")",
        ):
            return []
        gone = []
        for name, _dns in stale:
            if self.change(f"delete computer {name}", before=[f"computer {name}"]):
                self.samba_tool("computer", "delete", name, "-H", self.samdb.url)
            gone.append(name.lower())
        return gone

    # ------------------------------------------------------------------ DNS

    def dns_connect(self) -> Any:
        d = self.spec["dns"]
        creds = Credentials()
        creds.guess(self.lp)
        creds.set_username("Administrator")
        creds.set_domain(self.spec["netbios"])
        creds.set_password(d["admin_password"])
        creds.set_kerberos_state(DONT_USE_KERBEROS)
        return dnsserver.dnsserver(f"ncacn_ip_tcp:{d.get('server', '127.0.0.1')}[sign]", self.lp, creds)

    def records(self, conn: Any, zone: str, name: str, rtype: int) -> list[Any]:
        server = self.spec["dns"].get("server", "127.0.0.1")
        try:
            _, res = conn.DnssrvEnumRecords2(
                dnsserver.DNS_CLIENT_VERSION_LONGHORN,
                0,
                server,
                zone,
                name,
                None,
                rtype,
                dnsserver.DNS_RPC_VIEW_AUTHORITY_DATA,
                None,
                None,
            )
        except WERRORError as e:
            if e.args[0] == werror.WERR_DNS_ERROR_NAME_DOES_NOT_EXIST:
                return []
            raise
        if not res or not res.count:
            return []
        # The first node is the one asked for (as samba.dnsserver.dns_record_match reads it).
        return [r for r in res.rec[0].records if r.wType == rtype]

    def update(self, conn: Any, zone: str, name: str, rtype: str, add: str | None, delete: str | None) -> None:
        server = self.spec["dns"].get("server", "127.0.0.1")
        add_buf = del_buf = None
        if add is not None:
            add_buf = dnsserver.DNS_RPC_RECORD_BUF()
            add_buf.rec = record_from_string(rtype, add)
        if delete is not None:
            del_buf = dnsserver.DNS_RPC_RECORD_BUF()
            del_buf.rec = record_from_string(rtype, delete)
        conn.DnssrvUpdateRecord2(dnsserver.DNS_CLIENT_VERSION_LONGHORN, 0, server, zone, name, add_buf, del_buf)

    def zones(self, conn: Any) -> set[str]:
        server = self.spec["dns"].get("server", "127.0.0.1")
        _, res = conn.DnssrvComplexOperation2(
            dnsserver.DNS_CLIENT_VERSION_LONGHORN,
            0,
            server,
            None,
            "EnumZones",
            dnsserver.DNSSRV_TYPEID_DWORD,
            dnsserver.DNS_ZONE_REQUEST_PRIMARY,
        )
        return {z.pszZoneName.lower() for z in (res.ZoneArray if res else [])}

    def create_zone(self, conn: Any, zone: str) -> None:
        server = self.spec["dns"].get("server", "127.0.0.1")
        info = dnsserver.DNS_RPC_ZONE_CREATE_INFO_LONGHORN()
        info.pszZoneName = zone
        info.dwZoneType = dnsp.DNS_ZONE_TYPE_PRIMARY
        info.fAging = 0
        info.fDsIntegrated = 1
        info.fLoadExisting = 1
        info.dwDpFlags = dnsserver.DNS_DP_DOMAIN_DEFAULT
        conn.DnssrvOperation2(
            dnsserver.DNS_CLIENT_VERSION_LONGHORN,
            0,
            server,
            None,
            0,
            "ZoneCreate",
            dnsserver.DNSSRV_TYPEID_ZONE_CREATE,
            info,
        )
        param = dnsserver.DNS_RPC_NAME_AND_PARAM()
        param.pszNodeName = "AllowUpdate"
        param.dwParam = dnsp.DNS_ZONE_UPDATE_SECURE
        conn.DnssrvOperation2(
            dnsserver.DNS_CLIENT_VERSION_LONGHORN,
            0,
            server,
            zone,
            0,
            "ResetDwordProperty",
            dnsserver.DNSSRV_TYPEID_NAME_AND_PARAM,
            param,
        )

    def dns(self, gone: list[str]) -> None:
        d = self.spec.get("dns")
        if not d:
            return
        zone = self.spec["dns_domain"].lower()
        conn = self.dns_connect()
        nets = reverse_zones(d.get("subnets", []))
        existing = self.zones(conn)
        for rz in sorted(nets):
            if rz not in existing and self.change(f"create reverse zone {rz}", after=[f"zone {rz}"]):
                self.create_zone(conn, rz)
        for host, address in sorted(d.get("hosts", {}).items()):
            name = host.split(".")[0].lower()
            fqdn = f"{name}.{zone}"
            current = [r.data for r in self.records(conn, zone, name, dnsp.DNS_TYPE_A)]
            if address not in current and self.change(f"add A {fqdn} -> {address}", after=[f"A {fqdn} -> {address}"]):
                self.update(conn, zone, name, "A", address, None)
            # Every host has exactly its spec address: the DCs too, since Samba is pinned to it
            # (an address of another interface, registered by a join, is stale).
            for old in current:
                if old != address and self.change(f"delete stale A {fqdn} -> {old}", before=[f"A {fqdn} -> {old}"]):
                    self.update(conn, zone, name, "A", None, old)
            ip = ipaddress.ip_address(address)
            for rz, net in nets.items():
                if ip not in net:
                    continue
                label = ptr_label(address, net)
                ptrs = [str(r.data.str).rstrip(".").lower() for r in self.records(conn, rz, label, dnsp.DNS_TYPE_PTR)]
                # In check mode, PTR records of a reverse zone that is yet to be created are not
                # reported (its creation is).
                if (
                    (rz in existing or not self.check)
                    and fqdn not in ptrs
                    and self.change(f"add PTR {address} -> {fqdn}", after=[f"PTR {address} -> {fqdn}"])
                ):
                    self.update(conn, rz, label, "PTR", fqdn, None)
                for old in ptrs:
                    if old != fqdn and self.change(
                        f"delete stale PTR {address} -> {old}", before=[f"PTR {address} -> {old}"]
                    ):
                        self.update(conn, rz, label, "PTR", None, old)
        # Hosts that left the inventory (remembered in the state file) and hosts
        # whose computer accounts were just deleted: their records go too.
        state = self.read_state()
        current_names = {h.split(".")[0].lower() for h in d.get("hosts", {})}
        previous = set(state.get("dns_hosts", []))
        stale = stale_dns_names(previous, current_names, gone)
        removable = stale if self.prune_allowed(len(stale), len(previous | current_names), "DNS names") else []
        for name in removable:
            for rec in self.records(conn, zone, name, dnsp.DNS_TYPE_A):
                address = rec.data
                if self.change(f"delete A {name}.{zone} -> {address}", before=[f"A {name}.{zone} -> {address}"]):
                    self.update(conn, zone, name, "A", None, address)
                ip = ipaddress.ip_address(address)
                for rz, net in nets.items():
                    if ip in net:
                        label = ptr_label(address, net)
                        for r in self.records(conn, rz, label, dnsp.DNS_TYPE_PTR):
                            target = str(r.data.str).rstrip(".")
                            if target.lower() == f"{name}.{zone}" and self.change(
                                f"delete PTR {address} -> {target}", before=[f"PTR {address} -> {target}"]
                            ):
                                self.update(conn, rz, label, "PTR", None, target)
        # Names held back by the safety net stay remembered, so a later run can remove them.
        keep = sorted(current_names | (set(stale) - set(removable)))
        mx_kept = self.mx(conn, zone, state.get("mx", []))
        if (keep != sorted(previous) or mx_kept != state.get("mx", [])) and not self.check:
            state["dns_hosts"] = keep
            state["mx"] = mx_kept
            self.write_state(state)

    def mx(self, conn: Any, zone: str, managed: list[str]) -> list[str]:
        """The mail domain's MX records in line; returns the targets this module now manages."""
        m = self.spec["dns"].get("mx")
        if not m:
            return list(managed)
        node, domain, wanted = m["node"], m["domain"], m["targets"]
        current = {
            str(r.data.nameExchange.str).rstrip(".").lower(): int(r.data.wPreference)
            for r in self.records(conn, zone, node, dnsp.DNS_TYPE_MX)
        }
        for target in wanted:
            if current.get(target) != MX_PREFERENCE and self.change(
                f"add MX {domain} -> {target}", after=[f"MX {domain} -> {MX_PREFERENCE} {target}"]
            ):
                self.update(conn, zone, node, "MX", f"{target} {MX_PREFERENCE}", None)
        for target, pref in sorted(current.items()):
            # Only records this module added: an MX someone else keeps here stays.
            if (
                target in managed
                and target not in wanted
                and self.change(f"delete MX {domain} -> {target}", before=[f"MX {domain} -> {pref} {target}"])
            ):
                self.update(conn, zone, node, "MX", None, f"{target} {pref}")
        return sorted(wanted)

    # ------------------------------------------------------------------ state

    def read_state(self) -> dict[str, Any]:
        path = self.spec.get("state_file")
        if not path or not Path(path).exists():
            return {}
        state: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        path = self.spec.get("state_file")
        if not path:
            return
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = Path(f"{path}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, **state}, fh, indent=2, sort_keys=True)
            fh.write("\n")
        tmp.replace(path)

    def prune_allowed(self, stale: int, total: int, what: str) -> bool:
        """The safety net for deletions of things that left the inventory."""
        c = self.spec.get("computers") or {}
        if not stale:
            return True
        if not c.get("prune"):
            return False
        limit = prune_limit(total, c)
        if stale > limit:
            self.warnings.append(
                f"{stale} of {total} {what} are no longer in the inventory: more than the safety limit of "
                f"{limit}, so none was removed. A partial inventory (--limit) looks like this; raise "
                "domain_directory_prune_max / _percent if the removal is really meant."
            )
            return False
        return True

    # ------------------------------------------------------------------ main

    def run(self) -> None:
        self.groups()
        self.users()
        self.memberships()
        self.removals()
        self.policy()
        ou = self.computer_ou()
        gone = self.computers(ou)
        self.dns(gone)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    secrets = secrets_of(module.params)
    try:
        request = build_request(module.params)
    except Invalid as exc:
        module.fail_json(msg=mask(str(exc), secrets), changes=[])
    try:
        load_samba()
    except MissingSamba as exc:
        module.fail_json(msg=str(exc), changes=[])
    run: Run | None = None
    try:
        run = Run(request, check=module.check_mode)
        run.run()
    except Exception as exc:  # reported with what was done before, never with a secret
        for warning in run.warnings if run else []:
            module.warn(warning)
        module.fail_json(msg=error_message(exc, secrets), changes=run.changes if run else [])
    assert run is not None
    # Warnings are returned in the result's warnings (and shown by Ansible).
    for warning in run.warnings:
        module.warn(warning)
    result: dict[str, Any] = {"changed": bool(run.changes), "changes": run.changes}
    if module._diff and run.changes:
        result["diff"] = {
            "before": diff_text(run.before),
            "after": diff_text(run.after),
            "before_header": f"directory of {request['dns_domain'] or run.base}",
            "after_header": f"directory of {request['dns_domain'] or run.base}",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
