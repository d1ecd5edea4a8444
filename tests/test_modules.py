"""The playbooks' own modules, run for real by ansible on this machine (local connection)
against real files, and their module_utils against the kernel and the acl tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
sys.path.insert(0, str(PLAYBOOKS / "module_utils"))

import provision_commands as pcmd  # noqa: E402
import provision_posix_acl as pacl  # noqa: E402
import provision_secrets as psec  # noqa: E402
from ansible_modules import run_module  # noqa: E402

ANSIBLE = Path(sys.executable).with_name("ansible")


def xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.provision-test", b"1")
    except OSError:
        return False
    os.removexattr(path, "user.provision-test")
    return True


@pytest.fixture
def share(tmp_path: Path) -> Path:
    d = tmp_path / "share"
    d.mkdir(mode=0o770)
    d.chmod(0o2770)
    if not xattrs_supported(d):
        pytest.skip("this file system has no extended attributes")
    return d


# --------------------------------------------------------------------------- module_utils/provision_posix_acl


def test_encode_decode_round_trip_and_kernel_accepts_it(share: Path) -> None:
    access, default = pacl.parse(["u::rwx", "g::r-x", "o::---", "u:0:rwx", "d:u::rwx", "d:g::r-x", "d:o::---"])
    assert pacl.decode(pacl.encode(access)) == access
    assert [e.tag for e in access] == [pacl.USER_OBJ, pacl.USER, pacl.GROUP_OBJ, pacl.MASK, pacl.OTHER]
    assert access[3].perm == 7  # the mask the kernel needs, from the named entry and g::
    pacl.write(str(share), access, default)
    assert pacl.read(str(share)) == (access, default)
    # The kernel shows the mask as the mode's group bits.
    assert oct(share.stat().st_mode & 0o7777) == "0o2770"


def test_names_resolve_through_nss_and_bad_entries_are_refused() -> None:
    access, _ = pacl.parse(["u::rwx", "g::---", "o::---", "u:root:r-x", "g:root:rwx"])
    assert {(e.tag, e.id) for e in access} >= {(pacl.USER, 0), (pacl.GROUP, 0)}
    for bad in (["u::rwz", "g::---", "o::---"], ["u::rwx", "o::---"], ["x::rwx"], ["m:bob:rwx"],
                ["u::rwx", "g::---", "o::---", "u:no-such-user-provision:rwx"]):
        with pytest.raises(pacl.AclError):
            pacl.parse(bad)


def test_a_directory_without_an_acl_reads_as_its_mode(share: Path) -> None:
    access, default = pacl.read(str(share))
    assert pacl.minimal(access) and default == ()
    assert pacl.render(access, default) == "user::rwx\ngroup::rwx\nother::---\n"


@pytest.mark.skipif(shutil.which("getfacl") is None, reason="the acl tools are not installed (make deps does)")
def test_what_we_write_is_what_setfacl_writes(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    text = "u::rwx,g::r-x,o::---,u:root:rwx,g:root:r-x,d:u::rwx,d:g::r-x,d:o::---,d:g:root:r-x"
    pacl.write(str(ours), *pacl.parse(text.split(",")))
    subprocess.run(["setfacl", "--set", text, str(theirs)], check=True)
    for name in (pacl.ACCESS, pacl.DEFAULT):
        assert pacl.decode(os.getxattr(ours, name)) == pacl.decode(os.getxattr(theirs, name))
    show = subprocess.run(["getfacl", "-cE", str(ours)], capture_output=True, text=True, check=True).stdout
    assert "user:root:rwx" in show and "default:group:root:r-x" in show


# --------------------------------------------------------------------------- library/provision_share_acl

ACL = ["u::rwx", "g::r-x", "o::---", "u:root:rwx", "d:u::rwx", "d:g::r-x", "d:o::---", "d:u:root:rwx"]


def test_share_acl_sets_then_reports_nothing_to_do(share: Path) -> None:
    first = run_module("provision_share_acl", {"path": str(share), "acl": ACL})
    assert first["changed"] is True, first
    assert pacl.read(str(share)) == pacl.parse(ACL)
    again = run_module("provision_share_acl", {"path": str(share), "acl": ACL})
    assert again["changed"] is False, again


def test_share_acl_check_mode_changes_nothing_and_diff_shows_both_sides(share: Path) -> None:
    before = pacl.read(str(share))
    result = run_module("provision_share_acl", {"path": str(share), "acl": ACL}, check=True, diff=True)
    assert result["changed"] is True
    assert pacl.read(str(share)) == before
    assert f"--- before: {share}" in result["_stdout"]
    assert "+user:root:rwx" in result["_stdout"] and "-user:root" not in result["_stdout"]


def test_share_acl_removes_an_overriding_xattr(share: Path) -> None:
    run_module("provision_share_acl", {"path": str(share), "acl": ACL})
    os.setxattr(share, "user.SAMBA_PAI", b"\x02\x04")  # Samba's inheritance record, as a stand-in
    check = run_module("provision_share_acl", {"path": str(share), "acl": ACL, "remove_xattrs": ["user.SAMBA_PAI"]},
                       check=True)
    assert check["changed"] is True and check["removed_xattrs"] == ["user.SAMBA_PAI"]
    assert os.getxattr(share, "user.SAMBA_PAI")  # check mode left it
    done = run_module("provision_share_acl", {"path": str(share), "acl": ACL, "remove_xattrs": ["user.SAMBA_PAI"]})
    assert done["changed"] is True
    with pytest.raises(OSError):
        os.getxattr(share, "user.SAMBA_PAI")


def test_share_acl_a_changed_entry_is_put_back(share: Path) -> None:
    run_module("provision_share_acl", {"path": str(share), "acl": ACL})
    access, default = pacl.parse(["u::rwx", "g::rwx", "o::rwx", "d:u::rwx", "d:g::rwx", "d:o::rwx"])
    pacl.write(str(share), access, default)
    assert run_module("provision_share_acl", {"path": str(share), "acl": ACL})["changed"] is True
    assert pacl.read(str(share)) == pacl.parse(ACL)


def test_share_acl_fails_clearly(share: Path, tmp_path: Path) -> None:
    unknown = ["u::rwx", "g::---", "o::---", "u:nobody-xyz:rwx"]
    bad = run_module("provision_share_acl", {"path": str(share), "acl": unknown})
    assert "FAILED!" in bad["_stdout"] and "does not resolve" in bad["msg"]
    missing = run_module("provision_share_acl", {"path": str(tmp_path / "absent"), "acl": ACL})
    assert "FAILED!" in missing["_stdout"] and "not a directory" in missing["msg"]


# --------------------------------------------------------------------------- library/provision_pam_profiles

# A profile in pam-auth-update's format, as libpam-sss ships one (pam_unix stands in for
# the real module: the test system is assembled with the controller's own pam-auth-update).
FAKE_PROFILE = """Name: {name} test profile
Default: no
Priority: 128
Auth-Type: Primary
Auth:
	[success=end default=ignore]	{module} use_first_pass
