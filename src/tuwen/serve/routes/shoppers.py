"""Shopper routes (behind the API key when the server has one): recommendations, profiles, forgetting a shopper."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tuwen.serve.access import shopper_access_for
from tuwen.serve.public import public_product
from tuwen.serve.schemas import BAD, BUSY, NOT_FOUND, UNAUTHORISED
from tuwen.serve.state import Server
from tuwen.shop import Shop


def router(server: Server) -> APIRouter:
    """The shopper routes of one server."""
    router = APIRouter()
    shopper_access = shopper_access_for(server)

    @router.get("/api/recommend/{user}", responses={**BAD, **UNAUTHORISED, **NOT_FOUND},
                dependencies=[Depends(shopper_access)])
    def recommend(user: str, k: Annotated[int, Query(ge=1, le=100)] = 12,
                  model: Annotated[str | None, Query(max_length=100, description="A trained recommender's name.")]
                  = None, explain: bool = False) -> dict[str, Any]:
        """Products for a shopper; a shopper without history gets popular products and ``cold: true``."""
        snapshot = server.current()
        served = snapshot.service(model).recommend(user, k, explain)
        result = served.to_dict()
        found = snapshot.products(served.items)
        result["products"] = [public_product(found[i]) for i in served.items if i in found]
        return result

    @router.get("/api/profile/{user}", responses={**UNAUTHORISED, **NOT_FOUND},
                dependencies=[Depends(shopper_access)])
    def profile(user: str) -> dict[str, Any]:
        """A shopper's interests: product types, colours, departments, price band, recency, a summary."""
        result = server.current().workspace.profile(user)
        return json.loads(json.dumps(result.to_dict(), default=str))

    @router.delete("/api/shoppers/{user}", responses={**UNAUTHORISED, **NOT_FOUND, **BUSY},
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

    return router
