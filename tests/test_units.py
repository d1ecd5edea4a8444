"""Pure units: secrets resolution, preflight judgement, reports."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provision import preflight, report, secrets
from provision.errors import SecretError
from provision.model import Host, Mode, Network, Role, SecretRef
from provision.results import HostStats, RunResult, TaskOutcome


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P_TEST", "s3cret")
    assert secrets.resolve(SecretRef(env="P_TEST")) == "s3cret"
    (tmp_path / "pw").write_text("from-file\nsecond line ignored\n")
    assert secrets.resolve(SecretRef(file="pw"), str(tmp_path)) == "from-file"
    with pytest.raises(SecretError, match="P_MISSING is not set"):
        secrets.resolve(SecretRef(env="P_MISSING"))
    with pytest.raises(SecretError, match="cannot read secret file"):
        secrets.resolve(SecretRef(file="nope"), str(tmp_path))
    (tmp_path / "empty").write_text("")
    with pytest.raises(SecretError, match="is empty"):
        secrets.resolve(SecretRef(file="empty"), str(tmp_path))


def test_secrets_file_is_private_and_removed() -> None:
    with secrets.secrets_file({"x": "y"}) as path:
        assert path.read_text() == "---\nx: !unsafe 'y'\n"
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert not path.exists() and not path.parent.exists()


def test_allow_listed_env_narrows_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P_HIDE", "v")
    monkeypatch.setenv("HOME", "/root")
    with secrets.allow_listed_env():
        assert "P_HIDE" not in os.environ and "PATH" not in os.environ
        assert os.environ["HOME"] == "/root"
        assert set(os.environ) <= set(secrets.ENV_ALLOW)
    assert os.environ["P_HIDE"] == "v" and "PATH" in os.environ


def _judge(facts: dict[str, list[str]], role: Role = Role.PEER, now: float = 1000.0) -> dict[str, str]:
    net = Network(name="n", mode=Mode.WORKGROUP,
                  subnets=("10.0.0.0/24",), hosts=())
    rep = preflight.HostReport("h", "10.0.0.5")
    preflight._judge(rep, Host("h", "10.0.0.5", role), net, facts, now)
    return {c.name: c.status for c in rep.checks}


def test_preflight_judgement() -> None:
    good = {"sudo": ["root"], "python": ["/usr/bin/python3"], "os": ["debian 12"], "clock": ["1000.5"]}
    assert _judge(good) == {"sudo": "pass", "python3": "pass", "os": "pass", "clock": "pass"}
    assert _judge({**good, "clock": ["1090"]})["clock"] == "warn"
    assert _judge({**good, "clock": ["1400"]})["clock"] == "fail"
    assert _judge({**good, "os": ["centos 7"]})["os"] == "fail"
    assert _judge({**good, "sudo": ["no"]})["sudo"] == "fail"
    assert _judge({**good, "python": [""]})["python3"] == "fail"
    dc = _judge({**good, "port53": ['udp UNCONN 0 0 0.0.0.0:53 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))']},
                Role.DOMAIN_CONTROLLER)
    assert dc["port 53"] == "fail"
    dc = _judge({**good, "port53": ['udp UNCONN 0 0 0.0.0.0:53 0.0.0.0:* users:(("samba",pid=9,fd=4))']},
                Role.DOMAIN_CONTROLLER)
    assert dc["port 53"] == "pass"
    dc = _judge({**good, "port53": ['udp UNCONN 0 0 0.0.0.0:53 0.0.0.0:* users:(("dns[master]",pid=9,fd=4))']},
                Role.DOMAIN_CONTROLLER)
    assert dc["port 53"] == "pass"


def test_junit_names_failed_hosts_and_changes(tmp_path: Path) -> None:
    result = RunResult(status="failed", rc=2, hosts={"a": HostStats(ok=3, changed=1), "b": HostStats(failed=1),
                                                     "c": HostStats(ok=3)})
    result.outcomes = [TaskOutcome("a", "P", "Write config", "changed", diff="+x"),
                       TaskOutcome("b", "P", "Install", "failed", "no package")]
    path = tmp_path / "j.xml"
    report.write_junit(path, report.run_junit(result))
    root = ET.parse(path).getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {("a", "P: Write config"), ("b", "P: Install"), ("c", "converged")}
    assert cases[("b", "P: Install")].find("failure").get("message") == "no package"
    assert root.find("testsuite").get("failures") == "1"
    text = report.run_summary(result)
    assert "b: [Install] no package" in text and "FAILED" in text


def test_each_play_bar_counts_the_play_s_own_hosts() -> None:
    from provision.results import Progress, RunResult
    from provision.runner import Events

    seen: list[Progress] = []
    events = Events(RunResult(), {"all": 5, "domain_controller": 2, "workstation": 3}, seen.append)
    events({"event": "playbook_on_play_start", "event_data": {"name": "DCs", "play_pattern": "domain_controller"}})
    events({"event": "runner_on_ok", "event_data": {"host": "dc1", "task": "t", "res": {}}})
    assert (seen[-1].play, seen[-1].hosts_total, seen[-1].ok) == ("DCs", 2, 1)
    events({"event": "playbook_on_play_start", "event_data": {"name": "WS", "play_pattern": "workstation"}})
    assert seen[-1].hosts_total == 3 and seen[-1].ok == 0
    events({"event": "playbook_on_play_start", "event_data": {"name": "Smoke", "play_pattern": "all"}})
    assert seen[-1].hosts_total == 5
    # A stage's play names several role groups: its bar counts them all.
    stage = {"name": "S", "play_pattern": "domain_controller:workstation"}
    events({"event": "playbook_on_play_start", "event_data": stage})
    assert seen[-1].hosts_total == 2 + 3 and seen[-1].ok == 0
    events({"event": "playbook_on_play_start", "event_data": {"name": "?", "play_pattern": "workstation:nosuchgroup"}})
    assert seen[-1].hosts_total == 5


def test_steps_that_need_a_secret_are_unknown_in_a_dry_run_without_secrets() -> None:
    from provision import report
    from provision.results import RunResult
    from provision.runner import Events

    result = RunResult(check=True)
    events = Events(result, {"all": 1}, None)
    events({"event": "runner_on_ok", "event_data": {
        "host": "dc1", "task": "Unknown without secrets: users, groups", "res": {"msg": "needs the admin password"}}})
    assert [(o.host, o.status) for o in result.unknowns()] == [("dc1", "unknown")]
    assert "Unknown without secrets (--no-secrets):\n  dc1: [users, groups] needs the admin password" in (
        report.run_summary(result))


def test_no_secrets_needs_check() -> None:
    from click.testing import CliRunner

    from provision.cli import cli

    root = Path(__file__).resolve().parent.parent
    res = CliRunner().invoke(cli, ["apply", str(root / "inventories" / "lab-workgroup.yml"), "--no-secrets"])
    assert res.exit_code == 2 and "--no-secrets is for dry runs: add --check" in res.output


def test_secret_files_that_are_not_regular_small_private_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="lies under /proc"):
        secrets.resolve(SecretRef(file="/proc/self/environ"))
    link = tmp_path / "innocent"
    link.symlink_to("/proc/self/environ")
    with pytest.raises(SecretError, match="lies under /proc"):
        secrets.resolve(SecretRef(file="innocent"), str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SecretError, match="not a regular file"):  # and it never blocks on open
        secrets.resolve(SecretRef(file="fifo"), str(tmp_path))
    big = tmp_path / "big"
    big.write_text("x" * (secrets.SECRET_FILE_MAX + 1))
    with pytest.raises(SecretError, match="at most 4096 bytes"):
        secrets.resolve(SecretRef(file="big"), str(tmp_path))
    loose = tmp_path / "loose"
    loose.write_text("pw-1\n")
    loose.chmod(0o644)
    assert secrets.secret_file_problem(loose) == ("warning", f"{loose} is readable by others (mode 0644); chmod 600 it")
    assert secrets.resolve(SecretRef(file="loose"), str(tmp_path)) == "pw-1"  # a warning, not a refusal
