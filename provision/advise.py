"""Topology advice by network size.

Peer-to-peer suits small networks; client-server pays off from about 50
computers up, because central management keeps many points of entry secure.
Advice is data (``Problem`` with a severity); the CLI decides how to show it,
and ``validate --strict`` turns warnings into failures.
"""

from __future__ import annotations

from provision.errors import Problem
from provision.model import Mode, Network, Role

DOMAIN_THRESHOLD = 50  # computers from which a domain is the better choice
TINY_DOMAIN = 5  # below this a workgroup would do


def advise(network: Network) -> list[Problem]:
    """Warnings and notes about the network's topology."""
    out: list[Problem] = []
    count = len(network.hosts)
    if network.mode is Mode.WORKGROUP:
        if count >= DOMAIN_THRESHOLD:
            out.append(
                Problem(
                    "network.mode",
                    f"a workgroup of {count} computers: from about {DOMAIN_THRESHOLD} up a domain is the better "
                    "choice; central management of users, passwords and policy keeps many points of entry secure. "
                    "Consider network.mode: domain with two domain controllers.",
                    severity="warning",
                )
            )
        return out
    dcs = [h for h in network.hosts if h.role is Role.DOMAIN_CONTROLLER]
    if len(dcs) == 1:
        out.append(
            Problem(
                "hosts",
                f"the domain has one domain controller ({dcs[0].name}); if it fails nobody can log on. "
                "Add a second domain_controller for redundancy.",
                severity="warning",
            )
        )
    if count < TINY_DOMAIN:
        out.append(
            Problem(
                "network.mode",
                f"a domain of {count} computers: a workgroup would do, with less to run. "
                "Keep the domain if you expect to grow or need central policy.",
                severity="note",
            )
        )
    return out
