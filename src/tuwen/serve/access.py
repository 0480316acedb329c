"""Who may ask: the ``X-API-Key`` check for shopper routes and the refusal to bind beyond loopback without a key.

Kept apart from the routes so the CLI can check access (:func:`check_access`) before building any app.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader

from tuwen.serve.state import Server

API_KEY_ENV = "TUWEN_API_KEY"
API_KEY_HEADER = "X-API-Key"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
# module-level: route signatures are resolved from their module's globals (``from __future__ import annotations``)
KEY_HEADER = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                          description="Needed for shopper routes when the server has an API key.")


def authorise(api_key: str | None, key: str | None) -> None:
    """Refuse (401) a request whose key does not match the server's, when the server has one."""
    if api_key and not (key and hmac.compare_digest(key.encode(), api_key.encode())):
        raise HTTPException(401, f"this route needs the server's API key in the {API_KEY_HEADER} header")


def shopper_access_for(server: Server) -> Callable[..., None]:
    """The dependency that guards the shopper routes of one server."""

    def shopper_access(key: Annotated[str | None, Depends(KEY_HEADER)]) -> None:
        authorise(server.api_key, key)

    return shopper_access


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
