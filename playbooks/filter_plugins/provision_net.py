"""Network filters of the roles, evaluated on the controller (no module run on the host)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any


def address_in(address: str, networks: Iterable[str]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (CIDRs; an IPv4-mapped IPv6 address counts as IPv4).

    The base role asks it before loading a firewall: the Ansible controller must
    stay allowed in, or the next task could never reach the host.
    """
    ip = ipaddress.ip_address(str(address).strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    nets = [ipaddress.ip_network(str(n), strict=False) for n in networks]
    return any(ip.version == n.version and ip in n for n in nets)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"provision_address_in": address_in}
