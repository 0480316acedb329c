"""The façade users call: :class:`Shop` (``tuwen.Workspace``) — one workspace folder plus every stage as a method.

Why apart from the store: the storage layer (:mod:`tuwen.store`: tables, manifest, transactions, the writer lock)
sits below every stage, and each stage takes a store workspace; the front door that calls the stages sits above
all of them. Each method is one call into the stage that does the work, so this file is the map of what tuwen does:
ingest → embed → train / evaluate → align / index / search → recommend / profile / forget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuwen.choices import DEFAULT_IMAGE_ENCODERS, DEFAULT_TEXT_ENCODER
from tuwen.encoders.cache import embed_workspace, load_vectors, vector_counts
from tuwen.ingest import ColumnMap, load_generic, load_preset, load_toml
from tuwen.ingest.generic import INTERACTION_FIELDS, PRODUCT_FIELDS, REVIEW_FIELDS
from tuwen.predict.predictor import Predictor
from tuwen.predict.registry import load_model, run_ablation, train_model
from tuwen.recommend import profiles
from tuwen.recommend.predictor import RecommenderModel
from tuwen.recommend.store import Served, Service
from tuwen.search import build_index, search, similar
from tuwen.search.align import align_workspace
from tuwen.search.results import SearchResult
from tuwen.store.catalog import Batch, RejectedInput
from tuwen.store.workspace import SCHEMA_VERSION, Workspace

__all__ = ["Shop"]

PREDICTOR_KINDS = (RecommenderModel,)  # kinds defined above tuwen.predict, registered by importing them here


class Shop(Workspace):
    """A workspace with every stage as a method (``tuwen.Workspace``): what the CLI, the HTTP API and scripts use."""

    # ------------------------------------------------------------------- ingest
    def ingest(
        self,
        preset: str | None = None,
        path: str | Path | None = None,
        *,
        catalog: str | Path | None = None,
        mapping: list[str] | dict[str, str] | None = None,
        interactions: str | Path | None = None,
        interaction_mapping: list[str] | dict[str, str] | None = None,
        reviews: str | Path | None = None,
        review_mapping: list[str] | dict[str, str] | None = None,
        config: str | Path | None = None,
        image_root: str | Path | None = None,
        currency: str = "",
        strict: bool = False,
    ) -> Batch:
        """Load a catalog (a preset's folder, mapped files, or a tuwen.toml) and upsert it by id."""
        if preset is not None:
            if path is None:
                raise ValueError("a preset needs the path of its data set folder")
            batch = load_preset(preset, Path(path))
        elif config is not None:
            batch = load_toml(Path(config))
        else:
            batch = load_generic(
                Path(catalog) if catalog else None,
                ColumnMap.parse(mapping or [], PRODUCT_FIELDS),
                Path(interactions) if interactions else None,
                ColumnMap.parse(interaction_mapping or [], INTERACTION_FIELDS),
                Path(reviews) if reviews else None,
                ColumnMap.parse(review_mapping or [], REVIEW_FIELDS),
                Path(image_root) if image_root else None,
                currency,
            )
        if strict and batch.rejects:
            raise RejectedInput(batch.rejects)
        batch.strict = strict  # rejects of streamed events are known only while they are written
        files = _input_files(preset, path, catalog, interactions, reviews)
        return self.write_batch(batch, files, f"ingest {preset or config or catalog or interactions or reviews}")

    # -------------------------------------------------------------------- embed
    def embed(self, image_encoder: str | None = DEFAULT_IMAGE_ENCODERS, text_encoder: str | None = DEFAULT_TEXT_ENCODER,
              ocr: bool = False, fields: tuple[str, ...] = ("title", "description"), batch_size: int = 256,
              progress: bool = True) -> dict[str, Any]:
        """Compute (or reuse from cache) feature vectors for every product; see :mod:`tuwen.encoders.cache`.

        ``image_encoder`` may name several encoders joined by ``+``; each gets its own vector table."""
        return embed_workspace(self, image_encoder, text_encoder, ocr, fields, batch_size, progress)

    def vectors(self, encoder: str, field: str = "image") -> tuple[list[str], Any]:
        """(product ids, float32 matrix) of one encoder's vectors for one field."""
        return load_vectors(self, encoder, field)

    # ------------------------------------------------------------ train / evaluate
    def train(self, task: str, target: str | None = None, **options: Any) -> Predictor:
        """Train and save a model of the kind that trains ``task`` (:func:`tuwen.predict.registry.train_model`):
        product tasks, ``encoders="trainable"`` end-to-end models, ``purchase``, and ``recommend``
        (``model="ranker"`` etc.)."""
        return train_model(self, task, target, **options)

    def evaluate(self, task: str, target: str | None = None, **options: Any) -> dict[str, Any]:
        """The kind's comparison on one split: the modality ablation for product tasks; for ``recommend``,
        recommenders side by side on a temporal split (``models=[...]``, ``test_days=7``)."""
        return run_ablation(self, task, target, **options)

    def model(self, name: str) -> Predictor:
        """A saved model, ready to ``predict``."""
        return load_model(self, name)

    # ------------------------------------------------------------------- search
    def align(self, **options: Any) -> dict[str, Any]:
        """Learn the text↔photo alignment used by cross-modal search; see :func:`tuwen.search.align.align_workspace`."""
        return align_workspace(self, **options)

    def index(self, **options: Any) -> dict[str, Any]:
        """Build or update the search index (BM25 + vectors, ANN when large); see :func:`tuwen.search.build_index`."""
        return build_index(self, **options)

    def search(self, query: str | None = None, **options: Any) -> SearchResult:
        """Hybrid text + image search; see :func:`tuwen.search.search`."""
        return search(self, query, **options)

    def similar(self, product_id: str, **options: Any) -> SearchResult:
        """"More like this" for one product; see :func:`tuwen.search.similar`."""
        return similar(self, product_id, **options)

    # ---------------------------------------------------------- recommendations
    def recommend(self, user: str, k: int = 12, model: str | None = None) -> Served:
        """Top-k products for one shopper (popular items, flagged, for a shopper with no history)."""
        return Service(self, model).recommend(user, k=k)

    def profile(self, user: str) -> profiles.Profile:
        """A shopper's interest profile; see :func:`tuwen.recommend.profiles.profile`."""
        return profiles.profile(self, user)

    def forget(self, user: str, record_unknown: bool = True) -> dict[str, Any]:
        """Remove a shopper's events, reviews, their vectors and quotes, and profile; see
        :func:`tuwen.recommend.profiles.forget`. The quotes go first, so a forget stopped part-way and run again
        still finds the reviews whose quotes it must remove."""
        from tuwen.service.insights import store as insight_store  # the insights package loads scikit-learn

        quotes = insight_store.scrub_reviews(self, profiles.shopper_review_ids(self, user))
        report = profiles.forget(self, user, record_unknown)
        if quotes:
            report["rows_removed"][insight_store.TABLE] = quotes
        return report

    # ----------------------------------------------------------------- insights
    def insights(self, product: str | None = None, category: str | None = None,
                 refresh: bool | None = None) -> dict[str, Any]:
        """What shoppers praise and complain about for a product and/or a category (aspects, counts, shares,
        example sentences); see :mod:`tuwen.service.insights`. ``refresh``: None recomputes only when the reviews
        changed since the stored insights were computed, True always, False never (what is stored)."""
        from tuwen.service import insights as review_insights  # scikit-learn and jieba: loaded when asked

        if refresh or (refresh is None and review_insights.state(self)["stale"]):
            review_insights.refresh(self, progress=False)
        return review_insights.insights(self, product=product, category=category)

    def refresh_insights(self, **options: Any) -> dict[str, Any]:
        """Recompute and store every product's and category's insights; see :func:`tuwen.service.insights.refresh`."""
        from tuwen.service import insights as review_insights

        return review_insights.refresh(self, **options)

    # ------------------------------------------------------------------ service
    def ask(self, question: str, product: str | None = None, image: str | Path | None = None, k: int = 5,
            train: bool = True) -> dict[str, Any]:
        """Answer a shopper's question: about a product, yes / no / unsure with the evidence quoted (earlier Q&A,
        reviews, description); naming no product (or with a photo), the products it asks for, with the filters its
        words imply. See :func:`tuwen.service.ask.ask`."""
        from tuwen.service.ask import ask  # torch and the sentence encoder: loaded when asked

        return ask(self, question, product=product, image=image, k=k, train=train)

    # --------------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        """Counts a script can rely on: products, photos, events, reviews, rejects, vectors per encoder."""
        counts = vector_counts(self)
        per_encoder: dict[str, int] = {}
        for (encoder, _field), n in counts.items():
            per_encoder[encoder] = max(per_encoder.get(encoder, 0), n)
        review_groups = self.read("reviews", ["group"])["group"].nunique() if self.has_table("reviews") else 0
        events_by_kind, shoppers = self.event_summary()
        return {
            "workspace": self.uri,  # an s3:// workspace by its URL, not by this machine's cache folder
            "schema_version": SCHEMA_VERSION,
            "products": self.count("products"),
            "products_with_image": self.count("products", "has_image = true"),
            "interactions": self.count("interactions"),
            # events per kind: a view is not a purchase, and the web page's header says which is which
            "events_by_kind": events_by_kind,
            "shoppers": shoppers,  # shoppers with any event ("users" counts profile rows)
            "users": self.count("users"),
            "reviews": self.count("reviews"),
            "review_groups": int(review_groups),
            "questions": self.count("questions"),  # product Q&A (the amazon-qa preset)
            "messages": self.count("messages"),  # customer-service messages (the support-intents preset)
            "rejects": self.count("rejects"),
            "vectors": per_encoder,
            "vectors_by_field": {f"{encoder}/{field}": n for (encoder, field), n in sorted(counts.items())},
        }


def _input_files(preset: str | None, path: str | Path | None, *files: str | Path | None) -> set[str]:
    """The files an ingest read: rejects are replaced per input file, so a fixed file re-ingested clears its old
    rejects."""
    found = {str(f) for f in files if f}
    if preset and path:
        found |= {str(p) for p in Path(path).glob("*") if p.suffix in {".csv", ".jsonl", ".json", ".parquet"}}
    return found
