"""Search routes: by text, by photo, and more like one product."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tuwen.serve import photos
from tuwen.serve.public import public_search
from tuwen.serve.schemas import BAD, NOT_FOUND, TOO_LARGE
from tuwen.serve.state import Server


def router(server: Server) -> APIRouter:
    """The search routes of one server."""
    router = APIRouter()

    @router.get("/api/search", responses={**BAD})
    def search(q: Annotated[str, Query(max_length=10_000)], mode: str = "hybrid",
               k: Annotated[int, Query(ge=1, le=100)] = 10,
               where: Annotated[str | None, Query(max_length=10_000, description="A filter: see the README's "
                                                  "filter grammar, e.g. price < 50 AND category LIKE 'Home%'")]
               = None, facets: str | None = None) -> dict[str, Any]:
        """Text search: lexical, semantic, cross-modal (text → photos) or hybrid."""
        result = server.current().workspace.search(q, mode=mode, k=k, where=where or None,
                                                   facets=[f for f in (facets or "").split(",") if f] or None)
        return public_search(result)

    @router.post("/api/search", responses={**BAD, **TOO_LARGE})
    async def search_by_photo(request: Request, q: str | None = None, mode: str = "hybrid",
                              k: Annotated[int, Query(ge=1, le=100)] = 10,
                              where: str | None = None) -> dict[str, Any]:
        """Query by photo (the raw image bytes as the body, at most 20 MiB and 16 megapixels), optionally with
        words."""
        payload = await request.body()
        workspace = server.current().workspace

        def work() -> Any:
            with tempfile.TemporaryDirectory(prefix="tuwen-upload-") as folder:
                path = photos.prepare_photo(payload, Path(folder) / "upload.png")
                return workspace.search(q, image=path, mode=mode, k=k, where=where or None)

        answer_ = public_search(await photos.off_loop(server, work))
        answer_["image"] = "upload"
        return answer_

    @router.get("/api/similar/{product_id}", responses={**BAD, **NOT_FOUND})
    def similar(product_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        """More like this product (its fused photo + text embedding)."""
        snapshot = server.current()
        snapshot.product(product_id)
        return public_search(snapshot.workspace.similar(product_id, k=k))

    return router
