"""The operator's view through CliRunner: show, completion, --limit patterns, help examples,
exit codes of the rough edges (missing spec, init), plan's warnings and folded ranges."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from provision.cli import cli
from provision.errors import EXIT_ENVIRONMENT, EXIT_INVALID_SPEC

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ROOT / "inventories" / "lab-domain.yml"
WORKGROUP = ROOT / "inventories" / "lab-workgroup.yml"
CAMPUS = ROOT / "inventories" / "campus.yml"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append(((*prefix, name), cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)], ids=" ".join)
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    code, out, _ = run(*path, "--help")
    assert code == 0
    assert "Examples:" in out and f"provision {' '.join(path)}" in out.split("Examples:")[1], out


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("provision, version ")


def test_missing_spec_is_an_environment_error() -> None:
    for command in ("validate", "plan", "show", "apply", "verify", "preflight", "inventory"):
        args = [command, "/nonexistent/site.yml"] + (["dc1"] if command == "show" else [])
        code, out, err = run(*args)
        assert code == EXIT_ENVIRONMENT, (command, out, err)
        assert "cannot read the spec" in err and "Traceback" not in out + err


def test_init_writes_into_a_new_directory_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "site.yml"
    code, out, _ = run("init", "--mode", "domain", "-o", str(target))
    assert code == 0 and target.exists(), out
    assert run("validate", str(target))[0] in (0, EXIT_INVALID_SPEC)  # a starter with placeholders
    code, _, err = run("init", "--mode", "domain", "-o", str(target))
    assert code == EXIT_ENVIRONMENT and "--force" in err
    assert run("init", "--mode", "workgroup", "-o", str(target), "--force")[0] == 0
    assert "workgroup" in target.read_text()


def test_plan_keeps_validation_warnings(tmp_path: Path) -> None:
    spec = tmp_path / "local.yml"
    spec.write_text(DOMAIN.read_text().replace("realm: AD.LAB.TEST", "realm: AD.LAB.LOCAL"))
    code, out, _ = run("plan", str(spec))
    assert code == 0
    assert "Warnings:" in out and "domain.realm" in out and ".LOCAL" in out
    doc = json.loads(run("plan", "--format", "json", str(spec))[1])
    assert [w["path"] for w in doc["warnings"]] == ["domain.realm"] and doc["warnings"][0]["line"]


def test_plan_folds_each_range_on_its_own() -> None:
    code, out, _ = run("plan", str(CAMPUS))
    assert code == 0
    line = next(x for x in out.splitlines() if x.strip().startswith("workstation"))
    assert "lab0001 … lab1200 (1200 hosts)" in line and "staff001 … staff400 (400 hosts)" in line
    assert "lab0001 … staff400" not in out


def test_plan_json_holds_records_not_display_strings() -> None:
    doc = json.loads(run("plan", "--format", "json", str(CAMPUS))[1])
    workstations = doc["roles"]["workstation"]
    assert isinstance(workstations, list) and len(workstations) == 2400 and workstations[0] == "lab0001"
    assert all(isinstance(step["hosts"], list) for step in doc["rollout"]["steps"])
    assert all(isinstance(g, dict) and "name" in g for g in doc["groups"])


def test_show_domain_file_server() -> None:
    code, out, _ = run("show", str(DOMAIN), "fs1")
    assert code == 0, out
    assert out.startswith("fs1: file_server, winbind member, 10.231.0.25 (domain)")
    assert "\\\\fs1\\common" in out
    common = out.split("\\\\fs1\\common")[1].splitlines()
    assert "read-write: alice" in common[1] and "read-only:  bob" in common[2]  # write_list: [alice]
    assert "445/tcp SMB" in out and "22/tcp SSH" in out and "from 10.231.0.0/24 only" in out
    assert "secret from env:LAB_ADMIN_PW" in out
    assert "provision_user_passwords" not in out  # a file server sets no password


def test_show_json_and_secrets_never_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_ALICE_PW", "Very-Secret-Value-1")
    code, out, _ = run("show", str(WORKGROUP), "peer1", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "show" and doc["role"] == "peer"
    assert {"variable": "provision_user_passwords (users[0].password)", "reference": "env:LAB_ALICE_PW"} in doc[
        "secrets"
    ]
    assert "Very-Secret-Value-1" not in out
    ports = {(p["proto"], p["port"]) for p in doc["firewall"]["ports"]}
    assert ("tcp", "445") in ports and ("udp", "5353") in ports
    assert "smbd.service" in doc["services"]


def test_show_unknown_host_exits_2() -> None:
    code, _, err = run("show", str(DOMAIN), "nope")
    assert code == EXIT_INVALID_SPEC and "'nope' is not a host of the spec" in err


def test_limit_patterns_on_inventory() -> None:
    code, out, _ = run("inventory", str(CAMPUS), "--limit", "lab000*,role:file_server,!lab0001")
    assert code == 0, out
    assert "lab0002" in out and "lab0009" in out and "fs-sci" in out
    assert "lab0001:" not in out and "lab0010" not in out
    code, _, err = run("inventory", str(CAMPUS), "--limit", "nosuch*,lab[0001:0002]")
    assert code == EXIT_INVALID_SPEC and "nosuch*" in err


def test_limit_patterns_reach_preflight_without_contacting_unselected_hosts() -> None:
    # A pattern that selects nothing fails before any host is contacted.
    code, _, err = run("preflight", str(DOMAIN), "--limit", "role:peer")
    assert code == EXIT_INVALID_SPEC and "matches no host" in err


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    code, out, _ = run("completion", shell)
    assert code == 0 and "_PROVISION_COMPLETE" in out


def test_completion_offers_host_names_after_limit() -> None:
    env = {
        "_PROVISION_COMPLETE": "bash_complete",
        "COMP_WORDS": f"provision apply {DOMAIN} --limit dc1,w",
        "COMP_CWORD": "4",
    }
    result = CliRunner().invoke(cli, [], env=env, prog_name="provision", complete_var="_PROVISION_COMPLETE")
    lines = result.output.split()
    assert "plain,dc1,ws1" in lines and "plain,dc1,ws2" in lines, result.output
    env["COMP_WORDS"] = f"provision verify {DOMAIN} --limit role:m"
    result = CliRunner().invoke(cli, [], env=env, prog_name="provision", complete_var="_PROVISION_COMPLETE")
    assert result.output.split() == ["plain,role:mail_server"]


def test_completion_is_quiet_without_a_readable_spec() -> None:
    env = {"_PROVISION_COMPLETE": "bash_complete", "COMP_WORDS": "provision apply /nope.yml --limit w",
           "COMP_CWORD": "4"}
    result = CliRunner().invoke(cli, [], env=env, prog_name="provision", complete_var="_PROVISION_COMPLETE")
    assert result.output.strip() == "" and "Traceback" not in result.output


def test_no_command_output_has_control_characters() -> None:
    for args in (["plan", str(DOMAIN)], ["show", str(DOMAIN), "ws1"], ["plan", str(CAMPUS)]):
        out = run(*args)[1]
        assert not any(ord(c) < 32 and c not in "\n" for c in out), args
    assert os.linesep == "\n"


WG_SECRETS = {"LAB_ALICE_PW": "Al1ce-s3cret-XyZ", "LAB_BOB_PW": "B0b-s3cret-QwE", "LAB_CAROL_PW": "C4rol-s3cret-RtY"}


def test_apply_names_every_missing_secret_before_contacting_anyone(own_state: Path) -> None:
    env = {k: "" for k in WG_SECRETS} | {"LAB_BOB_PW": WG_SECRETS["LAB_BOB_PW"]}
    code, _, err = run("apply", str(WORKGROUP), env=env)
    assert code == EXIT_INVALID_SPEC
    assert "users[0].password" in err and "users[2].password" in err and "users[1]" not in err
    assert "preflight" not in err  # no host was contacted


def test_plan_against_the_last_applied_model(own_state: Path, smaller_workgroup: Path) -> None:
    from provision import spec, state

    code, out, _ = run("plan", str(WORKGROUP))
    assert code == 0
    assert "No apply of 'labwg' is recorded" in out and "to remove" in out
    state.record(spec.load_network(WORKGROUP))
    doc = json.loads(run("plan", str(WORKGROUP), "--format", "json")[1])
    assert doc["changes"] == [] and doc["summary"] == {"add": 0, "change": 0, "remove": 0}
    assert doc["last_applied"]
    smaller = smaller_workgroup
    doc = json.loads(run("plan", str(smaller), "--format", "json")[1])
    assert [(c["action"], c["kind"], c["name"]) for c in doc["changes"]] == [
        ("remove", "user", "bob"),
        ("remove", "share", "\\\\peer1\\handbook"),
    ]
    out = run("plan", str(smaller))[1]
    assert "REMOVE user bob" in out and "Plan: 0 to add, 0 to change, 2 to remove." in out


def test_apply_refuses_removals_without_yes_and_without_a_terminal(own_state: Path, smaller_workgroup: Path) -> None:
    from provision import spec, state

    state.record(spec.load_network(WORKGROUP))
    code, out, err = run("apply", str(smaller_workgroup), env=WG_SECRETS)
    assert code == 5, out + err
    assert "REMOVE share \\\\peer1\\handbook" in out and "--yes" in err and "nothing was changed" in err
    assert "preflight" not in out + err
    # A dry run never asks: it changes nothing.
    code, out, err = run("apply", str(smaller_workgroup), "--check", "--skip-preflight",
                         "--no-anchor-lock", "--playbook", "smoke.yml", "-e", "ansible_connection=local",
                         "-e", f"ansible_python_interpreter={__import__('sys').executable}", env=WG_SECRETS)
    assert code == 0, out + err


def test_a_second_run_is_refused_naming_the_holder(own_state: Path) -> None:
    import sys

    from provision import lock, spec

    net = spec.load_network(WORKGROUP)
    args = ["apply", str(WORKGROUP), "--skip-preflight", "--no-anchor-lock", "--playbook", "smoke.yml",
            "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"smoke_marker={own_state}/marker-{{{{ inventory_hostname }}}}"]
    with lock.network_lock(net, "apply --limit peer1", remote=False):
        code, out, err = run(*args, env=WG_SECRETS)
        assert code == 3, out + err
        assert f"pid {os.getpid()}" in err and "apply --limit peer1" in err and "locked on this controller" in err
    code, out, err = run(*args, env=WG_SECRETS)
    assert code == 0, out + err


def test_doctor_through_the_cli(own_state: Path) -> None:
    code, out, err = run("doctor", str(WORKGROUP), "--format", "json", env={k: "" for k in WG_SECRETS})
    assert code == EXIT_INVALID_SPEC, err
    doc = json.loads(out)
    failed = {c["name"] for c in doc["checks"] if c["status"] == "fail"}
    assert {"secret users[0].password.env", "secret users[1].password.env", "secret users[2].password.env"} <= failed
    code, out, err = run("doctor", str(WORKGROUP), env=WG_SECRETS)
    assert "secrets" in out and "ansible-core" in out


def test_wait_lock_waits_for_the_other_run(own_state: Path) -> None:
    import sys
    import threading
    import time

    from provision import lock, spec

    net = spec.load_network(WORKGROUP)
    args = ["apply", str(WORKGROUP), "--skip-preflight", "--no-anchor-lock", "--playbook", "smoke.yml",
            "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"smoke_marker={own_state}/marker-{{{{ inventory_hostname }}}}"]
    taken, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with lock.network_lock(net, "drift", remote=False):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=other_run)
    holder.start()
    assert taken.wait(10)
    threading.Timer(2.0, release.set).start()
    start = time.monotonic()
    code, out, err = run(*args, "--wait-lock", "60", env=WG_SECRETS)
    holder.join()
    assert code == 0, out + err
    assert time.monotonic() - start >= 2.0  # it waited for the other run, then ran


def test_backup_of_hosts_without_data_is_refused_before_any_contact(own_state: Path) -> None:
    code, out, err = run("backup", str(DOMAIN), "--limit", "role:workstation")  # the anchor is not contacted
    assert code == 4, out + err
    assert "workstations need no backup" in err
