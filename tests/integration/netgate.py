"""A network fault we can switch: a loopback TCP forwarder in front of LocalStack.

Point one service of a deployed function at it (e.g. the function's ``AWS_ENDPOINT_URL_S3``) and
that service becomes unreachable or reachable on command, the way an outage looks to a client:

* closed: nothing listens on the port (connection refused) and every forwarded connection is cut,
  so a warm client's pooled keep-alive connection fails too;
* open: each connection is forwarded to LocalStack, byte for byte;
* stalled: connections are accepted and never answered (a service that hangs), and the forwarded
  ones are cut, so every request has to wait for its client's timeout.
"""

from __future__ import annotations

import socket
import threading

from driftstack.tools import localstack_host


class Gate:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = localstack_host.free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stalled = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        if self._stalled:
            self._cut()  # the held connections fail now instead of at their clients' timeouts
        self._stalled = False
        self._listen()

    def stall(self) -> None:
        self._stalled = True
        self._cut()
        self._listen()

    def _listen(self) -> None:
        if self._listener is not None:
            return
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)  # so the accept loop notices close()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            _hang_up(s)

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._stalled:  # hold it open, read nothing, answer nothing
                with self._lock:
                    self._conns.add(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _hang_up(client)
                continue
            for s in (client, upstream):
                s.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _hang_up(src)
        _hang_up(dst)


def _hang_up(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
