"""provision doctor: real probes of this machine against specs written in tmp_path.

Secrets are real environment variables and files, keys are real keys (made with
cryptography), known_hosts files are real; nothing contacts a host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from provision import doctor, secrets, spec
from provision.errors import EXIT_ENVIRONMENT, EXIT_INVALID_SPEC, SecretError
from provision.results import Check

ROOT = Path(__file__).resolve().parent.parent
VALUES = {"DOCTOR_T_ALICE": "Alice-Secret-Value-1x", "DOCTOR_T_BOB": "Bob-Secret-Value-2y"}
FILE_VALUE = "Carol-File-Secret-3z"


def _key(path: Path, passphrase: bytes | None = None) -> paramiko.PKey | None:
    key = ed25519.Ed25519PrivateKey.generate()
    crypt = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, crypt))
    path.chmod(0o600)
    return paramiko.PKey.from_path(path) if passphrase is None else None


def _spec(tmp_path: Path, **ssh: str) -> Path:
    """A workgroup with env and file references (relative and absolute) and two hosts."""
    data = {
        "network": {"name": "doc", "mode": "workgroup", "subnets": ["192.168.50.0/24"]},
        "ssh": {"user": "root", **ssh},
        "users": [
            {"name": "alice", "password": {"env": "DOCTOR_T_ALICE"}},
            {"name": "bob", "password": {"env": "DOCTOR_T_BOB"}},
            {"name": "carol", "password": {"file": "secrets/carol.pw"}},
            {"name": "dave", "password": {"file": str(tmp_path / "secrets" / "dave.pw")}},
        ],
        "hosts": [
            {"name": "pc1", "address": "192.168.50.11", "role": "peer"},
            {"name": "pc2", "address": "192.168.50.12", "role": "peer"},
        ],
    }
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _secret_files(tmp_path: Path, carol: bool = True, dave: bool = True) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir(exist_ok=True)
    for name, wanted in (("carol", carol), ("dave", dave)):
        if wanted:
            (folder / f"{name}.pw").write_text(FILE_VALUE + "\n")
            (folder / f"{name}.pw").chmod(0o600)


def _all_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in VALUES.items():
        monkeypatch.setenv(k, v)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _no_value_in(checks: list[Check]) -> None:
    text = "\n".join(f"{c.name} {c.detail}" for c in checks)
    for value in [*VALUES.values(), FILE_VALUE]:
        assert value not in text


# --------------------------------------------------------------------------- secrets


def test_every_missing_reference_is_named_with_its_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCTOR_T_ALICE", VALUES["DOCTOR_T_ALICE"])
    monkeypatch.setenv("DOCTOR_T_BOB", "")  # set but empty: as good as unset
    _secret_files(tmp_path, carol=True, dave=False)
    network = spec.load_network(_spec(tmp_path))

    checks = doctor.secret_checks(network)
    failed = {c.name: c.detail for c in checks if c.status == "fail"}
    assert set(failed) == {"secret users[1].password.env", "secret users[3].password.file"}
    assert "DOCTOR_T_BOB" in failed["secret users[1].password.env"]
    assert "is not set" in failed["secret users[1].password.env"]
    assert "dave.pw" in failed["secret users[3].password.file"]
    assert "secrets" not in _by_name(checks)  # no pass line while some fail
    _no_value_in(checks)

    err = doctor.failure(checks)
    assert isinstance(err, SecretError) and err.exit_code == EXIT_INVALID_SPEC

    with pytest.raises(SecretError) as raised:
        secrets.require_references(network)
    message = str(raised.value)
    assert "2 secret reference(s)" in message
    assert "users[1].password.env" in message and "users[3].password.file" in message
    assert VALUES["DOCTOR_T_ALICE"] not in message


def test_all_references_resolve_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _all_env(monkeypatch)
    _secret_files(tmp_path)
    network = spec.load_network(_spec(tmp_path))
    checks = doctor.secret_checks(network)
    assert [(c.name, c.status) for c in checks] == [("secrets", "pass")]
    assert "4 reference(s)" in checks[0].detail
    assert doctor.failure(checks) is None
    secrets.require_references(network)  # does not raise
    assert secrets.check_references(network) == []


def test_a_secret_file_others_can_read_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _all_env(monkeypatch)
    _secret_files(tmp_path)
    (tmp_path / "secrets" / "carol.pw").chmod(0o644)
    network = spec.load_network(_spec(tmp_path))
    checks = _by_name(doctor.secret_checks(network))
    assert checks["secrets"].status == "pass"
    warn = checks["secret users[2].password.file"]
    assert warn.status == "warn" and "chmod 600" in warn.detail
    assert doctor.failure(list(checks.values())) is None


def test_without_users_only_the_domain_password_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    for ref in secrets.references(network):
        if ref[1].env:
            monkeypatch.delenv(ref[1].env, raising=False)
    paths = [p.path for p in secrets.check_references(network)]
    assert "domain.admin_password.env" in paths
    assert any(p.startswith("users[") for p in paths)
    assert [p.path for p in secrets.check_references(network, users=False)] == ["domain.admin_password.env"]


# --------------------------------------------------------------------------- ssh


def test_identity_file_checks(tmp_path: Path) -> None:
    key_path = tmp_path / "id_ed25519"
    key = _key(key_path)
    net = spec.load_network(_spec(tmp_path, identity_file=str(key_path)))
    good = doctor.identity_check(net)
    assert good.status == "pass" and key.fingerprint in good.detail

    key_path.chmod(0o644)
    loose = doctor.identity_check(net)
    assert loose.status == "fail" and "0644" in loose.detail

    _key(key_path, passphrase=b"correct horse")
    locked = doctor.identity_check(net)
    assert locked.status == "fail" and "passphrase" in locked.detail

    key_path.write_text("not a key\n")
    assert doctor.identity_check(net).status == "fail"

    key_path.unlink()
    missing = doctor.identity_check(net)
    assert missing.status == "fail" and "does not exist" in missing.detail

    key_path.mkdir()
    assert "not a regular file" in doctor.identity_check(net).detail


def _as_nobody(probe: Callable[[], Check]) -> tuple[str, str]:
    """Run ``probe`` in a child whose effective uid is nobody's (root reads any file)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setegid(65534)
            os.seteuid(65534)
            check = probe()
            os.write(write_end, json.dumps([check.status, check.detail]).encode())
            code = 0
        except BaseException:  # reported through the exit status
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the probe failed in the child"
    status_text, detail = json.loads(data)
    return status_text, detail


