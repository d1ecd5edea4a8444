"""The wheelhouse, built from this venv and installed with the real installer script, unmocked.

The "node" is this machine: the installer runs as on an execution node, script on stdin, under
/usr/bin/python3 when that is the controller's Python minor (Debian 12: 3.11.2 here, while the
venv's is another 3.11 build), else under the venv's own interpreter. Binary wheels need the same
minor, so a /usr/bin/python3 of another minor could not take them; the installer's tag check
would refuse. Only files under tmp_path are written; pip (the cross-check) runs with --no-index.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from provision import wheelhouse
from provision.wheelhouse import (
    INSTALLER,
    MARKER,
    Wheelhouse,
    build,
    controller_versions,
    node_versions_command,
    wheelhouse_key,
)

CLEAN_ENV = {"PATH": "/usr/bin:/bin"}  # what env -i gives a login-less ssh command, more or less


def _node_python() -> str:
    system = "/usr/bin/python3"
    if os.access(system, os.X_OK):
        out = subprocess.run([system, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=False).stdout.strip()
        if out == str(tuple(sys.version_info[:2])):
            return system
    return sys.executable


NODE_PYTHON = _node_python()


def install(wheel_dir: Path, prefix: Path, key: str) -> subprocess.CompletedProcess[str]:
    """Run the installer the way the node runs it: `python3 - WHEEL_DIR PREFIX KEY`, script on stdin."""
    return subprocess.run([NODE_PYTHON, "-", str(wheel_dir), str(prefix), key], input=INSTALLER,
                          capture_output=True, text=True, env=CLEAN_ENV, cwd="/", timeout=300, check=False)


def run_clean(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=CLEAN_ENV, cwd=cwd, timeout=120, check=False)


def b64_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return build(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def installed(house: Wheelhouse, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    prefix = tmp_path_factory.mktemp("node") / "opt" / "provision-ansible"
    done = install(house.directory, prefix, house.key)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return prefix, json.loads(lines[0])


def test_controller_versions_are_the_installed_ones() -> None:
    import ansible.release

    assert controller_versions() == {
        "ansible-core": ansible.release.__version__,
        "ansible-runner": metadata.version("ansible-runner"),
    }


def test_default_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert wheelhouse.default_cache_root() == tmp_path / "provision" / "wheelhouse"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert wheelhouse.default_cache_root() == Path.home() / ".cache" / "provision" / "wheelhouse"


def test_wheelhouse_holds_the_closure(house: Wheelhouse) -> None:
    versions = controller_versions()
    names = {p.name.split("-")[0] for p in house.wheels}
    assert {"ansible_core", "ansible_runner", "pyyaml", "jinja2", "markupsafe", "cryptography", "cffi",
            "packaging", "resolvelib", "pexpect", "python_daemon"} <= names
    assert f"ansible_core-{versions['ansible-core']}-py3-none-any.whl" in {p.name for p in house.wheels}
    assert house.directory.name == (f"{house.python}-{house.machine}-core{versions['ansible-core']}"
                                    f"-runner{versions['ansible-runner']}")
    assert house.python == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert len(house.key) == 16 and house.key == wheelhouse_key(house.wheels)
    assert sorted(house.directory.glob("*.whl")) == sorted(house.wheels)
    assert (house.directory / MARKER).is_file()
    assert house.directory.stat().st_mode & 0o777 == 0o700
    assert house.directory.parent.stat().st_mode & 0o777 == 0o700
    # The binary ones keep their WHEEL tags: the file name is this Python's and machine's.
    cryptography = next(p for p in house.wheels if p.name.startswith("cryptography-"))
    assert f"cp{sys.version_info[0]}" in cryptography.name and house.machine in cryptography.name


def test_wheels_are_real_wheels_with_verified_records(house: Wheelhouse) -> None:
    for path in house.wheels:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            dist_info = names[-1].split("/")[0]
            assert names[-1] == f"{dist_info}/RECORD" and dist_info.endswith(".dist-info")
            # dist-info last, everything else sorted before it
            body = [n for n in names if not n.startswith(dist_info + "/")]
            assert names[: len(body)] == sorted(body)
            assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
            assert not any("__pycache__" in n or n.endswith(".pyc") or n.startswith(("/", "..")) for n in names)
            assert not any(n.split("/")[-1] in ("INSTALLER", "REQUESTED", "direct_url.json") for n in names)
            wheel_meta = archive.read(f"{dist_info}/WHEEL").decode()
            assert "Wheel-Version: 1." in wheel_meta
            record = list(csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode())))
            assert [r[0] for r in record] == names
            for name, digest, size in record[:-1]:
                data = archive.read(name)
                assert digest == f"sha256={b64_sha256(data)}", (path.name, name)
                assert int(size) == len(data)
            assert record[-1] == [f"{dist_info}/RECORD", "", ""]


def test_pip_accepts_the_wheels_offline(house: Wheelhouse, tmp_path: Path) -> None:
    """A second, independent installer: pip resolves both roots from the wheelhouse alone."""
    versions = controller_versions()
    env = {**CLEAN_ENV, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house.directory),
         "--target", str(tmp_path / "t"), "--no-compile",
         f"ansible-core=={versions['ansible-core']}", f"ansible-runner=={versions['ansible-runner']}"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t" / "ansible" / "release.py").is_file()


def test_build_is_deterministic_and_reused(house: Wheelhouse, tmp_path: Path) -> None:
    again = build(house.directory.parent)
    assert again == house  # reused: same directory, wheels and key
    other = build(tmp_path / "cache")
    assert other.key == house.key
    assert [p.name for p in other.wheels] == [p.name for p in house.wheels]
    for mine, theirs in zip(house.wheels, other.wheels, strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
    # A damaged cache is not reused: it is rebuilt to the same bytes.
    damaged = other.wheels[0]
    damaged.write_bytes(damaged.read_bytes()[:-10])
    rebuilt = build(tmp_path / "cache")
    assert rebuilt.key == house.key
    assert rebuilt.wheels[0].read_bytes() == house.wheels[0].read_bytes()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no staging left over


def test_installer_installs_the_controller_versions(installed: tuple[Path, dict[str, str]], house: Wheelhouse,
                                                    tmp_path: Path) -> None:
    prefix, printed = installed
    versions = controller_versions()
    assert printed == {"key": house.key, **versions}
    assert os.readlink(prefix / "current") == house.key
    target = prefix / house.key
    assert (target / MARKER).is_file()
    assert (target / "lib" / "ansible" / "release.py").is_file()
    assert (target / "lib" / "ansible" / "__pycache__").is_dir()  # compiled on install
    assert not list(target.rglob("*.staging-*"))
    for directory in (prefix, target, target / "lib", target / "bin", target / "lib" / "ansible"):
        assert directory.stat().st_mode & 0o777 == 0o755, directory
    assert (target / "lib" / "ansible" / "release.py").stat().st_mode & 0o777 == 0o644
    script = prefix / "current" / "bin" / "ansible-playbook"
    assert script.stat().st_mode & 0o777 == 0o755
    head = script.read_text().splitlines()
    assert head[0] == f"#!{NODE_PYTHON} -s"
    assert repr(str(target / "lib")) in script.read_text()

    out = run_clean([str(script), "--version"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"ansible-playbook [core {versions['ansible-core']}]"
    assert f"ansible python module location = {target / 'lib' / 'ansible'}" in out.stdout
    out = run_clean([str(prefix / "current" / "bin" / "ansible-runner"), "--version"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == versions["ansible-runner"]


def test_node_versions_command(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    prefix, _ = installed
    out = run_clean(["/bin/sh", "-c", node_versions_command(str(prefix))], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1
    assert json.loads(out.stdout) == controller_versions()
    missing = run_clean(["/bin/sh", "-c", node_versions_command(str(tmp_path / "no where"))], tmp_path)
    assert (missing.returncode, missing.stdout) == (1, "")
    with pytest.raises(ValueError, match="absolute"):
        node_versions_command("relative/prefix")


def test_second_install_is_idempotent_and_removes_older_ones(installed: tuple[Path, dict[str, str]],
                                                             house: Wheelhouse) -> None:
    prefix, printed = installed
    marker = prefix / house.key / MARKER
    before = marker.stat().st_mtime_ns
    # An older install the next one replaces, and things in PREFIX that are not installs.
    old = prefix / "0123456789abcdef"
    (old / "lib").mkdir(parents=True)
    (old / MARKER).write_text("{}\n")
    (prefix / "current").unlink()
    (prefix / "current").symlink_to(old.name)
    (prefix / "not-ours").mkdir()
    (prefix / "fedcba9876543210").mkdir()  # key-shaped but without a marker: not an install
    try:
        done = install(house.directory, prefix, house.key)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == printed
        assert marker.stat().st_mtime_ns == before  # not unpacked again
        assert os.readlink(prefix / "current") == house.key
        assert not old.exists()
        assert (prefix / "not-ours").is_dir() and (prefix / "fedcba9876543210").is_dir()
    finally:
        for leftover in (prefix / "not-ours", prefix / "fedcba9876543210"):
            shutil.rmtree(leftover, ignore_errors=True)


def make_wheel(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], dist: str = "evil-1.0",
               tag: str = "py3-none-any", wrong_hash: str = "") -> Path:
    """A small wheel with the given members; RECORD lists them, with right hashes but for `wrong_hash`."""
    dist_info = f"{dist}.dist-info"
    meta = [(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {dist.split('-')[0]}\nVersion: 1.0\n".encode()),
            (f"{dist_info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n".encode())]
    rows = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in [*members, *meta]:
            archive.writestr(member, data)
            name = member.filename if isinstance(member, zipfile.ZipInfo) else member
            digest = b64_sha256(b"something else" if name == wrong_hash else data)
            rows.append(f"{name},sha256={digest},{len(data)}\n")
        archive.writestr(f"{dist_info}/RECORD", "".join(rows) + f"{dist_info}/RECORD,,\n")
    return path


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777) << 16
    return info


@pytest.mark.parametrize(("member", "reason"), [
    ("../evil", "escapes"),
    ("pkg/../../evil", "escapes"),
    ("/tmp/provision-wheelhouse-test-evil", "escapes"),
    ("evil-1.0.data/purelib/../../../evil", "escapes"),
    (symlink_member("pkg/evil"), "link"),
])
def test_installer_refuses_members_that_escape(tmp_path: Path, member: zipfile.ZipInfo | str,
                                               reason: str) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels / "evil-1.0-py3-none-any.whl", [("pkg/__init__.py", b""), (member, b"../../outside")])
    prefix = tmp_path / "prefix"
    done = install(wheels, prefix, wheelhouse_key([wheel]))
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and reason in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefix", "wheels"]
    assert [p.name for p in prefix.iterdir()] == [".lock"]  # staging removed, nothing installed
    assert not Path("/tmp/provision-wheelhouse-test-evil").exists()


def test_installer_refuses_after_real_wheels_and_leaves_current_alone(installed: tuple[Path, dict[str, str]],
                                                                     house: Wheelhouse, tmp_path: Path) -> None:
    """An escaping member among the real wheels (unpacked first) is refused; the good install stays current."""
    prefix, _ = installed
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in house.wheels:
        (wheels / wheel.name).symlink_to(wheel)
    evil = make_wheel(wheels / "evil-1.0-py3-none-any.whl", [("../evil", b"x")])
    key = wheelhouse_key([*house.wheels, evil])
    done = install(wheels, prefix, key)
    assert done.returncode == 1 and "escapes" in done.stderr, done.stderr
    assert os.readlink(prefix / "current") == house.key
    assert not (prefix / key).exists() and not list(prefix.glob(".staging-*"))
    assert not (prefix / "evil").exists() and not (prefix.parent / "evil").exists()


def test_installer_checks_record_and_key(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    bad = wheels / "bad-1.0-py3-none-any.whl"
    make_wheel(bad, [("bad/__init__.py", b"")], dist="bad-1.0")
    with zipfile.ZipFile(bad, "a") as archive:  # a member RECORD does not list
        archive.writestr("bad/extra.py", b"print('not listed')\n")
    done = install(wheels, tmp_path / "p1", wheelhouse_key([bad]))
    assert done.returncode == 1 and "RECORD does not match" in done.stderr, done.stderr

    bad.unlink()
    make_wheel(bad, [("bad/__init__.py", b"changed")], dist="bad-1.0", wrong_hash="bad/__init__.py")
    done = install(wheels, tmp_path / "p2", wheelhouse_key([bad]))
    assert done.returncode == 1 and "bad/__init__.py does not match its RECORD hash" in done.stderr, done.stderr
    assert [p.name for p in (tmp_path / "p2").iterdir()] == [".lock"]

    done = install(wheels, tmp_path / "p3", "0" * 16)
    assert done.returncode == 1 and "are not wheelhouse" in done.stderr
    done = install(wheels, tmp_path / "p4", "../escape")
    assert done.returncode == 1 and "not a wheelhouse key" in done.stderr
    assert not (tmp_path / "escape").exists()


def test_installer_refuses_wheels_for_another_python(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    other = make_wheel(wheels / "native-1.0-cp27-cp27mu-manylinux1_x86_64.whl", [("native.py", b"")],
                       dist="native-1.0", tag="cp27-cp27mu-manylinux1_x86_64")
    done = install(wheels, tmp_path / "prefix", wheelhouse_key([other]))
    assert done.returncode == 1 and "is built for cp27-cp27mu-manylinux1_x86_64" in done.stderr, done.stderr


def test_installer_maps_data_dirs_and_entry_points(house: Wheelhouse, tmp_path: Path) -> None:
    """PEP 427 layout: .data/purelib into lib, .data/scripts into bin (#!python rewritten), entry points."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in house.wheels:
        (wheels / wheel.name).symlink_to(wheel)
    script = zipfile.ZipInfo("demo-1.0.data/scripts/demo-script")
    script.external_attr = 0o100755 << 16
    demo = make_wheel(wheels / "demo-1.0-py3-none-any.whl", [
        ("demo-1.0.data/purelib/demo_mod.py", b"def main():\n    print('demo ok')\n    return 3\n"),
        (script, b"#!python\nimport demo_mod\ndemo_mod.main()\n"),
        ("demo-1.0.dist-info/entry_points.txt", b"[console_scripts]\ndemo = demo_mod:main\n"),
    ], dist="demo-1.0")
    prefix = tmp_path / "prefix"
    done = install(wheels, prefix, wheelhouse_key([*house.wheels, demo]))
    assert done.returncode == 0, done.stderr
    bin_dir = prefix / "current" / "bin"
    out = run_clean([str(bin_dir / "demo")], tmp_path)
    assert (out.returncode, out.stdout) == (3, "demo ok\n"), out.stderr
    assert (bin_dir / "demo-script").read_text().startswith(f"#!{NODE_PYTHON} -s\n")
    assert (prefix / "current" / "lib" / "demo_mod.py").is_file()
