"""Execution nodes without the lab: slicing, what a slice's stream carries, and the whole
transmit -> worker -> process round trip with a real ``ansible-runner worker`` on this
machine (ansible_connection=local, loopback only) instead of one reached over SSH."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from provision import nodes, results, runner, spec
from provision.cli import cli
from provision.model import Role
from provision.plan import slice_batch, split

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"LAB_ALICE_PW": "Al1ce-s3cret-XyZ", "LAB_BOB_PW": "B0b-s3cret-QwE", "LAB_CAROL_PW": "C4rol-s3cret-RtY",
           "LAB_ADMIN_PW": "Adm1n-s3cret-PoI"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, own_state: Path) -> Path:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    key = own_state / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    return own_state


def _with_nodes(path: Path, tmp: Path, count: int = 2):
    network = spec.load_network(path)
    assert network.rollout.execution_nodes, "the spec names execution nodes"
    return network.with_connection(known_hosts_file=str(tmp / "known_hosts"), identity_file=str(tmp / "id_test"))


def test_split_keeps_servers_on_the_controller_and_ranges_together() -> None:
    network = spec.load_network(ROOT / "inventories" / "campus-nodes.yml")
    local, slices = split(network, network.hosts, 2)
    assert {h.role for h in local} == {Role.DOMAIN_CONTROLLER, Role.FILE_SERVER}
    assert [len(s) for s in slices] == [100, 100]
    assert [h.name for h in slices[0]][:2] == ["ws001", "ws002"] and slices[1][0].name == "ws101"
    _, three = split(network, network.hosts, 3)
    assert [len(s) for s in three] == [67, 67, 66]
    # More nodes than workstations: one slice per workstation, no empty slice.
    few = [h for h in network.hosts if h.role is Role.WORKSTATION][:2]
    assert [len(s) for s in split(network, few, 5)[1]] == [1, 1]
    assert split(network, local, 2) == (local, [])


def test_the_slices_share_the_batch_so_the_dcs_see_no_more_at_once() -> None:
    assert [slice_batch(50, n, 100) for n in (50, 50)] == [25, 25]
    assert [slice_batch(50, n, 200) for n in (67, 67, 66)] == [16, 16, 16]  # never more than 50 together
    assert slice_batch(1, 3, 200) == 1  # at least one host at a time
    assert slice_batch("20%", 100, 200) == "20%"  # a share of each slice is that share of all
    network = spec.load_network(ROOT / "inventories" / "campus-nodes.yml")
    _, slices = split(network, network.hosts, 2)
    assert sum(int(slice_batch(network.rollout.batch, len(s), 200)) for s in slices) <= int(network.rollout.batch)


def _stream_parts(stream: bytes) -> tuple[dict, dict[str, bytes]]:
    """transmit's stream: a kwargs line, a zipfile line with the base64 zip, an eof line."""
    import base64

    first, second, rest = stream.split(b"\n", 2)
    kwargs = json.loads(first)["kwargs"]
    size = json.loads(second)["zipfile"]
    encoded = -(-size // 3) * 4  # base64, no line breaks, straight into the eof line
    data = base64.b64decode(rest[:encoded])
    assert len(data) == size and json.loads(rest[encoded:]) == {"eof": True}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return kwargs, {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def test_a_slice_carries_only_what_its_hosts_need(env: Path) -> None:
    network = _with_nodes(ROOT / "inventories" / "lab-nodes.yml", env)
    _, slices = split(network, network.hosts, 2)
    report = nodes.NodeReport("node1", "10.231.4.11", runtime="/run", prefix="/opt/provision-node")
    item = nodes.Slice(report, slices[0], env / "slice", "/run/provision-node/slice-0123456789abcdef")
    job = runner.prepare(network, runner.RunOptions(), slices[0])
    stream = nodes._pack(network, runner.RunOptions(), item, job)
    kwargs, files = _stream_parts(stream)

    # Never a secret on the command line or in the settings: only the vars file's node path.
    flat = json.dumps(kwargs)
    for value in SECRETS.values():
        assert value not in flat
    assert "-e @/run/provision-node/slice-0123456789abcdef/vars.yml" in kwargs["cmdline"]
    assert kwargs["playbook"] == ".rollout.yml" and kwargs["inventory"] == "inventory/hosts.yml"
    assert kwargs["envvars"]["ANSIBLE_LOCAL_TEMP"].startswith("/run/provision-node/slice-")
    assert kwargs["envvars"]["PATH"].startswith("/opt/provision-node/current/bin:")

    names = set(files)
    assert {"vars.yml", "identity", "known_hosts", "inventory/hosts.yml", "project/.rollout.yml",
            "project/domain_members.yml", "project/ansible.cfg"} <= names
    assert not [n for n in names if n.startswith("project/tests/") or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("artifacts/", "env/"))], "no earlier artifacts, no env files"

    # The secrets the slice's workstations need (to join), and no user's password.
    secret_vars = files["vars.yml"].decode()
    assert SECRETS["LAB_ADMIN_PW"] in secret_vars and "!unsafe" in secret_vars
    assert SECRETS["LAB_ALICE_PW"] not in secret_vars
    for name, data in files.items():
        if name != "vars.yml":
            assert SECRETS["LAB_ADMIN_PW"].encode() not in data, name

    inventory = yaml.load(files["inventory/hosts.yml"], Loader=yaml.BaseLoader)
    assert inventory["all"]["vars"]["ansible_ssh_private_key_file"].endswith("slice-0123456789abcdef/identity")
    assert "UserKnownHostsFile=/run/provision-node/slice-0123456789abcdef/known_hosts" in \
        inventory["all"]["vars"]["ansible_ssh_common_args"]
    # The first DC, ungrouped (no play targets it), for the replication of new accounts.
    assert inventory["all"]["hosts"] == {"ndc1": {"ansible_host": "10.231.4.21"}}
    members = json.dumps(inventory["all"]["children"])
    assert "nws1" in members and "nws2" in members and "nws3" not in members and "ndc1" not in members
    assert not (env / "slice" / "job").exists(), "the slice's folder is gone once packed"


def test_a_nodes_copy_of_the_playbooks_digests_like_the_controllers(tmp_path: Path) -> None:
    """The converged probe digests the code: a host run from a node must not look dirty when the
    controller runs it next (nor the other way round)."""
    import importlib.util

    from provision.resources import playbooks_dir

    path = playbooks_dir() / "action_plugins" / "provision_converged.py"
    spec_ = importlib.util.spec_from_file_location("provision_converged_digest", path)
    assert spec_ is not None and spec_.loader is not None
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    copy = nodes.copy_project(tmp_path / "project")
    assert not (copy / "tests").exists() and not (copy / ".ansible-lint").exists()
    (copy / ".rollout.yml").write_text("[]\n")  # what _pack adds beside the plays
    assert mod._tree_digest(str(copy)) == mod._tree_digest(str(playbooks_dir()))


def test_the_worker_runs_in_an_empty_environment_on_a_tmpfs_folder_it_removes() -> None:
    report = nodes.NodeReport("node1", "10.231.4.11", runtime="/run", prefix="/opt/provision-node")
    item = nodes.Slice(report, [], Path("/nonexistent"), "/run/provision-node/slice-0123456789abcdef")
    command = nodes.remote_command(item)
    assert "umask 077" in command and "env -i " in command
    assert "trap 'rm -rf /run/provision-node/slice-0123456789abcdef' EXIT" in command
    assert "/opt/provision-node/current/bin/ansible-runner worker --private-data-dir " in command


def _local_worker(network, item):
    """The slice's real remote command, run here instead of over SSH."""
    return ["sh", "-c", nodes.remote_command(item)]


def _local_vars(tmp: Path) -> dict:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "smoke_marker": str(tmp / "marker-{{ inventory_hostname }}")}


