"""Throw-away X.509 material for DICOM TLS tests (PEM files, unencrypted keys).

``make_tls_certs(directory)`` writes:

* a CA (``ca.pem`` / ``ca.key``);
* a server certificate signed by it, CN ``localhost``, SubjectAltName DNS ``localhost`` and IP
  ``127.0.0.1`` (``server.pem`` / ``server.key``);
* a client certificate signed by it, CN ``WSTEST`` (``client.pem`` / ``client.key``); it carries the
  same SubjectAltNames, so it can also serve the workstation's own TLS listener;
* a second, unrelated CA (``wrong_ca.pem`` / ``wrong_ca.key``) and a client and a server certificate
  signed by that wrong CA (``wrong_client.*``, ``wrong_server.*``), for "untrusted peer" tests.

Both leaf certificates carry the serverAuth and clientAuth extended key usages: Orthanc uses its one
``DicomTlsCertificate`` for incoming and outgoing (C-MOVE) TLS connections alike.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsCerts:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca_cert: Path
    wrong_ca_key: Path
    wrong_server_cert: Path  # signed by the wrong CA
    wrong_server_key: Path
    wrong_client_cert: Path  # signed by the wrong CA
    wrong_client_key: Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Workstation tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return builder.not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))


def _ca(cn: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ski, critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                              critical=False))
    return _validity(builder).sign(key, hashes.SHA256()), key


def _leaf(cn: str, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=True, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectAlternativeName([
                   x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                              critical=False))
    return _validity(builder).sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def make_tls_certs(directory: Path, client_cn: str = "WSTEST") -> TlsCerts:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Workstation test CA")
    wrong_ca, wrong_ca_key = _ca("Unrelated test CA")
    paths: dict[str, Path] = {}
    for stem, (cert, key) in {
        "ca": (ca, ca_key),
        "server": _leaf("localhost", ca, ca_key),
        "client": _leaf(client_cn, ca, ca_key),
        "wrong_ca": (wrong_ca, wrong_ca_key),
        "wrong_server": _leaf("localhost", wrong_ca, wrong_ca_key),
        "wrong_client": _leaf(client_cn, wrong_ca, wrong_ca_key),
    }.items():
        paths[f"{stem}_cert"], paths[f"{stem}_key"] = _write(directory, stem, cert, key)
    return TlsCerts(directory=directory, **paths)
