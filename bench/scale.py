"""How a domain's rollout scales with its workstations, on the lab (printed, not asserted).

Run as root:  .venv/bin/python bench/scale.py [--sizes 0,10,25,50,100] [--workgroup 100]

For each N: inventories/lab-domain.yml plus N workstations from a range (half sssd,
half winbind), on fresh hosts: lab up, first apply, re-apply with nothing to change,
verify; wall time and the controller's CPU (provision and everything it started) of
each, and of the first apply also the CPU the lab's hosts used meanwhile (DCs,
workstations, other servers; they share the controller's cores); then the marginal cost
of an added workstation (least-squares slope of the first apply over N), and the CPU
floor of each step: all the CPU it took, controller and hosts, over the machine's cores
(no schedule on these cores can be faster). --workgroup M also times lab-workgroup.yml's
peers plus M more peers. --nodes W (issue 16) applies W fresh workstations of a one-DC
domain twice, from the controller alone and through two execution nodes (lab hosts),
each time on fresh hosts with the DC already built, then re-applies both ways: wall time
and the controller's CPU of each; the controller's CPU should fall roughly in proportion
to the share shipped out to the nodes (all of the workstations here).
Targets (issue 12, 2 cores): first apply of the 5-host domain <= 60 s, marginal cost per
workstation <= 3 s wall and <= 1 s CPU, re-apply and verify of the 100-workstation
domain <= 30 s each, lab up of 100 hosts <= 60 s. Destroys the lab before and after;
every address is inside the lab network.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provision import lab, spec  # noqa: E402
from provision.lab import cgroups  # noqa: E402
from provision.lab.paths import CGROUP_ROOT  # noqa: E402
from provision.model import Network  # noqa: E402
from provision.secrets import env_names  # noqa: E402

# Where a run's CPU goes, besides the controller: the lab's hosts by kind (host name prefix).
KINDS = (("dc", "DCs"), ("ws", "workstations"), ("ndc", "DCs"), ("nws", "workstations"), ("node", "nodes"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hosts_cpu() -> dict[str, float]:
    """CPU seconds used so far by the lab's hosts, summed by kind ("other": the other servers)."""
    totals = dict.fromkeys([label for _, label in KINDS], 0.0) | {"other": 0.0}
    for name in cgroups.children(CGROUP_ROOT):
        seconds = None if name.startswith("_") else cgroups.cpu_seconds(f"{CGROUP_ROOT}/{name}")
        if seconds is not None:
            kind = next((label for prefix, label in KINDS if name.startswith(prefix)), "other")
            totals[kind] += seconds
    return totals


