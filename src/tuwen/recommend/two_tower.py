"""Two-tower retrieval: a product tower over image + text features (+ an id embedding) and a shopper
tower that pools the product-tower vectors of their history; trained with in-batch negatives.

Why this shape: the shopper has no parameters of their own — their vector is computed from what
they bought — so a shopper who bought since training is served without retraining, and
``forget`` only has to drop their stored history. The product tower sees content, so products
nobody has bought yet get a vector too (the id embedding is zero for them; ``id_dropout`` trains
the towers to cope with that, as in DropoutNet, Volkovs et al. 2017).

Training examples are causal: for each purchase, the history is what the shopper did *before*
that day, so the model learns to predict the next basket, which is what it is asked at serving.
``content=False`` gives the same model with id embeddings only (the ablation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuwen.recommend.base import ItemContent, Recommender, TrainData, decay
from tuwen.util.runtime import torch_threads

History = tuple[np.ndarray, np.ndarray, np.ndarray]


def _build_towers(n_trained: int, content_dim: int, dim: int, hidden: int, use_content: bool) -> Any:
    import torch
    from torch import nn

    class Towers(nn.Module):
        """Product tower (content MLP + id embedding) and shopper tower (recency-weighted pooling + MLP)."""

        def __init__(self) -> None:
            super().__init__()
            # last row: the learnt "new product" embedding, used for hidden ids (id dropout) in training
            # and for never-bought products at serving
            self.ids = nn.Embedding(n_trained + 1, dim)
            nn.init.normal_(self.ids.weight, std=0.05)
            self.content = (nn.Sequential(nn.Linear(content_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
                            if use_content else None)
            self.user = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
            self.log_temperature = nn.Parameter(torch.tensor(np.log(0.1), dtype=torch.float32))

        def items(self, id_rows: torch.Tensor, features: torch.Tensor | None, has_content: torch.Tensor | None
                  ) -> torch.Tensor:
            vector = self.ids(id_rows)
            if self.content is not None and features is not None:
                vector = vector + self.content(features) * has_content.unsqueeze(-1)
            return vector

        def users(self, history_vectors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            pooled = (history_vectors * weights.unsqueeze(-1)).sum(-2) / weights.sum(-1, keepdim=True).clamp(1e-6)
            return nn.functional.normalize(pooled + self.user(pooled), dim=-1)

    return Towers()


class TwoTower(Recommender):
    """Content + id product tower, pooled-history shopper tower, in-batch softmax."""

    name = "two_tower"
    uses_content = True

    def __init__(self, dim: int = 64, hidden: int = 256, epochs: int = 4, batch_size: int = 256, lr: float = 3e-3,
                 weight_decay: float = 1e-5, max_history: int = 50, halflife: float = 60.0, id_dropout: float = 0.8,
                 content: bool = True, image_weight: float = 1.0, text_weight: float = 1.0,
                 threads: int | None = None, **params: Any):
        super().__init__(dim=dim, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, max_history=max_history, halflife=halflife, id_dropout=id_dropout,
                         content=content, image_weight=image_weight, text_weight=text_weight, threads=threads,
                         **params)
        self.item_vectors = np.zeros((0, 0), np.float32)
        self.scorable = np.zeros(0, bool)

    def _examples(self, data: TrainData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(target item, history items, history ages at that time, history mask) per purchase with a past."""
        h, max_h = data.histories, self.params["max_history"]
        targets, hist_items, hist_ages, masks = [], [], [], []
        for k in range(len(h.users)):
            a, b = h.indptr[k], h.indptr[k + 1]
            items, ages, weights = h.items[a:b][::-1], h.ages[a:b][::-1], h.weights[a:b][::-1]  # oldest first
            days = np.floor(ages)
            for j in range(len(items)):
                if weights[j] < 1.0:  # predict purchases; browsing only feeds histories
                    continue
                past = np.flatnonzero(days > days[j])  # strictly earlier days: no leakage from the same basket
                if not len(past):
                    continue
                past = past[-max_h:]
                pad = max_h - len(past)
                targets.append(items[j])
                hist_items.append(np.pad(items[past], (pad, 0)))
                hist_ages.append(np.pad(ages[past] - ages[j], (pad, 0)))
                masks.append(np.pad(weights[past], (pad, 0)))
        if not targets:
            raise ValueError("two_tower needs shoppers with purchases on at least two different days")
        # int64: torch indexes with them (histories keep 32-bit item indices)
        return np.array(targets, dtype=np.int64), np.stack(hist_items).astype(np.int64), \
            np.stack(hist_ages).astype(np.float32), np.stack(masks).astype(np.float32)

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        with torch_threads(self.params["threads"] or 1):  # see ONE_THREAD_WHY
            self._fit_torch(data, content)

    def _fit_torch(self, data: TrainData, content: ItemContent | None) -> None:
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        use_content = bool(p["content"]) and content is not None
        features = content.joint(p["image_weight"], p["text_weight"]) if use_content else None
        n_trained = data.n_trained_items
        towers = _build_towers(n_trained, 0 if features is None else features.shape[1], p["dim"], p["hidden"],
                               use_content)
        feats = torch.from_numpy(features) if features is not None else None
        has_content = torch.from_numpy(content.has_any.astype(np.float32)) if use_content else None
        id_rows_all = torch.from_numpy(np.where(np.arange(data.n_items) < n_trained, np.arange(data.n_items),
                                                n_trained))

        targets, hist_items, hist_ages, masks = self._examples(data)
        weights = masks * decay(hist_ages, p["halflife"])
        optimiser = torch.optim.AdamW(towers.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        n, batch = len(targets), p["batch_size"]

        def item_vectors(items: torch.Tensor, drop: bool) -> torch.Tensor:
            rows = id_rows_all[items]
            if drop and use_content and p["id_dropout"] > 0:
                hide = torch.rand(rows.shape) < p["id_dropout"]
                rows = torch.where(hide & (has_content[items] > 0), torch.full_like(rows, n_trained), rows)
            return towers.items(rows, feats[items] if feats is not None else None,
                                has_content[items] if has_content is not None else None)

        towers.train()
        for _epoch in range(p["epochs"]):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                chosen = order[start:start + batch]
                target = torch.from_numpy(targets[chosen])
                hist = torch.from_numpy(hist_items[chosen])
                w = torch.from_numpy(weights[chosen])
                users = towers.users(item_vectors(hist, True), w)
                items = torch.nn.functional.normalize(item_vectors(target, True), dim=-1)
                logits = users @ items.T / towers.log_temperature.exp()
                # the same product twice in a batch is not a negative of itself
                same = target.unsqueeze(0) == target.unsqueeze(1)
                logits = logits.masked_fill(same & ~torch.eye(len(chosen), dtype=torch.bool), -1e9)
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(chosen)))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

        towers.eval()
        with torch.no_grad():
            all_items = torch.arange(data.n_items)
            raw = item_vectors(all_items, False)
            self.raw_item_vectors = raw.numpy().astype(np.float32)
            self.item_vectors = torch.nn.functional.normalize(raw, dim=-1).numpy().astype(np.float32)
            self.user_layers = {k: v.detach().numpy().astype(np.float32) for k, v in towers.user.state_dict().items()}
            self.temperature = float(towers.log_temperature.exp())
        scorable = np.zeros(data.n_items, bool)
        scorable[:n_trained] = True
        if use_content:
            scorable |= content.has_any
        self.scorable = scorable

    def user_vector(self, history: History | None) -> np.ndarray | None:
        """Pool the product vectors of the (recent) history, then the shopper MLP: numpy, no torch."""
        if history is None or not len(history[0]):
            return None
        items, ages, weights = (a[: self.params["max_history"]] for a in history)
        w = weights * decay(ages - ages.min(), self.params["halflife"])
        pooled = (w @ self.raw_item_vectors[items]) / max(float(w.sum()), 1e-6)
        hidden = pooled @ self.user_layers["0.weight"].T + self.user_layers["0.bias"]
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.sqrt(2.0)))  # exact GELU, as torch's default
        vector = pooled + hidden @ self.user_layers["2.weight"].T + self.user_layers["2.bias"]
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        vector = self.user_vector(history)
        if vector is None:
            return scores
        values = self.item_vectors @ vector
        scores[self.scorable] = values[self.scorable]
        return scores

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"raw_item_vectors": self.raw_item_vectors, "item_vectors": self.item_vectors,
                  "scorable": self.scorable}
        arrays.update({f"user_{k}": v for k, v in self.user_layers.items()})
        return {"temperature": self.temperature}, arrays

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.temperature = config["temperature"]
        self.raw_item_vectors, self.item_vectors = arrays["raw_item_vectors"], arrays["item_vectors"]
        self.scorable = arrays["scorable"]
        self.user_layers = {k[5:]: v for k, v in arrays.items() if k.startswith("user_")}


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)

