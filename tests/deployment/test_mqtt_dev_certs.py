"""deploy/mqtt_dev_certs.py: a CA and a broker certificate for the compose broker."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from compose_support import ROOT, load_script
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

certs = load_script("mqtt_dev_certs", ROOT / "deploy" / "mqtt_dev_certs.py")


def test_broker_certificate_is_signed_by_the_ca_for_the_compose_host(tmp_path: Path) -> None:
    assert certs.main([str(tmp_path), "--host", "broker.example"]) == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    broker = x509.load_pem_x509_certificate((tmp_path / "broker.crt").read_bytes())
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mosquitto", "localhost", "broker.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not broker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("ca.key", "broker.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    key = load_pem_private_key((tmp_path / "broker.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == broker.public_key().public_numbers()


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    certs.write_certificates(tmp_path)
    before = (tmp_path / "ca.crt").read_bytes()
    assert certs.main([str(tmp_path)]) == 2
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert certs.main([str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() != before


@pytest.mark.parametrize("name", certs.FILES)
def test_file_names_are_the_ones_the_broker_config_reads(name: str) -> None:
    conf = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
    assert conf.exists(), "deploy/mosquitto/mosquitto.conf is missing"
    if name == "ca.key":
        assert f"/{name}" not in conf.read_text()  # the CA key stays with the operator
    else:
        assert f"/etc/mosquitto/certs/{name}" in conf.read_text()
