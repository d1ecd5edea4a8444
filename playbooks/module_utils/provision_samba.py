"""Samba's Python bindings for the modules that run on a DC, imported when a module needs them."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class MissingSamba(Exception):
    """Samba's Python bindings are not installed for the interpreter running the module."""


def import_samba(*names: str) -> list[ModuleType]:
    """The named modules (``ldb``, ``samba.samdb``...), or MissingSamba saying what is missing where."""
    try:
        return [importlib.import_module(name) for name in names]
    except ImportError as exc:
        raise MissingSamba(
            f"python3-samba is not installed on this host (for {sys.executable}): {exc}. "
            "This module runs on a Samba AD DC, with the interpreter Samba's Python bindings belong to."
        ) from None
