"""HTTP/1.1 over one socket per request in flight, kept alive and shared by every thread: the probe's transport.

A probe sends a few hundred bytes and reads a few hundred back. urllib3 and `http.client` spend about half of a
probe's client CPU on that (building the request line by line, parsing the answer's headers through
`email.parser`, checking the connection with one more system call), which is more than everything else the
probe does. Here a request is one `sendall` of bytes built in one go, and an answer is read with a `recv` or two
and split by hand. Measured side by side in docs/benchmarks.md ("The fleet's client").

What it does, and no more (each held by tests/engine/test_wire.py):
- http:// and https:// (TLS with certificate and host name checks, or none when told not to verify);
- keep-alive: an idle connection is reused unless the server closed it meanwhile (checked without blocking), and
  one the answer says to close (`Connection: close`, HTTP/1.0, a body read to the end of the stream) is closed;
- answers with a `Content-Length`, `Transfer-Encoding: chunked`, or a body up to the end of the stream; 1xx
  answers are skipped; HEAD, 204 and 304 have no body;
- one deadline for the whole request (connect, send, answer): `timeout` seconds;
- no retries, no redirects, no proxies, no compression (it asks for none): every failure is raised, as an OSError
  (TimeoutError, ConnectionError, ssl.SSLError, socket.gaierror) or a `WireError`, and the connection closed.
"""
from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD = 65536  # bytes of status line and headers an answer may have
MAX_BODY = 64 * 1024 * 1024


class WireError(ConnectionError):
    """The server broke HTTP: it closed the connection without an answer, or sent something that is not one."""


class Headers(dict[str, str]):
    """An answer's headers: names lower-cased, looked up in any case; a repeated header's values joined by ", "."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive connection the server closed (or wrote to unasked) meanwhile: readable at once."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Host:
    """Keep-alive connections to one origin (scheme://host:port), shared by every thread: each connection is used
    by one request at a time, taken from and given back to a deque (atomic under the GIL, no lock)."""

    def __init__(self, origin: str, timeout: float, maxsize: int, context: ssl.SSLContext | None):
        u = urlsplit(origin)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.tls = u.scheme == "https"
        self.hostname = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        default = 443 if self.tls else 80
        name = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
        self.host_header = name if self.port == default else f"{name}:{self.port}"
        self.timeout, self.maxsize = timeout, maxsize
        self.context = context if self.tls else None
        self.idle: deque[socket.socket] = deque()

    def _connect(self, deadline: float) -> socket.socket:
        sock = socket.create_connection((self.hostname, self.port), timeout=max(0.001, deadline - time.monotonic()))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.hostname)
        except BaseException:
            sock.close()
            raise
        return sock

    def _take(self, deadline: float) -> socket.socket:
        while True:
            try:
                sock = self.idle.pop()
            except IndexError:
                return self._connect(deadline)
            if not _dropped(sock):
                return sock
            sock.close()

    def _give(self, sock: socket.socket) -> None:
        if len(self.idle) < self.maxsize:
            self.idle.append(sock)
        else:
            sock.close()

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes | None
                ) -> tuple[bytes, int, Headers]:
        """Send one request and read its answer: (body, status, headers). Raises OSError or WireError."""
        deadline = time.monotonic() + self.timeout
        head = [f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\nAccept-Encoding: identity\r\n"]
        for k, v in headers.items():
            v = str(v)
            if "\n" in v or "\r" in v or "\n" in k or "\r" in k or ":" in k:
                raise ValueError(f"a header cannot hold a line break: {k!r}")
            head.append(f"{k}: {v}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + (body or b"")
        sock = self._take(deadline)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(data)
            out, status, rheaders, keep = _read_answer(sock, method, deadline)
        except BaseException:
            sock.close()
            raise
        if keep:
            self._give(sock)
        else:
            sock.close()
        return out, status, rheaders

    def close(self) -> None:
        while True:
            try:
                self.idle.pop().close()
            except IndexError:
                return


class _Reader:
    """Bytes from a socket, read as they are needed, none past the deadline."""

    __slots__ = ("sock", "buf", "deadline", "got_any")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.buf, self.deadline, self.got_any = sock, b"", deadline, False

    def more(self) -> bool:
        """Read what has come (waiting until the deadline); False at the end of the stream."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out: no answer before the timeout")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError as e:  # (TimeoutError) the same, with our words
            raise TimeoutError("timed out: no answer before the timeout") from e
        if not chunk:
            return False
        self.got_any = True
        self.buf += chunk
        return True

    def until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return line
            if len(self.buf) > limit:
                raise WireError("the answer's headers are too long")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self.more():
                if not self.got_any:
                    raise WireError("Connection aborted: the remote end closed the connection without an answer")
                raise WireError("the connection was closed in the middle of the answer's headers")

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.more():
                raise WireError(f"the connection was closed in the middle of the answer ({len(self.buf)} of {n} "
                                "bytes)")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def to_end(self) -> bytes:
        while len(self.buf) <= MAX_BODY and self.more():
            pass
        out, self.buf = self.buf, b""
        return out


def _parse_head(head: bytes) -> tuple[bytes, int, Headers]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise WireError(f"not an HTTP answer: {lines[0][:40]!r}")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:].isspace():
            raise WireError("a malformed header in the answer")
        k, v = name.decode("latin-1").lower(), value.strip().decode("latin-1")
        prev = dict.get(headers, k)
        dict.__setitem__(headers, k, v if prev is None else f"{prev}, {v}")
    return parts[0], int(parts[1]), headers


def _read_answer(sock: socket.socket, method: str, deadline: float) -> tuple[bytes, int, Headers, bool]:
    """(body, status, headers, the connection can be used again)."""
    r = _Reader(sock, deadline)
    while True:
        version, status, headers = _parse_head(r.until(b"\r\n\r\n", MAX_HEAD))
        if not 100 <= status < 200 or status == 101:
            break
    conn = dict.get(headers, "connection", "").lower()
    keep = version == b"HTTP/1.1" and "close" not in conn or version == b"HTTP/1.0" and "keep-alive" in conn
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", status, headers, keep
    te = dict.get(headers, "transfer-encoding", "").lower()
    if te:
        if te.rsplit(",", 1)[-1].strip() != "chunked":
            return r.to_end(), status, headers, False
        return _chunked(r), status, headers, keep and not r.buf
    length = dict.get(headers, "content-length")
    if length is None:
        return r.to_end(), status, headers, False
    values = {x.strip() for x in length.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit() or int(next(iter(values))) > MAX_BODY:
        raise WireError(f"a bad Content-Length in the answer: {length[:40]!r}")
    body = r.exactly(int(next(iter(values))))
    return body, status, headers, keep and not r.buf


def _chunked(r: _Reader) -> bytes:
    out: list[bytes] = []
    total = 0
    while True:
        size_line = r.until(b"\r\n", 1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise WireError(f"a bad chunk size in the answer: {size_line[:20]!r}") from None
        if size == 0:
            while r.until(b"\r\n", MAX_HEAD):  # trailers, up to the empty line
                pass
            return b"".join(out)
        total += size
        if total > MAX_BODY:
            raise WireError("the answer is too long")
        out.append(r.exactly(size))
        if r.exactly(2) != b"\r\n":
            raise WireError("a chunk of the answer does not end where its size says")


def tls_context(verify: bool, cafile: str | None) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=cafile)
