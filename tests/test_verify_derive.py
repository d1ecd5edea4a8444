"""Checks derived from the spec: pure, per role."""

from __future__ import annotations

from pathlib import Path

from provision import spec, verify
from provision.verify_checks.test_checks import KINDS

ROOT = Path(__file__).resolve().parent.parent


def test_workgroup_checks_per_peer() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    checks = verify.derive(net)
    by_host: dict[str, list[str]] = {}
    for c in checks:
        by_host.setdefault(c.host, []).append(c.name)
    assert set(by_host) == {"peer1", "peer2", "peer3"}
    expected = {"hostname", "address", "clock", "firewall", "smbd", "smb1 refused", "guest refused"}
    assert expected <= set(by_host["peer1"])
    assert "share projects" in by_host["peer1"] and "share handbook" in by_host["peer1"]
    # Members of the share's groups and listed users get local accounts; carol only where she is granted.
    assert {"user alice", "user bob", "user carol"} <= set(by_host["peer1"])
    assert "user carol" not in by_host["peer2"]
    assert "user carol" in by_host["peer3"]
    share = next(c for c in checks if c.host == "peer1" and c.name == "share projects")
    assert share.params["valid"] == ["@staff"] and share.params["group"] == "staff"
    fw = next(c for c in checks if c.kind == "firewall")
    assert fw.params["allow_from"] == ["10.231.0.0/24"]


def test_domain_checks_per_role() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    checks = verify.derive(net)
    kinds = {(c.host, c.kind) for c in checks}
    assert ("dc1", "directory") in kinds and ("dc2", "directory") not in kinds
    assert ("dc1", "replication") in kinds and ("dc2", "replication") in kinds
    assert ("fs1", "joined") in kinds and ("ws1", "joined") in kinds
    ws2 = next(c for c in checks if c.host == "ws2" and c.kind == "joined")
    assert ws2.params["client"] == "winbind"
    resolver = next(c for c in checks if c.host == "ws1" and c.kind == "resolver")
    assert resolver.params["dcs"] == ["10.231.0.21", "10.231.0.22"]


def test_every_derived_kind_has_a_check_function() -> None:
    for path in (ROOT / "inventories").glob("*.yml"):
        for c in verify.derive(spec.load_network(path)):
            assert c.kind in KINDS, c.kind
