"""The model a network was last applied with, so ``plan`` can say what the next apply changes.

After a successful apply the network's model is written to
``<state dir>/applied.json`` (``paths.state_dir``: ``$XDG_STATE_HOME/provision/<name>``),
and read back into a real ``model.Network`` for ``changes.diff``.

The file holds the network's meaning only: ``Host.connection`` (a ``--vagrant``
transport) is dropped, and the spec's path (``Network.source``, ``base_dir``) is
metadata. It holds no secret by construction: the model has none (a ``SecretRef``
names an environment variable or a file), and a ``SecretRef`` is written as its
``describe()`` reference (``env:NAME`` / ``file:PATH``), never resolved.

File format (``version`` is raised whenever a reader of the old version would
misread the new one)::

    {"format": "provision-applied", "version": 1, "recorded_at": "2024-05-01T12:00:00Z",
     "provision": "0.1.0", "source": "/abs/spec.yml", "base_dir": "/abs",
     "network": {...every field of model.Network, nested dataclasses as objects,
                 tuples as arrays, enums as their values, SecretRef as "env:NAME"...}}
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from provision import paths
from provision.errors import ProvisionError
from provision.model import Host, Network, SecretRef

FORMAT = "provision-applied"
VERSION = 1
FILE_NAME = "applied.json"

# Fields that are not the network's meaning: never written (connection) or kept
# as metadata beside the model (source, base_dir).
_DROPPED: dict[type, frozenset[str]] = {
    Host: frozenset({"connection"}),
    Network: frozenset({"source", "base_dir"}),
}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # the schema's network.name


class StateError(ProvisionError):
    """The record of the last apply cannot be read (broken, or written by a newer provision)."""


def path_for(network: Network | str) -> Path:
    """Where the last applied model of a network is kept."""
    if isinstance(network, str) and not _NAME.match(network):
        raise StateError(f"'{network}' is not a network name")
    return paths.state_dir(network) / FILE_NAME


def _provision_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("provision")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


# --------------------------------------------------------------------------- writing


def to_data(value: Any) -> Any:
    """A model value as JSON data; a SecretRef as its reference, never a value."""
    if isinstance(value, SecretRef):
        return value.describe()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        dropped = _DROPPED.get(type(value), frozenset())
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in dropped}
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot record a {type(value).__name__}")  # pragma: no cover - a new model type


def record(network: Network, path: Path | None = None) -> Path:
    """Write ``network`` as the last applied model (atomically, 0600 in a 0700 folder); returns the file."""
    target = path or path_for(network)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provision": _provision_version(),
        "source": str(Path(network.source).resolve()) if network.source else "",
        "base_dir": str(Path(network.base_dir).resolve()) if network.base_dir else "",
        "network": to_data(network),
    }
    text = json.dumps(document, indent=1, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(target)  # atomic: os.replace
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- reading


class _Broken(Exception):
    """A value that does not fit its field; ``where`` is the JSON path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where or 'the record'}: {message}")


def _secret(data: Any, where: str) -> SecretRef:
    if isinstance(data, str) and data.startswith("env:") and len(data) > 4:
        return SecretRef(env=data[4:])
    if isinstance(data, str) and data.startswith("file:") and len(data) > 5:
        return SecretRef(file=data[5:])
    raise _Broken(where, "expected a secret reference 'env:NAME' or 'file:PATH'")


