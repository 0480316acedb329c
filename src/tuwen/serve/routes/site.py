"""The web page and ``/api/info``: what a browser loads first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from tuwen.serve.state import Server

WEB_PAGE = Path(__file__).parent.parent / "web" / "index.html"


def router(server: Server) -> APIRouter:
    """The page and info routes of one server."""
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))

    @router.get("/api/info")
    def info() -> dict[str, Any]:
        """What the workspace holds: tables and their sizes, encoders, models (by name; no server paths)."""
        snapshot = server.current()
        facts = dict(snapshot.facts)
        facts["workspace"] = server.name
        facts["models"] = snapshot.model_names()
        return json.loads(json.dumps(facts, default=str))

    return router
