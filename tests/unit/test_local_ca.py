"""The local CA: a CA certificate, a server certificate it signed for localhost and LocalStack's
host names, made once and made again only when something about them is wrong."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509

from driftstack.tools import local_ca


def _certs(pem_path):
    return x509.load_pem_x509_certificates(pem_path.read_bytes())


@pytest.fixture
def tls(tmp_path):
    return local_ca.ensure(tmp_path / "tls")


def test_the_ca_is_a_ca_and_signed_the_server_certificate(tls):
    (ca,) = _certs(tls.ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    server, chain_ca = _certs(tls.server)
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    server.verify_directly_issued_by(ca)  # raises when another key signed it
    assert chain_ca == ca  # LocalStack serves the chain: key + server certificate + CA in one file
    assert b"PRIVATE KEY" in tls.server.read_bytes() and b"PRIVATE KEY" not in tls.ca.read_bytes()


def test_the_server_certificate_names_localhost_and_the_execute_api_hosts(tls):
    names = local_ca.subject_alt_names(_certs(tls.server)[0])
    assert {"localhost", "127.0.0.1", "*.execute-api.localhost.localstack.cloud", "localhost.localstack.cloud",
            "*.localhost.localstack.cloud"} <= names


def test_ssl_accepts_the_server_file_as_is(tls):
    """One PEM with the key first, as LocalStack's CUSTOM_SSL_CERT_PATH wants it."""
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.server)


def test_a_second_call_keeps_both_certificates(tmp_path, tls):
    before = tls.ca.read_bytes(), tls.server.read_bytes()
    again = local_ca.ensure(tmp_path / "tls")
    assert (again.ca.read_bytes(), again.server.read_bytes()) == before


def test_a_server_certificate_near_expiry_is_renewed_by_the_same_ca(tmp_path, tls):
    ca_before, server_before = tls.ca.read_bytes(), _certs(tls.server)[0]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=local_ca.SERVER_DAYS - 10)
    local_ca.ensure(tmp_path / "tls", now=soon)
    assert tls.ca.read_bytes() == ca_before
    renewed = _certs(tls.server)[0]
    assert renewed.serial_number != server_before.serial_number and renewed.not_valid_after_utc > soon


def test_other_names_wanted_means_a_new_server_certificate(tmp_path, tls, monkeypatch):
    monkeypatch.setattr(local_ca, "SERVER_NAMES", (*local_ca.SERVER_NAMES, "driftstack.test"))
    local_ca.ensure(tmp_path / "tls")
    assert "driftstack.test" in local_ca.subject_alt_names(_certs(tls.server)[0])


def test_a_lost_ca_makes_a_new_ca_and_a_server_certificate_it_signed(tmp_path, tls):
    old_ca = tls.ca.read_bytes()
    tls.ca.unlink()
    local_ca.ensure(tmp_path / "tls")
    (ca,) = _certs(tls.ca)
    assert tls.ca.read_bytes() != old_ca
    _certs(tls.server)[0].verify_directly_issued_by(ca)


def test_a_server_certificate_from_another_ca_is_replaced(tmp_path, tls):
    other = local_ca.ensure(tmp_path / "other")
    tls.server.write_bytes(other.server.read_bytes())
    local_ca.ensure(tmp_path / "tls")
    _certs(tls.server)[0].verify_directly_issued_by(_certs(tls.ca)[0])


@pytest.mark.parametrize("host, covered", [
    ("localhost", True), ("127.0.0.1", True), ("[::1]", True), ("abc123.execute-api.localhost.localstack.cloud", True),
    ("localhost.localstack.cloud", True), ("localstack", False), ("a.b.execute-api.localhost.localstack.cloud", False),
])
def test_covers_follows_the_wildcard_rule(host, covered):
    assert local_ca.covers(host) is covered
