#!/usr/bin/python
"""Ansible module: the login and sudo policy of a Samba AD domain, kept in its directory for every client."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_ad_policy
short_description: Keep the login and sudo policy of a Samba AD domain in its directory
description:
  - Runs on the first DC of a Samba AD domain (the schema master), as root. The members read the
    policy from the directory, so a change of policy is a change on the DCs only.
  - Login - one group per host, C(provision-login-<host>) in O(ou), whose members are the users and
    groups allowed to log in there (and the Domain Admins group, nested, where the policy lets the
    domain's administrators in). sssd members test it with C(ad_access_filter), winbind members and
    DCs read its members (nested ones too) with a directory search. It is a global distribution
    group, not a security group - it never enters a user's Kerberos ticket or logon token, so a user
    allowed on two thousand hosts does not carry two thousand group SIDs (AD's token holds about
    1,000). A login group of another type is converted (domain local through universal, as AD
    demands). Groups of hosts that left O(logins) are deleted (only groups carrying O(marker)).
  - Sudo - one C(sudoRole) object per rule in O(sudo_ou), which Authenticated Users may read (an
    inherited ACE on the OU) (sudoUser, sudoHost, sudoCommand,
    sudoRunAsUser root, sudoOption C(!authenticate) for rules without password, sudoOrder), read by sssd's
    sudo provider. The sudo schema (the sudo project's attributes and the sudoRole class, OIDs
    1.3.6.1.4.1.15953.9) is added to the directory's schema the first time a rule needs it, and never
    removed. Rules that left O(sudo) are deleted (only objects carrying O(marker)).
  - Needs Samba's Python bindings (python3-samba) on the host; fails saying so without them.
  - Supports check mode (nothing is changed; C(changes) says what would be) and diff mode.
version_added: "0.2.0"
author: provision maintainers
options:
  marker:
    description: adminDescription of the groups and description of the sudo rules this module creates; only
      objects carrying it are ever changed or deleted.
    type: str
    default: provision login and sudo policy
  ou:
    description: OU, relative to the domain, of the login groups; created when missing.
    type: str
    default: OU=Provision Policy
  logins:
    description: The members and who may log in there.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name of the member; its group is C(provision-login-<host>) (lower case).
        type: str
        required: true
      users:
        description: Users (sAMAccountName) allowed to log in there; each must exist.
        type: list
        elements: str
        default: []
      groups:
        description:
          - Groups (sAMAccountName) whose members may all log in there, nested in the login group (members
            nested groups count on every client); each must exist.
        type: list
        elements: str
        default: []
      admins:
        description: Whether the Domain Admins group (nested) may log in there too.
        type: bool
        default: false
  sudo_ou:
    description: OU, relative to the domain, of the sudo rules; created when a rule needs it.
    type: str
    default: OU=SUDOers
  sudo:
    description: The sudo rules, in order (they add up).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name (cn) of the rule's sudoRole object.
        type: str
        required: true
      users:
        description: Users who may run the commands.
        type: list
        elements: str
        default: []
      groups:
        description: Groups whose members may run the commands.
        type: list
        elements: str
        default: []
      hosts:
        description: Host names (short and fully qualified) where the rule applies.
        type: list
        elements: str
        default: []
      commands:
        description: C(ALL), or absolute paths of commands, run as root.
        type: list
        elements: str
        default: [ALL]
      nopasswd:
        description: Whether the commands run without the user's password.
        type: bool
        default: false
  smb_conf:
    description: smb.conf of the DC; Samba's default when left out.
    type: path
"""

EXAMPLES = r"""
- name: Keep the login and sudo policy in the directory
  provision_ad_policy:
    logins:
      - {host: ws1, users: [bob], groups: [staff]}
      - {host: fs1, users: [], admins: true}
      - {host: dc1, admins: true}
    sudo:
      - {name: provision-sudo-0, groups: [admins], hosts: [ws1, ws1.lab.example], commands: [ALL]}
"""

