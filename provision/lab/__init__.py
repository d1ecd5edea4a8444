"""``provision lab``: local Debian 12 containers to run specs against.

The library never prints or exits; progress goes to a callback and failures
are raised as ``provision.errors.LabError``.
"""

from __future__ import annotations

from .core import HostStatus, LabStatus, down, ssh_argv, status, up, wipe
from .paths import BRIDGE, BRIDGE_ADDR, IDENTITY_FILE, KNOWN_HOSTS, LAB_NET

__all__ = [
    "BRIDGE",
    "BRIDGE_ADDR",
    "IDENTITY_FILE",
    "KNOWN_HOSTS",
    "LAB_NET",
    "HostStatus",
    "LabStatus",
    "down",
    "ssh_argv",
    "status",
    "up",
    "wipe",
]
