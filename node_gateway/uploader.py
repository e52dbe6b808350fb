"""Delivering the outbox to the ledger: batches, retries with capped backoff, verdicts.

The ledger's batch endpoint (``POST /v1/readings/batch``) answers one verdict per
reading: ``accepted`` or ``duplicate`` with a receipt, or ``rejected`` with a typed
error. The uploader maps them onto the outbox:

* ``accepted`` and ``duplicate`` → ``acked``. A duplicate is the ledger saying "I have
  exactly this reading already" (same leaf), with the same receipt: the normal outcome
  of resending a batch whose answer was lost to a crash or a timeout. Each receipt is
  checked against the reading (device, sequence number, leaf hash computed locally),
  so a ledger cannot acknowledge something else.
* ``rejected`` → ``rejected``, terminal for that reading, with the ledger's error
  kept as a dead letter.
* No answer (connection refused or reset, timeout) or a 5xx / 429: the whole batch is
  retried after an exponential backoff with jitter and a cap (:class:`RetryPolicy`).
  When the retry budget runs out, :class:`~node_gateway.errors.LedgerUnavailableError`
  is raised and the readings stay ``pending``: nothing is lost, the next flush resends.
* A whole-request 4xx that is about the body (400, 413, 422): the batch is split in
  halves until the reading at fault is alone, which then is rejected with that error;
  the others go through. Any other 4xx (401, 403, 404...) is a configuration problem,
  not a reading's: it raises :class:`~node_gateway.errors.UploadError` and rejects
  nothing.

Transports: :class:`HttpTransport` talks to a live URL (``HttpTransport.for_url``) or
to an in-process FastAPI app (``HttpTransport.for_app``, Starlette's ``TestClient``,
which is an ``httpx.Client``), so the demo runs gateway and ledger in one process
through the same code path as production.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ._internal.faults import crash_point
from .errors import LedgerProtocolError, LedgerUnavailableError, UploadError
from .outbox import Outbox, OutboxEntry, Settlement

__all__ = [
    "Response",
    "Transport",
    "TransportFailure",
    "HttpTransport",
    "RetryPolicy",
    "LedgerClient",
    "Progress",
    "FlushReport",
    "Uploader",
]

log = logging.getLogger(__name__)


# -- transport ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status, parsed JSON body (``None`` if not JSON), headers we use."""

    status: int
    body: Any
    retry_after: float | None = None


class TransportFailure(Exception):
    """The request got no HTTP answer (refused, reset, timed out). Always retryable."""


class Transport(Protocol):
    """How the gateway reaches the ledger: one synchronous request at a time."""

    def request(self, method: str, path: str, *, body: bytes | None = None) -> Response:
        """Send a request with an optional JSON body; raise :class:`TransportFailure`
        when no HTTP answer arrives."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _auth(api_key: str | None) -> dict[str, str]:
    return {} if api_key is None else {"authorization": f"Bearer {api_key}"}


class HttpTransport:
    """:class:`Transport` over an ``httpx.Client`` (a live URL, or an in-process app)."""

    def __init__(self, client: httpx.Client, *, name: str) -> None:
        self._client = client
        self.name = name

    @classmethod
    def for_url(cls, url: str, *, timeout: float = 30.0,
                api_key: str | None = None) -> HttpTransport:
        """Talk to a ledger service over HTTP(S) at ``url``, presenting ``api_key``."""
        client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout,
                              headers={"user-agent": "carbon-gateway/0.1", **_auth(api_key)})
        return cls(client, name=url)

    @classmethod
    def for_app(cls, app: Any, *, api_key: str | None = None) -> HttpTransport:
        """Talk to an in-process ASGI app (e.g. ``ledger_service.api.create_app(...)``),
        presenting ``api_key``.

        Server-side exceptions come back as 500 answers, as they would over a network.
        """
        import warnings

        with warnings.catch_warnings():
            # Starlette >= 1.x warns that its TestClient will move to httpx2; the
            # client still works, and this is the one place the gateway uses it.
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        return cls(TestClient(app, base_url="http://ledger.in-process",
                              raise_server_exceptions=False, headers=_auth(api_key)),
                   name="in-process ledger")

    def __repr__(self) -> str:
        return f"HttpTransport({self.name!r})"

    def request(self, method: str, path: str, *, body: bytes | None = None) -> Response:
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            r = self._client.request(method, path, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise TransportFailure(f"{method} {path} to {self.name}: "
                                   f"{type(exc).__name__}: {exc}") from exc
        try:
            parsed = r.json() if r.content else None
        except ValueError:
            parsed = None
        retry_after = None
        header = r.headers.get("retry-after")
        if header is not None and header.strip().isdigit():
            retry_after = float(header.strip())
        return Response(r.status_code, parsed, retry_after)

    def close(self) -> None:
        self._client.close()


# -- retry --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter" and a cap.

    Before retry ``n`` (1-based) the uploader waits a random time in ``[d/2, d]``
    with ``d = min(max_delay, base_delay * multiplier**(n-1))``: the jitter spreads the
    reconnecting gateways of a whole park after an outage, the lower half keeps each
    one backing off. A ``Retry-After`` from the ledger is honoured up to the cap.
    """

    max_attempts: int = 6
    """Requests per batch, the first included."""
    base_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))
        wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _problem_text(resp: Response) -> str:
    if isinstance(resp.body, dict) and "code" in resp.body:
        return f"{resp.status} {resp.body.get('code')}: {resp.body.get('message')}"
    return f"HTTP {resp.status}"


