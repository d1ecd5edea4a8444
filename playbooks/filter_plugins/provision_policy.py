"""The spec's login and sudo policy as a host's own files (pam_access and sudoers), decided on
the controller: the rules that cover the host, in the spec's order.

The names and commands were checked by provision (accounts of the spec, commands by absolute
path without sudoers syntax characters); these filters only arrange them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# How sudoers names the domain's built-in administrators' group (policies spell it domain-admins).
DOMAIN_ADMINS = "Domain\\ Admins"


def _covers(rule: Mapping[str, Any], host: str, role: str) -> bool:
    return "all" in rule.get("roles", []) or role in rule.get("roles", []) or host in rule.get("hosts", [])


def access_lines(
    rules: Iterable[Mapping[str, Any]] | None, host: str, role: str, connecting: str = "root"
) -> list[str]:
    """pam_access lines of a workgroup peer (first match wins, as in the spec): root and the
    account the controller connects as first, whatever the policy says (the controller's key
    is the break-glass path); cron jobs are not logins; then the rules that cover this host;
    then everyone else is refused. (A domain's hosts ask the directory instead.)"""
    lines = ["+:root:ALL"] + ([f"+:{connecting}:ALL"] if connecting != "root" else []) + ["+:ALL:cron crond"]
    for rule in rules or ():
        if not _covers(rule, host, role):
            continue
        who = ["ALL"] if rule.get("everyone") else [*rule.get("users", []), *(f"({g})" for g in rule.get("groups", []))]
        lines.append(f"{'+' if rule.get('allow', True) else '-'}:{' '.join(who)}:ALL")
    lines.append("-:ALL:ALL")
    return lines


def sudoers_lines(rules: Iterable[Mapping[str, Any]], host: str, role: str) -> list[str]:
    """sudoers lines of the rules that cover this host (they add up): as root, the listed
    commands or ALL, with NOPASSWD where the rule says so."""
    lines = []
    for rule in rules:
        if not _covers(rule, host, role):
            continue
        commands = ", ".join(rule.get("commands", ["ALL"]))
        tag = "NOPASSWD: " if rule.get("nopasswd") else ""
        groups = [f"%{DOMAIN_ADMINS}" if g == "domain-admins" else f"%{g}" for g in rule.get("groups", [])]
        for who in [*rule.get("users", []), *groups]:
            lines.append(f"{who} ALL=(root) {tag}{commands}")
    return lines


def systemd_command(argv: Iterable[str]) -> str:
    """A command line for a unit's ExecStart=: each word in double quotes (a DN has spaces), with
    backslashes and quotes escaped and % doubled, so systemd reads back exactly ``argv``."""
    words = []
    for arg in argv:
        quoted = str(arg).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
        words.append(f'"{quoted}"')
    return " ".join(words)


def units(names: Iterable[str], **settings: Any) -> list[dict[str, Any]]:
    """provision_services entries: each unit of ``names`` with the same ``settings`` (all of a
    role's stand-ins masked and stopped, say), in one step instead of a loop of tasks."""
    return [{"name": str(name), **settings} for name in names]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "provision_access_lines": access_lines,
            "provision_sudoers_lines": sudoers_lines,
            "provision_systemd_command": systemd_command,
            "provision_units": units,
        }
