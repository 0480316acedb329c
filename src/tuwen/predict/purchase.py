"""The purchase model (``kind = "purchase"``): will this shopper buy this product? Shopper history embedding ×
product multimodal embedding.

One product tower (the same per-modality projections + fusion as every tuwen model) embeds a
product from its photo and text. A shopper is the *mean of the raw features* of the products
they bought before, pushed through the same tower, so a shopper lives in the product space and
a brand-new product (no purchases yet, only a photo and a title) can be scored for any shopper.
A small network reads ``[u * p, u, p]`` and gives a logit; the loss is binary cross-entropy.

Data and split (temporal): purchases of products that have content, ordered by time; the first
70 % of the time-ordered purchases train, the next 10 % validate (early stopping), the last 20 %
test. A shopper's history for a validation or test purchase is everything they bought before
that period; for a training purchase, their other training purchases. Each positive gets
``negatives`` products sampled uniformly from the catalog among those the shopper never bought
(seeded). Purchases with an empty history (a shopper's first) cannot be scored and are counted.
Metrics: ROC AUC and log-loss on the test pairs (:class:`tuwen.predict.tasks.purchase.PurchaseTask`).

Pairs index into one product matrix and one history matrix (rather than copying features per
pair), so 50k pairs over 1.8k-wide features cost megabytes, not gigabytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from tuwen.predict.features import FeatureBuilder, FeatureSet, canonical_fields, default_specs
from tuwen.predict.fusion import FUSIONS
from tuwen.predict.model import SAVED_KEYS
from tuwen.predict.networks import MultimodalModel, network_inputs, network_outputs
from tuwen.predict.predictor import Predictor
from tuwen.predict.tasks.base import Task
from tuwen.predict.tasks.purchase import PurchaseTask
from tuwen.predict.training.config import TrainConfig, seed_everything
from tuwen.predict.training.loop import fit_network
from tuwen.predict.training.prepare import available_vectors
from tuwen.predict.training.report import write_report
from tuwen.predict.vectors import model_features, workspace_vectors
from tuwen.util.folders import atomic_folder, read_info, swap_folder, write_info

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace

FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------- features


class _Gather:
    """``matrix[index[rows]]`` on demand: a pair's user or product features without copying them per pair."""

    def __init__(self, matrix: Any, index: np.ndarray):
        self.matrix, self.index = matrix, index

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), self.matrix.shape[1])

    def __getitem__(self, rows: Any) -> Any:
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        return self.matrix[self.index[rows]]


class PairFeatures(FeatureSet):
    """(shopper history, product) pairs over one history FeatureSet and one product FeatureSet."""

    def __init__(self, history: FeatureSet, products: FeatureSet, history_index: np.ndarray,
                 product_index: np.ndarray):
        self.history, self.products = history, products
        self.history_index, self.product_index = history_index, product_index
        specs = [replace(s, field=f"user:{s.field}") for s in products.specs] + list(products.specs)
        ids = [f"{h}|{products.ids[p]}" for h, p in zip(history_index, product_index, strict=True)]
        dense: dict[str, Any] = {}
        sparse: dict[str, Any] = {}
        for own, spec in zip(specs[:len(products.specs)], products.specs, strict=True):
            store = sparse if spec.kind == "sparse" else dense
            source = history.sparse if spec.kind == "sparse" else history.dense
            store[own.name] = _Gather(source[spec.name], history_index)
        for spec in products.specs:
            store = sparse if spec.kind == "sparse" else dense
            source = products.sparse if spec.kind == "sparse" else products.dense
            store[spec.name] = _Gather(source[spec.name], product_index)
        mask = np.concatenate([history.mask[history_index], products.mask[product_index]], axis=1)
        super().__init__(ids, specs, dense, sparse, mask)

    def subset(self, rows: Any) -> PairFeatures:
        rows = np.asarray(rows, dtype=np.int64)
        return PairFeatures(self.history, self.products, self.history_index[rows], self.product_index[rows])


