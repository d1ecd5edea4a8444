"""Property tests: the validator never crashes, whatever it is given.

Valid specs of the corpus are mutated at random (keys deleted, values replaced by
JSON-like values of other types, list items duplicated, unknown keys inserted,
values buried in deep nesting). ``check_data`` must always answer with errors or
a model, ``check_text`` must raise nothing but ``SpecError``, and the compiled
validator and the pure-Python one must agree on validity.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provision import spec
from provision.errors import SpecError

DATA = Path(__file__).parent / "data"


def _load_valid() -> list[Any]:
    out = []
    for path in sorted((DATA / "valid").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            json.dumps(data)  # the mutations are JSON-like: start from JSON-like specs
        except TypeError:
            continue
        out.append(data)
    return out


BASES = _load_valid()

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings the spec cares about, so mutations reach the cross-host rules too.
_WORDS = [
    "", " ", "peer", "domain_controller", "file_server", "workstation", "domain", "workgroup",
    "dc1", "pc1", "fs1", "ws[1:3]", "ws[3:1]", "ws[01:999]", "a" * 40, "PC1", "ACME", "AD.ACME.TEST",
    "ad.acme.local", "10.20.0.2", "10.20.0.0", "10.20.255.255", "10.20.0.0/16", "10.20.0.1/16", "0.0.0.0/0",
    "255.255.255.255", "10.20.1.10+", "10.20.1.10-10.20.1.5", "10.0.0.300", "1.2.3", "010.0.0.1",
    "alice", "staff", "@staff", "@nobody", "root", "/srv/x", "/etc", "homes", "20%", "0%", "100%",
    "2770", "auto", "mandatory", "SMB3", "ntp.acme.test", "-bad-", "1234", "x" * 300, "é", "\x00",
    # hostile input: line breaks, '$' before a final newline, C1, separators, Jinja, smb.conf syntax
    "alice\n", "pc1\n", "10.20.0.2\n", "/srv/x\n", "a\rb", "\x85", "\u2028", "\u202e", "{{ lookup('pipe','id') }}",
    "{% x %}", "{# x #}", "x\\", " x", "HOMES", "Printers", "IPC$", "c$", "/srv/../etc", "/var", "/tmp/x",
    "wpad", "localhost", "domain_admins", "sudo", "www-data", "file:///etc/passwd", "smb://u:p@h/q", "<<",
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(_WORDS)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(_WORDS), inner, max_size=4),
    max_leaves=12,
)


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _containers(v, out)
    elif isinstance(node, list):
        out.append(node)
        for v in node:
            _containers(v, out)
    return out


def _mutate(data: Any, draw: Any) -> Any:
    """Apply one random mutation somewhere inside ``data``; may return a new root."""
    targets = _containers(data, [])
    if not targets:
        return draw(_values)
    target = draw(st.sampled_from(targets))
    op = draw(st.sampled_from(["delete", "replace", "duplicate", "insert", "nest", "root"]))
    if op == "root":
        return draw(_values)
    if isinstance(target, dict):
        keys = list(target)
        if op == "insert" or not keys:
            target[draw(st.text(max_size=12) | st.sampled_from(_WORDS))] = draw(_values)
            return data
        key = draw(st.sampled_from(keys))
        if op == "delete":
            del target[key]
        elif op == "replace":
            target[key] = draw(_values)
        elif op == "duplicate":
            target[key] = [copy.deepcopy(target[key]), copy.deepcopy(target[key])]
        else:  # nest
            value = target[key]
            for _ in range(draw(st.integers(1, 60))):
                value = [value] if draw(st.booleans()) else {"x": value}
            target[key] = value
        return data
    if not target or op == "insert":
        target.insert(draw(st.integers(0, len(target))), draw(_values))
        return data
    i = draw(st.integers(0, len(target) - 1))
    if op == "delete":
        del target[i]
    elif op == "replace":
        target[i] = draw(_values)
    elif op == "duplicate":
        target.insert(i, copy.deepcopy(target[i]))
    else:
        value = target[i]
        for _ in range(draw(st.integers(1, 60))):
            value = [value] if draw(st.booleans()) else {"x": value}
        target[i] = value
    return data


@st.composite
def mutated_specs(draw: Any) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        data = _mutate(data, draw)
    return data


def test_there_are_specs_to_mutate() -> None:
    assert len(BASES) >= 5


_WG = {"name": "office", "mode": "workgroup", "subnets": ["192.168.10.0/24"]}


@FUZZ
@given(mutated_specs())
@example(  # a host name of the wrong type next to network-wide shares
    {"network": _WG, "hosts": [{"name": ["pc1"], "address": "192.168.10.11", "role": "peer"}],
     "shares": [{"name": "x", "path": "/srv/x", "hosts": ["pc1"]}]}
)
@example(  # a subnet of the wrong type, and a host outside the others
    {"network": {**_WG, "subnets": ["192.168.10.0/24", 24]},
     "hosts": [{"name": "pc1", "address": "10.0.0.1", "role": "peer"}]}
)
def test_check_data_never_raises(data: Any) -> None:
    result = spec.check_data(data, "x")
    if result.errors:
        assert result.network is None
        for p in result.errors:
            assert isinstance(p.path, str) and p.path
            assert isinstance(p.message, str) and p.message
    else:
        assert result.network is not None


@FUZZ
@given(mutated_specs())
def test_fast_and_explaining_validators_agree(data: Any) -> None:
    fast = spec._fast().is_valid(data)
    slow = not list(spec.schema_problems(data))
    assert fast == slow, f"compiled validator says valid={fast}, pure-Python one valid={slow}"


@FUZZ
@given(mutated_specs())
def test_check_text_of_dumped_mutation(data: Any) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        result = spec.check_text(text, "x")
    except SpecError:
        return
    for p in result.errors + result.warnings:
        assert p.line is None or p.line >= 1


_yaml_lines = st.lists(
    st.tuples(
        st.sampled_from(["", "  ", "    ", "- ", "  - "]),
        st.sampled_from(["network", "hosts", "name", "mode", "version", "a", "? ", "&a ", "*a", "!!binary", "comment"]),
        st.sampled_from([": ", ":", " ", ""]),
        st.sampled_from(_WORDS)
        | st.sampled_from(["2024-01-15", "2024-02-30", "2024-13-01", "1e999", "0o777", "[", "]", "{", "}", "'", '"',
                           "*a", "&a x", "!!set {a}", "!!python/object:os.system", "~", "yes", "on", "0x1F", ".inf"])
        | st.text(max_size=10),
    ).map(lambda t: "".join(t)),
    max_size=12,
).map("\n".join)


@FUZZ
@given(st.text(max_size=200) | _yaml_lines)
@example("network: {name: office}\nversion: 2024-02-30\n")  # not a date: ValueError from the YAML constructor
@example("network:\n  1: x\nhosts: []\n")  # a non-string key
@example("    0:\n    ?")  # keys of mixed types (None and int): sorting them used to raise TypeError
@example("a: 1\na: 2\n")  # a duplicate key
@example("a: &x [1]\nb: *x\n")  # an alias
@example("a: &x [*x]\n")  # a recursive alias
@example("network: {<<: {name: x}}\n")  # a merge key
def test_check_text_raises_only_spec_error(text: str) -> None:
    try:
        result = spec.check_text(text, "x")
    except SpecError as exc:
        assert exc.problems
        return
    assert result.errors or result.network is not None


@pytest.mark.parametrize("depth", [10, 200])
def test_deep_nesting(depth: int) -> None:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": [value]}
    data = copy.deepcopy(BASES[0])
    data["network"]["name"] = value
    result = spec.check_data(data, "x")
    assert result.errors
    assert result.network is None


# Format edge cases where two validator implementations commonly differ.
_FORMAT_EDGES = [
    ("hosts", 0, "name", v) for v in ["1234", "a" * 63, "a" * 64, "pc1", "x--y"]
] + [
    ("hosts", 0, "address", v) for v in ["010.0.0.1", "1.2.3.04", "255.255.255.255", "1.2.3.4\n", "0.0.0.0"]
] + [
    ("network", None, "ntp_servers", [v])
    for v in ["ntp.acme.test.", "ntp.acme.test", "localhost", "1.2.3", "256.1.1.1", "a..b", "a" * 64 + ".com", "é.com"]
] + [
    ("network", None, "subnets", [v]) for v in ["10.0.0.0/08", "10.0.0.0/8\n", "10.0.0.0/\u0668", "0.0.0.0/0"]
]


@pytest.mark.parametrize(("top", "index", "key", "value"), _FORMAT_EDGES, ids=[repr(e[3])[:40] for e in _FORMAT_EDGES])
def test_validators_agree_on_format_edge_cases(top: str, index: int | None, key: str, value: Any) -> None:
    data = copy.deepcopy(BASES[0])
    node = data[top] if index is None else data[top][index]
    node[key] = value
    fast = spec._fast().is_valid(data)
    problems = list(spec.schema_problems(data))
    assert fast == (not problems), f"compiled validator valid={fast}, pure-Python problems={problems}"


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [*(_strings(k)), *_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


_HOSTILE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]|\\{\\{|\\{%|\\{#")


@FUZZ
@given(mutated_specs())
def test_no_hostile_string_ever_passes(data: Any) -> None:
    """Whatever the mutation, a spec that validates holds no control character and no Jinja."""
    result = spec.check_data(data, "x")
    if result.network is not None:
        bad = [s for s in _strings(data) if _HOSTILE.search(s)]
        assert not bad, f"accepted hostile strings: {bad[:3]}"
