"""`provision verify`: derive checks from the spec and run them as testinfra tests.

``derive`` is pure (model -> list of CheckSpec). ``run`` writes that list to a
private file and runs the shipped pytest module ``verify_checks/test_checks.py``
(testinfra host fixture over paramiko with strict host keys, pytest-xdist for
bounded concurrency), then reads the per-check outcomes the plugin records.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision import policy, shares
from provision.errors import ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.resources import playbooks_dir
from provision.results import Check, VerifyResult

SHARE_ROLES = (Role.PEER, Role.FILE_SERVER)
MEMBER_ROLES = (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER, Role.WORKSTATION)
# Hosts whose smb.conf serves shares: peers and file servers (the spec's shares), DCs (SYSVOL).
SERVING_ROLES = (Role.PEER, Role.FILE_SERVER, Role.DOMAIN_CONTROLLER)
# Sections the roles write on their own: samba_dc's [sysvol] and [netlogon]; [homes] where the spec asks.
DC_SECTIONS = ("netlogon", "sysvol")


@functools.cache
def postgres_cluster() -> dict[str, str]:
    """The PostgreSQL cluster the database_server role keeps, from the role's own defaults
    (one place says which version and cluster): its unit and its keytab."""
    import yaml

    defaults = yaml.safe_load((playbooks_dir() / "roles/database_server/defaults/main.yml").read_text())
    version, name = str(defaults["database_server_version"]), str(defaults["database_server_cluster"])
    return {"unit": f"postgresql@{version}-{name}.service", "keytab": f"/etc/postgresql/{version}/{name}/krb5.keytab"}


CLOCK_LIMIT = 60.0  # seconds of offset tolerated; Kerberos fails at 300


@dataclass(frozen=True)
class CheckSpec:
    """One check to run on one host: ``kind`` names a function of the check module."""

    host: str
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.host}::{self.name}"


def _members(network: Network, share_users: Sequence[str], share_groups: Sequence[str]) -> list[str]:
    wanted = set(share_users)
    for u in network.users:
        if set(u.groups) & set(share_groups):
            wanted.add(u.name)
    return sorted(wanted)


def _policy_expected(network: Network, host: Host, members: dict[str, set[str]]) -> dict[str, Any]:
    """What each user of the spec may do on ``host``: log in, and which sudo commands."""
    return {
        "expected": {
            u.name: {
                "login": policy.access(network, u.name, host, members).allowed,
                "sudo": sorted({c for _, rule in policy.sudo(network, u.name, host, members) for c in rule.commands}),
            }
            for u in network.users
        }
    }


def join_client(host: Host) -> str:
    """How the host's role joins the domain: ``winbind`` (net ads join) or ``sssd`` (adcli join).

    Only workstations choose (``client``, role ``domain_client`` for sssd); file, mail and
    database servers are always winbind members (role ``domain_member``), whatever
    ``client`` the model carries for them.
    """
    return host.client if host.role is Role.WORKSTATION else "winbind"


def served_sections(host: Host) -> dict[str, list[str]]:
    """The smb.conf sections the host may serve: the spec's shares and printers, and what the roles add."""
    builtin: list[str] = []
    if host.role is Role.DOMAIN_CONTROLLER:
        builtin += DC_SECTIONS
    if host.homes:
        builtin.append("homes")
    return {
        "shares": sorted(s.name for s in host.shares),
        "printers": sorted(p.name for p in host.printers),
        "builtin": sorted(builtin),
    }


