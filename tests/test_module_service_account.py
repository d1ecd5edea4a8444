"""The provision_service_account module without a directory: its option checks, password generation and
checker, placeholder rendering, atomic file writing (owner, group, mode, against real files), the secret file,
diff masking, the choice of the password kept and the verdict on an account found in the directory, as Python;
the Samba API names it calls against the controller's real Samba when it has one; and the module run through
ansible (bad requests, an interpreter without python3-samba, one without Samba's LDAP client for ldb, a DC that
cannot be reached). Nothing here pretends a directory answered: the paths that need a DC are the lab's."""

from __future__ import annotations

import json
import os
import socket
import stat
import string
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ansible_modules
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
MODULE = PLAYBOOKS / "library" / "provision_service_account.py"
SYSTEM_PYTHON = "/usr/bin/python3"
P = "@@SERVICE_PASSWORD@@"
# Characters that break one configuration format or another (and the shell): never in a generated password.
BREAKERS = "'\"`\\#%$=,; \t\n<>{}[]()&|?/"

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="owner and group are set as root")


sa = ansible_modules.load_module("provision_service_account")


def params(**over: Any) -> dict[str, Any]:
    """Module options as AnsibleModule hands them over (defaults applied)."""
    out: dict[str, Any] = {
        "name": "mail-mx1",
        "description": "mx1: directory lookups for mail (managed by provision)",
        "marker": "provision service account",
        "server": "dc1.ad.lab.test",
        "realm": "AD.LAB.TEST",
        "netbios": "AD",
        "base_dn": "DC=ad,DC=lab,DC=test",
        "container": "CN=Users",
        "admin_password": "Admin-Secret-77",
        "no_secrets": False,
        "secret_file": "/etc/provision/secrets/mail-ldap.pw",
        "files": [
            {
                "path": "/etc/postfix/ldap-users.cf",
                "content": f"bind_pw = {P}\n",
                "owner": "root",
                "group": "root",
                "mode": "0640",
            }
        ],
        "check_users": ["alice"],
    }
    out.update(over)
    return out


# --------------------------------------------------------------------------- the password


def test_generated_passwords_meet_complexity_and_avoid_what_breaks_config_files() -> None:
    made = [sa.generate_password("mail-mx1") for _ in range(500)]
    assert len(set(made)) == 500
    for pw in made:
        assert len(pw) == 32
        assert sa.password_problems(pw, "mail-mx1") == []
        assert any(c in string.ascii_uppercase for c in pw) and any(c in string.ascii_lowercase for c in pw)
        assert any(c in string.digits for c in pw) and any(c in sa.PUNCTUATION for c in pw)
        assert not set(pw) & set(BREAKERS), pw
        assert not any(c.isspace() for c in pw)
    # Every allowed punctuation character turns up (the alphabet is really used), none of the breakers is in it.
    assert set(sa.PUNCTUATION) <= set("".join(made))
    assert not set(sa.ALPHABET) & set(BREAKERS)
    # The shortest possible one still has one of each class.
    for _ in range(50):
        short = sa.generate_password(length=4)
        assert len(short) == 4 and sa.password_problems(short, min_length=4) == []
    with pytest.raises(ValueError):
        sa.generate_password(length=3)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Ab1-" * 7, "shorter than 32 characters"),
        ("ab1-" * 8, "no upper-case letter"),
        ("AB1-" * 8, "no lower-case letter"),
        ("Abc-" * 8, "no digit"),
        ("Ab12" * 8, "no punctuation"),
        *[("Ab1-" * 7 + "Ab1" + c, "a character outside the allowed set") for c in "'\"\\#%$=, "],
        ("Ab1-" * 4 + "xMAIL-mx1x" + "Ab1-Ab", "it contains the account name"),
    ],
)
def test_the_password_checker_names_each_problem_without_quoting_the_password(password: str, problem: str) -> None:
    problems = sa.password_problems(password, "mail-mx1")
    assert any(p.startswith(problem) for p in problems), problems
    assert len(problems) == 1, problems
    assert not any(password in p for p in problems)


