"""The JSON Schemas themselves: valid 2020-12 schemas, documented and closed.

Editors show title/description/examples/default from the schemas, and the
schemas are the reference of the spec format, so every property must carry
them; every object must reject unknown fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
FILES = sorted(SCHEMA_DIR.glob("*.schema.json"))
SCHEMAS: dict[str, dict[str, Any]] = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in FILES}
BY_ID: dict[str, dict[str, Any]] = {s.get("$id", name): s for name, s in SCHEMAS.items()}

# "if" holds a condition (a pattern to match), not field declarations: it is not walked.
_SUBSCHEMA_KEYS = ("items", "additionalProperties", "not", "then", "else", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def _pointer(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve(ref: str, file: str) -> tuple[dict[str, Any], str]:
    """The target of a $ref made in ``file``, and the file the target lives in."""
    uri, _, fragment = ref.partition("#")
    target_file = uri or file
    doc = BY_ID.get(target_file) or SCHEMAS[target_file]
    return _pointer(doc, fragment), target_file


def lookup(schema: dict[str, Any], file: str, key: str) -> Any:
    """``key`` of the schema, else of its $ref chain; None when absent."""
    seen = set()
    while True:
        if key in schema:
            return schema[key]
        ref = schema.get("$ref")
        if not isinstance(ref, str) or (file, ref) in seen:
            return None
        seen.add((file, ref))
        schema, file = resolve(ref, file)


def walk(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, subschema) of a schema document, recursively."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key in _SUBSCHEMA_KEYS:
        if isinstance(schema.get(key), dict):
            yield from walk(schema[key], f"{where}/{key}")
    for key in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or []):
            yield from walk(sub, f"{where}/{key}/{i}")
    for key in _SUBSCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items():
            yield from walk(sub, f"{where}/{key}/{name}")


def _all_subschemas() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, doc in SCHEMAS.items():
        for where, sub in walk(doc, "#"):
            yield name, where, sub


def _object_schemas() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (f, w, s) for f, w, s in _all_subschemas() if s.get("type") == "object" or "properties" in s
    ]


def _properties() -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    out = []
    for file, where, parent in _all_subschemas():
        for prop, sub in (parent.get("properties") or {}).items():
            out.append((file, where, prop, sub, parent))
    return out


OBJECTS = _object_schemas()
PROPERTIES = _properties()


def test_schema_files_present() -> None:
    assert {"network.schema.json", "common.schema.json", "host.schema.json", "share.schema.json",
            "policy.schema.json"} <= set(SCHEMAS)
    assert len(PROPERTIES) > 50


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_check_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert schema.get("$id") == path.name


def test_every_ref_resolves() -> None:
    for file, where, sub in _all_subschemas():
        ref = sub.get("$ref")
        if ref is None:
            continue
        try:
            target, _ = resolve(ref, file)
        except (KeyError, IndexError, ValueError) as exc:
            pytest.fail(f"{file}{where}: $ref {ref!r} does not resolve ({exc})")
        assert isinstance(target, dict), f"{file}{where}: $ref {ref!r} is not a schema"


@pytest.mark.parametrize(
    ("file", "where", "prop", "sub", "parent"),
    PROPERTIES,
    ids=[f"{f}{w}/properties/{p}" for f, w, p, _, _ in PROPERTIES],
)
def test_property_is_documented(file: str, where: str, prop: str, sub: dict[str, Any], parent: dict[str, Any]) -> None:
    missing = [k for k in ("title", "description", "examples") if lookup(sub, file, k) in (None, "", [])]
    assert not missing, f"{file}{where}/properties/{prop} lacks {', '.join(missing)}"
    examples = lookup(sub, file, "examples")
    assert isinstance(examples, list)
    # Conditionally required fields (if/then, e.g. domain in domain mode) have no sensible default.
    conditional = (parent.get("then") or {}).get("required") or []
    if prop not in (parent.get("required") or []) and prop not in conditional:
        assert lookup(sub, file, "default") is not None or "default" in sub, (
            f"{file}{where}/properties/{prop} is optional but has no default"
        )


@pytest.mark.parametrize(
    ("file", "where", "sub"), OBJECTS, ids=[f"{f}{w}" for f, w, _ in OBJECTS]
)
def test_object_is_closed(file: str, where: str, sub: dict[str, Any]) -> None:
    assert sub.get("additionalProperties") is False, f"{file}{where} does not set additionalProperties: false"


def test_required_fields_are_properties() -> None:
    for file, where, sub in _all_subschemas():
        if where.endswith(("/then", "/else")):  # conditions require fields of their parent
            continue
        for name in sub.get("required") or []:
            assert name in (sub.get("properties") or {}), f"{file}{where}: required {name!r} is not a property"


def test_examples_and_defaults_are_valid() -> None:
    """Examples and defaults of every property validate against the property's own schema."""
    from provision import spec

    registry = spec._registry()
    checker = spec._explainer().format_checker
    for file, where, prop, sub, _ in PROPERTIES:
        doc = BY_ID.get(file) or SCHEMAS[file]
        pointer = f"{where}/properties/{prop}".lstrip("#")
        validator = Draft202012Validator(
            {"$ref": f"{doc.get('$id', file)}#{pointer}"}, registry=registry, format_checker=checker
        )
        values = list(lookup(sub, file, "examples") or [])
        default = lookup(sub, file, "default")
        if default is not None:
            values.append(default)
        for value in values:
            errors = [e.message for e in validator.iter_errors(value)]
            assert not errors, f"{file}{where}/properties/{prop}: example/default {value!r} is invalid: {errors}"


def _patterns() -> list[tuple[str, str, str]]:
    return [(f, w, s["pattern"]) for f, w, s in _all_subschemas() if isinstance(s.get("pattern"), str)]


PATTERNS = _patterns()


@pytest.mark.parametrize(("file", "where", "pattern"), PATTERNS, ids=[f"{f}{w}" for f, w, _ in PATTERNS])
def test_patterns_are_anchored_at_both_ends(file: str, where: str, pattern: str) -> None:
    """A pattern without '^'/'$' would accept anything containing a match (JSON Schema searches)."""
    assert pattern.startswith("^") and pattern.endswith("$"), f"{file}{where}: {pattern!r} is not anchored"


def test_python_patterns_end_at_the_end_of_the_text() -> None:
    """Python's '$' also matches before a final newline; the explaining validator uses '\\Z'
    so it agrees with the compiled one (ECMA 262 '$'). Every string example of a property
    with a pattern matches, and stops matching with a newline appended."""
    import re

    from provision import spec

    assert PATTERNS
    checked = 0
    for file, where, prop, sub, _ in PROPERTIES:
        pattern = lookup(sub, file, "pattern")
        if not isinstance(pattern, str):
            continue
        compiled = re.compile(spec._anchored(pattern))
        for value in lookup(sub, file, "examples") or []:
            if not isinstance(value, str):
                continue
            assert compiled.search(value), f"{file}{where}/properties/{prop}: example {value!r} does not match"
            assert not compiled.search(value + "\n"), f"{file}{where}/properties/{prop}: {value!r}+'\\n' matches"
            checked += 1
    assert checked >= 10