def history_features(products: FeatureSet, history: sp.csr_matrix) -> FeatureSet:
    """Mean raw features of each history's products (``history`` rows: weights over products, summing to 1)."""
    dense = {n: np.asarray(history @ m, dtype=np.float32) for n, m in products.dense.items()}
    sparse = {n: sp.csr_matrix(history @ m, dtype=np.float32) for n, m in products.sparse.items()}
    mask = np.asarray((history @ products.mask.astype(np.float32)) > 0)
    return FeatureSet([f"h{i}" for i in range(history.shape[0])], products.specs, dense, sparse, mask)


def _history_matrix(rows: list[list[int]], n_products: int) -> sp.csr_matrix:
    data, indices, indptr = [], [], [0]
    for items in rows:
        counts = pd.Series(items).value_counts() if items else pd.Series(dtype=float)
        indices += counts.index.tolist()
        data += (counts / max(counts.sum(), 1)).tolist()
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                          np.asarray(indptr)), shape=(len(rows), n_products))


# -------------------------------------------------------------------------------------------- network


class PurchaseNetwork(nn.Module):
    """Shared product tower for shopper histories and products, then an MLP over ``[u * p, u, p]``."""

    def __init__(self, inputs: list[dict[str, Any]], fusion: str = "gated", hidden: int = 128, dropout: float = 0.2,
                 input_dropout: float = 0.1, modality_dropout: float = 0.1, **_: Any):
        super().__init__()
        self.config = {"inputs": inputs, "fusion": fusion, "hidden": hidden, "dropout": dropout,
                       "input_dropout": input_dropout, "modality_dropout": modality_dropout}
        self.tower = MultimodalModel(inputs, {"embed": 1}, fusion, hidden, dropout, input_dropout, modality_dropout,
                                     aux_weight=0.0)
        self.score = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.head_names = ["purchase"]
        self.input_names = self.tower.input_names
        self.aux_weight = 0.0
        self.n_inputs = len(inputs)
        # Platt scaling (scale, shift) of the logit, fitted on the validation pairs (:meth:`calibrate`).
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    @property
    def fusion_name(self) -> str:
        return self.tower.fusion_name

    def forward(self, inputs: list[Any], mask: torch.Tensor) -> dict[str, Any]:
        m = self.n_inputs
        user = self.tower(inputs[:m], mask[:, :m])["fused"]
        product = self.tower(inputs[m:], mask[:, m:])["fused"]
        logit = self.score(torch.cat([user * product, user, product], dim=1))
        logit = logit * self.calibration[0] + self.calibration[1]
        return {"outputs": {"purchase": logit}, "unimodal": {}, "mask": mask, "fused": product}

    @torch.no_grad()
    def calibrate(self, task: Task, features: FeatureSet, labels: np.ndarray) -> dict[str, float]:
        """Fit the logit's scale (> 0) and shift on held-out pairs by log-loss (Platt scaling).

        Why: the network is trained to rank (early stopping watches AUC) and ends over-confident; on the
        H&M validation pairs its log-loss was worse than always answering the base rate. A monotone map
        leaves the ranking (AUC) as it is and makes the probabilities mean what they say.
        """
        self.calibration.copy_(torch.tensor([1.0, 0.0]))
        logits = network_outputs(self, task, features)["raw"]["purchase"].float().reshape(-1)  # type: ignore[arg-type]
        targets = torch.from_numpy(np.asarray(labels, np.float32))
        log_scale, shift = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
        optimizer = torch.optim.LBFGS([log_scale, shift], lr=0.5, max_iter=100)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(logits * log_scale.exp() + shift, targets)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self.calibration.copy_(torch.tensor([float(log_scale.exp()), float(shift)]))
        return {"scale": round(float(self.calibration[0]), 4), "shift": round(float(self.calibration[1]), 4)}

    def fit_normalisation(self, features: FeatureSet) -> None:
        products = features.products if isinstance(features, PairFeatures) else features
        self.tower.fit_normalisation(products)

    def weights(self, inputs: list[Any], mask: torch.Tensor) -> torch.Tensor | None:
        return self.tower.weights(inputs[self.n_inputs:], mask[:, self.n_inputs:])


# ------------------------------------------------------------------------------------------ pipeline