# --------------------------------------------------------------------------- the request


def test_the_placeholder_is_rendered_everywhere_and_nothing_else_is() -> None:
    content = f"bind_pw = {P}\n# again: {P}\nuser = %u @@\n"
    assert sa.render(content, "S3cret-pw") == "bind_pw = S3cret-pw\n# again: S3cret-pw\nuser = %u @@\n"
    assert sa.masked_after(content) == "bind_pw = ********\n# again: ********\nuser = %u @@\n"
    assert sa.template_problems(content) == []
    assert sa.template_problems("bind_pw = secret\n") == [f"the content has no {P}"]
    assert sa.template_problems(f"{P} @@BIND_DN@@ @@other_1@@") == [
        "the content has placeholders this module does not fill: @@BIND_DN@@, @@other_1@@"
    ]


@pytest.mark.parametrize("name", ["mail-mx1", "a", "0svc", "svc.ldap_1", "x" * 20])
def test_good_names(name: str) -> None:
    assert sa.validate(params(name=name)) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must be 1 to 20 characters long"),
        ("x" * 21, "must be 1 to 20 characters long"),
        ("mail-mx1$", "must not end in $"),
        ("Mail-mx1", "may hold lower-case letters"),
        ("-mail", "may hold lower-case letters"),
        (".mail", "may hold lower-case letters"),
        ("mail mx1", "may hold lower-case letters"),
        ("mail*", "may hold lower-case letters"),
        ("m\u00fcll", "may hold lower-case letters"),
    ],
)
def test_bad_names(name: str, problem: str) -> None:
    problems = sa.validate(params(name=name))
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize("marker", ["managed by provision", "  Managed By Provision ", "", "   "])
def test_the_directory_modules_marker_and_an_empty_one_are_refused(marker: str) -> None:
    problems = sa.validate(params(marker=marker))
    assert len(problems) == 1 and problems[0].startswith("marker must not be"), problems


def test_every_problem_of_a_bad_request_is_named_and_no_password() -> None:
    problems = sa.validate(
        params(
            server="ldap://dc1",
            realm="",
            netbios="AD\\X",
            base_dn="CN=Users",
            container="Users",
            secret_file="secrets/pw",
            files=[
                {"path": "etc/a.cf", "content": f"pw={P}", "owner": "root", "group": "root", "mode": "0600"},
                {"path": "/etc/b.cf", "content": "pw=plain", "owner": "no-such-user", "group": "root", "mode": "0600"},
                {
                    "path": "/etc/b.cf",
                    "content": f"{P}@@DN@@",
                    "owner": "root",
                    "group": "no-such-group",
                    "mode": "0999",
                },
                {"path": "/etc/c.cf", "content": P, "owner": "root", "group": "root", "mode": "rw"},
            ],
            check_users=["alice", " "],
        )
    )
    text = "\n".join(problems)
    for part in (
        "server 'ldap://dc1' is not a host name",
        "realm '' is not a Kerberos realm",
        "netbios 'AD\\\\X' is not a NetBIOS name",
        "base_dn 'CN=Users' is not a domain's DN",
        "container 'Users' is not a container or OU",
        "secret_file 'secrets/pw' is not an absolute path",
        "files: 'etc/a.cf' is not an absolute path",
        f"files: /etc/b.cf: the content has no {P}",
        "files: /etc/b.cf: user 'no-such-user' does not exist",
        "files: /etc/b.cf is listed twice",
        "files: /etc/b.cf: the content has placeholders this module does not fill: @@DN@@",
        "files: /etc/b.cf: mode '0999' is not octal",
        "files: /etc/c.cf: mode 'rw' is not octal",
        "check_users: an empty name",
    ):
        assert part in text, (part, text)
    assert len(problems) == 14, text
    assert "Admin-Secret-77" not in text
    # The secret file (or its pending twin) is no config file.
    secret = "/etc/provision/secrets/mail-ldap.pw"
    for path in (secret, secret + ".new"):
        bad = sa.validate(
            params(files=[{"path": path, "content": P, "owner": "root", "group": "root", "mode": "0600"}])
        )
        assert bad == [f"files: {path} is the secret file"]


