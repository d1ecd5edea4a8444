"""provision.state: the model last applied, written and read back (real files, real specs)."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision import paths, secrets, spec, state
from provision.errors import ProvisionError
from provision.model import (
    DEFAULT_ORDER,
    HostConnection,
    Network,
    Role,
    Rollout,
    SecretRef,
    TlsMaterial,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "inventories").glob("*.yml"))


def _meaning(n: Network) -> Network:
    """The network without what the record keeps as metadata only."""
    return dataclasses.replace(n, source="", base_dir="")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_spec_round_trips(path: Path, own_state: Path) -> None:
    network = spec.load_network(path)
    written = state.record(network)
    assert written == paths.state_dir(network) / "applied.json"
    assert written.is_relative_to(own_state / "state")
    loaded = state.load(network.name)
    assert loaded is not None
    assert _meaning(loaded) == _meaning(network)
    # Real model objects come back: enums, tuples, nested frozen dataclasses.
    assert isinstance(loaded.mode, type(network.mode))
    assert all(isinstance(h.role, Role) for h in loaded.hosts)
    assert isinstance(loaded.hosts, tuple) and isinstance(loaded.rollout.order, tuple)
    assert all(isinstance(stage, tuple) for stage in loaded.rollout.order)
    # The spec's path is metadata, made absolute.
    assert loaded.source == str(path.resolve()) or loaded.source == str(Path(network.source).resolve())
    assert state.load(network) == loaded  # by name or by the network itself


def test_file_is_private_atomic_and_carries_its_metadata(own_state: Path) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    path = state.record(network)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["format"] == "provision-applied"
    assert doc["version"] == state.VERSION == 1
    assert doc["recorded_at"].endswith("Z") and doc["recorded_at"][:2] == "20"
    assert isinstance(doc["provision"], str) and doc["provision"]
    assert doc["source"] == str((ROOT / "inventories" / "lab-workgroup.yml").resolve()) or doc["source"].endswith(
        "lab-workgroup.yml"
    )
    assert "source" not in doc["network"] and "base_dir" not in doc["network"]
    assert doc["network"]["hosts"][0]["role"] == "peer"
    # Recording again replaces the file and leaves no temporary file behind.
    again = state.record(dataclasses.replace(network, workgroup="OTHER"))
    assert again == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["applied.json"]
    loaded = state.load("labwg")
    assert loaded is not None and loaded.workgroup == "OTHER"


def test_explicit_path(tmp_path: Path) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    target = tmp_path / "elsewhere" / "model.json"
    assert state.record(network, target) == target
    loaded = state.load(network, target)
    assert loaded is not None and _meaning(loaded) == _meaning(network)


def test_missing_record_is_none(own_state: Path) -> None:
    assert state.load("neverapplied") is None
    assert state.metadata("neverapplied") is None
    assert state.recorded_at("neverapplied") is None


def test_metadata_says_when_and_from_what(own_state: Path) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    path = state.record(network)
    meta = state.metadata(network)
    assert meta is not None
    doc = json.loads(path.read_text())
    assert meta == {k: doc[k] for k in ("recorded_at", "provision", "source", "base_dir")}
    assert meta["source"].endswith("inventories/lab-workgroup.yml") and Path(meta["source"]).is_absolute()
    assert state.recorded_at(network) == state.recorded_at("labwg") == doc["recorded_at"]


def test_connection_is_not_recorded(own_state: Path) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    conn = HostConnection("127.0.0.1", port=2222, user="vagrant", identity_file="/tmp/key", proxy_command="nc %h %p")
    vagrant = dataclasses.replace(network, hosts=tuple(dataclasses.replace(h, connection=conn) for h in network.hosts))
    path = state.record(vagrant)
    text = path.read_text()
    assert "connection" not in text and "2222" not in text and "nc %h %p" not in text
    loaded = state.load(network.name)
    assert loaded is not None
    assert all(h.connection is None for h in loaded.hosts)
    assert _meaning(loaded) == _meaning(network)


def _write_spec(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_no_secret_value_is_ever_written(tmp_path: Path, own_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_value = "Env-Secret-Value-4711"
    file_value = "File-Secret-Value-0815"
    admin_value = "Admin-Secret-Value-1234"
    monkeypatch.setenv("STATE_TEST_ALICE_PW", env_value)
    monkeypatch.setenv("STATE_TEST_ADMIN_PW", admin_value)
    (tmp_path / "bob.pw").write_text(file_value + "\n")
    (tmp_path / "bob.pw").chmod(0o600)
    data = yaml.safe_load((ROOT / "inventories" / "lab-domain.yml").read_text())
    data["domain"]["admin_password"] = {"env": "STATE_TEST_ADMIN_PW"}
    data["users"][0]["password"] = {"env": "STATE_TEST_ALICE_PW"}
    data["users"][1]["password"] = {"file": "bob.pw"}
    data["ssh"].pop("identity_file")
    data["ssh"].pop("known_hosts_file")
    network = spec.load_network(_write_spec(tmp_path, data))
    # The values are really reachable from this network...
    values = secrets.secret_values(network)
    assert {env_value, file_value, admin_value} <= set(values)
    # ...and none of them reaches the record: references only.
    text = state.record(network).read_text()
    for value in values:
        assert value not in text
    doc = json.loads(text)
    assert [u["password"] for u in doc["network"]["users"]] == ["env:STATE_TEST_ALICE_PW", "file:bob.pw"]
    assert doc["network"]["domain"]["admin_password"] == "env:STATE_TEST_ADMIN_PW"
    loaded = state.load(network.name)
    assert loaded is not None
    assert loaded.users[1].password == SecretRef(file="bob.pw")
    assert loaded.domain is not None and loaded.domain.admin_password == SecretRef(env="STATE_TEST_ADMIN_PW")


def _recorded(own_state: Path) -> tuple[Path, dict[str, Any]]:
    network = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    path = state.record(network)
    return path, json.loads(path.read_text())


def _refused(path: Path, doc: dict[str, Any] | str) -> str:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(state.StateError) as err:
        state.load("labdom")
    assert isinstance(err.value, ProvisionError)
    message = str(err.value)
    assert str(path) in message
    return message


def test_newer_format_is_refused_with_advice(own_state: Path) -> None:
    path, doc = _recorded(own_state)
    doc["version"] = state.VERSION + 1
    doc["provision"] = "9.9.9"
    message = _refused(path, doc)
    assert "newer provision" in message and "9.9.9" in message and "upgrade" in message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: [], "not a record"),
        (lambda d: {**d, "format": "something-else"}, "not a record"),
        (lambda d: {**d, "version": "1"}, "no format version"),
        (lambda d: d["network"]["hosts"][0].update(role="mainframe") or d, "network.hosts[0].role"),
        (lambda d: d["network"]["hosts"][0].update(address=17) or d, "network.hosts[0].address"),
        (lambda d: d["network"]["users"][0].update(password="hunter2") or d, "network.users[0].password"),
        (lambda d: d["network"]["rollout"].update(order="all") or d, "network.rollout.order"),
        (lambda d: d["network"]["policies"].update(access=[{"allow": "yes"}]) or d, "access[0].allow"),
        (lambda d: d["network"]["hosts"][0].update(colour="red") or d, "unknown field 'colour' of Host"),
        (lambda d: d["network"]["hosts"][0].pop("address") and d, "missing field 'address' of Host"),
        (lambda d: d["network"].update(name="other") or d, "records network 'other'"),
        (lambda d: {**d, "network": None}, "expected Network"),
    ],
)
def test_broken_records_raise_a_clear_error(own_state: Path, damage: Any, expected: str) -> None:
    path, doc = _recorded(own_state)
    message = _refused(path, damage(doc))
    assert expected in message
    assert "delete" in message  # says how to get past it
    assert "Traceback" not in message


def test_unreadable_record_is_a_state_error(own_state: Path) -> None:
    path, _ = _recorded(own_state)
    path.unlink()
    path.mkdir()  # a folder where the file should be
    with pytest.raises(state.StateError, match="cannot read"):
        state.load("labdom")


def test_bad_network_name_is_refused(own_state: Path) -> None:
    with pytest.raises(state.StateError):
        state.load("../../etc")


def test_generic_conversion_handles_the_model_types() -> None:
    # int | str, tuple[tuple[Role, ...], ...] and the defaults of missing fields.
    rollout = Rollout(batch="20%", order=((Role.DOMAIN_CONTROLLER,), (Role.FILE_SERVER, Role.WORKSTATION)))
    data = state.to_data(rollout)
    assert data["batch"] == "20%" and data["order"] == [["domain_controller"], ["file_server", "workstation"]]
    assert state.from_data(Rollout, data) == rollout
    assert state.from_data(Rollout, {"batch": 5}) == Rollout(batch=5, order=DEFAULT_ORDER)
    # dict[str, str] and tuple[str, ...].
    tls = TlsMaterial(ca_certificates=("PEM-A",), chains={"dc1": "CHAIN"}, keys={})
    assert state.from_data(TlsMaterial, state.to_data(tls)) == tls
    # A bool is not an int, and an int is not a str.
    with pytest.raises(Exception, match="max_fail_percent"):
        state.from_data(Rollout, {"max_fail_percent": True}, "rollout")
