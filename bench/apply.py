"""Benchmark of a whole rollout on the lab: first apply on fresh hosts, re-apply, verify.

Run as root:  .venv/bin/python bench/apply.py inventories/lab-workgroup.yml
              .venv/bin/python bench/apply.py inventories/lab-domain.yml
              add --cold to wipe the cached lab image first (it is rebuilt and timed).

The targets of the workgroup and domain issues: workgroup <= 2 min cold (images
included), <= 30 s warm, re-apply <= 10 s; domain <= 4 min cold, <= 90 s warm,
re-apply <= 20 s. Throwaway passwords are made for the spec's secret variables.
Destroys any running lab before and after; addresses are inside the lab network only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provision import lab, spec  # noqa: E402
from provision.lab import image  # noqa: E402
from provision.secrets import env_names as secret_env_names  # noqa: E402


def provision(env: dict[str, str], *args: str) -> float:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "provision.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"provision {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path)
    parser.add_argument("--cold", action="store_true", help="wipe and rebuild the lab image first")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/apply.py needs root")
    network = spec.load_network(args.spec)
    env = dict(os.environ)
    for name in secret_env_names(network):
        env[name] = f"Bench-{secrets.token_hex(6)}-Pw1!"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; spec {args.spec}"
          f" ({len(network.hosts)} hosts, {network.mode.value})")
    lab.down(destroy=True)
    if args.cold:
        image.wipe_cache()
    try:
        start = time.monotonic()
        lab.up(network.hosts)
        up = time.monotonic() - start
        first = provision(env, "apply", str(args.spec))
        check = provision(env, "verify", str(args.spec))
        total = time.monotonic() - start
        again = provision(env, "apply", str(args.spec), "--skip-preflight")
        kind = "cold (image built)" if args.cold else "warm (image cached, fresh hosts)"
        print(f"lab up             : {up:6.1f} s")
        print(f"first apply        : {first:6.1f} s")
        print(f"verify             : {check:6.1f} s")
        print(f"{kind:<19}: {total:6.1f} s from nothing to verified")
        print(f"re-apply           : {again:6.1f} s (nothing to change)")
    finally:
        lab.down(destroy=True)


if __name__ == "__main__":
    main()
