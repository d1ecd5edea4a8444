"""Load a network spec, validate it completely, and build the model.

The pipeline is: parse YAML fast (libyaml's CSafeLoader) -> check it against the
JSON Schemas (a compiled validator first; the pure-Python one only to explain
errors) -> cross-host rules the schema cannot express -> frozen model.
Line numbers are only worked out when there is something to report, by
re-composing the YAML with node marks, so a valid spec pays nothing for them.
"""

from __future__ import annotations

import gc
import itertools
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
from provision.errors import Problem, SpecError, UnreadableSpec
from provision.model import Network
from provision.resources import schemas_dir

try:  # libyaml is in every wheel of PyYAML we install, but stay correct without it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


MAX_SPEC_BYTES = 16 * 1024 * 1024  # 100,000 explicit hosts take about 7 MiB
MAX_PROBLEMS = 200  # errors (and warnings) reported; the rest are counted
_MAX_MESSAGE = 600  # characters of one message, after values in it are clipped
_MISSING = object()


class _AliasError(yaml.YAMLError):
    """A YAML alias: refused, so no spec can expand exponentially ("billion laughs")."""


class _SpecLoader(_Loader):
    """libyaml's safe loader, minus YAML 1.1 surprises: 'on'/'no' stay strings and
    dates stay text, so every value is plain JSON data for the schema validators.

    It also refuses aliases (a node constructed twice) and records duplicate mapping
    keys (PyYAML silently keeps the last one; here the first one is kept and each
    duplicate is reported with both lines). '<<' is an ordinary key (no merge keys)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[yaml.MappingNode, yaml.Node, yaml.Node]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # pragma: no cover - only mapping nodes reach here
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                seen = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                ) from None
            if seen:
                first = next(
                    k for k, _ in node.value if k is not key_node and self.constructed_objects.get(k, _MISSING) == key
                )
                self.duplicates.append((node, first, key_node))
                continue
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class _AliasRefusingLoader(_SpecLoader):
    """_SpecLoader that also refuses aliases: a node reached twice is an alias (the
    composer shares the anchored node). Only used when the text has a '*' at all, so a
    spec without one pays nothing for the check."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise _AliasError("alias")
        return super().construct_object(node, deep)


_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:merge"}
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


