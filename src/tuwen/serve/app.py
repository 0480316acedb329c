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

The pieces live in their own modules: body limits (:mod:`.limits`), access (:mod:`.access`), request models
(:mod:`.schemas`), the workspace snapshot (:mod:`.state`), photos (:mod:`.photos`), JSON answers (:mod:`.public`),
error answers (:mod:`.errors`) and the route groups (:mod:`.routes`). This module builds the app from them and
runs it; the names other code imported from here still import from here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from tuwen.search import engine_for
from tuwen.serve.access import (  # noqa: F401  (re-exported)
    API_KEY_ENV,
    API_KEY_HEADER,
    KEY_HEADER,
    LOOPBACK_HOSTS,
    check_access,
    is_loopback,
)
from tuwen.serve.errors import add_error_handlers
from tuwen.serve.limits import (  # noqa: F401  (re-exported)
    MAX_OTHER_BYTES,
    MAX_PHOTO_BYTES,
    MAX_PHOTO_PIXELS,
    MAX_PREDICT_BYTES,
    PHOTO_WORKERS,
    UPLOAD_SIDE,
    BodyLimit,
    body_limit,
)
from tuwen.serve.photos import prepare_photo  # noqa: F401  (re-exported)
from tuwen.serve.public import HIDDEN_COLUMNS  # noqa: F401  (re-exported)
from tuwen.serve.public import plain as _plain  # noqa: F401  (the old private names, re-exported)
from tuwen.serve.public import public_product as _public  # noqa: F401
from tuwen.serve.public import public_search as _public_search  # noqa: F401
from tuwen.serve.public import public_search_dict as _public_search_dict  # noqa: F401
from tuwen.serve.routes import ask, predict, products, search, shoppers, site
from tuwen.serve.routes.site import WEB_PAGE  # noqa: F401  (re-exported)
from tuwen.serve.schemas import (  # noqa: F401  (re-exported)
    BAD,
    BUSY,
    NOT_FOUND,
    TOO_LARGE,
    UNAUTHORISED,
    AskRequest,
    NewProduct,
    PredictRequest,
)
from tuwen.serve.state import (  # noqa: F401  (re-exported)
    MODEL_NAME,
    PRODUCTS_KEPT,
    Server,
    Snapshot,
    check_model_name,
    manifest_digest,
    manifest_stamp,
)
from tuwen.shop import Shop


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
    add_error_handlers(app, server)
    # in this order: it is the order of the OpenAPI schema's paths
    for group in (site, search, products, shoppers, ask, predict):
        app.include_router(group.router(server))
    return app


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
