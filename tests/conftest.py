"""Shared fixtures for unit tests (the lab fixtures live in tests/integration/)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INVENTORIES = ROOT / "inventories"


@pytest.fixture
def inventories() -> Path:
    return INVENTORIES
