"""Where the lab keeps things, and the fixed addresses it owns.

One module so the cache, the state and the network constants are named once;
lab specs point at ``IDENTITY_FILE`` and ``KNOWN_HOSTS`` by these exact paths.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

CACHE_DIR = Path("/var/cache/provision/lab")
STATE_DIR = Path("/var/lib/provision/lab")
HOSTS_DIR = STATE_DIR / "hosts"
STATE_FILE = STATE_DIR / "state.json"
LOCK_FILE = STATE_DIR / "lock"
IDENTITY_FILE = STATE_DIR / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
REPO_LOG = STATE_DIR / "repo-server.log"

REPO_DIR = CACHE_DIR / "repo"
GOLDEN_DIR = CACHE_DIR / "golden"
LEGACY_BASE_DIR = CACHE_DIR / "base"  # the separate debootstrap layer of older lab images; removed
BUILD_DIR = CACHE_DIR / "build"  # scratch for image builds; wiped before each build
LOG_DIR = CACHE_DIR / "logs"

BRIDGE = "provlab0"
LAB_NET = ipaddress.IPv4Network("10.231.0.0/16")
BRIDGE_ADDR = "10.231.0.1"
REPO_PORT = 8231
REPO_URL = f"http://{BRIDGE_ADDR}:{REPO_PORT}/"

# cgroup directory (relative to each hierarchy root) holding every lab process.
CGROUP_ROOT = "lab"
REPO_CGROUP = f"{CGROUP_ROOT}/_repo"  # '_' cannot occur in a host name
BUILD_CGROUP = f"{CGROUP_ROOT}/_build"  # mmdebstrap, apt and dpkg of image builds

# The programs the image build runs, and the Debian package of each (provision doctor --lab checks them).
BUILD_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "apt-ftparchive": "apt-utils",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "systemctl": "systemd",
}
