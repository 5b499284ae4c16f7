"""A throwaway certificate authority for the TLS tests, made with the `cryptography` package.

`Authority.create(directory)` writes PEM files there and returns their paths: the CA, a server
certificate for loopback (SAN 127.0.0.1 and localhost), one for another host name (for the
hostname-mismatch case), an expired server certificate, a client certificate for mutual TLS,
and a second, unrelated CA (the "unknown CA" case). Keys are unencrypted PKCS#8, the form Kafka's
PEM key stores, RabbitMQ, Spring and Python's ssl module all read.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)
_LOOPBACK: list[x509.GeneralName] = [
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.DNSName("localhost"),
]


@dataclass(frozen=True, slots=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path

    def bundle(self) -> Path:
        """Key then certificate in one file (Kafka's PEM key store reads this form)."""
        path = self.cert.with_suffix(".bundle.pem")
        path.write_bytes(self.key.read_bytes() + self.cert.read_bytes())
        return path


@dataclass(frozen=True, slots=True)
class Authority:
    ca: Path  # the CA certificate clients and servers trust
    server: Pair  # 127.0.0.1 and localhost
    other_host: Pair  # signed by the CA, but for wrong.example only
    expired: Pair  # 127.0.0.1 and localhost, expired yesterday
    client: Pair  # a client certificate for mutual TLS
    wrong_ca: Path  # a CA that signed none of the above
    wrong_client: Pair  # a client certificate signed by the wrong CA

    @classmethod
    def create(cls, directory: Path) -> Authority:
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key, ca_cert = _authority("gateway test CA", now)
        wrong_key, wrong_cert = _authority("some other CA", now)
        issue = _Issuer(directory, ca_key, ca_cert, now)
        wrong = _Issuer(directory, wrong_key, wrong_cert, now)
        return cls(
            ca=_write(directory / "ca.pem", ca_cert),
            server=issue("server", _LOOPBACK, ExtendedKeyUsageOID.SERVER_AUTH),
            other_host=issue(
                "other-host", [x509.DNSName("wrong.example")], ExtendedKeyUsageOID.SERVER_AUTH
            ),
            expired=issue(
                "expired", _LOOPBACK, ExtendedKeyUsageOID.SERVER_AUTH, valid_until=now - _DAY
            ),
            client=issue("client", [x509.DNSName("gateway")], ExtendedKeyUsageOID.CLIENT_AUTH),
            wrong_ca=_write(directory / "wrong-ca.pem", wrong_cert),
            wrong_client=wrong(
                "wrong-client", [x509.DNSName("gateway")], ExtendedKeyUsageOID.CLIENT_AUTH
            ),
        )


class _Issuer:
    def __init__(
        self,
        directory: Path,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        now: datetime.datetime,
    ) -> None:
        self.directory, self.key, self.cert, self.now = directory, key, cert, now

    def __call__(
        self,
        name: str,
        alt_names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        valid_until: datetime.datetime | None = None,
    ) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        until = valid_until or self.now + 30 * _DAY
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(self.now, until) - 2 * _DAY)
            .not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_path = self.directory / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Pair(_write(self.directory / f"{name}.pem", cert), key_path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority(
    common_name: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 2 * _DAY)
        .not_valid_after(now + 30 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _write(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
