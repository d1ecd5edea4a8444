"""The lab's kernel limits, against a stand-in /proc/sys tree (the real one needs root)."""

from __future__ import annotations

from pathlib import Path

from provision.lab import limits


def _sys(tmp_path: Path, instances: int = 128, watches: int = 192546) -> Path:
    (tmp_path / "fs" / "inotify").mkdir(parents=True)
    (tmp_path / "fs" / "inotify" / "max_user_instances").write_text(f"{instances}\n")
    (tmp_path / "fs" / "inotify" / "max_user_watches").write_text(f"{watches}\n")
    return tmp_path


def _value(root: Path, name: str) -> int:
    return int((root / "fs" / "inotify" / name).read_text())


def test_enough_for_a_few_hosts_changes_nothing(tmp_path: Path) -> None:
    root = _sys(tmp_path, instances=8192, watches=10**7)
    said: list[str] = []
    assert limits.ensure(100, {}, said.append, root) == {}
    assert said == [] and _value(root, "max_user_instances") == 8192


def test_raised_for_many_hosts_said_and_put_back(tmp_path: Path) -> None:
    root = _sys(tmp_path)
    said: list[str] = []
    raised = limits.ensure(100, {}, said.append, root)
    assert _value(root, "max_user_instances") == limits.NEEDS["fs/inotify/max_user_instances"](100) > 128
    assert raised["fs/inotify/max_user_instances"][0] == 128
    assert any("max_user_instances from 128" in s for s in said)
    # Growing the lab again keeps the first original.
    more = limits.ensure(200, raised, said.append, root)
    assert more["fs/inotify/max_user_instances"][0] == 128
    assert limits.restore(more, said.append, root) == ["fs/inotify/max_user_instances", "fs/inotify/max_user_watches"]
    assert _value(root, "max_user_instances") == 128 and _value(root, "max_user_watches") == 192546


def test_a_value_changed_since_by_someone_else_is_kept(tmp_path: Path) -> None:
    root = _sys(tmp_path)
    raised = limits.ensure(100, {}, root=root)
    (root / "fs" / "inotify" / "max_user_instances").write_text("65536\n")
    assert limits.restore(raised, root=root) == ["fs/inotify/max_user_watches"]
    assert _value(root, "max_user_instances") == 65536


def test_known_boot_failures_are_named() -> None:
    console = "Welcome to Debian\nFailed to create control group inotify object: Too many open files\n"
    assert "inotify" in (limits.cause(console) or "")
    assert limits.cause("[  OK  ] Reached target network.target\n") is None
