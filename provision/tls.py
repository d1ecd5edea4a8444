"""A small certificate authority per network, kept on the controller.

Services (the Samba DC's LDAPS, Postfix, Dovecot, PostgreSQL) need certificates that
clients can verify; when the spec gives none, they come from here, and every host
installs the CA certificate. The CA carries critical NameConstraints: it can only sign
for the network's DNS domains and subnets, so its key, if stolen, cannot mint a
certificate for anybody else's names.

Layout of ``folder`` (0700, files 0600, written atomically)::

    ca.crt, ca.key              the current CA
    hosts/<name>.crt, .key      leaf certificates, reused while they still fit
    retired/<UTC timestamp>/    a replaced CA, with the leaves it had signed

Re-running with the same inputs reads the same files and returns the same bytes: a
second apply changes nothing. A new CA is made when the network's domains or subnets
change or the CA has less than a year left; its leaves are then reissued.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provision.errors import ProvisionError

CA_VALIDITY = timedelta(days=3650)
CA_RENEW_BEFORE = timedelta(days=365)  # a CA with less left than this is replaced
LEAF_VALIDITY = timedelta(days=397)  # the longest that browsers and most clients accept
LEAF_RENEW_BEFORE = timedelta(days=30)
CLOCK_SKEW = timedelta(hours=1)  # not_before is back-dated by this much

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # a leaf's name becomes a file name
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_PEM = 64 * 1024  # a certificate or key is a few hundred bytes; anything big is not ours
_CN_MAX = 64  # RFC 5280 ub-common-name


@dataclass(frozen=True)
class Issued:
    """A leaf certificate with its key, as the service's files want them."""

    cert_pem: str  # the leaf certificate
    key_pem: str  # its private key, PKCS#8 unencrypted: a secret
    chain_pem: str  # leaf + CA certificate: what a server sends
    not_after: datetime


