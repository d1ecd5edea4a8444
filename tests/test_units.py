"""Pure units: secrets resolution, preflight judgement, reports."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provision import preflight, report, secrets
from provision.errors import SecretError
from provision.model import Host, Mode, Network, Role, SecretRef
from provision.runner import HostStats, RunResult, TaskOutcome


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
        assert json.loads(path.read_text()) == {"x": "y"}
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert not path.exists() and not path.parent.exists()


def test_hidden_env_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P_HIDE", "v")
    with secrets.hidden_env({"P_HIDE", "P_ABSENT"}):
        assert "P_HIDE" not in os.environ
    assert os.environ["P_HIDE"] == "v"


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