def derive(network: Network, hosts: Sequence[Host] | None = None) -> list[CheckSpec]:
    """Every check the spec implies, per host and role."""
    out: list[CheckSpec] = []
    fw = network.policies.firewall
    dcs = [network.host(n) for n in network.domain.dcs] if network.domain else []
    members = policy.group_members(network)
    for h in network.hosts if hosts is None else hosts:
        add = out.append
        add(CheckSpec(h.name, "ssh host key", "host_key"))
        add(CheckSpec(h.name, "hostname", "hostname", {"name": h.name}))
        add(CheckSpec(h.name, "address", "address", {"address": h.address}))
        add(CheckSpec(h.name, "clock", "clock", {"limit": CLOCK_LIMIT}))
        if network.domain is not None:
            # The domain's DNS holds the spec address only: not one of another interface
            # (Vagrant's NAT), which clients elsewhere could not reach.
            fqdn = f"{h.name}.{network.domain.dns_domain}"
            add(CheckSpec(h.name, "dns a record", "a_record", {"fqdn": fqdn, "address": h.address}))
        if fw.enabled:
            add(CheckSpec(h.name, "firewall", "firewall", {"allow_from": list(fw.allow_from)}))
        if h.role in SHARE_ROLES and network.mode is Mode.WORKGROUP:
            add(CheckSpec(h.name, "smbd", "smbd", {"netbios": network.policies.smb.netbios}))
            add(CheckSpec(h.name, "smb1 refused", "smb1_refused"))
            add(CheckSpec(h.name, "guest refused", "guest_refused"))
            users = set()
            for s in h.shares:
                users.update(_members(network, s.users, s.groups))
                users.update(n for n in (*s.read_list, *s.write_list) if not n.startswith("@"))
            if h.homes:
                users.update(u.name for u in network.users)
            for name in sorted(users):
                add(CheckSpec(h.name, f"user {name}", "local_user", {"name": name}))
            if network.policies.access is not None or network.policies.sudo:
                expected = _policy_expected(network, h, members)
                add(CheckSpec(h.name, "login and sudo policy", "login_policy", expected))
        for planned in shares.host_sections(network, h):
            # The roles' own planner says what the share is: section, directory, ACL.
            add(
                CheckSpec(
                    h.name,
                    f"share {planned['name']}",
                    "share_plan",
                    {
                        "name": planned["name"],
                        "path": planned["path"],
                        "options": planned["options"],
                        "owner": planned["owner"],
                        "group": planned["group"],
                        "mode": planned["mode"],
                        "acl": planned["acl_entries"],
                        "nt_acls": planned["nt_acls"],
                    },
                )
            )
        for planned in shares.host_printers(network, h):
            queue = planned["queue"]
            add(
                CheckSpec(
                    h.name,
                    f"printer {planned['name']}",
                    "printer",
                    {"name": planned["name"], "uri": queue["uri"], "options": planned["options"]},
                )
            )
        if network.mode is Mode.DOMAIN:
            # A domain always enforces its policy (or the defaults) on every host, from the directory.
            expected = _policy_expected(network, h, members)
            add(CheckSpec(h.name, "login and sudo policy", "login_policy", expected))
        if h.role in SERVING_ROLES:
            # An smb.conf section the spec does not declare (injected, or made by hand) is drift.
            add(CheckSpec(h.name, "no undeclared shares", "served_shares", served_sections(h)))
        if h.role is Role.DOMAIN_CONTROLLER and network.domain is not None:
            d = network.domain
            add(CheckSpec(h.name, "samba-ad-dc", "samba_dc"))
            add(CheckSpec(h.name, "dns srv records", "srv_records", {"realm": d.dns_domain}))
            add(CheckSpec(h.name, "dbcheck", "dbcheck"))
            if len(dcs) > 1:
                add(CheckSpec(h.name, "replication", "replication"))
            if h.name == d.dcs[0]:
                add(
                    CheckSpec(
                        h.name,
                        "directory",
                        "directory",
                        {
                            "users": sorted(u.name for u in network.users),
                            "groups": {
                                g.name: sorted(u.name for u in network.users if g.name in u.groups)
                                for g in network.groups
                            },
                        },
                    )
                )
                pw = network.policies.password
                add(
                    CheckSpec(
                        h.name,
                        "password policy",
                        "password_policy",
                        {
                            "min_length": pw.min_length,
                            "history": pw.history,
                            "lockout_threshold": pw.lockout_threshold,
                            "complexity": pw.complexity,
                        },
                    )
                )
        if h.role is Role.DOMAIN_CONTROLLER and network.domain is not None and network.domain.mail_in_zone:
            mail_hosts = [f"{m.name}.{network.domain.dns_domain}" for m in network.hosts if m.role is Role.MAIL_SERVER]
            if mail_hosts:
                add(
                    CheckSpec(
                        h.name, "mx record", "mx_record", {"domain": network.domain.mail_domain, "hosts": mail_hosts}
                    )
                )
        if h.role is Role.MAIL_SERVER and network.domain is not None and h.mail is not None:
            fqdn = f"{h.name}.{network.domain.dns_domain}"
            add(CheckSpec(h.name, "postfix and dovecot", "mail_services"))
            ports = [(25, "smtp"), (587, "smtp"), (993, "")] + ([(143, "imap")] if h.mail.imap_starttls else [])
            for port, starttls in ports:
                add(CheckSpec(h.name, f"tls on {port}", "tls_port", {"port": port, "starttls": starttls, "name": fqdn}))
            add(
                CheckSpec(
                    h.name,
                    "mailboxes",
                    "mailboxes",
                    {"users": sorted(u.name for u in network.users), "domain": network.domain.mail_domain},
                )
            )
        if h.role is Role.DATABASE_SERVER and network.domain is not None:
            fqdn = f"{h.name}.{network.domain.dns_domain}"
            cluster = postgres_cluster()
            add(CheckSpec(h.name, "postgresql", "database_services", {"unit": cluster["unit"]}))
            add(CheckSpec(h.name, "tls on 5432", "tls_port", {"port": 5432, "starttls": "postgres", "name": fqdn}))
            add(
                CheckSpec(
                    h.name,
                    "service keys",
                    "service_keys",
                    {"principal": f"postgres/{fqdn}@{network.domain.realm}", "keytab": cluster["keytab"]},
                )
            )
            if h.databases:
                wanted = {
                    d.name: {
                        "owner": d.owner,
                        "connect": sorted(
                            {*d.read_write_users, *d.read_write_groups, *d.read_only_users, *d.read_only_groups}
                        ),
                    }
                    for d in h.databases
                }
                add(CheckSpec(h.name, "databases", "databases", {"wanted": wanted}))
        if h.role in MEMBER_ROLES and network.domain is not None:
            add(CheckSpec(h.name, "domain join", "joined", {"client": join_client(h), "realm": network.domain.realm}))
            if network.users:
                add(CheckSpec(h.name, "domain user", "domain_user", {"name": network.users[0].name}))
            add(CheckSpec(h.name, "resolver", "resolver", {"dcs": [dc.address for dc in dcs]}))
    return out