def _anchored(pattern: str) -> str:
    """A JSON Schema pattern for Python's ``re``: '$' outside a class becomes '\\Z'.

    In ECMA 262 (and in jsonschema_rs) '$' is the end of the text; in Python it also
    matches before a final newline, so ``'alice\\n'`` would pass the explaining validator
    while the fast one rejects it."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    return "".join(out)


@cache
def _python_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(_anchored(pattern))


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _python_pattern(pattern).search(instance):
        yield ValidationError(f"{rules.clip(instance)} does not match {pattern!r}")


def _is_ipv4_network(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return rules.parse_cidr(value) is not None


@cache
def _registry() -> Registry:
    return Registry().with_resources((uri, Resource.from_contents(schema)) for uri, schema in load_schemas().items())


@cache
def _explainer() -> Any:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=list(checker.checkers))
    checker.checks("ipv4-network")(_is_ipv4_network)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"pattern": _pattern_keyword}
    )
    return cls(load_schemas()[ROOT_SCHEMA], registry=_registry(), format_checker=checker)


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


def format_path(path: Iterable[str | int]) -> str:
    """``hosts[3].address``; keys that are not plain names are quoted: ``network['a.b']``."""
    return rules.format_path(list(path))


# --------------------------------------------------------------------------- loading


def read_yaml(text: str, source: str) -> Any:
    """The parsed spec; SpecError for unparsable YAML, aliases and duplicate keys."""
    data, duplicates = _parse(text, source)
    if duplicates:
        raise SpecError(source, duplicates)
    return data


def _parse(text: str, source: str) -> tuple[Any, list[Problem]]:
    """The parsed spec and one problem per duplicate mapping key (the first one is kept)."""
    loader = _AliasRefusingLoader(text) if "*" in text else _SpecLoader(text)  # an alias is '*name'
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        duplicates = _duplicate_problems(loader, node) if loader.duplicates and node is not None else []
    except _AliasError:
        line, anchor = _first_alias(text)
        raise SpecError(
            source,
            [
                Problem(
                    "(root)",
                    f"YAML alias '*{anchor}' is not allowed: aliases can expand a small file into an enormous "
                    "document (the 'billion laughs' attack); write the value out where it is needed",
                    line,
                )
            ],
        ) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # ValueError etc.: a scalar the safe constructor cannot build (e.g. '!!float x')
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [Problem("(root)", f"YAML syntax error: {_bounded_text(problem)}", line)]) from None
    finally:
        loader.dispose()
    return data, duplicates


def _first_alias(text: str) -> tuple[int | None, str]:
    try:
        for event in yaml.parse(text, Loader=_SpecLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                return (mark.line + 1 if mark is not None else None), str(event.anchor)[:40]
    except yaml.YAMLError:  # pragma: no cover - the text composed once already
        pass
    return None, "?"  # pragma: no cover


def _duplicate_problems(loader: _SpecLoader, root: yaml.Node) -> list[Problem]:
    """Where the duplicate keys the loader met are: path from the root, both lines."""
    wanted = {id(m) for m, _, _ in loader.duplicates}
    paths: dict[int, tuple[str | int, ...]] = {}
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    while stack and len(paths) < len(wanted):
        node, path = stack.pop()
        if id(node) in wanted:
            paths[id(node)] = path
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*path, i)) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for k, v in node.value:
                key = _key_of(loader, k)
                if key in seen:
                    continue  # the duplicate's value is dropped: nothing under it is in the data
                seen.add(key)
                stack.append((v, (*path, key)))
    out = []
    for mapping, first, again in loader.duplicates:
        key = _key_of(loader, again)
        where = format_path((*paths.get(id(mapping), ()), key if isinstance(key, str | int) else str(key)))
        out.append(
            Problem(
                where,
                f"duplicate key {rules.clip(key)} (first at line {first.start_mark.line + 1}, "
                f"again at line {again.start_mark.line + 1}); YAML would silently keep only one, remove the other",
                again.start_mark.line + 1,
            )
        )
    return out


def _key_of(loader: _SpecLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        try:
            loader.constructed_objects.pop(node, None)
            return loader.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError):  # pragma: no cover - it was constructed once
            return node.value
    return f"<{type(node).__name__}>"


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(str(path), [_too_big(size)])
        with path.open("rb") as fh:  # bounded even when the "file" is a pipe or device
            raw = fh.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(str(path), [_too_big(len(raw))])
        return raw.decode("utf-8")
    except OSError as exc:  # the machine's problem, not the spec's: exit 8, not 2
        raise UnreadableSpec(f"{path}: cannot read the spec: {_bounded_text(exc.strerror or str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [Problem("(root)", f"cannot read spec: {_bounded_text(str(exc))}")]) from None


def _too_big(size: int) -> Problem:
    return Problem(
        "(root)",
        f"the spec is {'more than ' if size > MAX_SPEC_BYTES else ''}{size:,} bytes; at most "
        f"{MAX_SPEC_BYTES // (1024 * 1024)} MiB is read (100,000 explicit hosts take about 7 MiB: "
        "use ranges such as 'ws[001:250]' for big fleets)",
    )


def check(path: Path) -> Result:
    """Validate the spec at ``path``: every error and warning at once, and the model."""
    text = _read_text(path)
    return check_text(text, str(path), base_dir=path.parent)


def check_text(text: str, source: str, base_dir: Path | None = None) -> Result:
    """Validate spec text. Raises SpecError only for text that cannot be read as a spec
    (unparsable YAML, aliases, over MAX_SPEC_BYTES)."""
    if len(text) > MAX_SPEC_BYTES:  # characters, a lower bound of the bytes
        raise SpecError(source, [_too_big(len(text))])
    with _gc_paused():
        data, duplicates = _parse(text, source)
        result = _check_data(data, source, base_dir)
        if duplicates:
            result.errors.extend(duplicates)
            result.network = None
    if result.errors or result.warnings:
        lines = LineIndex(text)
        result.errors = sorted((lines.attach(p) for p in result.errors), key=_order)
        result.warnings = sorted((lines.attach(p) for p in result.warnings), key=_order)
    return _bounded(result)


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
    return _bounded(_check_data(data, source, base_dir))


def _check_data(data: Any, source: str, base_dir: Path | None) -> Result:
    result = Result(source)
    schema_errors: list[Problem] = []
    fast_ok = _fast_valid(data)
    if not fast_ok:
        schema_errors = list(itertools.islice(schema_problems(data), _MAX_SCHEMA_PROBLEMS))
    result.errors.extend(schema_errors)
    string_errors = rules.check_strings(data)
    result.errors.extend(string_errors)
    if not fast_ok and not schema_errors and not string_errors:
        # Fail closed: the compiled validator rejected what the explaining one accepts.
        result.errors.extend(_fast_rejections(data))
    bad_paths = {p.path for p in schema_errors} | {p.path for p in string_errors}
    if isinstance(data, Mapping):
        found = rules.cross_check(data, bad_paths, base_dir)
        result.errors.extend(found.errors)
        result.warnings.extend(found.warnings)
        if not result.errors:
            result.network = rules.build_network(data, found, source=source, base_dir=base_dir)
    result.errors.sort(key=_order)
    result.warnings.sort(key=_order)
    return result


_MAX_SCHEMA_PROBLEMS = 5 * MAX_PROBLEMS


def _fast_rejections(data: Any) -> list[Problem]:
    """The compiled validator's own reasons, when it is the only one to object (bounded)."""
    out = []
    try:
        for error in itertools.islice(_fast().iter_errors(data), 5):
            path = [p for p in getattr(error, "instance_path", []) if isinstance(p, str | int)]
            out.append(Problem(format_path(path), f"rejected by the schema: {_bounded_text(str(error.message), 200)}"))
    except ValueError as exc:
        out.append(Problem("(root)", f"the spec holds data that is not plain JSON: {_bounded_text(str(exc), 200)}"))
    return out or [Problem("(root)", "rejected by the schema (no reason given); the spec cannot be accepted")]


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _bounded_text(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Text safe to print: control characters escaped, at most ``limit`` characters."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(result: Result) -> Result:
    """At most MAX_PROBLEMS errors and warnings, each printable and of bounded length."""
    result.errors = _cap(result.errors, "error")
    result.warnings = _cap(result.warnings, "warning")
    return result


def _cap(problems: list[Problem], kind: str) -> list[Problem]:
    out = [
        p
        if len(p.message) <= _MAX_MESSAGE and len(p.path) <= 300 and not _UNPRINTABLE.search(p.message + p.path)
        else Problem(_bounded_text(p.path, 300), _bounded_text(p.message), p.line, p.severity)
        for p in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        out.append(
            Problem(
                "(root)",
                f"... and {more} more {kind}(s) not shown; fix the ones above and validate again",
                severity=kind,
            )
        )
    return out


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
        for key in sorted(set(instance) - set(allowed), key=str):
            hint = _close(str(key)[:100], allowed)
            yield Problem(
                format_path((*path, key if isinstance(key, str | int) else str(key))),
                f"unknown field '{str(key)[: rules.CLIP]}'"
                + (f" (did you mean '{hint}'?)" if hint else "")
                + f"; allowed: {', '.join(allowed)}",
            )
        return
    if error.validator == "format":
        text = _FORMAT_TEXT.get(str(error.validator_value), f"is not a valid {error.validator_value}")
        yield Problem(where, f"{rules.clip(instance)} {text}")
        return
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        yield Problem(where, f"{rules.clip(instance)} is not of type {', '.join(repr(t) for t in types)}")
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        yield from _explain_alternatives(error, where)
        return
    if error.validator == "if":
        return  # the then/else branch error explains it
    if error.validator == "pattern" and last == "address":
        yield Problem(
            where,
            f"{rules.clip(instance)} is not a valid address, pool ('10.20.1.10+') or range ('10.20.1.10-10.20.1.99')",
        )
        return
    if error.validator == "not" and isinstance(instance, str):
        yield Problem(where, rules.reserved_reason(last, instance) or f"{rules.clip(instance)} is reserved here")
        return
    if error.validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)  # type: ignore[union-attr]
        yield Problem(where, f"{rules.clip(instance)} is not one of: {options}")
        return
    if error.validator == "maxItems" and isinstance(instance, list):
        yield Problem(where, f"{len(instance)} items; at most {error.validator_value} are allowed here")
        return
    if error.validator == "required" and "'domain'" in error.message and not path:
        yield Problem(where, "domain mode needs a 'domain' block (realm, netbios, admin_password)")
        return
    if error.validator == "required":
        yield Problem(where, error.message.replace("property", "field"))
        return
    if error.validator == "pattern":
        yield Problem(where, f"{rules.clip(instance)} {_pattern_text(path, error)}")
        return
    yield Problem(where, error.message)


def _explain_alternatives(error: ValidationError, where: str) -> Iterator[Problem]:
    last = error.absolute_path[-1] if error.absolute_path else None
    if last == "batch":
        yield Problem(
            where,
            f"{rules.clip(error.instance)} is not a valid batch: "
            "a number of hosts (1 or more) or a percentage '1%'-'100%'",
        )
        return
    parent = error.absolute_path[-2] if len(error.absolute_path) > 1 else None
    if parent == "ntp_servers" and isinstance(error.instance, str):
        yield Problem(where, f"{rules.clip(error.instance)} is neither an IPv4 address nor a host name")
        return
    if parent == "order":
        yield Problem(
            where,
            f"{rules.clip(error.instance)} is not a stage: a role, or a list of domain member roles "
            "(file_server, mail_server, database_server, workstation) rolled out side by side",
        )
        return
    if last == "name" and isinstance(error.instance, str):
        yield Problem(
            where,
            f"{rules.clip(error.instance)} is not a valid host name (lower-case letters, digits, '-') "
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
    if last == "name" and owner == "execution_nodes":
        return "is not a valid host name (lower-case letters, digits, '-'; at most 63 characters)"
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
    if isinstance(last, int) and owner == "commands":
        return (
            "is not 'ALL' nor a command by absolute path with its arguments: no wildcards, quotes, "
            "backslashes, line breaks or tabs, and none of , : = (sudo reads them as syntax)"
        )
    if isinstance(last, int) and owner in ("dcs", "hosts"):
        return "is not a valid host name (lower-case letters, digits, '-')"
    if isinstance(last, int) or last in ("users", "groups", "owner", "group"):
        return "is not a valid user or group name (lower-case letter first, then a-z 0-9 _ . -)"
    return f"does not match {error.validator_value!r}"


def _close(word: str, options: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return found[0] if found else None


# --------------------------------------------------------------------------- line numbers

_PART = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]""")


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
            key = plain or quoted[1:-1]
            child = None
            if isinstance(node, yaml.MappingNode) and (plain or quoted):
                for k, v in node.value:
                    # a quoted part is the key's repr (clipped): compare it that way too
                    if k.value == key or (quoted and isinstance(k.value, str) and rules.clip(k.value) == quoted):
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
