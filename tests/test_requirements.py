"""System requirements per role: defaults, the spec's override, and preflight's judgement.

The judgement is fed what a host really prints: the preflight script run here, on this
machine, with sh (no SSH), and the text of cgroup files as a kernel writes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from provision import preflight, requirements, spec
from provision.model import Host, Mode, Network, RequirementsOverride, Role, Share
from provision.requirements import DiskNeed, HostRequirements, Need

ROOT = Path(__file__).resolve().parent.parent
GIB_KIB = 1024 * 1024


def _net(*hosts: Host, mode: Mode = Mode.DOMAIN) -> Network:
    return Network(name="n", mode=mode, subnets=("10.0.0.0/24",), hosts=hosts)


def _req(host: Host) -> HostRequirements:
    return requirements.for_host(_net(host), host)


def _checks(report: preflight.HostReport) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in report.checks}


def _judge(req: HostRequirements, facts: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    report = preflight.HostReport(req.host, "10.0.0.5")
    preflight.judge_resources(report, req, facts)
    return _checks(report)


def _run_here(script: str) -> dict[str, list[str]]:
    """The script as a host runs it over SSH: by sh, its stdout split into sections."""
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    return preflight.sections(out.stdout)


def _spec(hosts: str, mode: str = "workgroup") -> spec.Result:
    head = (
        "network: {name: office, mode: workgroup, subnets: [192.168.10.0/24]}\n"
        if mode == "workgroup"
        else "network: {name: acme, mode: domain, subnets: [10.20.0.0/16]}\n"
        "domain: {realm: AD.ACME.TEST, netbios: ACME, admin_password: {env: ACME_ADMIN_PW}}\n"
    )
    return spec.check_text(head + "hosts:\n" + hosts, "req.yml")


# --------------------------------------------------------------------------- defaults


def test_every_role_has_figures_whose_minimum_is_at_most_the_recommendation() -> None:
    assert set(requirements.DEFAULTS) == set(Role)
    for role, req in requirements.DEFAULTS.items():
        for need in (req.memory_mb, req.cpus, *(d.gb for d in req.disk)):
            assert 0 < need.minimum <= need.recommended, role
        assert all(d.path.startswith("/") and d.what for d in req.disk), role
    with pytest.raises(ValueError, match="minimum <= recommended"):
        Need(4, 2)


def test_domain_controller_defaults() -> None:
    req = _req(Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER))
    assert req.memory_mb == Need(2048, 4096)
    assert req.cpus == Need(1, 2)
    disk = {d.path: d.gb for d in req.disk}
    assert disk["/var/lib/samba"] == Need(2, 10)
    assert req.overridden == ()


def test_storage_paths_are_the_ones_the_playbooks_fill() -> None:
    """The mail server's mailboxes: wherever the mail_server role puts them."""
    defaults = yaml.safe_load((ROOT / "playbooks/roles/mail_server/defaults/main.yml").read_text())
    mail = {d.path for d in _req(Host("mx1", "10.0.0.6", Role.MAIL_SERVER)).disk}
    assert defaults["mail_server_mail_dir"] in mail
    assert "/var/spool/postfix" in mail
    db = {d.path for d in _req(Host("db1", "10.0.0.7", Role.DATABASE_SERVER)).disk}
    assert "/var/lib/postgresql" in db


def test_servers_need_more_than_clients() -> None:
    d = requirements.DEFAULTS
    for server in (Role.DOMAIN_CONTROLLER, Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER):
        assert d[server].memory_mb.minimum > d[Role.WORKSTATION].memory_mb.minimum
        assert d[server].memory_mb.minimum > d[Role.PEER].memory_mb.minimum
    assert d[Role.DOMAIN_CONTROLLER].memory_mb.minimum >= 2048


