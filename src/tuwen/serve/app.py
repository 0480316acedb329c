"""The HTTP API and the web page: ``tuwen serve WS`` (FastAPI + uvicorn).

One app serves one workspace. It searches, finds similar products, recommends, profiles shoppers and predicts
with saved models; ingesting, embedding and training stay with the CLI and Python. The one write it does is
``DELETE /api/shoppers/{user}`` (forget a shopper), which takes the workspace's writer lock like any other
writer. Every route answers JSON; a user mistake (empty query, bad filter, unknown shopper, unreadable photo) is
a 4xx with ``{"detail": "<reason>"}``, never a stack trace and never a server path.

Hardening, each for a reason a hostile client showed:

* **Bodies** are streamed with a running limit per route (:class:`BodyLimit`): a declared ``Content-Length``
  over it is refused before reading, a chunked body as soon as it passes it (413), so an oversized upload never
  sits in memory.
* **Photos** (raw ``image/*`` body, or base64 in JSON) are checked from their header (at most
  :data:`MAX_PHOTO_PIXELS`), decoded once, shrunk to :data:`UPLOAD_SIDE` (JPEG ``draft``, else ``reduce``) and
  encoded in a small thread pool (:data:`PHOTO_WORKERS`), never on the event loop.
* **Filters** go through :mod:`tuwen.search.filters` (a grammar of our own, not raw SQL).
* **Access**: ``X-API-Key`` guards the shopper routes whenever a key is set, and :func:`serve` refuses to bind
  beyond loopback without one; a trusted-hosts check stops DNS-rebinding pages.
* **Freshness**: every request looks at the workspace manifest (one ``stat``); when another process committed
  (``tuwen forget``, a re-ingest, a re-index) the server drops its caches and re-opens the workspace, so a
  forgotten shopper is gone from the next answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import ipaddress
import json
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuwen.encoders.images import ImageDecodeError, open_downscaled
from tuwen.predict.registry import load_model, saved_models
from tuwen.recommend.store import Service, model_folder, model_folders
from tuwen.search import engine_for
from tuwen.service import insights as review_insights
from tuwen.shop import Shop
from tuwen.store.workspace import MANIFEST, WorkspaceError

WEB_PAGE = Path(__file__).parent / "web" / "index.html"
HIDDEN_COLUMNS = {"hash", "attributes", "image_paths"}
API_KEY_ENV = "TUWEN_API_KEY"
API_KEY_HEADER = "X-API-Key"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # one uploaded photo (POST /api/search)
MAX_PREDICT_BYTES = 40 * 1024 * 1024  # one predict request: up to 100 items, base64 photos included
MAX_OTHER_BYTES = 64 * 1024  # any other request body
MAX_PHOTO_PIXELS = 16_000_000  # uploads; ingested catalog photos keep catalog.MAX_IMAGE_PIXELS
UPLOAD_SIDE = 512  # uploads are decoded at no less than this short side: above every image encoder's input
PHOTO_WORKERS = 2  # photo requests decoded and encoded at once; the rest wait their turn off the event loop
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
PRODUCTS_KEPT = 20_000  # product rows a snapshot keeps after reading them (the oldest go first)

Detail = {"content": {"application/json": {"example": {"detail": "the reason"}}}}
BAD = {400: {"description": "Bad request: the reason is in `detail`.", **Detail}}
NOT_FOUND = {404: {"description": "Not found: the reason is in `detail`.", **Detail}}
TOO_LARGE = {413: {"description": "Request body over the route's limit.", **Detail}}
UNAUTHORISED = {401: {"description": f"Missing or wrong `{API_KEY_HEADER}` header (when the server has a key).",
                      **Detail}}
# module-level: route signatures are resolved from this module's globals (``from __future__ import annotations``)
KEY_HEADER = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                          description="Needed for shopper routes when the server has an API key.")
BUSY = {409: {"description": "Another process is writing to the workspace; try again.", **Detail}}


# ------------------------------------------------------------------------------------------------ body limits
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


# ---------------------------------------------------------------------------------------------------- schemas
class NewProduct(BaseModel):
    """A product (or, for a review model, a review) to predict for; the photo travels as base64."""
    id: str = Field(default="new-1", max_length=200)
    title: str = Field(default="", max_length=10_000)
    description: str = Field(default="", max_length=100_000)
    image_base64: str | None = Field(default=None, max_length=4 * (MAX_PHOTO_BYTES // 3 + 1) + 100,
                                     description="The photo's bytes, base64 encoded.")


class PredictRequest(BaseModel):
    items: list[NewProduct] = Field(min_length=1, max_length=100)
    user: str | None = Field(default=None, max_length=200, description="Purchase models: the shopper whose "
                             f"history to use (needs `{API_KEY_HEADER}` when the server has a key).")
    neighbours: int = Field(default=5, ge=0, le=50)


class AskRequest(BaseModel):
    """A shopper's question: about one product, or (no product, or a photo) a search for the products it asks for."""
    question: str = Field(default="", max_length=2_000, description="The question, in any language.")
    product: str | None = Field(default=None, min_length=1, max_length=256, description="The product it is about.")
    k: int = Field(default=5, ge=1, le=20, description="Pieces of evidence (or products) to return.")
    image_base64: str | None = Field(default=None, max_length=4 * (MAX_PHOTO_BYTES // 3 + 1) + 100,
                                     description="A photo (\"this one but in blue?\"), base64 encoded.")


# ----------------------------------------------------------------------------------------------------- state
def manifest_stamp(path: Path) -> tuple[int, int, int]:
    """Cheap change signal of a workspace's manifest (inode, size, mtime): commits replace it by rename, so any
    commit changes it; :meth:`Server.current` confirms a change by content before reloading."""
    info = (path / MANIFEST).stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


def manifest_digest(path: Path) -> str:
    """The committed state's fingerprint: a hash of the manifest's content (never of file times)."""
    return hashlib.blake2b((path / MANIFEST).read_bytes(), digest_size=16).hexdigest()


class Snapshot:
    """Everything loaded from one committed version of the workspace: products, models and recommenders, each
    on first use. A commit by another process makes a new snapshot; requests still running keep theirs."""

    def __init__(self, workspace: Shop) -> None:
        self.workspace = workspace
        self._models: dict[str, Any] = {}
        self._services: dict[str | None, Any] = {}
        self._products: dict[str, pd.Series | None] = {}  # product rows read so far (None: no such product)
        self._products_lock = threading.Lock()
        self._lock = threading.Lock()  # loading a model twice at once would only waste memory

    @cached_property
    def facts(self) -> dict[str, Any]:
        """``Shop.info()`` of this version, counted once: the web page asks on every load, and counting reads the
        events table."""
        return self.workspace.info()

    def product(self, product_id: str) -> pd.Series:
        found = self.products([product_id])
        if product_id not in found:
            raise KeyError(f"no product {product_id!r}")
        return found[product_id]

    def products(self, ids: Sequence[str]) -> dict[str, pd.Series]:
        """The rows of these products (absent ids left out), read with a filter and kept for this version.

        Why not the whole table once: at a million products it is gigabytes of text in pandas, for a page that
        shows a dozen products at a time.
        """
        missing = [i for i in dict.fromkeys(ids) if i not in self._products]
        if missing:
            rows = self.workspace.read_keys("products", "id", missing)
            found = {str(row["id"]): row for _, row in rows.iterrows()}
            with self._products_lock:
                for product_id in missing:
                    self._products[product_id] = found.get(product_id)
                while len(self._products) > PRODUCTS_KEPT:
                    self._products.pop(next(iter(self._products)))
        rows = {i: self._products.get(i) for i in ids}
        return {i: row for i, row in rows.items() if row is not None}

    @cached_property
    def insight_rows(self) -> pd.DataFrame:
        """The stored review insights of this version, read once (``tuwen insights WS --refresh`` writes them)."""
        return review_insights.read(self.workspace)

    def insights(self, product: str | None = None, category: str | None = None) -> dict[str, Any]:
        if product is not None:
            self.product(product)
        answer = review_insights.insights(self.workspace, product, category, rows=self.insight_rows)
        return json.loads(json.dumps(answer, default=str))

    def model(self, name: str) -> Any:
        check_model_name(name)
        with self._lock:
            if name not in self._models:
                folder = self.workspace.artifacts / "models" / name
                if not (folder / "config.json").is_file():
                    raise KeyError(f"no model {name!r}; saved models: {', '.join(self.model_names()) or 'none'}")
                self._models[name] = load_model(self.workspace, name)
            return self._models[name]

    def model_names(self) -> list[str]:
        return saved_models(self.workspace)

    def service(self, name: str | None) -> Any:
        if name is not None:
            check_model_name(name)
            if not (model_folder(self.workspace, name) / "model.json").is_file():
                trained = ", ".join(p.name for p in model_folders(self.workspace)) or "none"
                raise KeyError(f"no recommender {name!r}; trained: {trained}")
        with self._lock:
            if name not in self._services:
                self._services[name] = Service(self.workspace, name)
            return self._services[name]


class Server:
    """What the routes share: the workspace's current :class:`Snapshot`, its name, the API key, the photo pool."""

    def __init__(self, workspace: Path, api_key: str | None = None) -> None:
        self.path = Path(workspace)
        self.name = self.path.resolve().name
        self.api_key = api_key or None
        self._reload_lock = threading.Lock()
        self._stamp = manifest_stamp(self.path)
        self._digest = manifest_digest(self.path)
        self._snapshot = Snapshot(Shop(self.path, create=False))
        self._photo_slots: Any = None
        self.reloads = 0

    def current(self) -> Snapshot:
        """The snapshot of the workspace as last committed: re-opened when the manifest's content changed."""
        try:
            stamp = manifest_stamp(self.path)
        except OSError:
            return self._snapshot  # mid-rename or gone: keep serving what we have
        if stamp == self._stamp:
            return self._snapshot
        with self._reload_lock:
            if stamp != self._stamp:
                digest = manifest_digest(self.path)
                if digest != self._digest:
                    self._snapshot = Snapshot(Shop(self.path, create=False))
                    self._digest = digest
                    self.reloads += 1
                self._stamp = stamp
        return self._snapshot

    def photo_slots(self) -> Any:
        """The limiter of the photo pool (made inside the event loop, on first use)."""
        import anyio

        if self._photo_slots is None:
            self._photo_slots = anyio.CapacityLimiter(PHOTO_WORKERS)
        return self._photo_slots

    def public(self, message: str) -> str:
        """An error text without server paths: the workspace's folder becomes its name, any other absolute path
        its last part."""
        for prefix in sorted({str(self.path.resolve()), str(self.path.absolute()), str(self.path)}, key=len,
                             reverse=True):
            if prefix not in (".", ""):
                message = message.replace(prefix, self.name)
        return re.sub(r"(?<![\w.:/])(?:/[^\s'\"/`,;:()]+){2,}", lambda m: m.group().rsplit("/", 1)[-1], message)


def check_model_name(name: str) -> str:
    """Model names only (letters, digits, ``_ . -``; no paths): a path would load a model outside the workspace."""
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name[:100]!r} is not a model name (letters, digits, '_', '.', '-'; no paths)")
    return name


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(host: str, api_key: str | None) -> None:
    """Refuse to serve shoppers' data beyond loopback without an API key."""
    if not is_loopback(host) and not api_key:
        raise ValueError(f"refusing to listen on {host} without an API key: anyone who can reach it could read "
                         f"every shopper's profile. Pass --api-key KEY (or set {API_KEY_ENV}), or bind to 127.0.0.1")