def _reports(tmp: Path, count: int) -> list[nodes.NodeReport]:
    """Nodes that are this machine: a tmpfs folder, and the venv as their installed prefix."""
    runtime = Path("/dev/shm") / f"provision-test-node-{os.getpid()}-{tmp.name}"
    runtime.mkdir(mode=0o700)
    prefix = tmp / "node-prefix"
    prefix.mkdir(exist_ok=True)
    if not (prefix / "current").exists():
        (prefix / "current").symlink_to(Path(sys.executable).parent.parent)
    out = []
    for i in range(1, count + 1):
        r = nodes.NodeReport(f"node{i}", f"10.231.2.{100 + i}", runtime=str(runtime), prefix=str(prefix))
        r.add("auth", "pass")
        out.append(r)
    return out


def test_slices_stream_to_real_workers_and_come_back_as_one_run(env: Path, capfd) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    reports = _reports(env, 2)
    seen: list[results.Progress] = []
    arts = env / "artifacts"
    options = runner.RunOptions(playbook="smoke.yml", extra_vars=_local_vars(env), keep_artifacts=arts)
    try:
        result = nodes.apply(network, options, reports, progress=seen.append, transport=_local_worker)
        runtime = Path(reports[0].runtime)
        assert list(runtime.glob("provision-node/*")) == [], "the workers' folders are removed"
    finally:
        import shutil

        shutil.rmtree(reports[0].runtime, ignore_errors=True)
    assert result.ok, result.to_dict()
    peers = [h.name for h in network.hosts]
    _, slices = split(network, network.hosts, 2)
    want = {h.name: f"node{i}" for i, s in enumerate(slices, 1) for h in s}
    assert result.nodes == want and set(result.hosts) == set(peers)
    assert all(result.hosts[h].changed == 1 for h in peers)  # the marker, written by each worker
    assert all((env / f"marker-{h}").read_text() == f"provisioned {h}\n" for h in peers)
    doc = result.to_dict()
    assert {h: s["node"] for h, s in doc["hosts"].items()} == want
    # One progress line: the play's total is every slice's hosts together.
    assert max(p.hosts_total for p in seen if p.play == "Smoke test") == len(peers)
    # Each node's events came back into its own artifacts; none holds a secret.
    for node in ("node1", "node2"):
        assert list((arts / node).glob("**/job_events/*.json")), node
    for path in arts.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [v for v in SECRETS.values() if v.encode() in data], path
    out, err = capfd.readouterr()
    assert not [v for v in SECRETS.values() if v in out + err]
    # --retry-failed has nothing to do.
    assert runner.last_failed(network) == []