RETURN = r"""
changes:
  description: What was done (or in check mode would be), one sentence each; on failure, what was done before it.
  returned: always
  type: list
  elements: str
"""

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterable, Mapping, Sequence  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_samba import MissingSamba, import_samba  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "marker": {"type": "str", "default": "provision login and sudo policy"},
    "ou": {"type": "str", "default": "OU=Provision Policy"},
    "logins": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "host": {"type": "str", "required": True},
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "admins": {"type": "bool", "default": False},
        },
    },
    "sudo_ou": {"type": "str", "default": "OU=SUDOers"},
    "sudo": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "hosts": {"type": "list", "elements": "str", "default": []},
            "commands": {"type": "list", "elements": "str", "default": ["ALL"]},
            "nopasswd": {"type": "bool", "default": False},
        },
    },
    "smb_conf": {"type": "path"},
}

LOGIN_PREFIX = "provision-login-"
# groupType bits: the scope (global, domain local, universal) and security, which makes a group part
# of its members' tokens. Login groups are global distribution groups (LOGIN_GROUP_TYPE).
GLOBAL_SCOPE, LOCAL_SCOPE, UNIVERSAL_SCOPE = 0x2, 0x4, 0x8
SECURITY = 0x80000000
LOGIN_GROUP_TYPE = GLOBAL_SCOPE
DOMAIN_ADMINS_RID = 512
SUDO_OID = "1.3.6.1.4.1.15953.9"
# The sudo project's schema for Active Directory (docs/schema.ActiveDirectory):
# name -> (OID suffix, attributeSyntax, oMSyntax, single-valued, indexed).
SUDO_ATTRIBUTES: dict[str, tuple[str, str, int, bool, bool]] = {
    "sudoUser": ("1.1", "2.5.5.5", 22, False, True),
    "sudoHost": ("1.2", "2.5.5.5", 22, False, False),
    "sudoCommand": ("1.3", "2.5.5.5", 22, False, False),
    "sudoRunAs": ("1.4", "2.5.5.5", 22, False, False),
    "sudoOption": ("1.5", "2.5.5.5", 22, False, False),
    "sudoRunAsUser": ("1.6", "2.5.5.5", 22, False, False),
    "sudoRunAsGroup": ("1.7", "2.5.5.5", 22, False, False),
    "sudoNotBefore": ("1.8", "2.5.5.11", 24, False, False),
    "sudoNotAfter": ("1.9", "2.5.5.11", 24, False, False),
    "sudoOrder": ("1.10", "2.5.5.9", 2, True, False),
}
# The attributes of a rule this module writes, in the order the diff shows them.
RULE_ATTRIBUTES = ("sudoUser", "sudoHost", "sudoCommand", "sudoRunAsUser", "sudoOption", "sudoOrder")

# Adds the sudo schema: the attributes, a schema refresh, the class, a refresh (stdin: JSON
# {attributes: [LDIF], class: LDIF}; argv[1]: smb.conf or "").
SCHEMA_SCRIPT = """
import json, sys
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
lp = LoadParm()
lp.load(sys.argv[1]) if sys.argv[1] else lp.load_default()
lp.set("dsdb:schema update allowed", "true")
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
todo = json.load(sys.stdin)
refresh = "dn:\\nchangetype: modify\\nadd: schemaUpdateNow\\nschemaUpdateNow: 1\\n"
for ldif in todo["attributes"]:
    db.add_ldif(ldif)
db.modify_ldif(refresh)
db.add_ldif(todo["class"])
db.modify_ldif(refresh)
"""

# Authenticated Users may read the sudo rules (sssd reads them with the machine account):
# read property, list children, list object, read control; inherited by the rules.
READ_MASK = 0x10 | 0x4 | 0x80 | 0x20000
READ_ACE = "(A;CI;RPLCLORC;;;AU)"

ldb: Any = None
security: Any = None
ndr_pack: Any = None
ndr_unpack: Any = None
system_session: Any = None
LoadParm: Any = None
SamDB: Any = None


class Invalid(Exception):
    """The request cannot be carried out as given."""


def load_samba() -> None:
    global ldb, security, ndr_pack, ndr_unpack, system_session, LoadParm, SamDB
    ldb, security, ndr, auth, param, samdb = import_samba(
        "ldb", "samba.dcerpc.security", "samba.ndr", "samba.auth", "samba.param", "samba.samdb"
    )
    ndr_pack, ndr_unpack = ndr.ndr_pack, ndr.ndr_unpack
    system_session, LoadParm, SamDB = auth.system_session, param.LoadParm, samdb.SamDB


