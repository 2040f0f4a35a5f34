"""Injected trouble (latency, errors, hangs, dropped connections, error bodies that echo the key) and Stripe's
per-account rate limit.

`echo`: every error answer (4xx and 5xx, the injected ones included) on matching paths quotes the request's key
in its message, whole, glued after `%3D` and after another word, cut short at both ends and a piece from its
middle, as some real 400/404 answers echo the request. Key Health must never print or store any of it
(core.engine.redact); tests/security/test_secret_hygiene.py runs every command and page with it on.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

KINDS = ("latency", "fail", "hang", "drop", "echo")
FAIL_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class Fault:
    kind: str  # latency | fail | hang | drop | echo
    path_prefix: str | None = None  # None: every API path
    seconds: float = 0.0  # latency / hang
    status: int = 500  # fail
    times: int | None = None  # None: persistent; n: only the first n matching requests
    body: str = "json"  # fail: json | html

    def matches(self, path: str) -> bool:
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def to_dict(self) -> dict:
        return asdict(self)


class Faults:
    """Thread-safe list of faults. Latency and hang add up; the first matching fail/drop wins."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def latency(self, seconds: float, path_prefix: str | None = None) -> Fault:
        return self._add(Fault("latency", path_prefix, seconds=float(seconds)))

    def fail(
        self, path_prefix: str | None = None, status: int = 500, times: int | None = None, body: str = "json"
    ) -> Fault:
        if status not in FAIL_STATUSES:
            raise ValueError(f"fail status {status} is not one of {', '.join(map(str, FAIL_STATUSES))}.")
        if body not in ("json", "html"):
            raise ValueError(f"fail body {body!r} must be 'json' or 'html'.")
        return self._add(Fault("fail", path_prefix, status=int(status), times=times, body=body))

    def hang(self, path_prefix: str | None, seconds: float, times: int | None = None) -> Fault:
        return self._add(Fault("hang", path_prefix, seconds=float(seconds), times=times))

    def drop(self, path_prefix: str | None = None, times: int | None = None) -> Fault:
        return self._add(Fault("drop", path_prefix, times=times))

    def echo(self, path_prefix: str | None = None) -> Fault:
        """Every error body on matching paths quotes the request's key (see the module docstring); persistent."""
        return self._add(Fault("echo", path_prefix))

    def echoes(self, path: str) -> bool:
        """True when an echo fault matches `path` (it is never used up)."""
        with self._lock:
            return any(f.kind == "echo" and f.matches(path) for f in self._faults)

    def add(self, spec: dict) -> Fault:
        """From JSON (the HTTP control API): {"kind": "fail", "path_prefix": "/v1/charges", "status": 503, ...}."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r} must be one of {', '.join(KINDS)}.")
        allowed = {"path_prefix", "seconds", "status", "times", "body"}
        extra = set(spec) - allowed
        if extra:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(extra))}.")
        if kind == "latency":
            return self.latency(spec.get("seconds", 0.0), spec.get("path_prefix"))
        if kind == "fail":
            return self.fail(
                spec.get("path_prefix"), spec.get("status", 500), spec.get("times"), spec.get("body", "json")
            )
        if kind == "hang":
            return self.hang(spec.get("path_prefix"), spec.get("seconds", 30.0), spec.get("times"))
        if kind == "echo":
            return self.echo(spec.get("path_prefix"))
        return self.drop(spec.get("path_prefix"), spec.get("times"))

    def _add(self, f: Fault) -> Fault:
        if f.times is not None and int(f.times) < 1:
            raise ValueError("times must be at least 1 (or None for a persistent fault).")
        with self._lock:
            self._faults.append(f)
        return f

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take(self, path: str) -> tuple[float, Fault | None]:
        """For one request: seconds to wait, and the fail/drop fault to apply (if any). Uses up `times`."""
        delay, action = 0.0, None
        with self._lock:
            for f in list(self._faults):
                if f.kind == "echo" or not f.matches(path):
                    continue
                if f.kind == "latency":
                    delay += f.seconds
                elif f.kind == "hang" or action is None:
                    if f.kind == "hang":
                        delay += f.seconds
                    else:
                        action = f
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self._faults.remove(f)
        return delay, action


class RateLimiter:
    """Sliding one-second window per (account, mode), like Stripe's per-account limit."""

    def __init__(self, limits: dict[str, int] | None):
        self.limits = dict(limits) if limits else None
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque] = {}

    def allow(self, account: str, mode: str) -> bool:
        if not self.limits or mode not in self.limits:
            return True
        now = time.monotonic()
        with self._lock:
            q = self._hits.setdefault((account, mode), deque())
            while q and now - q[0] >= 1.0:
                q.popleft()
            if len(q) >= self.limits[mode]:
                return False
            q.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
