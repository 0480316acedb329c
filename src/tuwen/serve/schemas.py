"""The request bodies and the documented error answers, shared by the routes and the OpenAPI schema.

One place for them so every route documents its 4xx answers the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tuwen.serve.access import API_KEY_HEADER
from tuwen.serve.limits import MAX_PHOTO_BYTES

Detail = {"content": {"application/json": {"example": {"detail": "the reason"}}}}
BAD = {400: {"description": "Bad request: the reason is in `detail`.", **Detail}}
NOT_FOUND = {404: {"description": "Not found: the reason is in `detail`.", **Detail}}
TOO_LARGE = {413: {"description": "Request body over the route's limit.", **Detail}}
UNAUTHORISED = {401: {"description": f"Missing or wrong `{API_KEY_HEADER}` header (when the server has a key).",
                      **Detail}}
# module-level: route signatures are resolved from this module's globals (``from __future__ import annotations``)
BUSY = {409: {"description": "Another process is writing to the workspace; try again.", **Detail}}


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
