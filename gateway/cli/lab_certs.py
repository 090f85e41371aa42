"""A lab's TLS for the station API (``linegate certs make``): a CA of its own and the
gateway's certificate, signed by it.

A site with a CA of its own uses that CA's certificate instead; this is for a lab, a
bench or a pilot line, where someone must install the lab CA on each terminal once. So the
CA may sign for the names and addresses given here and nothing else (name constraints,
which Chrome and Android enforce): a terminal that trusts it trusts no other site for it,
even if its key leaks.

EC P-256 keys and SHA-256 signatures, which every current browser and Android take.
Keys are written with mode 0600 and no file is replaced unless ``force``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "MAX_DAYS",
    "SERVER_CERT",
    "SERVER_KEY",
    "LabCerts",
    "made_files",
    "make_lab_certs",
    "parse_names",
]

CA_CERT = "lab-ca.crt"  # .crt: the name Android's certificate installer looks for
CA_KEY = "lab-ca.key"
SERVER_CERT = "station-api.crt"
SERVER_KEY = "station-api.key"
# Apple's devices refuse a server certificate valid for longer (also from a private CA);
# a lab's terminals may be any.
MAX_DAYS = 825
# The CA outlives the certificates it signs, so a new one can be signed by hand
# (openssl x509 -req -CA lab-ca.crt -CAkey lab-ca.key) without reinstalling the CA.
_CA_DAYS = 3650
# A terminal whose clock runs a little behind still takes a certificate made just now.
_BACKDATE = timedelta(hours=1)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class LabCerts:
    """What was made: the four files, the names the certificate is for, its end."""

    folder: Path
    names: list[str]
    not_after: datetime

    @property
    def ca_cert(self) -> Path:
        return self.folder / CA_CERT

    @property
    def server_cert(self) -> Path:
        return self.folder / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.folder / SERVER_KEY


def made_files(folder: Path) -> list[Path]:
    return [folder / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)]


def parse_names(hosts: list[str], ips: list[str]) -> tuple[list[str], list[IpAddress]]:
    """The DNS names and addresses, checked; raises ValueError saying which one is wrong."""
    names: list[str] = []
    for host in hosts:
        name = host.strip().rstrip(".").lower()
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            raise ValueError(f"--host {host}: an address goes with --ip")
        labels = name.split(".")
        if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"--host {host}: not a host name (letters, digits, '-' and '.')")
        names.append(name)
    addresses: list[IpAddress] = []
    for ip in ips:
        try:
            addresses.append(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise ValueError(f"--ip {ip}: not an IPv4 or IPv6 address") from None
    if not names and not addresses:
        raise ValueError("name the gateway: at least one --host or --ip, as terminals reach it")
    return list(dict.fromkeys(names)), list(dict.fromkeys(addresses))


def make_lab_certs(
    folder: Path,
    names: list[str],
    addresses: list[IpAddress],
    days: int,
    now: datetime,
    *,
    force: bool = False,
) -> LabCerts:
    """Make the lab CA and the gateway's certificate in ``folder`` (created if missing),
    valid ``days`` from ``now`` (aware). Raises FileExistsError naming what is there
    (unless ``force``: then they are replaced), OSError when a file cannot be written."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days {days}: 1 to {MAX_DAYS}")
    folder.mkdir(parents=True, exist_ok=True)
    present = [path for path in made_files(folder) if path.exists() or path.is_symlink()]
    if present and not force:
        raise FileExistsError(", ".join(str(path) for path in present))

    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(a) for a in addresses]
    shown = [*names, *(str(a) for a in addresses)]
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"linegate lab CA ({shown[0]}, {now:%Y-%m-%d})")
    ca_cert = _ca(ca_key, ca_name, names, addresses, now)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(shown[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # The subject's name is not what browsers match: only these are.
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(folder / CA_CERT, ca_cert.public_bytes(pem), 0o644, force)
    _write(folder / CA_KEY, _key_bytes(ca_key), 0o600, force)
    _write(folder / SERVER_CERT, cert.public_bytes(pem), 0o644, force)
    _write(folder / SERVER_KEY, _key_bytes(key), 0o600, force)
    return LabCerts(folder, shown, not_after)


def _ca(
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
    names: list[str],
    addresses: list[IpAddress],
    now: datetime,
) -> x509.Certificate:
    # What it may sign for: these names (and names under them) and these addresses only.
    permitted: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    permitted += [x509.IPAddress(ipaddress.ip_network(a)) for a in addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=_CA_DAYS))
        # A CA of servers' certificates, never of another CA's.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.NameConstraints(permitted, None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Not encrypted: the gateway starts unattended; the file's mode keeps it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``path`` with exactly ``mode``: created new (O_EXCL: never over a file that
    appeared meanwhile), or replaced only with ``force``; never through a symlink."""
    if force and (path.is_symlink() or path.exists()):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)  # the umask may have taken bits off; a key gets no more
        f.write(data)