def test_unreadable_identity_file_fails() -> None:
    folder = Path(tempfile.mkdtemp(prefix="provision-doctor-"))  # not tmp_path: nobody must reach it
    try:
        folder.chmod(0o755)
        key_path = folder / "id_ed25519"
        _key(key_path)
        net = spec.load_network(_spec(folder, identity_file=str(key_path)))
        if os.geteuid() == 0:
            status, detail = _as_nobody(lambda: doctor.identity_check(net))  # the key is root's, 0600
        else:
            key_path.chmod(0)
            check = doctor.identity_check(net)
            status, detail = check.status, check.detail
        assert status == "fail" and "cannot read" in detail and "Permission denied" in detail
    finally:
        shutil.rmtree(folder)


def test_no_identity_file_uses_default_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    net = spec.load_network(_spec(tmp_path))
    none = doctor.identity_check(net)
    assert none.status == "fail" and "SSH_AUTH_SOCK unset" in none.detail
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    _key(tmp_path / "home" / ".ssh" / "id_ed25519")
    found = doctor.identity_check(net)
    assert found.status == "pass" and str(tmp_path / "home" / ".ssh" / "id_ed25519") in found.detail


def test_known_hosts(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    net = spec.load_network(_spec(tmp_path, known_hosts_file=str(known)))
    missing = doctor.known_hosts_check(net)
    assert missing.status == "warn" and "--accept-new-host-keys" in missing.detail

    host_key = _key(tmp_path / "hostkey")
    keys = paramiko.HostKeys()
    keys.add("192.168.50.11", host_key.get_name(), host_key)
    keys.save(str(known))
    half = doctor.known_hosts_check(net)
    assert half.status == "warn" and "1 of 2" in half.detail and "pc2" in half.detail

    keys.add("192.168.50.12", host_key.get_name(), host_key)
    keys.save(str(known))
    full = doctor.known_hosts_check(net)
    assert full.status == "pass" and "2 of 2" in full.detail

    known.unlink()
    known.mkdir()
    assert doctor.known_hosts_check(net).status == "fail"


# --------------------------------------------------------------------------- packages


def test_ansible_versions_reflect_the_installed_packages() -> None:
    pins = doctor.pins()
    for name in doctor.ANSIBLE:
        check = _by_name(doctor.package_checks())[name]
        installed = metadata.version(name)
        assert installed in check.detail
        assert check.status == ("pass" if pins.get(name) == installed else "warn")
    source = doctor.constraints_file()
    other = doctor._version_check("ansible-core", "0.0.1", source)
    assert other.status == "warn" and "0.0.1" in other.detail and metadata.version("ansible-core") in other.detail
    absent = doctor._version_check("provision-no-such-package", "1.0", source)
    assert absent.status == "fail" and "not installed" in absent.detail


def test_constraints_pin_every_runtime_package() -> None:
    """A dependency added without `make constraints` would be untested by CI's pins."""
    pins = doctor.pins()
    assert {"ansible-core", "ansible-runner", "jsonschema-rs", "click"} <= set(pins)
    runtime = {name for name, _ in doctor._closure("provision")}
    assert runtime, "provision is not installed as a package"
    unpinned = sorted(runtime - set(pins))
    assert not unpinned, f"not pinned in .ci/constraints.txt: {unpinned}; run `make constraints`"
    assert doctor.dependencies_check(pins).status != "fail"


def test_constraints_file_says_how_to_refresh_it() -> None:
    text = (ROOT / ".ci" / "constraints.txt").read_text()
    assert "make constraints" in text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line) for line in lines), lines
    assert not any(line.lower().startswith(("pip==", "setuptools==", "provision==")) for line in lines)