@pytest.mark.parametrize("path", sorted(ROOT.glob("inventories/lab-*.yml")), ids=lambda p: p.stem)
def test_lab_hosts_meet_the_recommendation_on_the_lab_machine(path: Path) -> None:
    """The lab: 2 cores and 24 GB the containers all see, ~79 GB free on one disk."""
    network = spec.load_network(path)
    for host in network.hosts:
        req = requirements.for_host(network, host)
        assert req.cpus.recommended <= 2, host.name
        assert req.memory_mb.recommended <= 24 * 1024 * requirements.MEMORY_TOLERANCE, host.name
        assert sum(d.gb.recommended for d in req.disk) <= 70, host.name


# --------------------------------------------------------------------------- shares and override


def test_share_paths_and_homes_are_needs_of_file_servers_and_peers() -> None:
    shares = (Share("projects", "/srv/projects"), Share("common", "/srv/common/"))
    fs = _req(Host("fs1", "10.0.0.5", Role.FILE_SERVER, shares=shares, homes=True))
    disk = {d.path: d for d in fs.disk}
    assert disk["/srv/projects"].gb == Need(1, 10) and disk["/srv/projects"].what == "share projects"
    assert "/srv/common" in disk  # normalised: one path, however it is written
    assert disk["/home"].what == "the [homes] share"
    peer = _req(Host("pc1", "10.0.0.11", Role.PEER, shares=(Share("docs", "/srv/docs"),)))
    assert {d.path: d.gb for d in peer.disk}["/srv/docs"] == Need(1, 5)
    # A path given twice counts once.
    twice = _req(Host("fs2", "10.0.0.8", Role.FILE_SERVER, shares=(Share("a", "/srv/x"), Share("b", "/srv/x"))))
    assert [d.path for d in twice.disk].count("/srv/x") == 1


def test_network_wide_shares_count_on_their_hosts() -> None:
    text = (
        "network: {name: acme, mode: domain, subnets: [10.20.0.0/16]}\n"
        "domain: {realm: AD.ACME.TEST, netbios: ACME, admin_password: {env: ACME_ADMIN_PW}}\n"
        "groups: [{name: staff}]\n"
        "hosts:\n"
        "  - {name: dc1, address: 10.20.0.2, role: domain_controller}\n"
        "  - {name: fs1, address: 10.20.0.5, role: file_server}\n"
        "shares:\n"
        "  - {name: common, path: /srv/common, groups: [staff], hosts: [fs1]}\n"
    )
    result = spec.check_text(text, "wide.yml")
    assert result.ok, result.errors
    net = result.network
    assert net is not None
    assert "/srv/common" in requirements.measured_paths(requirements.for_host(net, net.host("fs1")))


def test_override_replaces_the_minimum_and_keeps_the_recommendation() -> None:
    low = RequirementsOverride(memory_mb=1024, cpus=1, disk_gb=1)
    req = _req(Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER, requirements=low))
    assert req.memory_mb == Need(1024, 4096)
    assert req.cpus == Need(1, 2)
    assert {d.path: d.gb for d in req.disk}["/var/lib/samba"] == Need(1, 10)
    assert req.overridden == ("memory_mb", "cpus", "disk_gb")
    high = RequirementsOverride(memory_mb=16384, disk_gb=50)
    req = _req(Host("fs1", "10.0.0.5", Role.FILE_SERVER, shares=(Share("p", "/srv/p"),), requirements=high))
    assert req.memory_mb == Need(16384, 16384)
    assert req.cpus == requirements.DEFAULTS[Role.FILE_SERVER].cpus
    assert all(d.gb == Need(50, 50) for d in req.disk)  # every path of the host
    assert req.overridden == ("memory_mb", "disk_gb")