def _fits(hint: Any, data: Any) -> bool:
    """Whether JSON ``data`` has the shape of ``hint`` (to pick the arm of a union)."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return data is None
    if hint is bool:
        return isinstance(data, bool)
    if hint is int:
        return isinstance(data, int) and not isinstance(data, bool)
    if hint is float:
        return isinstance(data, int | float) and not isinstance(data, bool)
    if hint is str:
        return isinstance(data, str)
    if hint is SecretRef:
        return isinstance(data, str)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return isinstance(data, str)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(data, dict)
    if origin in (tuple, list):
        return isinstance(data, list)
    if origin is dict:
        return isinstance(data, dict)
    return False


def from_data(hint: Any, data: Any, where: str = "") -> Any:
    """``data`` (JSON) as a value of the type ``hint``: dataclasses, tuples, enums, unions, dicts."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(hint):
            if _fits(arm, data):
                return from_data(arm, data, where)
        raise _Broken(where, f"unexpected {type(data).__name__} {json.dumps(data)[:60]}")
    if hint is Any:
        return data
    if hint is SecretRef:
        return _secret(data, where)
    if not _fits(hint, data):
        raise _Broken(where, f"expected {getattr(hint, '__name__', hint)}, found {json.dumps(data)[:60]}")
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(data)
        except ValueError:
            raise _Broken(where, f"'{data}' is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, data, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise _Broken(where, f"expected {len(args)} items, found {len(data)}")
        return tuple(from_data(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if origin is list:
        (arg,) = typing.get_args(hint)
        return [from_data(arg, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        key, val = typing.get_args(hint)
        return {from_data(key, k, where): from_data(val, v, f"{where}.{k}") for k, v in data.items()}
    return data  # str, int, float, bool: _fits checked them


@cache
def _shape(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """A dataclass's resolved type hints and the fields a record holds (once per class)."""
    dropped = _DROPPED.get(cls, frozenset())
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in dropped}
    return typing.get_type_hints(cls), fields


def _dataclass(cls: type, data: dict[str, Any], where: str) -> Any:
    hints, fields = _shape(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _Broken(where, f"unknown field '{unknown[0]}' of {cls.__name__}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            values[name] = from_data(hints[name], data[name], f"{where}.{name}" if where else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Broken(where, f"missing field '{name}' of {cls.__name__}")
    return cls(**values)


def _document(target: Path) -> dict[str, Any] | None:
    """The record's JSON document, its format checked; None when there is none."""
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the record of the last apply {target}: {exc.strerror}") from None
    again = _again(target)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{target} is not valid JSON ({exc}); {again}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f"{target} is not a record of an apply; {again}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError(f"{target} has no format version; {again}")
    if version > VERSION:
        raise StateError(
            f"{target} was written by a newer provision ({document.get('provision', 'unknown')}, "
            f"format {version}; this one reads up to {VERSION}): upgrade provision, or {again}"
        )
    return document


def _again(target: Path) -> str:
    return f"delete {target} to plan as if nothing was applied (the next apply records it again)"


def metadata(network: Network | str, path: Path | None = None) -> dict[str, str] | None:
    """When and by which provision the last apply was recorded, and from which spec; None: never."""
    document = _document(path or path_for(network))
    if document is None:
        return None
    keys = ("recorded_at", "provision", "source", "base_dir")
    return {k: document[k] if isinstance(document.get(k), str) else "" for k in keys}


def recorded_at(network: Network | str, path: Path | None = None) -> str | None:
    """When the last apply was recorded (UTC, ISO 8601 with Z); None: never."""
    meta = metadata(network, path)
    return None if meta is None else meta["recorded_at"] or None


def load(network: Network | str, path: Path | None = None) -> Network | None:
    """The model the network was last applied with; None when no apply was recorded.

    A broken file, or one of a newer format, raises StateError (what to do is in the message).
    """
    name = network if isinstance(network, str) else network.name
    target = path or path_for(network)
    document = _document(target)
    if document is None:
        return None
    again = _again(target)
    try:
        model = from_data(Network, document.get("network"), "network")
    except _Broken as exc:
        raise StateError(
            f"{target} is broken or was written by another provision "
            f"({document.get('provision', 'unknown')}): {exc}; {again}"
        ) from None
    except (TypeError, ValueError) as exc:  # a constructor refused a value
        raise StateError(f"{target} is broken: {exc}; {again}") from None
    if not isinstance(model, Network):  # pragma: no cover - from_data(Network, ...) builds one
        raise StateError(f"{target} is broken; {again}")
    if model.name != name:
        raise StateError(f"{target} records network '{model.name}', not '{name}'; {again}")
    source, base_dir = document.get("source", ""), document.get("base_dir", "")
    return dataclasses.replace(
        model,
        source=source if isinstance(source, str) else "",
        base_dir=base_dir if isinstance(base_dir, str) else "",
    )
