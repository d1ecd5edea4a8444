"""The lab bridge, addresses, MACs and neighbour entries.

The lab owns exactly 10.231.0.0/16 on ``provlab0``.  The host side never
forwards for it and no NAT is added, so containers can reach only each other
and the bridge address (where the apt repository is served).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from provision.errors import LabError

from .paths import BRIDGE, BRIDGE_ADDR, LAB_NET
from .util import run


def check_address(name: str, address: str) -> ipaddress.IPv4Address:
    """A host address must be a usable address inside the lab network."""
    try:
        addr = ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise LabError(f"host {name}: {address!r} is not an IPv4 address") from exc
    if addr not in LAB_NET:
        raise LabError(f"host {name}: {address} is outside the lab network {LAB_NET}")
    if addr in (LAB_NET.network_address, LAB_NET.broadcast_address, ipaddress.IPv4Address(BRIDGE_ADDR)):
        raise LabError(f"host {name}: {address} is reserved in the lab network {LAB_NET}")
    return addr


def mac_for(address: str) -> str:
    """A fixed, locally administered MAC derived from the address.

    Re-creating a host keeps its MAC, so peers' ARP caches stay valid.
    """
    packed = ipaddress.IPv4Address(address).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in packed)


def _ip_json(*args: str) -> list[dict[str, object]]:
    proc = run(["ip", "-j", *args], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    data = json.loads(proc.stdout)
    return data if isinstance(data, list) else []


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def check_no_overlap() -> None:
    """Refuse to take the lab network if another interface already routes into it."""
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = str(route.get("dst", ""))
        dev = str(route.get("dev", ""))
        if dst in ("", "default", "broadcast", "local") or dev == BRIDGE or route.get("type") in ("local", "broadcast"):
            continue
        try:
            net = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if net.overlaps(LAB_NET) and not net.is_loopback:
            raise LabError(f"route {dst} on {dev} overlaps the lab network {LAB_NET}; the lab will not share it")


def _sysctl(path: str, value: str) -> None:
    target = Path("/proc/sys") / path
    if target.exists() and target.read_text().strip() != value:
        target.write_text(value)


def ensure_bridge() -> None:
    """Create or repair ``provlab0`` with 10.231.0.1/16, no forwarding, no IPv6."""
    if not link_exists(BRIDGE):
        check_no_overlap()
        run(["ip", "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    elif not Path(f"/sys/class/net/{BRIDGE}/bridge").exists():
        raise LabError(f"{BRIDGE} exists but is not a bridge; remove it or rename it")
    _sysctl(f"net/ipv6/conf/{BRIDGE}/disable_ipv6", "1")
    _sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "0")
    want = f"{BRIDGE_ADDR}/{LAB_NET.prefixlen}"
    have: list[str] = []
    for link in _ip_json("-4", "addr", "show", "dev", BRIDGE):
        infos = link.get("addr_info")
        for info in infos if isinstance(infos, list) else []:
            have.append(f"{info['local']}/{info['prefixlen']}")
    for addr in have:
        if addr != want:
            run(["ip", "addr", "del", addr, "dev", BRIDGE])
    if want not in have:
        run(["ip", "addr", "add", want, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def remove_bridge() -> None:
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])


def bridge_ports() -> list[str]:
    """Interfaces enslaved to the lab bridge (the host ends of container veths)."""
    return [str(link["ifname"]) for link in _ip_json("link", "show", "master", BRIDGE) if "ifname" in link]


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], check=False)


def forget_neighbour(address: str) -> None:
    """Drop a stale ARP entry so a re-created host is reached at once."""
    if link_exists(BRIDGE):
        run(["ip", "neigh", "flush", "to", address, "dev", BRIDGE], check=False)


def forwarding_disabled() -> bool:
    """True when packets arriving on the bridge are never routed elsewhere."""
    path = Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding")
    return path.exists() and path.read_text().strip() == "0"