def test_spec_requirements_reach_every_host_of_a_range() -> None:
    result = _spec(
        "  - {name: dc1, address: 10.20.0.2, role: domain_controller, requirements: {memory_mb: 1024}}\n"
        "  - {name: 'ws[001:250]', address: 10.20.1.10+, role: workstation, requirements: {cpus: 2, disk_gb: 3}}\n"
        "  - {name: ws-extra, address: 10.20.2.10, role: workstation, requirements: {}}\n"
        "  - {name: mx1, address: 10.20.0.6, role: mail_server, requirements: {memory_mb: 2048.0}}\n",
        mode="domain",
    )
    assert result.ok, result.errors
    net = result.network
    assert net is not None
    assert net.host("dc1").requirements == RequirementsOverride(memory_mb=1024)
    ranged = [h for h in net.hosts if h.range_name == "ws[001:250]"]
    assert len(ranged) == 250
    assert {h.requirements for h in ranged} == {RequirementsOverride(cpus=2, disk_gb=3)}
    assert net.host("ws-extra").requirements is None
    mx1 = net.host("mx1").requirements
    assert mx1 is not None and mx1.memory_mb == 2048 and type(mx1.memory_mb) is int
    reqs = requirements.network_dict(net)
    assert reqs["ws137"]["cpus"] == {"minimum": 2, "recommended": 2}
    assert reqs["dc1"]["memory_mb"] == {"minimum": 1024, "recommended": 4096}
    assert reqs["dc1"]["overridden"] == ["memory_mb"]
    json.dumps(reqs)


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ("{memory_mb: 255}", "hosts[0].requirements.memory_mb", "less than the minimum of 256"),
        ("{memory_mb: 4194305}", "hosts[0].requirements.memory_mb", "greater than the maximum"),
        ("{memory_mb: '1024'}", "hosts[0].requirements.memory_mb", "is not of type 'integer'"),
        ("{cpus: -1}", "hosts[0].requirements.cpus", "less than the minimum of 1"),
        ("{cpus: 1.5}", "hosts[0].requirements.cpus", "is not of type 'integer'"),
        ("{disk_gb: 0}", "hosts[0].requirements.disk_gb", "less than the minimum of 1"),
        ("{disk_gb: false}", "hosts[0].requirements.disk_gb", "is not of type 'integer'"),
        ("{disk: 10}", "hosts[0].requirements.disk", "unknown field 'disk'"),
        ("'big'", "hosts[0].requirements", "is not of type 'object'"),
    ],
)
def test_hostile_requirements_are_refused_at_their_path(entry: str, path: str, message: str) -> None:
    result = _spec(f"  - {{name: pc1, address: 192.168.10.11, role: peer, requirements: {entry}}}\n")
    assert result.network is None
    assert any(p.path == path and message in p.message for p in result.errors), result.errors


def test_schema_os_values_are_the_ones_preflight_knows() -> None:
    schema = json.loads((ROOT / "schemas/host.schema.json").read_text())
    host = schema["$defs"]["host"]["properties"]
    assert set(host["os"]["enum"]) == set(preflight.OS_RELEASES)
    assert "preflight" in host["os"]["description"]
    assert set(host["requirements"]["properties"]) == {"memory_mb", "cpus", "disk_gb"}


# --------------------------------------------------------------------------- text and JSON


def test_describe_and_lines_for_plan_and_show() -> None:
    dc = Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER)
    text = requirements.describe(_req(dc))
    assert text.startswith("memory ≥ 2048 MB (4096 recommended), CPUs ≥ 1 (2), ")
    assert "/var/lib/samba ≥ 2 GB free (10)" in text
    low = Host("dc2", "10.0.0.3", Role.DOMAIN_CONTROLLER, requirements=RequirementsOverride(memory_mb=1024))
    assert requirements.describe(_req(low)).endswith("[spec sets memory_mb]")
    ws = tuple(Host(f"ws{i:03d}", f"10.0.1.{i}", Role.WORKSTATION, range_name="ws[001:200]") for i in range(1, 201))
    net = _net(dc, low, *ws)
    rows = requirements.lines(net)
    assert [(who, role) for who, role, _ in rows] == [
        ("dc1", "domain_controller"),
        ("dc2", "domain_controller"),
        ("ws[001:200]", "workstation"),
    ]
    assert rows[2][2] == requirements.describe(requirements.for_host(net, ws[0]))
    both = _net(dc, Host("dc3", "10.0.0.4", Role.DOMAIN_CONTROLLER))
    assert [who for who, _, _ in requirements.lines(both)] == ["dc1, dc3"]
    as_json = requirements.to_dict(_req(dc))
    assert as_json["memory_mb"] == {"minimum": 2048, "recommended": 4096}
    assert {"path": "/var/lib/samba", "minimum_gb": 2, "recommended_gb": 10}.items() <= next(
        d for d in as_json["disk"] if d["path"] == "/var/lib/samba"
    ).items()