class LedgerClient:
    """JSON requests to the ledger with the retry policy applied to transient failures."""

    def __init__(self, transport: Transport, *, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.transport = transport
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.retries = 0
        """Retries made so far (for reports and tests)."""

    def call(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> Response:
        """Send until an answer that is not transient arrives; raise
        :class:`LedgerUnavailableError` when the retry budget is spent."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        last = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after = None
            try:
                resp = self.transport.request(method, path, body=data)
            except TransportFailure as exc:
                last = str(exc)
            else:
                if not _retryable(resp.status):
                    return resp
                last = f"{method} {path}: {_problem_text(resp)}"
                retry_after = resp.retry_after
            if attempt == self.retry.max_attempts:
                break
            wait = self.retry.delay(attempt, self._rng, retry_after)
            self.retries += 1
            log.warning("ledger not answering (%s); retry %d/%d in %.2fs", last, attempt,
                        self.retry.max_attempts - 1, wait)
            self._sleep(wait)
        raise LedgerUnavailableError(
            f"the ledger gave no usable answer after {self.retry.max_attempts} attempts: {last}",
            attempts=self.retry.max_attempts)

    def get_json(self, path: str) -> Any:
        """GET a JSON document; a non-2xx answer raises :class:`UploadError`."""
        resp = self.call("GET", path)
        if resp.status // 100 != 2:
            raise UploadError(f"GET {path}: {_problem_text(resp)}", status=resp.status)
        return resp.body


# -- flushing ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Progress:
    """Where a flush stands; passed to the progress callback after every batch."""

    settled: int
    total: int
    accepted: int
    duplicates: int
    rejected: int
    retries: int


@dataclass
class FlushReport:
    """The outcome of :meth:`Uploader.flush`."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    retries: int = 0

    @property
    def acked(self) -> int:
        """Readings the ledger now holds (new or already stored)."""
        return self.accepted + self.duplicates


_SPLITTABLE = (400, 413, 422)


class Uploader:
    """Sends pending readings in batches and stores the ledger's verdicts."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport | LedgerClient,
        *,
        batch_size: int = 500,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.outbox = outbox
        self.client = (transport if isinstance(transport, LedgerClient)
                       else LedgerClient(transport, retry=retry, sleep=sleep, rng=rng))
        self.batch_size = batch_size
        self.on_progress = on_progress

    def flush(self, *, max_readings: int | None = None) -> FlushReport:
        """Deliver every pending reading (or up to ``max_readings``); return the counts.

        Raises :class:`LedgerUnavailableError` when the ledger stays unreachable (what
        was settled before stays settled; the rest stays pending).
        """
        report = FlushReport()
        retries_before = self.client.retries
        total = self.outbox.counts()["pending"]
        if max_readings is not None:
            total = min(total, max_readings)
        last_id = 0
        settled = 0
        while settled < total:
            batch = self.outbox.pending(min(self.batch_size, total - settled), after_id=last_id)
            if not batch:
                break
            try:
                verdicts = self._deliver(batch)
            except LedgerUnavailableError:
                self.outbox.note_attempt([e.id for e in batch])
                raise
            crash_point("gateway.before_ack")
            self.outbox.settle(verdicts)
            last_id = batch[-1].id
            settled += len(batch)
            report.batches += 1
            for v in verdicts:
                if v.state == "rejected":
                    report.rejected += 1
                elif v.duplicate:
                    report.duplicates += 1
                else:
                    report.accepted += 1
            report.retries = self.client.retries - retries_before
            if self.on_progress is not None:
                self.on_progress(Progress(settled, total, report.accepted, report.duplicates,
                                          report.rejected, report.retries))
        return report

    def _deliver(self, batch: Sequence[OutboxEntry]) -> list[Settlement]:
        body = b'{"readings":[' + b",".join(e.signed.encode() for e in batch) + b"]}"
        resp = self.client.call("POST", "/v1/readings/batch", body)
        if resp.status == 200:
            return self._verdicts(batch, resp.body)
        if resp.status in _SPLITTABLE:
            if len(batch) > 1:
                if resp.status == 413 or _is_batch_limit(resp):
                    self.batch_size = max(1, len(batch) // 2)
                half = len(batch) // 2
                return self._deliver(batch[:half]) + self._deliver(batch[half:])
            problem = resp.body if isinstance(resp.body, dict) else {}
            code = str(problem.get("code") or f"http_{resp.status}")
            log.warning("ledger refused reading %s#%s outright: %s", batch[0].device,
                        batch[0].seq, _problem_text(resp))
            return [Settlement(batch[0].id, "rejected", error_code=code,
                               error={"code": code, "message": str(problem.get("message", "")),
                                      "status": resp.status})]
        raise UploadError(f"POST /v1/readings/batch: {_problem_text(resp)}; check the ledger "
                          "URL and the gateway's permissions (no reading was rejected)",
                          status=resp.status)

    def _verdicts(self, batch: Sequence[OutboxEntry], body: Any) -> list[Settlement]:
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(batch):
            raise LedgerProtocolError(
                f"ledger answered a batch of {len(batch)} readings with "
                f"{len(items) if isinstance(items, list) else 'no'} items")
        out = []
        for entry, item in zip(batch, sorted(items, key=lambda i: i.get("index", -1)),
                               strict=True):
            status = item.get("status")
            if status in ("accepted", "duplicate"):
                receipt = item.get("receipt") or {}
                mismatch = _receipt_mismatch(entry, receipt)
                if mismatch:
                    out.append(Settlement(entry.id, "rejected", receipt=receipt,
                                          error_code="receipt_mismatch",
                                          error={"code": "receipt_mismatch",
                                                 "message": mismatch}))
                else:
                    out.append(Settlement(entry.id, "acked", receipt=receipt,
                                          duplicate=status == "duplicate"))
            elif status == "rejected":
                err = item.get("error") or {}
                out.append(Settlement(entry.id, "rejected",
                                      error_code=str(err.get("code", "rejected")), error=err))
            else:
                raise LedgerProtocolError(f"ledger answered status {status!r} for reading "
                                          f"{entry.device}#{entry.seq}")
        return out


def _is_batch_limit(resp: Response) -> bool:
    return isinstance(resp.body, dict) and "exceeds the limit" in str(resp.body.get("message"))


def _receipt_mismatch(entry: OutboxEntry, receipt: dict[str, Any]) -> str | None:
    for name, want in (("device", entry.device), ("seq", entry.seq),
                       ("leaf_hash", entry.leaf_hash)):
        got = receipt.get(name)
        if got != want:
            return (f"receipt for {entry.device}#{entry.seq} names {name} {got!r}, "
                    f"expected {want!r}")
    return None
