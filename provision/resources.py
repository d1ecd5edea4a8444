"""Where the shipped data lives: schemas/, playbooks/ and the starter specs.

In a wheel, schemas/ and playbooks/ are installed inside the package; in a
source checkout (editable install, tests) they sit at the repository root.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def _data_dir(name: str) -> Path:
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ directory of provision")


def schemas_dir() -> Path:
    return _data_dir("schemas")


def playbooks_dir() -> Path:
    return _data_dir("playbooks")


def starters_dir() -> Path:
    return _PKG / "starters"
