"""core.engine.wire: the probe's HTTP/1.1 transport, against real sockets. Each case is a small server that
answers as scripted (chunked, close-delimited, 1xx, Connection: close, a dropped connection, silence, garbage),
plus TLS with a certificate made for the test, and the whole path through PooledClient and the SDK's errors."""
from __future__ import annotations

import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import stripe

from core.engine import wire
from core.engine.http import PooledClient

# (request number, request bytes) -> what to send back; None: close without a word; (bytes, CLOSE): send, then close
CLOSE = "close"
Answer = Callable[[int, bytes], bytes | tuple[bytes, str] | None]


class Scripted:
    """A TCP server on 127.0.0.1: each request read whole (head and Content-Length body) is answered with
    `answer(n, request)`: bytes, or (bytes, CLOSE) to close the connection after them, or None to close it
    without a word. Every request and connection is noted."""

    def __init__(self, answer: Answer, context: ssl.SSLContext | None = None):
        self.answer, self.context = answer, context
        self.requests: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            with self.lock:
                self.connections += 1
                self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += conn.recv(65536)
                request, buf = head + b"\r\n\r\n" + buf[:length], buf[length:]
                with self.lock:
                    self.requests.append(request)
                    n = len(self.requests)
                out = self.answer(n, request)
                if out is None:
                    return
                conn.sendall(out[0] if isinstance(out, tuple) else out)
                if isinstance(out, tuple):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for c in self.open:
                try:
                    c.shutdown(socket.SHUT_RDWR)  # the FIN goes out now, even while a thread waits in recv
                    c.close()
                except OSError:
                    pass


@pytest.fixture
def serve():
    servers: list[Scripted] = []

    def start(answer: Answer, context: ssl.SSLContext | None = None) -> Scripted:
        servers.append(Scripted(answer, context))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def host(url: str, timeout: float = 5.0) -> wire.Host:
    return wire.Host(url, timeout, 8, None)


def test_a_request_goes_out_as_one_http11_message_and_the_connection_is_kept(serve):
    s = serve(lambda n, req: ok(f'{{"n": {n}}}'.encode(), "Request-Id: req_1\r\n"))
    h = host(s.url)
    for n in (1, 2, 3):
        body, status, headers = h.request("GET", "/v1/balance?limit=1", {"Authorization": "Bearer x"}, None)
        assert (body, status) == (f'{{"n": {n}}}'.encode(), 200)
    assert headers["request-id"] == headers.get("Request-Id") == "req_1" and "REQUEST-ID" in headers
    assert s.connections == 1  # kept alive: three requests, one connection
    first = s.requests[0].split(b"\r\n")
    assert first[0] == b"GET /v1/balance?limit=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{s.port}".encode() in first and b"Authorization: Bearer x" in first
    assert not any(x.lower().startswith(b"content-length") for x in first)  # a GET has no body
    h.request("POST", "/v1/charges", {"Content-Type": "application/x-www-form-urlencoded"}, b"amount=1")
    assert s.requests[-1].endswith(b"Content-Length: 8\r\n\r\namount=1")


