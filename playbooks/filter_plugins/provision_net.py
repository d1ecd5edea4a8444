"""Network filters of the roles, evaluated on the controller (no module run on the host)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
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


def domain_hosts(dcs: Iterable[dict[str, str]], host: str, address: str, dns_domain: str) -> list[dict[str, str]]:
    """/etc/hosts entries of a domain host: every DC and the host itself by fully qualified
    name (Samba wants the FQDN on the LAN address, never on 127.0.1.1); a later entry of the
    same name wins, so a DC's own address is the one the spec gives it."""
    entries: dict[str, str] = {}
    for name, addr in [*((d["name"], d["address"]) for d in dcs), (host, address)]:
        fqdn = name if "." in name else f"{name}.{dns_domain}"
        entries[fqdn] = addr
    return [{"name": n, "address": a} for n, a in entries.items()]


def time_sources(dcs: Iterable[dict[str, str]], host: str, ntp_servers: Iterable[str]) -> list[str]:
    """Where a domain host takes its time: the first DC from the network's NTP servers, the
    other DCs from the first DC, members and workstations from every DC."""
    dcs = list(dcs)
    if host == dcs[0]["name"]:
        return list(ntp_servers)
    if host in {d["name"] for d in dcs}:
        return [dcs[0]["address"]]
    return [d["address"] for d in dcs]


def spec_address(host_vars: Mapping[str, Any]) -> str:
    """A host's spec address from its hostvars: provision_address where the inventory connects
    elsewhere (a Vagrant machine's forwarded port), else ansible_host, else its name."""
    return str(host_vars.get("provision_address") or host_vars.get("ansible_host") or host_vars["inventory_hostname"])


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "provision_address_in": address_in,
            "provision_ca_files": ca_files,
            "provision_domain_hosts": domain_hosts,
            "provision_spec_address": spec_address,
            "provision_time_sources": time_sources,
        }
