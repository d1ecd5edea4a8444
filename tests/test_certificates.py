"""The certificates of a run (provision.certificates) and how they reach the inventory: real
keys and certificates, real files, the real spec loader; nothing mocked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography import x509

from provision import certificates, inventory
from provision.errors import SecretError
from provision.model import Network
from provision.spec import load_network
from provision.tls import NetworkCA

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "inventories" / "lab-domain.yml"


def _network(tmp_path: Path, **host_tls: dict[str, object]) -> Network:
    data = yaml.safe_load(LAB.read_text())
    for host in data["hosts"]:
        if host["name"] in host_tls:
            host["tls"] = host_tls[host["name"]]
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(data))
    return load_network(path)


def _sans(pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificates(pem.encode())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def test_dcs_mail_and_database_servers_get_certificates_from_the_network_ca(tmp_path: Path) -> None:
    net = _network(tmp_path)
    tls = certificates.material(net, net.hosts, tmp_path / "ca")
    assert sorted(tls.chains) == ["db1", "dc1", "dc2", "mx1"] == sorted(tls.keys)
    assert _sans(tls.chains["mx1"]) == {"mx1.ad.lab.test"}
    assert _sans(tls.chains["dc1"]) == {"dc1.ad.lab.test", "ad.lab.test"}  # ldaps://ad.lab.test reaches any DC
    assert "PRIVATE KEY" in tls.keys["mx1"] and "PRIVATE KEY" not in tls.chains["mx1"]
    ca = x509.load_pem_x509_certificate(tls.ca_certificates[0].encode())
    leaf = x509.load_pem_x509_certificates(tls.chains["mx1"].encode())[0]
    leaf.verify_directly_issued_by(ca)
    # A second run hands out the same certificates (a re-apply changes nothing).
    assert certificates.material(net, net.hosts, tmp_path / "ca") == tls


def test_a_dry_run_neither_makes_a_ca_nor_reads_keys(tmp_path: Path) -> None:
    net = _network(tmp_path)
    folder = tmp_path / "ca"
    dry = certificates.material(net, net.hosts, folder, keys=False, scratch=True)
    assert not folder.exists() and dry.keys == {} and sorted(dry.chains) == ["db1", "dc1", "dc2", "mx1"]
    real = certificates.material(net, net.hosts, folder)
    before = {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}
    # Where the real CA exists, a dry run reads it (same certificates) and changes no file of it.
    assert certificates.material(net, net.hosts, folder, keys=False, scratch=True).chains == real.chains
    assert {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def _corporate(tmp_path: Path, names: list[str]) -> tuple[Path, Path, str]:
    ca = NetworkCA.open(tmp_path / "corp", "corp", ["ad.lab.test"], ["10.231.0.0/24"])
    issued = ca.issue("mx1", names, ["10.231.0.26"])
    cert, key = tmp_path / "mx1.crt", tmp_path / "mx1.key"
    cert.write_text(issued.chain_pem)
    key.write_text(issued.key_pem)
    key.chmod(0o600)
    return cert, key, ca.cert_pem


def test_the_specs_own_certificate_is_used_and_checked(tmp_path: Path) -> None:
    cert, key, corp_ca = _corporate(tmp_path, ["mx1.ad.lab.test"])
    net = _network(tmp_path, mx1={"certificate": {"file": str(cert)}, "key": {"file": str(key)}})
    tls = certificates.material(net, net.hosts, tmp_path / "ca")
    assert corp_ca in tls.chains["mx1"] and tls.keys["mx1"].strip() == key.read_text().strip()
    # The DCs still get the network CA's certificates.
    assert corp_ca not in tls.chains["dc1"]


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    cert, key, _ = _corporate(tmp_path, ["mail.ad.lab.test"])
    net = _network(tmp_path, mx1={"certificate": {"file": str(cert)}, "key": {"file": str(key)}})
    with pytest.raises(SecretError, match=r"does not name mx1\.ad\.lab\.test"):
        certificates.material(net, net.hosts, tmp_path / "ca")


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    cert, _, _ = _corporate(tmp_path, ["mx1.ad.lab.test"])
    other = NetworkCA.open(tmp_path / "other", "other", ["ad.lab.test"], ["10.231.0.0/24"]).issue(
        "mx1", ["mx1.ad.lab.test"]
    )
    key = tmp_path / "wrong.key"
    key.write_text(other.key_pem)
    key.chmod(0o600)
    net = _network(tmp_path, mx1={"certificate": {"file": str(cert)}, "key": {"file": str(key)}})
    with pytest.raises(SecretError, match="does not belong to the certificate"):
        certificates.material(net, net.hosts, tmp_path / "ca")


def test_a_file_that_is_no_certificate_is_refused_without_quoting_it(tmp_path: Path) -> None:
    secret = tmp_path / "notes.txt"
    secret.write_text("the vault code is 4711\n")
    _, key, _ = _corporate(tmp_path, ["mx1.ad.lab.test"])
    net = _network(tmp_path, mx1={"certificate": {"file": str(secret)}, "key": {"file": str(key)}})
    with pytest.raises(SecretError) as err:
        certificates.material(net, net.hosts, tmp_path / "ca")
    assert "holds no PEM certificate" in str(err.value) and "4711" not in str(err.value)


def test_the_inventory_carries_certificates_and_mail_but_never_a_key(tmp_path: Path) -> None:
    net = _network(tmp_path)
    tls = certificates.material(net, net.hosts, tmp_path / "ca")
    inv = inventory.build_inventory(net, net.hosts, tls)
    all_vars = inv["all"]["vars"]
    roles = inv["all"]["children"]["domain"]["children"]
    assert roles["mail_server"]["hosts"]["mx1"]["provision_tls_certificate"] == tls.chains["mx1"]
    assert "provision_tls_certificate" not in roles["file_server"]["hosts"]["fs1"]
    assert all_vars["provision_tls_ca_certificates"] == list(tls.ca_certificates)
    assert all_vars["provision_mail_domain"] == "ad.lab.test" and all_vars["provision_mail_in_zone"] is True
    assert all_vars["provision_mail_servers"] == [{"name": "mx1", "address": "10.231.0.26"}]
    lists = {g["name"]: g["mail"] for g in all_vars["provision_groups"]}
    assert lists == {"staff": "staff@ad.lab.test", "engineering": ""}
    text = inventory.dump_unsafe(inv)
    assert not any(key.strip().splitlines()[1] in text for key in tls.keys.values())
