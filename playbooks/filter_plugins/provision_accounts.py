"""Account filters of the roles, evaluated on the controller (no module run on the host)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def group_members(group: str, users: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the inventory's users that are members of ``group``, sorted.

    The database server mirrors the domain groups it grants to as group roles; their
    members are the inventory's, which the directory role keeps in the directory too.
    """
    return sorted(str(u["name"]) for u in users if group in (u.get("groups") or []))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"provision_group_members": group_members}