Auth-Initial:
	[success=end default=ignore]	{module}
Account-Type: Additional
Account:
	required	{module}
"""


DEBCONF_RC = """Config: configdb
Templates: templatedb

Name: configdb
Driver: File
Filename: {dir}/config.dat

Name: templatedb
Driver: File
Mode: 644
Filename: {dir}/templates.dat
"""


@pytest.fixture
def pam_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A system of its own for pam-auth-update: --root for the files, and a private copy of
    debconf's database (pam-auth-update keeps its choices there, machine-wide otherwise)."""
    if shutil.which("pam-auth-update") is None or not Path("/usr/share/pam-configs/unix").exists():
        pytest.skip("no pam-auth-update (Debian's libpam-runtime) on this machine")
    root = tmp_path / "root"
    configs = root / "usr" / "share" / "pam-configs"
    configs.mkdir(parents=True)
    shutil.copy("/usr/share/pam-configs/unix", configs / "unix")
    (configs / "fake-sss").write_text(FAKE_PROFILE.format(name="sss", module="pam_fakesss.so"))
    (configs / "fake-winbind").write_text(FAKE_PROFILE.format(name="winbind", module="pam_fakewb.so"))
    (root / "etc" / "pam.d").mkdir(parents=True)
    (root / "var" / "lib" / "pam").mkdir(parents=True)
    debconf = tmp_path / "debconf"
    debconf.mkdir()
    for name in ("config.dat", "templates.dat"):
        shutil.copy(Path("/var/cache/debconf") / name, debconf / name)
    (debconf / "debconf.conf").write_text(DEBCONF_RC.format(dir=debconf))
    env = {"DEBCONF_SYSTEMRC": str(debconf / "debconf.conf"), "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["pam-auth-update", "--root", str(root), "--package", "--force"], check=True,
                   env={**os.environ, **env}, capture_output=True)
    assert "pam_unix.so" in (root / "etc" / "pam.d" / "common-auth").read_text()
    return root, env


