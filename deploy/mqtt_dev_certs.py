#!/usr/bin/env python3
"""Development TLS certificates for the compose broker: a throw-away CA and a broker
certificate it signs.

    python deploy/mqtt_dev_certs.py var/mosquitto-certs [--host mosquitto --host …]

writes ``ca.crt``, ``ca.key`` (0600), ``broker.crt`` and ``broker.key`` (0600): the names
deploy/mosquitto/mosquitto.conf reads from ``/etc/mosquitto/certs``. The broker
certificate names ``mosquitto`` (the host the gateway connects to inside compose),
``localhost`` and 127.0.0.1, plus every ``--host``. Point ``MQTT_CERTS_DIR`` at the
directory. For anything real, use certificates from your own CA instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("mosquitto", "localhost", "127.0.0.1")
VALID_DAYS = 825
FILES = ("ca.crt", "ca.key", "broker.crt", "broker.key")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "carbon-ledger dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_certificates(hosts: Sequence[str], now: datetime | None = None) -> dict[str, bytes]:
    """PEM contents of the four files."""
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder()
          .subject_name(_name("carbon-ledger dev CA")).issuer_name(_name("carbon-ledger dev CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=VALID_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    broker = (x509.CertificateBuilder()
              .subject_name(_name(hosts[0])).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - timedelta(minutes=5))
              .not_valid_after(now + timedelta(days=VALID_DAYS))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(_san(hosts), critical=False)
              .sign(ca_key, hashes.SHA256()))

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    return {"ca.crt": ca.public_bytes(serialization.Encoding.PEM), "ca.key": pem_key(ca_key),
            "broker.crt": broker.public_bytes(serialization.Encoding.PEM),
            "broker.key": pem_key(key)}


def write_certificates(out: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *,
                       force: bool = False) -> None:
    if any((out / f).exists() for f in FILES) and not force:
        raise FileExistsError(f"{out} already holds certificates; pass --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in make_certificates(hosts).items():
        mode = 0o600 if name.endswith(".key") else 0o644
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path, mode)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory (e.g. var/mosquitto-certs)")
    parser.add_argument("--host", action="append", default=[],
                        help="another name or IP address for the broker (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        write_certificates(args.out, [*DEFAULT_HOSTS, *args.host], force=args.force)
    except FileExistsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"wrote {', '.join(FILES)} to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
