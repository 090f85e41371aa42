"""``[http]`` with TLS, the redirect port and the docs switch: loading, and every way the
certificate and key can be wrong named with file and key (``linegate check-config``
exits 78), as at an instant the test chooses.

The certificates are made by ``linegate certs make``'s code at a fixed instant, and
checked at instants around it: none of this depends on the day it runs. Only the
``check-config`` command's own test reads the system's time, as the command does.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.cli.lab_certs import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, make_lab_certs
from gateway.config.line import HttpSection
from gateway.config.load import ConfigError, ConfigProblem, check_config, load_line_config
from tests.configs.test_config_load import LINE_TOML, write_line
from tests.integration.cli import linegate

MADE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LATER = MADE + timedelta(days=1)  # within the 30 days the certificate is valid
TLS = """
[http]
host = "0.0.0.0"
port = 8443

[http.tls]
cert_file = "pki/station-api.crt"
key_file = "pki/station-api.key"
"""


def tls_line(folder: Path, http: str = TLS, made: datetime = MADE) -> Path:
    write_line(folder, {"line.toml": LINE_TOML + http})
    make_lab_certs(folder / "pki", ["localhost"], [], 30, made)
    return folder


def problems_at(folder: Path, at: datetime) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_line_config(folder, check_tls_at=at)
    return caught.value.problems


def only(problems: list[ConfigProblem], path: str, *words: str) -> None:
    assert len(problems) == 1, problems
    assert (problems[0].file, problems[0].path) == ("line.toml", path), problems
    for word in words:
        assert word in problems[0].message, problems


def test_a_tls_line_loads_its_certificate_from_the_config_folder(tmp_path: Path) -> None:
    folder = tls_line(tmp_path / "line")
    config = load_line_config(folder, check_tls_at=LATER)
    assert config.http.tls_enabled
    assert config.http.tls is not None
    assert config.http.tls.cert_file == str(folder.resolve() / "pki" / SERVER_CERT)
    # The key is looked up when read (it may be a systemd credential).
    assert config.http.tls.key_file == "pki/station-api.key"
    assert (config.http.redirect_port, config.http.api_docs) == (None, False)
    plain = load_line_config(write_line(tmp_path / "plain", {}))
    assert not plain.http.tls_enabled


def test_only_check_config_and_run_read_the_key(tmp_path: Path) -> None:
    # trace, devices, plan load the config too, as users who may not read the key.
    folder = tls_line(tmp_path / "line")
    (folder / "pki" / SERVER_KEY).unlink()
    assert load_line_config(folder).http.tls_enabled
    only(problems_at(folder, LATER), "http.tls.key_file", "cannot read", SERVER_KEY)


@dataclass(frozen=True)
class Wrong:
    name: str
    spoil: Callable[[Path], None]  # given the folder of the four files
    path: str
    words: tuple[str, ...]
    at: datetime = LATER


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _encrypted(pki: Path) -> None:
    key = serialization.load_pem_private_key((pki / SERVER_KEY).read_bytes(), None)
    _write(
        pki / SERVER_KEY,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    )


def _the_ca_itself(pki: Path) -> None:
    _write(pki / SERVER_CERT, (pki / CA_CERT).read_bytes())
    _write(pki / SERVER_KEY, (pki / CA_KEY).read_bytes())


def _client_certificate(pki: Path) -> None:
    """A certificate of the lab CA for a client, not a server, with its key."""
    ca_key = serialization.load_pem_private_key((pki / CA_KEY).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((pki / CA_CERT).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(MADE)
        .not_valid_after(MADE + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(pki / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))
    _write(
        pki / SERVER_KEY,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


WRONG = [
    Wrong("no certificate", lambda p: (p / SERVER_CERT).unlink(), "http.tls.cert_file",
          ("cannot read", SERVER_CERT, "No such file")),
    Wrong("no PEM", lambda p: _write(p / SERVER_CERT, b"hello"), "http.tls.cert_file",
          ("no PEM certificate",)),
    Wrong("the CA's key", lambda p: _write(p / SERVER_KEY, (p / CA_KEY).read_bytes()),
          "http.tls.key_file", ("is not the key of", SERVER_CERT)),
    Wrong("a key of nothing", lambda p: _write(p / SERVER_KEY, b"-----BEGIN PRIVATE KEY-----"),
          "http.tls.key_file", ("no PEM private key",)),
    Wrong("encrypted", _encrypted, "http.tls.key_file", ("encrypted with a passphrase",)),
    Wrong("readable by all", lambda p: (p / SERVER_KEY).chmod(0o644), "http.tls.key_file",
          ("readable by every user", "0644")),
    Wrong("the CA's certificate", _the_ca_itself, "http.tls.cert_file", ("a CA's certificate",)),
    Wrong("a client's certificate", _client_certificate, "http.tls.cert_file",
          ("not for a server", "serverAuth")),
    Wrong("expired", lambda p: None, "http.tls.cert_file", ("expired on 2026-03-31",),
          at=MADE + timedelta(days=31)),
    Wrong("not yet valid", lambda p: None, "http.tls.cert_file",
          ("valid only from 2026-03-01 08:00", "clock"), at=MADE - timedelta(days=1)),
]  # fmt: skip


@pytest.mark.parametrize("wrong", WRONG, ids=[w.name for w in WRONG])
def test_a_wrong_certificate_or_key_is_a_config_problem(tmp_path: Path, wrong: Wrong) -> None:
    folder = tls_line(tmp_path / "line")
    assert load_line_config(folder, check_tls_at=LATER).http.tls_enabled  # the base is fine
    wrong.spoil(folder / "pki")
    only(problems_at(folder, wrong.at), wrong.path, *wrong.words)


def test_certificate_problems_come_with_the_others(tmp_path: Path) -> None:
    folder = tls_line(tmp_path / "line")
    hub = 'url = "mqtt://broker.local"'
    (folder / "line.toml").write_text(LINE_TOML.replace(hub, f"{hub}\nkeepalive_s = 1") + TLS)
    (folder / "pki" / SERVER_KEY).unlink()
    (folder / "pack-1.toml").write_text('[station]\nid = "pack-1"\n')
    found = {(p.file, p.path) for p in problems_at(folder, LATER)}
    assert found == {
        ("line.toml", "hub.keepalive_s"),
        ("line.toml", "http.tls.key_file"),
        ("pack-1.toml", "station.capabilities"),
    }


@pytest.mark.parametrize(
    ("http", "path", "words"),
    [
        ('[http]\nport = 8443\nredirect_port = 8080\n', "http.redirect_port",
         ("needs [http.tls]",)),
        (TLS.replace("port = 8443", "port = 8443\nredirect_port = 8443"), "http.redirect_port",
         ("port of its own",)),
        (TLS + 'ca_file = "ca.pem"\n', "http.tls.ca_file", ("unknown key",)),
        ('[http.tls]\ncert_file = "a.crt"\n', "http.tls.key_file", ("missing required key",)),
        ('[http]\napi_docs = "yes"\n', "http.api_docs", ("valid boolean",)),
    ],
)  # fmt: skip
def test_http_keys_are_checked(tmp_path: Path, http: str, path: str, words: tuple[str]) -> None:
    folder = write_line(tmp_path / "line", {"line.toml": LINE_TOML + http})
    only(problems_at(folder, LATER), path, *words)


def test_the_model_refuses_a_redirect_without_tls() -> None:
    with pytest.raises(ValueError, match=r"needs \[http.tls\]"):
        HttpSection(redirect_port=8081)
    assert HttpSection(api_docs=True).api_docs


def test_check_config_says_what_the_certificate_covers(tmp_path: Path) -> None:
    folder = tls_line(tmp_path / "line")
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err, now=LATER) == 0, err.getvalue()
    assert out.getvalue().splitlines()[1] == (
        "station API over TLS: certificate for localhost, valid until 2026-03-31"
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err, now=MADE + timedelta(days=40)) == 78
    assert err.getvalue().startswith("line.toml: http.tls.cert_file: ")


def test_check_config_command_with_the_key_as_a_systemd_credential(tmp_path: Path) -> None:
    # The command reads the system's time: the certificate is made at it.
    now = datetime.now(UTC)
    folder = tls_line(tmp_path / "line", TLS.replace("pki/station-api.key", "station-api.key"), now)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (folder / "pki" / SERVER_KEY).rename(credentials / SERVER_KEY)
    ok = linegate("check-config", str(folder), env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert ok.returncode == 0, ok.stderr
    assert "station API over TLS: certificate for localhost, valid until" in ok.stdout
    # Outside the service: where it looked, and where a credential would be.
    alone = linegate("check-config", str(folder), env={"CREDENTIALS_DIRECTORY": ""})
    assert alone.returncode == 78
    assert alone.stderr.startswith("line.toml: http.tls.key_file: cannot read "), alone.stderr
    assert "$CREDENTIALS_DIRECTORY" in alone.stderr
    # run refuses it the same way, before it opens anything.
    run = linegate("run", "--config", str(folder), "--data-dir", str(tmp_path / "data"),
                   env={"CREDENTIALS_DIRECTORY": ""})  # fmt: skip
    assert run.returncode == 78
    assert "http.tls.key_file" in run.stderr
    assert not (tmp_path / "data" / "linegate.db").exists()