def _auth(root: Path) -> str:
    return (root / "etc" / "pam.d" / "common-auth").read_text()


def test_pam_profiles_enable_check_then_apply_then_nothing(pam_root: tuple[Path, dict[str, str]]) -> None:
    root, env = pam_root
    args = {"root": str(root), "enabled": ["fake-sss"], "disabled": ["fake-winbind"]}
    check = run_module("provision_pam_profiles", args, check=True, diff=True, env=env)
    assert check["changed"] is True and "pam_fakesss.so" not in _auth(root)
    assert "+fake-sss" in check["_stdout"]
    done = run_module("provision_pam_profiles", args, env=env)
    assert done["changed"] is True and done["enabled"] == ["fake-sss"]
    assert "pam_fakesss.so" in _auth(root) and "pam_fakewb.so" not in _auth(root)
    assert run_module("provision_pam_profiles", args, env=env)["changed"] is False


def test_pam_profiles_switch_from_one_to_the_other(pam_root: tuple[Path, dict[str, str]]) -> None:
    root, env = pam_root
    run_module("provision_pam_profiles", {"root": str(root), "enabled": ["fake-winbind"]}, env=env)
    assert "pam_fakewb.so" in _auth(root)
    switched = run_module("provision_pam_profiles",
                          {"root": str(root), "enabled": ["fake-sss"], "disabled": ["fake-winbind"]}, env=env)
    assert switched["changed"] is True
    assert "pam_fakesss.so" in _auth(root) and "pam_fakewb.so" not in _auth(root)


def test_pam_profiles_refuse_what_cannot_be(pam_root: tuple[Path, dict[str, str]]) -> None:
    root, env = pam_root
    missing = run_module("provision_pam_profiles", {"root": str(root), "enabled": ["no-such-profile"]}, env=env)
    assert "FAILED!" in missing["_stdout"] and "not installed" in missing["msg"]
    both = run_module("provision_pam_profiles", {"root": str(root), "enabled": ["fake-sss"],
                                                 "disabled": ["fake-sss"]}, env=env)
    assert "FAILED!" in both["_stdout"] and "both enabled and disabled" in both["msg"]
    # Disabling a profile that is not installed is nothing to do.
    nothing = run_module("provision_pam_profiles", {"root": str(root), "disabled": ["absent"]}, env=env)
    assert nothing["changed"] is False


# --------------------------------------------------------------------------- library/provision_files


def test_files_written_once_then_nothing_to_do(tmp_path: Path) -> None:
    a, b = tmp_path / "a.conf", tmp_path / "sub" / "b.conf"
    args = {"directories": [{"path": str(b.parent), "mode": "0750"}],
            "files": [{"path": str(a), "content": "one\n"}, {"path": str(b), "content": "two\n", "mode": "0600"}]}
    first = run_module("provision_files", args)
    assert first["changed"] is True and first["changed_files"] == [str(a), str(b)]
    assert first["created_files"] == [str(a), str(b)]
    assert a.read_text() == "one\n" and b.read_text() == "two\n"
    assert oct(b.stat().st_mode & 0o7777) == "0o600" and oct(b.parent.stat().st_mode & 0o7777) == "0o750"
    again = run_module("provision_files", args)
    assert again["changed"] is False and again["changed_files"] == []