class NetworkCA:
    """The CA of one network; build it with ``NetworkCA.open``."""

    def __init__(
        self,
        folder: Path,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        cert_pem: str,
        domains: tuple[str, ...],
        subnets: tuple[ipaddress.IPv4Network, ...],
        now: datetime,
    ) -> None:
        self._folder = folder
        self._cert = cert
        self._key = key
        self._cert_pem = cert_pem
        self._domains = domains
        self._subnets = subnets
        self._now = now

    @property
    def cert_pem(self) -> str:
        """The CA certificate (PEM) that hosts install so their clients verify the services."""
        return self._cert_pem

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate's DER, in hex: what an operator compares out of band."""
        return hashlib.sha256(self._cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @classmethod
    def open(
        cls,
        folder: Path,
        network: str,
        dns_domains: Sequence[str],
        subnets: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> NetworkCA:
        """The network's CA from ``folder``, made (or replaced) when missing or no longer fitting.

        Replaced (old files moved to ``retired/``) when its name constraints differ from
        ``dns_domains``/``subnets`` or it expires within a year. Refused (ProvisionError)
        when a file or folder is a symlink, someone else's, open to group or others, not
        a certificate or key, or when ``ca.key`` does not belong to ``ca.crt``.
        """
        moment = _utc(now)
        domains = _domains(dns_domains)
        nets = _subnets(subnets)
        subject = _ca_subject(network)
        _ensure_private_dir(folder)
        with _locked(folder):
            cert_text = _read_file(folder / "ca.crt", secret=False)
            key_text = _read_file(folder / "ca.key", secret=True)
            if cert_text is None and key_text is not None:
                # Made key first, cert second: a key alone is a creation that was interrupted.
                _retire(folder, moment)
            elif cert_text is not None:
                if key_text is None:
                    raise ProvisionError(
                        f"{folder / 'ca.crt'} exists but {folder / 'ca.key'} is missing: restore the key,"
                        " or move the folder away to make a new CA (every host must then trust the new one)"
                    )
                cert, key = _load_ca(folder, cert_text, key_text)
                if _ca_fits(cert, subject, domains, nets, moment):
                    return cls(folder, cert, key, cert_text, domains, nets, moment)
                _retire(folder, moment)
            cert, key, cert_text = _make_ca(folder, subject, domains, nets, moment)
            return cls(folder, cert, key, cert_text, domains, nets, moment)

    def issue(self, name: str, dns_names: Sequence[str], addresses: Sequence[str] = ()) -> Issued:
        """A server/client certificate for ``dns_names`` and ``addresses``, cached as ``hosts/<name>``.

        The cached one is returned unchanged while it was signed by this CA, names exactly
        these names (DNS case- and order-insensitive) and stays valid more than 30 days;
        otherwise a new key and certificate replace it. Names outside the CA's domains or
        subnets are refused, since no verifier would accept them.
        """
        if not _NAME.fullmatch(name):
            raise ProvisionError(
                f"certificate name {name!r} must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'"
            )
        wanted_dns = _leaf_dns_names(dns_names, self._domains)
        wanted_ips = _leaf_addresses(addresses, self._subnets)
        hosts = self._folder / "hosts"
        crt_path, key_path = hosts / f"{name}.crt", hosts / f"{name}.key"
        with _locked(self._folder):
            if _read_file(self._folder / "ca.crt", secret=False) != self._cert_pem:
                raise ProvisionError(
                    f"{self._folder / 'ca.crt'} changed since it was opened (another run for this network?): run again"
                )
            _ensure_private_dir(hosts)
            cert_text = _read_file(crt_path, secret=False)
            key_text = _read_file(key_path, secret=True)
            if cert_text is not None and key_text is not None:
                cert = self._reusable(cert_text, key_text, wanted_dns, wanted_ips)
                if cert is not None:
                    return Issued(cert_text, key_text, cert_text + self._cert_pem, cert.not_valid_after_utc)
            cert, cert_text, key_text = self._sign_leaf(wanted_dns, wanted_ips)
            _write_atomic(key_path, key_text)  # key first: a crash in between leaves a mismatch, reissued
            _write_atomic(crt_path, cert_text)
        return Issued(cert_text, key_text, cert_text + self._cert_pem, cert.not_valid_after_utc)

    def _reusable(
        self,
        cert_text: str,
        key_text: str,
        dns: tuple[str, ...],
        ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    ) -> x509.Certificate | None:
        """The cached leaf when it still does the job; None when it must be reissued."""
        try:
            cert = x509.load_pem_x509_certificate(cert_text.encode("ascii"))
            key = serialization.load_pem_private_key(key_text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeError):
            return None  # a damaged cache entry is replaced, not trusted
        if cert.issuer != self._cert.subject or _spki(key.public_key()) != _spki(cert.public_key()):
            return None
        try:
            cert.verify_directly_issued_by(self._cert)
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            return None
        ski = x509.SubjectKeyIdentifier.from_public_key(self._cert.public_key())
        if aki.key_identifier != ski.digest:
            return None
        have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
        have_ips = set(san.get_values_for_type(x509.IPAddress))
        if have_dns != set(dns) or have_ips != set(ips) or len(san) != len(have_dns) + len(have_ips):
            return None
        if not (cert.not_valid_before_utc <= self._now and cert.not_valid_after_utc - self._now > LEAF_RENEW_BEFORE):
            return None
        return cert

    def _sign_leaf(
        self, dns: tuple[str, ...], ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    ) -> tuple[x509.Certificate, str, str]:
        """A new key and certificate; it never outlives the CA."""
        if len(dns[0]) > _CN_MAX:
            raise ProvisionError(
                f"{dns[0]!r} is longer than {_CN_MAX} characters and cannot be the certificate's common name:"
                " list a shorter DNS name first"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(self._now + LEAF_VALIDITY, self._cert.not_valid_after_utc)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        sans += [x509.IPAddress(a) for a in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return cert, _cert_pem(cert), _key_pem(key)


# --- inputs -------------------------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    """``now`` in UTC to the second (certificates hold whole seconds); a naive time is taken as UTC."""
    moment = now or datetime.now(UTC)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def _dns_name(text: str, what: str) -> str:
    """``text`` lower-cased when it is a plain DNS name (no wildcard, no trailing dot)."""
    name = text.lower()
    labels = name.split(".")
    if not name.isascii() or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ProvisionError(
            f"{what} {text!r} is not a DNS name (labels of a-z, 0-9 and '-', no wildcard, no trailing dot)"
        )
    return name


def _domains(dns_domains: Sequence[str]) -> tuple[str, ...]:
    """The CA's permitted DNS domains, sorted and without duplicates (so the constraints compare equal)."""
    if isinstance(dns_domains, str):
        raise ProvisionError("dns_domains must be a list of domains, not one string")
    domains = tuple(sorted({_dns_name(d, "DNS domain") for d in dns_domains}))
    if not domains:
        raise ProvisionError("a network CA needs at least one DNS domain to constrain its certificates to")
    return domains


def _subnets(subnets: Sequence[str]) -> tuple[ipaddress.IPv4Network, ...]:
    """The CA's permitted IPv4 subnets, sorted and without duplicates."""
    if isinstance(subnets, str):
        raise ProvisionError("subnets must be a list of CIDRs, not one string")
    nets = set()
    for text in subnets:
        try:
            nets.add(ipaddress.IPv4Network(text, strict=True))
        except ValueError as exc:
            raise ProvisionError(f"subnet {text!r} is not an IPv4 subnet with its host bits zero ({exc})") from None
    return tuple(sorted(nets))


def _leaf_dns_names(dns_names: Sequence[str], domains: tuple[str, ...]) -> tuple[str, ...]:
    """The leaf's DNS names, lower-cased, in order, without duplicates; each within a CA domain."""
    if isinstance(dns_names, str):
        raise ProvisionError("dns_names must be a list of names, not one string")
    names: dict[str, None] = {}
    for text in dns_names:
        name = _dns_name(text, "DNS name")
        if not any(name == d or name.endswith("." + d) for d in domains):
            raise ProvisionError(
                f"DNS name {name!r} lies outside the network CA's domains ({', '.join(domains)}):"
                " no client would accept a certificate for it"
            )
        names[name] = None
    if not names:
        raise ProvisionError("a certificate needs at least one DNS name (its common name)")
    return tuple(names)


def _leaf_addresses(
    addresses: Sequence[str], subnets: tuple[ipaddress.IPv4Network, ...]
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The leaf's IP addresses, in order, without duplicates; each within a CA subnet."""
    if isinstance(addresses, str):
        raise ProvisionError("addresses must be a list of IP addresses, not one string")
    found: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, None] = {}
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ProvisionError(f"{text!r} is not an IP address") from None
        if not any(address in net for net in subnets):
            declared = ", ".join(str(n) for n in subnets) or "none"
            raise ProvisionError(
                f"IP address {text} lies outside the network CA's subnets ({declared}):"
                " no client would accept a certificate for it"
            )
        found[address] = None
    return tuple(found)


# --- the CA -------------------------------------------------------------------------------


def _ca_subject(network: str) -> x509.Name:
    """``CN=provision CA <network>, O=provision``."""
    common_name = f"provision CA {network}"
    if not network.strip() or len(common_name) > _CN_MAX or not network.isprintable():
        raise ProvisionError(f"network name {network!r} cannot name a CA (printable, at most 51 characters)")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "provision"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _name_constraints(domains: tuple[str, ...], subnets: tuple[ipaddress.IPv4Network, ...]) -> x509.NameConstraints:
    """The CA's NameConstraints: it signs for these domains (and their subdomains) and subnets only.

    Every IPv6 address is excluded, and every IPv4 address when no subnet is given:
    without a subtree of their type, IP names would not be constrained at all.
    """
    permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in domains]
    permitted += [x509.IPAddress(n) for n in subnets]
    excluded: list[x509.GeneralName] = [] if subnets else [x509.IPAddress(ipaddress.IPv4Network("0.0.0.0/0"))]
    excluded.append(x509.IPAddress(ipaddress.IPv6Network("::/0")))
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(
    folder: Path,
    subject: x509.Name,
    domains: tuple[str, ...],
    subnets: tuple[ipaddress.IPv4Network, ...],
    now: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]:
    """A new self-signed CA, written key first (a key alone is recognised as an interrupted run)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(_name_constraints(domains, subnets), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_text = _cert_pem(cert)
    _write_atomic(folder / "ca.key", _key_pem(key))
    _write_atomic(folder / "ca.crt", cert_text)
    return cert, key, cert_text


def _load_ca(folder: Path, cert_text: str, key_text: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The stored CA; ProvisionError when the files are damaged, foreign, or do not belong together."""
    try:
        cert = x509.load_pem_x509_certificate(cert_text.encode("ascii"))
    except (ValueError, UnicodeError):
        raise ProvisionError(f"{folder / 'ca.crt'} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError):
        raise ProvisionError(f"{folder / 'ca.key'} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProvisionError(f"{folder / 'ca.key'} is not an ECDSA P-256 key: not a CA that provision made")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise ProvisionError(
            f"{folder / 'ca.key'} does not match {folder / 'ca.crt'}: restore the matching pair,"
            " or move the folder away to make a new CA"
        )
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        raise ProvisionError(f"{folder / 'ca.crt'} is not self-signed: not a CA that provision made") from None
    return cert, key


def _ca_fits(
    cert: x509.Certificate,
    subject: x509.Name,
    domains: tuple[str, ...],
    subnets: tuple[ipaddress.IPv4Network, ...],
    now: datetime,
) -> bool:
    """Whether the stored CA still serves: same name, same constraints, more than a year left.

    The constraints must be equal, not merely cover the wanted ones: a domain or subnet
    taken out of the spec may belong to somebody else now.
    """
    if cert.subject != subject or cert.not_valid_after_utc - now <= CA_RENEW_BEFORE:
        return False
    try:
        ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    want = _name_constraints(domains, subnets)
    return (
        basic.ca
        and ext.critical
        and set(ext.value.permitted_subtrees or ()) == set(want.permitted_subtrees or ())
        and set(ext.value.excluded_subtrees or ()) == set(want.excluded_subtrees or ())
    )


def _retire(folder: Path, now: datetime) -> Path:
    """Move the CA's files and its leaves to ``retired/<timestamp>/`` (kept, never deleted)."""
    retired = folder / "retired"
    _ensure_private_dir(retired)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        target = retired / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            target.mkdir(mode=0o700)
        except FileExistsError:
            continue
        break
    else:
        raise ProvisionError(f"{retired} has too many retired CAs for {stamp}")
    for entry in ("ca.crt", "ca.key", "hosts"):
        source = folder / entry
        if source.exists() or source.is_symlink():
            source.rename(target / entry)
    _fsync_dir(folder)
    return target


# --- files --------------------------------------------------------------------------------


def _refusal(path: Path, st: os.stat_result, *, secret: bool, directory: bool) -> str | None:
    """Why ``path`` (its ``lstat``/``fstat``) is unsafe to trust; None when it is fine."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if directory and not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (0o077 if secret or directory else 0o022):
        return f"it is open to group or others (mode {mode:04o}); chmod {'700' if directory else '600'} it"
    return None


def _ensure_private_dir(path: Path) -> None:
    """Make ``path`` 0700 when missing; refuse it when it is a link, someone else's, or open to others."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        path.mkdir(mode=0o700, parents=True)
        path.chmod(0o700)  # the umask may have taken bits from 0700 too
        st = path.lstat()
    why = _refusal(path, st, secret=True, directory=True)
    if why is not None:
        raise ProvisionError(f"refusing the CA folder {path}: {why}")


def _read_file(path: Path, *, secret: bool) -> str | None:
    """The file's text, or None when it does not exist; never through a symlink, never someone else's."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ProvisionError(f"refusing {path}: it is a symbolic link") from None
        raise ProvisionError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        why = _refusal(path, os.fstat(fd), secret=secret, directory=False)
        if why is not None:
            raise ProvisionError(f"refusing {path}: {why}")
        data = fh.read(_MAX_PEM + 1)
    if len(data) > _MAX_PEM:
        raise ProvisionError(f"refusing {path}: over {_MAX_PEM} bytes, not a certificate or key")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ProvisionError(f"refusing {path}: not PEM text") from None


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a 0600 temp file in the same folder (O_EXCL), fsync, rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("ascii"))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the CA folder: two runs for one network must not both write it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- encoding -----------------------------------------------------------------------------


def _spki(public: PublicKeyTypes) -> bytes:
    """A public key's SubjectPublicKeyInfo: how a key and a certificate are matched."""
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
