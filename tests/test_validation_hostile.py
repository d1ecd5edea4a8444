"""The spec as hostile input: the validation layer closes whole classes, not examples.

The corpus (tests/data/invalid) holds one file per class and field; this module holds
what cannot live in git (FIFOs, oversize and world-readable files), the properties that
prove a class is closed for *every* field (each string of every valid spec mutated in
turn), and the bounds on output and time.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from provision import rules, spec
from provision.cli import cli
from provision.errors import SpecError

DATA = Path(__file__).parent / "data"
VALID = sorted((DATA / "valid").glob("*.yml"))
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "inventories").glob("*.yml"))

WG = "network: {name: office, mode: workgroup, subnets: [192.168.10.0/24]}\n"
PC1 = "hosts:\n  - name: pc1\n    address: 192.168.10.11\n    role: peer\n"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def errors(text: str, base_dir: Path | None = None) -> list[tuple[str, str]]:
    try:
        result = spec.check_text(text, "x", base_dir=base_dir)
    except SpecError as exc:
        return [(p.path, p.message) for p in exc.problems]
    assert result.network is None or not result.errors
    return [(p.path, p.message) for p in result.errors]


def write(tmp_path: Path, text: str, name: str = "spec.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- every string field


def _string_places(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], bool]]:
    """(path, is_key) of every string value and every string key of the data."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield (*path, k), True
            yield from _string_places(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _string_places(v, (*path, i))
    elif isinstance(node, str):
        yield path, False


def _mutated(data: Any, place: tuple[str | int, ...], is_key: bool, evil: str) -> tuple[Any, tuple[str | int, ...]]:
    data = copy.deepcopy(data)
    parent = data
    for part in place[:-1]:
        parent = parent[part]
    last = place[-1]
    if is_key:
        assert isinstance(last, str)
        items = list(parent.items())
        parent.clear()
        for k, v in items:
            parent[k + evil if k == last else k] = v
        return data, (*place[:-1], last + evil)
    parent[last] = parent[last] + evil
    return data, place


def _cases(paths: list[Path]) -> list[tuple[str, tuple[str | int, ...], bool]]:
    out = []
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for place, is_key in _string_places(data):
            out.append((str(path), place, is_key))
    return out


# campus.yml is branch-office.yml at scale: its 2,400 hosts only make each check slower.
CASES = _cases([*VALID, *(p for p in EXAMPLES if p.name != "campus.yml")])
RICH = _cases([DATA / "valid" / "domain-all-roles.yml", DATA / "valid" / "lab-workgroup.yml"])
# Every place gets the three families (line break, Unicode separator, Jinja); the rich
# specs get every hostile kind.
EVIL_EVERYWHERE = ["\n", "\u2028", "{{ lookup('pipe','id') }}"]
EVIL = ["\r", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2029", "\u202e", "{% if 1 %}", "{# x #}",
        "{{ '%c' | format(10) }}"]


def test_there_are_many_string_places() -> None:
    assert len(CASES) > 300
    assert len(RICH) > 200


def _missed(cases: list[tuple[str, tuple[str | int, ...], bool]], evil: str) -> list[str]:
    bases: dict[str, Any] = {}
    missed = []
    for source, place, is_key in cases:
        if source not in bases:
            bases[source] = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        base = bases[source]
        data, where = _mutated(base, place, is_key, evil)
        result = spec.check_data(data, "x")
        expected = rules.format_path(list(where))
        if result.network is not None or expected not in {p.path for p in result.errors}:
            missed.append(f"{Path(source).name}: {expected}")
    return missed


@pytest.mark.parametrize("evil", EVIL_EVERYWHERE, ids=[repr(e) for e in EVIL_EVERYWHERE])
def test_every_string_of_every_valid_spec_is_checked(evil: str) -> None:
    """Each string value and key of every valid spec, made hostile in turn, is an error at its path."""
    missed = _missed(CASES, evil)
    assert not missed, f"{len(missed)} places accept {evil!r}, e.g. {missed[:5]}"


@pytest.mark.parametrize("evil", EVIL, ids=[repr(e) for e in EVIL])
def test_every_hostile_kind_is_refused_everywhere(evil: str) -> None:
    missed = _missed(RICH, evil)
    assert not missed, f"{len(missed)} places accept {evil!r}, e.g. {missed[:5]}"


@pytest.mark.parametrize("evil", ["\ud800", "\x9b", "\x1f"], ids=["surrogate", "csi", "unit-separator"])
def test_odd_code_points_in_data(evil: str) -> None:
    data = yaml.safe_load(WG + PC1)
    data["hosts"][0]["shares"] = [{"name": "x", "path": "/srv/x", "comment": f"a{evil}b"}]
    result = spec.check_data(data, "x")
    assert "hosts[0].shares[0].comment" in {p.path for p in result.errors}
    assert result.network is None


def test_messages_and_paths_are_printable() -> None:
    """Whatever a rule quotes back, the CLI prints no control character."""
    data = yaml.safe_load(WG + PC1)
    data["users"] = [{"name": "alice", "password": {"env": "A_PW"}, "groups": ["x\x1b]0;owned\x07"]}]
    data["hosts"][0]["\x1b[2Jkey"] = 1
    result = spec.check_data(data, "x")
    assert result.errors
    for p in result.errors:
        assert not re.search("[\x00-\x1f\x7f-\x9f]", p.message + p.path), p


# --------------------------------------------------------------------------- '$' and failing closed


@pytest.mark.parametrize(
    ("pattern", "anchored"),
    [
        ("^a$", "^a\\Z"),
        ("^[a$]$", "^[a$]\\Z"),
        ("^a\\$$", "^a\\$\\Z"),
        ("^(a|b)$", "^(a|b)\\Z"),
        ("^[^\\]$]x$", "^[^\\]$]x\\Z"),
    ],
)
def test_pattern_dollar_is_end_of_text(pattern: str, anchored: str) -> None:
    assert spec._anchored(pattern) == anchored


@pytest.mark.parametrize(
    ("top", "key", "value"),
    [("network", "name", "office\n"), ("users", "name", "alice\n"), ("network", "workgroup", "OFFICE\n")],
)
def test_trailing_newline_rejected_by_both_validators(top: str, key: str, value: str) -> None:
    data = yaml.safe_load(WG + PC1 + "users: [{name: alice, password: {env: A_PW}}]\n")
    node = data[top][0] if top == "users" else data[top]
    node[key] = value
    assert not spec._fast().is_valid(data)
    assert list(spec.schema_problems(data)), "the explaining validator must agree with the compiled one"
    assert spec.check_data(data, "x").network is None


def test_fail_closed_when_only_the_fast_validator_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the two validators ever disagree, the spec is refused, never passed."""
    data = yaml.safe_load(WG + PC1)
    assert spec.check_data(data, "x").network is not None
    monkeypatch.setattr(spec, "_fast_valid", lambda _data: False)
    monkeypatch.setattr(spec, "schema_problems", lambda _data: iter(()))
    result = spec.check_data(data, "x")
    assert result.network is None
    assert result.errors
    assert all(len(p.message) < 700 for p in result.errors)


# --------------------------------------------------------------------------- YAML: duplicates, aliases, size


def test_duplicate_keys_name_the_key_and_both_lines() -> None:
    text = WG + PC1 + "groups: [{name: a}]\n" + "hosts: []\n"
    found = errors(text)
    assert ("hosts", "duplicate key 'hosts' (first at line 2, again at line 7); "
            "YAML would silently keep only one, remove the other") in found


def test_duplicate_keys_reported_with_every_other_problem() -> None:
    text = WG + PC1 + "    address: 192.168.10.12\n" + "users: [{name: root, password: {env: R_PW}}]\n"
    paths = {p for p, _ in errors(text)}
    assert {"hosts[0].address", "users[0].name"} <= paths


def test_first_of_duplicate_keys_is_kept() -> None:
    text = WG + PC1 + "    role: domain_controller\n"
    result = spec.check_text(text, "x")
    assert [p.path for p in result.errors] == ["hosts[0].role"]  # the duplicate, not the role


@pytest.mark.parametrize("depth", [9, 30])
def test_billion_laughs_is_refused_quickly(tmp_path: Path, depth: int) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, depth)]
    path = write(tmp_path, WG + PC1 + "\n".join(lines) + "\n")
    t = time.perf_counter()
    code, out = run("validate", str(path))
    assert time.perf_counter() - t < 20
    assert code == 2
    assert len(out) < 10_000
    assert "alias" in out


def test_recursive_alias_is_refused() -> None:
    found = errors(WG + PC1 + "groups: &g [*g]\n")
    assert found and "alias" in found[0][1]


def test_oversize_spec_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with path.open("wb") as fh:
        fh.truncate(spec.MAX_SPEC_BYTES + 1)  # sparse: nothing is written
    code, out = run("validate", str(path))
    assert code == 2
    assert "MiB" in out and "Traceback" not in out
    with pytest.raises(SpecError):
        spec.check_text("#" * (spec.MAX_SPEC_BYTES + 1), "x")


def test_spec_from_a_fifo_is_bounded(tmp_path: Path) -> None:
    """A spec read from a pipe is read up to the cap, not forever."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child writes the spec and leaves
        try:
            with fifo.open("w") as fh:
                fh.write(WG + PC1)
        finally:
            os._exit(0)
    try:
        result = spec.check(fifo)
    finally:
        os.waitpid(pid, 0)
    assert result.network is not None


# --------------------------------------------------------------------------- output bounds


def test_many_problems_are_capped(tmp_path: Path) -> None:
    hosts = "".join(
        f"  - {{name: pc{i}, address: 192.168.10.{i + 1}, role: peer, shares: [{{name: s, path: /etc/x{i}}}]}}\n"
        for i in range(250)
    )
    path = write(tmp_path, "network: {name: office, mode: workgroup, subnets: [192.168.10.0/24]}\nhosts:\n" + hosts)
    code, out = run("validate", str(path))
    assert code == 2
    assert "more error(s) not shown" in out
    assert out.count("lies inside /etc") == spec.MAX_PROBLEMS
    assert len(out) < 1_000_000


def test_long_values_are_clipped_in_messages(tmp_path: Path) -> None:
    comment = "x" * 1_000_000 + "\n"
    path = write(tmp_path, WG + PC1 + f"    shares: [{{name: s, path: /srv/s, comment: \"{comment[:-1]}\\n\"}}]\n")
    code, out = run("validate", str(path))
    assert code == 2
    assert "…" in out
    assert len(out) < 5_000
    found = errors(WG + "hosts: " + "x" * 100_000 + "\n")
    assert all(len(m) <= 700 for _, m in found)


def test_long_keys_are_clipped_in_paths() -> None:
    found = errors(WG + PC1 + "    " + "k" * 10_000 + ": 1\n")
    assert found
    assert all(len(p) <= 300 for p, _ in found)


# --------------------------------------------------------------------------- files the controller reads


def _secret_spec(tmp_path: Path, file: str) -> Path:
    return write(tmp_path, WG + PC1 + f"users: [{{name: alice, password: {{file: {file}}}}}]\n")


def test_secret_file_fifo_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "alice.pw")
    result = spec.check(_secret_spec(tmp_path, "alice.pw"))  # relative: to the spec's folder
    assert [p.path for p in result.errors] == ["users[0].password.file"]
    assert "not a regular file" in result.errors[0].message
    code, out = run("validate", str(tmp_path / "spec.yml"))
    assert code == 2 and "users[0].password.file" in out


def test_secret_file_oversize_is_an_error(tmp_path: Path) -> None:
    big = tmp_path / "alice.pw"
    big.write_bytes(b"x" * 100_000)
    big.chmod(0o600)
    result = spec.check(_secret_spec(tmp_path, str(big)))
    assert [p.path for p in result.errors] == ["users[0].password.file"]
    assert "bytes" in result.errors[0].message


def test_secret_file_world_readable_is_a_warning(tmp_path: Path) -> None:
    pw = tmp_path / "alice.pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    path = _secret_spec(tmp_path, "alice.pw")
    result = spec.check(path)
    assert not result.errors and result.network is not None
    assert [p.path for p in result.warnings] == ["users[0].password.file"]
    assert run("validate", str(path))[0] == 0
    assert run("validate", "--strict", str(path))[0] == 1
    pw.chmod(0o600)
    assert not spec.check(path).warnings


def test_secret_file_symlink_into_proc_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "alice.pw").symlink_to("/proc/self/environ")
    result = spec.check(_secret_spec(tmp_path, "alice.pw"))
    assert [p.path for p in result.errors] == ["users[0].password.file"]


