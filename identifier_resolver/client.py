"""The resolver client: follows referrals from the root and verifies every answer.

Resolution is iterative, as in the Handle System and DNS: the client asks the root
(the URL in its pinned :class:`~identifier_resolver.models.TrustRoot`); a node that
delegated the identifier's prefix answers a *referral*, a signed delegation record
naming the next node. The client verifies the referral (signature chain up to the
trust root, inclusion proof, anchored tree head) before it uses the URL inside it, and
stops after ``max_hops`` referrals, on a URL it already asked (a loop), or on a
referral that does not narrow the prefix. It only ever contacts the trust root's URL
and URLs from delegation records it verified.

Custody walks start on the authoritative node; nodes the walk marks ``external``
(another node's prefix) are walked there and spliced in
(:func:`identifier_resolver.custody.merge`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from carbon_protocol.chain_view import ChainView
from carbon_protocol.errors import IdentifierError
from carbon_protocol.identifiers import parse_identifier

from .custody import merge
from .errors import (
    DeactivatedError,
    InvalidIdentifierError,
    InvalidRequestError,
    NodeUnavailableError,
    NotFoundError,
    ReferralError,
    ResolverError,
)
from .models import (
    Answer,
    CustodyGraph,
    Direction,
    NodeInfo,
    RecordReceipt,
    RecordsFound,
    SignedRecord,
    TrustRoot,
)
from .verify import VerifiedAnswer, verify_answer, verify_custody

__all__ = ["ResolverClient", "DEFAULT_MAX_HOPS", "remote_sink"]

DEFAULT_MAX_HOPS = 8

_ERRORS: dict[str, type[ResolverError]] = {
    "invalid_identifier": InvalidIdentifierError,
    "invalid_request": InvalidRequestError,
    "not_found": NotFoundError,
}


class ResolverClient:
    """Resolve and walk identifiers across nodes, verifying against ``trust``."""

    def __init__(
        self,
        trust: TrustRoot,
        *,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        max_hops: int = DEFAULT_MAX_HOPS,
        require_anchor: bool = False,
        chain: ChainView | None = None,
    ) -> None:
        """``http``: an ``httpx.Client`` to send requests with (tests pass one whose
        transport routes to in-process apps); ``chain``: check anchors on chain too."""
        if trust.url is None:
            raise InvalidRequestError("the trust root names no URL to start resolving at")
        self.trust = trust
        self.max_hops = max_hops
        self.require_anchor = require_anchor
        self.chain = chain
        self._http = http or httpx.Client(timeout=timeout)
        self._own_http = http is None

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> ResolverClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------
    def _request(self, method: str, base: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, base.rstrip("/") + path, **kwargs)
        except httpx.HTTPError as exc:
            raise NodeUnavailableError(f"{method} {base}{path} failed: {exc}", url=base) from exc

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError as exc:
            raise NodeUnavailableError(f"{resp.url} answered {resp.status_code} with a body that "
                                       "is not JSON") from exc

    def _raise(self, resp: httpx.Response, base: str | None = None) -> None:
        body = self._json(resp)
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message", resp.text[:200]) if isinstance(body, dict) else resp.text
        error = _ERRORS.get(str(code))
        if error is not None:
            raise error(str(message), node=base or str(resp.url))
        if resp.status_code == 410:
            raise DeactivatedError(str(message))
        raise NodeUnavailableError(f"{resp.url} answered {resp.status_code}: {message}",
                                   status=resp.status_code, code=code)

    # -- resolution -------------------------------------------------------------------
    def _follow(self, ident: str, path: str, params: dict[str, Any] | None = None
                ) -> tuple[Any, str, list[SignedRecord], list[str], int]:
        """Ask the root, then each verified referral's node, until one answers for
        ``ident`` on ``path``. Returns (JSON body, node URL, learnt chain, hops, status)."""
        try:
            parse_identifier(ident)
        except IdentifierError as exc:
            raise InvalidIdentifierError(str(exc)) from None
        url = str(self.trust.url)
        learned: list[SignedRecord] = []
        narrower: str | None = None
        hops: list[str] = []
        while True:
            if url in hops:
                raise ReferralError(f"referral loop resolving {ident}: {' -> '.join(hops)} -> "
                                    f"{url}", hops=hops)
            if len(hops) > self.max_hops:
                raise ReferralError(f"resolving {ident} needed more than {self.max_hops} "
                                    "referrals", hops=hops)
            hops.append(url)
            resp = self._request("GET", url, path + quote(ident, safe="/:"), params=params)
            if resp.status_code not in (200, 410):
                self._raise(resp, base=url)
            body = self._json(resp)
            doc = body.get("answer") if resp.status_code == 410 else body
            if not isinstance(doc, dict) or doc.get("format") != "carbon-ledger/resolution/v1":
                return body, url, learned, hops, resp.status_code
            answer = Answer.model_validate(doc)
            if answer.kind == "record":
                return body, url, learned, hops, resp.status_code
            verified = verify_answer(answer, self.trust, query=ident,
                                     delegations=learned or None, narrower_than=narrower,
                                     require_anchor=self.require_anchor, chain=self.chain)
            record = answer.record.record
            learned = [*verified.chain, answer.record]
            narrower = str(record.data["prefix"])
            url = str(record.data["url"])

    def resolve(self, ident: str) -> VerifiedAnswer:
        """Resolve and verify ``ident``; raises the resolver error family.

        :class:`DeactivatedError` carries the verified answer (record and history) in
        ``answer``; :class:`VerificationError` names the step that failed.
        """
        body, _, learned, hops, status = self._follow(ident, "/resolve/")
        doc = body["answer"] if status == 410 else body
        answer = Answer.model_validate(doc)
        verified = verify_answer(answer, self.trust, query=ident, delegations=learned or None,
                                 require_anchor=self.require_anchor, chain=self.chain)
        verified.hops = hops
        if status == 410 or answer.record.record.status == "deactivated":
            raise DeactivatedError(f"{ident} was deactivated: {answer.record.record.reason}",
                                   answer=verified)
        return verified

    def locate(self, ident: str) -> str:
        """The URL of the node authoritative for ``ident``'s prefix, found through
        verified referrals (the identifier itself need not be registered yet)."""
        try:
            _, url, _, _, _ = self._follow(ident, "/resolve/")
        except NotFoundError as exc:
            url = str(exc.details.get("node", ""))
            if not url:
                raise
        return url

    def custody(self, ident: str, direction: Direction = "down", depth: int = 3, *,
                proofs: bool = False, follow: bool = True, max_remote: int = 32
                ) -> CustodyGraph:
        """Walk the custody graph from ``ident`` on its node, continuing on the nodes of
        ``external`` identifiers (up to ``max_remote`` extra walks). With ``proofs``,
        every node's record and inclusion proof is verified."""
        params = {"direction": direction, "depth": depth, "proofs": str(proofs).lower()}
        body, _, _, _, status = self._follow(ident, "/custody/", params)
        if status == 410:
            self.resolve(ident)  # raises DeactivatedError with the verified history
        graph = CustodyGraph.model_validate(body)
        if proofs:
            verify_custody(graph, self.trust, require_anchor=self.require_anchor,
                           chain=self.chain)
        if not follow:
            return graph
        done: set[str] = set()
        while True:
            pending = [n for n in graph.nodes if n.state == "external" and n.depth < depth
                       and n.id not in done]
            if not pending or len(done) >= max_remote:
                break
            for node in pending[:max_remote - len(done)]:
                done.add(node.id)
                try:
                    sub = self.custody(node.id, direction, depth - node.depth, proofs=proofs,
                                       follow=False)
                except (NotFoundError, DeactivatedError, NodeUnavailableError, ReferralError):
                    continue
                graph = merge(graph, node.id, sub)
        return graph

    # -- writes and node administration -------------------------------------------------
    def submit(self, records: Sequence[SignedRecord], *, url: str | None = None
               ) -> list[RecordReceipt]:
        """Store signed versions on ``url`` (default: the node authoritative for the
        first record, found from the root)."""
        if not records:
            return []
        target = url or self.locate(records[0].record.id)
        body = {"records": [json.loads(r.model_dump_json()) for r in records]}
        resp = self._request("POST", target, "/records", json=body)
        if resp.status_code != 201:
            self._raise(resp)
        return [RecordReceipt.model_validate(r) for r in self._json(resp)]

    def current_records(self, ids: Sequence[str], *, url: str) -> dict[str, SignedRecord]:
        """The current signed versions of ``ids`` held by the node at ``url``."""
        resp = self._request("POST", url, "/records/query", json={"ids": list(ids)})
        if resp.status_code != 200:
            self._raise(resp)
        return RecordsFound.model_validate(self._json(resp)).records

    def install_authority(self, url: str, chain: Sequence[SignedRecord]) -> str:
        """Hand a node its delegation chain (root first); returns the prefix installed."""
        body = {"delegations": [json.loads(r.model_dump_json()) for r in chain]}
        resp = self._request("POST", url, "/authority", json=body)
        if resp.status_code != 201:
            self._raise(resp)
        return str(self._json(resp)["prefix"])

    def node_info(self, url: str) -> NodeInfo:
        """What the node at ``url`` says about itself (unverified)."""
        resp = self._request("GET", url, "/node")
        if resp.status_code != 200:
            self._raise(resp)
        return NodeInfo.model_validate(self._json(resp))


class _Sink:
    """A :class:`~identifier_resolver.bridge.RecordSink` over HTTP to one node."""

    def __init__(self, client: ResolverClient, url: str) -> None:
        self.client = client
        self.url = url

    def current_records(self, ids: Sequence[str]) -> dict[str, SignedRecord]:
        out: dict[str, SignedRecord] = {}
        for start in range(0, len(ids), 5_000):
            out.update(self.client.current_records(ids[start:start + 5_000], url=self.url))
        return out

    def submit(self, batch: Sequence[SignedRecord]) -> list[RecordReceipt]:
        return self.client.submit(batch, url=self.url)


def remote_sink(client: ResolverClient, url: str) -> _Sink:
    """A record sink that writes to the node at ``url`` (for :func:`bridge.sync_ledger`)."""
    return _Sink(client, url)
