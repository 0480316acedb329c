"""Product routes: one product, its photos, and what reviews say about it or its category."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from tuwen.serve.public import public_product
from tuwen.serve.schemas import BAD, NOT_FOUND
from tuwen.serve.state import Server


def router(server: Server) -> APIRouter:
    """The product routes of one server."""
    router = APIRouter()

    @router.get("/api/products/{product_id}", responses={**NOT_FOUND})
    def product(product_id: str) -> dict[str, Any]:
        """One product: its fields, and its photos as URLs (``image_urls``)."""
        return public_product(server.current().product(product_id))

    @router.get("/api/products/{product_id}/insights", responses={**NOT_FOUND})
    def product_insights(product_id: str) -> dict[str, Any]:
        """What shoppers praise and complain about for one product and its category: aspects (fit, fabric, colour,
        quality, price, delivery …; 质量, 尺码, 物流 …) with counts, shares and example sentences, as last computed
        by ``tuwen insights WS --refresh`` (``state.stale`` says when the reviews changed since)."""
        return server.current().insights(product=product_id)

    @router.get("/api/insights", responses={**BAD, **NOT_FOUND})
    def category_insights(category: Annotated[str, Query(min_length=1, max_length=1000, description="A category "
                                                         "path, or its last part when that is unique.")]
                          ) -> dict[str, Any]:
        """What shoppers praise and complain about in one category (every level of a category path has its own)."""
        return server.current().insights(category=category)

    @router.get("/api/products/{product_id}/image", response_class=FileResponse, responses={**NOT_FOUND})
    def product_image(product_id: str, index: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
        """The product's own photo: only paths recorded in the catalog are ever served."""
        paths = list(server.current().product(product_id)["image_paths"] or [])
        if index >= len(paths) or not Path(paths[index]).is_file():
            raise KeyError(f"product {product_id!r} has no photo {index}")
        return FileResponse(paths[index])

    return router