def test_relative_secret_files_are_not_checked_without_a_folder(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "alice.pw")
    text = (tmp_path / "spec.yml").read_text() if (tmp_path / "spec.yml").exists() else None
    assert text is None
    result = spec.check_text(WG + PC1 + "users: [{name: alice, password: {file: alice.pw}}]\n", "x")
    assert result.network is not None


def test_ssh_known_hosts_fifo_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "known_hosts")
    path = write(tmp_path, WG + "ssh: {known_hosts_file: known_hosts}\n" + PC1)
    result = spec.check(path)
    assert [p.path for p in result.errors] == ["ssh.known_hosts_file"]


# --------------------------------------------------------------------------- warnings


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ("policies: {firewall: {allow_from: [0.0.0.0/0]}}\n", "policies.firewall.allow_from[0]"),
        ("policies: {firewall: {allow_from: [10.0.0.0/8, 64.0.0.0/2]}}\n", "policies.firewall.allow_from[1]"),
    ],
)
def test_wide_firewall_sources_warn(tmp_path: Path, extra: str, where: str) -> None:
    path = write(tmp_path, WG + PC1 + extra)
    result = spec.check(path)
    assert result.network is not None
    assert [p.path for p in result.warnings] == [where]
    assert run("validate", str(path))[0] == 0
    assert run("validate", "--strict", str(path))[0] == 1