def timed(env: dict[str, str], *args: str, hosts: dict[str, float] | None = None) -> tuple[float, float]:
    """(wall, controller CPU) of one provision command; exits on failure. With ``hosts``, fills
    it with the CPU the lab's hosts used meanwhile, by kind."""
    if args and args[0] == "apply" and "--yes" not in args:  # fleets of other sizes; no terminal to ask
        args = (*args, "--yes")
    cpu, start, before = children_cpu(), time.monotonic(), hosts_cpu()
    proc = subprocess.run([sys.executable, "-m", "provision.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        failed = "\n".join(line for line in proc.stdout.splitlines() if " FAIL " in line)
        tail = proc.stdout[-2000:] + proc.stderr[-2000:]
        sys.exit(f"provision {' '.join(args)} failed ({proc.returncode}):\n{failed}\n{tail}")
    if hosts is not None:
        hosts.update({kind: seconds - before[kind] for kind, seconds in hosts_cpu().items()})
    return wall, children_cpu() - cpu


def domain_spec(n: int, folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "inventories" / "lab-domain.yml").read_text())
    half = n // 2
    if half:
        data["hosts"].append({"name": f"wss[001:{half:03d}]", "address": "10.231.0.100+", "role": "workstation",
                              "client": "sssd"})
    if n - half:
        data["hosts"].append({"name": f"wsw[001:{n - half:03d}]", "address": f"10.231.0.{100 + half}+",
                              "role": "workstation", "client": "winbind"})
    path = folder / f"domain-{n}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def workgroup_spec(m: int, folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "inventories" / "lab-workgroup.yml").read_text())
    if m:
        data["hosts"].append({"name": f"pc[001:{m:03d}]", "address": "10.231.0.100+", "role": "peer"})
    path = folder / f"workgroup-{m}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bench_env(network: Network) -> dict[str, str]:
    """A fresh state folder and made-up secrets for the spec's references."""
    env = {**os.environ, "XDG_STATE_HOME": tempfile.mkdtemp(prefix="bench-scale-")}
    for name in env_names(network):
        env[name] = f"Bench-{secrets.token_hex(6)}-Pw1!"
    return env


def measure(path: Path) -> dict[str, float]:
    network = spec.load_network(path)
    env = bench_env(network)
    lab.down(destroy=True)
    start = time.monotonic()
    lab.up(network.hosts)
    up = time.monotonic() - start
    hosts: dict[str, float] = {}
    hosts_again: dict[str, float] = {}
    hosts_verify: dict[str, float] = {}
    first, first_cpu = timed(env, "apply", str(path), hosts=hosts)
    again, again_cpu = timed(env, "apply", str(path), "--skip-preflight", hosts=hosts_again)
    check, check_cpu = timed(env, "verify", str(path), hosts=hosts_verify)
    return {"hosts": len(network.hosts), "up": up, "first": first, "first_cpu": first_cpu,
            "again": again, "again_cpu": again_cpu, "verify": check, "verify_cpu": check_cpu,
            "first_hosts": sum(hosts.values()), "again_hosts": sum(hosts_again.values()),
            "verify_hosts": sum(hosts_verify.values()),
            **{f"first_cpu_{kind}": seconds for kind, seconds in hosts.items()}}


def nodes_spec(w: int, folder: Path) -> Path:
    """inventories/lab-nodes.yml with W workstations (half sssd, half winbind) instead of its four."""
    data = yaml.safe_load((ROOT / "inventories" / "lab-nodes.yml").read_text())
    data["hosts"] = [h for h in data["hosts"] if h["role"] == "domain_controller"]
    # One DC on 2 cores: 25 joins at a time (50 made some sssd wait past 120 s, either way).
    data.setdefault("rollout", {})["batch"] = 25
    half = w // 2
    data["hosts"].append({"name": f"nws[001:{half:03d}]", "address": "10.231.4.100+", "role": "workstation",
                          "client": "sssd"})
    data["hosts"].append({"name": f"nwz[001:{w - half:03d}]", "address": f"10.231.4.{100 + half}+",
                          "role": "workstation", "client": "winbind"})
    path = folder / f"nodes-{w}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure_nodes(path: Path) -> dict[str, float]:
    """Fresh workstations applied from the controller alone, then (fresh again) through the nodes."""
    network = spec.load_network(path)
    env = bench_env(network)
    dcs = ",".join(h.name for h in network.hosts if h.role.value == "domain_controller")
    out: dict[str, float] = {"hosts": len(network.hosts) - 1}
    for way, extra in (("alone", ["--no-nodes"]), ("nodes", [])):
        lab.down(destroy=True)
        lab.up([*network.hosts, *network.rollout.execution_nodes])
        timed(env, "nodes", "setup", str(path))
        timed(env, "apply", str(path), "--no-nodes", "--limit", dcs)
        hosts: dict[str, float] = {}
        out[f"{way}_first"], out[f"{way}_first_cpu"] = timed(env, "apply", str(path), *extra, hosts=hosts)
        out[f"{way}_first_nodes"] = hosts.get("nodes", 0.0)
        out[f"{way}_first_hosts"] = sum(hosts.values())
        print(f"  ({way}: first apply {out[f'{way}_first']:.1f} s, controller CPU {out[f'{way}_first_cpu']:.1f} s, "
              f"nodes' CPU {out[f'{way}_first_nodes']:.1f} s)", flush=True)
    # Converged: the same re-apply both ways, on the hosts of the last round.
    for way, extra in (("alone", ["--no-nodes"]), ("nodes", [])):
        hosts = {}
        out[f"{way}_again"], out[f"{way}_again_cpu"] = timed(env, "apply", str(path), "--skip-preflight", *extra,
                                                             hosts=hosts)
        out[f"{way}_again_nodes"] = hosts.get("nodes", 0.0)
    return out


def nodes_rows(w: int, r: dict[str, float]) -> str:
    lines = [f"{w} workstations (one DC, built before): wall, controller CPU, execution nodes' CPU"]
    for step, label in (("first", "first apply"), ("again", "re-apply")):
        for way, name in (("alone", "controller alone"), ("nodes", "through 2 nodes")):
            lines.append(f"  {label:<12} {name:<17} {r[f'{way}_{step}']:>6.1f}s wall  "
                         f"{r[f'{way}_{step}_cpu']:>6.1f}s controller  {r[f'{way}_{step}_nodes']:>6.1f}s nodes")
        share = r[f"nodes_{step}_cpu"] / r[f"alone_{step}_cpu"] if r[f"alone_{step}_cpu"] else 0.0
        lines.append(f"  {label:<12} controller CPU through the nodes: {share:.0%} of alone")
    return "\n".join(lines)


def cpu_split(name: str, r: dict[str, float]) -> str:
    """Where the first apply's CPU went: the controller and the lab's hosts by kind."""
    kinds = [k.removeprefix("first_cpu_") for k in r if k.startswith("first_cpu_")]
    parts = [f"controller {r['first_cpu']:.1f}s"] + [f"{k} {r['first_cpu_' + k]:.1f}s" for k in kinds]
    return f"{name:<16} first apply CPU: " + ", ".join(parts)


def cpu_floor(name: str, r: dict[str, float]) -> str:
    """All the CPU each step took (controller and the lab's hosts) over this machine's cores:
    the least wall time any schedule of that work could reach here."""
    cores = os.cpu_count() or 1
    parts = []
    for step in ("first", "again", "verify"):
        total = r[f"{step}_cpu"] + r[f"{step}_hosts"]
        parts.append(f"{step} {total:.1f}s -> {total / cores:.1f}s")
    return f"{name:<16} CPU (controller + hosts) and its floor on {cores} cores: " + ", ".join(parts)


def row(name: str, r: dict[str, float]) -> str:
    return (
        f"{name:<16} {r['hosts']:>5.0f} {r['up']:>6.1f}s {r['first']:>6.1f}s {r['first_cpu']:>5.1f}s "
        f"{r['again']:>5.1f}s {r['again_cpu']:>4.1f}s {r['verify']:>5.1f}s"
    )


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,10,25,50,100", help="workstation counts to add to lab-domain.yml")
    parser.add_argument("--workgroup", type=int, default=None, help="also time lab-workgroup.yml plus M peers")
    parser.add_argument("--nodes", type=int, default=None, metavar="W",
                        help="time W workstations from the controller alone and through 2 execution nodes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/scale.py needs root")
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-specs-"))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    header = f"{'spec':<16} {'hosts':>5} {'lab up':>7} {'first':>7} {'cpu':>6} {'again':>6} {'cpu':>5} {'verify':>6}"
    print(header)
    rows: list[tuple[int, dict[str, float]]] = []
    try:
        for n in sizes:
            r = measure(domain_spec(n, folder))
            rows.append((n, r))
            print(row(f"domain+{n}", r), flush=True)
            print(cpu_split(f"domain+{n}", r), flush=True)
            print(cpu_floor(f"domain+{n}", r), flush=True)
        if args.nodes is not None:
            print(nodes_rows(args.nodes, measure_nodes(nodes_spec(args.nodes, folder))), flush=True)
        if args.workgroup is not None:
            r = measure(workgroup_spec(args.workgroup, folder))
            print(row(f"workgroup+{args.workgroup}", r), flush=True)
            print(cpu_floor(f"workgroup+{args.workgroup}", r), flush=True)
        if len(rows) > 1:
            xs = [float(n) for n, _ in rows]
            wall = slope(xs, [r["first"] for _, r in rows])
            cpu = slope(xs, [r["first_cpu"] for _, r in rows])
            print(f"marginal first apply per workstation: {wall:.2f} s wall, {cpu:.2f} s controller CPU")
            kinds = [k for k in rows[0][1] if k.startswith("first_cpu_")]
            hosts = {k.removeprefix("first_cpu_"): slope(xs, [r.get(k, 0.0) for _, r in rows]) for k in kinds}
            if hosts:
                print("  and on the lab's hosts (same cores): "
                      + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in hosts.items()))
    finally:
        lab.down(destroy=True)


if __name__ == "__main__":
    main()
