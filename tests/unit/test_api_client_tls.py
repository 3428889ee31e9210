"""The API client verifies HTTPS: against the local CA on LocalStack, the usual bundle on AWS, or
--cacert. A real HTTPS server on 127.0.0.1 serves the local CA's server certificate."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from driftstack.tools import api_client, local_ca
from driftstack.tools.api_client import ApiClient, CertificateNotTrusted
from driftstack.tools.aws_target import FROM_OPTION, Target


PAGE = "<html>Swagger UI: 中文, Ōsaka, ग</html>"  # the API's text/html comes without a charset


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        page = self.path.endswith("/docs")
        body = PAGE.encode() if page else json.dumps({"status": "ok", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html" if page else "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls(tmp_path):
    return local_ca.ensure(tmp_path / "tls")


@pytest.fixture
def https_server(tls):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls.server)  # the file LocalStack gets: key + certificate + CA
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verified_against_the_local_ca(https_server, tls, host, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # must not win over the CA
    client = ApiClient(f"https://{host}:{https_server}", None, timeout=5, verify=str(tls.ca))
    assert client.health() == (200, {"status": "ok", "path": "/v1/health"})


def test_without_the_local_ca_the_certificate_is_refused(https_server, tls):
    client = ApiClient(f"https://localhost:{https_server}", None, timeout=5)  # the usual CA bundle
    with pytest.raises(CertificateNotTrusted, match="does not verify against the system's CA bundle"):
        client.health()


def test_another_ca_is_refused_and_named(https_server, tmp_path):
    other = local_ca.ensure(tmp_path / "other")
    client = ApiClient(f"https://localhost:{https_server}", None, timeout=5, verify=str(other.ca))
    with pytest.raises(CertificateNotTrusted, match=str(other.ca)):
        client.health()


def test_the_local_endpoint_becomes_https_with_the_local_ca(tls, monkeypatch):
    monkeypatch.setattr(api_client, "local_ca_file", lambda: tls.ca)
    assert api_client.local_https("http://localhost:4566") == ("https://localhost:4566", str(tls.ca))
    assert api_client.local_https("https://127.0.0.1:4566") == ("https://127.0.0.1:4566", str(tls.ca))
    # a host the certificate does not name (LocalStack in another container) stays as given
    assert api_client.local_https("http://localstack:4566") == ("http://localstack:4566", True)


def test_without_a_local_ca_the_endpoint_stays_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(api_client, "local_ca_file", lambda: tmp_path / "none" / "ca.pem")
    assert api_client.local_https("http://localhost:4566") == ("http://localhost:4566", True)
    assert api_client.local_https("http://localstack:4566", cacert="/etc/my-ca.pem") == \
        ("https://localstack:4566", "/etc/my-ca.pem")


def _fake_stack(monkeypatch):
    class FakeApiGateway:
        meta = type("Meta", (), {"region_name": "eu-west-1"})

        def get_api_key(self, apiKey, includeValue):
            return {"value": "secret"}

    monkeypatch.setattr(Target, "client", lambda self, service: FakeApiGateway())
    monkeypatch.setattr(api_client, "deployed_outputs",
                        lambda target, stack: {"ApiId": "abc", "ApiStage": "prod", "ApiKeyId": "k1"})


def test_from_stack_on_localstack_uses_https_and_the_local_ca(tls, monkeypatch):
    _fake_stack(monkeypatch)
    monkeypatch.setattr(api_client, "local_ca_file", lambda: tls.ca)
    local = ApiClient.from_stack(target=Target("http://localhost:4599", endpoint_source=FROM_OPTION))
    assert local.base_url == "https://localhost:4599/_aws/execute-api/abc/prod"
    assert local.session.verify == str(tls.ca)


def test_from_stack_on_aws_uses_the_usual_bundle_or_cacert(monkeypatch):
    _fake_stack(monkeypatch)
    assert ApiClient.from_stack(target=Target()).session.verify is True
    assert ApiClient.from_stack(target=Target(), cacert="/corp/ca.pem").session.verify == "/corp/ca.pem"


def test_text_without_a_charset_is_read_as_utf8(https_server, tls):
    """requests reads text/* without a charset as latin-1: the Swagger page's scripts would break."""
    client = ApiClient(f"https://localhost:{https_server}", None, verify=str(tls.ca))
    assert client.call("GET", "/docs") == (200, PAGE)
