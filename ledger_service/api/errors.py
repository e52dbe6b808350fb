"""Map every error to a typed problem document: a stable ``code`` and what was wrong.

One place decides HTTP statuses: :class:`LedgerError` carries its own; a body that
is not JSON is 400 ``malformed_json``; a body that is JSON but not the schema is 422
``invalid_input`` with the failing fields; an oversized body is 413
``body_too_large`` (from :class:`BodyLimit`). Nothing is stored in any of these cases.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import LedgerError


def _problem(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def _describe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"), "msg": e.get("msg")}
        for e in errors[:20]
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for our error family and for request validation."""

    @app.exception_handler(LedgerError)
    async def _ledger_error(_: Request, exc: LedgerError) -> JSONResponse:
        d = exc.diagnostics()
        return _problem(exc.http_status, d["code"], d["message"], d.get("details"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            first = next(e for e in errors if e.get("type") == "json_invalid")
            ctx = first.get("ctx") or {}
            return _problem(400, "malformed_json",
                            f"request body is not valid JSON: {ctx.get('error', first.get('msg'))}")
        fields = _describe(errors)
        summary = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields[:3])
        return _problem(422, "invalid_input", f"request does not match the schema: {summary}",
                        {"errors": fields})


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` before they are parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0
        too_big = False

        async def counted() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        if scope["method"] in ("POST", "PUT", "PATCH"):
            # Buffer to find out the size first: chunked bodies carry no length.
            chunks: list[bytes] = []
            while True:
                message = await counted()
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _problem(413, "body_too_large",
                            f"request body exceeds the limit of {self.max_bytes} bytes")
        await response(scope, receive, send)
