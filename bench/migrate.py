"""How long growing a workgroup into a domain takes, on the lab (printed, not asserted).

Run as root:  .venv/bin/python bench/migrate.py [--peers 50] [--file-server]

inventories/lab-workgroup.yml plus peers up to --peers in all; every fifth added peer shares a
folder of its own (so it becomes a file server), the others become sssd workstations. With
--file-server every peer becomes a workstation and every share, home folder and printer moves
to one new file server (fs1, 10.231.0.25): the copy phase takes and puts them. On fresh
hosts: lab up, the workgroup applied, `provision grow` with two new DCs, then
`provision apply NEW --from-workgroup OLD`; the wall time of each step and of each phase of the
migration (from its report), then the re-run that finds every phase done. Destroys the lab
before and after; every address is inside the lab network.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import bench_env, timed  # noqa: E402

from provision import lab, spec  # noqa: E402


def workgroup_spec(peers: int, folder: Path, own_paths: bool = False) -> Path:
    data = yaml.safe_load((ROOT / "inventories" / "lab-workgroup.yml").read_text())
    for i in range(1, max(0, peers - 3) + 1):
        host: dict[str, object] = {"name": f"pc{i:03d}", "address": f"10.231.0.{100 + i}", "role": "peer"}
        if i % 5 == 0:
            # Moving to one file server, every peer's folder needs a path of its own there.
            path = f"/srv/docs{i:03d}" if own_paths else "/srv/docs"
            host["shares"] = [{"name": f"docs{i:03d}", "path": path, "groups": ["staff"]}]
        data["hosts"].append(host)
    path = folder / f"workgroup-{peers}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=50, help="peers in the workgroup (at least 3)")
    parser.add_argument("--file-server", action="store_true", help="move every share to one new file server")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    old = workgroup_spec(max(3, args.peers), folder, own_paths=args.file_server)
    new = folder / "domain.yml"
    workgroup = spec.load_network(old)
    env = bench_env(workgroup)
    env["DOMAIN_ADMIN_PASSWORD"] = "Bench-Admin-Pw-2026!"
    lab.down(destroy=True)
    try:
        rows: list[tuple[str, float]] = []
        moving = ["--file-server", "fs1=10.231.0.25"] if args.file_server else []
        grown = timed(env, "grow", str(old), "--to", "domain", "--realm", "AD.BENCH.TEST",
                              "--dc", "dc1=10.231.0.21", "--dc", "dc2=10.231.0.22", *moving, "-o", str(new))
        rows.append(("grow (no host contacted)", grown[0]))
        domain = spec.load_network(new)
        start = time.monotonic()
        lab.up(domain.hosts)
        rows.append((f"lab up ({len(domain.hosts)} hosts)", time.monotonic() - start))
        rows.append(("workgroup applied", timed(env, "apply", str(old))[0]))
        report = folder / "migration.json"
        wall, cpu = timed(env, "apply", str(new), "--from-workgroup", str(old), "--yes", "--skip-preflight",
                          "--report-json", str(report))
        data = json.loads(report.read_text())
        for phase, seconds in data["phase_seconds"].items():
            rows.append((f"  phase {phase}", float(seconds)))
        rows.append(("migration (apply --from-workgroup)", wall))
        rows.append(("  its controller CPU", cpu))
        rows.append(("migration again (every phase done)", timed(env, "apply", str(new), "--from-workgroup",
                                                                  str(old), "--yes", "--skip-preflight")[0]))
        rows.append(("domain re-applied (nothing to change)", timed(env, "apply", str(new), "--skip-preflight")[0]))
        peers = sum(1 for h in workgroup.hosts if h.role.value == "peer")
        servers = sum(1 for h in domain.hosts if h.role.value == "file_server")
        how = "shares copied to a new file server" if args.file_server else f"{servers} become file servers"
        print(f"migration of {peers} peers ({how}) into a domain with 2 new DCs, "
              f"{len(workgroup.users)} users:")
        for name, seconds in rows:
            print(f"  {name:<44} {seconds:7.1f} s")
    finally:
        lab.down(destroy=True)


if __name__ == "__main__":
    main()
