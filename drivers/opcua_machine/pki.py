"""The gateway's certificate, key and the machine's pinned certificate, read from files.

A missing or unreadable file is the deployment's problem, not the machine's: it is a plain
DriverError, never DeviceUnavailable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua.crypto import uacrypto
from cryptography import x509

from drivers.base import DriverError

__all__ = ["application_uri", "load_certificate", "load_private_key", "read_file"]


async def read_file(path: str, key: str) -> bytes:
    """The bytes of the file the config key ``key`` names."""
    try:
        return await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        raise DriverError(f"{key} {path!r}: {exc.strerror or exc}") from None


def _cert_properties(content: bytes) -> uacrypto.CertProperties:
    # asyncua picks PEM or DER by the file name; the content says it reliably.
    extension = "pem" if b"-----BEGIN" in content else "der"
    return uacrypto.CertProperties(content, extension)


async def load_certificate(path: str, key: str) -> tuple[uacrypto.CertProperties, x509.Certificate]:
    """A certificate file (PEM or DER), for asyncua and as parsed."""
    properties = _cert_properties(await read_file(path, key))
    try:
        certificate = await uacrypto.load_certificate(
            properties.path_or_content, properties.extension
        )
    except ValueError as exc:
        raise DriverError(f"{key} {path!r} is not a certificate: {exc}") from None
    return properties, certificate


async def load_private_key(path: str) -> uacrypto.CertProperties:
    """A private key file (PEM or DER, not encrypted), checked to load."""
    properties = _cert_properties(await read_file(path, "private_key"))
    try:
        await uacrypto.load_private_key(properties.path_or_content, None, properties.extension)
    except (ValueError, TypeError) as exc:
        raise DriverError(f"private_key {path!r} is not a usable key: {exc}") from None
    return properties


def application_uri(certificate: x509.Certificate) -> str | None:
    """The application URI in a certificate's subjectAltName (OPC 10000-4 §6.1.2)."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
