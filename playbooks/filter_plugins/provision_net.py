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


def ca_files(certificates: Iterable[str], directory: str) -> list[dict[str, str]]:
    """provision_files entries for CA certificates: one file each (update-ca-certificates links
    each file of its directory into the store by its first certificate only)."""
    return [
        {"path": f"{directory}/ca-{n}.crt", "content": pem.strip() + "\n", "mode": "0644"}
        for n, pem in enumerate(certificates, start=1)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"provision_address_in": address_in, "provision_ca_files": ca_files}