def test_lab_packages_are_installed_by_make_deps() -> None:
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"^HOST_PACKAGES := (.*?)(?<!\\)\n", makefile, re.S | re.M)
    assert block is not None
    host_packages = set(block.group(1).replace("\\\n", " ").split())
    assert set(doctor.LAB_HOST_PACKAGES) <= host_packages


# --------------------------------------------------------------------------- run time and lab


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
def test_dpkg_check_names_what_is_missing() -> None:
    assert doctor.dpkg_check(["coreutils"]).status == "pass"
    missing = doctor.dpkg_check(["coreutils", "provision-no-such-package"])
    assert missing.status == "fail" and "provision-no-such-package" in missing.detail
    assert "coreutils" not in missing.detail


def test_missing_lab_tools_are_named_with_their_package() -> None:
    checks = doctor.tool_checks({"sh": "dash", "provision-no-such-tool": "provision-pkg"})
    assert [(c.name, c.status) for c in checks] == [("tool provision-no-such-tool", "fail")]
    assert "provision-pkg" in checks[0].detail
    assert doctor.tool_checks({"sh": "dash"})[0].status == "pass"


def test_lab_addresses(tmp_path: Path) -> None:
    outside = spec.load_network(_spec(tmp_path))
    check = doctor.lab_address_check(outside)
    assert check.status == "fail" and "192.168.50.11" in check.detail
    inside = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    assert doctor.lab_address_check(inside).status == "pass"


def test_secrets_tmpfs_check_agrees_with_the_runner() -> None:
    check = doctor.secrets_base_check()
    problem = secrets.ram_base_problem()
    assert (check.status == "fail") == (problem is not None or not os.access(secrets.SECRETS_BASE, os.W_OK))


def test_whole_run_on_a_ready_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_state: Path) -> None:
    _all_env(monkeypatch)
    _secret_files(tmp_path)
    key_path = tmp_path / "id_ed25519"
    _key(key_path)
    net = spec.load_network(_spec(tmp_path, identity_file=str(key_path), known_hosts_file=str(tmp_path / "kh")))
    checks = doctor.run(net)
    by = _by_name(checks)
    for name in ("secrets", "ssh identity", "known_hosts", "ansible-core", "ansible-runner", "python", "packages"):
        assert name in by, name
    assert by["secrets"].status == "pass" and by["ssh identity"].status == "pass"
    assert by["known_hosts"].status == "warn"  # not made yet: preflight --accept-new-host-keys makes it
    assert all(c.status in ("pass", "warn", "fail") and c.detail for c in checks)
    assert sum(doctor.summary(checks)) == len(checks)
    _no_value_in(checks)
    assert not any(c.host == doctor.LAB for c in checks)
    assert not any(c.name.startswith("secret ") for c in doctor.run(net, with_secrets=False))


def test_failure_exit_codes() -> None:
    secret = Check(doctor.CONTROLLER, "secret users[0].password.env", "fail", "unset")
    tool = Check(doctor.CONTROLLER, "ssh", "fail", "ssh not found")
    ok = Check(doctor.CONTROLLER, "python", "pass", "3.11")
    warn = Check(doctor.CONTROLLER, "known_hosts", "warn", "missing")
    assert doctor.failure([ok, warn]) is None
    only_secret = doctor.failure([ok, secret])
    assert only_secret is not None and only_secret.exit_code == EXIT_INVALID_SPEC
    both = doctor.failure([secret, tool])
    assert both is not None and both.exit_code == EXIT_ENVIRONMENT and "ssh" in str(both)
    assert doctor.summary([ok, warn, secret, tool]) == (1, 1, 2)
