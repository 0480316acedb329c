"""The one error type of the recommend package, in a module of its own.

Why apart: the training-data preparation and the :class:`~tuwen.recommend.base.Recommender` contract both raise it,
and the contract's module imports the preparation's; a leaf module keeps that free of cycles. The CLI and the web
app catch it to show the message instead of a traceback.
"""

from __future__ import annotations


class RecommendError(ValueError):
    """A user-facing problem (unknown model, no interactions, unknown shopper)."""
