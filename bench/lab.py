"""Benchmark of ``provision lab``: cold image build and warm boot of 3 and 10 hosts.

Run as root:  .venv/bin/python bench/lab.py            (wipes the image cache first)
              .venv/bin/python bench/lab.py --warm-only (keeps the cached images)

Prints one line per figure.  Destroys any running lab before and after;
addresses are inside the lab network only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provision import lab
from provision.lab import cgroups, image
from provision.model import Host, Role


def hosts(n):
    return [Host(name=f"bench{i:02d}", address=f"10.231.9.{i}", role=Role.PEER) for i in range(1, n + 1)]


def mem_available_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lab_pss_mib():
    """Proportional set size of every lab process: shared pages are counted once in total."""
    total = 0
    for pid in cgroups.pids("lab"):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def cold_build():
    lab.down(destroy=True)
    image.wipe_cache()
    start = time.monotonic()
    image.ensure_images(lambda m: print(f"  {m}", file=sys.stderr))
    total = time.monotonic() - start
    print(f"cold build (image + repository, one mmdebstrap run): {total:6.1f} s   (target <= 120 s)")


def warm_boot(n):
    lab.down(destroy=True)
    before = mem_available_mib()
    start = time.monotonic()
    status = lab.up(hosts(n))
    took = time.monotonic() - start
    assert all(h.state == "running" for h in status.hosts), status
    time.sleep(3)  # let the hosts settle before looking at memory
    used = before - mem_available_mib()
    slowest = max(h.boot_seconds or 0.0 for h in status.hosts)
    print(f"warm boot N={n:<2d}    : {took:6.1f} s to all-SSH-ready (slowest host {slowest:.1f} s)"
          f"{'   (target <= 15 s)' if n == 10 else ''}")
    print(f"memory N={n:<2d}       : {lab_pss_mib():6.0f} MiB PSS of lab processes, "
          f"{used:6.0f} MiB less MemAvailable ({used / n:.0f} MiB per host)")
    start = time.monotonic()
    lab.down()
    print(f"down N={n:<2d}         : {time.monotonic() - start:6.1f} s (clean poweroff)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-only", action="store_true", help="keep the cached images, measure boots only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/lab.py needs root")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    try:
        if not args.warm_only:
            cold_build()
        else:
            image.ensure_images(lambda m: print(f"  {m}", file=sys.stderr))
        warm_boot(3)
        warm_boot(10)
    finally:
        lab.down(destroy=True)


if __name__ == "__main__":
    main()