def test_files_an_exclusive_directory_keeps_only_the_listed_files(tmp_path: Path) -> None:
    cas = tmp_path / "ca"
    cas.mkdir()
    (cas / "ca-2.crt").write_text("a CA that left the spec\n")
    (cas / "sub").mkdir()  # subdirectories are not the module's
    (tmp_path / "elsewhere").write_text("x\n")
    (cas / "link.crt").symlink_to(tmp_path / "elsewhere")
    args = {"directories": [{"path": str(cas), "exclusive": True}],
            "files": [{"path": str(cas / "ca-1.crt"), "content": "the CA\n"}]}
    dry = run_module("provision_files", args, check=True)
    assert dry["changed_files"] == [str(cas / "ca-1.crt"), str(cas / "ca-2.crt"), str(cas / "link.crt")]
    # Removed files are changed, not created: the role relinks its CA store from scratch then.
    assert dry["created_files"] == [str(cas / "ca-1.crt")]
    assert (cas / "ca-2.crt").exists() and not (cas / "ca-1.crt").exists()
    run_module("provision_files", args)
    assert sorted(p.name for p in cas.iterdir()) == ["ca-1.crt", "sub"]
    assert (tmp_path / "elsewhere").exists()  # the link went, not what it pointed to
    assert run_module("provision_files", args)["changed"] is False


def test_files_absent_ones_are_removed_once(tmp_path: Path) -> None:
    gone, kept = tmp_path / "sudoers-provision", tmp_path / "kept.conf"
    gone.write_text("alice ALL=(root) ALL\n")
    args = {"files": [{"path": str(kept), "content": "k\n"}], "absent": [str(gone), str(tmp_path / "never")]}
    dry = run_module("provision_files", args, check=True)
    assert dry["changed_files"] == [str(kept), str(gone)] and gone.exists()
    first = run_module("provision_files", args)
    assert first["changed_files"] == [str(kept), str(gone)] and not gone.exists()
    assert run_module("provision_files", args)["changed"] is False
    both = run_module("provision_files", {"files": [{"path": str(kept), "content": "k\n"}], "absent": [str(kept)]})
    assert "both wanted and absent" in both["msg"] and kept.exists()


def test_files_check_mode_and_diff(tmp_path: Path) -> None:
    a = tmp_path / "a.conf"
    a.write_text("old line\n")
    result = run_module("provision_files", {"files": [{"path": str(a), "content": "new line\n"}]}, check=True,
                        diff=True)
    assert result["changed"] is True and result["changed_files"] == [str(a)]
    assert a.read_text() == "old line\n"
    assert "-old line" in result["_stdout"] and "+new line" in result["_stdout"]


def test_files_only_the_changed_one_is_reported_and_modes_are_fixed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    args = {"files": [{"path": str(a), "content": "x\n"}, {"path": str(b), "content": "y\n"}]}
    run_module("provision_files", args)
    b.chmod(0o666)
    result = run_module("provision_files", args)
    assert result["changed_files"] == [str(b)] and oct(b.stat().st_mode & 0o777) == "0o644"
    assert result["created_files"] == []


def test_files_validation_keeps_the_old_file(tmp_path: Path) -> None:
    a = tmp_path / "a.conf"
    a.write_text("good\n")
    bad = run_module("provision_files", {"files": [{"path": str(a), "content": "bad\n", "validate": "false %s"}]})
    assert "FAILED!" in bad["_stdout"] and "fails" in bad["msg"]
    assert a.read_text() == "good\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.conf"]
    good = run_module("provision_files", {"files": [{"path": str(a), "content": "fine\n", "validate": "test -s %s"}]})
    assert good["changed"] is True and a.read_text() == "fine\n"


