#!/usr/bin/python
"""Ansible module: PostgreSQL roles, databases and grants for the domain's users, kept as requested."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_pg_access
short_description: Keep PostgreSQL roles, memberships, databases and grants for domain users as requested
description:
  - Runs as root on a database server (PostgreSQL from Debian, the host joined to the domain)
    and talks to the cluster with C(psql) run as O(os_user) over the local socket (peer
    authentication), each script with C(ON_ERROR_STOP) and C(search_path) set to
    C(pg_catalog) only, so objects users create in schema C(public) can never stand in for
    the catalog functions the module calls as a superuser.
  - Every user named (an owner that is not a group, the users of O(databases[].read_write)
    and O(databases[].read_only), the members of O(groups)) gets a role C(LOGIN INHERIT
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL) - users sign
    on with Kerberos, nobody has a database password; C(INHERIT) so that their groups' grants
    apply. Every group named gets a C(NOLOGIN) role of the same name, and the membership of
    user roles in group roles is made exactly what O(groups) says.
  - Roles the module creates carry O(marker) as their comment (C(COMMENT ON ROLE)); only roles
    with the marker are ever altered, have their memberships changed or are dropped.
  - A role of a requested name that exists without the marker (a DBA's own) is a foreign role -
    it is reported in RV(foreign_roles) and used as it is, it gets the database grants the
    request gives it, but it is never altered, its memberships are never granted or revoked and
    nothing is ever revoked from it. The module fails (before changing anything) when a
    foreign role would have to be changed - a user role that cannot log in, does not inherit
    or is a superuser, a group role that can log in or is a superuser, a membership the
    request needs that involves a foreign role. A DBA adopts a role with
    C(COMMENT ON ROLE name IS 'MARKER').
  - Names are PostgreSQL identifiers, always double-quoted (a double quote doubled), never
    interpolated bare; the marker is a quoted literal. Requested names must be 1 to 63
    ASCII letters, digits, C(_), C(.) or C(-), starting with a letter, a digit or C(_), and not
    a role PostgreSQL keeps (C(postgres), C(pg_*), C(public), C(current_user),
    C(session_user), C(current_role), C(none)) or a database every cluster has (C(postgres),
    C(template0), C(template1)). A request with a bad name fails before anything runs.
  - Databases are created when missing (C(CREATE DATABASE ... OWNER ...), from C(template1))
    and given the requested owner when another role owns them. A database that is no longer
    requested is never dropped, whatever it holds - it is reported in
    RV(unmanaged_databases).
  - Grants, per requested database - C(CONNECT) and C(TEMPORARY) are revoked from C(PUBLIC)
    (and C(CREATE) on schema C(public), which PostgreSQL 15 no longer gives it);
    C(CONNECT) is granted to every role of O(databases[].read_write) and
    O(databases[].read_only). In schema C(public), read_write roles get C(USAGE, CREATE) on
    the schema, C(SELECT, INSERT, UPDATE, DELETE) on every table (views, materialized and
    foreign tables, partitioned tables too) and C(USAGE, SELECT) on every sequence; read_only
    roles get C(USAGE) on the schema and C(SELECT) on every table. The same privileges are
    given as default privileges for the tables and sequences the database's owner creates in
    schema C(public) (C(ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA public)). Tables a
    read_write user creates are that user's; they are granted on the next run (or create them
    as the owner, with C(SET ROLE) when the owner is a group the user is in).
  - For managed roles the grants of a requested database are kept exactly - what they no
    longer should have is revoked (a database privilege, a privilege on the schema, on a
    table or sequence of schema C(public), a default privilege of the owner; and default
    privileges another managed role, such as a former owner, left for them). Only
    privileges granted by the object's owner (or by a superuser, which PostgreSQL records as
    the owner) are compared; other schemas are not touched.
  - Managed roles that the request no longer names are dropped - in every database that
    allows connections C(REASSIGN OWNED BY role TO) the bootstrap superuser (C(postgres))
    and C(DROP OWNED BY role) (both act on one database at a time; shared objects such as
    databases the role owned move too), then C(DROP ROLE). Tables and their data stay, owned
    by C(postgres), with the grants others had on them.
  - A superuser runs what it owns with its own rights, so a role is not dropped but held when
    it owns something that would then run as C(postgres) for whoever uses it - a view or
    materialized view (other than a C(security_invoker) view), a C(SECURITY DEFINER)
    function, a rule on a table, an index or statistics object of its table that calls a
    function or operator outside C(pg_catalog) - or when it owns objects or has privileges
    in a database that does not allow connections. A held role is made C(NOLOGIN) and loses
    its memberships and its grants in the requested databases, the module warns and
    reports it in RV(held_roles); once a DBA has reassigned or dropped those objects the next
    run drops it.
  - Atomicity - the role and membership statements run in one transaction (in database
    C(postgres)), each C(CREATE DATABASE) on its own (PostgreSQL does not allow it in a
    transaction), the owner and grant statements of each database in one transaction in that
    database, and the reassignment of the dropped roles' objects in one transaction per
    database, the last one with the C(DROP ROLE).
  - Check mode runs only queries and reports every change it would make (a new database is
    modelled on C(template1)). Diff mode shows the roles, memberships, databases with their
    owners and grants in scope before and after, one line each.
version_added: "0.1.0"
author: provision maintainers
options:
  databases:
    description: The databases to serve and who may use them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The database's name.
        type: str
        required: true
      owner:
        description:
          - The domain user or group that owns the database. A name among the keys of
            O(groups) is a group, any other name a user.
        type: str
        required: true
      read_write:
        description: Who may connect, read and change data.
        type: dict
        suboptions:
          users:
            description: Domain user names.
            type: list
            elements: str
            default: []
          groups:
            description: Domain group names; each must be a key of O(groups).
            type: list
            elements: str
            default: []
      read_only:
        description: Who may connect and read data.
        type: dict
        suboptions:
          users:
            description: Domain user names.
            type: list
            elements: str
            default: []
          groups:
            description: Domain group names; each must be a key of O(groups).
            type: list
            elements: str
            default: []
  groups:
    description:
      - Every domain group the databases name (owner or access) mapped to its members' user
        names, as the directory has them (C(getent group)); a member must not itself be a
        group of this mapping.
    type: dict
    default: {}
  marker:
    description: The comment of every role the module creates; only roles with it are altered or dropped.
    type: str
    default: managed by provision
  socket_dir:
    description: The directory of the cluster's Unix socket.
    type: path
    default: /var/run/postgresql
  port:
    description: The cluster's port (it names the socket file).
    type: int
    default: 5432
  psql:
    description: The psql program (a name looked up in PATH, or a path).
    type: str
    default: psql
  os_user:
    description: The operating system user psql runs as; peer authentication maps it to the superuser role of that name.
    type: str
    default: postgres
"""

