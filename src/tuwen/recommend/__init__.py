"""Recommendations from purchase history, powered by product photos and text.

>>> from tuwen.recommend import train, Service                         # doctest: +SKIP
>>> model = train(ws, "ranker")              # fit on all events, save under artifacts/recommend/
>>> Service(ws).recommend("customer-id", k=12).items                  # doctest: +SKIP

Models (all follow :class:`Recommender`: ``fit / score / recommend / save / load``):
``popularity``, ``repurchase``, ``itemknn``, ``als``, ``bpr`` (ids only); ``content`` (profile of
image + text vectors), ``vbpr`` (BPR + projected content), ``two_tower`` (content + id towers);
``ranker`` (candidates from several models, LightGBM re-ranking with image/text similarity features).
"""

from tuwen.recommend.base import ItemContent, Recommender, RecommendError
from tuwen.recommend.baselines import ALS, BPR, ItemKNN, Popularity, Repurchase
from tuwen.recommend.content import ContentProfile
from tuwen.recommend.evaluate import Split, evaluate_model, results_table, temporal_split
from tuwen.recommend.explain import Explainer, explain
from tuwen.recommend.ranker import CandidateRanker
from tuwen.recommend.store import Service, load, make_model, model_names, train
from tuwen.recommend.two_tower import TwoTower
from tuwen.recommend.vbpr import VBPR

__all__ = [
    "ALS", "BPR", "CandidateRanker", "ContentProfile", "Explainer", "ItemContent", "ItemKNN", "Popularity",
    "RecommendError", "Recommender", "Repurchase", "Service", "Split", "TwoTower", "VBPR", "evaluate_model",
    "explain", "load", "make_model", "model_names", "results_table", "temporal_split", "train",
]
