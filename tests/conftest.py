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


@pytest.fixture
def smaller_workgroup(tmp_path: Path) -> Path:
    """The lab workgroup without user bob and share handbook: exactly two removals from it
    (every other user is named by a share, so removing one would change a share too)."""
    import yaml

    data = yaml.safe_load((INVENTORIES / "lab-workgroup.yml").read_text())
    data["users"] = [u for u in data["users"] if u["name"] != "bob"]
    for h in data["hosts"]:
        h["shares"] = [s for s in h.get("shares", []) if s["name"] != "handbook"]
    path = tmp_path / "smaller.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
