"""library/provision_secret_run, run for real by ansible on this machine (local connection):
exec mode with real programs, samba_tool mode with the controller's Samba when it has one,
and the in-process runner of module_utils/provision_secrets with a stand-in for samba-tool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ansible_modules
import pytest

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
sys.path.insert(0, str(PLAYBOOKS / "module_utils"))

import provision_secrets as psec  # noqa: E402

ANSIBLE = Path(sys.executable).with_name("ansible")
SYSTEM_PYTHON = "/usr/bin/python3"

ADMIN = "Adm1n-Pw-7q"  # distinct enough that no command line or message holds it by chance
TOKEN = "T0ken-Zx-42"
SECRETS = {"admin": ADMIN, "token": TOKEN}


def run_module(
    args: dict[str, Any], *, check: bool = False, python: str = sys.executable, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One run of provision_secret_run (see tests/ansible_modules.py)."""
    return ansible_modules.run_module("provision_secret_run", args, check=check, python=python, env=env)


def no_secret_in(result: dict[str, Any]) -> bool:
    text = json.dumps(result)
    return ADMIN not in text and TOKEN not in text


def python_has_samba(python: str) -> bool:
    if not Path(python).exists():
        return False
    return subprocess.run([python, "-c", "import samba.netcmd.main"], capture_output=True, check=False).returncode == 0


# --------------------------------------------------------------------------- exec mode


