"""Load a network spec, validate it completely, and build the model.

The pipeline is: parse YAML fast (libyaml's CSafeLoader) -> check it against the
JSON Schemas (a compiled validator first; the pure-Python one only to explain
errors) -> cross-host rules the schema cannot express -> frozen model.
Line numbers are only worked out when there is something to report, by
re-composing the YAML with node marks, so a valid spec pays nothing for them.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import yaml
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from provision import rules
from provision.errors import Problem, SpecError
from provision.model import Network
from provision.resources import schemas_dir

try:  # libyaml is in every wheel of PyYAML we install, but stay correct without it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]



class _SpecLoader(_Loader):
    """libyaml's safe loader, minus YAML 1.1 surprises: 'on'/'no' stay strings and
    dates stay text, so every value is plain JSON data for the schema validators."""


_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

ROOT_SCHEMA = "network.schema.json"

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------- schemas


@cache
def load_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file of schemas/, keyed by its $id (its file name)."""
    out = {}
    for path in sorted(schemas_dir().glob("*.schema.json")):
        schema = json.loads(path.read_text())
        out[schema.get("$id", path.name)] = schema
    return out


def _is_ipv4_network(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return rules.parse_cidr(value) is not None


@cache
def _registry() -> Registry:
    return Registry().with_resources((uri, Resource.from_contents(schema)) for uri, schema in load_schemas().items())


@cache
def _explainer() -> jsonschema.Draft202012Validator:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=list(checker.checkers))
    checker.checks("ipv4-network")(_is_ipv4_network)
    return jsonschema.Draft202012Validator(load_schemas()[ROOT_SCHEMA], registry=_registry(), format_checker=checker)


