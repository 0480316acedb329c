"""tuwen (图文): image + text learning for e-commerce catalogs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuwen.workspace import Workspace

__all__ = ["Workspace"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tuwen.Workspace`` on first use: importing ``tuwen`` (as ``tuwen --help`` does) loads no LanceDB or pandas."""
    if name == "Workspace":
        from tuwen.workspace import Workspace  # LanceDB + pandas: loaded only when a workspace is used

        return Workspace
    raise AttributeError(f"module 'tuwen' has no attribute {name!r}")
