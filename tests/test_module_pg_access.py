"""The provision_pg_access module against a real PostgreSQL: a throwaway cluster of its own (initdb as the
postgres user into a private directory, a Unix socket only, no TCP), the module run for real through ansible,
and every effect checked in the catalogs and by connecting as the roles themselves. Its pure parts (quoting,
name checks, the request, the plan of one database) as Python, the quoting also against PostgreSQL's parser.

The cluster's pg_hba.conf: ``local all postgres peer`` (the module's way in) and ``local all all trust`` so a
test can connect as alice or bob with ``psql -U`` and PostgreSQL itself checks LOGIN, CONNECT and the table
privileges; the socket directory is the postgres user's (0700), so only root and postgres can use it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_modules import load_module, run_module

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
pytestmark = pytest.mark.skipif(
    not INITDB,
    reason="no PostgreSQL server on this machine (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql",
)

pga = load_module("provision_pg_access")
MODULE = "provision_pg_access"


class Cluster:
    """A running throwaway cluster; ``sql`` runs psql as any role (postgres by peer, the others by trust)."""

    def __init__(self, bindir: Path, sockdir: Path, port: int) -> None:
        self.bindir, self.sockdir, self.port = bindir, sockdir, port

    def psql(self, sql: str, *, db: str = "postgres", user: str = "postgres") -> subprocess.CompletedProcess[str]:
        conninfo = f"host={self.sockdir} port={self.port} user='{user}' dbname='{db}'"
        return subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bindir / "psql"),
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                conninfo,
                "-f",
                "-",
            ],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            timeout=30,
        )

    def sql(self, sql: str, *, db: str = "postgres", user: str = "postgres") -> str:
        proc = self.psql(sql, db=db, user=user)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def denied(self, sql: str, *, db: str, user: str) -> str:
        proc = self.psql(sql, db=db, user=user)
        assert proc.returncode != 0, f"{user} could run {sql!r} in {db}: {proc.stdout}"
        return proc.stderr

    def rows(self, sql: str, *, db: str = "postgres") -> set[str]:
        return set(self.sql(sql, db=db).splitlines())

    def args(self, **request: Any) -> dict[str, Any]:
        return {"socket_dir": str(self.sockdir), "port": self.port, **request}

    def snapshot(self) -> tuple[set[str], set[str], set[str]]:
        """Roles (with attributes and comment), memberships and databases (with owner and ACL)."""
        roles = self.rows(
            "SELECT rolname || ' ' || rolcanlogin || ' ' || coalesce(shobj_description(oid, 'pg_authid'), '-') "
            "FROM pg_authid"
        )
        members = self.rows("SELECT roleid::regrole || ' ' || member::regrole FROM pg_auth_members")
        dbs = self.rows(
            "SELECT datname || ' ' || datdba::regrole || ' ' || coalesce(datacl::text, '-') FROM pg_database"
        )
        return roles, members, dbs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    bindir = Path(INITDB[-1]).parent
    postgres = pwd.getpwnam("postgres")
    # Under /tmp itself: pytest's own tmp dirs are root's (0700), the postgres user could not reach them.
    top = Path(tempfile.mkdtemp(prefix="provision-pg-", dir="/tmp"))
    os.chown(top, postgres.pw_uid, postgres.pw_gid)
    data, sockdir = top / "data", top / "sock"

    def as_postgres(*argv: str) -> None:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=False, cwd="/", timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    port = free_port()
    started = False
    try:
        as_postgres(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=peer",
            "--auth-host=reject",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        as_postgres("mkdir", "-m", "0700", str(sockdir))
        (data / "pg_hba.conf").write_text("local all postgres peer\nlocal all all trust\n")
        as_postgres(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(top / "log"),
            "-w",
            "-o",
            f"-k {sockdir} -p {port} -c listen_addresses='' -c fsync=off",
            "start",
        )
        started = True
        yield Cluster(bindir, sockdir, port)
    finally:
        if started:
            as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(top, ignore_errors=True)


def role_names(pg: Cluster, marker: str) -> set[str]:
    return pg.rows(
        f"SELECT rolname FROM pg_authid WHERE shobj_description(oid, 'pg_authid') = {pga.quote_literal(marker)}"
    )


def members(pg: Cluster, group: str) -> set[str]:
    return pg.rows(
        "SELECT m.rolname FROM pg_auth_members a JOIN pg_authid g ON g.oid = a.roleid "
        f"JOIN pg_authid m ON m.oid = a.member WHERE g.rolname = {pga.quote_literal(group)}"
    )


# --------------------------------------------------------------------------- quoting and names

NASTY = [
    'a"b',
    'x"; DROP ROLE victim; --',
    "it's",
    "back\\slash'); DROP ROLE victim; --",
    ":victim :'victim' :\"victim\"",  # psql variables: never interpolated inside quotes
    "line\nbreak",
    "$$dollar$$",
    "\\! touch /tmp/provision-pg-escaped",  # a psql meta-command, were the backslash outside quotes
    "Grüße ✓",
]


def test_quoting_is_what_postgresql_parses_back_as_one_name_and_nothing_else(pg: Cluster) -> None:
    assert pga.quote_ident('a"b') == '"a""b"'
    assert pga.quote_ident("alice") == '"alice"'
    assert pga.quote_literal("it's") == "'it''s'"
    assert pga.quote_literal("a\\b'") == "E'a\\\\b'''"
    assert pga.conninfo_value("x' y\\") == "'x\\' y\\\\'"
    with pytest.raises(ValueError):
        pga.quote_ident("nul\x00")
    pg.sql("CREATE ROLE victim NOLOGIN")
    for text in NASTY:
        # Fed to psql on stdin exactly as the module does: the literal comes back as the text, and a
        # role created under the quoted name has exactly that name; victim survives every one.
        assert (
            pg.sql(f"SELECT {pga.quote_literal(text)} = {pga.quote_literal(text)}, length({pga.quote_literal(text)})")
            == f"t|{len(text)}"
        )
        pg.sql(f"CREATE ROLE {pga.quote_ident(text)} NOLOGIN")
        assert pg.sql(f"SELECT count(*) FROM pg_authid WHERE rolname = {pga.quote_literal(text)}") == "1"
        pg.sql(f"DROP ROLE {pga.quote_ident(text)}")
        assert pg.sql("SELECT count(*) FROM pg_authid WHERE rolname = 'victim'") == "1"
    assert not Path("/tmp/provision-pg-escaped").exists()
    pg.sql("DROP ROLE victim")


@pytest.mark.parametrize(
    "name",
    [
        "postgres",
        "Postgres",
        "pg_monitor",
        "PG_read_all_data",
        "public",
        "current_user",
        "session_user",
        "current_role",
        "none",
        'a"b',
        "x;drop",
        "it's",
        "a b",
        "",
        "-x",
        "x" * 64,
        "back\\slash",
        "ümlaut",
    ],
)
def test_hostile_or_reserved_role_names_are_refused(name: str) -> None:
    assert pga.name_problem(name, "role") is not None


def test_good_names_pass_and_system_databases_are_refused() -> None:
    for name in ("alice", "j.doe", "team-a", "_svc", "x" * 63, "Alice2"):
        assert pga.name_problem(name, "role") is None, name
    for name in ("postgres", "template0", "TEMPLATE1"):
        assert "every PostgreSQL cluster has" in (pga.name_problem(name, "database") or "")
    assert pga.name_problem("projects", "database") is None


def test_the_request_is_checked_as_a_whole() -> None:
    with pytest.raises(pga.RequestError) as caught:
        pga.parse_request(
            [
                {
                    "name": "a",
                    "owner": "staff",
                    "read_write": {"users": ["staff"], "groups": ["nogroup"]},
                    "read_only": {"users": [], "groups": []},
                },
                {
                    "name": "a",
                    "owner": "bob",
                    "read_write": {"users": [], "groups": []},
                    "read_only": {"users": ["pg_monitor"], "groups": []},
                },
                {"name": "template1", "owner": "bob", "read_write": {}, "read_only": {}},
            ],
            {"staff": ["alice", "admins"], "admins": ["root'"]},
            "managed by provision",
        )
    text = "\n".join(caught.value.problems)
    for expected in (
        "read_write.users: staff is a group",
        "nogroup is not a key of groups",
        "database a is requested twice",
        "role pg_monitor is a name PostgreSQL keeps",
        "template1 is one every PostgreSQL cluster has",
        "member admins is itself a group",
        '"root\'" is not 1 to 63',
    ):
        assert expected in text, text
    request = pga.parse_request(
        [
            {
                "name": "p",
                "owner": "eng",
                "read_write": {"users": ["bob"], "groups": []},
                "read_only": {"users": [], "groups": ["eng"]},
            }
        ],
        {"eng": ["alice"]},
        "m",
    )
    assert request.users == {"alice", "bob"} and request.kind("eng") == "group" and request.kind("bob") == "user"


def test_plan_of_one_database_keeps_managed_roles_exact_and_only_adds_for_foreign_ones() -> None:
    want = pga.DatabaseWant("db", "alice", frozenset({"bob"}), frozenset({"dba", "staff"}))
    state = pga.DatabaseState(
        owner="olduser",
        schema_owner="pg_database_owner",
        relations={"t": ("table", "alice"), "s": ("sequence", "alice")},
        acl={
            ("database", "db"): {
                None: frozenset({"CONNECT", "TEMPORARY"}),
                "alice": frozenset({"CONNECT"}),
                "gone": frozenset({"CONNECT", "CREATE"}),
                "dba": frozenset({"CREATE"}),
                "dropped": frozenset({"CONNECT"}),
            },
            ("table", "t"): {"staff": frozenset({"SELECT", "TRUNCATE"}), "dba": frozenset({"INSERT"})},
            ("default tables", "olduser"): {"staff": frozenset({"SELECT"})},
        },
    )
    changes, after = pga.plan_database(
        want, state, frozenset({"alice", "bob", "staff", "gone", "olduser"}), frozenset({"dropped"})
    )
    lines = [c.line for c in changes]
    assert lines[0] == "db: owner olduser -> alice"
    assert "db: revoke CONNECT, TEMPORARY on database from PUBLIC" in lines
    assert "db: revoke CREATE, CONNECT on database from gone" in lines
    assert "db: revoke TRUNCATE on tables public.t from staff" in lines  # managed: exactly SELECT
    assert "db: revoke SELECT on tables olduser creates in schema public from staff" in lines  # a former owner's
    assert "db: grant CONNECT on database to dba" in lines  # foreign: given what the request says...
    assert not any("from dba" in line for line in lines)  # ... and nothing taken (CREATE, INSERT stay)
    assert not any("dropped" in line or " alice" in line.split(" to ")[-1] for line in lines[1:])  # DROP OWNED; owner
    assert after[("table", "t")]["dba"] == {"SELECT", "INSERT"}
    assert after[("database", "db")]["dba"] == {"CONNECT", "CREATE"} and None not in after[("database", "db")]
    assert [c.sql for c in changes if "sequences public" in c.line] == [
        'GRANT SELECT, USAGE ON SEQUENCE public."s" TO "bob";'
    ]
    again, _ = pga.plan_database(
        want,
        pga.DatabaseState(
            "alice",
            "pg_database_owner",
            state.relations,
            {k: {g: p for g, p in v.items() if p} for k, v in after.items()},
        ),
        frozenset({"alice", "bob", "staff", "gone", "olduser"}),
        frozenset(),
    )
    assert again == [], [c.line for c in again]


# --------------------------------------------------------------------------- the module, for real

ACCESS_REQUEST = {
    "databases": [
        {
            "name": "a_projects",
            "owner": "a_alice",
            "read_write": {"users": ["a_bob"], "groups": ["a_eng"]},
            "read_only": {"groups": ["a_staff"]},
        },
        {"name": "a_reports", "owner": "a_staff", "read_only": {"users": ["a_dave"]}},
    ],
    "groups": {"a_eng": ["a_alice", "a_carol"], "a_staff": ["a_alice", "a_bob", "a_carol"]},
    "marker": "provision test a",
}


def test_first_run_creates_everything_check_mode_predicts_it_and_a_second_run_changes_nothing(pg: Cluster) -> None:
    before = pg.snapshot()
    check = run_module(MODULE, pg.args(**ACCESS_REQUEST), check=True, diff=True)
    assert check["changed"] is True and not check["_failed"], check["_stdout"]
    assert pg.snapshot() == before  # check mode ran queries only
    assert "+role a_bob: LOGIN (managed)" in check["_stdout"] and "+role a_carol: member of a_eng" in check["_stdout"]
    assert "+database a_projects: owner a_alice" in check["_stdout"]

    first = run_module(MODULE, pg.args(**ACCESS_REQUEST))
    assert first["changed"] is True and not first["_failed"], first["_stdout"]
    assert first["changes"] == check["changes"]
    assert first["created_roles"] == ["a_alice", "a_bob", "a_carol", "a_dave", "a_eng", "a_staff"]
    assert first["created_databases"] == ["a_projects", "a_reports"] and first["dropped_roles"] == []
    assert "create role a_eng (NOLOGIN, a group)" in first["changes"]
    assert "a_projects: revoke CONNECT, TEMPORARY on database from PUBLIC" in first["changes"]

    # Roles: users log in and inherit, groups do not log in, nobody has a password, all carry the marker.
    assert pg.rows(
        "SELECT rolname || ' ' || rolcanlogin || rolinherit || rolsuper || rolcreatedb || rolcreaterole "
        "|| (rolpassword IS NULL) FROM pg_authid WHERE rolname LIKE 'a\\_%'"
    ) == {f"{u} truetruefalsefalsefalsetrue" for u in ("a_alice", "a_bob", "a_carol", "a_dave")} | {
        f"{g} falsetruefalsefalsefalsetrue" for g in ("a_eng", "a_staff")
    }
    assert role_names(pg, "provision test a") == {"a_alice", "a_bob", "a_carol", "a_dave", "a_eng", "a_staff"}
    assert members(pg, "a_eng") == {"a_alice", "a_carol"} and members(pg, "a_staff") == {"a_alice", "a_bob", "a_carol"}
    assert pg.rows("SELECT datname || ' ' || datdba::regrole FROM pg_database WHERE datname LIKE 'a\\_%'") == {
        "a_projects a_alice",
        "a_reports a_staff",
    }

    # As the roles themselves: the owner's new table is shared by the default privileges at once.
    pg.sql(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('hi')",
        db="a_projects",
        user="a_alice",
    )
    pg.sql("INSERT INTO notes (body) VALUES ('from bob')", db="a_projects", user="a_bob")  # read_write user
    pg.sql("UPDATE notes SET body = 'carol' WHERE id = 1", db="a_projects", user="a_carol")  # via group a_eng
    assert pg.sql("SELECT count(*) FROM notes", db="a_projects", user="a_bob") == "2"
    assert "permission denied for database" in pg.denied("SELECT 1", db="a_projects", user="a_dave")
    # a_staff owns a_reports; its members reach it through the owner group, a_dave reads only.
    pg.sql(
        "SET ROLE a_staff; CREATE TABLE figures (n int); INSERT INTO figures VALUES (7)", db="a_reports", user="a_bob"
    )
    assert pg.sql("SELECT n FROM figures", db="a_reports", user="a_dave") == "7"
    assert "permission denied for table figures" in pg.denied(
        "INSERT INTO figures VALUES (8)", db="a_reports", user="a_dave"
    )
    assert "permission denied for schema public" in pg.denied(
        "CREATE TABLE mine (x int)", db="a_reports", user="a_dave"
    )

    again = run_module(MODULE, pg.args(**ACCESS_REQUEST), diff=True)
    assert again["changed"] is False and again["changes"] == [], again["changes"]

    # Tables a read_write user creates are that user's; the next run shares them. A table whose name
    # is an SQL injection attempt is just a name.
    pg.sql("CREATE TABLE bobs (x int); INSERT INTO bobs VALUES (1)", db="a_projects", user="a_bob")
    hostile = 'x"; DROP TABLE notes; --'
    pg.sql(f"CREATE TABLE {pga.quote_ident(hostile)} (x int)", db="a_projects")
    assert "permission denied for table bobs" in pg.denied("SELECT * FROM bobs", db="a_projects", user="a_carol")
    shared = run_module(MODULE, pg.args(**ACCESS_REQUEST))
    assert shared["changed"] is True, shared["_stdout"]
    assert (
        'a_projects: grant SELECT on tables public.bobs, public."x""; DROP TABLE notes; --" to a_staff'
        in shared["changes"]
    )
    assert pg.sql("SELECT x FROM bobs", db="a_projects", user="a_carol") == "1"
    assert pg.sql("SELECT count(*) FROM notes", db="a_projects") == "2"
    assert pg.sql(f"SELECT count(*) FROM {pga.quote_ident(hostile)}", db="a_projects", user="a_alice") == "0"
    assert run_module(MODULE, pg.args(**ACCESS_REQUEST))["changed"] is False

    # A managed role someone changed by hand is put back: no password, no extra powers, logs in.
    pg.sql("ALTER ROLE a_bob CREATEDB PASSWORD 'Secret-1'; ALTER ROLE a_eng LOGIN")
    fixed = run_module(MODULE, pg.args(**ACCESS_REQUEST))
    assert fixed["changes"] == ["alter role a_bob: NOCREATEDB, PASSWORD NULL", "alter role a_eng: NOLOGIN"]
    assert (
        pg.sql(
            "SELECT rolname, rolcreatedb, rolcanlogin, rolpassword IS NULL FROM pg_authid "
            "WHERE rolname IN ('a_bob', 'a_eng') ORDER BY 1"
        )
        == "a_bob|f|t|t\na_eng|f|f|t"
    )


def test_requests_that_change_leave_data_drop_departed_roles_and_hold_risky_ones(pg: Cluster) -> None:
    marker = "provision test b"
    request: dict[str, Any] = {
        "databases": [
            {
                "name": "b_main",
                "owner": "b_alice",
                "read_write": {"groups": ["b_eng"]},
                "read_only": {"users": ["b_bob"], "groups": ["b_staff"]},
            },
            {"name": "b_old", "owner": "b_alice"},
        ],
        "groups": {"b_eng": ["b_alice", "b_carol"], "b_staff": ["b_bob", "b_dave"]},
        "marker": marker,
    }
    assert run_module(MODULE, pg.args(**request))["changed"] is True
    pg.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)", db="b_old", user="b_alice")
    pg.sql("CREATE TABLE carols (x int); INSERT INTO carols VALUES (42)", db="b_main", user="b_carol")
    # A view owned by b_dave: owned by postgres it would read with superuser rights for whoever may select it.
    pg.sql("CREATE VIEW daves AS SELECT rolname FROM pg_authid; ALTER VIEW daves OWNER TO b_dave", db="b_main")
    assert run_module(MODULE, pg.args(**request))["changed"] is True  # carols is shared with the readers

    # b_old leaves the request, b_carol and b_dave leave the directory's groups, b_bob leaves b_staff.
    request["databases"] = request["databases"][:1]
    request["groups"] = {"b_eng": ["b_alice"], "b_staff": []}
    check = run_module(MODULE, pg.args(**request), check=True)
    result = run_module(MODULE, pg.args(**request))
    assert not result["_failed"], result["_stdout"]
    assert result["changes"] == check["changes"]
    assert result["unmanaged_databases"] == check["unmanaged_databases"]
    assert "b_old" in result["unmanaged_databases"]
    assert pg.sql("SELECT sum(x) FROM kept", db="b_old") == "3"  # never dropped
    assert result["dropped_roles"] == ["b_carol"] and result["held_roles"] == ["b_dave"]
    assert "revoke b_staff from b_bob" in result["changes"]
    assert members(pg, "b_staff") == set() and members(pg, "b_eng") == {"b_alice"}
    assert "drop role b_carol (REASSIGN OWNED to postgres, DROP OWNED, in every database)" in result["changes"]
    warning = " ".join(result["_stdout"].split())  # however ansible wraps it
    assert "role b_dave is no longer requested but is kept" in warning
    assert "it owns view public.daves in database b_main" in warning
    # b_carol is gone, her table is postgres's with its data, and the readers still read it.
    assert pg.sql("SELECT count(*) FROM pg_authid WHERE rolname = 'b_carol'") == "0"
    assert (
        pg.sql(
            "SELECT relowner::regrole || ' ' || (SELECT x FROM carols) FROM pg_class WHERE relname = 'carols'",
            db="b_main",
        )
        == "postgres 42"
    )
    assert pg.sql("SELECT x FROM carols", db="b_main", user="b_bob") == "42"
    # b_dave is kept, cannot log in, is in no group, and has nothing in b_main any more.
    assert pg.sql("SELECT rolcanlogin FROM pg_authid WHERE rolname = 'b_dave'") == "f"
    assert pg.sql("SELECT has_database_privilege('b_dave', 'b_main', 'CONNECT')") == "f"
    assert pg.sql("SELECT relowner::regrole FROM pg_class WHERE relname = 'daves'", db="b_main") == "b_dave"
    assert run_module(MODULE, pg.args(**request))["changed"] is False

    # Once the view is dealt with by hand, the next run drops b_dave.
    pg.sql("DROP VIEW daves", db="b_main")
    last = run_module(MODULE, pg.args(**request))
    assert last["dropped_roles"] == ["b_dave"] and last["held_roles"] == [], last["_stdout"]
    assert role_names(pg, marker) == {"b_alice", "b_bob", "b_eng", "b_staff"}
    assert run_module(MODULE, pg.args(**request))["changed"] is False


def test_foreign_roles_are_used_as_they_are_and_never_changed(pg: Cluster) -> None:
    marker = "provision test c"
    # A DBA's own roles: one that logs in (and may create databases), one that cannot log in.
    pg.sql("CREATE ROLE c_dba LOGIN CREATEDB; COMMENT ON ROLE c_dba IS 'the DBA''s'; CREATE ROLE c_nologin NOLOGIN")
    request: dict[str, Any] = {
        "databases": [{"name": "c_db", "owner": "c_alice", "read_only": {"users": ["c_dba"], "groups": ["c_grp"]}}],
        "groups": {"c_grp": ["c_alice"]},
        "marker": marker,
    }
    result = run_module(MODULE, pg.args(**request))
    assert result["changed"] is True and result["foreign_roles"] == ["c_dba"], result["_stdout"]
    assert (
        pg.sql(
            "SELECT rolcreatedb || ' ' || shobj_description(oid, 'pg_authid') FROM pg_authid WHERE rolname = 'c_dba'"
        )
        == "true the DBA's"
    )
    assert pg.sql("SELECT 1", db="c_db", user="c_dba") == "1"  # it got CONNECT
    # What a DBA gave it beyond the request stays; a managed role loses it.
    pg.sql("CREATE TABLE t (x int); GRANT INSERT ON t TO c_dba; GRANT TRUNCATE ON t TO c_alice", db="c_db")
    again = run_module(MODULE, pg.args(**request))
    assert "c_db: grant SELECT on tables public.t to c_dba" in again["changes"]
    assert "c_db: revoke TRUNCATE on tables public.t from c_alice" in again["changes"]
    assert not any("from c_dba" in line for line in again["changes"])
    assert (
        pg.sql(
            "SELECT has_table_privilege('c_dba', 't', 'INSERT'), has_table_privilege('c_alice', 't', 'TRUNCATE')",
            db="c_db",
        )
        == "t|f"
    )
    assert run_module(MODULE, pg.args(**request))["changed"] is False

    # A foreign role that would have to change fails the module before anything is done.
    before = pg.snapshot()
    for bad, expected in (
        (
            {"databases": [{"name": "c_db", "owner": "c_alice", "read_only": {"users": ["c_nologin", "c_new"]}}]},
            "role c_nologin exists without the marker",
        ),
        ({"groups": {"c_grp": ["c_alice", "c_dba"]}}, "role c_dba must be a member of c_grp"),
    ):
        failed = run_module(MODULE, pg.args(**{**request, **bad}))
        assert failed["_failed"] and expected in failed["msg"], failed["_stdout"]
        assert pg.snapshot() == before  # c_new was not created, nothing was granted
    assert (
        "COMMENT ON ROLE \"c_nologin\" IS 'provision test c'"
        in run_module(MODULE, pg.args(**{**request, "databases": [{"name": "c_db", "owner": "c_nologin"}]}))["msg"]
    )


def test_hostile_names_are_refused_before_anything_runs(pg: Cluster) -> None:
    before = pg.snapshot()
    request = {
        "databases": [
            {
                "name": "template1",
                "owner": "pg_monitor",
                "read_write": {"users": ['a"b', "postgres"]},
                "read_only": {"users": ["x;DROP ROLE postgres"], "groups": []},
            },
            {"name": 'd"; DROP DATABASE postgres; --', "owner": "public"},
        ],
        "groups": {"pg_read_all_data": ["alice"]},
        "marker": "provision test d",
    }
    # A socket directory that does not exist: the refusal comes before psql is ever run.
    for args in (pg.args(**request), {**request, "socket_dir": "/nonexistent/socket"}):
        result = run_module(MODULE, args)
        assert result["_failed"] and result["msg"].startswith("the request cannot be carried out"), result["_stdout"]
        for fragment in (
            "role pg_monitor is a name PostgreSQL keeps",
            'role name "a\\"b" is not',
            "role postgres is a name",
            'role name "x;DROP ROLE postgres" is not',
            "database template1 is one every",
            "role public is a name",
            'database name "d\\"; DROP DATABASE postgres; --" is not',
            "role pg_read_all_data is a name",
        ):
            assert fragment in result["msg"], (fragment, result["msg"])
    assert pg.snapshot() == before
