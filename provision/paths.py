"""Where provision keeps what it remembers of a network on this controller.

A module of its own so that offline commands (plan, the lock, the record of the last
apply) find these folders without importing the runner and ansible-runner.
"""

from __future__ import annotations

import os
from pathlib import Path

from provision.model import Network


def state_dir(network: Network | str) -> Path:
    """What this controller keeps of a network (by its name): the last run's failures, the
    record of the last apply, the run lock, the network CA, backups by default."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "provision" / (network if isinstance(network, str) else network.name)


def tls_dir(network: Network) -> Path:
    """Where the network's own CA and the certificates it issued are kept (0700)."""
    return state_dir(network) / "tls"


def fact_cache_dir(network: Network) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "provision" / "facts" / network.name