def default_workers(n_hosts: int, cpus: int | None = None) -> int:
    """pytest-xdist workers for ``n_hosts``: 3 per core, at most 16, never more than hosts.

    Each worker costs about 1.3 s of CPU to start (pytest, testinfra, paramiko) while the
    checks mostly wait on the hosts; measured on 2 cores with 31 hosts: 16 workers 28 s
    (26 s of CPU), 6 workers 18 s (10 s), 2 workers 27 s (5 s).
    """
    return max(1, min(16, n_hosts, 3 * (cpus or os.cpu_count() or 1)))


def run(
    network: Network,
    hosts: Sequence[Host] | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Run the derived checks with pytest + testinfra; one outcome per check."""
    import time

    specs = derive(network, hosts)
    if not specs:
        return VerifyResult([])
    n_hosts = len({s.host for s in specs})
    workers = workers or default_workers(n_hosts)
    tmp = Path(tempfile.mkdtemp(prefix="provision-verify-"))
    plan = tmp / "checks.json"
    results = tmp / "results.json"
    ssh = network.ssh
    plan.write_text(
        json.dumps(
            {
                "ssh": {
                    "user": ssh.user,
                    "port": ssh.port,
                    "identity_file": ssh.identity_file,
                    "known_hosts_file": ssh.known_hosts_file,
                    "become": ssh.become,
                },
                "addresses": {h.name: h.address for h in network.hosts},
                # Hosts reached elsewhere than their spec address (Vagrant): address, port,
                # user, key and ProxyCommand from vagrant ssh-config.
                "connections": {h.name: asdict(h.connection) for h in network.hosts if h.connection is not None},
                "checks": [asdict(s) for s in specs],
            }
        )
    )
    module = Path(__file__).resolve().parent / "verify_checks"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(module),
        "-p",
        "provision.verify_plugin",
        f"--provision-checks={plan}",
        f"--provision-results={results}",
        "-q",
        "--no-header",
        "-rN",
        "-p",
        "no:cacheprovider",
        f"--rootdir={module}",
        "-o",
        "addopts=",
        # The checks' own messages say what is wrong: no assertion rewriting, which parses
        # and rewrites every module of every pytest plugin's distribution on import.
        "--assert=plain",
    ]
    if workers > 1:
        argv += ["-p", "xdist.plugin", "-n", str(workers), "--dist", "loadgroup"]
    start = time.monotonic()
    try:
        # Only the plugins named above: whatever else is installed beside pytest (hypothesis,
        # coverage...) would load into the run and into every worker.
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            if progress is not None and line.strip():
                progress(line.rstrip())
        proc.wait()
        try:
            data = json.loads(results.read_text())
        except (OSError, ValueError):
            raise ProvisionError(f"verify could not run its checks (pytest exit {proc.returncode})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by_id = {r["id"]: r for r in data}
    checks = []
    for s in specs:
        r = by_id.get(s.id)
        if r is None:
            checks.append(Check(s.host, s.name, "fail", "check did not run"))
        else:
            checks.append(Check(s.host, s.name, r["status"], r.get("detail", "")))
    return VerifyResult(checks, time.monotonic() - start)