def purchase_examples(interactions: pd.DataFrame, product_ids: list[str], negatives: int, seed: int
                      ) -> tuple[pd.DataFrame, list[list[int]], dict[str, Any]]:
    """Positive and sampled negative (history, product, label, part) rows, the histories, and split facts."""
    index = {p: i for i, p in enumerate(product_ids)}
    bought = interactions[(interactions["kind"] == "purchase") & interactions["product_id"].isin(index)].copy()
    if bought.empty:
        raise ValueError("no purchases of products with content: the purchase task needs interactions of kind "
                         "'purchase' on products in this workspace")
    bought = bought.sort_values(["timestamp", "user_id", "product_id"], kind="stable").reset_index(drop=True)
    t_val, t_test = bought["timestamp"].iloc[int(0.7 * len(bought))], bought["timestamp"].iloc[int(0.8 * len(bought))]
    bought["part"] = np.where(bought["timestamp"] >= t_test, "test", np.where(bought["timestamp"] >= t_val, "val",
                                                                                "train"))
    bought["item"] = bought["product_id"].map(index)
    bought = bought.drop_duplicates(["user_id", "item", "part"])
    ever = bought.groupby("user_id")["item"].agg(set).to_dict()
    histories: list[list[int]] = []
    rows: list[tuple[int, int, float, str, str]] = []
    rng = np.random.default_rng(seed)
    skipped = 0
    for part, earlier in (("train", ("train",)), ("val", ("train",)), ("test", ("train", "val"))):
        past = bought[bought["part"].isin(earlier)].groupby("user_id")["item"].agg(list).to_dict()
        for user, item in bought.loc[bought["part"] == part, ["user_id", "item"]].itertuples(index=False):
            items = list(past.get(user, []))
            if part == "train":
                items.remove(item)
            if not items:
                skipped += 1
                continue
            histories.append(items)
            h = len(histories) - 1
            rows.append((h, item, 1.0, part, user))
            taken, drawn = ever[user], 0
            for candidate in rng.integers(0, len(product_ids), size=negatives * 3):
                if drawn < negatives and int(candidate) not in taken:
                    rows.append((h, int(candidate), 0.0, part, user))
                    drawn += 1
    frame = pd.DataFrame(rows, columns=["history", "product", "label", "part", "user_id"])
    frame["id"] = [f"{u}|{product_ids[p]}" for u, p in zip(frame["user_id"], frame["product"], strict=True)]
    info = {"rule": "temporal: purchases ordered by time; first 70% train, next 10% validation (early stopping), "
                    f"last 20% test; {negatives} sampled negatives per purchase",
            "seed": seed, "train": int((frame["part"] == "train").sum()), "val": int((frame["part"] == "val").sum()),
            "test": int((frame["part"] == "test").sum()), "items": len(frame),
            "cutoffs": [str(t_val), str(t_test)],
            "notes": [f"{skipped} purchases with no earlier purchase (cold start) skipped",
                      f"{len(bought)} purchases of {len(index)} products with content"]}
    return frame, histories, info