EXAMPLES = r"""
- name: Databases for the domain's users
  provision_pg_access:
    databases:
      - name: projects
        owner: alice
        read_write: {users: [bob], groups: [engineering]}
        read_only: {groups: [staff]}
    groups:
      engineering: [alice, carol]
      staff: [alice, bob, carol, dave]
"""

RETURN = r"""
changes:
  description: What was (in check mode, would be) done, one human-readable line per change.
  returned: success
  type: list
  elements: str
  sample: ["create role alice (LOGIN)", "grant staff to alice", "create database projects owner alice"]
created_roles:
  description: Roles that were (would be) created.
  returned: success
  type: list
  elements: str
dropped_roles:
  description: Managed roles no longer named that were (would be) dropped after their objects went to postgres.
  returned: success
  type: list
  elements: str
held_roles:
  description:
    - Managed roles no longer named that were kept (made NOLOGIN, without memberships or grants)
      because they own objects that would run with superuser rights once owned by postgres, or
      objects in a database that does not allow connections; the module warns why.
  returned: success
  type: list
  elements: str
created_databases:
  description: Databases that were (would be) created.
  returned: success
  type: list
  elements: str
unmanaged_databases:
  description: Databases of the cluster not requested (other than postgres, template0 and template1); never dropped.
  returned: success
  type: list
  elements: str
foreign_roles:
  description: Requested roles that exist without the marker; used as they are, never altered.
  returned: success
  type: list
  elements: str
"""

import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
from collections.abc import Iterable, Mapping, Sequence  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import ENV  # noqa: E402

MAINTENANCE_DB = "postgres"
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})
RESERVED_ROLES = frozenset({"postgres", "public", "current_user", "session_user", "current_role", "none"})
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
# PostgreSQL's own rule for a name it shows without quotes (any other is shown quoted).
PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")

# Privileges in the order PostgreSQL lists them; only these are ever written back into SQL.
PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "USAGE",
    "CREATE",
    "CONNECT",
    "TEMPORARY",
)
KNOWN = frozenset(PRIVILEGES)
NONE: frozenset[str] = frozenset()
CONNECT = frozenset({"CONNECT"})
SCHEMA_RW = frozenset({"USAGE", "CREATE"})
SCHEMA_RO = frozenset({"USAGE"})
TABLE_RW = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
TABLE_RO = frozenset({"SELECT"})
SEQUENCE_RW = frozenset({"USAGE", "SELECT"})
# What PUBLIC loses: in a requested database, and on its schema public.
PUBLIC_REVOKED = {"database": frozenset({"CONNECT", "TEMPORARY"}), "schema": frozenset({"CREATE"})}

# Role attributes the module keeps on its roles: attribute -> (keyword when true, keyword when false).
ATTRIBUTES = {
    "login": ("LOGIN", "NOLOGIN"),
    "inherit": ("INHERIT", "NOINHERIT"),
    "superuser": ("SUPERUSER", "NOSUPERUSER"),
    "createdb": ("CREATEDB", "NOCREATEDB"),
    "createrole": ("CREATEROLE", "NOCREATEROLE"),
    "replication": ("REPLICATION", "NOREPLICATION"),
    "bypassrls": ("BYPASSRLS", "NOBYPASSRLS"),
}
# What a foreign role must already be, by kind (it is never altered).
FOREIGN_NEEDS = {"user": ("login", "inherit", "superuser"), "group": ("login", "superuser")}

# An object of one database whose ACL the module reads and keeps: (kind, name). Kinds:
# database, schema, table, sequence (of schema public), default tables, default sequences
# (name: the role whose new objects get them).
Obj = tuple[str, str]
# Grantee (None: PUBLIC) -> privileges.
Grants = dict[str | None, frozenset[str]]
Acl = dict[Obj, Grants]