# --------------------------------------------------------------------------- preflight, on this machine


def _meminfo_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise AssertionError("no MemTotal")


def test_the_host_script_measures_this_machine() -> None:
    fs = Host("fs1", "10.0.0.5", Role.FILE_SERVER, shares=(Share("p", "/srv/provision-test-absent/projects"),))
    req = _req(fs)
    facts = _run_here(preflight.host_script(req))
    assert list(facts)[-1] == "clock"  # the clock is read last, as before
    kib, source = preflight.memory_kib(facts["memory"]) or (0, "")
    if source == "MemTotal":
        assert kib == _meminfo_kib()
    else:
        assert kib < _meminfo_kib()
    count, source = preflight.cpu_count(facts["cpus"]) or (0.0, "")
    if source == "nproc":
        assert count == len(os.sched_getaffinity(0))
    free = preflight.free_space(facts["disk"])
    assert sorted(free) == list(range(len(req.disk)))
    # The share does not exist: measured on the filesystem of its nearest parent.
    index = requirements.measured_paths(req).index("/srv/provision-test-absent/projects")
    parent = Path("/srv") if Path("/srv").exists() else Path("/")
    assert abs(free[index][0] - shutil.disk_usage(parent).free // 1024) < 512 * 1024
    checks = _judge(req, facts)
    assert set(checks) == {"memory", "cpus", "disk"}
    for name, (status, detail) in checks.items():
        assert status in ("pass", "warn", "fail") and detail, name
    if checks["disk"][0] == "pass":  # a pass names every path and where it lies
        assert all(path in checks["disk"][1] for path in requirements.measured_paths(req))


def test_check_host_sends_one_script_with_the_hosts_paths() -> None:
    req = _req(Host("mx1", "10.0.0.6", Role.MAIL_SERVER))
    script = preflight.host_script(req)
    for path in requirements.measured_paths(req):
        assert f"p={path};" in script
    assert script.startswith(preflight._SCRIPT) and script.endswith(preflight.SYSTEM_SCRIPT)


def test_judging_real_output_against_figures_this_machine_has_or_lacks() -> None:
    host = Host("h", "10.0.0.5", Role.PEER)
    req = _req(host)
    facts = _run_here(preflight.host_script(req))
    kib, _ = preflight.memory_kib(facts["memory"]) or (0, "")
    cpus, _ = preflight.cpu_count(facts["cpus"]) or (0.0, "")
    free_gb = min(free for free, _ in preflight.free_space(facts["disk"]).values()) // GIB_KIB
    have_mb = kib // 1024
    assert have_mb > 512 and cpus >= 1 and free_gb > 4, "this machine is too small for these tests"

    def figures(memory: Need, cpu: Need, disk: Need) -> HostRequirements:
        return HostRequirements("h", Role.PEER, memory, cpu, (DiskNeed("/", disk, "test"),))

    ok = _judge(figures(Need(256, 256), Need(1, 1), Need(1, 1)), facts)
    assert {k: v[0] for k, v in ok.items()} == {"memory": "pass", "cpus": "pass", "disk": "pass"}
    warn = _judge(figures(Need(256, have_mb * 2), Need(1, int(cpus) + 1), Need(1, free_gb * 2)), facts)
    assert {k: v[0] for k, v in warn.items()} == {"memory": "warn", "cpus": "warn", "disk": "warn"}
    assert f"below the {have_mb * 2} MB recommended" in warn["memory"][1]
    too_much = figures(Need(have_mb * 2, have_mb * 2), Need(int(cpus) + 1, 64), Need(free_gb * 2, free_gb * 3))
    fail = _judge(too_much, facts)
    assert {k: v[0] for k, v in fail.items()} == {"memory": "fail", "cpus": "fail", "disk": "fail"}
    assert f"below the {have_mb * 2} MB minimum of a peer" in fail["memory"][1]
    assert "hosts[].requirements.memory_mb" in fail["memory"][1]
    assert "too little free disk: / on /" in fail["disk"][1]


def test_hostile_paths_are_quoted_in_the_script(tmp_path: Path) -> None:
    evil = f"{tmp_path}/$(touch {tmp_path}/a)`touch {tmp_path}/b`'\"; touch {tmp_path}/c #"
    req = HostRequirements("h", Role.PEER, Need(256, 256), Need(1, 1), (DiskNeed(evil, Need(1, 1), "x"),))
    facts = _run_here(preflight.host_script(req))
    assert not any((tmp_path / n).exists() for n in "abc")
    free = preflight.free_space(facts["disk"])
    assert free[0][0] > 0  # measured at tmp_path, its nearest existing parent
    with pytest.raises(ValueError, match="not an absolute path"):
        preflight.disk_script(["relative/path"])


# --------------------------------------------------------------------------- preflight, kernel text


MEMORY_24G = ["meminfo 24731400"]


def test_cgroup_memory_limit_counts_when_smaller() -> None:
    dc = _req(Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER))
    cpus = ["nproc 2", "cgroup2 max 100000"]
    disk = ["0 81815928 /", "1 81815928 /"]
    limited = _judge(dc, {"memory": [*MEMORY_24G, "cgroup2 1073741824"], "cpus": cpus, "disk": disk})
    assert limited["memory"][0] == "fail" and "1024 MB (cgroup limit)" in limited["memory"][1]
    unlimited = _judge(dc, {"memory": [*MEMORY_24G, "cgroup2 max", "cgroup1 9223372036854771712"],
                            "cpus": cpus, "disk": disk})
    assert unlimited["memory"] == ("pass", "24152 MB (minimum 2048 MB, recommended 4096 MB for a domain_controller)")
    assert unlimited["cpus"][0] == "pass" and unlimited["disk"][0] == "pass"


