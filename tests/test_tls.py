"""The network CA (provision/tls.py): real keys, real certificates, real verifiers."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provision.errors import ProvisionError
from provision.tls import Issued, NetworkCA

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOMAINS = ["example.com"]
SUBNETS = ["10.0.0.0/24"]
OPENSSL = shutil.which("openssl")


def _open(folder: Path, domains=DOMAINS, subnets=SUBNETS, now=NOW) -> NetworkCA:
    return NetworkCA.open(folder, "lab", domains, subnets, now=now)


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _verify(ca: NetworkCA, leaf_pem: str, name: verification.DNSName | verification.IPAddress, at=NOW) -> None:
    """Build a verified chain with cryptography's own verifier (raises VerificationError)."""
    store = verification.Store([_cert(ca.cert_pem)])
    verifier = verification.PolicyBuilder().store(store).time(at).build_server_verifier(name)
    chain = verifier.verify(_cert(leaf_pem), [])
    assert chain[-1] == _cert(ca.cert_pem)


def _openssl_verify(tmp_path: Path, ca: NetworkCA, leaf_pem: str, *extra: str) -> subprocess.CompletedProcess[str]:
    ca_file, leaf_file = tmp_path / "verify-ca.pem", tmp_path / "verify-leaf.pem"
    ca_file.write_text(ca.cert_pem)
    leaf_file.write_text(leaf_pem)
    at = str(int((NOW + timedelta(minutes=1)).timestamp()))
    cmd = ["openssl", "verify", "-attime", at, "-purpose", "sslserver", "-CAfile", str(ca_file), *extra, str(leaf_file)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _forge(folder: Path, ca: NetworkCA, dns: list[str], ips=(), signer=None, key=None, aki_key=None) -> str:
    """A leaf signed by hand (with the CA's key unless ``signer``), skipping issue()'s own checks."""
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = key or ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
        .issuer_name(_cert(ca.cert_pem).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key((aki_key or ca_key).public_key()), critical=False
        )
        .sign(signer or ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- the CA ---------------------------------------------------------------------------------


def test_ca_profile_and_files(tmp_path):
    folder = tmp_path / "tls" / "lab"
    ca = _open(
        folder, domains=["Example.com", "corp.example.org", "example.com"], subnets=["10.0.0.0/24", "10.1.0.0/16"]
    )
    cert = _cert(ca.cert_pem)

    assert cert.subject.rfc4514_string() == "CN=provision CA lab,O=provision"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)

    ext = cert.extensions
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    nc = ext.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert set(nc.value.permitted_subtrees) == {
        x509.DNSName("example.com"),
        x509.DNSName("corp.example.org"),
        x509.IPAddress(ipaddress.IPv4Network("10.0.0.0/24")),
        x509.IPAddress(ipaddress.IPv4Network("10.1.0.0/16")),
    }
    assert set(nc.value.excluded_subtrees) == {x509.IPAddress(ipaddress.IPv6Network("::/0"))}

    assert ca.fingerprint == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert (folder / "ca.crt").read_text() == ca.cert_pem
    assert _mode(folder) == 0o700
    assert _mode(folder / "ca.key") == 0o600
    assert _mode(folder / "ca.crt") == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "ca.key"]  # no temp files left behind
    key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    assert (folder / "ca.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert key.public_key() == cert.public_key()


def test_reopen_is_identical_and_writes_nothing(tmp_path):
    first = _open(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = _open(tmp_path, domains=["EXAMPLE.com"], now=NOW + timedelta(days=100))
    assert again.cert_pem == first.cert_pem
    assert again.fingerprint == first.fingerprint
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert not (tmp_path / "retired").exists()


def test_without_subnets_every_ip_is_excluded(tmp_path):
    ca = _open(tmp_path, subnets=[])
    nc = _cert(ca.cert_pem).extensions.get_extension_for_class(x509.NameConstraints).value
    assert x509.IPAddress(ipaddress.IPv4Network("0.0.0.0/0")) in nc.excluded_subtrees
    with pytest.raises(ProvisionError, match=r"10\.0\.0\.5 lies outside"):
        ca.issue("fs1", ["fs1.example.com"], ["10.0.0.5"])
    _verify(ca, ca.issue("fs1", ["fs1.example.com"]).cert_pem, verification.DNSName("fs1.example.com"))
    forged = _forge(tmp_path, ca, ["fs1.example.com"], ["10.0.0.5"])
    with pytest.raises(verification.VerificationError):
        _verify(ca, forged, verification.DNSName("fs1.example.com"))


@pytest.mark.parametrize(
    ("domains", "subnets", "message"),
    [
        ([], SUBNETS, "at least one DNS domain"),
        (["*.example.com"], SUBNETS, "not a DNS name"),
        (["example.com."], SUBNETS, "not a DNS name"),
        (DOMAINS, ["10.0.0.1/24"], "host bits"),
        (DOMAINS, ["fd00::/64"], "not an IPv4 subnet"),
        ("example.com", SUBNETS, "not one string"),
    ],
)
def test_bad_ca_inputs_refused(tmp_path, domains, subnets, message):
    with pytest.raises(ProvisionError, match=message):
        _open(tmp_path / "ca", domains=domains, subnets=subnets)
    assert not (tmp_path / "ca").exists()


# --- leaves ---------------------------------------------------------------------------------


def test_leaf_profile_and_real_chain(tmp_path):
    ca = _open(tmp_path)
    leaf = ca.issue("fs1", ["FS1.example.com", "files.example.com", "fs1.example.com"], ["10.0.0.5"])
    assert isinstance(leaf, Issued)
    cert = _cert(leaf.cert_pem)

    assert cert.subject.rfc4514_string() == "CN=fs1.example.com"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fs1.example.com", "files.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("10.0.0.5")]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = _cert(ca.cert_pem).extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest != ca_ski.digest
    assert cert.not_valid_after_utc == NOW + timedelta(days=397) == leaf.not_after
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)

    key = serialization.load_pem_private_key(leaf.key_pem.encode(), password=None)
    assert key.public_key() == cert.public_key()
    assert leaf.chain_pem == leaf.cert_pem + ca.cert_pem
    assert (tmp_path / "hosts" / "fs1.crt").read_text() == leaf.cert_pem
    assert (tmp_path / "hosts" / "fs1.key").read_text() == leaf.key_pem
    assert _mode(tmp_path / "hosts") == 0o700
    assert _mode(tmp_path / "hosts" / "fs1.key") == 0o600

    _verify(ca, leaf.cert_pem, verification.DNSName("fs1.example.com"))
    _verify(ca, leaf.cert_pem, verification.DNSName("files.example.com"))
    _verify(ca, leaf.cert_pem, verification.IPAddress(ipaddress.IPv4Address("10.0.0.5")))
    with pytest.raises(verification.VerificationError):
        _verify(ca, leaf.cert_pem, verification.DNSName("mx1.example.com"))  # not one of its names


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_leaf_verifies_with_openssl(tmp_path):
    ca = _open(tmp_path)
    leaf = ca.issue("fs1", ["fs1.example.com"], ["10.0.0.5"])
    for extra in (["-verify_hostname", "fs1.example.com"], ["-verify_ip", "10.0.0.5"]):
        result = _openssl_verify(tmp_path, ca, leaf.cert_pem, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
    wrong = _openssl_verify(tmp_path, ca, leaf.cert_pem, "-verify_hostname", "mx1.example.com")
    assert wrong.returncode != 0


def test_second_issue_is_byte_identical(tmp_path):
    first = _open(tmp_path).issue("fs1", ["fs1.example.com", "files.example.com"], ["10.0.0.5"])
    files = tmp_path / "hosts"
    before = {p.name: p.stat().st_mtime_ns for p in files.iterdir()}
    # A later run: a new process opens the CA again; names in another order and case.
    again = _open(tmp_path, now=NOW + timedelta(days=30)).issue(
        "fs1", ["FILES.example.com", "fs1.example.com"], ["10.0.0.5", "10.0.0.5"]
    )
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in files.iterdir()} == before


