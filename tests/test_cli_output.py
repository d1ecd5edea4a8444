"""What provision prints for pipelines: plain lines without a terminal, and --format json.

A real apply runs through CliRunner (not a terminal) with ansible_connection=local on this
machine (loopback only): progress is plain lines on stderr, with no control character, and
``--format json`` puts exactly one JSON document, with its version, on stdout."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision.cli import cli
from provision.report import JSON_VERSION

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "inventories" / "lab-workgroup.yml"
SECRETS = {"LAB_ALICE_PW": "Al1ce-s3cret-XyZ", "LAB_BOB_PW": "B0b-s3cret-QwE", "LAB_CAROL_PW": "C4rol-s3cret-RtY"}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but tab and newline


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, own_state: Path) -> Path:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NO_COLOR", "1")
    return own_state


def _apply(tmp: Path, *extra: str):
    args = ["apply", str(SPEC), "--skip-preflight", "--no-anchor-lock", "--playbook", "smoke.yml",
            "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"smoke_marker={tmp}/marker-{{{{ inventory_hostname }}}}", *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_without_a_terminal_progress_is_plain_lines(env: Path) -> None:
    res = _apply(env)
    assert res.exit_code == 0, res.output
    assert not CONTROL.search(res.stdout) and not CONTROL.search(res.stderr), repr(res.stderr[-500:])
    assert "PLAY Smoke test (3 hosts)" in res.stderr.splitlines()
    # People's summary on stdout: one row per host.
    assert re.search(r"^peer1\s+\d+\s+1\s+0\s+0", res.stdout, re.M), res.stdout


def test_format_json_is_one_document_with_its_version(env: Path) -> None:
    res = _apply(env, "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)  # nothing else on stdout
    assert (doc["version"], doc["kind"]) == (JSON_VERSION, "apply")
    assert doc["provision"] and doc["ok"] is True
    assert set(doc["hosts"]) == {"peer1", "peer2", "peer3"}
    assert "host  " in res.stderr  # the summary table went to stderr
    for value in SECRETS.values():
        assert value not in res.stdout + res.stderr


def test_a_failed_apply_in_json_still_exits_non_zero(env: Path) -> None:
    res = _apply(env, "--format", "json", "-e", "smoke_fail_hosts=[peer2]")
    doc = json.loads(res.stdout)
    assert res.exit_code == 4 and doc["ok"] is False
    assert [o["host"] for o in doc["outcomes"] if o["status"] == "failed"] == ["peer2"]


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["validate", "--format", "json", str(SPEC)], "validate"),
        (["plan", "--format", "json", str(SPEC)], "plan"),
        (["advise", "--format", "json", str(SPEC)], "advise"),
        (["policy", "test", "--format", "json", str(SPEC), "alice", "peer1"], "policy test"),
    ],
)
def test_every_reporting_command_has_a_versioned_json_format(args: list[str], kind: str) -> None:
    res = CliRunner().invoke(cli, args)
    doc = json.loads(res.stdout)
    assert (doc["version"], doc["kind"]) == (JSON_VERSION, kind), doc


def test_the_commands_that_report_all_take_format_json() -> None:
    """Every command with a report (JSON file or JUnit) also prints it with --format json."""
    def walk(group, path=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*path, name))
            else:
                yield (*path, name), cmd

    for path, cmd in walk(cli):
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if "--report-json" in opts or "--junit" in opts:
            assert "--format" in opts, " ".join(path)