def test_memory_tolerance_for_what_the_kernel_keeps() -> None:
    dc = _req(Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER))
    # A VM with 2 GiB installed: MemTotal about 1.9 GiB. Below the minimum, but within 10%.
    vm2g = _judge(dc, {"memory": ["meminfo 1995000"], "cpus": ["nproc 2"], "disk": []})
    assert vm2g["memory"][0] == "warn"
    vm1g = _judge(dc, {"memory": ["meminfo 1000000"], "cpus": ["nproc 2"], "disk": []})
    assert vm1g["memory"][0] == "fail"


def test_cgroup_cpu_quota_counts_when_smaller() -> None:
    dc = _req(Host("dc1", "10.0.0.2", Role.DOMAIN_CONTROLLER))
    half = _judge(dc, {"memory": MEMORY_24G, "cpus": ["nproc 8", "cgroup2 50000 100000"], "disk": []})
    assert half["cpus"][0] == "fail" and half["cpus"][1].startswith("0.5 CPU(s) (cgroup CPU quota)")
    v1 = _judge(dc, {"memory": MEMORY_24G, "cpus": ["nproc 8", "cgroup1 150000 100000"], "disk": []})
    assert v1["cpus"][0] == "warn" and v1["cpus"][1].startswith("1.5 CPU(s)")
    none = _judge(dc, {"memory": MEMORY_24G, "cpus": ["nproc 1", "cgroup2 max 100000", "cgroup1 -1 100000"],
                       "disk": []})
    assert none["cpus"][0] == "warn" and none["cpus"][1].startswith("1 CPU(s): below the 2 recommended")


