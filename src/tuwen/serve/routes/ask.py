"""``POST /api/ask``: a shopper's question about a product, or a search in words or with a photo."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from tuwen.serve import photos
from tuwen.serve.public import plain, public_search_dict
from tuwen.serve.schemas import BAD, NOT_FOUND, TOO_LARGE, AskRequest
from tuwen.serve.state import Server


def router(server: Server) -> APIRouter:
    """The ask routes of one server."""
    router = APIRouter()

    @router.post("/api/ask", responses={**BAD, **NOT_FOUND, **TOO_LARGE})
    async def ask(request: Request, q: Annotated[str | None, Query(max_length=2_000)] = None,
                  product: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
                  k: Annotated[int, Query(ge=1, le=20)] = 5) -> dict[str, Any]:
        """Answer a shopper's question: JSON (:class:`AskRequest`: ``question``, ``product``, ``k``,
        ``image_base64``), or a photo as the raw ``image/*`` body with ``q``, ``product`` and ``k`` as query
        parameters, like ``POST /api/search``. About a product: yes / no / unsure with the evidence quoted; naming
        no product, or with a photo: the products it asks for, with the filters its words imply."""
        payload = await request.body()
        if request.headers.get("content-type", "").startswith("image/"):
            asked = AskRequest(question=q or "", product=product, k=k)
            photo: bytes | None = payload
            field = "photo"
        else:
            try:
                asked = AskRequest.model_validate_json(payload or b"{}")
            except ValidationError as error:
                raise RequestValidationError(error.errors()) from None
            photo = photos.decode_base64(asked.image_base64, "image_base64") if asked.image_base64 else None
            field = "image_base64"
        workspace = server.current().workspace

        def work() -> Any:
            if photo is None:
                return workspace.ask(asked.question, product=asked.product, k=asked.k, train=False)
            with tempfile.TemporaryDirectory(prefix="tuwen-ask-") as folder:
                path = photos.prepare_photo(photo, Path(folder) / "upload.png", field)
                return workspace.ask(asked.question, product=asked.product, image=path, k=asked.k, train=False)

        answer_ = await photos.off_loop(server, work)
        if answer_.get("route") == "search":
            answer_["search"] = public_search_dict(answer_["search"])
        return json.loads(json.dumps(answer_, default=plain))

    return router