@pytest.mark.parametrize(
    ("dns", "ips"),
    [
        (["fs1.example.com", "smb.example.com"], ["10.0.0.5"]),  # a name added
        (["fs1.example.com"], []),  # an address removed
        (["fs1.example.com"], ["10.0.0.6"]),  # an address changed
    ],
)
def test_changed_names_reissue(tmp_path, dns, ips):
    ca = _open(tmp_path)
    first = ca.issue("fs1", ["fs1.example.com"], ["10.0.0.5"])
    second = ca.issue("fs1", dns, ips)
    assert second.cert_pem != first.cert_pem
    assert second.key_pem != first.key_pem
    san = _cert(second.cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == dns
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ips
    assert ca.issue("fs1", dns, ips) == second  # and then it is stable again


def test_leaf_renewed_when_30_days_left(tmp_path):
    first = _open(tmp_path).issue("fs1", ["fs1.example.com"])
    kept = _open(tmp_path, now=NOW + timedelta(days=366)).issue("fs1", ["fs1.example.com"])  # 31 days left
    assert kept == first
    later = NOW + timedelta(days=368)  # 29 days left
    ca = _open(tmp_path, now=later)
    renewed = ca.issue("fs1", ["fs1.example.com"])
    assert renewed.cert_pem != first.cert_pem
    assert renewed.not_after == later + timedelta(days=397)
    _verify(ca, renewed.cert_pem, verification.DNSName("fs1.example.com"), at=later)


def test_damaged_leaf_cache_is_reissued(tmp_path):
    ca = _open(tmp_path)
    first = ca.issue("fs1", ["fs1.example.com"])
    other = ca.issue("mx1", ["mx1.example.com"])
    (tmp_path / "hosts" / "fs1.key").write_text(other.key_pem)  # a key that is not the cert's
    fixed = ca.issue("fs1", ["fs1.example.com"])
    assert fixed.cert_pem != first.cert_pem
    key = serialization.load_pem_private_key(fixed.key_pem.encode(), password=None)
    assert key.public_key() == _cert(fixed.cert_pem).public_key()


@pytest.mark.parametrize("planted_by", ["another key", "the CA key, with a wrong AKI"])
def test_cached_leaf_not_from_the_ca_is_reissued(tmp_path, planted_by):
    """Same issuer name as the CA's, same names, but another signer or another AKI: replaced."""
    ca = _open(tmp_path)
    ca.issue("fs1", ["fs1.example.com"])
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    if planted_by == "another key":
        planted = _forge(tmp_path, ca, ["fs1.example.com"], key=key, signer=other)
    else:
        planted = _forge(tmp_path, ca, ["fs1.example.com"], key=key, aki_key=other)
        _verify(ca, planted, verification.DNSName("fs1.example.com"))  # the CA did sign it
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (tmp_path / "hosts" / "fs1.crt").write_text(planted)
    (tmp_path / "hosts" / "fs1.key").write_text(key_pem)
    leaf = ca.issue("fs1", ["fs1.example.com"])
    assert leaf.cert_pem != planted
    _verify(ca, leaf.cert_pem, verification.DNSName("fs1.example.com"))


@pytest.mark.parametrize(
    ("dns", "ips", "message"),
    [
        (["badexample.com"], [], "'badexample.com' lies outside"),
        (["example.com.evil.org"], [], "'example.com.evil.org' lies outside"),
        (["fs1.example.org"], [], "'fs1.example.org' lies outside"),
        (["fs1.example.com"], ["10.0.1.5"], "10.0.1.5 lies outside"),
        (["fs1.example.com"], ["fd00::5"], "fd00::5 lies outside"),
        (["fs1.example.com"], ["10.0.0.300"], "not an IP address"),
        (["*.example.com"], [], "not a DNS name"),
        (["a..example.com"], [], "not a DNS name"),
        (["-a.example.com"], [], "not a DNS name"),
        (["a_b.example.com"], [], "not a DNS name"),
        (["fs1.example.com."], [], "not a DNS name"),
        (["fs1.exämple.com"], [], "not a DNS name"),
        ([], ["10.0.0.5"], "at least one DNS name"),
        ("fs1.example.com", [], "not one string"),
        ([("a" * 60) + ".example.com"], [], "common name"),
    ],
)
def test_names_refused(tmp_path, dns, ips, message):
    ca = _open(tmp_path)
    with pytest.raises(ProvisionError, match=message):
        ca.issue("fs1", dns, ips)
    assert not (tmp_path / "hosts" / "fs1.crt").exists()


@pytest.mark.parametrize("name", ["", "Fs1", "-fs1", "fs1.example", "../ca", "fs_1", "a" * 64, "fs1\n"])
def test_bad_leaf_name_refused(tmp_path, name):
    ca = _open(tmp_path)
    with pytest.raises(ProvisionError, match="certificate name"):
        ca.issue(name, ["fs1.example.com"])


def test_boundary_leaf_names_accepted(tmp_path):
    ca = _open(tmp_path)
    for name in ("a", "0", "a" * 63, "fs-1"):
        ca.issue(name, ["fs1.example.com"])
        assert (tmp_path / "hosts" / f"{name}.crt").is_file()


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_real_verifiers_enforce_the_name_constraints(tmp_path):
    """A certificate minted with the CA key for somebody else's name fails verification."""
    ca = _open(tmp_path)
    control = _forge(tmp_path, ca, ["fs1.example.com"], ["10.0.0.5"])  # same recipe, names inside
    assert _openssl_verify(tmp_path, ca, control).returncode == 0
    _verify(ca, control, verification.DNSName("fs1.example.com"))

    for dns, ips, name in (
        (["bank.example.org"], [], verification.DNSName("bank.example.org")),
        (["badexample.com"], [], verification.DNSName("badexample.com")),
        (["fs1.example.com"], ["192.168.1.1"], verification.IPAddress(ipaddress.IPv4Address("192.168.1.1"))),
    ):
        forged = _forge(tmp_path, ca, dns, ips)
        result = _openssl_verify(tmp_path, ca, forged)
        assert result.returncode != 0
        assert "subtree violation" in result.stdout + result.stderr
        with pytest.raises(verification.VerificationError):
            _verify(ca, forged, name)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode"),
    [("ca.key", 0o644), ("ca.key", 0o640), ("ca.key", 0o604), ("ca.crt", 0o664), (".", 0o755), (".", 0o750)],
)
def test_loose_permissions_refused(tmp_path, path, mode):
    folder = tmp_path / "ca"
    _open(folder)
    (folder / path).chmod(mode)
    shown = folder if path == "." else folder / path
    with pytest.raises(ProvisionError, match=rf"{re.escape(str(shown))}.*open to group or others \(mode 0{mode:o}\)"):
        _open(folder)


