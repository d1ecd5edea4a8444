"""The certificates of a run: the spec's own (hosts[].tls) or the network CA's, read just before it.

Domain controllers (LDAPS) and mail servers (SMTP, IMAP) present a certificate that
the other hosts verify; every host of a domain trusts the network's CA and the CAs the
spec lists. Only the public half reaches the inventory; the private keys travel in
the run's secrets file. Certificates read from the spec's files are parsed and
written out again, so nothing but certificates can leave the controller that way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provision.errors import SecretError
from provision.model import TLS_ROLES, Host, Network, Role, TlsMaterial
from provision.tls import NetworkCA

PEM_MAX = 65536


def _read_pem(path: str, what: str, host: str) -> bytes:
    p = Path(path)
    try:
        if not p.is_file():
            raise SecretError(f"{host}: the {what} file {path} does not exist or is not a regular file")
        if p.stat().st_size > PEM_MAX:
            raise SecretError(f"{host}: the {what} file {path} is larger than {PEM_MAX} bytes")
        return p.read_bytes()
    except OSError as exc:
        raise SecretError(f"{host}: cannot read the {what} file {path}: {exc.strerror}") from None


def _names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)}


def spec_chain(host: Host, fqdn: str, with_key: bool) -> tuple[str, str]:
    """(chain PEM, key PEM or "") of a host whose certificate the spec gives, checked: PEM, the
    key matches the first certificate, and the certificate names the host."""
    assert host.tls is not None
    try:
        certs = x509.load_pem_x509_certificates(_read_pem(host.tls.certificate, "certificate", host.name))
    except ValueError:
        raise SecretError(f"{host.name}: {host.tls.certificate} holds no PEM certificate") from None
    if fqdn not in _names(certs[0]):
        raise SecretError(f"{host.name}: the certificate in {host.tls.certificate} does not name {fqdn}")
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    if not with_key:
        return chain, ""
    try:
        key = serialization.load_pem_private_key(_read_pem(host.tls.key, "key", host.name), password=None)
    except (ValueError, TypeError):
        raise SecretError(f"{host.name}: {host.tls.key} holds no unencrypted PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, spki) != certs[0].public_key().public_bytes(
        serialization.Encoding.PEM, spki
    ):
        raise SecretError(f"{host.name}: the key in {host.tls.key} does not belong to the certificate")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, pem.decode()


@contextmanager
def _ca_folder(folder: Path, scratch: bool) -> Iterator[Path]:
    """The CA's folder, or a private copy of it that is thrown away (a dry run changes nothing)."""
    if not scratch:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="provision-ca-") as tmp:
        copy = Path(tmp) / "ca"
        if folder.is_dir():
            shutil.copytree(folder, copy, symlinks=True)
        yield copy


def material(
    network: Network, hosts: Iterable[Host], folder: Path, *, keys: bool = True, scratch: bool = False
) -> TlsMaterial:
    """Certificates of ``hosts`` that present one, and the CAs every domain host trusts.

    ``folder`` keeps the network CA (provision.tls); ``scratch`` works on a copy of it, for
    dry runs; without ``keys`` no private key is read or returned (--no-secrets).
    """
    domain = network.domain
    if domain is None:
        return TlsMaterial()
    extra = []
    for path in network.tls_ca_files:
        try:
            certs = x509.load_pem_x509_certificates(_read_pem(path, "CA certificate", "tls.ca_certificates"))
        except ValueError:
            raise SecretError(f"tls.ca_certificates: {path} holds no PEM certificate") from None
        extra.append(certs[0].public_bytes(serialization.Encoding.PEM).decode())
    chains: dict[str, str] = {}
    secret_keys: dict[str, str] = {}
    with _ca_folder(folder, scratch) as ca_dir:
        ca = NetworkCA.open(ca_dir, network.name, [domain.dns_domain], list(network.subnets))
        for h in hosts:
            if h.role not in TLS_ROLES:
                continue
            fqdn = f"{h.name}.{domain.dns_domain}"
            if h.tls is not None:
                chains[h.name], key = spec_chain(h, fqdn, keys)
            else:
                names = [fqdn] + ([domain.dns_domain] if h.role is Role.DOMAIN_CONTROLLER else [])
                issued = ca.issue(h.name, names, [h.address])
                chains[h.name], key = issued.chain_pem, issued.key_pem
            if keys:
                secret_keys[h.name] = key
        return TlsMaterial((ca.cert_pem, *extra), chains, secret_keys)
