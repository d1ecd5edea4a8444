"""Model -> Ansible inventory (pure: no I/O except ``write_inventory``).

Network-wide data goes to ``all`` vars and role facts to the role group's vars,
so a 10,000-host fleet repeats nothing per host but its address. The variable
names are the contract with the roles, documented in playbooks/README.md.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from provision import policy
from provision.model import Group, Host, Mode, Network, Role, Share, TlsMaterial

# Ansible treats inventory and extra-vars strings as templates: a spec value such as
# "{{ lookup('pipe', 'id') }}" would run on the controller. Everything the tool hands
# Ansible is written as YAML whose every string carries ``!unsafe`` (Ansible's own tag
# for data that is never templated). Mapping keys stay plain: they are variable, host,
# group and user names, which validation limits to [a-z0-9_.-].
UNSAFE_TAG = "!unsafe"

MODE_GROUPS = {Mode.WORKGROUP: "workgroup", Mode.DOMAIN: "domain"}

# The play of each host role, a file of playbooks/: the domain members' roles share one
# play file, imported once per rollout stage (site.yml imports them in the default order).
PLAYS = {
    Role.DOMAIN_CONTROLLER: "domain_controllers.yml",
    Role.FILE_SERVER: "domain_members.yml",
    Role.MAIL_SERVER: "domain_members.yml",
    Role.DATABASE_SERVER: "domain_members.yml",
    Role.WORKSTATION: "domain_members.yml",
    Role.PEER: "peers.yml",
}
# Names of the stage plays of domain_members.yml, by role.
STAGE_NAMES = {
    Role.FILE_SERVER: "file servers",
    Role.MAIL_SERVER: "mail servers",
    Role.DATABASE_SERVER: "database servers",
    Role.WORKSTATION: "workstations",
}


def _share(s: Share) -> dict[str, Any]:
    return {
        "name": s.name,
        "path": s.path,
        "comment": s.comment,
        "users": list(s.users),
        "groups": list(s.groups),
        "read_only": s.read_only,
        "read_list": list(s.read_list),
        "write_list": list(s.write_list),
        "guest_ok": s.guest_ok,
        "browseable": s.browseable,
        "owner": s.owner,
        "group": s.group,
        "mode": s.mode,
        "streams": s.streams,
        "macos": s.macos,
    }


def host_vars(host: Host) -> dict[str, Any]:
    """Only what differs per host; the rest is group data."""
    out: dict[str, Any] = {"ansible_host": host.address}
    if host.shares:
        out["provision_shares"] = [_share(s) for s in host.shares]
    if host.printers:
        out["provision_printers"] = [
            {
                "name": p.name,
                "uri": p.uri,
                "description": p.description,
                "users": list(p.users),
                "groups": list(p.groups),
            }
            for p in host.printers
        ]
    if host.homes:
        out["provision_homes"] = True
    if host.role is Role.WORKSTATION and host.client != "sssd":
        out["provision_client"] = host.client
    if host.databases:
        out["provision_databases"] = [
            {
                "name": d.name,
                "owner": d.owner,
                "read_write": {"users": list(d.read_write_users), "groups": list(d.read_write_groups)},
                "read_only": {"users": list(d.read_only_users), "groups": list(d.read_only_groups)},
            }
            for d in host.databases
        ]
    if host.mail is not None:
        out["provision_mail"] = {
            "imap_starttls": host.mail.imap_starttls,
            "max_message_mb": host.mail.max_message_mb,
        }
    return out


def _list_address(network: Network, group: Group) -> str:
    return f"{group.name}@{network.domain.mail_domain}" if group.mail and network.domain is not None else ""


def known_hosts_file(network: Network) -> str:
    """The known_hosts file host keys are checked against: the spec's, or the user's."""
    return network.ssh.known_hosts_file or str(Path("~/.ssh/known_hosts").expanduser())


def ssh_common_args(known_hosts: str, proxy_command: str | None = None) -> str:
    """ansible_ssh_common_args: host keys are always checked, never StrictHostKeyChecking=no."""
    args = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    if proxy_command:
        args += ["-o", f"ProxyCommand={proxy_command}"]
    return shlex.join(args)


def connection_vars(network: Network) -> dict[str, Any]:
    ssh = network.ssh
    out: dict[str, Any] = {"ansible_user": ssh.user, "ansible_port": ssh.port}
    if ssh.identity_file:
        out["ansible_ssh_private_key_file"] = ssh.identity_file
    out["ansible_ssh_common_args"] = ssh_common_args(known_hosts_file(network))
    if ssh.become:
        out["ansible_become"] = True
    return out


def host_connection_vars(network: Network, host: Host) -> dict[str, Any]:
    """Where a host with its own connection (a Vagrant machine) is reached; its spec address stays
    ``provision_address``, which the roles use for DNS, /etc/hosts and Samba's interfaces."""
    conn = host.connection
    if conn is None:
        return {}
    out: dict[str, Any] = {
        "ansible_host": conn.address,
        "ansible_port": conn.port,
        "ansible_user": conn.user,
        "provision_address": host.address,
    }
    if conn.identity_file:
        out["ansible_ssh_private_key_file"] = conn.identity_file
    out["ansible_ssh_common_args"] = ssh_common_args(known_hosts_file(network), conn.proxy_command)
    if conn.user != "root":
        out["ansible_become"] = True
    return out