def test_a_lost_node_fails_only_its_slice(env: Path) -> None:
    network = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    reports = _reports(env, 2)
    worker = _local_worker

    def transport(net, item):
        if item.report.host == "node2":
            return ["sh", "-c", f"env > {env}/ssh-env; cat >/dev/null; "
                    "echo 'Connection to node2 closed by remote host.' >&2; exit 255"]
        return worker(net, item)

    options = runner.RunOptions(playbook="smoke.yml", extra_vars=_local_vars(env))
    try:
        result = nodes.apply(network, options, reports, transport=transport)
    finally:
        import shutil

        shutil.rmtree(reports[0].runtime, ignore_errors=True)
    _, slices = split(network, network.hosts, 2)
    lost = {h.name for h in slices[1]}
    assert not result.ok and result.status == "failed" and result.rc
    assert set(result.failed_hosts()) == lost
    for name in lost:
        assert result.hosts[name].unreachable == 1
    messages = {o.host: o.message for o in result.failures()}
    assert set(messages) == lost
    assert all("execution node node2" in m and "closed by remote host" in m for m in messages.values())
    assert all(result.hosts[h.name].ok and not result.hosts[h.name].failed for h in slices[0])
    # What carries the stream (ssh) got the allow-listed environment: no {env:} secret.
    seen = (env / "ssh-env").read_text()
    assert "PATH=" in seen and not [v for v in SECRETS.values() if v in seen]
    # --retry-failed takes exactly the lost slice's hosts.
    assert sorted(runner.last_failed(network)) == sorted(lost)


def test_merge_is_successful_only_when_every_part_is() -> None:
    ok = results.RunResult(status="successful", rc=0)
    bad = results.RunResult(status="failed", rc=2)
    assert nodes.merge([ok, ok], False).ok
    merged = nodes.merge([ok, bad], False)
    assert (merged.status, merged.rc, merged.ok) == ("failed", 2, False)
    assert not nodes.merge([], False).ok


def test_plan_shows_each_node_and_its_slice(env: Path) -> None:
    res = CliRunner().invoke(cli, ["plan", str(ROOT / "inventories" / "lab-nodes.yml")])
    assert res.exit_code == 0, res.output
    assert "node1              10.231.4.11      nws1, nws2" in res.output
    res = CliRunner().invoke(cli, ["plan", "--format", "json", str(ROOT / "inventories" / "campus-nodes.yml")])
    doc = json.loads(res.output)
    slices = [n["hosts"] for n in doc["rollout"]["execution_nodes"]]
    assert slices == [[f"ws{i:03d}" for i in range(1, 101)], [f"ws{i:03d}" for i in range(101, 201)]]


def test_nodes_commands_need_nodes_in_the_spec() -> None:
    for command in ("setup", "check"):
        res = CliRunner().invoke(cli, ["nodes", command, str(ROOT / "inventories" / "lab-domain.yml")])
        assert res.exit_code == 2 and "names no rollout.execution_nodes" in res.output