def test_wide_subnets_warn_when_they_are_the_firewall_default(tmp_path: Path) -> None:
    text = "network: {name: office, mode: workgroup, subnets: [0.0.0.0/0]}\n" + PC1
    assert [p.path for p in spec.check_text(text, "x").warnings] == ["network.subnets[0]"]
    disabled = text + "policies: {firewall: {enabled: false}}\n"
    assert not spec.check_text(disabled, "x").warnings
    narrow = text + "policies: {firewall: {allow_from: [192.168.10.0/24]}}\n"
    assert not spec.check_text(narrow, "x").warnings


def test_nested_shares_warn() -> None:
    text = WG + PC1 + "    shares: [{name: all, path: /srv/data}, {name: hr, path: /srv/data/hr}]\n"
    result = spec.check_text(text, "x")
    assert result.network is not None
    assert [p.path for p in result.warnings] == ["hosts[0].shares[1].path"]


def test_mixing_macos_support_on_one_host_warns() -> None:
    text = WG + PC1 + "    shares: [{name: a, path: /srv/a}, {name: b, path: /srv/b, macos: false}]\n"
    result = spec.check_text(text, "x")
    assert result.network is not None
    assert [p.path for p in result.warnings] == ["hosts[0].shares[1].macos"]
    assert "macOS clients" in result.warnings[0].message
    same = WG + PC1 + "    shares: [{name: a, path: /srv/a, macos: false}, {name: b, path: /srv/b, streams: false}]\n"
    result = spec.check_text(same, "x")
    assert result.network is not None and result.warnings == []
    a, b = result.network.hosts[0].shares
    assert (a.streams, a.macos, b.streams, b.macos) == (True, False, False, False)