def test_loose_leaf_key_refused(tmp_path):
    ca = _open(tmp_path)
    ca.issue("fs1", ["fs1.example.com"])
    (tmp_path / "hosts" / "fs1.key").chmod(0o644)
    with pytest.raises(ProvisionError, match=r"fs1\.key.*open to group or others"):
        ca.issue("fs1", ["fs1.example.com"])
    (tmp_path / "hosts" / "fs1.key").chmod(0o600)
    (tmp_path / "hosts").chmod(0o755)
    with pytest.raises(ProvisionError, match=r"hosts.*open to group or others"):
        ca.issue("fs1", ["fs1.example.com"])


def test_symlinks_refused(tmp_path):
    folder = tmp_path / "ca"
    _open(folder)
    elsewhere = tmp_path / "elsewhere.key"
    (folder / "ca.key").rename(elsewhere)
    (folder / "ca.key").symlink_to(elsewhere)
    with pytest.raises(ProvisionError, match=r"ca\.key: it is a symbolic link"):
        _open(folder)
    (folder / "ca.key").unlink()
    elsewhere.rename(folder / "ca.key")
    _open(folder)  # the control: the same file, in place, is fine

    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(ProvisionError, match=r"link: it is a symbolic link"):
        _open(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_files_of_another_user_refused(tmp_path):
    folder = tmp_path / "ca"
    _open(folder)
    os.chown(folder / "ca.key", 65534, -1)
    with pytest.raises(ProvisionError, match=r"ca\.key: it is owned by uid 65534"):
        _open(folder)
    os.chown(folder / "ca.key", 0, -1)
    os.chown(folder, 65534, -1)
    with pytest.raises(ProvisionError, match=r"it is owned by uid 65534"):
        _open(folder)


def test_mismatched_key_refused(tmp_path):
    _open(tmp_path / "a")
    _open(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "ca.key", tmp_path / "a" / "ca.key")
    with pytest.raises(ProvisionError, match=r"ca\.key does not match .*ca\.crt"):
        _open(tmp_path / "a")
    assert not (tmp_path / "a" / "retired").exists()  # refused, not replaced


def test_missing_key_refused_and_lone_key_replaced(tmp_path):
    first = _open(tmp_path)
    key = (tmp_path / "ca.key").read_text()
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ProvisionError, match=r"ca\.key is missing"):
        _open(tmp_path)

    (tmp_path / "ca.crt").unlink()
    (tmp_path / "ca.key").write_text(key)
    (tmp_path / "ca.key").chmod(0o600)
    second = _open(tmp_path)  # a key alone: an interrupted creation, put aside
    assert second.fingerprint != first.fingerprint
    (retired,) = (tmp_path / "retired").iterdir()
    assert (retired / "ca.key").read_text() == key


