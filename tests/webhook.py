"""A local webhook receiver for the alert tests: one class for every test file that needs a Slack-like endpoint."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """Takes every POST on 127.0.0.1 and keeps its body (parsed JSON, or the raw bytes with `raw=True`).

    It answers `status` after `delay_s` (a slow Slack: the body is kept once the answer is due), or never (`hang`:
    the body is kept at once and the request waits until `close`)."""

    def __init__(self, *, status: int = 200, delay_s: float = 0.0, hang: bool = False, raw: bool = False):
        self.bodies: list[Any] = []
        self.release = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = data if raw else json.loads(data)
                if hang:
                    outer.bodies.append(body)
                    outer.release.wait(60)
                    return
                if delay_s:
                    outer.release.wait(delay_s)
                outer.bodies.append(body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