# --------------------------------------------------------------------------- what stays allowed


@pytest.mark.parametrize(
    "uri",
    ["ipp://192.168.10.50/ipp/print", "ipps://printer.office.test/ipp/print", "socket://192.168.10.50:9100",
     "lpd://192.168.10.50/queue", "dnssd://Laser%20Jet._ipp._tcp.local/", "smb://fs1/laser", "usb://HP/LaserJet",
     "file:///dev/null", "cups-pdf:/"],
)
def test_allowed_printer_uris(uri: str) -> None:
    text = WG + PC1 + f"    printers: [{{name: laser, uri: '{uri}'}}]\n"
    assert spec.check_text(text, "x").network is not None


@pytest.mark.parametrize("path", ["/srv/projects", "/home/shared", "/data/x", "/mnt/archive", "/srv/a-b_c.d",
                                  "/var/www-data", "/opt/share"])
def test_allowed_share_paths(path: str) -> None:
    text = WG + PC1 + f"    shares: [{{name: x, path: '{path}', comment: 'Fine: 100% {{ok}} #1 ;2 }}}}'}}]\n"
    result = spec.check_text(text, "x")
    assert result.network is not None, result.errors


def test_allowed_names() -> None:
    text = (
        WG + PC1 + "    shares: [{name: Projects$, path: /srv/p}, {name: cd, path: /srv/cd}]\n"
        "groups: [{name: staff}, {name: it}, {name: admins-local}]\n"
        "users: [{name: alice, password: {env: ALICE_PW}, groups: [staff], shell: /usr/bin/zsh}]\n"
    )
    result = spec.check_text(text, "x")
    assert result.network is not None, result.errors


def test_ranges_named_like_reserved_words_are_fine() -> None:
    text = WG + "hosts:\n  - {name: 'wpad[1:2]', address: 192.168.10.20+, role: peer}\n"
    assert spec.check_text(text, "x").network is not None


# --------------------------------------------------------------------------- the CLI, case by case


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (PC1 + "    shares: [{name: x, path: /srv/x, comment: \"a\\nb\"}]\n", "hosts[0].shares[0].comment"),
        (PC1 + "hosts: []\n", "hosts"),
        (PC1 + "    printers: [{name: p, uri: 'smb://u:p@h/q'}]\n", "hosts[0].printers[0].uri"),
        (PC1 + "groups: [{name: Domain-Admins}]\n", "groups[0].name"),
    ],
)
def test_cli_reports_every_class_with_exit_2(tmp_path: Path, body: str, where: str) -> None:
    path = write(tmp_path, WG + body)
    code, out = run("validate", str(path))
    assert code == 2
    assert f": {where}: " in out
    code, out = run("validate", "--format", "json", str(path))
    assert code == 2
    assert f'"path": "{where}"' in out
