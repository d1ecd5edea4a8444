"""Which hosts a run is for: the one reading of ``--limit`` that every command shares.

A limit is a comma list of patterns, each one of:

- a host name (``ws001``);
- a range as the spec writes them (``ws[001:050]``): every name it makes, of those in the spec;
- a glob (``ws0*``, ``fs?``; ``[ab]`` too, when it is not a range);
- a role (``role:file_server``);
- any of these after ``!``: take those hosts out again (``role:workstation,!ws00*``).

Hosts come back in the spec's order. A pattern that matches no host is an error, and all
such patterns are named at once, so a typo never quietly narrows a run to nothing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable

from provision.errors import EXIT_INVALID_SPEC, ProvisionError
from provision.model import Host, Network, Role
from provision.rules import expand_range


class SelectionError(ProvisionError):
    """A --limit pattern names no host of the spec (a command-line error: nothing is contacted)."""

    exit_code = EXIT_INVALID_SPEC


def patterns(limit: str | Iterable[str] | None) -> list[str]:
    """The patterns of a --limit value ("a,b" or several values), blanks dropped."""
    if limit is None:
        return []
    items = [limit] if isinstance(limit, str) else list(limit)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def _matches(pattern: str, hosts: Collection[Host]) -> list[Host]:
    if pattern.startswith("role:"):
        role = pattern.removeprefix("role:")
        if role not in {r.value for r in Role}:
            raise SelectionError(f"--limit {pattern!r}: no such role (one of {', '.join(r.value for r in Role)})")
        return [h for h in hosts if h.role.value == role]
    names = expand_range(pattern) if "[" in pattern and ":" in pattern else None
    if names is not None:
        wanted = set(names)
        return [h for h in hosts if h.name in wanted]
    if any(c in pattern for c in "*?["):
        return [h for h in hosts if fnmatch.fnmatchcase(h.name, pattern)]
    return [h for h in hosts if h.name == pattern]


def select(network: Network, limit: str | Iterable[str] | None) -> list[Host]:
    """The spec's hosts a --limit value selects (all of them when there is none)."""
    items = patterns(limit)
    if not items:
        return list(network.hosts)
    include = [p for p in items if not p.startswith("!")]
    exclude = [p[1:] for p in items if p.startswith("!")]
    chosen: set[str] = set()
    unmatched: list[str] = []
    for p in include:
        found = _matches(p, network.hosts)
        if not found:
            unmatched.append(p)
        chosen.update(h.name for h in found)
    if not include:  # only exclusions: everything but those
        chosen = {h.name for h in network.hosts}
    for p in exclude:
        found = _matches(p, network.hosts)
        if not found:
            unmatched.append("!" + p)
        chosen.difference_update(h.name for h in found)
    if unmatched:
        raise SelectionError(f"--limit matches no host of the spec: {', '.join(unmatched)}")
    out = [h for h in network.hosts if h.name in chosen]
    if not out:
        raise SelectionError(f"--limit {','.join(items)} leaves no host")
    return out


def names(network: Network, limit: str | Iterable[str] | None) -> list[str]:
    """The names of the selected hosts."""
    return [h.name for h in select(network, limit)]
