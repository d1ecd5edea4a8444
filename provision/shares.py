"""What each share of a host should look like, from the one share planner the roles use.

The roles plan smb.conf sections, directory modes and ACLs with the playbooks'
filter plugin (``playbooks/filter_plugins/samba_shares.py``); ``verify`` asks the
same planner, fed the same inventory data, so the check and the apply can never
disagree on what the spec means.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType
from typing import Any

from provision.inventory import global_vars, host_vars
from provision.model import Host, Mode, Network, Role
from provision.resources import playbooks_dir

# Defaults the roles give a share the inventory leaves them out (samba_workgroup's
# samba_workgroup_share_defaults; domain_member plans with none).
_WORKGROUP_DEFAULTS = {"mode": "2770"}
_HOMES_COMMENT = "Home directories"


@cache
def planner() -> ModuleType:
    """The playbooks' share planner, loaded from its file (it is an Ansible filter plugin)."""
    path = playbooks_dir() / "filter_plugins" / "samba_shares.py"
    spec = importlib.util.spec_from_file_location("provision_samba_shares", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with the package
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_sections(network: Network, host: Host) -> list[dict[str, Any]]:
    """The host's planned share sections: name, path, options, acl entries, owner, group, mode.

    Only for hosts whose shares provision writes: workgroup peers and domain file servers.
    """
    group = global_vars(network)
    mine = host_vars(host)
    shares = mine.get("provision_shares", [])
    if network.mode is Mode.WORKGROUP and host.role is Role.PEER:
        plan = planner().samba_peer_plan(
            shares,
            mine.get("provision_printers", []),
            group.get("provision_users", []),
            group.get("provision_groups", []),
            mine.get("provision_homes", False),
            _WORKGROUP_DEFAULTS,
            _HOMES_COMMENT,
        )
        return list(plan["shares"])
    if network.mode is Mode.DOMAIN and host.role is Role.FILE_SERVER and network.domain is not None:
        return list(planner().samba_share_plan(shares, "domain", network.domain.netbios))
    return []


def host_printers(network: Network, host: Host) -> list[dict[str, Any]]:
    """The host's planned printers (CUPS queue and smb.conf section), as its role plans them."""
    printers = host_vars(host).get("provision_printers", [])
    if not printers:
        return []
    if network.mode is Mode.WORKGROUP and host.role is Role.PEER:
        return list(planner().samba_printer_plan(printers, "workgroup"))
    if network.mode is Mode.DOMAIN and host.role is Role.FILE_SERVER and network.domain is not None:
        return list(planner().samba_printer_plan(printers, "domain", network.domain.netbios))
    return []
