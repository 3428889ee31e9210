"""The serving functions' boto3 clients against an endpoint that accepts and never answers (a hung
sink): the number of tries is what ``attempts`` says, and small writes do not wait for 100 Continue."""

from __future__ import annotations

import socket
import threading
import time

import botocore.exceptions
import pytest

from driftstack.adapters import aws


class HangingServer:
    """Accepts TCP connections, records what arrives on each, never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests: list[bytearray] = []   # one per connection, filled as bytes arrive
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)
            data = bytearray()
            self.requests.append(data)
            threading.Thread(target=self._read, args=(conn, data), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, data: bytearray) -> None:
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for c in self._held:
            c.close()


@pytest.fixture
def hanging(monkeypatch):
    server = HangingServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield server
    server.close()


@pytest.mark.parametrize("attempts", [1, 2])
def test_attempts_count_every_try(hanging, attempts):
    s3 = aws.client("s3", timeout=0.3, attempts=attempts, small_writes=True)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        s3.put_object(Bucket="b", Key="k", Body=b'{"request_id": "r1"}\n')
    s3.close()
    time.sleep(0.3)  # the server thread has seen every connection the client made
    assert len(hanging.requests) == attempts


def test_small_writes_send_the_body_without_waiting_for_100_continue(hanging):
    for small in (True, False):
        s3 = aws.client("s3", timeout=0.3, attempts=1, small_writes=small)
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            s3.put_object(Bucket="b", Key=f"k-{small}", Body=b'{"request_id": "r1"}\n')
        s3.close()
    time.sleep(0.3)
    small_write, default = (bytes(r) for r in hanging.requests)
    assert b"expect: 100-continue" not in small_write.lower() and small_write.endswith(b'{"request_id": "r1"}\n')
    assert b"expect: 100-continue" in default.lower()  # botocore's default, which the option turns off
