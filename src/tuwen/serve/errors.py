"""How exceptions become answers: a 4xx with ``{"detail": "<reason>"}``, never a stack trace or a server path.

Routes raise plain ``KeyError`` / ``ValueError``; mapping them to status codes in one place keeps the routes short.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tuwen.serve.state import Server
from tuwen.store.workspace import WorkspaceError


def add_error_handlers(app: FastAPI, server: Server) -> None:
    """Answer the errors routes raise with their status and a reason free of server paths."""

    def answer(status: int, error: BaseException) -> JSONResponse:
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error) or "not found"
        return JSONResponse({"detail": server.public(str(text))}, status_code=status)

    def handler_for(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(_: Request, error: Exception) -> JSONResponse:
            return answer(status, error)
        return handle

    # a bad filter, query or photo: 400; unknown product, shopper or model: 404; the writer lock is held: 409
    for kind, status in ((KeyError, 404), (FileNotFoundError, 404), (ValueError, 400), (WorkspaceError, 409)):
        app.add_exception_handler(kind, handler_for(status))