def static_hosts(network: Network) -> list[dict[str, str]]:
    """Names every host should resolve without DNS: all peers, or the DCs of a domain."""
    wanted = Role.PEER if network.mode is Mode.WORKGROUP else Role.DOMAIN_CONTROLLER
    return [{"name": h.name, "address": h.address} for h in network.hosts if h.role is wanted]


def global_vars(network: Network) -> dict[str, Any]:
    """Group vars of ``all``: network-wide facts, policies and the directory (no secrets)."""
    p = network.policies
    out: dict[str, Any] = {
        "provision_network_name": network.name,
        "provision_mode": network.mode.value,
        "provision_subnets": list(network.subnets),
        "provision_workgroup": network.workgroup,
        "provision_dns_forwarders": list(network.dns_forwarders),
        "provision_ntp_servers": list(network.ntp_servers),
        "provision_firewall_enabled": p.firewall.enabled,
        "provision_firewall_allow_from": list(p.firewall.allow_from),
        "provision_unattended_upgrades": p.unattended_upgrades,
        # Login and sudo policy (peers and winbind members enforce it with their own files,
        # sssd members read the directory's copy); null: the defaults.
        "provision_policy_access": None if p.access is None else [asdict(r) for r in p.access],
        "provision_policy_sudo": [asdict(r) for r in p.sudo or ()],
        "provision_smb_min_protocol": p.smb.min_protocol,
        "provision_smb_signing": "mandatory" if network.mode is Mode.DOMAIN else p.smb.signing,
        "provision_smb_encryption": p.smb.encryption,
        "provision_smb_netbios": p.smb.netbios,
        "provision_password_policy": {
            "min_length": p.password.min_length,
            "complexity": p.password.complexity,
            "history": p.password.history,
            "max_age_days": p.password.max_age_days,
            "min_age_days": p.password.min_age_days,
            "lockout_threshold": p.password.lockout_threshold,
            "lockout_duration_minutes": p.password.lockout_duration_minutes,
            "lockout_window_minutes": p.password.lockout_window_minutes,
        },
        "provision_users": [
            {"name": u.name, "full_name": u.full_name, "groups": list(u.groups), "shell": u.shell}
            for u in network.users
        ],
        # A distribution list carries its address (the directory's mail attribute); others "".
        "provision_groups": [
            {"name": g.name, "description": g.description, "mail": _list_address(network, g)} for g in network.groups
        ],
        "provision_static_hosts": static_hosts(network),
        "provision_rollout_batch": network.rollout.batch,
        "provision_rollout_max_fail_percent": network.rollout.max_fail_percent,
    }
    if network.domain is not None:
        d = network.domain
        out |= {
            "provision_domain_realm": d.realm,
            "provision_domain_netbios": d.netbios,
            "provision_domain_dns_domain": d.dns_domain,
            "provision_domain_dcs": [{"name": n, "address": network.host(n).address} for n in d.dcs],
            "provision_mail_domain": d.mail_domain,
            "provision_mail_in_zone": d.mail_in_zone,
            # Every mail server of the spec (not only the run's targets): the MX records.
            "provision_mail_servers": [
                {"name": h.name, "address": h.address} for h in network.hosts if h.role is Role.MAIL_SERVER
            ],
        }
    out |= connection_vars(network)
    return out


