"""The spec corpus: every bad spec in tests/data/invalid is rejected with the right
path and line, through the library and through the CLI; every spec in
tests/data/valid passes.

Each invalid file starts with comment lines:

    # expect: PATH:LINE          (one or more; each must be among the errors)
    # expect-message: SUBSTRING  (optional; in the message of an expected error)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision import spec
from provision.cli import cli
from provision.errors import Problem, SpecError

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yml"))
VALID = sorted((DATA / "valid").glob("*.yml"))

_EXPECT = re.compile(r"^#\s*expect:\s*(?P<path>\S+):(?P<line>\d+)\s*$")
_MESSAGE = re.compile(r"^#\s*expect-message:\s*(?P<text>.+?)\s*$")


@dataclass(frozen=True)
class Expectation:
    places: tuple[tuple[str, int], ...]
    messages: tuple[str, ...]


def expectations(path: Path) -> Expectation:
    places: list[tuple[str, int]] = []
    messages: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _EXPECT.match(line):
            places.append((m["path"], int(m["line"])))
        elif m := _MESSAGE.match(line):
            messages.append(m["text"])
    return Expectation(tuple(places), tuple(messages))


def errors_of(path: Path) -> list[Problem]:
    """Every error the library reports for the spec (unparsable YAML included)."""
    try:
        result = spec.check(path)
    except SpecError as exc:
        return list(exc.problems)
    assert result.network is None, "a spec with errors must not produce a model"
    return list(result.errors)


def _show(problems: list[Problem]) -> str:
    return "\n".join(f"  {p.line}: {p.path}: {p.message}" for p in problems) or "  (no errors)"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_size() -> None:
    assert len(INVALID) >= 250
    assert len(VALID) >= 8
    hostile = [p for p in INVALID if p.stem.startswith(("ctrl-", "jinja-", "smb-", "dollar-", "uri-", "yaml-"))]
    assert len(hostile) >= 60


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_file_declares_expectations(path: Path) -> None:
    exp = expectations(path)
    assert exp.places, f"{path.name}: no '# expect: PATH:LINE' header"
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    for _, line in exp.places:
        assert 1 <= line <= n_lines


def test_invalid_files_are_distinct() -> None:
    bodies = {}
    for path in INVALID:
        body = "\n".join(x for x in path.read_text(encoding="utf-8").splitlines() if not x.startswith("#"))
        assert body not in bodies, f"{path.name} repeats {bodies.get(body)}"
        bodies[body] = path.name


# --------------------------------------------------------------------------- library


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_spec_reports_expected_errors(path: Path) -> None:
    exp = expectations(path)
    errors = errors_of(path)
    assert errors, f"{path.name}: no error reported"
    found = {(p.path, p.line) for p in errors}
    for place in exp.places:
        assert place in found, f"{path.name}: expected an error at {place[0]} line {place[1]}; got:\n{_show(errors)}"
    at_places = [p.message for p in errors if (p.path, p.line) in set(exp.places)]
    for text in exp.messages:
        assert any(text in m for m in at_places), (
            f"{path.name}: no expected error mentions {text!r}; got:\n{_show(errors)}"
        )
    for p in errors:
        assert p.severity == "error"
        assert p.message.strip()


# --------------------------------------------------------------------------- CLI


def _runner() -> CliRunner:
    return CliRunner()


def _no_traceback(result: object) -> None:
    exc = getattr(result, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), f"unexpected {type(exc).__name__}: {exc}"
    assert "Traceback" not in getattr(result, "output", "")


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_spec_cli_text(path: Path) -> None:
    exp = expectations(path)
    result = _runner().invoke(cli, ["validate", str(path)])
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    for where, line in exp.places:
        assert f"{path}:{line}: {where}:" in result.output, result.output
    assert "invalid" in result.output


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_spec_cli_json(path: Path) -> None:
    exp = expectations(path)
    result = _runner().invoke(cli, ["validate", "--format", "json", str(path)])
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"--format json did not print JSON on stdout:\n{result.output}")
    assert report["valid"] is False
    assert report["errors"]
    found = {(e["path"], e["line"]) for e in report["errors"]}
    for place in exp.places:
        assert place in found, report["errors"]


MAX_OUTPUT = 1_000_000  # bytes a rejected spec may print
MAX_SECONDS = 20.0


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_spec_cli_bounded(path: Path) -> None:
    """Every bad spec: exit 2, its expected paths named, no traceback, bounded output and time."""
    exp = expectations(path)
    start = time.perf_counter()
    result = _runner().invoke(cli, ["validate", str(path)])
    elapsed = time.perf_counter() - start
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    for where, _line in exp.places:
        assert f": {where}: " in result.output, result.output
    assert len(result.output.encode("utf-8", "backslashreplace")) < MAX_OUTPUT
    assert elapsed < MAX_SECONDS


_PROCESS_SAMPLE = [p for p in INVALID if p.stem.startswith(("yaml-", "duplicate-key-", "ctrl-share-comment-"))]


@pytest.mark.parametrize("path", _PROCESS_SAMPLE, ids=_ids(_PROCESS_SAMPLE))
def test_invalid_spec_real_process(path: Path) -> None:
    """The installed entry point, in its own process: exit 2, bounded, no traceback."""
    exe = Path(sys.executable).with_name("provision")
    if not exe.exists():
        pytest.skip("provision entry point not installed next to this interpreter")
    exp = expectations(path)
    start = time.perf_counter()
    proc = subprocess.run([str(exe), "validate", str(path)], capture_output=True, timeout=MAX_SECONDS, check=False)
    assert time.perf_counter() - start < MAX_SECONDS
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert b"Traceback" not in out
    assert len(out) < MAX_OUTPUT
    for where, line in exp.places:
        assert f"{path}:{line}: {where}:".encode() in out, out


# --------------------------------------------------------------------------- valid specs


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_spec_library(path: Path) -> None:
    result = spec.check(path)
    assert not result.errors, _show(result.errors)
    assert result.network is not None
    assert result.network.hosts


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_spec_cli(path: Path) -> None:
    result = _runner().invoke(cli, ["validate", str(path)])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert f"{path}: valid:" in result.output
    result = _runner().invoke(cli, ["validate", "--format", "json", str(path)])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert report["errors"] == []


def test_local_realm_is_valid_with_warnings() -> None:
    result = spec.check(DATA / "valid" / "local-realm-warnings.yml")
    assert result.network is not None
    paths = {p.path for p in result.warnings}
    assert "domain.realm" in paths
    assert all(p.severity == "warning" for p in result.warnings)


def test_ranges_expand() -> None:
    result = spec.check(DATA / "valid" / "ranges-pools-and-explicit.yml")
    assert result.network is not None
    names = [h.name for h in result.network.hosts]
    assert len(names) == 40 + 20 + 1 + 2
    assert names[0] == "pc01" and "pc40" in names and "lab20" in names and "kiosk7" in names and "r9x" in names
    by_name = {h.name: h.address for h in result.network.hosts}
    assert by_name["pc40"] == "10.30.0.49"
    assert by_name["lab1"] == "10.30.1.100"