# --------------------------------------------------------------------------- pure parts


def login_group(host: str) -> str:
    return LOGIN_PREFIX + host.lower()


def group_type_steps(current: int) -> list[int]:
    """The groupType values that turn a group of type ``current`` into a login group, one modify each:
    AD changes a domain local group to global only through universal, and the scope before the
    security flag (as signed 32-bit values, the way the directory stores them)."""
    scope, security = current & (GLOBAL_SCOPE | LOCAL_SCOPE | UNIVERSAL_SCOPE), current & SECURITY
    steps = []
    if scope == LOCAL_SCOPE:
        steps.append(UNIVERSAL_SCOPE | security)
    if scope != GLOBAL_SCOPE:
        steps.append(GLOBAL_SCOPE | security)
    if security:
        steps.append(LOGIN_GROUP_TYPE)
    return [s - (1 << 32) if s & SECURITY else s for s in steps]


def check_request(params: Mapping[str, Any]) -> None:
    """Refuse what would be ambiguous in the directory: the same member or rule twice, an empty marker."""
    problems = []
    if not params["marker"]:
        problems.append("marker must not be empty")
    for what, key, items in (("member", "host", params["logins"]), ("sudo rule", "name", params["sudo"])):
        seen: set[str] = set()
        for item in items:
            folded = item[key].lower()
            if folded in seen:
                problems.append(f"{what} {item[key]} is given twice")
            seen.add(folded)
    for rule in params["sudo"]:
        if not (rule["users"] or rule["groups"]) or not rule["hosts"] or not rule["commands"]:
            problems.append(f"sudo rule {rule['name']} needs users or groups, hosts and commands")
    if problems:
        raise Invalid("; ".join(problems))


def rule_values(rule: Mapping[str, Any], order: int) -> dict[str, list[str]]:
    """The attributes of a sudoRole object for one rule."""
    return {
        "sudoUser": [*rule["users"], *(f"%{g}" for g in rule["groups"])],
        "sudoHost": list(rule["hosts"]),
        "sudoCommand": list(rule["commands"]),
        "sudoRunAsUser": ["root"],
        "sudoOption": ["!authenticate"] if rule["nopasswd"] else [],
        "sudoOrder": [str(order)],
    }


def rule_lines(name: str, values: Mapping[str, Sequence[str]]) -> list[str]:
    return [f"sudoRole {name} {attr}: {v}" for attr in RULE_ATTRIBUTES for v in values.get(attr, ())]


def schema_ldif(schema_dn: str) -> tuple[str, str]:
    """LDIF of the sudo attributes and of the sudoRole class: two steps, the class needs the attributes loaded."""
    attrs = []
    for name, (suffix, syntax, om, single, indexed) in SUDO_ATTRIBUTES.items():
        attrs.append(
            f"dn: CN={name},{schema_dn}\nobjectClass: top\nobjectClass: attributeSchema\ncn: {name}\n"
            f"attributeID: {SUDO_OID}.{suffix}\nattributeSyntax: {syntax}\noMSyntax: {om}\n"
            f"isSingleValued: {'TRUE' if single else 'FALSE'}\nsearchFlags: {1 if indexed else 0}\n"
            f"lDAPDisplayName: {name}\nadminDescription: sudo schema ({name})\nshowInAdvancedViewOnly: TRUE\n"
        )
    may = "".join(f"mayContain: {name}\n" for name in SUDO_ATTRIBUTES) + "mayContain: description\n"
    cls = (
        f"dn: CN=sudoRole,{schema_dn}\nobjectClass: top\nobjectClass: classSchema\ncn: sudoRole\n"
        f"governsID: {SUDO_OID}.2.1\nobjectClassCategory: 1\nsubClassOf: top\nrDNAttID: cn\n"
        f"possSuperiors: container\npossSuperiors: organizationalUnit\n{may}"
        f"lDAPDisplayName: sudoRole\nadminDescription: sudo schema (sudoRole)\nshowInAdvancedViewOnly: TRUE\n"
    )
    return "\n".join(attrs), cls


