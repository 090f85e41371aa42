"""The station API's certificate and key (``[http.tls]``): checked, described, loaded.

``linegate check-config`` and ``linegate run`` read them before the gateway serves, so a
missing or unreadable file, a key of another certificate, an encrypted key, a key every
user of the box may read, or a certificate out of date is a config error naming its key
(exit 78), not a gateway that starts and then fails every terminal's handshake. The key
file is found as the hub's secret files are (gateway/config/secrets.py): an absolute path,
a systemd credential, or a path in the config folder.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.config.line import HttpTls
from gateway.config.secrets import secret_path

__all__ = [
    "TlsFileError",
    "TlsProblem",
    "cert_path",
    "certificate_names",
    "check_tls_files",
    "key_path",
    "server_context",
]

_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class TlsProblem:
    """What is wrong with one of the files: ``key`` is ``cert_file`` or ``key_file``."""

    key: str
    message: str


class TlsFileError(Exception):
    """The certificate or key cannot serve (the message names the file, never the key's
    content)."""


def key_path(tls: HttpTls, config_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the key is: absolute as given, a systemd credential, or in the config folder."""
    return secret_path(tls.key_file, config_dir, env)


def cert_path(tls: HttpTls, config_dir: Path) -> Path:
    """Where the certificate is: absolute as given, or in the config folder."""
    path = Path(tls.cert_file)
    return path if path.is_absolute() else config_dir / path


def check_tls_files(
    tls: HttpTls, config_dir: Path, now: datetime, env: Mapping[str, str] | None = None
) -> list[TlsProblem]:
    """Every problem of the certificate and key as at ``now`` (aware); [] when they serve."""
    problems: list[TlsProblem] = []
    cert_file = cert_path(tls, config_dir)
    key_file = key_path(tls, config_dir, env)
    leaf = _leaf(cert_file, now, problems)
    key = _key(tls, key_file, problems, env)
    if leaf is None or key is None:
        return problems
    if _public(key.public_key()) != _public(leaf.public_key()):
        problems.append(
            TlsProblem(
                "key_file",
                f"{key_file} is not the key of {cert_file} (their public keys differ): "
                "name the key that was made with this certificate",
            )
        )
    if not problems:
        # What the gateway will do at its start: OpenSSL may still refuse what parsed here
        # (a key too weak for its security level, a signature with a broken hash).
        try:
            server_context(cert_file, key_file)
        except TlsFileError as exc:
            problems.append(TlsProblem("cert_file", str(exc)))
    return problems


def certificate_names(tls: HttpTls, config_dir: Path) -> tuple[list[str], datetime]:
    """The names and addresses the certificate is for, and its end of validity (for
    check-config's ok line). Call after :func:`check_tls_files` found nothing."""
    leaf = x509.load_pem_x509_certificates(cert_path(tls, config_dir).read_bytes())[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], leaf.not_valid_after_utc
    names = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    return names, leaf.not_valid_after_utc


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The station API's TLS: 1.2 at least, the certificate (and the chain after it in
    its file) and its key. Raises TlsFileError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The station API speaks HTTP/1.1 only (h11): saying so at once spares a browser
    # from offering HTTP/2.
    context.set_alpn_protocols(["http/1.1"])
    try:
        # A callable, even one that knows no passphrase, keeps OpenSSL from asking for
        # one on the terminal when the key is encrypted: the gateway starts unattended.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as exc:
        raise TlsFileError(
            f"OpenSSL refuses {cert_file} with {key_file}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        # OpenSSL does not say which of the two it could not read.
        for path in (cert_file, key_file):
            try:
                path.open("rb").close()
            except OSError as unreadable:
                raise TlsFileError(f"cannot read {path}: {unreadable.strerror}") from None
        raise TlsFileError(f"cannot read {cert_file} or {key_file}: {exc}") from None
    return context


def _leaf(path: Path, now: datetime, problems: list[TlsProblem]) -> x509.Certificate | None:
    def problem(message: str) -> None:
        problems.append(TlsProblem("cert_file", message))

    try:
        data = path.read_bytes()
    except OSError as exc:
        problem(f"cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        leaf = x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        problem(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return None
    if now < leaf.not_valid_before_utc:
        problem(
            f"{path} is valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"(this box's clock says {now:%Y-%m-%d %H:%M %Z}: is it right?)"
        )
    if now > leaf.not_valid_after_utc:
        problem(
            f"{path} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: terminals "
            "refuse it; make a new one (the site's CA, or linegate certs make for a lab)"
        )
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        problem(f"{path} is a CA's certificate: name the gateway's own certificate")
    usage = _extension(leaf, x509.ExtendedKeyUsage)
    if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        problem(
            f"{path} is not for a server (its extended key usage lacks serverAuth): "
            "browsers refuse it"
        )
    return leaf


def _key(
    tls: HttpTls, path: Path, problems: list[TlsProblem], env: Mapping[str, str] | None
) -> PrivateKeyTypes | None:
    def problem(message: str) -> None:
        problems.append(TlsProblem("key_file", message))

    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        hint = ""
        environ = os.environ if env is None else env
        if len(Path(tls.key_file).parts) == 1 and not environ.get("CREDENTIALS_DIRECTORY"):
            # Named like a credential, looked for where one is not: say where it would be.
            hint = (
                " (a systemd credential is in $CREDENTIALS_DIRECTORY for the service alone: "
                "its ExecStartPre=linegate check-config sees it)"
            )
        problem(f"cannot read {path}: {exc.strerror or exc}{hint}")
        return None
    if mode & stat.S_IROTH:
        problem(
            f"{path} is readable by every user of this box (mode {stat.S_IMODE(mode):04o}): "
            f"chmod o-r {path} (the gateway's user alone needs it)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problem(
            f"{path} is encrypted with a passphrase, and the gateway starts unattended: "
            f"keep it unencrypted, readable by the gateway only (openssl pkey -in {path} "
            "-out NEW), or as a systemd credential"
        )
        return None
    except (ValueError, UnsupportedAlgorithm):
        problem(f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
        return None
    return key


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