def test_the_documentation_is_the_argument_spec() -> None:
    doc = yaml.safe_load(sa.DOCUMENTATION)["options"]

    def compare(doc_opts: dict[str, Any], spec: dict[str, Any], where: str) -> None:
        assert set(doc_opts) == set(spec), where
        for name, s in spec.items():
            d = doc_opts[name]
            for key in ("type", "elements", "required", "default", "no_log"):
                assert d.get(key) == s.get(key), f"{where}{name}.{key}"
            assert ("suboptions" in d) == ("options" in s), f"{where}{name}"
            if "options" in s:
                compare(d["suboptions"], s["options"], f"{where}{name}.")

    compare(doc, sa.ARGUMENT_SPEC, "")
    assert sa.ARGUMENT_SPEC["admin_password"]["no_log"]
    returned = yaml.safe_load(sa.RETURN)
    assert {"created", "password_set", "changed_files", "found_users", "dn", "msg", "skipped_for_secrets"} <= set(
        returned
    )
    yaml.safe_load(sa.EXAMPLES)


# --------------------------------------------------------------------------- which password, which account


def test_an_interrupted_runs_password_is_tried_first_and_empty_ones_never() -> None:
    tried: list[str] = []

    def works_with(valid: set[str]) -> Any:
        def works(pw: str) -> bool:
            tried.append(pw)
            return pw in valid

        return works

    # The directory took the pending one; the old one would still pass NTLM for an hour: pending wins.
    assert sa.choose_password("New-1", "Old-1", works_with({"New-1", "Old-1"})) == ("pending", "New-1")
    assert tried == ["New-1"]
    tried.clear()
    # The run was interrupted before the directory had it: the kept one.
    assert sa.choose_password("New-1", "Old-1", works_with({"Old-1"})) == ("kept", "Old-1")
    assert tried == ["New-1", "Old-1"]
    tried.clear()
    assert sa.choose_password(None, "Old-1", works_with({"Old-1"})) == ("kept", "Old-1")
    tried.clear()
    assert sa.choose_password(None, "", works_with({""})) == (None, None)
    assert tried == []
    assert sa.choose_password("Same-1", "Same-1", works_with(set())) == (None, None)
    assert tried == ["Same-1"]  # one refused bind, not two (the lockout counter)


def test_only_an_account_carrying_the_marker_is_given_a_new_password() -> None:
    dn = "CN=mail-mx1,CN=Users,DC=ad,DC=lab,DC=test"
    ours = {
        "dn": [dn],
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "adminDescription": ["provision service account"],
        "userAccountControl": ["66048"],
    }
    assert sa.account_action(None, "mail-mx1", "provision service account") == "create"
    assert sa.account_action(ours, "mail-mx1", "provision service account") == "reset"
    assert sa.account_action(ours, "mail-mx1", "Provision Service Account") == "reset"  # AD compares without case
    refused = [
        ({**ours, "adminDescription": []}, "with no adminDescription, not the marker"),
        ({**ours, "adminDescription": ["managed by provision"]}, "with adminDescription 'managed by provision'"),
        ({**ours, "objectClass": ["top", "group"]}, "is no user account"),
        ({**ours, "objectClass": ["top", "user", "computer"]}, "is no user account"),
        ({**ours, "userAccountControl": ["66050"]}, "is disabled in the directory"),
    ]
    for entry, why in refused:
        with pytest.raises(sa.Refused, match="mail-mx1") as err:
            sa.account_action(entry, "mail-mx1", "provision service account")
        assert why in str(err.value) and dn in str(err.value), str(err.value)