class RequestError(Exception):
    """The request cannot be carried out; ``problems`` says why, each on its own."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------- names and quoting


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier - always quoted, an inner double quote doubled (quote_ident)."""
    if "\x00" in name:
        raise ValueError("a PostgreSQL name cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal (quote_literal): quotes doubled, E'' when it has a backslash."""
    if "\x00" in text:
        raise ValueError("a PostgreSQL string cannot contain NUL")
    body = text.replace("'", "''")
    if "\\" in text:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


def conninfo_value(text: str) -> str:
    """``text`` as a value of a libpq connection string (single quotes, backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shown(name: str | None) -> str:
    """A name as PostgreSQL shows it in messages: bare when plain, else quoted; None is PUBLIC."""
    if name is None:
        return "PUBLIC"
    return name if PLAIN.fullmatch(name) else quote_ident(name)


def name_problem(name: Any, what: str) -> str | None:
    """Why ``name`` cannot be a requested name (a ``what``: role or database), or None."""
    if not isinstance(name, str):
        return f"{what} name {name!r} is not a string"
    if not NAME.fullmatch(name):
        return (
            f"{what} name {json.dumps(name)} is not 1 to 63 ASCII letters, digits, '_', '.' or '-' "
            "starting with a letter, a digit or '_'"
        )
    lower = name.lower()
    if what == "database" and lower in SYSTEM_DATABASES:
        return f"database {name} is one every PostgreSQL cluster has"
    if what != "database" and (lower in RESERVED_ROLES or lower.startswith("pg_")):
        return f"role {name} is a name PostgreSQL keeps for itself"
    return None


def ordered(privileges: Iterable[str]) -> list[str]:
    return sorted(privileges, key=lambda p: (PRIVILEGES.index(p) if p in KNOWN else len(PRIVILEGES), p))


# --------------------------------------------------------------------------- the request


class DatabaseWant(NamedTuple):
    name: str
    owner: str
    read_write: frozenset[str]  # roles: users and groups
    read_only: frozenset[str]


class Request(NamedTuple):
    users: frozenset[str]
    groups: Mapping[str, frozenset[str]]
    databases: tuple[DatabaseWant, ...]
    marker: str

    def kind(self, role: str) -> str:
        return "group" if role in self.groups else "user"

    def names(self) -> frozenset[str]:
        return self.users | frozenset(self.groups)


def parse_request(databases: Sequence[Mapping[str, Any]], groups: Mapping[str, Any], marker: str) -> Request:
    """The request checked as a whole; RequestError lists every problem found."""
    problems: list[str] = []
    if not marker or any(ord(c) < 32 or ord(c) == 127 for c in marker) or "\x00" in marker:
        problems.append("marker must be non-empty text without control characters")
    group_members: dict[str, frozenset[str]] = {}
    for group, members in groups.items():
        problem = name_problem(group, "role")
        if problem:
            problems.append(f"groups: {problem}")
            continue
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            problems.append(f"groups: the members of {group} are not a list of names")
            continue
        group_members[group] = frozenset(members)
    users: set[str] = set()
    for group, members in group_members.items():
        for member in sorted(members):
            problem = name_problem(member, "role")
            if problem:
                problems.append(f"groups: {group}: {problem}")
            elif member in group_members:
                problems.append(f"groups: {group}: member {member} is itself a group (list its users instead)")
            else:
                users.add(member)
    wants: list[DatabaseWant] = []
    seen: set[str] = set()
    for db in databases:
        name, owner = db.get("name"), db.get("owner")
        where = f"database {name}" if isinstance(name, str) else "a database"
        problem = name_problem(name, "database")
        if problem:
            problems.append(problem)
        elif name in seen:
            problems.append(f"database {name} is requested twice")
        seen.add(str(name))
        problem = name_problem(owner, "role")
        if problem:
            problems.append(f"{where}: owner: {problem}")
        elif owner not in group_members:
            users.add(str(owner))
        access: dict[str, set[str]] = {}
        for level in ("read_write", "read_only"):
            access[level] = set()
            given = db.get(level) or {}
            for kind in ("users", "groups"):
                for role in given.get(kind) or []:
                    problem = name_problem(role, "role")
                    if problem:
                        problems.append(f"{where}: {level}.{kind}: {problem}")
                    elif kind == "groups" and role not in group_members:
                        problems.append(f"{where}: {level}.groups: {role} is not a key of groups")
                    elif kind == "users" and role in group_members:
                        problems.append(f"{where}: {level}.users: {role} is a group")
                    else:
                        access[level].add(role)
                        if kind == "users":
                            users.add(role)
        wants.append(
            DatabaseWant(str(name), str(owner), frozenset(access["read_write"]), frozenset(access["read_only"]))
        )
    for name in sorted(users & set(group_members)):
        problems.append(f"{name} is named both as a user and as a group")
    if problems:
        raise RequestError(problems)
    return Request(frozenset(users), group_members, tuple(wants), marker)


# --------------------------------------------------------------------------- the cluster as found


class Role(NamedTuple):
    name: str
    attributes: Mapping[str, bool]  # ATTRIBUTES' keys, and password: whether it has one
    comment: str | None


class Cluster(NamedTuple):
    superuser: bool
    bootstrap: str  # the bootstrap superuser (OID 10): postgres
    roles: dict[str, Role]
    members: dict[tuple[str, str], bool]  # (group, member) -> with admin option
    databases: dict[str, bool]  # name -> allows connections
    depends: dict[str, set[str]]  # role -> databases where it owns objects or has privileges


class DatabaseState(NamedTuple):
    owner: str
    schema_owner: str | None  # None: the database has no schema public
    relations: dict[str, tuple[str, str]]  # name (in public) -> (table or sequence, owner)
    acl: Acl


CLUSTER_QUERY = """
SELECT json_build_object(
  'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  'bootstrap', (SELECT rolname FROM pg_roles WHERE oid = 10),
  'roles', (SELECT coalesce(json_agg(json_build_object(
      'name', rolname, 'login', rolcanlogin, 'inherit', rolinherit, 'superuser', rolsuper,
      'createdb', rolcreatedb, 'createrole', rolcreaterole, 'replication', rolreplication,
      'bypassrls', rolbypassrls, 'password', rolpassword IS NOT NULL,
      'comment', shobj_description(oid, 'pg_authid'))), '[]') FROM pg_authid),
  'members', (SELECT coalesce(json_agg(json_build_object(
      'group', g.rolname, 'member', m.rolname, 'admin', a.admin_option)), '[]')
      FROM pg_auth_members a JOIN pg_authid g ON g.oid = a.roleid JOIN pg_authid m ON m.oid = a.member),
  'databases', (SELECT coalesce(json_agg(json_build_object(
      'name', datname, 'owner', pg_get_userbyid(datdba), 'connect', datallowconn)), '[]') FROM pg_database),
  'depends', (SELECT coalesce(json_agg(json_build_object('role', r.rolname, 'database', d.datname)), '[]')
      FROM (SELECT DISTINCT refobjid, dbid FROM pg_shdepend
            WHERE refclassid = 'pg_authid'::regclass AND dbid <> 0) s
      JOIN pg_authid r ON r.oid = s.refobjid JOIN pg_database d ON d.oid = s.dbid)
);
"""

# The ACLs of one database the module keeps: the database's, schema public's, its tables' and
# sequences', and the default privileges in it. Only entries granted by the object's owner
# (what a superuser grants is recorded so), never the owner's own.
DATABASE_QUERY = """
WITH ns AS (SELECT oid, nspowner, nspacl FROM pg_namespace WHERE nspname = 'public'),
rel AS (SELECT c.* FROM pg_class c JOIN ns ON c.relnamespace = ns.oid WHERE c.relkind IN ('r','p','v','m','f','S'))
SELECT json_build_object(
  'owner', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
  'database', (SELECT coalesce(json_agg(json_build_object(
      'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
      'priv', a.privilege_type)), '[]')
      FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
      WHERE d.datname = current_database() AND a.grantor = d.datdba AND a.grantee <> d.datdba),
  'schema_owner', (SELECT pg_get_userbyid(nspowner) FROM ns),
  'schema', (SELECT coalesce(json_agg(json_build_object(
      'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
      'priv', a.privilege_type)), '[]')
      FROM ns, aclexplode(coalesce(ns.nspacl, acldefault('n', ns.nspowner))) a
      WHERE a.grantor = ns.nspowner AND a.grantee <> ns.nspowner),
  'relations', (SELECT coalesce(json_agg(json_build_object(
      'name', relname, 'kind', relkind, 'owner', pg_get_userbyid(relowner))), '[]') FROM rel),
  'relacl', (SELECT coalesce(json_agg(json_build_object(
      'name', rel.relname, 'grantee', pg_get_userbyid(a.grantee), 'priv', a.privilege_type)), '[]')
      FROM rel, aclexplode(rel.relacl) a
      WHERE a.grantor = rel.relowner AND a.grantee <> rel.relowner AND a.grantee <> 0),
  'defaults', (SELECT coalesce(json_agg(json_build_object(
      'role', pg_get_userbyid(d.defaclrole), 'type', d.defaclobjtype,
      'grantee', pg_get_userbyid(a.grantee), 'priv', a.privilege_type)), '[]')
      FROM pg_default_acl d JOIN ns ON d.defaclnamespace = ns.oid, aclexplode(d.defaclacl) a
      WHERE d.defaclobjtype IN ('r', 'S') AND a.grantee <> 0)
);
"""

# What roles own in one database that runs with its owner's rights for whoever uses it.
DEFINER_QUERY = """
WITH r AS (SELECT oid, rolname FROM pg_authid WHERE rolname IN ({names})),
foreign_code AS (
  SELECT d.classid, d.objid FROM pg_depend d
  JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
  WHERE p.pronamespace <> 'pg_catalog'::regnamespace
  UNION
  SELECT d.classid, d.objid FROM pg_depend d
  JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
  WHERE o.oprnamespace <> 'pg_catalog'::regnamespace
)
SELECT coalesce(json_agg(json_build_object('role', x.role, 'what', x.what) ORDER BY x.role, x.what), '[]') FROM (
  SELECT r.rolname AS role,
         CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END || c.oid::regclass::text AS what
  FROM pg_class c JOIN r ON r.oid = c.relowner
  WHERE c.relkind IN ('v', 'm') AND NOT EXISTS (
    SELECT 1 FROM unnest(c.reloptions) o
    WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=yes', 'security_invoker=1'))
  UNION ALL
  SELECT r.rolname, 'SECURITY DEFINER function ' || p.oid::regprocedure::text
  FROM pg_proc p JOIN r ON r.oid = p.proowner WHERE p.prosecdef
  UNION ALL
  SELECT r.rolname, 'rule ' || w.rulename || ' on ' || c.oid::regclass::text
  FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class JOIN r ON r.oid = c.relowner
  WHERE c.relkind NOT IN ('v', 'm')
  UNION ALL
  SELECT r.rolname, 'index ' || i.indexrelid::regclass::text || ' (calls code outside pg_catalog)'
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN r ON r.oid = c.relowner
  WHERE (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AND EXISTS (
    SELECT 1 FROM foreign_code f WHERE f.classid = 'pg_class'::regclass AND f.objid = i.indexrelid)
  UNION ALL
  SELECT r.rolname, 'statistics ' || s.stxname || ' on ' || c.oid::regclass::text
  FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid JOIN r ON r.oid = c.relowner
  WHERE EXISTS (SELECT 1 FROM foreign_code f WHERE f.classid = 'pg_statistic_ext'::regclass AND f.objid = s.oid)
) x;
"""


def parse_cluster(doc: Mapping[str, Any]) -> Cluster:
    roles = {
        r["name"]: Role(r["name"], {a: bool(r[a]) for a in (*ATTRIBUTES, "password")}, r["comment"])
        for r in doc["roles"]
    }
    members: dict[tuple[str, str], bool] = {}
    for m in doc["members"]:
        key = (m["group"], m["member"])
        members[key] = members.get(key, False) or bool(m["admin"])
    depends: dict[str, set[str]] = {}
    for d in doc["depends"]:
        depends.setdefault(d["role"], set()).add(d["database"])
    return Cluster(
        superuser=bool(doc["superuser"]),
        bootstrap=str(doc["bootstrap"]),
        roles=roles,
        members=members,
        databases={d["name"]: bool(d["connect"]) for d in doc["databases"]},
        depends=depends,
    )


def _add(acl: Acl, obj: Obj, grantee: str | None, privilege: str) -> None:
    grants = acl.setdefault(obj, {})
    grants[grantee] = grants.get(grantee, NONE) | {privilege}


def parse_database(name: str, doc: Mapping[str, Any]) -> DatabaseState:
    acl: Acl = {}
    for e in doc["database"]:
        _add(acl, ("database", name), e["grantee"], e["priv"])
    for e in doc["schema"]:
        _add(acl, ("schema", "public"), e["grantee"], e["priv"])
    relations = {r["name"]: ("sequence" if r["kind"] == "S" else "table", str(r["owner"])) for r in doc["relations"]}
    for e in doc["relacl"]:
        _add(acl, (relations[e["name"]][0], e["name"]), e["grantee"], e["priv"])
    for e in doc["defaults"]:
        _add(acl, ("default tables" if e["type"] == "r" else "default sequences", e["role"]), e["grantee"], e["priv"])
    return DatabaseState(str(doc["owner"]), doc["schema_owner"], relations, acl)


def as_new_database(name: str, template: DatabaseState, owner: str) -> DatabaseState:
    """What CREATE DATABASE name OWNER owner makes of ``template`` (its contents; a default ACL)."""
    acl = {obj: dict(grants) for obj, grants in template.acl.items() if obj[0] != "database"}
    acl[("database", name)] = {None: frozenset({"CONNECT", "TEMPORARY"})}
    return DatabaseState(owner, template.schema_owner, dict(template.relations), acl)


# --------------------------------------------------------------------------- the plan


class Change(NamedTuple):
    line: str  # for people
    sql: str  # what carries it out


def wanted_attributes(kind: str) -> dict[str, bool]:
    """The attributes of a managed role: a user logs in and inherits its groups' grants; nobody has a password."""
    return {**{a: False for a in ATTRIBUTES}, "login": kind == "user", "inherit": True, "password": False}


def stale_roles(request: Request, cluster: Cluster) -> list[str]:
    """Managed roles (with the marker) that the request no longer names."""
    return sorted(n for n, r in cluster.roles.items() if r.comment == request.marker and n not in request.names())


class RolePlan(NamedTuple):
    changes: list[Change]
    created: list[str]
    foreign: list[str]
    dropping: list[str]
    held: list[str]
    managed: frozenset[str]  # managed once the plan is carried out (dropped ones aside)
    before: list[str]
    after: list[str]


def describe_role(name: str, attributes: Mapping[str, bool], managed: bool) -> str:
    words = [ATTRIBUTES["login"][0 if attributes["login"] else 1]]
    words += [
        ATTRIBUTES[a][0] for a in ("superuser", "createdb", "createrole", "replication", "bypassrls") if attributes[a]
    ]
    words += [] if attributes["inherit"] else ["NOINHERIT"]
    words += ["PASSWORD"] if attributes["password"] else []
    return f"role {shown(name)}: {' '.join(words)} ({'managed' if managed else 'not managed'})"


def describe_member(group: str, member: str, admin: bool) -> str:
    return f"role {shown(member)}: member of {shown(group)}" + (" WITH ADMIN OPTION" if admin else "")


def plan_roles(request: Request, cluster: Cluster, held: Mapping[str, Sequence[str]]) -> RolePlan:
    """Roles and memberships: what to create, alter, grant, revoke and drop. RequestError when a
    foreign role (without the marker) would have to change."""
    marker = request.marker
    managed = frozenset(n for n, r in cluster.roles.items() if r.comment == marker)
    wanted = {n: request.kind(n) for n in request.names()}
    created = sorted(n for n in wanted if n not in cluster.roles)
    foreign = sorted(n for n in wanted if n in cluster.roles and n not in managed)
    stale = stale_roles(request, cluster)
    dropping = [n for n in stale if n not in held]
    keeping = [n for n in stale if n in held]
    after_managed = (managed | frozenset(created)) - frozenset(dropping)
    problems: list[str] = []
    for name in foreign:
        role, kind = cluster.roles[name], wanted[name]
        want = wanted_attributes(kind)
        wrong = [ATTRIBUTES[a][0 if want[a] else 1] for a in FOREIGN_NEEDS[kind] if role.attributes[a] != want[a]]
        if wrong:
            problems.append(
                f"role {shown(name)} exists without the marker (a role this module does not manage) and, "
                f"as a {kind}, would have to be made {' '.join(wrong)}: change it by hand, drop it, "
                f"or adopt it with COMMENT ON ROLE {quote_ident(name)} IS {quote_literal(marker)}"
            )
    changes: list[Change] = []
    for name in created:
        attributes = wanted_attributes(wanted[name])
        keywords = " ".join(ATTRIBUTES[a][0 if attributes[a] else 1] for a in ATTRIBUTES)
        changes.append(
            Change(
                f"create role {shown(name)} ({'LOGIN' if wanted[name] == 'user' else 'NOLOGIN, a group'})",
                f"CREATE ROLE {quote_ident(name)} WITH {keywords} PASSWORD NULL;\n"
                f"COMMENT ON ROLE {quote_ident(name)} IS {quote_literal(marker)};",
            )
        )
    after_attributes: dict[str, Mapping[str, bool]] = {n: wanted_attributes(wanted[n]) for n in created}
    for name in sorted((managed & frozenset(wanted)) | frozenset(keeping)):
        have = cluster.roles[name].attributes
        want = wanted_attributes(wanted.get(name, "group"))  # a held role: NOLOGIN
        after_attributes[name] = want
        words = [ATTRIBUTES[a][0 if want[a] else 1] for a in ATTRIBUTES if have[a] != want[a]]
        sql = [f"ALTER ROLE {quote_ident(name)} WITH {' '.join(words)};"] if words else []
        if have["password"]:
            words.append("PASSWORD NULL")
            sql.append(f"ALTER ROLE {quote_ident(name)} PASSWORD NULL;")
        if words:
            changes.append(Change(f"alter role {shown(name)}: {', '.join(words)}", "\n".join(sql)))
    wanted_members = {(g, u) for g, users in request.groups.items() for u in users}
    in_scope = frozenset(wanted) | managed
    after_members = {k: v for k, v in cluster.members.items() if k[0] in in_scope or k[1] in in_scope}
    for group, user in sorted(wanted_members):
        both = group in after_managed and user in after_managed
        if (group, user) not in cluster.members:
            if not both:
                which = " and ".join(shown(n) for n in (group, user) if n not in after_managed)
                problems.append(
                    f"role {shown(user)} must be a member of {shown(group)}, but {which} has no marker "
                    f"(a role this module does not manage): GRANT {quote_ident(group)} TO {quote_ident(user)} "
                    "by hand, or adopt the role"
                )
                continue
            changes.append(
                Change(f"grant {shown(group)} to {shown(user)}", f"GRANT {quote_ident(group)} TO {quote_ident(user)};")
            )
            after_members[(group, user)] = False
        elif cluster.members[(group, user)] and both:
            changes.append(
                Change(
                    f"revoke admin option for {shown(group)} from {shown(user)}",
                    f"REVOKE ADMIN OPTION FOR {quote_ident(group)} FROM {quote_ident(user)};",
                )
            )
            after_members[(group, user)] = False
    for group, member in sorted(cluster.members):
        if (group, member) in wanted_members or group in dropping or member in dropping:
            continue
        if group in after_managed and member in after_managed:
            changes.append(
                Change(
                    f"revoke {shown(group)} from {shown(member)}",
                    f"REVOKE {quote_ident(group)} FROM {quote_ident(member)};",
                )
            )
            del after_members[(group, member)]
    if problems:
        raise RequestError(problems)
    before = [describe_role(n, cluster.roles[n].attributes, n in managed) for n in in_scope & set(cluster.roles)]
    before += [describe_member(g, m, a) for (g, m), a in cluster.members.items() if g in in_scope or m in in_scope]
    after_roles = {n: cluster.roles[n].attributes for n in in_scope & set(cluster.roles)} | after_attributes
    after = [describe_role(n, a, n in after_managed) for n, a in sorted(after_roles.items()) if n not in dropping]
    after += [
        describe_member(g, m, a)
        for (g, m), a in sorted(after_members.items())
        if g not in dropping and m not in dropping
    ]
    return RolePlan(changes, created, foreign, dropping, keeping, after_managed, sorted(before), sorted(after))


def wanted_acl(want: DatabaseWant, state: DatabaseState) -> Acl:
    """The grants the request gives in one database, on the objects it has."""
    readers = want.read_write | want.read_only

    def level(role: str, rw: frozenset[str], ro: frozenset[str]) -> frozenset[str]:
        return rw if role in want.read_write else ro

    acl: Acl = {("database", want.name): {r: CONNECT for r in readers if r != want.owner}}
    if state.schema_owner is None:
        return acl
    acl[("schema", "public")] = {r: level(r, SCHEMA_RW, SCHEMA_RO) for r in readers if r != state.schema_owner}
    for name, (kind, owner) in state.relations.items():
        if kind == "table":
            acl[(kind, name)] = {r: level(r, TABLE_RW, TABLE_RO) for r in readers if r != owner}
        else:
            acl[(kind, name)] = {r: SEQUENCE_RW for r in want.read_write if r != owner}
    acl[("default tables", want.owner)] = {r: level(r, TABLE_RW, TABLE_RO) for r in readers if r != want.owner}
    acl[("default sequences", want.owner)] = {r: SEQUENCE_RW for r in want.read_write if r != want.owner}
    return acl


def describe_object(kind: str, name: str) -> str:
    if kind in ("table", "sequence"):
        return f"{kind} public.{shown(name)}"
    if kind == "schema":
        return "schema public"
    if kind == "database":
        return "database"
    return f"{kind.split()[1]} {shown(name)} creates in schema public (default privileges)"


def acl_lines(db: str, acl: Acl) -> list[str]:
    return sorted(
        f"{shown(db)}: {describe_object(*obj)}: {shown(grantee)} {', '.join(ordered(privileges))}"
        for obj, grants in acl.items()
        for grantee, privileges in grants.items()
        if privileges
    )


def _statement(action: str, kind: str, names: Sequence[str], db: str, privileges: str, grantee: str | None) -> str:
    to = "TO" if action == "GRANT" else "FROM"
    who = "PUBLIC" if grantee is None else quote_ident(grantee)
    if kind.startswith("default"):
        (role,) = names
        target = "TABLES" if kind == "default tables" else "SEQUENCES"
        return (
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(role)} IN SCHEMA public "
            f"{action} {privileges} ON {target} {to} {who};"
        )
    if kind == "database":
        on = f"DATABASE {quote_ident(db)}"
    elif kind == "schema":
        on = "SCHEMA public"
    else:
        on = f"{kind.upper()} " + ", ".join(f"public.{quote_ident(n)}" for n in names)
    return f"{action} {privileges} ON {on} {to} {who};"


def _line(action: str, kind: str, names: Sequence[str], db: str, privileges: str, grantee: str | None) -> str:
    to = "to" if action == "GRANT" else "from"
    if kind.startswith("default"):
        what = f"{kind.split()[1]} {shown(names[0])} creates in schema public"
    elif kind in ("table", "sequence"):
        listed = [f"public.{shown(n)}" for n in names[:10]]
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        what = f"{kind}s " + ", ".join(listed) + more
    else:
        what = describe_object(kind, db)
    return f"{shown(db)}: {action.lower()} {privileges} on {what} {to} {shown(grantee)}"


def plan_database(
    want: DatabaseWant, state: DatabaseState, managed: frozenset[str], dropping: frozenset[str]
) -> tuple[list[Change], Acl]:
    """The owner and grant changes of one database, and its ACL afterwards. Managed roles get
    exactly what the request gives; foreign ones are only given, never deprived; PUBLIC loses
    CONNECT and TEMPORARY on the database and CREATE on schema public; roles being dropped are
    left to DROP OWNED."""
    db = want.name
    changes: list[Change] = []
    if state.owner != want.owner:
        changes.append(
            Change(
                f"{shown(db)}: owner {shown(state.owner)} -> {shown(want.owner)}",
                f"ALTER DATABASE {quote_ident(db)} OWNER TO {quote_ident(want.owner)};",
            )
        )
    wanted = wanted_acl(want, state)
    after: Acl = {obj: dict(grants) for obj, grants in state.acl.items()}
    # The new owner's own entry merges into the owner's (not shown, never touched).
    after.get(("database", db), {}).pop(want.owner, None)
    # (action, kind, grantee, privileges) -> objects; tables and sequences share statements.
    batches: dict[tuple[str, str, str | None, tuple[str, ...]], list[str]] = {}
    for obj in sorted(set(state.acl) | set(wanted)):
        kind, name = obj
        if kind.startswith("default") and (name in dropping or (name != want.owner and name not in managed)):
            continue  # a dropped role's defaults go with DROP OWNED; a foreign role's own are its business
        have, need = state.acl.get(obj, {}), wanted.get(obj, {})
        for grantee in sorted(set(have) | set(need), key=lambda g: (g is not None, g or "")):
            if grantee in dropping or (kind == "database" and grantee == want.owner):
                continue
            if kind.startswith("default") and grantee == name:
                continue
            h, w = have.get(grantee, NONE), need.get(grantee, NONE)
            if grantee is None:
                add, remove = NONE, h & PUBLIC_REVOKED.get(kind, NONE)
            elif grantee in managed:
                add, remove = w - h, (h - w) & KNOWN
            else:
                add, remove = w - h, NONE
            for action, privileges in (("REVOKE", remove), ("GRANT", add)):
                if privileges:
                    key = (action, kind, grantee, tuple(ordered(privileges)))
                    batches.setdefault(key, []).append(name)
            grants = after.setdefault(obj, {})
            grants[grantee] = (h | add) - remove
    order = ("database", "schema", "table", "sequence", "default tables", "default sequences")
    for (action, kind, grantee, listed), names in sorted(
        batches.items(), key=lambda kv: (order.index(kv[0][1]), kv[0][0] != "REVOKE", kv[0][2] or "", kv[0][3])
    ):
        text = ", ".join(listed)
        groups = [[n] for n in names] if kind.startswith("default") else [sorted(names)]
        for group in groups:
            changes.append(
                Change(
                    _line(action, kind, group, db, text, grantee), _statement(action, kind, group, db, text, grantee)
                )
            )
    # DROP OWNED takes the dropped roles' privileges and default privileges with them.
    for obj in [o for o in after if o[0].startswith("default") and o[1] in dropping]:
        del after[obj]
    for grants in after.values():
        for grantee in [g for g in grants if g in dropping or not grants[g]]:
            del grants[grantee]
    return changes, {obj: grants for obj, grants in after.items() if grants}


def hold_reasons(
    stale: Sequence[str], cluster: Cluster, definers: Mapping[str, Sequence[tuple[str, str]]]
) -> dict[str, list[str]]:
    """Why each stale role cannot be dropped yet (roles that can are absent). ``definers``: per
    database, (role, object) that would run with superuser rights once owned by postgres."""
    reasons: dict[str, list[str]] = {}
    for role in stale:
        for db in sorted(cluster.depends.get(role, ())):
            if not cluster.databases.get(db, False):
                reasons.setdefault(role, []).append(
                    f"it owns objects or has privileges in database {shown(db)}, which does not allow connections"
                )
    for db, found in sorted(definers.items()):
        for role, what in found:
            if role in stale:
                reasons.setdefault(role, []).append(f"it owns {what} in database {shown(db)}")
    return reasons


def drop_changes(dropping: Sequence[str], bootstrap: str) -> list[Change]:
    return [
        Change(
            f"drop role {shown(n)} (REASSIGN OWNED to {shown(bootstrap)}, DROP OWNED, in every database)",
            f"DROP ROLE {quote_ident(n)};",
        )
        for n in dropping
    ]


def drop_script(dropping: Sequence[str], bootstrap: str) -> str:
    """What runs in each database before the roles go: their objects to postgres, their privileges revoked."""
    names = ", ".join(quote_ident(n) for n in dropping)
    return f"REASSIGN OWNED BY {names} TO {quote_ident(bootstrap)};\nDROP OWNED BY {names};\n"


# --------------------------------------------------------------------------- the cluster through psql


class Postgres:
    """psql as the cluster's OS user over the local socket: queries (one JSON value each) and scripts."""

    PRELUDE = "SET search_path = pg_catalog, pg_temp;\nSET client_min_messages = warning;\n"

    def __init__(self, module: Any, psql: str, os_user: str, socket_dir: str, port: int) -> None:
        self.module = module
        self.psql, self.os_user, self.socket_dir, self.port = psql, os_user, socket_dir, port
        try:
            uid = pwd.getpwnam(os_user).pw_uid
        except KeyError:
            module.fail_json(msg=f"os_user {os_user} does not exist on this host")
        if os.geteuid() == uid:
            self.prefix: list[str] = []
        elif os.geteuid() == 0:
            self.prefix = ["runuser", "-u", os_user, "--"]
        else:
            module.fail_json(msg=f"the module must run as root or as {os_user}")

    def argv(self, database: str) -> list[str]:
        conninfo = " ".join(
            f"{key}={conninfo_value(value)}"
            for key, value in (
                ("host", self.socket_dir),
                ("port", str(self.port)),
                ("user", self.os_user),
                ("dbname", database),
                ("application_name", "provision_pg_access"),
                ("connect_timeout", "10"),
            )
        )
        return [*self.prefix, self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"]

    def run(self, database: str, sql: str, failure: str, done: Sequence[str] = ()) -> str:
        rc, out, err = self.module.run_command(
            self.argv(database),
            data=self.PRELUDE + sql,
            binary_data=True,
            environ_update=ENV,
            cwd="/",
            expand_user_and_vars=False,
        )
        if rc != 0:
            self.module.fail_json(msg=f"{failure}: {(err or out).strip()[-500:]}", rc=rc, changes=list(done))
        return str(out)

    def query(self, database: str, sql: str) -> Any:
        return json.loads(self.run(database, sql, f"reading the state of database {database} failed"))

    def transaction(self, database: str, statements: Sequence[str], failure: str, done: Sequence[str]) -> None:
        if statements:
            self.run(database, "BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;\n", failure, done)


def main() -> None:
    access = {
        "users": {"type": "list", "elements": "str", "default": []},
        "groups": {"type": "list", "elements": "str", "default": []},
    }
    module = AnsibleModule(
        argument_spec={
            "databases": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "owner": {"type": "str", "required": True},
                    "read_write": {"type": "dict", "options": access, "apply_defaults": True},
                    "read_only": {"type": "dict", "options": access, "apply_defaults": True},
                },
            },
            "groups": {"type": "dict", "default": {}},
            "marker": {"type": "str", "default": "managed by provision"},
            "socket_dir": {"type": "path", "default": "/var/run/postgresql"},
            "port": {"type": "int", "default": 5432},
            "psql": {"type": "str", "default": "psql"},
            "os_user": {"type": "str", "default": "postgres"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        request = parse_request(p["databases"], p["groups"], p["marker"])
    except RequestError as exc:
        module.fail_json(msg="the request cannot be carried out: " + "; ".join(exc.problems), problems=exc.problems)
    pg = Postgres(module, p["psql"], p["os_user"], p["socket_dir"], p["port"])
    check = module.check_mode
    cluster = parse_cluster(pg.query(MAINTENANCE_DB, CLUSTER_QUERY))
    if not cluster.superuser:
        module.fail_json(msg=f"{p['os_user']} is not a superuser of the cluster")
    missing_conn = [d.name for d in request.databases if d.name in cluster.databases and not cluster.databases[d.name]]
    if missing_conn:
        module.fail_json(msg=f"databases that do not allow connections cannot be managed: {', '.join(missing_conn)}")

    stale = stale_roles(request, cluster)
    definers: dict[str, list[tuple[str, str]]] = {}
    if stale:
        names = ", ".join(quote_literal(n) for n in stale)
        for db in sorted(d for d, conn in cluster.databases.items() if conn):
            found = pg.query(db, DEFINER_QUERY.format(names=names))
            definers[db] = [(f["role"], f["what"]) for f in found]
    held = hold_reasons(stale, cluster, definers)
    try:
        roles = plan_roles(request, cluster, held)
    except RequestError as exc:
        module.fail_json(msg="; ".join(exc.problems), problems=exc.problems)
    for role, reasons in sorted(held.items()):
        module.warn(
            f"role {shown(role)} is no longer requested but is kept (NOLOGIN, without memberships or grants): "
            + "; ".join(reasons)
            + f" - it would run with {cluster.bootstrap}'s rights after REASSIGN OWNED; reassign or drop it "
            "by hand and the next run drops the role"
        )

    done: list[str] = []
    changes: list[str] = [c.line for c in roles.changes]
    if not check:
        pg.transaction(MAINTENANCE_DB, [c.sql for c in roles.changes], "changing roles failed", done)
    done += [c.line for c in roles.changes]

    created_databases = sorted(d.name for d in request.databases if d.name not in cluster.databases)
    template: DatabaseState | None = None
    dropping = frozenset(roles.dropping)
    before = list(roles.before)
    after = list(roles.after)
    for want in request.databases:
        if want.name in created_databases:
            line = f"create database {shown(want.name)} owner {shown(want.owner)}"
            changes.append(line)
            after.append(f"database {shown(want.name)}: owner {shown(want.owner)}")
            if check:
                if template is None:
                    template = parse_database("template1", pg.query("template1", DATABASE_QUERY))
                state = as_new_database(want.name, template, want.owner)
            else:
                pg.run(
                    MAINTENANCE_DB,
                    f"CREATE DATABASE {quote_ident(want.name)} OWNER {quote_ident(want.owner)};\n",
                    f"creating database {want.name} failed",
                    done,
                )
                done.append(line)
                state = parse_database(want.name, pg.query(want.name, DATABASE_QUERY))
        else:
            state = parse_database(want.name, pg.query(want.name, DATABASE_QUERY))
            before.append(f"database {shown(want.name)}: owner {shown(state.owner)}")
            after.append(f"database {shown(want.name)}: owner {shown(want.owner)}")
            before += acl_lines(want.name, state.acl)
        db_changes, db_after = plan_database(want, state, roles.managed, dropping)
        after += acl_lines(want.name, db_after)
        changes += [c.line for c in db_changes]
        if not check:
            pg.transaction(want.name, [c.sql for c in db_changes], f"changing database {want.name} failed", done)
        done += [c.line for c in db_changes]

    drops = drop_changes(roles.dropping, cluster.bootstrap)
    changes += [c.line for c in drops]
    if drops and not check:
        script = drop_script(roles.dropping, cluster.bootstrap)
        databases = sorted({d for d, conn in cluster.databases.items() if conn} | set(created_databases))
        for db in databases:
            if db != MAINTENANCE_DB:
                pg.transaction(db, [script], f"reassigning the objects of dropped roles in {db} failed", done)
        pg.transaction(MAINTENANCE_DB, [script, *(c.sql for c in drops)], "dropping roles failed", done)

    requested = {d.name for d in request.databases}
    result: dict[str, Any] = {
        "changed": bool(changes),
        "changes": changes,
        "created_roles": roles.created,
        "dropped_roles": roles.dropping,
        "held_roles": roles.held,
        "created_databases": created_databases,
        "unmanaged_databases": sorted(set(cluster.databases) - requested - SYSTEM_DATABASES),
        "foreign_roles": roles.foreign,
    }
    if module._diff:
        result["diff"] = {
            "before_header": f"PostgreSQL {p['socket_dir']}:{p['port']}",
            "after_header": f"PostgreSQL {p['socket_dir']}:{p['port']}",
            "before": "".join(line + "\n" for line in sorted(before)),
            "after": "".join(line + "\n" for line in sorted(after)),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
