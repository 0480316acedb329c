"""tuwen (图文): image + text learning for e-commerce catalogs."""

from tuwen.workspace import Workspace

__all__ = ["Workspace"]
__version__ = "0.1.0"