def test_files_refuse_what_they_cannot_be(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    cases = [
        ({"files": [{"path": str(tmp_path / "dir"), "content": "x"}]}, "not a regular file"),
        ({"files": [{"path": str(tmp_path / "a"), "content": "x"}, {"path": str(tmp_path / "a"), "content": "y"}]},
         "listed twice"),
        ({"files": [{"path": str(tmp_path / "b"), "content": "x", "owner": "no-such-user-xyz"}]}, "does not exist"),
        ({"files": [{"path": str(tmp_path / "missing" / "c"), "content": "x"}]}, "does not exist"),
    ]
    for args, why in cases:
        result = run_module("provision_files", args)
        assert "FAILED!" in result["_stdout"] and why in result["msg"], result


def test_files_replace_a_link_instead_of_following_it(tmp_path: Path) -> None:
    target, link = tmp_path / "target", tmp_path / "resolv.conf"
    target.write_text("stub\n")
    link.symlink_to(target)
    result = run_module("provision_files", {"files": [{"path": str(link), "content": "nameserver 10.0.0.1\n"}]})
    assert result["changed"] is True and not link.is_symlink()
    assert link.read_text() == "nameserver 10.0.0.1\n" and target.read_text() == "stub\n"


def test_files_take_a_generated_file_from_the_host_with_src(tmp_path: Path) -> None:
    generated, dest = tmp_path / "generated-krb5.conf", tmp_path / "krb5.conf"
    generated.write_text("[libdefaults]\n    default_realm = LAB.TEST\n")
    args = {"files": [{"path": str(dest), "src": str(generated)}]}
    dry = run_module("provision_files", args, check=True, diff=True)
    assert dry["changed_files"] == [str(dest)] and "+    default_realm = LAB.TEST" in dry["_stdout"]
    assert run_module("provision_files", args)["changed"] is True and dest.read_bytes() == generated.read_bytes()
    assert run_module("provision_files", args)["changed"] is False
    generated.write_text("[libdefaults]\n    default_realm = OTHER.TEST\n")
    assert run_module("provision_files", args)["changed_files"] == [str(dest)] and "OTHER" in dest.read_text()
    for bad, why in [({"path": str(dest), "src": str(tmp_path / "missing")}, "does not exist"),
                     ({"path": str(dest), "src": str(generated), "content": "x"}, "exactly one of"),
                     ({"path": str(dest)}, "exactly one of")]:
        result = run_module("provision_files", {"files": [bad]})
        assert result["_failed"] and why in result["msg"], result


def test_files_commands_run_once_after_a_change_and_in_their_replaced_form(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "log"
    other = tmp_path / "other.conf"
    # A real command that records how it was called: the store's "rebuild".
    record = ["sh", "-c", f'echo "$0" >> {log}']
    def args(content: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"directories": [{"path": str(store), "exclusive": True}],
                "files": [{"path": str(store / "ca.crt"), "content": content}, {"path": str(other), "content": "o\n"}],
                "commands": [{"argv": [*record, "add"], "argv_if_replaced": [*record, "fresh"], "paths": [str(store)]},
                             {"argv": [*record, "other"], "paths": [str(other)]}, *(extra or [])]}
    dry = run_module("provision_files", args("one\n"), check=True)
    assert dry["commands"] == [f"sh -c 'echo \"$0\" >> {log}' add", f"sh -c 'echo \"$0\" >> {log}' other"]
    assert not log.exists()
    first = run_module("provision_files", args("one\n"))
    assert first["changed"] is True and log.read_text() == "add\nother\n"
    assert run_module("provision_files", args("one\n"))["commands"] == []
    assert log.read_text() == "add\nother\n"
    # A file of the store changed (or went): the replaced form, and only that command.
    run_module("provision_files", args("two\n"))
    assert log.read_text() == "add\nother\nfresh\n"


def test_files_a_failing_command_puts_its_files_back_so_the_next_run_retries(tmp_path: Path) -> None:
    store, kept, flag = tmp_path / "store", tmp_path / "kept.conf", tmp_path / "broken"
    store.mkdir()
    (store / "old.crt").write_text("old\n")
    (store / "gone.crt").write_text("gone\n")
    (store / "link.crt").symlink_to(tmp_path / "nowhere")
    flag.write_text("")
    rebuild = ["sh", "-c", f"test ! -e {flag}"]
    args = {"directories": [{"path": str(store), "exclusive": True}],
            "files": [{"path": str(store / "old.crt"), "content": "new\n"}, {"path": str(store / "new.crt"),
                                                                                 "content": "n\n"},
                      {"path": str(kept), "content": "k\n"}],
            "commands": [{"argv": rebuild, "paths": [str(store)]}]}
    failed = run_module("provision_files", args)
    assert failed["_failed"] and "put back as they were" in failed["msg"]
    assert sorted(p.name for p in store.iterdir()) == ["gone.crt", "link.crt", "old.crt"]
    assert (store / "old.crt").read_text() == "old\n" and (store / "gone.crt").read_text() == "gone\n"
    assert os.readlink(store / "link.crt") == str(tmp_path / "nowhere")
    assert kept.read_text() == "k\n"  # no command was due for it: it stays written
    flag.unlink()
    again = run_module("provision_files", args)
    assert again["changed"] is True and len(again["commands"]) == 1
    assert sorted(p.name for p in store.iterdir()) == ["new.crt", "old.crt"]
    assert run_module("provision_files", args)["changed"] is False


# --------------------------------------------------------------------------- module_utils/provision_secrets


def _subprocess_runner(calls: list[list[str]]) -> psec.Runner:
    """A real runner (subprocess), recording each argv."""

    def run(argv, stdin, env):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    return run


def test_secret_reaches_the_child_on_stdin_and_is_masked_in_output_and_log(tmp_path: Path) -> None:
    secret, calls = "s3cret-Value", []
    log = tmp_path / "logs" / "join.log"
    # The child echoes what it read: the output would show the secret, unmasked.
    done = psec.run_with_secret(_subprocess_runner(calls), ["sh", "-c", "read p; echo got $p"], secrets=[secret],
                                stdin=secret + "\n", log=str(log))
    assert (done.rc, done.attempts) == (0, 1)
    assert done.output == "got ********\n"
    assert secret not in log.read_text() and "got ********" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert all(secret not in " ".join(argv) for argv in calls)


def test_secret_in_the_environment_and_never_on_a_command_line() -> None:
    done = psec.run_with_secret(_subprocess_runner([]), ["sh", "-c", 'echo "[$PASSWD]"'], secrets=["pw-1"],
                                env={"PASSWD": "pw-1"})
    assert (done.rc, done.output) == (0, "[********]\n")
    with pytest.raises(ValueError, match="command line"):
        psec.run_with_secret(_subprocess_runner([]), ["echo", "--password=pw-1"], secrets=["pw-1"])


def test_failures_are_retried_with_a_doubling_pause_and_only_when_worth_it(tmp_path: Path) -> None:
    counter, pauses = tmp_path / "n", []
    counter.write_text("0")
    # Fails twice ("busy"), then succeeds.
    script = f'n=$(($(cat {counter}) + 1)); echo $n > {counter}; [ $n -ge 3 ] || {{ echo busy; exit 1; }}'
    done = psec.run_with_secret(_subprocess_runner([]), ["sh", "-c", script], secrets=[], retries=4, backoff=5,
                                max_delay=8, sleep=pauses.append)
    assert (done.rc, done.attempts, pauses) == (0, 3, [5, 8])
    # A failure the pattern does not name (a wrong password) is not retried.
    pauses.clear()
    wrong = psec.run_with_secret(_subprocess_runner([]), ["sh", "-c", "echo denied; exit 1"], secrets=[], retries=4,
                                 retry_on="busy|timed out", sleep=pauses.append)
    assert (wrong.rc, wrong.attempts, pauses) == (1, 1, [])
    assert psec.mask("a pw-long b pw", ["pw", "pw-long"]) == "a ******** b ********"


# --------------------------------------------------------------------------- library/provision_domain_join


def _load(path: Path) -> Any:
    """A module or plugin file imported as Python; its module_utils are the ones under playbooks/."""
    import importlib.util

    sys.modules.setdefault("ansible.module_utils.provision_secrets", psec)
    sys.modules.setdefault("ansible.module_utils.provision_commands", pcmd)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_join_command_lines_carry_no_secret_and_the_ou_in_each_tools_form() -> None:
    join = _load(PLAYBOOKS / "library" / "provision_domain_join.py")
    params = {"client": "sssd", "dns_domain": "lab.example", "realm": "LAB.EXAMPLE", "computer_name": "WS1",
              "host_fqdn": "ws1.lab.example", "computer_ou": "OU=Desktops,OU=Provisioned Computers",
              "base_dn": "DC=lab,DC=example", "domain_controller": "dc1.lab.example", "admin_user": "Administrator",
              "netbios_domain": "LAB", "admin_password": "pw"}
    adcli = join.join_argv(params)
    assert adcli[:2] == ["adcli", "join"] and "--stdin-password" in adcli
    assert "--domain-ou=OU=Desktops,OU=Provisioned Computers,DC=lab,DC=example" in adcli
    net = join.join_argv({**params, "client": "winbind"})
    assert net[:3] == ["net", "ads", "join"] and "-ULAB\\Administrator" in net
    assert "createcomputer=Provisioned Computers/Desktops" in net and "--no-dns-updates" in net
    assert not any(a == "pw" or "pw" in a.split("=") for a in adcli + net)
    assert join.testjoin_argv(params) == ["adcli", "testjoin", "--domain=lab.example"]


# --------------------------------------------------------------------------- filter_plugins/provision_net


def test_address_in_networks() -> None:
    net = _load(PLAYBOOKS / "filter_plugins" / "provision_net.py")
    assert net.address_in("10.231.0.1", ["10.231.0.0/24"]) is True
    assert net.address_in("::ffff:10.231.0.1", ["10.231.0.0/16"]) is True  # IPv4-mapped counts as IPv4
    assert net.address_in("10.232.0.1", ["10.231.0.0/16", "fd00::/8"]) is False
    assert net.address_in("fd00::5", ["10.0.0.0/8", "fd00::/8"]) is True
    with pytest.raises(ValueError):
        net.address_in("not-an-address", ["10.0.0.0/8"])


def test_domain_hosts_and_time_sources() -> None:
    net = _load(PLAYBOOKS / "filter_plugins" / "provision_net.py")
    dcs = [{"name": "dc1", "address": "10.231.0.10"}, {"name": "dc2", "address": "10.231.0.11"}]
    assert net.domain_hosts(dcs, "ws1", "10.231.0.50", "lab.example") == [
        {"name": "dc1.lab.example", "address": "10.231.0.10"},
        {"name": "dc2.lab.example", "address": "10.231.0.11"},
        {"name": "ws1.lab.example", "address": "10.231.0.50"},
    ]
    # A DC is listed once, with its own address; a dotted name is taken as it is.
    assert net.domain_hosts(dcs, "dc2", "10.231.0.11", "lab.example")[1:] == [
        {"name": "dc2.lab.example", "address": "10.231.0.11"}
    ]
    assert net.domain_hosts([], "ws1.other.example", "10.0.0.5", "lab.example") == [
        {"name": "ws1.other.example", "address": "10.0.0.5"}
    ]
    assert net.time_sources(dcs, "dc1", ["ntp.example"]) == ["ntp.example"]
    assert net.time_sources(dcs, "dc2", ["ntp.example"]) == ["10.231.0.10"]
    assert net.time_sources(dcs, "ws1", ["ntp.example"]) == ["10.231.0.10", "10.231.0.11"]


def test_spec_address_is_provision_address_under_vagrant() -> None:
    net = _load(PLAYBOOKS / "filter_plugins" / "provision_net.py")
    vagrant = {"inventory_hostname": "dc1", "ansible_host": "127.0.0.1", "provision_address": "10.231.0.21"}
    assert net.spec_address(vagrant) == "10.231.0.21"
    assert net.spec_address({"inventory_hostname": "dc2", "ansible_host": "10.231.0.22"}) == "10.231.0.22"
    assert net.spec_address({"inventory_hostname": "dc3"}) == "dc3"


# --------------------------------------------------------------------------- every module


def _spec_keys(path: Path) -> set[str] | None:
    """Top-level option names of the module's AnsibleModule(argument_spec={...}), when written as a literal."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule":
            for kw in node.keywords:
                if kw.arg == "argument_spec" and isinstance(kw.value, ast.Dict):
                    return {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
    return None


def test_every_module_documents_exactly_its_options() -> None:
    # ansible-doc must parse DOCUMENTATION (a ': ' in a plain line silently breaks it), and the
    # documented options must be the ones the module accepts.
    names = sorted(p.stem for p in (PLAYBOOKS / "library").glob("provision_*.py"))
    env = {**os.environ, "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library"),
           "ANSIBLE_MODULE_UTILS": str(PLAYBOOKS / "module_utils"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(ANSIBLE.with_name("ansible-doc")), "--json", "-t", "module", *names],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    for name in names:
        doc = docs[name]["doc"]
        assert doc.get("short_description") and doc.get("description"), name
        for option, spec in doc.get("options", {}).items():
            assert spec.get("description") and spec.get("type"), f"{name}: option {option}"
        keys = _spec_keys(PLAYBOOKS / "library" / f"{name}.py")
        if keys is not None:
            assert set(doc.get("options", {})) == keys, f"{name}: documented {sorted(doc.get('options', {}))}, " \
                                                         f"accepted {sorted(keys)}"
        assert docs[name]["examples"] and docs[name]["return"] is not None, name