def test_account_attributes_are_put_in_line() -> None:
    assert sa.wanted_uac(0x200) == 0x10200  # newuser's NORMAL_ACCOUNT: the password must not expire
    assert sa.wanted_uac(0x220) == 0x10200  # PASSWD_NOTREQD goes
    assert sa.wanted_uac(0x10200) == 0x10200
    fresh = {"dn": ["CN=x"], "userAccountControl": ["512"], "description": ["mx1"]}
    assert sa.attribute_repairs(fresh, "provision service account", "mx1") == {
        "adminDescription": "provision service account",
        "userAccountControl": "66048",
    }
    kept = {**fresh, "adminDescription": ["provision service account"], "userAccountControl": ["66048"]}
    assert sa.attribute_repairs(kept, "provision service account", "mx1") == {}
    assert sa.attribute_repairs(kept, "provision service account", "") == {}  # no description: left alone
    assert sa.attribute_repairs(kept, "provision service account", "mx1 lookups") == {"description": "mx1 lookups"}


def test_privileged_groups_are_recognised_by_sid() -> None:
    domain = "S-1-5-21-1004336348-1177238915-682003330"
    plain = [f"{domain}-513", "S-1-5-32-545", f"{domain}-1105", f"{domain}-1512"]
    assert sa.privileged_groups(plain) == []
    assert sa.privileged_groups([*plain, f"{domain}-512", "S-1-5-32-544", f"{domain}-519", "S-1-5-32-551"]) == [
        "Administrators",
        "Backup Operators",
        "Domain Admins",
        "Enterprise Admins",
    ]


def test_a_refused_bind_is_told_from_an_unreachable_dc() -> None:
    # The shape of ldb.LdbError: (result code, text).
    assert sa.credentials_refused(Exception(49, "LDAP client internal error: NT_STATUS_LOGON_FAILURE"))
    assert not sa.credentials_refused(Exception(1, "LDAP client internal error: NT_STATUS_CONNECTION_REFUSED"))
    assert not sa.credentials_refused(Exception(-1, "Can't contact LDAP server"))
    assert not sa.credentials_refused(RuntimeError("49"))
    assert sa.ldb_code(Exception(True, "x")) is None
    msg = sa.error_message(
        Exception(49, "bind as AD\\mail-mx1%Kept-pw-1 refused (Admin-pw-2)"), ["Kept-pw-1", "Admin-pw-2"]
    )
    assert msg == "Exception: (49, 'bind as AD\\\\mail-mx1%******** refused (********)')"


# --------------------------------------------------------------------------- files, on the real file system


