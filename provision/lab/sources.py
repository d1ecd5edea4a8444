"""Read the host's apt sources, so the lab uses whatever mirror the host uses.

The mirror is never written into the repository: it is looked up at run time
from ``/etc/apt/sources.list.d/*.sources`` (deb822) and
``/etc/apt/sources.list`` (one-line format).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provision.errors import LabError


@dataclass(frozen=True, slots=True)
class AptSource:
    """One binary (``deb``) source: a mirror URI with its suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None  # a keyring path; inline keys are not carried

    def line(self, suite: str) -> str:
        """The one-line sources.list form for one suite."""
        opts = f"[signed-by={self.signed_by}] " if self.signed_by else ""
        return f"deb {opts}{self.uri} {suite} {' '.join(self.components)}"


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            current[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a ``.sources`` file; keeps enabled ``deb`` entries only."""
    out: list[AptSource] = []
    for para in _deb822_paragraphs(text):
        if para.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        if "deb" not in para.get("types", "").split():
            continue
        signed = para.get("signed-by", "").strip()
        keyring = signed if signed and "\n" not in signed and not signed.startswith("-") else None
        for uri in para.get("uris", "").split():
            out.append(
                AptSource(
                    uri=uri.rstrip("/"),
                    suites=tuple(para.get("suites", "").split()),
                    components=tuple(para.get("components", "").split()),
                    signed_by=keyring,
                )
            )
    return out


def parse_one_line(text: str) -> list[AptSource]:
    """Parse the classic ``sources.list`` format; keeps ``deb`` lines only."""
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        signed_by: str | None = None
        if rest.startswith("["):
            opts, _, rest = rest[1:].partition("]")
            for opt in opts.split():
                name, _, value = opt.partition("=")
                if name == "signed-by":
                    signed_by = value
        parts = rest.split()
        if len(parts) < 2:
            continue
        out.append(AptSource(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]), signed_by))
    return out


def host_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled binary source configured on this machine."""
    found: list[AptSource] = []
    one_line = etc_apt / "sources.list"
    if one_line.is_file():
        found += parse_one_line(one_line.read_text(errors="replace"))
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                found += parse_deb822(path.read_text(errors="replace"))
            elif path.suffix == ".list":
                found += parse_one_line(path.read_text(errors="replace"))
    return found


def debian_sources(suite: str, etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """Sources serving ``suite`` and its -updates/-security companions, main included."""
    picked = []
    for src in host_sources(etc_apt):
        suites = tuple(s for s in src.suites if s == suite or s.startswith((suite + "-", suite + "/")))
        if suites and "main" in src.components and src.uri.startswith(("http://", "https://", "file:")):
            picked.append(AptSource(src.uri, suites, ("main",), src.signed_by))
    if not any(suite in s.suites for s in picked):
        raise LabError(
            f"no apt source for Debian '{suite}' main found in {etc_apt}/sources.list or "
            f"{etc_apt}/sources.list.d/; the lab downloads its images from the host's mirror"
        )
    return picked
