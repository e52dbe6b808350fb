"""Map every error to a problem document with one fixed vocabulary of codes.

One place decides HTTP statuses. :class:`ResolverError` carries its own (400
``invalid_identifier`` / ``invalid_request``, 404 ``not_found``, 410 ``deactivated``
with the proven history, 403/409/421 for refused writes). Anything a client can send
that the schema refuses (a body that is not JSON, a depth that is not a number) is 400
``invalid_request``; an unknown path is 404 ``not_found``. Bad input never yields a 5xx.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import DeactivatedError, ResolverError


def problem(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A problem document ``{"code", "message", ...}`` with ``status``."""
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for our error family, validation and unknown routes."""

    @app.exception_handler(ResolverError)
    async def _resolver_error(_: Request, exc: ResolverError) -> Response:
        body = exc.diagnostics()
        if isinstance(exc, DeactivatedError) and exc.answer is not None:
            body["answer"] = exc.answer.model_dump(mode="json")
        return JSONResponse(body, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"),
                   "msg": e.get("msg")} for e in list(exc.errors())[:20]]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:3])
        return problem(400, "invalid_request", f"request does not match the schema: {summary}",
                       details={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        code = codes.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (413), declared or not."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit()
                                              or int(value) > self.max_bytes):
                await problem(413, "body_too_large",
                              f"request body exceeds {self.max_bytes} bytes")(scope, receive, send)
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # Chunked bodies declare no length: read up to the limit before the app runs.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await problem(413, "body_too_large",
                              f"request body exceeds {self.max_bytes} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ResolveFastPath:
    """ASGI middleware answering ``GET /resolve/{id}`` without FastAPI's routing.

    Resolution is the hot path: a cached answer is a dict lookup, and FastAPI's request
    parsing, dependency injection, response classes and telemetry hooks would cost
    several times that. This sends the cached bytes (or the resolver's answer, or its
    problem document, exactly as the routed endpoint would) straight to the server.
    Everything else, including the documented route in the OpenAPI schema, goes to the
    app. A standalone node puts it *outside* the whole FastAPI app
    (:func:`~identifier_resolver.api.app.create_asgi`), so not even Starlette's error
    middleware runs for a cached answer.

    Answers carry a strong ``ETag`` (a BLAKE2b digest of the exact bytes) and
    ``Cache-Control: no-cache``: an answer changes when its record changes or a newer
    anchor covers it, so a cache must revalidate, and ``If-None-Match`` with the
    current tag gets a bodiless 304.
    """

    def __init__(self, app: ASGIApp, resolver: Any) -> None:
        self.app = app
        self.resolver = resolver
        self._tags: dict[str, tuple[bytes, bytes]] = {}
        """id -> (answer bytes, their tag): a cached answer is tagged once."""
        self._max_tags = max(1024, int(getattr(resolver.settings, "cache_size", 0)))

    def _etag(self, ident: str, body: bytes) -> bytes:
        known = self._tags.get(ident)
        if known is not None and known[0] is body:
            return known[1]
        tag = etag(body)
        if len(self._tags) >= self._max_tags:
            self._tags.clear()
        self._tags[ident] = (body, tag)
        return tag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            if path.startswith("/resolve/"):
                ident = path[9:]
                hit = self.resolver.cached_json(ident)
                if hit is None:
                    from starlette.concurrency import run_in_threadpool

                    try:
                        hit = await run_in_threadpool(self.resolver.resolve_json, ident)
                    except ResolverError as exc:
                        hit = (exc.http_status, _problem_bytes(exc))
                status, body = hit
                if status == 200 or status == 410:
                    tag = self._etag(ident, body)
                    for name, value in scope["headers"]:
                        if name == b"if-none-match" and (value == tag or value == b"*"):
                            await send({"type": "http.response.start", "status": 304,
                                        "headers": [(b"etag", tag),
                                                    (b"cache-control", b"no-cache")]})
                            await send({"type": "http.response.body", "body": b""})
                            return
                    headers = [(b"content-type", b"application/json"),
                               (b"content-length", str(len(body)).encode()),
                               (b"etag", tag), (b"cache-control", b"no-cache")]
                else:
                    headers = [(b"content-type", b"application/json"),
                               (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status,
                            "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def etag(body: bytes) -> bytes:
    """The strong entity tag of an answer: a quoted 96-bit BLAKE2b digest of its bytes."""
    return b'"' + blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _problem_bytes(exc: ResolverError) -> bytes:
    import json

    body = exc.diagnostics()
    if isinstance(exc, DeactivatedError) and exc.answer is not None:
        body["answer"] = exc.answer.model_dump(mode="json")
    return json.dumps(body, separators=(",", ":")).encode()
