"""The provision_ad_directory module without Samba: its request checks, what-differs computations and
masking as Python; the reconciliation of users, groups, memberships, the policy and computer accounts
against an in-memory stand-in for SamDB; and the module run through ansible (argument spec, bad requests,
an interpreter without python3-samba). Nothing here touches a real directory."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_modules
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
MODULE = PLAYBOOKS / "library" / "provision_ad_directory.py"
ANSIBLE = Path(sys.executable).with_name("ansible")
BASE = "DC=lab,DC=example"


ad = ansible_modules.load_module("provision_ad_directory")


def params(**over: Any) -> dict[str, Any]:
    """Module options as AnsibleModule hands them over (defaults applied)."""
    out: dict[str, Any] = {
        "netbios": "LAB",
        "dns_domain": "lab.example",
        "marker": "managed by provision",
        "users": [{"name": "alice", "full_name": "Alice Example", "groups": ["staff"], "shell": "/bin/bash"}],
        "groups": [{"name": "staff", "description": "Everyone"}],
        "passwords": {"alice": "Alice-pw-1"},
        "admin_password": "Admin-pw-1",
        "enforce_passwords": False,
        "policy": None,
        "computer_ou": "OU=Provisioned Computers",
        "computers": {"members": ["ws1"], "prune": True, "prune_max": 10, "prune_max_percent": 50},
        "dns": {"server": "127.0.0.1", "hosts": {"dc1": "10.20.0.2"}, "subnets": ["10.20.0.0/24"]},
        "state_file": None,
        "smb_conf": None,
    }
    out.update(over)
    return out


# --------------------------------------------------------------------------- the request


def test_a_good_request_is_the_scripts_request() -> None:
    req = ad.build_request(params())
    assert req["dns"] == {"server": "127.0.0.1", "admin_password": "Admin-pw-1", "hosts": {"dc1": "10.20.0.2"},
                          "subnets": ["10.20.0.0/24"], "mx": None}
    assert req["computers"]["prune_max"] == 10 and req["computer_ou"] == "OU=Provisioned Computers"
    assert req["policy"] is None and req["passwords"] == {"alice": "Alice-pw-1"}
    # No DNS, no OU, no computers: nothing of those is touched.
    bare = ad.build_request(params(dns=None, computer_ou=None, computers={}, admin_password=""))
    assert bare["dns"] is None and bare["computer_ou"] is None
    assert bare["computers"] == {"members": [], "prune": False, "prune_max": 10, "prune_max_percent": 50}


def test_mx_records_live_at_the_mail_domains_node_of_the_zone() -> None:
    zone = params()["dns_domain"]
    wanted = {"domain": zone, "hosts": ["mx2", "mx1", "mx1"]}
    mx = ad.build_request(params(dns={"hosts": {}, "mx": wanted}))["dns"]["mx"]
    assert mx == {"domain": zone, "node": "@", "targets": [f"mx1.{zone}", f"mx2.{zone}"]}
    sub = ad.build_request(params(dns={"hosts": {}, "mx": {"domain": f"mail.{zone}", "hosts": ["mx1"]}}))["dns"]["mx"]
    assert sub["node"] == "mail" and sub["targets"] == [f"mx1.{zone}"]
    # Another zone's MX is not this DC's to keep; a host name must be one.
    with pytest.raises(ad.Invalid) as err:
        ad.build_request(params(dns={"hosts": {}, "mx": {"domain": "example.org", "hosts": ["bad_name!"]}}))
    assert "outside the zone" in str(err.value)
    with pytest.raises(ad.Invalid) as err:
        ad.build_request(params(dns={"hosts": {}, "mx": {"domain": zone, "hosts": ["bad_name!"]}}))
    assert "bad_name!" in str(err.value)


def test_a_bad_request_names_every_problem_and_no_password() -> None:
    bad = params(
        marker="  ",
        users=[{"name": "Bob", "groups": []}, {"name": "bob", "groups": []}],
        groups=[{"name": ""}],
        passwords={"bob": "Bob-pw-1", "carol": ["not", "a", "string"]},
        admin_password="",
        policy={"min_length": 300, "complexity": True, "history": -1, "max_age_days": 0, "min_age_days": 0,
                "lockout_threshold": 0, "lockout_duration_minutes": 0, "lockout_window_minutes": 0},
        computer_ou="CN=Computers",
        computers={"members": [], "prune": True, "prune_max": -1, "prune_max_percent": 150},
        dns={"server": "127.0.0.1", "hosts": {"ws1": "ws1.lab.example", "ws2": "10.20.0.300"},
             "subnets": ["10.20.0.0/33"]},
    )
    with pytest.raises(ad.Invalid) as err:
        ad.build_request(bad)
    msg = str(err.value)
    for part in ("marker must not be empty", "user bob is listed twice", "a group has no name",
                 "the password of user carol is not a string", "policy.min_length must be 255 at most",
                 "policy.history must not be negative", "'CN=Computers' is not an OU",
                 "prune_max must not be negative", "prune_max_percent must be between 0 and 100",
                 "dns needs admin_password", "address of ws1 ('ws1.lab.example') is not an IPv4 address",
                 "address of ws2", "'10.20.0.0/33' is not a network"):
        assert part in msg, (part, msg)
    assert "Bob-pw-1" not in msg


def test_secrets_are_masked_in_samba_error_text() -> None:
    p = params(passwords={"alice": "pw", "bob": "pw-long", "carol": None}, admin_password="Admin-pw-1")
    secrets = ad.secrets_of(p)
    assert sorted(secrets) == ["Admin-pw-1", "pw", "pw-long"]
    exc = RuntimeError("samba-tool domain passwordsettings failed: bind as Administrator%Admin-pw-1: pw-long pw")
    msg = ad.error_message(exc, secrets)
    assert msg == "RuntimeError: samba-tool domain passwordsettings failed: bind as Administrator%********: " \
                  "******** ********"


# --------------------------------------------------------------------------- what differs


def test_names_and_attributes() -> None:
    assert ad.split_full_name("Anna Maria Example") == ("Anna Maria", "Example")
    assert ad.split_full_name(" Cher ") == ("Cher", "")
    assert ad.split_full_name(None) == ("", "")
    current = {"displayName": "Alice", "loginShell": "/bin/bash"}
    assert ad.attributes_differ(current, {"displayName": "Alice Example", "loginShell": "/bin/bash"}) == {
        "displayName": "Alice Example"}
    assert ad.attributes_differ({}, {"displayName": "", "loginShell": "/bin/sh"}) == {"loginShell": "/bin/sh"}


def test_memberships_manage_only_spec_users() -> None:
    users = [{"name": "Alice", "groups": ["Staff"]}, {"name": "bob", "groups": []},
             {"name": "carol", "groups": ["staff"]}]
    add, remove = ad.membership_delta(users, "staff", ["alice", "BOB", "outsider"])
    assert (add, remove) == (["carol"], ["bob"])  # outsider is not the spec's: left alone
    assert ad.membership_delta(users, "ops", []) == ([], [])


def test_only_marked_objects_that_left_the_spec_are_removed() -> None:
    assert ad.stale_marked(["Alice", "gone", "GONE2"], ["alice"]) == ["gone", "GONE2"]
    assert ad.stale_marked([], ["alice"]) == []


def test_policy_differences_in_directory_units() -> None:
    p = {"min_length": 12, "complexity": True, "history": 24, "max_age_days": 90, "min_age_days": 1,
         "lockout_threshold": 5, "lockout_duration_minutes": 30, "lockout_window_minutes": 30}
    wanted = {"pwdProperties": 1 | 16, "pwdHistoryLength": 24, "minPwdLength": 12, "minPwdAge": -ad.DAY,
              "maxPwdAge": -90 * ad.DAY, "lockoutThreshold": 5, "lockoutDuration": -30 * ad.MINUTE,
              "lockOutObservationWindow": -30 * ad.MINUTE}
    assert ad.policy_differ(p, wanted) == []
    # Complexity off clears bit 1 only; 0 days is "never"; the other bits of pwdProperties stay.
    off = {**p, "complexity": False, "max_age_days": 0}
    assert ad.policy_differ(off, wanted) == [("--complexity", "pwdProperties", 16, "off"),
                                             ("--max-pwd-age", "maxPwdAge", ad.NEVER, "0")]
    # samba-tool refuses a minimum length above 14: that one is written directly.
    long = ad.policy_differ({**p, "min_length": 20, "history": 5}, wanted)
    tool, direct = ad.policy_split(long)
    assert [d[1] for d in tool] == ["pwdHistoryLength"] and [d[1:3] for d in direct] == [("minPwdLength", 20)]


def test_computer_accounts_and_the_safety_net() -> None:
    assert ad.netbios_names(["ws1.lab.example", "averyveryverylongname"]) == {"WS1", "AVERYVERYVERYLO"}
    present = [("WS1", "ws1.lab.example"), ("OLD", ""), ("AVERYVERYVERYLO", "")]
    assert ad.stale_computers(present, ["ws1", "averyveryverylongname"]) == [("OLD", "")]
    c = {"prune_max": 10, "prune_max_percent": 50}
    assert ad.prune_limit(100, c) == 10
    assert ad.prune_limit(6, c) == 3
    assert ad.prune_limit(1, c) == 1  # at least one
    assert ad.prune_limit(100, {"prune_max": 0, "prune_max_percent": 50}) == 0


def test_reverse_zones_and_ptr_names() -> None:
    zones = ad.reverse_zones(["10.20.0.0/24", "10.30.0.0/22", "192.168.7.16/28", "fd00::/64"])
    assert zones == {"0.20.10.in-addr.arpa": ipaddress.ip_network("10.20.0.0/24"),
                     "30.10.in-addr.arpa": ipaddress.ip_network("10.30.0.0/16"),
                     "7.168.192.in-addr.arpa": ipaddress.ip_network("192.168.7.0/24")}
    assert ad.ptr_label("10.20.0.5", zones["0.20.10.in-addr.arpa"]) == "5"
    assert ad.ptr_label("10.30.1.5", zones["30.10.in-addr.arpa"]) == "5.1"
    assert ad.stale_dns_names(["ws1", "ws2", "old"], ["ws1", "ws2"], ["ws2", "fs9"]) == ["fs9", "old"]


def test_the_documentation_is_the_argument_spec() -> None:
    doc = yaml.safe_load(ad.DOCUMENTATION)["options"]

    def compare(doc_opts: dict[str, Any], spec: dict[str, Any], where: str) -> None:
        assert set(doc_opts) == set(spec), where
        for name, s in spec.items():
            d = doc_opts[name]
            for key in ("type", "elements", "required", "default"):
                assert d.get(key) == s.get(key), f"{where}{name}.{key}"
            assert ("suboptions" in d) == ("options" in s), f"{where}{name}"
            if "options" in s:
                compare(d["suboptions"], s["options"], f"{where}{name}.")

    compare(doc, ad.ARGUMENT_SPEC, "")
    assert ad.ARGUMENT_SPEC["passwords"]["no_log"] and ad.ARGUMENT_SPEC["admin_password"]["no_log"]
    assert {"changes", "warnings"} <= set(yaml.safe_load(ad.RETURN))


# --------------------------------------------------------------------------- the reconciliation, on a stand-in SamDB


class Msg(dict):
    """An ldb.Message: attribute -> list of values, and a dn."""

    def __init__(self, dn: str = "", attrs: dict[str, list[Any]] | None = None) -> None:
        super().__init__(attrs or {})
        self.dn = dn


class FakeLdb:
    SCOPE_BASE, SCOPE_ONELEVEL, SCOPE_SUBTREE = 0, 1, 2
    FLAG_MOD_REPLACE, FLAG_MOD_DELETE = 2, 3
    OID_COMPARATOR_AND = "1.2.840.113556.1.4.803"
    Message = Msg

    class LdbError(Exception):
        pass

    @staticmethod
    def binary_encode(value: str) -> str:
        return value

    @staticmethod
    def MessageElement(values: Any, flag: int, name: str) -> tuple[Any, int]:  # ldb's names
        return values, flag

    @staticmethod
    def Dn(_samdb: Any, dn: str) -> str:
        return dn


class FakeSamDB:
    """Just enough of SamDB for the directory part: objects by DN, searched the way the module searches."""

    url = "tdb:///fake/sam.ldb"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {
            BASE: {"kind": "domain", "attrs": {}},
            f"OU=Provisioned Computers,{BASE}": {"kind": "ou", "attrs": {}},
        }
        self.passwords: dict[str, str] = {}

    def add(self, kind: str, name: str, where: str = "CN=Users", **attrs: Any) -> str:
        dn = f"CN={name},{where},{BASE}"
        self.objects[dn] = {"kind": kind, "attrs": {"sAMAccountName": [name], **{k: [v] for k, v in attrs.items()}}}
        return dn

    def dn_of(self, name: str) -> str:
        return next(dn for dn, o in self.objects.items()
                    if [n.lower() for n in o["attrs"].get("sAMAccountName", [])] == [name.lower()])

    def attr(self, name: str, attr: str) -> list[Any]:
        return list(self.objects[self.dn_of(name)]["attrs"].get(attr, []))

    def domain_dn(self) -> str:
        return BASE

    def search(self, base: str, scope: int, expression: str = "", attrs: Any = None) -> list[Msg]:
        if scope == FakeLdb.SCOPE_BASE:
            obj = self.objects.get(str(base))
            return [Msg(str(base), copy.deepcopy(obj["attrs"]))] if obj else []
        if str(base) not in self.objects:
            raise FakeLdb.LdbError("no such object")
        kind = "group" if "objectClass=group" in expression else \
            "computer" if expression.startswith("(&(objectClass=computer)") else "user"
        m = re.search(r"\((sAMAccountName|adminDescription|distinguishedName)=([^)]*)\)", expression)
        out = []
        for dn, obj in self.objects.items():
            if not dn.endswith(str(base)):
                continue
            if m and m.group(1) == "distinguishedName":
                if dn == m.group(2):
                    out.append(Msg(dn, {}))
                continue
            if obj["kind"] != kind:
                continue
            if m and m.group(2).lower() not in [str(v).lower() for v in obj["attrs"].get(m.group(1), [])]:
                continue
            out.append(Msg(dn, copy.deepcopy(obj["attrs"])))
        return out

    def modify(self, m: Msg) -> None:
        attrs = self.objects[str(m.dn)]["attrs"]
        for k, (values, flag) in m.items():
            if flag == FakeLdb.FLAG_MOD_DELETE:
                attrs.pop(k, None)
            else:
                attrs[k] = [values]

    def newgroup(self, name: str, description: str | None = None) -> None:
        self.add("group", name, **({"description": description} if description else {}))

    def newuser(self, name: str, password: str, givenname: str | None = None, surname: str | None = None,
                loginshell: str | None = None) -> None:
        full = " ".join(x for x in (givenname, surname) if x)
        self.add("user", name, **({"displayName": full} if full else {}),
                 **({"loginShell": loginshell} if loginshell else {}), unicodePwd=b"nt:" + password.encode())

    def setpassword(self, search: str, password: str, force_change_at_next_login: bool, username: str) -> None:
        self.objects[self.dn_of(username)]["attrs"]["unicodePwd"] = [b"nt:" + password.encode()]

    def add_remove_group_members(self, group: str, members: list[str], add_members_operation: bool) -> None:
        attrs = self.objects[self.dn_of(group)]["attrs"]
        have = attrs.setdefault("member", [])
        for name in members:
            dn = self.dn_of(name)
            if add_members_operation:
                have.append(dn)
            else:
                have.remove(dn)

    def deleteuser(self, name: str) -> None:
        del self.objects[self.dn_of(name)]

    deletegroup = deleteuser

    def create_ou(self, dn: str, description: str) -> None:
        self.objects[dn] = {"kind": "ou", "attrs": {}}


class FakeCredentials:
    def set_password(self, password: str) -> None:
        self.password = password

    def get_nt_hash(self) -> bytes:
        return b"nt:" + self.password.encode()


@pytest.fixture
def samdb(monkeypatch: pytest.MonkeyPatch) -> FakeSamDB:
    db = FakeSamDB()
    lp = SimpleNamespace(load=lambda path: None, load_default=lambda: None, samdb_url=lambda: db.url)
    for name, value in {"ldb": FakeLdb, "LoadParm": lambda: lp, "SamDB": lambda **kw: db,
                        "system_session": lambda: None, "Credentials": FakeCredentials}.items():
        monkeypatch.setattr(ad, name, value)
    staff = db.add("group", "staff", description="old")
    alice = db.add("user", "alice", displayName="Alice", loginShell="/bin/sh", unicodePwd=b"nt:changed-by-alice")
    outsider = db.add("user", "outsider")
    db.objects[staff]["attrs"]["member"] = [alice, outsider]
    db.add("user", "gone", adminDescription="managed by provision")
    db.add("user", "legacy")  # no marker: never deleted
    db.add("group", "oldgroup", adminDescription="managed by provision")
    db.add("computer", "WS1$", "OU=Provisioned Computers")
    db.add("computer", "OLD$", "OU=Provisioned Computers")
    db.add("computer", "ELSEWHERE$", "CN=Computers")  # outside the OU: never deleted
    return db


def run(request: dict[str, Any], check: bool = False) -> Any:
    r = ad.Run(request, check=check)
    r.tool_calls = []
    r.samba_tool = lambda *args: r.tool_calls.append(args) or ""
    r.run()
    return r


def directory_request(**over: Any) -> dict[str, Any]:
    return ad.build_request(params(
        users=[{"name": "alice", "full_name": "Alice Example", "groups": ["staff", "ops"], "shell": "/bin/bash"},
               {"name": "bob", "full_name": "Bob", "groups": ["staff"], "shell": ""}],
        groups=[{"name": "staff", "description": "Everyone"}, {"name": "ops", "description": ""}],
        passwords={"alice": "Alice-pw-1", "bob": "Bob-pw-1"},
        dns=None, **over))


def test_check_mode_changes_nothing_and_says_what_it_would_do(samdb: FakeSamDB) -> None:
    before = copy.deepcopy(samdb.objects)
    r = run(directory_request(), check=True)
    assert samdb.objects == before and r.tool_calls == []
    assert r.changes == [
        "would set description of group staff", "would create group ops", "would set displayName, loginShell of "
        "user alice", "would create user bob", "would add bob to group staff", "would add alice to group ops",
        "would delete user gone", "would delete group oldgroup", "would delete computer OLD"]


def test_only_what_differs_is_changed_and_only_what_it_created_is_removed(samdb: FakeSamDB) -> None:
    r = run(directory_request())
    assert r.changes == [
        "set description of group staff", "create group ops", "set displayName, loginShell of user alice",
        "create user bob", "add bob to group staff", "add alice to group ops", "delete user gone",
        "delete group oldgroup", "delete computer OLD"]
    assert r.tool_calls == [("computer", "delete", "OLD", "-H", samdb.url)]
    assert samdb.attr("ops", "adminDescription") == samdb.attr("bob", "adminDescription") == ["managed by provision"]
    assert samdb.attr("staff", "adminDescription") == []  # existed before: not marked, never deleted
    assert samdb.attr("alice", "displayName") == ["Alice Example"] and samdb.attr("bob", "displayName") == ["Bob"]
    members = {samdb.objects[dn]["attrs"]["sAMAccountName"][0] for dn in samdb.attr("staff", "member")}
    assert members == {"alice", "bob", "outsider"}  # outsider is not the spec's: left alone
    names = {o["attrs"]["sAMAccountName"][0] for o in samdb.objects.values() if o["attrs"].get("sAMAccountName")}
    assert {"legacy", "ELSEWHERE$", "WS1$"} <= names and not {"gone", "oldgroup"} & names
    assert samdb.attr("alice", "unicodePwd") == [b"nt:changed-by-alice"]  # not enforced: alice's own
    # The diff lists what changed, before and after.
    assert "group staff description: old" in r.before and "user bob" in r.after
    samdb.objects = {dn: o for dn, o in samdb.objects.items() if "OLD$" not in dn}  # samba-tool's deletion
    assert run(directory_request()).changes == []


def test_enforced_passwords_are_reset_when_their_hash_differs(samdb: FakeSamDB) -> None:
    r = run(directory_request(enforce_passwords=True, computers={}))
    assert "reset the password of user alice" in r.changes
    assert samdb.attr("alice", "unicodePwd") == [b"nt:Alice-pw-1"]
    assert run(directory_request(enforce_passwords=True, computers={})).changes == []


def test_a_new_user_without_a_password_fails_after_what_was_done(samdb: FakeSamDB) -> None:
    request = directory_request()
    del request["passwords"]["bob"]
    r = ad.Run(request, check=False)
    with pytest.raises(RuntimeError, match="user bob does not exist and no password was given for it"):
        r.run()
    assert r.changes == ["set description of group staff", "create group ops",
                         "set displayName, loginShell of user alice"]


def test_the_safety_net_holds_back_mass_deletions(samdb: FakeSamDB) -> None:
    for n in range(3):
        samdb.add("computer", f"STALE{n}$", "OU=Provisioned Computers")
    r = run(directory_request(computers={"members": ["ws1"], "prune": True, "prune_max": 10,
                                         "prune_max_percent": 50}))
    assert not any("computer" in c for c in r.changes) and r.tool_calls == []
    assert r.warnings == [
        "4 of 5 computer accounts in OU=Provisioned Computers,DC=lab,DC=example (OLD, STALE0, STALE1, STALE2) "
        "are no longer in the inventory: more than the safety limit of 2, so none was removed. A partial "
        "inventory (--limit) looks like this; raise domain_directory_prune_max / _percent if the removal is "
        "really meant."]
    # Without prune (a partial inventory) nothing is deleted and nothing is said.
    r = run(directory_request(computers={"members": [], "prune": False}))
    assert r.tool_calls == [] and r.warnings == []


def test_the_password_policy_through_samba_tool_and_a_long_minimum_directly(samdb: FakeSamDB) -> None:
    samdb.objects[BASE]["attrs"] = {"minPwdLength": ["7"], "pwdProperties": ["17"], "pwdHistoryLength": ["24"],
                                    "maxPwdAge": [str(-42 * ad.DAY)], "minPwdAge": [str(-ad.DAY)],
                                    "lockoutThreshold": ["0"], "lockoutDuration": [str(-30 * ad.MINUTE)],
                                    "lockOutObservationWindow": [str(-30 * ad.MINUTE)]}
    policy = {"min_length": 20, "complexity": True, "history": 24, "max_age_days": 0, "min_age_days": 1,
              "lockout_threshold": 5, "lockout_duration_minutes": 30, "lockout_window_minutes": 30}
    r = run(directory_request(policy=policy, computers={}))
    assert "set password policy: minPwdLength=20, maxPwdAge=0, lockoutThreshold=5" in r.changes
    assert r.tool_calls == [("domain", "passwordsettings", "set", "-H", samdb.url, "--max-pwd-age=0",
                             "--account-lockout-threshold=5")]
    assert samdb.objects[BASE]["attrs"]["minPwdLength"] == ["20"]


# --------------------------------------------------------------------------- through ansible


def run_module(args: dict[str, Any], python: str = sys.executable) -> dict[str, Any]:
    """One run of provision_ad_directory (see tests/ansible_modules.py)."""
    return ansible_modules.run_module("provision_ad_directory", args, python=python)


def has_samba(python: str) -> bool:
    return subprocess.run([python, "-c", "import samba, ldb"], capture_output=True, check=False).returncode == 0


# Interpreters of this machine without Samba's bindings (where the module must say so).
WITHOUT_SAMBA = [p for p in dict.fromkeys([sys.executable, "/usr/bin/python3"])
                 if Path(p).exists() and not has_samba(p)]

SECRETS = {"passwords": {"alice": "Alice-Secret-77"}, "admin_password": "Admin-Secret-77"}

# Every module run below is one that must fail before it reaches Samba: a bad request or an argument
# the spec refuses is checked first, on any interpreter (the one running the tests has no python3-samba).
BAD_REQUEST = {**SECRETS, "marker": "", "users": [{"name": "alice"}], "dns": {"hosts": {"ws1": "not-an-address"}},
               "computer_ou": "CN=Computers"}
WRONG_OPTIONS = [
    ({"users": [{"full_name": "No Name"}]}, "missing required arguments: name found in users"),
    ({"computers": {"prune_max": "many"}}, "'prune_max' is of type str found in 'computers'"),
    ({"enforce_passwords": "perhaps"}, "enforce_passwords"),
    ({"users": [{"name": "alice", "password": "x"}]}, "Unsupported parameters"),
    ({"policy": {"min_length": 12}}, "missing required arguments: history"),
    ({"dns": {"hosts": ["ws1"]}}, "hosts"),
]
NO_SAMBA = {**SECRETS, "users": [{"name": "alice"}]}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    """The module runs of this file, all at once (each takes a second or two)."""
    jobs: dict[str, tuple[dict[str, Any], str]] = {"bad": (BAD_REQUEST, sys.executable)}
    jobs |= {f"wrong{i}": (args, sys.executable) for i, (args, _) in enumerate(WRONG_OPTIONS)}
    if WITHOUT_SAMBA:
        jobs["no_samba"] = (NO_SAMBA, WITHOUT_SAMBA[0])
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run_module, args, python) for name, (args, python) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def failed(res: dict[str, Any]) -> bool:
    return "FAILED!" in res["_stdout"] and "changed" in res


def shows_a_secret(res: dict[str, Any]) -> bool:
    """Whether the module's result, or what ansible printed of it, holds a password (the ad-hoc error
    display quotes the task's own arguments, given on the command line here: that part does not count)."""
    result = {k: v for k, v in res.items() if k != "_stdout"}
    return "Secret-77" in json.dumps(result) + res["_stdout"].split("FAILED! =>")[-1]


def test_a_bad_request_fails_clearly_before_samba_is_needed(runs: dict[str, dict[str, Any]]) -> None:
    res = runs["bad"]
    assert failed(res) and res["changes"] == []
    assert res["msg"].startswith("the request is not valid: marker must not be empty"), res["msg"]
    assert "address of ws1 ('not-an-address') is not an IPv4 address" in res["msg"]
    assert "dns needs netbios" in res["msg"] and "'CN=Computers' is not an OU" in res["msg"]
    assert not shows_a_secret(res)


@pytest.mark.parametrize("case", range(len(WRONG_OPTIONS)))
def test_the_argument_spec_refuses_wrong_options(runs: dict[str, dict[str, Any]], case: int) -> None:
    res = runs[f"wrong{case}"]
    assert failed(res) and WRONG_OPTIONS[case][1] in res["msg"], res["msg"]


@pytest.mark.skipif(not WITHOUT_SAMBA, reason="every interpreter here has python3-samba")
def test_without_python3_samba_the_module_says_so(runs: dict[str, dict[str, Any]]) -> None:
    res = runs["no_samba"]
    assert failed(res) and res["changes"] == []
    assert res["msg"].startswith("python3-samba is not installed on this host"), res["msg"]
    assert not shows_a_secret(res)