class PurchaseModel(Predictor):
    """A trained purchase model (``kind = "purchase"``): the probability that a shopper buys each product."""

    kind = "purchase"

    def __init__(self, task: PurchaseTask, builder: FeatureBuilder, network: PurchaseNetwork, info: dict[str, Any]):
        self.task, self.builder, self.network, self.info = task, builder, network.eval(), info
        self._encoders: dict[str, Any] = {}

    @classmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        return task == "purchase"

    @classmethod
    def fit(cls, workspace: Workspace, task: Any = "purchase", target: str | None = None, *, name: str | None = None,
            seed: int = 0, config: TrainConfig | None = None, save: bool = True,
            text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = ("text", "image"),
            encoders: tuple[str, ...] | None = None, negatives: int = 4, fusion: str | None = None,
            **_: Any) -> PurchaseModel:
        """Build pairs, train with the shared loop (:func:`tuwen.predict.training.loop.fit_network`), score the test
        pairs, save. ``tabular`` and ``limit`` of the other kinds do not apply to pairs and are ignored."""
        config = replace(config or TrainConfig(), hidden=128, blend=False, ensemble=1, seed=seed,
                         fusion=fusion or (config.fusion if config else "gated"))
        task_obj = PurchaseTask(negatives)
        products = workspace.read("products")
        cached = [(e, f) for e, f in available_vectors(workspace) if encoders is None or e in encoders]
        specs = default_specs(cached, canonical_fields(text_fields or ("title",)), modalities)
        builder = FeatureBuilder(specs).fit(products)
        product_features = builder.build(products, workspace_vectors(workspace))
        examples, histories, split_info = purchase_examples(workspace.read("interactions"), product_features.ids,
                                                            negatives, seed)
        task_obj.notes = split_info["notes"]
        history = history_features(product_features, _history_matrix(histories, len(product_features)))
        pairs = PairFeatures(history, product_features, examples["history"].to_numpy(),
                             examples["product"].to_numpy())
        targets = task_obj.targets(examples)
        parts = {p: np.flatnonzero(examples["part"].to_numpy() == p) for p in ("train", "val", "test")}
        seed_everything(seed)
        network = PurchaseNetwork(network_inputs(product_features), config.fusion, config.hidden, config.dropout,
                                  config.input_dropout, config.modality_dropout)
        folder = workspace.artifacts / "models" / (name or "purchase")
        staging = workspace.artifacts / "models" / f".{name or 'purchase'}.training"
        if save:
            staging.mkdir(parents=True, exist_ok=True)

        def take(part: str) -> tuple[PairFeatures, dict[str, np.ndarray]]:
            return pairs.subset(parts[part]), {k: v[parts[part]] for k, v in targets.items()}

        (train, y_train), (val, y_val), (test, y_test) = take("train"), take("val"), take("test")
        fit = fit_network(network, task_obj, train, y_train, val, y_val, config,  # type: ignore[arg-type]
                          staging if save else None)
        calibration = network.calibrate(task_obj, val, y_val["purchase"]) if len(val) else None
        if calibration:
            fit["val"] = task_obj.metrics(network_outputs(network, task_obj, val)["predictions"],  # type: ignore[arg-type]
                                          y_val)
        test_metrics = task_obj.metrics(network_outputs(network, task_obj, test)["predictions"],  # type: ignore[arg-type]
                                        y_test)
        info = {"name": name or "purchase", "split": split_info, "inputs": [s.name for s in specs],
                "best_epoch": fit["best_epoch"], "seconds": fit["seconds"], "target": None,
                "calibration": calibration, "metrics": {"val": fit["val"], "test": test_metrics}}
        model = cls(task_obj, builder, network, info)
        if save:
            model.write(staging)  # this run's own folder, beside its training log: swapped in once
            swap_folder(staging, folder)
            model.info["folder"] = str(folder)
        return model

    @classmethod
    def ablation(cls, workspace: Workspace, task: Any = "purchase", target: str | None = None, *,
                 text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = ("text", "image"),
                 encoders: tuple[str, ...] | None = None, fusions: tuple[str, ...] = FUSIONS, seed: int = 0,
                 config: TrainConfig | None = None, report: bool = True, **_: Any) -> dict[str, Any]:
        """The ablation for ``purchase``: the same temporal split and negatives, text-only, image-only, each fusion."""
        config = config or TrainConfig()
        present = [m for m in modalities if m in ("text", "image")]
        variants = [(m, (m,), "concat") for m in present]
        variants += [(f"fusion:{f}", tuple(present), f) for f in fusions] if len(present) > 1 else []
        results, split = [], {}
        for variant, chosen, fusion in variants:
            model = cls.fit(workspace, seed=seed, config=config, save=False, text_fields=text_fields or ("title",),
                            modalities=chosen, encoders=encoders, fusion=fusion)
            split = model.info["split"]
            results.append({"variant": variant, "fusion": fusion, "inputs": model.info["inputs"],
                            "metrics": {k: round(v, 4) for k, v in model.info["metrics"]["test"].items()},
                            "seconds": model.info["seconds"], "best_epoch": model.info["best_epoch"]})
        summary = {"task": "purchase", "target": None, "split": split, "primary": "auc", "results": results}
        if report:
            summary["report"] = str(write_report(workspace.artifacts / "reports", summary, None, {}))
        return summary

    def history(self, workspace: Workspace, user_id: str) -> list[str]:
        events = workspace.read("interactions")
        events = events[(events["user_id"] == user_id) & (events["kind"] == "purchase")]
        return list(events["product_id"].astype(str))

    def predict(self, frame: pd.DataFrame, workspace: Workspace | None = None, user_id: str | None = None,
                **_: Any) -> list[dict[str, Any]]:
        """Probability that ``user_id`` buys each product of ``frame`` (history from the workspace's purchases)."""
        if workspace is None or not user_id:
            raise ValueError("a purchase model scores products for a shopper: give --user ID (and the workspace)")
        past = self.history(workspace, user_id)
        products = workspace.read("products")
        known = products[products["id"].astype(str).isin(past)]
        if known.empty:
            raise ValueError(f"shopper {user_id!r} has no purchases of products with content in {workspace.path}")
        past_features = model_features(self.builder, self.network.config, known, workspace, self._encoders)
        history = history_features(past_features, sp.csr_matrix(np.full((1, len(known)), 1.0 / len(known))))
        items = model_features(self.builder, self.network.config, frame, workspace, self._encoders)
        pairs = PairFeatures(history, items, np.zeros(len(frame), dtype=np.int64), np.arange(len(frame)))
        predictions = network_outputs(self.network, self.task, pairs)["predictions"]  # type: ignore[arg-type]
        return [{"id": str(i), "user_id": user_id, **self.task.describe(predictions, row), "contributions": {},
                 "history": len(known)} for row, i in enumerate(frame["id"])]

    def evaluate(self, workspace: Workspace, frame: pd.DataFrame | None = None) -> dict[str, float]:
        """Re-score the test pairs of the model's own temporal split (same seed, same sampled negatives); pairs are
        built from the workspace's purchases, so a ``frame`` of products has nothing to score and is refused."""
        if frame is not None:
            raise ValueError("a purchase model is scored on shopper-product pairs of its own temporal split; "
                             "call evaluate(workspace) without a frame")
        products = workspace.read("products")
        product_features = model_features(self.builder, self.network.config, products, workspace, self._encoders)
        examples, histories, _ = purchase_examples(workspace.read("interactions"), product_features.ids,
                                                   self.task.negatives, self.info["split"]["seed"])
        history = history_features(product_features, _history_matrix(histories, len(product_features)))
        rows = np.flatnonzero(examples["part"].to_numpy() == "test")
        pairs = PairFeatures(history, product_features, examples["history"].to_numpy()[rows],
                             examples["product"].to_numpy()[rows])
        predictions = network_outputs(self.network, self.task, pairs)["predictions"]  # type: ignore[arg-type]
        return self.task.metrics(predictions, self.task.targets(examples.iloc[rows]))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        with atomic_folder(folder, carry=("metrics.jsonl", "checkpoint*.pt", "tensorboard")) as temp:
            self.write(temp)
        return folder

    def write(self, folder: Path) -> None:
        """The model's files into an existing folder that no reader sees yet (``save`` swaps it in)."""
        write_info(folder / "config.json", "model", FORMAT_VERSION,
                   {"predictor": self.kind, "task": self.task.state(), "network": self.network.config, **self.info})
        (folder / "features.json").write_text(json.dumps(self.builder.state(), ensure_ascii=False), encoding="utf-8")
        torch.save(self.network.state_dict(), folder / "weights.pt")

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> PurchaseModel:
        folder = Path(folder)
        config = read_info(folder / "config.json", "model", FORMAT_VERSION, "train one with `tuwen train`")
        network = PurchaseNetwork(**config["network"])
        state = torch.load(folder / "weights.pt", map_location=device, weights_only=True)
        state.setdefault("calibration", torch.tensor([1.0, 0.0]))  # saved before calibration existed: identity
        network.load_state_dict(state)
        builder = FeatureBuilder.from_state(json.loads((folder / "features.json").read_text(encoding="utf-8")))
        info = {k: v for k, v in config.items() if k not in SAVED_KEYS}
        model = cls(PurchaseTask.from_state(config["task"]), builder, network.to(device), info)
        model.info["folder"] = str(folder)
        return model