def build_inventory(
    network: Network, hosts: Iterable[Host] | None = None, tls: TlsMaterial | None = None
) -> dict[str, Any]:
    """The inventory as a dict, ready for ansible-runner or YAML.

    Groups: one per role, under one per mode. ``hosts`` limits the inventory to
    the targets so a --limit run never pays for the whole fleet. ``tls`` adds the
    public half of the run's certificates (the keys go in the secrets file).
    """
    by_role: dict[Role, dict[str, Any]] = {}
    for h in network.hosts if hosts is None else hosts:
        hv = by_role.setdefault(h.role, {})[h.name] = host_vars(h) | host_connection_vars(network, h)
        if tls is not None and h.name in tls.chains:
            hv["provision_tls_certificate"] = tls.chains[h.name]
    roles = {
        role.value: {"hosts": members, "vars": {"provision_role": role.value}}
        for role, members in sorted(by_role.items(), key=lambda kv: list(Role).index(kv[0]))
    }
    if Role.DOMAIN_CONTROLLER.value in roles:
        # The login groups and sudo rules the first DC keeps in the directory, for every member
        # of the spec (not only the run's targets): DC vars, no member host carries them.
        roles[Role.DOMAIN_CONTROLLER.value]["vars"]["provision_policy_directory"] = policy.directory(network)
    variables = global_vars(network)
    if tls is not None:
        variables["provision_tls_ca_certificates"] = list(tls.ca_certificates)
    return {
        "all": {
            "vars": variables,
            "children": {MODE_GROUPS[network.mode]: {"children": roles}},
        }
    }


def rollout_playbook(network: Network, playbooks: Path) -> list[dict[str, Any]]:
    """site.yml in the spec's ``rollout.order``: one import per stage.

    Roles in the order with no hosts cost nothing (their group is empty); the rules
    make sure every role that has hosts is in the order, domain controllers first.
    A stage of domain members imports domain_members.yml with the stage's groups as
    its hosts (role names from the Role enum, never spec text).
    """
    steps: list[dict[str, Any]] = []
    for i, stage in enumerate(network.rollout.order, 1):
        step: dict[str, Any] = {
            "name": f"Rollout step {i}: {', '.join(r.value for r in stage)}",
            "ansible.builtin.import_playbook": str(playbooks / PLAYS[stage[0]]),
        }
        if stage[0] in STAGE_NAMES:
            names = [STAGE_NAMES[r] for r in stage]
            title = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            step["vars"] = {
                "provision_stage": ":".join(r.value for r in stage),
                "provision_stage_name": title.capitalize(),
            }
        steps.append(step)
    return steps


def ansible_settings(network: Network, forks: int, fact_cache: Path) -> dict[str, str]:
    """ANSIBLE_* settings the engine runs with (also written as ansible.cfg by ``write_inventory``)."""
    return {
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=300s -o ServerAliveInterval=30",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(fact_cache),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_TIMEOUT": "20",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        # Debian 12's python3: a fixed path spares every host a discovery round trip (and
        # its warning event) on every run.
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
    }


