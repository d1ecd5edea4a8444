"""Benchmark of what SMB2/3 clients get from a managed share, with Samba's own test suite.

Run as root:  .venv/bin/python bench/smb_clients.py [--suites smb2.lock,smb2.lease,...]
Needs smbtorture on the controller (apt-get install samba-testsuite).

Applies inventories/lab-workgroup.yml on the lab, then, on peer1, adds two shares
by hand next to the managed [projects] for comparison, on directories set up the
same way (owner root, group staff, mode 2770, the same POSIX ACL):
  [plain]   a default Samba share (only path, valid users and read only = no);
  [legacy]  the share as the roles wrote it before the full-access fix
            (create mask 0660, no force create mode, no VFS modules).
smbtorture runs each suite as alice against all three and the figures are the
passes and failures per suite and share. The last apply removes the hand-made
shares again. Destroys the lab at the end; addresses are inside the lab only.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provision import lab, spec  # noqa: E402
from provision.lab import IDENTITY_FILE, KNOWN_HOSTS  # noqa: E402

SPEC = ROOT / "inventories" / "lab-workgroup.yml"
SUITES = "smb2.lock,smb2.lease,smb2.durable-v2-open,smb2.streams,smb2.create"
EXTRA = """
[plain]
   path = /srv/plain
   valid users = @staff
   read only = no

[legacy]
   path = /srv/legacy
   valid users = @staff
   read only = no
   guest ok = no
   create mask = 0660
   directory mask = 2770
"""


def ssh(address: str, command: str) -> str:
    argv = ["ssh", "-i", str(IDENTITY_FILE), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "BatchMode=yes",
            f"root@{address}", command]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout


def provision(env: dict[str, str], *args: str) -> None:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    proc = subprocess.run([sys.executable, "-m", "provision.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"provision {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def torture(address: str, share: str, suite: str, authfile: Path) -> tuple[int, int, float]:
    start = time.monotonic()
    proc = subprocess.run(["smbtorture", f"//{address}/{share}", "-A", str(authfile), suite],
                          capture_output=True, text=True, check=False, timeout=1800)
    out = proc.stdout + proc.stderr
    ok = len(re.findall(r"^success: ", out, re.M))
    bad = len(re.findall(r"^(?:failure|error): ", out, re.M))
    return ok, bad, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default=SUITES, help=f"comma-separated smbtorture suites (default {SUITES})")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/smb_clients.py needs root")
    if shutil.which("smbtorture") is None:
        sys.exit("smbtorture is missing: apt-get install samba-testsuite")
    network = spec.load_network(SPEC)
    passwords = {u.name: f"Bench-{secrets.token_hex(6)}-Pw1" for u in network.users}
    env = {**os.environ, **{f"LAB_{u.upper()}_PW": pw for u, pw in passwords.items()},
           "XDG_STATE_HOME": tempfile.mkdtemp(prefix="bench-state-")}
    peer1 = network.host("peer1").address
    lab.down(destroy=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-smb-", dir="/dev/shm"))
    authfile = folder / "auth"
    authfile.touch(mode=0o600)
    authfile.write_text(f"username = alice\npassword = {passwords['alice']}\ndomain = {network.workgroup}\n")
    try:
        lab.up(network.hosts)
        provision(env, "apply", str(SPEC))
        ssh(peer1, "for d in plain legacy; do install -d -o root -g staff -m 2770 /srv/$d; "
                   "getfacl -p /srv/projects | setfacl --set-file=- /srv/$d; done; "
                   f"printf '%s' '{EXTRA}' >> /etc/samba/smb.conf && smbcontrol smbd reload-config")
        print(f"machine: {os.cpu_count()} cores; smbtorture against //{peer1}/SHARE as alice")
        print(f"{'suite':<24} {'share':<10} {'pass':>5} {'fail':>5} {'seconds':>8}")
        for suite in args.suites.split(","):
            for share in ("projects", "plain", "legacy"):
                ok, bad, took = torture(peer1, share, suite, authfile)
                print(f"{suite:<24} {share:<10} {ok:>5} {bad:>5} {took:>8.1f}", flush=True)
        provision(env, "apply", str(SPEC), "--skip-preflight", "--full")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lab.down(destroy=True)


if __name__ == "__main__":
    main()
