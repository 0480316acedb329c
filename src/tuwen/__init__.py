"""tuwen (图文): image + text learning for e-commerce catalogs.

``tuwen.Workspace`` is :class:`tuwen.shop.Shop`: one workspace folder with every stage as a method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuwen.shop import Shop as Workspace

__all__ = ["Workspace"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tuwen.Workspace`` on first use: importing ``tuwen`` (as ``tuwen --help`` does) loads no LanceDB or pandas."""
    if name == "Workspace":
        from tuwen.shop import Shop  # every stage: loaded only when a workspace is used

        return Shop
    raise AttributeError(f"module 'tuwen' has no attribute {name!r}")
