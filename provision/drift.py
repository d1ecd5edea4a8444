"""Drift: what an apply would change now (every role in check + diff mode) and what verify finds.

Every role runs in full: drift is the audit that does not trust the converged fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provision import runner, verify
from provision.model import Host, Network
from provision.results import DriftResult


def run(
    network: Network,
    hosts: Sequence[Host],
    limited: bool,
    progress: Callable[[str], None] | None = None,
) -> DriftResult:
    """The dry run on ``hosts`` (the inventory holds only them when ``limited``), then verify."""
    options = runner.RunOptions(check=True, diff=True, full=True, limit=[h.name for h in hosts] if limited else ())
    dry = runner.run(network, options)
    return DriftResult(dry, verify.run(network, list(hosts), progress=progress))