def test_exec_secrets_reach_stdin_and_environment_never_argv_and_are_masked(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    log = tmp_path / "logs" / "run.log"
    # The child keeps what it received (unmasked, in files) and echoes it (masked by the module).
    script = (f'read p; printf %s "$p" > {seen}.stdin; printf %s "$TOK" > {seen}.env; '
              f'tr "\\0" " " < /proc/$$/cmdline > {seen}.cmdline; echo "stdin=$p env=$TOK"; echo "to stderr $p" >&2')
    result = run_module({"mode": "exec", "argv": ["sh", "-c", script], "secrets": SECRETS, "stdin_secret": "admin",
                         "env_secrets": {"TOK": "token"}, "log": str(log)})
    assert result["changed"] is True and result["rc"] == 0 and result["attempts"] == 1, result
    assert Path(f"{seen}.stdin").read_text() == ADMIN and Path(f"{seen}.env").read_text() == TOKEN
    assert ADMIN not in Path(f"{seen}.cmdline").read_text() and TOKEN not in Path(f"{seen}.cmdline").read_text()
    assert "stdin=******** env=********" in result["stdout"] and "to stderr ********" in result["stdout"]
    assert no_secret_in(result) and ADMIN not in result["_stdout"]
    assert result["cmd"] == ["sh", "-c", script] and "warnings" not in result, result
    # The log: 0600 in a 0700 directory, masked.
    assert oct(log.stat().st_mode & 0o777) == "0o600" and oct(log.parent.stat().st_mode & 0o777) == "0o700"
    text = log.read_text()
    assert "stdin=******** env=********" in text and ADMIN not in text and TOKEN not in text


def test_exec_refuses_placeholders_secrets_on_the_command_line_and_missing_secrets(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = ["sh", "-c", f"touch {marker}", "sh"]
    placeholder = run_module({"mode": "exec", "argv": [*touch, "{secret:admin}"], "secrets": SECRETS})
    assert placeholder["_failed"] and placeholder["rc"] == 64, placeholder
    assert "placeholders are refused in exec mode" in placeholder["msg"]
    literal = run_module({"mode": "exec", "argv": [*touch, f"--password={ADMIN}"], "secrets": SECRETS})
    assert literal["_failed"] and "command line" in literal["msg"] and no_secret_in(literal), literal
    missing = run_module({"mode": "exec", "argv": touch, "secrets": {"admin": ""}, "stdin_secret": "admin"})
    assert missing["_failed"] and "secret 'admin' was not given" in missing["msg"], missing
    creds = run_module({"mode": "exec", "argv": touch, "secrets": SECRETS, "creds": "admin"})
    assert creds["_failed"] and "samba_tool mode" in creds["msg"], creds
    assert not marker.exists()


def test_exec_retries_only_what_retry_on_names_and_fails_with_the_masked_output(tmp_path: Path) -> None:
    counter, log = tmp_path / "n", tmp_path / "run.log"
    counter.write_text("0")
    # Fails twice ("busy"), then succeeds.
    script = f'n=$(($(cat {counter}) + 1)); echo $n > {counter}; [ $n -ge 3 ] || {{ echo busy; exit 1; }}'
    busy = run_module({"mode": "exec", "argv": ["sh", "-c", script], "retries": 4, "backoff": 0.1,
                       "max_delay": 0.1, "retry_on": "busy|timed out", "log": str(log)})
    assert (busy["rc"], busy["attempts"], busy["changed"]) == (0, 3, True), busy
    assert log.read_text().count("attempt") == 3
    # A wrong password is not worth another attempt; the message says why, masked.
    wrong = run_module({"mode": "exec", "argv": ["sh", "-c", 'read p; echo "denied for $p"; exit 3'],
                        "secrets": SECRETS, "stdin_secret": "admin", "retries": 4, "backoff": 0.1,
                        "retry_on": "busy"})
    assert wrong["_failed"] and (wrong["rc"], wrong["attempts"]) == (3, 1), wrong
    assert "denied for ********" in wrong["msg"] and "failed with status 3" in wrong["msg"] and no_secret_in(wrong)


def test_creates_skips_and_check_mode_runs_nothing(tmp_path: Path) -> None:
    marker, done = tmp_path / "ran", tmp_path / "done.ldb"
    touch = {"mode": "exec", "argv": ["touch", str(marker)], "creates": str(done)}
    # Check mode: nothing runs, a change is reported; no secret is needed to say so.
    dry = run_module({**touch, "secrets": {"admin": ""}, "stdin_secret": "admin"}, check=True)
    assert dry["changed"] is True and not dry["_failed"] and dry["attempts"] == 0, dry
    assert not marker.exists()
    done.write_text("")
    for check in (True, False):
        skipped = run_module({**touch, "creates": str(tmp_path / "*.ldb")}, check=check)
        assert skipped["changed"] is False and skipped["rc"] == 0 and "skipped" in skipped["stdout"], skipped
    assert not marker.exists()
    done.unlink()
    ran = run_module(touch)
    assert ran["changed"] is True and marker.exists(), ran


# --------------------------------------------------------------------------- samba_tool mode


@pytest.mark.skipif(python_has_samba(sys.executable), reason="this Python has Samba's bindings")
def test_samba_tool_mode_without_python3_samba_fails_clearly(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    result = run_module({"mode": "samba_tool", "argv": ["--version"], "log": str(log)})
    assert result["_failed"] and result["attempts"] == 0, result
    assert "python3-samba" in result["msg"] and sys.executable in result["msg"]
    assert "python3-samba" in log.read_text()
    # Refused before Samba is needed: exec-mode options in samba_tool mode.
    wrong = run_module({"mode": "samba_tool", "argv": ["--version"], "secrets": SECRETS, "stdin_secret": "admin"})
    assert wrong["_failed"] and "exec mode" in wrong["msg"], wrong


@pytest.mark.skipif(not python_has_samba(SYSTEM_PYTHON) or shutil.which("samba-tool") is None,
                    reason="no samba-tool with python3-samba on this machine")
def test_samba_tool_runs_in_the_module_with_placeholders_substituted_there(tmp_path: Path) -> None:
    version = subprocess.run(["samba-tool", "--version"], capture_output=True, text=True, check=True).stdout
    result = run_module({"mode": "samba_tool", "argv": ["--version"]}, python=SYSTEM_PYTHON)
    assert (result["rc"], result["changed"], result["stdout"]) == (0, True, version), result
    assert result["cmd"] == ["samba-tool", "--version"]
    # An unknown subcommand made of a secret: samba-tool names it, the module masks it (in the log too,
    # which Ansible's own masking of no_log values does not reach).
    log = tmp_path / "run.log"
    bad = run_module({"mode": "samba_tool", "argv": ["no-such-{secret:admin}"], "secrets": SECRETS,
                      "log": str(log)}, python=SYSTEM_PYTHON)
    assert bad["_failed"] and bad["rc"] == 255 and bad["attempts"] == 1, bad
    assert "no such subcommand: no-such-********" in bad["stdout"] and no_secret_in(bad)
    assert "no such subcommand: no-such-********" in log.read_text() and ADMIN not in log.read_text()


# --------------------------------------------------------------------------- module_utils: the in-process runner


def test_in_process_runner_substitutes_sets_passwd_and_captures_both_descriptors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """samba-tool replaced by a stand-in that writes through Python and straight to the descriptors."""
    seen: dict[str, Any] = {}
    # As in a module (not under pytest's capture), sys.stdout and sys.stderr write to descriptors 1 and 2.
    monkeypatch.setattr(sys, "stdout", open(1, "w", closefd=False))  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", open(2, "w", closefd=False))  # noqa: SIM115

    def fake_samba_tool(args: list[str]) -> int:
        seen["args"], seen["passwd"] = list(args), os.environ.get("PASSWD")
        print("python stdout", args[-1])
        sys.stderr.write("python stderr\n")
        os.write(1, b"fd 1\n")
        os.write(2, b"fd 2 " + os.environ["PASSWD"].encode() + b"\n")
        seen["stdin"] = os.read(0, 10)
        return 7

    monkeypatch.setattr(psec, "samba_tool_entry", lambda: fake_samba_tool)
    monkeypatch.delenv("PASSWD", raising=False)
    run = psec.samba_tool_runner(SECRETS, creds="token")
    done = psec.run_with_secret(run, ["samba-tool", "domain", "provision", "--adminpass={secret:admin}"],
                                secrets=list(SECRETS.values()))
    assert seen == {"args": ["domain", "provision", f"--adminpass={ADMIN}"], "passwd": TOKEN, "stdin": b""}
    assert "PASSWD" not in os.environ  # only for the run
    assert (done.rc, done.attempts) == (7, 1)
    for line in ("python stdout --adminpass=********", "python stderr", "fd 1", "fd 2 ********"):
        assert line in done.output, done.output
    assert ADMIN not in done.output and TOKEN not in done.output
    with pytest.raises(psec.SecretError, match="'missing'"):
        psec.substitute(["{secret:missing}"], SECRETS)
    assert psec.placeholders(["a{secret:x}b{secret:y_2}", "{secret:}"]) == ["x", "y_2"]
    assert [psec.exit_status(c) for c in (None, 0, 2, -1, 300, "usage", True)] == [0, 0, 2, 255, 255, 1, 1]
