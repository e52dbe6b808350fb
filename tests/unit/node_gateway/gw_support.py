"""Helpers shared by the gateway's tests (imported by conftest and test modules)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from carbon_protocol.models import Domain
from node_gateway.gateway import DeviceSpec, Organisation, default_fleet

PREFIX = "86.1000.1"
ORG = Organisation(f"{PREFIX}/ent.gwtest", "Gateway Test Co.", f"{PREFIX}/site.gwtest",
                   "Plant", "CN-BJ", f"{PREFIX}/gw.gwtest", "Edge 1")
DOMAIN = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id=f"{PREFIX}/log.main")
JAN6 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday


def fleet(tag: str) -> list[DeviceSpec]:
    """Three meters (electricity, gas, heat) with identifiers unique to ``tag``."""
    return [
        DeviceSpec(f"{s.device_id}-{tag}", s.quantity, s.unit, s.serial, s.site_id)
        for s in default_fleet(PREFIX, ORG.site_id)
    ]


# -- a real HTTP server in front of a real ledger -------------------------------------
@dataclass
class FlakyServer:
    """Real HTTP on 127.0.0.1, forwarding to ``upstream``; misbehaves on request.

    ``fail(n, how, path=...)`` makes the next ``n`` requests whose path starts with
    ``path`` fail: ``"503"`` answers 503 without forwarding; ``"drop"`` closes the
    connection without an answer and without forwarding; ``"drop_after"`` forwards
    (the ledger stores the batch) and then closes without an answer, as when a
    response is lost on the way back; ``"tamper"`` forwards and then changes every
    receipt's leaf hash (a lying ledger, which the real one cannot be made to be).
    """

    upstream: Any
    requests: list[str] = field(default_factory=list)
    _plan: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def fail(self, n: int, how: str, path: str = "/v1/readings/batch") -> None:
        with self._lock:
            self._plan.extend([(how, path)] * n)

    def _take(self, path: str) -> str:
        with self._lock:
            for i, (how, prefix) in enumerate(self._plan):
                if path.startswith(prefix):
                    del self._plan[i]
                    return how
        return "forward"

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                outer.requests.append(f"{self.command} {self.path}")
                how = outer._take(self.path)
                if how == "503":
                    self._answer(503, b'{"code":"unavailable","message":"try later"}')
                    return
                if how == "drop":
                    self.close_connection = True
                    return
                resp = outer.upstream.request(
                    self.command, self.path, content=body,
                    headers={"content-type": self.headers.get("content-type",
                                                              "application/json")})
                if how == "drop_after":
                    self.close_connection = True
                    return
                content = resp.content
                if how == "tamper":
                    doc = json.loads(content)
                    for item in doc.get("items", []):
                        if item.get("receipt"):
                            item["receipt"]["leaf_hash"] = "00" * 32
                    content = json.dumps(doc).encode()
                self._answer(resp.status_code, content)

            def _answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class LiveLedger:
    ledger: Any
    server: FlakyServer

    @property
    def url(self) -> str:
        return self.server.url