@cache
def _fast() -> Any:
    schemas = load_schemas()
    registry = jsonschema_rs.Registry([(uri, s) for uri, s in schemas.items() if uri != ROOT_SCHEMA])
    return jsonschema_rs.validator_for(
        schemas[ROOT_SCHEMA],
        registry=registry,
        validate_formats=True,
        formats={"ipv4-network": _is_ipv4_network},
        ignore_unknown_formats=False,
    )


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """What validation found. ``network`` is set only when there are no errors."""

    source: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    network: Network | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Iterable[str | int]) -> str:
    """``hosts[3].address``; keys that are not plain names are quoted: ``network['a.b']``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out or "(root)"


# --------------------------------------------------------------------------- loading


def read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a subclass of the safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [Problem("(root)", f"YAML syntax error: {problem}", line)]) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), [Problem("(root)", f"cannot read spec: {exc}")]) from None


def check(path: Path) -> Result:
    """Validate the spec at ``path``: every error and warning at once, and the model."""
    text = _read_text(path)
    return check_text(text, str(path), base_dir=path.parent)


def check_text(text: str, source: str, base_dir: Path | None = None) -> Result:
    """Validate spec text. Raises SpecError only for unparsable YAML."""
    with _gc_paused():
        data = read_yaml(text, source)
        result = check_data(data, source, base_dir=base_dir)
    if result.errors or result.warnings:
        lines = LineIndex(text)
        result.errors = sorted((lines.attach(p) for p in result.errors), key=_order)
        result.warnings = sorted((lines.attach(p) for p in result.warnings), key=_order)
    return result


def _fast_valid(data: Any) -> bool:
    """The compiled validator, when the data is plain JSON (it rejects e.g. integer keys)."""
    try:
        return bool(_fast().is_valid(data))
    except ValueError:
        return False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing a big spec allocates many objects and no cycles: skip the collector meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_data(data: Any, source: str, base_dir: Path | None = None) -> Result:
    """Validate an already parsed spec (no line numbers)."""
    result = Result(source)
    schema_errors: list[Problem] = []
    if not _fast_valid(data):
        schema_errors = list(schema_problems(data))
    result.errors.extend(schema_errors)
    bad_paths = {p.path for p in schema_errors}
    if isinstance(data, Mapping):
        found = rules.cross_check(data, bad_paths)
        result.errors.extend(found.errors)
        result.warnings.extend(found.warnings)
        if not result.errors:
            result.network = rules.build_network(data, found, source=source, base_dir=base_dir)
    result.errors.sort(key=_order)
    result.warnings.sort(key=_order)
    return result


def load_network(path: Path) -> Network:
    """The model of a valid spec, or SpecError with every problem."""
    result = check(path)
    if result.errors or result.network is None:
        raise SpecError(result.source, result.errors)
    return result.network


def _order(p: Problem) -> tuple[int, str]:
    return (p.line or 0, p.path)


# --------------------------------------------------------------------------- schema errors

_SECRET_FIELDS = {"password", "admin_password"}
_FORMAT_TEXT = {
    "ipv4": "is not a valid IPv4 address",
    "ipv4-network": "is not a valid IPv4 subnet in CIDR notation (host bits zero), e.g. 10.20.0.0/16",
    "hostname": "is not a valid host name",
}


def schema_problems(data: Any) -> Iterator[Problem]:
    """Explain schema violations, one readable problem per place."""
    seen: set[tuple[str, str]] = set()
    for error in _explainer().iter_errors(data):
        for problem in _explain(error):
            key = (problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                yield problem


def _explain(error: ValidationError) -> Iterator[Problem]:
    path: Path_ = tuple(error.absolute_path)
    where = format_path(path)
    instance = error.instance
    last = path[-1] if path else None

    if last in _SECRET_FIELDS and not isinstance(instance, dict):
        yield Problem(
            where,
            "plaintext secrets are not allowed in the spec; reference one instead: "
            "{env: VARIABLE} or {file: path/to/secret}",
        )
        return
    if error.validator == "maxProperties" and isinstance(instance, dict) and {"env", "file"} <= set(instance):
        yield Problem(where, "a secret reference names one source: either {env: VAR} or {file: PATH}, not both")
        return
    if error.validator == "minProperties" and instance == {}:
        yield Problem(where, "an empty secret reference: use {env: VARIABLE} or {file: path/to/secret}")
        return
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(instance) - set(allowed)):
            hint = _close(str(key), allowed)
            yield Problem(
                format_path((*path, key)),
                f"unknown field '{key}'"
                + (f" (did you mean '{hint}'?)" if hint else "")
                + f"; allowed: {', '.join(allowed)}",
            )
        return
    if error.validator == "format":
        text = _FORMAT_TEXT.get(str(error.validator_value), f"is not a valid {error.validator_value}")
        yield Problem(where, f"{instance!r} {text}")
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        yield from _explain_alternatives(error, where)
        return
    if error.validator == "if":
        return  # the then/else branch error explains it
    if error.validator == "pattern" and last == "address":
        yield Problem(
            where,
            f"{instance!r} is not a valid address, pool ('10.20.1.10+') or range ('10.20.1.10-10.20.1.99')",
        )
        return
    if error.validator == "not" and isinstance(instance, str):
        yield Problem(where, f"{instance!r} is reserved and cannot be used here")
        return
    if error.validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)  # type: ignore[union-attr]
        yield Problem(where, f"{instance!r} is not one of: {options}")
        return
    if error.validator == "required" and "'domain'" in error.message and not path:
        yield Problem(where, "domain mode needs a 'domain' block (realm, netbios, admin_password)")
        return
    if error.validator == "required":
        yield Problem(where, error.message.replace("property", "field"))
        return
    if error.validator == "pattern":
        yield Problem(where, f"{instance!r} {_pattern_text(path, error)}")
        return
    yield Problem(where, error.message)


def _explain_alternatives(error: ValidationError, where: str) -> Iterator[Problem]:
    last = error.absolute_path[-1] if error.absolute_path else None
    if last == "batch":
        yield Problem(
            where, f"{error.instance!r} is not a valid batch: a number of hosts (1 or more) or a percentage '1%'-'100%'"
        )
        return
    parent = error.absolute_path[-2] if len(error.absolute_path) > 1 else None
    if parent == "ntp_servers" and isinstance(error.instance, str):
        yield Problem(where, f"{error.instance!r} is neither an IPv4 address nor a host name")
        return
    if last == "name" and isinstance(error.instance, str):
        yield Problem(
            where,
            f"{error.instance!r} is not a valid host name (lower-case letters, digits, '-') "
            "or range such as 'ws[001:250]'",
        )
        return
    inner = best_match(error.context or [])
    if inner is not None and inner.validator not in ("type",):
        yield from _explain(inner)
        return
    yield Problem(where, error.message)


def _pattern_text(path: Path_, error: ValidationError) -> str:
    last = path[-1] if path else ""
    owner = next((p for p in reversed(path[:-1]) if isinstance(p, str)), "")
    if last == "name" and owner in ("users", "groups"):
        return "is not a valid user or group name (lower-case letter first, then a-z 0-9 _ . -; at most 32)"
    if last == "name" and owner in ("shares", "printers"):
        return f"is not a valid {owner[:-1]} name (letters, digits, '_', '-')"
    if last == "name" and owner == "network":
        return "is not a valid network name (lower-case letter first, then a-z 0-9 -)"
    texts = {
        "realm": "is not a valid realm: upper-case DNS name with at least two labels, e.g. AD.ACME.TEST",
        "netbios": "is not a valid NetBIOS name: upper case letters, digits, '-', at most 15 characters",
        "workgroup": "is not a valid workgroup: upper case letters, digits, '-', at most 15 characters",
        "name": "is not a valid name",
        "mode": "is not an octal mode such as '2770'",
        "full_name": "must not contain ':', ',' or a line break (they would corrupt /etc/passwd)",
        "path": "is not an absolute path without spaces",
        "shell": "is not an absolute path to a shell",
        "uri": "is not a device URI such as ipp://printer/ipp/print",
        "env": "is not a valid environment variable name",
    }
    if last in texts:
        return texts[str(last)]
    if isinstance(last, int) or last in ("users", "groups", "owner", "group"):
        return "is not a valid user or group name (lower-case letter first, then a-z 0-9 _ . -)"
    return f"does not match {error.validator_value!r}"


def _close(word: str, options: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return found[0] if found else None


# --------------------------------------------------------------------------- line numbers

_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


class LineIndex:
    """Maps problem paths to line numbers by composing the YAML with marks."""

    def __init__(self, text: str) -> None:
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=_SpecLoader)
        except yaml.YAMLError:  # pragma: no cover - the text parsed once already
            self.root = None

    def line_of(self, path: str) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        if path == "(root)":
            return line
        for plain, index, quoted in _PART.findall(path):
            key = plain or quoted
            child = None
            if isinstance(node, yaml.MappingNode) and (plain or quoted):
                for k, v in node.value:
                    if k.value == key:
                        child = v
                        line = k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and index != "":
                i = int(index)
                if i < len(node.value):
                    child = node.value[i]
                    line = child.start_mark.line + 1
            if child is None:
                return line
            node = child
        return line

    def attach(self, problem: Problem) -> Problem:
        if problem.line is not None:
            return problem
        return Problem(problem.path, problem.message, self.line_of(problem.path), problem.severity)