# ---------------------------------------------------------------------------------------------- JSON helpers
def _photo_urls(product_id: str, count: int) -> list[str]:
    return [f"/api/products/{quote(product_id, safe='')}/image?index={i}" for i in range(count)]


def _public(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """A product row as JSON: no vectors, no hash, no server paths (photos as URLs by id), NaN as null."""
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
    paths = data.get("image_paths")
    urls = _photo_urls(str(data.get("id", "")), len(paths) if paths is not None else 0)
    out.update({"photos": len(urls), "image_urls": urls, "image": urls[0] if urls else None})
    return out


def _public_search(result: Any) -> dict[str, Any]:
    """A search answer as JSON, each hit's photo path replaced by its URL."""
    answer = result.to_dict()
    for hit in answer["hits"]:
        hit["image"] = _photo_urls(hit["id"], 1)[0] if hit.get("image") else None
    return answer


def _public_search_dict(answer: dict[str, Any]) -> dict[str, Any]:
    """A search answer already as a dict (``ask``'s): photo paths replaced by their URLs, no upload path."""
    for hit in answer.get("hits", []):
        hit["image"] = _photo_urls(hit["id"], 1)[0] if hit.get("image") else None
    if answer.get("image"):
        answer["image"] = "upload"
    return answer


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in predictions, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# ----------------------------------------------------------------------------------------------------- photos
def prepare_photo(payload: bytes, path: Path, field: str = "photo") -> Path:
    """Uploaded bytes as a small PNG at ``path`` (short side :data:`UPLOAD_SIDE`), or a ValueError saying why not.

    Decoded once, shrunk while decoding where the format allows: what the encoders then read is a few hundred
    pixels, whatever came in."""
    if not payload:
        raise ValueError(f"{field}: empty upload")
    if len(payload) > MAX_PHOTO_BYTES:
        raise ValueError(f"{field}: {len(payload):,} bytes is more than the {MAX_PHOTO_BYTES:,} allowed")
    try:
        image = open_downscaled(io.BytesIO(payload), UPLOAD_SIDE, MAX_PHOTO_PIXELS)
    except ImageDecodeError as error:
        raise ValueError(f"{field}: {error.reason}") from None
    image.save(path, format="PNG", compress_level=1)
    return path


def _decode_base64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{field}: not base64 ({error})") from error


async def _off_loop(server: Server, work: Callable[[], Any]) -> Any:
    """Run photo decoding and encoding in the bounded pool: the event loop keeps answering other requests."""
    import anyio

    return await anyio.to_thread.run_sync(work, limiter=server.photo_slots())


# -------------------------------------------------------------------------------------------------------- app
def create_app(workspace: str | Path, *, api_key: str | None = None,
               allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The app for one workspace (``uvicorn`` serves it; tests call it through ``TestClient`` with
    ``base_url="http://localhost"``).

    ``api_key``: when set, the shopper routes need it in ``X-API-Key``. ``allowed_hosts``: ``Host`` names accepted
    besides loopback's (the trusted-hosts check that stops DNS rebinding).
    """
    server = Server(Path(workspace), api_key)
    app = FastAPI(title="tuwen", description="Image + text search, recommendations and predictions for one "
                  "product catalog.", version="0.1.0")
    app.state.server = server
    app.add_middleware(BodyLimit)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_HOSTS, *(allowed_hosts or ())])

    def authorise(key: str | None) -> None:
        if server.api_key and not (key and hmac.compare_digest(key.encode(), server.api_key.encode())):
            raise HTTPException(401, f"this route needs the server's API key in the {API_KEY_HEADER} header")

    def shopper_access(key: Annotated[str | None, Depends(KEY_HEADER)]) -> None:
        authorise(key)

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """What the workspace holds: tables and their sizes, encoders, models (by name; no server paths)."""
        snapshot = server.current()
        facts = dict(snapshot.facts)
        facts["workspace"] = server.name
        facts["models"] = snapshot.model_names()
        return json.loads(json.dumps(facts, default=str))

    @app.get("/api/search", responses={**BAD})
    def search(q: Annotated[str, Query(max_length=10_000)], mode: str = "hybrid",
               k: Annotated[int, Query(ge=1, le=100)] = 10,
               where: Annotated[str | None, Query(max_length=10_000, description="A filter: see the README's "
                                                  "filter grammar, e.g. price < 50 AND category LIKE 'Home%'")]
               = None, facets: str | None = None) -> dict[str, Any]:
        """Text search: lexical, semantic, cross-modal (text → photos) or hybrid."""
        result = server.current().workspace.search(q, mode=mode, k=k, where=where or None,
                                                   facets=[f for f in (facets or "").split(",") if f] or None)
        return _public_search(result)

    @app.post("/api/search", responses={**BAD, **TOO_LARGE})
    async def search_by_photo(request: Request, q: str | None = None, mode: str = "hybrid",
                              k: Annotated[int, Query(ge=1, le=100)] = 10,
                              where: str | None = None) -> dict[str, Any]:
        """Query by photo (the raw image bytes as the body, at most 20 MiB and 16 megapixels), optionally with
        words."""
        payload = await request.body()
        workspace = server.current().workspace

        def work() -> Any:
            with tempfile.TemporaryDirectory(prefix="tuwen-upload-") as folder:
                path = prepare_photo(payload, Path(folder) / "upload.png")
                return workspace.search(q, image=path, mode=mode, k=k, where=where or None)

        answer_ = _public_search(await _off_loop(server, work))
        answer_["image"] = "upload"
        return answer_

    @app.get("/api/similar/{product_id}", responses={**BAD, **NOT_FOUND})
    def similar(product_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        """More like this product (its fused photo + text embedding)."""
        snapshot = server.current()
        snapshot.product(product_id)
        return _public_search(snapshot.workspace.similar(product_id, k=k))

    @app.get("/api/products/{product_id}", responses={**NOT_FOUND})
    def product(product_id: str) -> dict[str, Any]:
        """One product: its fields, and its photos as URLs (``image_urls``)."""
        return _public(server.current().product(product_id))

    @app.get("/api/products/{product_id}/insights", responses={**NOT_FOUND})
    def product_insights(product_id: str) -> dict[str, Any]:
        """What shoppers praise and complain about for one product and its category: aspects (fit, fabric, colour,
        quality, price, delivery …; 质量, 尺码, 物流 …) with counts, shares and example sentences, as last computed
        by ``tuwen insights WS --refresh`` (``state.stale`` says when the reviews changed since)."""
        return server.current().insights(product=product_id)

    @app.get("/api/insights", responses={**BAD, **NOT_FOUND})
    def category_insights(category: Annotated[str, Query(min_length=1, max_length=1000, description="A category "
                                                         "path, or its last part when that is unique.")]
                          ) -> dict[str, Any]:
        """What shoppers praise and complain about in one category (every level of a category path has its own)."""
        return server.current().insights(category=category)

    @app.get("/api/products/{product_id}/image", response_class=FileResponse, responses={**NOT_FOUND})
    def product_image(product_id: str, index: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
        """The product's own photo: only paths recorded in the catalog are ever served."""
        paths = list(server.current().product(product_id)["image_paths"] or [])
        if index >= len(paths) or not Path(paths[index]).is_file():
            raise KeyError(f"product {product_id!r} has no photo {index}")
        return FileResponse(paths[index])

    @app.get("/api/recommend/{user}", responses={**BAD, **UNAUTHORISED, **NOT_FOUND},
             dependencies=[Depends(shopper_access)])
    def recommend(user: str, k: Annotated[int, Query(ge=1, le=100)] = 12,
                  model: Annotated[str | None, Query(max_length=100, description="A trained recommender's name.")]
                  = None, explain: bool = False) -> dict[str, Any]:
        """Products for a shopper; a shopper without history gets popular products and ``cold: true``."""
        snapshot = server.current()
        served = snapshot.service(model).recommend(user, k, explain)
        result = served.to_dict()
        found = snapshot.products(served.items)
        result["products"] = [_public(found[i]) for i in served.items if i in found]
        return result

    @app.get("/api/profile/{user}", responses={**UNAUTHORISED, **NOT_FOUND},
             dependencies=[Depends(shopper_access)])
    def profile(user: str) -> dict[str, Any]:
        """A shopper's interests: product types, colours, departments, price band, recency, a summary."""
        result = server.current().workspace.profile(user)
        return json.loads(json.dumps(result.to_dict(), default=str))

    @app.delete("/api/shoppers/{user}", responses={**UNAUTHORISED, **NOT_FOUND, **BUSY},
                dependencies=[Depends(shopper_access)])
    def forget(user: str) -> dict[str, Any]:
        """Forget a shopper (events, reviews, profile, their state in saved recommenders); the answer says what
        was removed. Takes the workspace's writer lock (409 while another process writes)."""
        # a workspace object of its own: the writer re-reads and rewrites its manifest, which requests still
        # running on the current snapshot must not see change under them
        # a short lock wait: answer 409 soon, not in a minute; an unknown id is not recorded (nothing is written)
        report = Shop(server.path, create=False, lock_timeout=2).forget(user, record_unknown=False)
        if not report.get("found"):
            raise KeyError(f"no shopper {user!r} to forget")
        server.current()  # the next request already sees the workspace without them
        return json.loads(json.dumps(report, default=str))

    @app.post("/api/ask", responses={**BAD, **NOT_FOUND, **TOO_LARGE})
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
            photo = _decode_base64(asked.image_base64, "image_base64") if asked.image_base64 else None
            field = "image_base64"
        workspace = server.current().workspace

        def work() -> Any:
            if photo is None:
                return workspace.ask(asked.question, product=asked.product, k=asked.k, train=False)
            with tempfile.TemporaryDirectory(prefix="tuwen-ask-") as folder:
                path = prepare_photo(photo, Path(folder) / "upload.png", field)
                return workspace.ask(asked.question, product=asked.product, image=path, k=asked.k, train=False)

        answer_ = await _off_loop(server, work)
        if answer_.get("route") == "search":
            answer_["search"] = _public_search_dict(answer_["search"])
        return json.loads(json.dumps(answer_, default=_plain))

    @app.post("/api/models/{name}/predict", responses={**BAD, **NOT_FOUND, **TOO_LARGE, **UNAUTHORISED})
    async def predict(name: str, request: PredictRequest,
                      key: Annotated[str | None, Depends(KEY_HEADER)] = None) -> dict[str, Any]:
        """Predictions for new products (title, description, photo) from a saved model, in input order."""
        if request.user is not None:
            authorise(key)  # a purchase prediction reads the shopper's history
        snapshot = server.current()
        return await _off_loop(server, lambda: _predict(snapshot, name, request))

    return app


def _predict(snapshot: Snapshot, name: str, request: PredictRequest) -> dict[str, Any]:
    loaded = snapshot.model(name)
    with tempfile.TemporaryDirectory(prefix="tuwen-predict-") as folder:
        rows = []
        for number, item in enumerate(request.items):
            paths: list[str] = []
            if item.image_base64:
                field = f"items[{number}].image_base64"
                paths = [str(prepare_photo(_decode_base64(item.image_base64, field), Path(folder) / f"{number}.png",
                                           field))]
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
                                 default=_plain))


def serve(workspace: str | Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          allowed_hosts: Sequence[str] = ()) -> None:
    """Run the API and web page with uvicorn until interrupted (``api_key`` defaults to ``$TUWEN_API_KEY``)."""
    import uvicorn

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    check_access(host, api_key)
    app = create_app(workspace, api_key=api_key, allowed_hosts=[host, *allowed_hosts])
    warm(app.state.server.current().workspace)
    uvicorn.run(app, host=host, port=port, log_level="info")


def warm(workspace: Shop) -> None:
    """Load the search engine, the query encoder and jieba's dictionary before the first shopper waits for them
    (the first Chinese query of a process otherwise pays ~1.3 s for the dictionary alone); above the ANN
    threshold also the vector and full-text indexes and the shown columns (:meth:`SearchEngine.prewarm`): a fresh
    process otherwise answers its first few hundred queries several times slower, loading IVF partitions."""
    try:
        workspace.search("连衣裙 dress", k=1)
        engine_for(workspace).prewarm()
    except ValueError:  # no index yet: search answers with that reason once asked
        pass
