"""Shared fixtures for unit tests (the lab fixtures live in tests/integration/)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INVENTORIES = ROOT / "inventories"


@pytest.fixture
def inventories() -> Path:
    return INVENTORIES


@pytest.fixture
def own_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A run's state and caches (network CA, --retry-failed record, facts) in tmp_path, not ~."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path
