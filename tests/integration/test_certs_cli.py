"""``linegate certs make``, run as a real process: the lab CA and the gateway's
certificate as asked (read back with cryptography and verified as a browser would), key
files only their owner reads, nothing replaced without --force, bad names refused.

Validity is checked as a span (the command reads the system's time, and the test
measures around the run), never against a date.
"""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.integration.cli import linegate

E = TypeVar("E", bound=x509.ExtensionType)
FILES = ("lab-ca.crt", "lab-ca.key", "station-api.crt", "station-api.key")


def make(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return linegate("certs", "make", "--out", str(out), *args)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(c: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return c.extensions.get_extension_for_class(kind)


def verify(ca: x509.Certificate, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    """What a browser does with the certificate for ``name``: raises VerificationError."""
    at = leaf.not_valid_before_utc + timedelta(hours=2)
    builder = PolicyBuilder().store(Store([ca])).time(at)
    if isinstance(name, x509.DNSName):
        builder.build_server_verifier(x509.DNSName(name.value)).verify(leaf, [])
    else:
        assert isinstance(name, x509.IPAddress)
        builder.build_server_verifier(x509.IPAddress(name.value)).verify(leaf, [])


def test_the_certificates_are_what_was_asked(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    before = datetime.now(UTC)
    done = make(out, "--host", "gw.lab", "--host", "Line3.Lab.", "--ip", "10.0.3.5",
                "--ip", "::1", "--days", "30")  # fmt: skip
    after = datetime.now(UTC)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    ca, leaf = cert(out / "lab-ca.crt"), cert(out / "station-api.crt")

    names = ext(leaf, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gw.lab", "line3.lab"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.3.5"),
        ipaddress.ip_address("::1"),
    ]
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    leaf_basic = ext(leaf, x509.BasicConstraints)
    assert leaf_basic.critical and not leaf_basic.value.ca
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    # Valid from (about) now, for the days asked; the CA for longer.
    assert leaf.not_valid_before_utc <= before
    assert before + timedelta(days=30) - timedelta(seconds=1) <= leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc <= after + timedelta(days=30)
    assert ca.not_valid_after_utc > leaf.not_valid_after_utc + timedelta(days=365)
    for c in (ca, leaf):
        public = c.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == "secp256r1"
        assert isinstance(c.signature_hash_algorithm, hashes.SHA256)

    # The CA: a CA of end certificates only, signing and nothing else, for these names only.
    basic = ext(ca, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    ca_usage = ext(ca, x509.KeyUsage)
    assert ca_usage.critical and ca_usage.value.key_cert_sign and ca_usage.value.crl_sign
    assert not ca_usage.value.digital_signature
    assert ca.subject == ca.issuer == leaf.issuer
    leaf.verify_directly_issued_by(ca)
    constraints = ext(ca, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees is not None
    assert set(constraints.value.permitted_subtrees) == {
        x509.DNSName("gw.lab"),
        x509.DNSName("line3.lab"),
        x509.IPAddress(ipaddress.ip_network("10.0.3.5/32")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }
    ski = ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ski

    # A browser that trusts the lab CA takes the certificate for each name and address...
    for name in names:
        verify(ca, leaf, name)
    with pytest.raises(VerificationError):
        verify(ca, leaf, x509.DNSName("other.lab"))
    # ...and nothing else the CA's key could sign, were it stolen.
    rogue = _signed_by(out, "bank.example")
    with pytest.raises(VerificationError):
        verify(ca, rogue, x509.DNSName("bank.example"))

    # The keys: the certificates', only their owner may read them.
    for name, c in (("lab-ca.key", ca), ("station-api.key", leaf)):
        path = out / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        assert key.public_key() == c.public_key()
    assert stat.S_IMODE((out / "station-api.crt").stat().st_mode) == 0o644


def _signed_by(out: Path, name: str) -> x509.Certificate:
    ca_key = serialization.load_pem_private_key((out / "lab-ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = cert(out / "lab-ca.crt")
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.not_valid_before_utc)
        .not_valid_after(ca.not_valid_before_utc + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def test_it_says_what_goes_in_line_toml_and_on_the_terminals(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    done = make(out, "--ip", "192.168.7.20")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "[http.tls]" in text
    assert f'cert_file = "{out / "station-api.crt"}"' in text
    assert f'key_file = "{out / "station-api.key"}"' in text
    assert "Install a certificate > CA certificate" in text
    assert "https://192.168.7.20:8443/api/health" in text
    leaf = cert(out / "station-api.crt")
    # The default validity: 825 days, the most Apple's devices take.
    days = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=825) <= days <= timedelta(days=825, hours=2)


def test_nothing_is_replaced_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert make(out, "--host", "gw.lab").returncode == 0
    before = {name: (out / name).read_bytes() for name in FILES}
    again = make(out, "--host", "gw.lab")
    assert again.returncode == 1
    assert "not replacing" in again.stderr and "--force" in again.stderr
    assert {name: (out / name).read_bytes() for name in FILES} == before
    # One file there is enough to refuse, and nothing else is written meanwhile.
    other = tmp_path / "other"
    other.mkdir()
    (other / "station-api.key").write_text("mine")
    assert make(other, "--host", "gw.lab").returncode == 1
    assert sorted(p.name for p in other.iterdir()) == ["station-api.key"]
    # --force replaces them all, a loosened key file back to 0600.
    (out / "station-api.key").chmod(0o644)
    forced = make(out, "--host", "gw.lab", "--force")
    assert forced.returncode == 0, forced.stderr
    for name in FILES:
        assert (out / name).read_bytes() != before[name], name
    assert stat.S_IMODE((out / "station-api.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "at least one --host or --ip"),
        (("--host", "10.0.0.1"), "an address goes with --ip"),
        (("--host", "gw_lab"), "not a host name"),
        (("--host=-gw.lab",), "not a host name"),
        (("--ip", "10.0.0.300"), "not an IPv4 or IPv6 address"),
        (("--host", "gw.lab", "--days", "0"), "--days 0: 1 to 825"),
        (("--host", "gw.lab", "--days", "826"), "--days 826: 1 to 825"),
    ],
)
def test_bad_names_and_days_are_refused(tmp_path: Path, args: tuple[str], words: str) -> None:
    done = make(tmp_path / "pki", *args)
    assert done.returncode == 2
    assert words in done.stderr
    assert not (tmp_path / "pki").exists() or not any((tmp_path / "pki").iterdir())
