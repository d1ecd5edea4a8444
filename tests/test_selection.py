"""--limit patterns: names, ranges, globs, roles, exclusions, on the example specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision import spec
from provision.selection import SelectionError, names, patterns

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def campus():  # type: ignore[no-untyped-def]
    return spec.load_network(ROOT / "inventories" / "campus.yml")


@pytest.fixture(scope="module")
def domain():  # type: ignore[no-untyped-def]
    return spec.load_network(ROOT / "inventories" / "lab-domain.yml")


def test_patterns_split_commas_and_values() -> None:
    assert patterns(None) == []
    assert patterns(" a, ,b ") == ["a", "b"]
    assert patterns(["a,b", "c"]) == ["a", "b", "c"]


def test_no_limit_is_every_host(campus) -> None:  # type: ignore[no-untyped-def]
    assert names(campus, None) == [h.name for h in campus.hosts]
    assert names(campus, "") == [h.name for h in campus.hosts]


def test_range_selects_the_names_it_makes(campus) -> None:  # type: ignore[no-untyped-def]
    got = names(campus, "lab[0001:0050]")
    assert got == [f"lab{i:04d}" for i in range(1, 51)]


def test_glob_and_role_and_exclusion(campus, domain) -> None:  # type: ignore[no-untyped-def]
    got = names(campus, "lab000*")
    assert got == [f"lab{i:04d}" for i in range(1, 10)]
    dcs = names(domain, "role:domain_controller")
    assert dcs and all(domain.host(n).role.value == "domain_controller" for n in dcs)
    every_ws = names(domain, "role:workstation")
    assert names(domain, "role:workstation,!ws1") == [n for n in every_ws if n != "ws1"]
    assert "ws1" not in names(domain, "!ws1") and len(names(domain, "!ws1")) == len(domain.hosts) - 1


def test_spec_order_and_no_duplicates(domain) -> None:  # type: ignore[no-untyped-def]
    order = [h.name for h in domain.hosts]
    got = names(domain, "ws*,dc1,dc*")
    assert got == [n for n in order if n.startswith("ws") or n.startswith("dc")]


def test_every_unmatched_pattern_is_named_at_once(domain) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SelectionError) as exc:
        names(domain, "nope,zz*,ws1,!ghost")
    msg = str(exc.value)
    assert "nope" in msg and "zz*" in msg and "!ghost" in msg and "ws1," not in msg
    assert exc.value.exit_code == 2


def test_unknown_role_lists_the_roles(domain) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SelectionError, match="file_server"):
        names(domain, "role:fileserver")


def test_a_limit_that_leaves_nothing_is_refused(domain) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SelectionError, match="leaves no host"):
        names(domain, "ws1,!ws1")