def test_chunked_close_delimited_and_1xx_answers_are_read_whole(serve):
    chunked = (b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    s = serve(lambda n, req: {1: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after 100"), 2: chunked,
                              3: (b"HTTP/1.0 200 OK\r\n\r\nto the end", CLOSE)}.get(n))
    h = host(s.url)
    assert h.request("GET", "/a", {}, None)[:2] == (b"after 100", 200)
    assert h.request("GET", "/b", {}, None)[:2] == (b"hello world", 403)
    assert s.connections == 1
    assert h.request("GET", "/c", {}, None)[:2] == (b"to the end", 200)
    assert not h.idle  # a body read to the end of the stream: that connection is not used again


def test_connection_close_and_http10_are_not_reused(serve):
    s = serve(lambda n, req: ok(extra="Connection: close\r\n") if n == 1 else ok())
    h = host(s.url)
    h.request("GET", "/", {}, None)
    h.request("GET", "/", {}, None)
    assert s.connections == 2


def test_an_idle_connection_the_server_closed_is_not_used(serve):
    s = serve(lambda n, req: ok(extra="Connection: keep-alive\r\n"))
    h = host(s.url)
    h.request("GET", "/", {}, None)
    idle = h.idle[0]
    s.close()  # the server closes every connection it holds (as a server does after its keep-alive timeout)
    assert select.select([idle], [], [], 5)[0]  # its FIN has arrived
    s2 = serve(lambda n, req: ok(b"fresh"))
    h2 = host(s2.url)
    h2.idle.append(idle)  # a connection whose peer is gone waits in the pool
    assert h2.request("GET", "/", {}, None)[0] == b"fresh"
    assert idle.fileno() == -1  # found dropped without sending on it, and closed


def test_a_server_that_closes_without_answering_is_a_connection_error(serve):
    s = serve(lambda n, req: None)
    with pytest.raises(wire.WireError, match="Connection aborted"):
        host(s.url).request("GET", "/", {}, None)


def test_silence_past_the_deadline_is_a_timeout_and_the_connection_is_dropped(serve):
    release = threading.Event()
    s = serve(lambda n, req: None if release.wait(10) else None)
    h = host(s.url, timeout=0.3)
    with pytest.raises(TimeoutError, match="no answer before the timeout"):
        h.request("GET", "/", {}, None)
    release.set()
    assert not h.idle


@pytest.mark.parametrize("answer, words", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n", "malformed header"),
])
def test_answers_that_break_http_are_refused_with_one_sentence(serve, answer, words):
    s = serve(lambda n, req: (answer, CLOSE) if n == 1 else None)
    with pytest.raises(wire.WireError, match=words):
        host(s.url).request("GET", "/", {}, None)


def test_a_header_cannot_carry_a_line_break(serve):
    s = serve(lambda n, req: ok())
    with pytest.raises(ValueError, match="line break"):
        host(s.url).request("GET", "/", {"Authorization": "Bearer x\r\nX-Evil: 1"}, None)
    assert s.requests == []  # nothing was sent


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


def _tls_server(serve, certificate) -> Scripted:
    cert, key = certificate
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return serve(lambda n, req: ok(b"over tls"), ctx)


def test_tls_verifies_the_certificate_and_keeps_the_connection(serve, certificate):
    s = _tls_server(serve, certificate)
    h = wire.Host(s.url, 5.0, 8, wire.tls_context(True, str(certificate[0])))
    assert h.request("GET", "/", {}, None)[:2] == (b"over tls", 200)
    assert h.request("GET", "/", {}, None)[:2] == (b"over tls", 200)
    assert s.connections == 1
    # a certificate nobody vouches for: refused
    with pytest.raises(ssl.SSLError):
        wire.Host(s.url, 5.0, 8, wire.tls_context(True, None)).request("GET", "/", {}, None)
    # and not verified only when told so
    assert wire.Host(s.url, 5.0, 8, wire.tls_context(False, None)).request("GET", "/", {}, None)[0] == b"over tls"


def test_through_the_sdk_failures_are_the_sdks_connection_errors(serve, certificate):
    """PooledClient under StripeClient: a refused port, a dropped connection and an untrusted certificate are
    APIConnectionError (retryable, except the certificate), with the words network_cause reads."""
    from core.engine.probe import network_cause

    def client(url: str) -> stripe.StripeClient:
        return stripe.StripeClient("sk_unused", base_addresses={"api": url}, max_network_retries=0,
                                   http_client=PooledClient(timeout=2.0))

    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(stripe.APIConnectionError) as refused:
        client(f"http://127.0.0.1:{port}").raw_request("get", "/v1/balance", api_key="rk_test_x")
    assert refused.value.should_retry and network_cause(refused.value) == "connection refused"
    dropping = serve(lambda n, req: None)
    with pytest.raises(stripe.APIConnectionError) as dropped:
        client(dropping.url).raw_request("get", "/v1/balance", api_key="rk_test_x")
    assert network_cause(dropped.value) == "the connection was closed without an answer"
    tls = _tls_server(serve, certificate)
    with pytest.raises(stripe.APIConnectionError) as untrusted:
        client(tls.url).raw_request("get", "/v1/balance", api_key="rk_test_x")
    assert not untrusted.value.should_retry and "SSL certificate" in str(untrusted.value)
    assert network_cause(untrusted.value).startswith("the TLS handshake failed")
