"""pytest plugin behind `provision verify`: feeds the derived checks to the test
module, connects with testinfra over paramiko with strict host keys, and
records one outcome per check for the caller."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
import testinfra.host
from testinfra.backend.paramiko import ParamikoBackend

from provision.model import HostConnection

_HOSTS: dict[str, testinfra.host.Host] = {}
CONNECT_ATTEMPTS = 4


class StrictParamikoBackend(ParamikoBackend):  # type: ignore[misc]
    """testinfra's paramiko backend, but host keys are checked against known_hosts
    and unknown keys rejected (upstream warns and carries on)."""

    def __init__(self, hostspec: str, known_hosts: str | None, proxy_command: str | None = None, **kwargs: Any) -> None:
        self.known_hosts = known_hosts
        self.proxy_command = proxy_command
        super().__init__(hostspec, **kwargs)

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.known_hosts:
            client.load_host_keys(self.known_hosts)
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        # Verify opens one connection per host, all at once: on a busy controller a host's
        # banner can take long, and sshd drops some of many simultaneous handshakes
        # (MaxStartups). Slow or dropped handshakes are retried; a wrong host key or a
        # refused login never is.
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                client.connect(
                    hostname=self.host.name,
                    port=int(self.host.port) if self.host.port else 22,
                    username=self.host.user,
                    key_filename=self.ssh_identity_file,
                    timeout=self.timeout,
                    banner_timeout=60,
                    auth_timeout=60,
                    allow_agent=self.ssh_identity_file is None,
                    look_for_keys=self.ssh_identity_file is None,
                    sock=paramiko.ProxyCommand(self.proxy_command) if self.proxy_command else None,
                )
                return client
            except (paramiko.BadHostKeyException, paramiko.AuthenticationException):
                raise
            except (paramiko.SSHException, EOFError, OSError):
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
                client.close()
                time.sleep(2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--provision-checks", help="JSON file of derived checks")
    parser.addoption("--provision-results", help="where to write the outcomes")


def _plan(config: pytest.Config) -> dict[str, Any]:
    cached = getattr(config, "_provision_plan", None)
    if cached is None:
        cached = json.loads(Path(config.getoption("--provision-checks")).read_text())
        config._provision_plan = cached  # type: ignore[attr-defined]
    plan: dict[str, Any] = cached
    return plan


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check" not in metafunc.fixturenames:
        return
    checks = _plan(metafunc.config)["checks"]
    metafunc.parametrize(
        "check",
        [pytest.param(c, id=f"{c['host']}::{c['name']}", marks=pytest.mark.xdist_group(c["host"])) for c in checks],
    )


@pytest.fixture
def target(check: dict[str, Any], request: pytest.FixtureRequest) -> testinfra.host.Host:
    """A testinfra host for the check's host, one connection per worker."""
    name = check["host"]
    host = _HOSTS.get(name)
    if host is None:
        plan = _plan(request.config)
        ssh = plan["ssh"]
        conn = plan.get("connections", {}).get(name)
        if conn is not None:  # a Vagrant machine: its forwarded port or ProxyCommand, its own key
            spec = f"{conn['user']}@{conn['address']}:{conn['port']}"
            key, sudo = conn.get("identity_file"), conn["user"] != "root"
            proxy = HostConnection(**conn).proxy_for_paramiko()
        else:
            spec = f"{ssh['user']}@{plan['addresses'][name]}:{ssh['port']}"
            key, sudo, proxy = ssh.get("identity_file"), bool(ssh.get("become")), None
        backend = StrictParamikoBackend(
            spec, ssh.get("known_hosts_file"), ssh_identity_file=key, sudo=sudo, timeout=15, proxy_command=proxy
        )
        host = _HOSTS[name] = testinfra.host.Host(backend)
    return host


class _Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test_id = report.nodeid.split("[", 1)[-1].rstrip("]")
        if report.when == "call" or report.failed:
            if report.passed:
                detail = "".join(s for name, s in report.sections if name.endswith("stdout call")).strip()
                self.outcomes.setdefault(test_id, {"id": test_id, "status": "pass", "detail": detail[:500]})
            elif report.failed:
                message = ""
                crash = getattr(report.longrepr, "reprcrash", None)
                if crash is not None:
                    message = crash.message
                else:
                    message = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"
                if message.startswith("AssertionError: "):
                    message = message[len("AssertionError: ") :]
                self.outcomes[test_id] = {
                    "id": test_id,
                    "status": "fail",
                    "detail": message.split("\nassert ")[0][:1000],
                }


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--provision-results") and not hasattr(config, "workerinput"):
        recorder = _Recorder()
        config._provision_recorder = recorder  # type: ignore[attr-defined]
        config.pluginmanager.register(recorder, "provision-recorder")


def pytest_sessionfinish(session: pytest.Session) -> None:
    recorder = getattr(session.config, "_provision_recorder", None)
    if recorder is not None:
        Path(session.config.getoption("--provision-results")).write_text(json.dumps(list(recorder.outcomes.values())))