def test_paths_on_one_filesystem_add_up() -> None:
    req = HostRequirements(
        "fs1",
        Role.FILE_SERVER,
        Need(256, 256),
        Need(1, 1),
        (DiskNeed("/srv/a", Need(1, 2), "share a"), DiskNeed("/srv/b", Need(1, 2), "share b"),
         DiskNeed("/var/lib/samba", Need(1, 1), "tdb")),
    )
    facts = {"memory": MEMORY_24G, "cpus": ["nproc 2"]}
    # 1.5 GiB free on /srv: enough for either share, not for both.
    short = _judge(req, {**facts, "disk": ["0 1572864 /srv", "1 1572864 /srv", "2 81815928 /"]})
    assert short["disk"][0] == "fail"
    assert "/srv/a, /srv/b on /srv: 1.5 GB free, needs 2 GB (4 recommended)" in short["disk"][1]
    assert "/var/lib/samba" not in short["disk"][1]  # only the short filesystems are named
    roomy = _judge(req, {**facts, "disk": ["0 5242880 /srv", "1 5242880 /srv", "2 81815928 /"]})
    assert roomy["disk"][0] == "pass"
    unmeasured = _judge(req, {**facts, "disk": ["0 5242880 /srv", "2 81815928 /"]})
    assert unmeasured["disk"] == ("fail", "could not measure free space of /srv/b")


def test_unreadable_facts_fail() -> None:
    req = _req(Host("h", "10.0.0.5", Role.PEER))
    checks = _judge(req, {"memory": ["cgroup2 max"], "cpus": ["nproc "], "disk": [""]})
    assert {k: v[0] for k, v in checks.items()} == {"memory": "fail", "cpus": "fail", "disk": "fail"}
    assert _judge(req, {}) == {k: v for k, v in checks.items()}


# --------------------------------------------------------------------------- the OS the spec names


def _os_check(os_line: str, spec_os: str | None) -> tuple[str, str]:
    report = preflight.HostReport("h", "10.0.0.5")
    facts = {"python": ["/usr/bin/python3"], "os": [os_line], "clock": [str(time.time())]}
    if spec_os is None:  # an execution node: any supported release
        preflight.judge_system(report, facts, time.time())
    else:
        net = _net(mode=Mode.WORKGROUP)
        preflight._judge(report, Host("h", "10.0.0.5", Role.PEER, os=spec_os), net, {**facts, "sudo": ["root"]},
                         time.time())
    return _checks(report)["os"]


def test_preflight_holds_the_host_to_the_spec_os() -> None:
    assert _os_check("debian 12", "debian12") == ("pass", "debian 12 (spec: debian12)")
    assert _os_check("ubuntu 22.04", "ubuntu22.04")[0] == "pass"
    assert _os_check("ubuntu 24.04", "debian12") == (
        "fail", "spec says debian12, host runs ubuntu 24.04; set os: ubuntu24.04 or reinstall it")
    status, detail = _os_check("centos 7", "debian12")
    assert status == "fail" and detail.startswith("spec says debian12, host runs centos 7")
    assert _os_check("", "debian12")[0] == "fail"
    # Execution nodes are not hosts of the spec: any supported release.
    assert _os_check("ubuntu 24.04", None) == ("pass", "ubuntu 24.04")
    assert _os_check("centos 7", None)[0] == "fail"


def test_the_spec_os_reaches_preflight_from_this_machine() -> None:
    """This machine's own /etc/os-release, as the script reads it, against both answers."""
    facts = _run_here(preflight.SYSTEM_SCRIPT)
    line = facts["os"][0]
    release = tuple(line.split()[:2])
    matching = next((k for k, v in preflight.OS_RELEASES.items() if v == release), None)
    if matching is None:
        pytest.skip(f"this machine runs {line}, not a release provision supports")
    other = next(k for k in preflight.OS_RELEASES if k != matching)
    net = _net(mode=Mode.WORKGROUP)
    for spec_os, status in ((matching, "pass"), (other, "fail")):
        report = preflight.HostReport("h", "10.0.0.5")
        preflight._judge(report, Host("h", "10.0.0.5", Role.PEER, os=spec_os), net, facts, time.time())
        assert _checks(report)["os"][0] == status, spec_os
