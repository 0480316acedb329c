"""``POST /api/models/{name}/predict``: predictions for new products from a saved model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends

from tuwen.serve import photos
from tuwen.serve.access import KEY_HEADER, authorise
from tuwen.serve.public import plain
from tuwen.serve.schemas import BAD, NOT_FOUND, TOO_LARGE, UNAUTHORISED, PredictRequest
from tuwen.serve.state import Server, Snapshot


def router(server: Server) -> APIRouter:
    """The predict routes of one server."""
    router = APIRouter()

    @router.post("/api/models/{name}/predict", responses={**BAD, **NOT_FOUND, **TOO_LARGE, **UNAUTHORISED})
    async def predict(name: str, request: PredictRequest,
                      key: Annotated[str | None, Depends(KEY_HEADER)] = None) -> dict[str, Any]:
        """Predictions for new products (title, description, photo) from a saved model, in input order."""
        if request.user is not None:
            authorise(server.api_key, key)  # a purchase prediction reads the shopper's history
        snapshot = server.current()
        return await photos.off_loop(server, lambda: _predict(snapshot, name, request))

    return router


def _predict(snapshot: Snapshot, name: str, request: PredictRequest) -> dict[str, Any]:
    loaded = snapshot.model(name)
    with tempfile.TemporaryDirectory(prefix="tuwen-predict-") as folder:
        rows = []
        for number, item in enumerate(request.items):
            paths: list[str] = []
            if item.image_base64:
                field = f"items[{number}].image_base64"
                photo = photos.decode_base64(item.image_base64, field)
                paths = [str(photos.prepare_photo(photo, Path(folder) / f"{number}.png", field))]
            # an id of its own that no catalog row can have (ingest refuses NUL): a client's item is scored on
            # what it sent, never on the stored vectors of a catalog product that happens to share its id
            row = {"id": f"\0new-{number}", "title": item.title, "description": item.description, "image_paths": paths,
                   "has_image": bool(paths)}
            if loaded.task.items != "products":  # a review's or a message's words
                row.update({"text": item.title, "title": item.description, "product_id": ""})
            rows.append(row)
        frame = pd.DataFrame(rows)
        predictions = loaded.predict(frame, snapshot.workspace, user_id=request.user, neighbours=request.neighbours)
        for item, prediction in zip(request.items, predictions, strict=True):
            prediction["id"] = item.id
    return json.loads(json.dumps({"model": name, "task": loaded.task.name, "predictions": predictions},
                                 default=plain))