@as_root
def test_files_are_written_atomically_with_owner_group_and_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ldap-users.cf"
    uid, gid = sa.file_ids("nobody", "nogroup")
    renamed: list[tuple[int, int, int, bytes]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:  # what the file is at the moment it takes the path
        st = os.stat(src)
        renamed.append((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    assert sa.sync_file(str(path), b"bind_pw = one\n", uid, gid, 0o640, check=False) == (True, None)
    assert renamed == [(uid, gid, 0o640, b"bind_pw = one\n")]
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o640)
    assert path.read_bytes() == b"bind_pw = one\n"
    inode = st.st_ino
    # In line: nothing is written.
    assert sa.sync_file(str(path), b"bind_pw = one\n", uid, gid, 0o640, check=False) == (False, b"bind_pw = one\n")
    assert len(renamed) == 1 and path.stat().st_ino == inode
    # Only the mode differs: set in place.
    path.chmod(0o644)
    assert sa.sync_file(str(path), b"bind_pw = one\n", uid, gid, 0o640, check=False)[0]
    assert len(renamed) == 1 and path.stat().st_ino == inode and stat.S_IMODE(path.stat().st_mode) == 0o640
    # Only the owner differs: set in place.
    os.chown(path, 0, 0)
    assert sa.sync_file(str(path), b"bind_pw = one\n", uid, gid, 0o640, check=False)[0]
    assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid) and path.stat().st_ino == inode
    # New content: a new file renamed over the old one, nothing left behind.
    assert sa.sync_file(str(path), b"bind_pw = two\n", 0, 0, 0o600, check=False) == (True, b"bind_pw = one\n")
    assert renamed[-1] == (0, 0, 0o600, b"bind_pw = two\n") and path.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ldap-users.cf"]


@as_root
def test_check_mode_writes_nothing_and_links_and_odd_paths(tmp_path: Path) -> None:
    path = tmp_path / "a.cf"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    before = path.stat()
    assert sa.sync_file(str(path), b"new\n", 0, 0, 0o600, check=True) == (True, b"old\n")
    assert path.read_bytes() == b"old\n" and path.stat().st_mtime_ns == before.st_mtime_ns
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sa.sync_file(str(tmp_path / "missing.cf"), b"new\n", 0, 0, 0o600, check=True) == (True, None)
    assert not (tmp_path / "missing.cf").exists()
    # A symbolic link at the path is replaced by the file; its target is left alone.
    target = tmp_path / "target"
    target.write_bytes(b"target\n")
    link = tmp_path / "link.cf"
    link.symlink_to(target)
    assert sa.sync_file(str(link), b"new\n", 0, 0, 0o600, check=False) == (True, None)
    assert not link.is_symlink() and link.read_bytes() == b"new\n" and target.read_bytes() == b"target\n"
    (tmp_path / "dir.cf").mkdir()
    with pytest.raises(sa.Refused, match="exists and is not a regular file"):
        sa.sync_file(str(tmp_path / "dir.cf"), b"x", 0, 0, 0o600, check=False)
    with pytest.raises(sa.Refused, match=r"the directory of .* does not exist"):
        sa.sync_file(str(tmp_path / "no" / "such.cf"), b"x", 0, 0, 0o600, check=False)


@as_root
def test_the_secret_file_is_root_only_in_a_private_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    secret = tmp_path / "provision" / "secrets" / "mail-ldap.pw"
    assert sa.read_secret(str(secret)) is None
    sa.write_secret(str(secret), "Kept-pw-1")
    assert secret.read_text() == "Kept-pw-1\n"
    for directory in (tmp_path / "provision", tmp_path / "provision" / "secrets"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # an existing one is left alone
    st = secret.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600) and sa.secret_meta_ok(str(secret))
    assert sa.read_secret(str(secret)) == "Kept-pw-1"
    sa.write_secret(str(secret), "Kept-pw-2")
    assert sa.read_secret(str(secret)) == "Kept-pw-2"
    assert sorted(p.name for p in secret.parent.iterdir()) == ["mail-ldap.pw"]
    secret.chmod(0o640)
    assert not sa.secret_meta_ok(str(secret))
    for data, kept in (
        (b"", None),
        (b"\n", None),
        (b"  Kept-pw-3  \nsecond line\n", "Kept-pw-3"),
        (b"\xff\xfeKept\n", "\ufffd\ufffdKept"),
    ):  # a damaged one is read (and fails to bind)
        secret.write_bytes(data)
        assert sa.read_secret(str(secret)) == kept, data
    link = tmp_path / "link.pw"
    link.symlink_to(secret)
    with pytest.raises(sa.Refused, match="is not a regular file"):
        sa.read_secret(str(link))


def test_diffs_mask_known_passwords_and_whatever_stands_in_the_placeholders_place() -> None:
    template = f"server_host = ldap://dc1\nbind_pw = {P}\ndn = x\npw = <{P}>{P}\r\n"
    before = "server_host = ldap://dc0\nbind_pw = Unknown-pw-9\ndn = x\npw = <Old-1>Old-2\r\n# Kept-pw-1\n"
    masked = sa.mask_before(before, template, ["Kept-pw-1"])
    assert masked == "server_host = ldap://dc0\nbind_pw = ********\ndn = x\npw = <********>********\r\n# ********\n"
    # The line of the password changed in the template: the known passwords are still masked.
    assert sa.mask_before("bindpw = Kept-pw-1\n", template, ["Kept-pw-1"]) == "bindpw = ********\n"
    assert sa.mask_before("", template, ["Kept-pw-1"]) == ""


# --------------------------------------------------------------------------- against the real Samba


def has_samba(python: str) -> bool:
    return (
        Path(python).exists()
        and subprocess.run([python, "-c", "import samba, ldb"], capture_output=True, check=False).returncode == 0
    )


SAMBA_PYTHON = SYSTEM_PYTHON if has_samba(SYSTEM_PYTHON) else None


def has_ildap(python: str) -> bool:
    code = "import os, samba.param as p; print(os.path.exists(os.path.join(p.modules_dir(), 'ldb', 'ildap.so')))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() == "True"


@pytest.mark.skipif(SAMBA_PYTHON is None, reason="no interpreter here has python3-samba")
def test_the_samba_names_the_module_uses_are_samba_s() -> None:
    """The calls of the Samba part against the installed Samba's own signatures and constants."""
    code = r"""
import inspect, json, ldb, samba.credentials as c, samba.dsdb as d, samba.param as p, samba.ndr as n
import samba.dcerpc.security as s
from samba.samdb import SamDB
sig = lambda f: sorted(inspect.signature(f).parameters)
print(json.dumps({
    "newuser": sig(SamDB.newuser), "setpassword": sig(SamDB.setpassword), "unlock": sig(SamDB.unlock_account),
    "init": sig(SamDB.__init__), "uac": [d.UF_ACCOUNTDISABLE, d.UF_PASSWD_NOTREQD, d.UF_NORMAL_ACCOUNT,
    d.UF_DONT_EXPIRE_PASSWD], "invalid": ldb.ERR_INVALID_CREDENTIALS, "encode": ldb.binary_encode("a*(b)\\"),
    "creds": [hasattr(c.Credentials, m) for m in ("guess", "set_username", "set_password", "set_domain",
    "set_realm", "set_kerberos_state")], "kerberos": c.DONT_USE_KERBEROS, "modules": p.modules_dir(),
    "sid": str(n.ndr_unpack(s.dom_sid, n.ndr_pack(s.dom_sid("S-1-5-21-1-2-3-512")))),
    "ldb": [hasattr(ldb, m) for m in ("Message", "MessageElement", "Dn", "FLAG_MOD_REPLACE", "SCOPE_SUBTREE",
    "SCOPE_BASE", "LdbError")]}))
"""
    out = subprocess.run([SAMBA_PYTHON, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert {"username", "password", "force_password_change_at_next_login_req", "userou", "description"} <= set(
        got["newuser"]
    )
    assert {"search_filter", "password", "force_change_at_next_login", "username"} <= set(got["setpassword"])
    assert "search_filter" in got["unlock"] and {"url", "credentials", "lp"} <= set(got["init"])
    assert got["uac"] == [sa.UF_ACCOUNTDISABLE, sa.UF_PASSWD_NOTREQD, sa.UF_NORMAL_ACCOUNT, sa.UF_DONT_EXPIRE_PASSWD]
    assert got["invalid"] == sa.INVALID_CREDENTIALS
    assert got["encode"] == "a\\2A\\28b\\29\\5C"  # what keeps a name from changing a filter
    assert all(got["creds"]) and all(got["ldb"]) and got["sid"] == "S-1-5-21-1-2-3-512"
    assert sa.privileged_groups([got["sid"]]) == ["Domain Admins"]


# --------------------------------------------------------------------------- through ansible


SECRET_WORDS = ("Kept-Secret-77", "Admin-Secret-77", "Pending-Secret-77")


def shows_a_secret(res: dict[str, Any]) -> bool:
    """Whether the module's result, or what ansible printed of it, holds a password (the ad-hoc error display
    quotes the task's own arguments, given on the command line here: that part does not count)."""
    result = {k: v for k, v in res.items() if k != "_stdout"}
    text = json.dumps(result) + res["_stdout"].split("FAILED! =>")[-1]
    return any(word in text for word in SECRET_WORDS) or "Secret-77" in text


def failed(res: dict[str, Any]) -> bool:
    return "FAILED!" in res["_stdout"] and "changed" in res


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


# Interpreters of this machine without Samba's bindings, with them but without Samba's LDAP client for ldb,
# and with both (then a DC that is not there can be talked to: 127.0.0.1, where no LDAP server listens).
WITHOUT_SAMBA = [p for p in dict.fromkeys([sys.executable, SYSTEM_PYTHON]) if Path(p).exists() and not has_samba(p)]
SAMBA_WITHOUT_ILDAP = SAMBA_PYTHON if SAMBA_PYTHON and not has_ildap(SAMBA_PYTHON) else None
SAMBA_WITH_ILDAP = (
    SAMBA_PYTHON if SAMBA_PYTHON and has_ildap(SAMBA_PYTHON) and not port_open("127.0.0.1", 389) else None
)

BAD_NAMES = ["Mail-MX1", "mail-mx1$", "x" * 21]


def host_args(tmp: Path, **over: Any) -> dict[str, Any]:
    """Options of a run on this machine: the secret file and a config file under ``tmp``."""
    args = {k: v for k, v in params().items() if k not in ("no_secrets",)}
    args.update(
        admin_password="Admin-Secret-77",
        secret_file=str(tmp / "secrets" / "mail-ldap.pw"),
        files=[{"path": str(tmp / "ldap-users.cf"), "content": f"bind_pw = {P}\n", "mode": "0640"}],
    )
    args.update(over)
    return args


def plant(tmp: Path) -> dict[str, Any]:
    """A kept password, a pending one and an old config file, as an earlier (interrupted) run leaves them."""
    secrets = tmp / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "mail-ldap.pw").write_text("Kept-Secret-77\n")
    (secrets / "mail-ldap.pw").chmod(0o600)
    (secrets / "mail-ldap.pw.new").write_text("Pending-Secret-77\n")
    (secrets / "mail-ldap.pw.new").chmod(0o600)
    (tmp / "ldap-users.cf").write_text("bind_pw = Kept-Secret-77\n")
    return snapshot(tmp)


def snapshot(tmp: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(tmp)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The module runs of this file, all at once (each takes a second or two), with the files they had."""
    jobs: dict[str, tuple[dict[str, Any], str, bool]] = {}
    planted: dict[str, Path] = {}

    def job(label: str, python: str, check: bool = False, **over: Any) -> None:
        tmp = tmp_path_factory.mktemp(label)
        planted[label] = tmp
        jobs[label] = (host_args(tmp, **over), python, check)
        plant(tmp)

    for i, name in enumerate(BAD_NAMES):
        job(f"name{i}", sys.executable, name=name)
    job("marker", sys.executable, marker="managed by provision")
    job(
        "several",
        sys.executable,
        marker="Managed by provision",
        base_dn="CN=Users",
        container="Users",
        check_users=[""],
    )
    job("no_content", sys.executable, files=[{"path": "/tmp/x.cf", "mode": "0600"}])
    if WITHOUT_SAMBA:
        job("no_samba", WITHOUT_SAMBA[0])
        job("no_samba_check", WITHOUT_SAMBA[0], check=True)
    if SAMBA_WITHOUT_ILDAP:
        job("no_ildap", SAMBA_WITHOUT_ILDAP)
    if SAMBA_WITH_ILDAP:
        job("unreachable", SAMBA_WITH_ILDAP, server="127.0.0.1")
        job("unreachable_check", SAMBA_WITH_ILDAP, check=True, server="127.0.0.1")
    before = {name: snapshot(tmp) for name, tmp in planted.items()}
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {
            name: pool.submit(
                ansible_modules.run_module, "provision_service_account", args, check=check, diff=True, python=python
            )
            for name, (args, python, check) in jobs.items()
        }
        results = {name: f.result() for name, f in futures.items()}
    for name, tmp in planted.items():
        results[name]["_untouched"] = snapshot(tmp) == before[name]
    return results


@pytest.mark.parametrize("case", range(len(BAD_NAMES)))
def test_a_bad_name_is_refused_before_anything_is_touched(runs: dict[str, dict[str, Any]], case: int) -> None:
    res = runs[f"name{case}"]
    assert failed(res) and res["msg"].startswith("the request is not valid: name "), res["msg"]
    assert BAD_NAMES[case] in res["msg"] and res["_untouched"]
    assert res["changed"] is False and res["password_set"] is False and res["changed_files"] == []
    assert not shows_a_secret(res)


def test_the_directory_modules_marker_is_refused(runs: dict[str, dict[str, Any]]) -> None:
    res = runs["marker"]
    assert failed(res) and res["_untouched"], res
    assert res["msg"] == (
        "the request is not valid: marker must not be 'managed by provision': the directory module "
        "deletes the users carrying it that are not in the inventory"
    )
    assert not shows_a_secret(res)


def test_a_bad_request_names_every_problem(runs: dict[str, dict[str, Any]]) -> None:
    res = runs["several"]
    assert failed(res) and res["_untouched"]
    for part in (
        "marker must not be 'managed by provision'",
        "base_dn 'CN=Users' is not a domain's DN",
        "container 'Users' is not a container or OU",
        "check_users: an empty name",
    ):
        assert part in res["msg"], res["msg"]
    assert not shows_a_secret(res)


def test_the_argument_spec_refuses_a_file_without_content(runs: dict[str, dict[str, Any]]) -> None:
    res = runs["no_content"]
    assert failed(res) and "missing required arguments: content found in files" in res["msg"], res["msg"]
    assert res["_untouched"] and not shows_a_secret(res)


@pytest.mark.skipif(not WITHOUT_SAMBA, reason="every interpreter here has python3-samba")
@pytest.mark.parametrize("name", ["no_samba", "no_samba_check"])
def test_without_python3_samba_the_module_says_so_and_touches_nothing(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    res = runs[name]
    assert failed(res) and "needs Samba's Python bindings (python3-samba)" in res["msg"], res["msg"]
    assert res["changed"] is False and res["created"] is False and res["password_set"] is False
    assert res["changed_files"] == [] and res["found_users"] == [] and "diff" not in res
    assert res["dn"] == "CN=mail-mx1,CN=Users,DC=ad,DC=lab,DC=test"
    assert res["_untouched"] and not shows_a_secret(res)


@pytest.mark.skipif(SAMBA_WITHOUT_ILDAP is None, reason="no interpreter here has python3-samba without ildap.so")
def test_without_sambas_ldap_client_the_module_says_so(runs: dict[str, dict[str, Any]]) -> None:
    """ldb's other ldap:// backend (OpenLDAP's) would connect anonymously, whatever the credentials."""
    res = runs["no_ildap"]
    assert failed(res) and "package samba-dsdb-modules" in res["msg"], res["msg"]
    assert res["_untouched"] and not shows_a_secret(res)


@pytest.mark.skipif(SAMBA_WITH_ILDAP is None, reason="needs python3-samba, samba-dsdb-modules and no LDAP on :389")
@pytest.mark.parametrize("name", ["unreachable", "unreachable_check"])
def test_an_unreachable_dc_is_no_reason_for_a_new_password(runs: dict[str, dict[str, Any]], name: str) -> None:
    """The kept passwords cannot be tested: the module fails, it neither asks the Administrator nor writes."""
    res = runs[name]
    assert failed(res) and "(at ldap://127.0.0.1, LDAP result" in res["msg"], res["msg"]
    assert res["password_set"] is False and res["changed_files"] == [] and res["_untouched"]
    assert not shows_a_secret(res)