def default_forks() -> int:
    """Forks from CPUs and memory: ~1 per 64 MiB free, 25 per core, at most 100."""
    cpus = os.cpu_count() or 1
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - not Linux
        pages = 4 << 30
    return max(5, min(100, cpus * 25, pages // (64 << 20)))


class _UnsafeDumper(yaml.SafeDumper):
    """SafeDumper whose string values are tagged ``!unsafe`` (keys are left plain)."""

    def represent_mapping(self, tag: str, mapping: Any, flow_style: Any = None) -> yaml.MappingNode:
        node = super().represent_mapping(tag, mapping, flow_style)
        for key_node, _value in node.value:
            if key_node.tag == UNSAFE_TAG:
                key_node.tag = "tag:yaml.org,2002:str"
        return node


def _represent_unsafe(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(UNSAFE_TAG, data)


_UnsafeDumper.add_representer(str, _represent_unsafe)


def dump_unsafe(data: Any) -> str:
    """YAML for Ansible in which no string value can ever be evaluated as a template."""
    return yaml.dump(data, Dumper=_UnsafeDumper, sort_keys=False, default_flow_style=False, allow_unicode=False)


def write_unsafe(path: Path, data: Any, mode: int = 0o644) -> Path:
    """Write ``dump_unsafe(data)`` to ``path`` (created with ``mode``, never world-writable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("---\n" + dump_unsafe(data))
    return path


def write_inventory(
    network: Network, out_dir: Path, hosts: Iterable[Host] | None = None, tls: TlsMaterial | None = None
) -> list[Path]:
    """Write a standard inventory directory usable by plain ansible-playbook."""
    inv = build_inventory(network, hosts, tls)
    all_vars = inv["all"].pop("vars")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "group_vars").mkdir(exist_ok=True)
    written = []
    for path, data in (
        (out_dir / "hosts.yml", inv),
        (out_dir / "group_vars" / "all.yml", all_vars),
    ):
        # The spec's file name is data too: JSON-quoted, it cannot end the comment line.
        origin = json.dumps(network.source or "a spec", ensure_ascii=True)
        path.write_text(
            "---\n# Generated by provision from "
            + origin
            + "; every string is !unsafe (never templated by Ansible)\n"
            + dump_unsafe(data)
        )
        written.append(path)
    cfg = out_dir / "ansible.cfg"
    settings = ansible_settings(network, default_forks(), Path("~/.cache/provision/facts") / network.name)
    cfg.write_text(_ansible_cfg(settings))
    written.append(cfg)
    return written


def _ansible_cfg(settings: dict[str, str]) -> str:
    defaults = {
        "forks": settings["ANSIBLE_FORKS"],
        "gathering": settings["ANSIBLE_GATHERING"],
        "fact_caching": settings["ANSIBLE_CACHE_PLUGIN"],
        "fact_caching_connection": settings["ANSIBLE_CACHE_PLUGIN_CONNECTION"],
        "fact_caching_timeout": settings["ANSIBLE_CACHE_PLUGIN_TIMEOUT"],
        "host_key_checking": settings["ANSIBLE_HOST_KEY_CHECKING"],
        "retry_files_enabled": settings["ANSIBLE_RETRY_FILES_ENABLED"],
        "timeout": settings["ANSIBLE_TIMEOUT"],
        "interpreter_python": settings["ANSIBLE_PYTHON_INTERPRETER"],
        # Ansible polls for finished tasks every 1 ms by default, which keeps a core busy
        # while hosts work; an ini-only setting (see playbooks/ansible.cfg).
        "internal_poll_interval": "0.01",
        "inventory": "hosts.yml",
    }
    lines = ["# Generated by provision: use with ANSIBLE_CONFIG=<this file>", "[defaults]"]
    lines += [f"{k} = {v}" for k, v in defaults.items()]
    lines += [
        "",
        "[ssh_connection]",
        f"pipelining = {settings['ANSIBLE_PIPELINING']}",
        f"ssh_args = {settings['ANSIBLE_SSH_ARGS']}",
        "",
    ]
    return "\n".join(lines)
