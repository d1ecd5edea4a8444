"""The lab's cgroup accounting, read from this very process's own cgroup (no stand-in)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provision.lab import cgroups


def _own_cgroup2() -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].strip("/")
    return None


def test_cpu_seconds_follows_the_cpu_this_process_burns() -> None:
    rel = _own_cgroup2()
    if rel is None or cgroups.layout() not in ("unified", "hybrid"):
        pytest.skip("no cgroup2 hierarchy on this machine")
    before = cgroups.cpu_seconds(rel)
    if before is None:
        pytest.skip("this process's cgroup keeps no CPU accounting here")
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    after = cgroups.cpu_seconds(rel)
    assert after is not None and after - before >= 0.25


def test_cpu_seconds_of_a_cgroup_that_does_not_exist_is_none() -> None:
    assert cgroups.cpu_seconds("lab/no-such-host-here") is None
