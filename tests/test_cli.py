"""The CLI through Click's CliRunner: exit codes, formats, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision.cli import cli
from provision.errors import EXIT_INVALID_SPEC, EXIT_WARNINGS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "inventories").glob("*.yml"))


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_and_plan(path: Path) -> None:
    code, out = run("validate", str(path))
    assert code == 0, out
    assert "valid:" in out
    code, out = run("plan", str(path))
    assert code == 0, out
    assert "Rollout:" in out
    code, out = run("plan", "--format", "json", str(path))
    plan = json.loads(out)
    assert plan["hosts"] >= 3


def test_example_sizes() -> None:
    """The examples the issue names exist with the sizes it asks for."""
    sizes = {}
    for path in EXAMPLES:
        plan = json.loads(run("plan", "--format", "json", str(path))[1])
        sizes[path.stem] = (plan["mode"], plan["hosts"], plan["roles"])
    assert sizes["small-office"][:2] == ("workgroup", 6)
    mode, _count, roles = sizes["branch-office"]
    assert mode == "domain" and len(roles["workstation"]) == 40
    assert set(roles) == {"domain_controller", "file_server", "mail_server", "database_server", "workstation"}
    assert roles["domain_controller"] == ["dc1", "dc2"]
    assert sizes["campus"][1] >= 2000


def test_invalid_spec_exit_2_with_paths_and_lines(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text(
        "network: {name: x, mode: workgroup, subnets: [10.0.0.0/24]}\n"
        "hosts:\n"
        "  - {name: a, address: 10.0.0.5, role: peer}\n"
        "  - {name: b, address: 10.0.0.300, role: peer}\n"
        "  - {name: a, address: 10.0.1.5, role: peer}\n"
    )
    code, out = run("validate", str(spec))
    assert code == EXIT_INVALID_SPEC
    assert f"{spec}:4: hosts[1].address: '10.0.0.300' is not a valid IPv4 address" in out
    assert f"{spec}:5: hosts[2].name: duplicate host name 'a'" in out
    assert f"{spec}:5: hosts[2].address: 10.0.1.5 is outside the network's subnets" in out
    doc = json.loads(run("validate", "--format", "json", str(spec))[1])
    assert doc["valid"] is False
    assert {(e["path"], e["line"]) for e in doc["errors"]} >= {("hosts[1].address", 4), ("hosts[2].name", 5)}


def test_plan_of_invalid_spec_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text("network: {name: x, mode: workgroup}\nhosts: []\n")
    code, out = run("plan", str(spec))
    assert code == EXIT_INVALID_SPEC
    assert "network: 'subnets' is a required field" in out


def test_yaml_syntax_error_is_reported_with_line(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yml"
    spec.write_text("network:\n  name: x\n   mode: [\n")
    code, out = run("validate", str(spec))
    assert code == EXIT_INVALID_SPEC
    assert f"{spec}:3: (root): YAML syntax error" in out


def test_strict_turns_warnings_into_exit_1(tmp_path: Path) -> None:
    spec = tmp_path / "one-dc.yml"
    spec.write_text(
        "network: {name: x, mode: domain, subnets: [10.0.0.0/24]}\n"
        "domain: {realm: AD.X.LOCAL, netbios: XDOM, admin_password: {env: PW}}\n"
        "hosts:\n  - {name: dc1, address: 10.0.0.2, role: domain_controller}\n"
        "  - {name: 'ws[1:6]', address: 10.0.0.10+, role: workstation}\n"
    )
    code, out = run("validate", str(spec))
    assert code == 0
    assert "warning: realm 'AD.X.LOCAL' ends in .LOCAL" in out
    assert "second domain_controller" in out
    code, _ = run("validate", "--strict", str(spec))
    assert code == EXIT_WARNINGS
    code, _ = run("advise", "--strict", str(spec))
    assert code == EXIT_WARNINGS


def test_advice_by_size(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text(
        "network: {name: x, mode: workgroup, subnets: [10.0.0.0/16]}\n"
        "hosts:\n  - {name: 'pc[1:60]', address: 10.0.0.10+, role: peer}\n"
    )
    code, out = run("advise", str(big))
    assert code == 0 and "a workgroup of 60 computers" in out and "domain" in out
    tiny = tmp_path / "tiny.yml"
    tiny.write_text(
        "network: {name: x, mode: domain, subnets: [10.0.0.0/24]}\n"
        "domain: {realm: AD.X.TEST, netbios: XDOM, admin_password: {env: PW}}\n"
        "hosts:\n  - {name: 'dc[1:2]', address: 10.0.0.2+, role: domain_controller}\n"
        "  - {name: ws1, address: 10.0.0.10, role: workstation}\n"
    )
    code, out = run("advise", str(tiny))
    assert code == 0 and "a workgroup would do" in out and "second" not in out


def test_schema_command_prints_bundled_schema() -> None:
    code, out = run("schema")
    assert code == 0
    doc = json.loads(out)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "host.schema.json" in doc["$defs"]
    # The bundle validates specs on its own.
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("mode", ["workgroup", "domain"])
def test_init_writes_a_valid_commented_starter(tmp_path: Path, mode: str) -> None:
    out_file = tmp_path / "net.yml"
    code, out = run("init", "--mode", mode, "-o", str(out_file))
    assert code == 0, out
    text = out_file.read_text()
    assert text.startswith("# yaml-language-server: $schema=file://")
    assert text.count("#") > 10
    code, out = run("validate", str(out_file))
    assert code == 0, out
    code, _ = run("init", "--mode", mode, "-o", str(out_file))
    assert code != 0  # refuses to overwrite


def test_example_specs_point_editors_at_the_schema() -> None:
    for path in EXAMPLES:
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/network.schema.json", path
        assert (path.parent / "../schemas/network.schema.json").resolve().is_file()
