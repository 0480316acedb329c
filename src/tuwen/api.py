"""The HTTP API and the web page: ``tuwen serve WS`` (FastAPI + uvicorn).

One app serves one workspace, read-only: it searches, finds similar products, recommends, profiles shoppers and
predicts with saved models; ingesting, embedding and training stay with the CLI and Python, which hold the
workspace's writer lock. Every route answers JSON; a user mistake (empty query, bad filter, unknown shopper,
unreadable photo) is a 4xx with ``{"detail": "<reason>"}``, never a stack trace.

Photos are accepted as the raw request body (``Content-Type: image/*``) or base64 in JSON, so the API needs no
multipart parser; they are checked like ingested photos (size, decompression bombs) before anything decodes them.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from tuwen.catalog import MAX_IMAGE_BYTES, check_image
from tuwen.workspace import Workspace

WEB_PAGE = Path(__file__).parent / "web" / "index.html"
HIDDEN_COLUMNS = {"hash", "attributes"}


class NewProduct(BaseModel):
    """A product (or, for a review model, a review) to predict for; the photo travels as base64."""

    id: str = "new-1"
    title: str = ""
    description: str = ""
    image_base64: str | None = Field(default=None, description="The photo's bytes, base64 encoded.")


class PredictRequest(BaseModel):
    items: list[NewProduct] = Field(min_length=1, max_length=100)
    user: str | None = Field(default=None, description="Purchase models: the shopper whose history to use.")
    neighbours: int = Field(default=5, ge=0, le=50)


class Server:
    """What the routes share: the workspace, loaded models and recommenders, cached after first use."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Workspace(workspace, create=False)
        self._models: dict[str, Any] = {}
        self._services: dict[str | None, Any] = {}
        self._lock = threading.Lock()  # loading a model twice at once would only waste memory

    @cached_property
    def products(self) -> pd.DataFrame:
        frame = self.workspace.read("products")
        return frame.set_index("id", drop=False)

    def product(self, product_id: str) -> pd.Series:
        if product_id not in self.products.index:
            raise KeyError(f"no product {product_id!r} in {self.workspace.path}")
        return self.products.loc[product_id]

    def model(self, name: str) -> Any:
        from tuwen.predict.registry import load_model

        with self._lock:
            if name not in self._models:
                if "/" in name or "\\" in name or name.startswith("."):
                    raise ValueError(f"{name!r} is not a model name")
                self._models[name] = load_model(self.workspace, name)
            return self._models[name]

    def service(self, name: str | None) -> Any:
        from tuwen.recommend.store import Service

        with self._lock:
            if name not in self._services:
                self._services[name] = Service(self.workspace, name)
            return self._services[name]


def _public(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """A product row as JSON: no vectors, no internal hash, NaN as null, attributes decoded."""
    data = dict(row)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in HIDDEN_COLUMNS or key.endswith("_vec"):
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, float) and value != value:
            value = None
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        out[key] = value
    if isinstance(data.get("attributes"), str) and data["attributes"]:
        try:
            out["attributes"] = json.loads(data["attributes"])
        except json.JSONDecodeError:
            out["attributes"] = data["attributes"]
    return out


def _write_photo(payload: bytes, path: Path, field: str) -> Path:
    """Uploaded bytes to ``path``, refused with the reason when they are not a sane image."""
    if not payload:
        raise ValueError(f"{field}: empty upload")
    if len(payload) > MAX_IMAGE_BYTES:
        raise ValueError(f"{field}: {len(payload):,} bytes is more than the {MAX_IMAGE_BYTES:,} allowed")
    path.write_bytes(payload)
    problem = check_image(path)
    if problem:
        raise ValueError(f"{field}: {problem}")
    return path


@contextmanager
def _photo_file(payload: bytes, field: str = "photo") -> Iterator[Path]:
    """The uploaded photo as a temporary file, gone after the request."""
    with tempfile.TemporaryDirectory(prefix="tuwen-upload-") as folder:
        yield _write_photo(payload, Path(folder) / "upload", field)