def test_garbage_ca_refused(tmp_path):
    _open(tmp_path)
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    with pytest.raises(ProvisionError, match=r"ca\.crt is not a PEM certificate"):
        _open(tmp_path)


# --- a new CA -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domains", "subnets"),
    [
        (["example.com", "example.org"], SUBNETS),  # a domain added
        (DOMAINS, ["10.0.0.0/24", "10.0.1.0/24"]),  # a subnet added
        (["corp.example.com"], SUBNETS),  # narrowed: the old CA would still sign for all example.com
        (DOMAINS, []),
    ],
)
def test_changed_constraints_make_a_new_ca(tmp_path, domains, subnets):
    old = _open(tmp_path)
    old_leaf = old.issue("dc1", ["dc1.corp.example.com"])
    old_files = {n: (tmp_path / n).read_text() for n in ("ca.crt", "ca.key")}

    later = NOW + timedelta(days=1)
    new = _open(tmp_path, domains=domains, subnets=subnets, now=later)
    assert new.fingerprint != old.fingerprint
    (retired,) = (tmp_path / "retired").iterdir()
    assert retired.name == "20260302T120000Z"
    assert {n: (retired / n).read_text() for n in ("ca.crt", "ca.key")} == old_files
    assert (retired / "hosts" / "dc1.crt").read_text() == old_leaf.cert_pem
    assert _mode(tmp_path / "retired") == 0o700

    leaf = new.issue("dc1", ["dc1.corp.example.com"])
    assert leaf.cert_pem != old_leaf.cert_pem
    _verify(new, leaf.cert_pem, verification.DNSName("dc1.corp.example.com"), at=later)
    with pytest.raises(verification.VerificationError):
        _verify(old, leaf.cert_pem, verification.DNSName("dc1.corp.example.com"), at=later)
    assert _open(tmp_path, domains=domains, subnets=subnets, now=later).fingerprint == new.fingerprint


