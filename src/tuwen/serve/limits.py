"""How much a request may send: body limits per route and the ASGI middleware that enforces them while streaming.

Its own module because the limits are shared: the middleware, the request models (base64 photo sizes) and the
photo checks all read the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # one uploaded photo (POST /api/search)
MAX_PREDICT_BYTES = 40 * 1024 * 1024  # one predict request: up to 100 items, base64 photos included
MAX_OTHER_BYTES = 64 * 1024  # any other request body
MAX_PHOTO_PIXELS = 16_000_000  # uploads; ingested catalog photos keep catalog.MAX_IMAGE_PIXELS
UPLOAD_SIDE = 512  # uploads are decoded at no less than this short side: above every image encoder's input
PHOTO_WORKERS = 2  # photo requests decoded and encoded at once; the rest wait their turn off the event loop


def body_limit(method: str, path: str) -> int:
    """The largest body a route accepts: a photo, a predict batch, or next to nothing."""
    if method == "POST" and path in ("/api/search", "/api/ask"):
        return MAX_PHOTO_BYTES
    if method == "POST" and path.startswith("/api/models/") and path.endswith("/predict"):
        return MAX_PREDICT_BYTES
    return MAX_OTHER_BYTES


class BodyLimit:
    """ASGI middleware: refuse an over-limit ``Content-Length`` up front and stop reading a body (413) the moment
    it passes the limit, so a 400 MB chunked upload costs at most the limit in memory.

    The over-limit signal is an ``HTTPException`` raised from ``receive``: FastAPI passes those through its body
    parsing unchanged (any other error there becomes a 400), and answers it as a 413.
    """

    def __init__(self, app: ASGIApp, limit: Callable[[str, str], int] = body_limit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            await JSONResponse({"detail": _too_large(limit)}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> str:
    return f"request body too large: this route accepts at most {limit:,} bytes"