def first(msg: Any, attr: str) -> str:
    """The first value of an attribute of a search result, as text ("" when it has none)."""
    return str(msg[attr][0]) if attr in msg and len(msg[attr]) else ""


def every(msg: Any, attr: str) -> list[str]:
    """All values of an attribute of a search result, as text."""
    return [str(v) for v in msg[attr]] if attr in msg else []


def diff_text(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in sorted(lines))


# --------------------------------------------------------------------------- the directory


class Run:
    def __init__(self, params: Mapping[str, Any], check: bool) -> None:
        self.params = params
        self.check = check
        self.changes: list[str] = []
        self.before: list[str] = []
        self.after: list[str] = []
        self.samdb = self.open()
        self.base = str(self.samdb.domain_dn())
        self.marker = params["marker"]

    def open(self) -> Any:
        lp = LoadParm()
        if self.params.get("smb_conf"):
            lp.load(self.params["smb_conf"])
        else:
            lp.load_default()
        return SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)

    def change(self, text: str, before: Iterable[str] = (), after: Iterable[str] = ()) -> bool:
        """Record a change; True when it should really be made."""
        self.changes.append(("would " if self.check else "") + text)
        self.before.extend(before)
        self.after.extend(after)
        return not self.check

    def search(self, base: str, expression: str, attrs: list[str], scope: Any = None) -> list[Any]:
        try:
            return list(
                self.samdb.search(
                    base=base,
                    scope=ldb.SCOPE_SUBTREE if scope is None else scope,
                    expression=expression,
                    attrs=attrs,
                )
            )
        except ldb.LdbError as exc:
            if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                return []
            raise

    def ensure_ou(self, rdn: str) -> str:
        dn = f"{rdn},{self.base}"
        if not self.search(dn, "(objectClass=organizationalUnit)", ["ou"], ldb.SCOPE_BASE) and self.change(
            f"create {rdn}"
        ):
            self.samdb.add({"dn": dn, "objectClass": "organizationalUnit"})
        return dn

    def dn_of(self, name: str, kind: str) -> str | None:
        cls = "(objectClass=user)(!(objectClass=computer))" if kind == "user" else "(objectClass=group)"
        res = self.search(self.base, f"(&{cls}(sAMAccountName={ldb.binary_encode(name)}))", ["dn"])
        return str(res[0].dn) if res else None

    def domain_admins(self) -> str:
        sid = f"{self.samdb.get_domain_sid()}-{DOMAIN_ADMINS_RID}"
        res = self.search(self.base, f"(objectSid={sid})", ["dn"])
        if not res:
            raise Invalid("the directory has no Domain Admins group")
        return str(res[0].dn)

    # ------------------------------------------------------------------ logins

    def logins(self) -> None:
        wanted = {login_group(item["host"]): item for item in self.params["logins"]}
        ou = f"{self.params['ou']},{self.base}"
        present = {
            str(m["sAMAccountName"][0]).lower(): m
            for m in self.search(
                self.base,
                f"(&(objectClass=group)(sAMAccountName={LOGIN_PREFIX}*))",
                ["sAMAccountName", "member", "adminDescription", "groupType"],
            )
        }
        if wanted:
            self.ensure_ou(self.params["ou"])
        admins_dn = self.domain_admins() if any(i["admins"] for i in wanted.values()) else None
        accounts: dict[tuple[str, str], str] = {}
        for kind in ("user", "group"):
            for name in sorted({n for i in wanted.values() for n in i[f"{kind}s"]}):
                dn = self.dn_of(name, kind)
                if dn is None and not self.check:
                    raise Invalid(f"{kind} {name} is not in the directory")
                accounts[kind, name] = dn or f"CN={name},CN=Users,{self.base}"
        for group, item in sorted(wanted.items()):
            members = {
                accounts[kind, n].lower(): accounts[kind, n] for kind in ("user", "group") for n in item[f"{kind}s"]
            }
            if item["admins"] and admins_dn:
                members[admins_dn.lower()] = admins_dn
            shown = [f"{group} member: {'Domain Admins' if dn == admins_dn else dn}" for dn in members.values()]
            msg = present.get(group)
            if msg is None:
                if self.change(f"create login group {group} ({len(members)} members)", after=shown):
                    self.samdb.add(
                        {
                            "dn": f"CN={group},{ou}",
                            "objectClass": "group",
                            "sAMAccountName": group,
                            "groupType": str(LOGIN_GROUP_TYPE),
                            "description": f"Who may log in on {item['host']} (provision's login policy)",
                            "adminDescription": self.marker,
                        }
                    )
                    self.set_members(f"CN={group},{ou}", list(members.values()), [])
                continue
            if first(msg, "adminDescription") != self.marker:
                raise Invalid(f"group {group} exists but was not made by provision; rename or remove it")
            steps = group_type_steps(int(first(msg, "groupType") or LOGIN_GROUP_TYPE))
            if steps and self.change(
                f"login group {group}: make it a global distribution group",
                before=[f"{group} groupType: {first(msg, 'groupType')}"],
                after=[f"{group} groupType: {LOGIN_GROUP_TYPE}"],
            ):
                for step in steps:
                    m = ldb.Message()
                    m.dn = msg.dn
                    m["groupType"] = ldb.MessageElement(str(step), ldb.FLAG_MOD_REPLACE, "groupType")
                    self.samdb.modify(m)
            current = {v.lower(): v for v in every(msg, "member")}
            add = [dn for key, dn in members.items() if key not in current]
            drop = [dn for key, dn in current.items() if key not in members]
            if (add or drop) and self.change(
                f"login group {group}: add {len(add)}, remove {len(drop)} members",
                before=[f"{group} member: {dn}" for dn in current.values()],
                after=shown,
            ):
                self.set_members(str(msg.dn), add, drop)
        for group, msg in sorted(present.items()):
            if (
                group not in wanted
                and first(msg, "adminDescription") == self.marker
                and self.change(f"delete login group {group} (its host left the spec)", before=[group])
            ):
                self.samdb.delete(msg.dn)

    def set_members(self, dn: str, add: list[str], drop: list[str]) -> None:
        if add:
            m = ldb.Message()
            m.dn = ldb.Dn(self.samdb, dn)
            m["add"] = ldb.MessageElement(add, ldb.FLAG_MOD_ADD, "member")
            self.samdb.modify(m)
        if drop:
            m = ldb.Message()
            m.dn = ldb.Dn(self.samdb, dn)
            m["drop"] = ldb.MessageElement(drop, ldb.FLAG_MOD_DELETE, "member")
            self.samdb.modify(m)

    # ------------------------------------------------------------------ sudo

    def sudo_schema(self) -> None:
        schema_dn = str(self.samdb.get_schema_basedn())
        if self.search(schema_dn, "(&(objectClass=classSchema)(lDAPDisplayName=sudoRole))", ["cn"]):
            return
        if not self.change("add the sudo schema (sudoRole and its attributes) to the directory"):
            return
        have = {
            str(m["lDAPDisplayName"][0])
            for m in self.search(
                schema_dn, "(|" + "".join(f"(lDAPDisplayName={a})" for a in SUDO_ATTRIBUTES) + ")", ["lDAPDisplayName"]
            )
        }
        # Schema changes need Samba's switch for them, on the schema master. Samba reads it when a
        # process first opens sam.ldb, so they run in a process of their own (Samba's bindings, the
        # LDIF on stdin; no secret is involved).
        attrs, cls = schema_ldif(schema_dn)
        todo = [b for b in attrs.split("\n\n") if b.split("\ncn: ", 1)[1].split("\n", 1)[0] not in have]
        proc = subprocess.run(
            [sys.executable, "-c", SCHEMA_SCRIPT, self.params.get("smb_conf") or ""],
            input=json.dumps({"attributes": todo, "class": cls}),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise Invalid(f"adding the sudo schema failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
        self.samdb = self.open()

    def grant_read(self, dn: str) -> None:
        """Let Authenticated Users read the OU and what it holds (the OU's own ACL, inherited by
        its rules): AD's default for a new class gives members no read access to sudoRole objects."""
        found = self.search(dn, "(objectClass=*)", ["nTSecurityDescriptor"], ldb.SCOPE_BASE)
        if not found:  # check mode: the OU is not there yet
            return
        desc = ndr_unpack(security.descriptor, found[0]["nTSecurityDescriptor"][0])
        for ace in desc.dacl.aces if desc.dacl else []:
            if (
                str(ace.trustee) == security.SID_NT_AUTHENTICATED_USERS
                and ace.type == security.SEC_ACE_TYPE_ACCESS_ALLOWED
                and ace.flags & security.SEC_ACE_FLAG_CONTAINER_INHERIT
                and ace.access_mask & READ_MASK == READ_MASK
            ):
                return
        if not self.change(f"let Authenticated Users read {dn}", after=[f"{dn} ACE {READ_ACE}"]):
            return
        sid = security.dom_sid(str(self.samdb.get_domain_sid()))
        sddl = desc.as_sddl(sid)
        at = sddl.index("(") if "(" in sddl else len(sddl)
        new = security.descriptor.from_sddl(sddl[:at] + READ_ACE + sddl[at:], sid)
        m = ldb.Message()
        m.dn = ldb.Dn(self.samdb, dn)
        m["nTSecurityDescriptor"] = ldb.MessageElement(ndr_pack(new), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
        self.samdb.modify(m)

    def sudo(self) -> None:
        rules = self.params["sudo"]
        ou = f"{self.params['sudo_ou']},{self.base}"
        schema = str(self.samdb.get_schema_basedn())
        known = bool(self.search(schema, "(&(objectClass=classSchema)(lDAPDisplayName=sudoRole))", ["cn"]))
        if not rules and not known:
            return
        if rules:
            self.sudo_schema()
            self.grant_read(self.ensure_ou(self.params["sudo_ou"]))
        present = {
            str(m["cn"][0]): m
            for m in (
                self.search(ou, "(objectClass=sudoRole)", ["cn", "description", *RULE_ATTRIBUTES]) if known else []
            )
        }
        for order, rule in enumerate(rules, 1):
            name = rule["name"]
            values = rule_values(rule, order)
            msg = present.get(name)
            if msg is None:
                if self.change(f"create sudo rule {name}", after=rule_lines(name, values)):
                    entry: dict[str, Any] = {
                        "dn": f"CN={name},{ou}",
                        "objectClass": "sudoRole",
                        "description": self.marker,
                    }
                    entry.update({k: v for k, v in values.items() if v})
                    self.samdb.add(entry)
                continue
            if first(msg, "description") != self.marker:
                raise Invalid(f"sudo rule {name} exists but was not made by provision; rename or remove it")
            current = {a: sorted(every(msg, a)) for a in RULE_ATTRIBUTES}
            differ = [a for a in RULE_ATTRIBUTES if current[a] != sorted(values[a])]
            if differ and self.change(
                f"set {', '.join(differ)} of sudo rule {name}",
                before=rule_lines(name, current),
                after=rule_lines(name, values),
            ):
                m = ldb.Message()
                m.dn = msg.dn
                for a in differ:
                    flag = ldb.FLAG_MOD_REPLACE if values[a] else ldb.FLAG_MOD_DELETE
                    m[a] = ldb.MessageElement(values[a], flag, a)
                self.samdb.modify(m)
        names = {r["name"] for r in rules}
        for name, msg in sorted(present.items()):
            if (
                name not in names
                and first(msg, "description") == self.marker
                and self.change(f"delete sudo rule {name}", before=[f"sudoRole {name}"])
            ):
                self.samdb.delete(msg.dn)

    def run(self) -> None:
        self.logins()
        self.sudo()


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        check_request(module.params)
        load_samba()
    except (Invalid, MissingSamba) as exc:
        module.fail_json(msg=str(exc), changes=[])
    run: Run | None = None
    try:
        run = Run(module.params, check=module.check_mode)
        run.run()
    except Exception as exc:  # reported with what was done before it
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", changes=run.changes if run else [])
    assert run is not None
    result: dict[str, Any] = {"changed": bool(run.changes), "changes": run.changes}
    if module._diff and run.changes:
        result["diff"] = {
            "before": diff_text(run.before),
            "after": diff_text(run.after),
            "before_header": f"policy in {run.base}",
            "after_header": f"policy in {run.base}",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