def _decode_photo(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{field}: not base64 ({error})") from error


def create_app(workspace: str | Path) -> FastAPI:
    """The app for one workspace (``uvicorn`` serves it; tests call it through ``TestClient``)."""
    server = Server(Path(workspace))
    app = FastAPI(title="tuwen", description="Image + text search, recommendations and predictions for one "
                  "product catalog.", version="0.1.0")
    app.state.server = server

    @app.exception_handler(KeyError)
    async def not_found(_: Request, error: KeyError) -> JSONResponse:
        return JSONResponse({"detail": error.args[0] if error.args else "not found"}, status_code=404)

    @app.exception_handler(FileNotFoundError)
    async def missing(_: Request, error: FileNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ValueError)
    async def bad_request(_: Request, error: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """What the workspace holds: tables and their sizes, encoders, models."""
        facts = server.workspace.info()
        models = server.workspace.artifacts / "models"
        facts["models"] = sorted(p.name for p in models.glob("*") if (p / "config.json").exists()) \
            if models.exists() else []
        return json.loads(json.dumps(facts, default=str))

    @app.get("/api/search")
    def search(q: str, mode: str = "hybrid", k: Annotated[int, Query(ge=1, le=100)] = 10,
               where: str | None = None, facets: str | None = None) -> dict[str, Any]:
        """Text search: lexical, semantic, cross-modal (text → photos) or hybrid."""
        result = server.workspace.search(q, mode=mode, k=k, where=where or None,
                                         facets=[f for f in (facets or "").split(",") if f] or None)
        return result.to_dict()

    @app.post("/api/search")
    async def search_by_photo(request: Request, q: str | None = None, mode: str = "hybrid",
                              k: Annotated[int, Query(ge=1, le=100)] = 10, where: str | None = None) -> dict[str, Any]:
        """Query by photo (the raw image bytes as the body), optionally with words."""
        payload = await request.body()
        with _photo_file(payload) as path:
            result = server.workspace.search(q, image=path, mode=mode, k=k, where=where or None)
        answer = result.to_dict()
        answer["image"] = "upload"
        return answer

    @app.get("/api/similar/{product_id}")
    def similar(product_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        """More like this product (its fused photo + text embedding)."""
        server.product(product_id)
        return server.workspace.similar(product_id, k=k).to_dict()

    @app.get("/api/products/{product_id}")
    def product(product_id: str) -> dict[str, Any]:
        return _public(server.product(product_id))

    @app.get("/api/products/{product_id}/image", response_class=FileResponse)
    def product_image(product_id: str, index: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
        """The product's own photo: only paths recorded in the catalog are ever served."""
        paths = list(server.product(product_id)["image_paths"] or [])
        if index >= len(paths) or not Path(paths[index]).is_file():
            raise KeyError(f"product {product_id!r} has no photo {index}")
        return FileResponse(paths[index])

    @app.get("/api/recommend/{user}")
    def recommend(user: str, k: Annotated[int, Query(ge=1, le=100)] = 12, model: str | None = None,
                  explain: bool = False) -> dict[str, Any]:
        """Products for a shopper; a shopper without history gets popular products and ``cold: true``."""
        served = server.service(model).recommend(user, k, explain)
        answer = served.to_dict()
        answer["products"] = [_public(server.product(i)) for i in served.items if i in server.products.index]
        return answer

    @app.get("/api/profile/{user}")
    def profile(user: str) -> dict[str, Any]:
        """A shopper's interests: product types, colours, departments, price band, recency, a summary."""
        result = server.workspace.profile(user)
        return json.loads(json.dumps(result.to_dict(), default=str))

    @app.post("/api/models/{name}/predict")
    def predict(name: str, request: PredictRequest) -> dict[str, Any]:
        """Predictions for new products (title, description, photo) from a saved model, in input order."""
        loaded = server.model(name)
        with tempfile.TemporaryDirectory(prefix="tuwen-predict-") as folder:
            rows = []
            for number, item in enumerate(request.items):
                paths: list[str] = []
                if item.image_base64:
                    field = f"items[{number}].image_base64"
                    paths = [str(_write_photo(_decode_photo(item.image_base64, field), Path(folder) / str(number),
                                              field))]
                row = {"id": item.id, "title": item.title, "description": item.description, "image_paths": paths,
                       "has_image": bool(paths)}
                if loaded.task.items == "reviews":
                    row.update({"text": item.title, "title": item.description, "product_id": ""})
                rows.append(row)
            frame = pd.DataFrame(rows)
            if loaded.task.name == "purchase":
                predictions = loaded.predict(frame, server.workspace, user_id=request.user)
            else:
                predictions = loaded.predict(frame, workspace=server.workspace, neighbours=request.neighbours)
        return json.loads(json.dumps({"model": name, "task": loaded.task.name, "predictions": predictions},
                                     default=_plain))

    return app


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in predictions, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def serve(workspace: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API and web page with uvicorn until interrupted."""
    import uvicorn

    app = create_app(workspace)
    warm(app.state.server.workspace)
    uvicorn.run(app, host=host, port=port, log_level="info")


def warm(workspace: Workspace) -> None:
    """Load the search engine, the query encoder and jieba's dictionary before the first shopper waits for them
    (the first Chinese query of a process otherwise pays ~1.3 s for the dictionary alone)."""
    try:
        workspace.search("连衣裙 dress", k=1)
    except ValueError:  # no index yet: search answers with that reason once asked
        pass