def test_removed_domain_makes_a_new_ca(tmp_path):
    """A CA that still covers the wanted names but also a dropped domain is replaced."""
    old = _open(tmp_path, domains=["example.com", "example.org"], subnets=["10.0.0.0/24", "10.0.1.0/24"])
    assert _open(tmp_path, domains=["example.com"], subnets=SUBNETS).fingerprint != old.fingerprint


def test_stale_ca_object_refuses_to_issue(tmp_path):
    """A CA replaced under a run that still holds the old one (another run) signs nothing more."""
    stale = _open(tmp_path)
    _open(tmp_path, domains=["example.org"])
    with pytest.raises(ProvisionError, match="changed since it was opened"):
        stale.issue("fs1", ["fs1.example.com"])
    assert not (tmp_path / "hosts").exists()


def test_ca_replaced_within_a_year_of_expiry(tmp_path):
    old = _open(tmp_path)
    kept = _open(tmp_path, now=NOW + timedelta(days=3650 - 366))
    assert kept.fingerprint == old.fingerprint
    later = NOW + timedelta(days=3650 - 364)
    new = _open(tmp_path, now=later)
    assert new.fingerprint != old.fingerprint
    assert _cert(new.cert_pem).not_valid_after_utc == later + timedelta(days=3650)
    assert len(list((tmp_path / "retired").iterdir())) == 1


def test_leaf_never_outlives_its_ca(tmp_path):
    _open(tmp_path)
    late = NOW + timedelta(days=3650 - 366)  # the CA is kept: 366 days left, less than 397
    leaf = _open(tmp_path, now=late).issue("fs1", ["fs1.example.com"])
    assert leaf.not_after == NOW + timedelta(days=3650)
