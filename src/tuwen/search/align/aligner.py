"""Contrastive text↔image alignment: the shared space that lets a typed query find products by their photos.

No CLIP-style model ships offline, so tuwen learns the alignment from the catalog itself: every product
is a (title or description, photo) pair. Two small projection heads map the *frozen* text features
(multilingual USE, 512-d) and image features (MobileNetV2, 1280-d) into one 256-d space, trained with a
symmetric InfoNCE loss. Because only the heads train, and on stored vectors, a 10k-product catalog
aligns in about a minute on two CPU cores.

What lifts it above a plain 2-layer InfoNCE projection (measured in ``benchmarks/search_quality.py``):

* **feature standardisation** (and a square root on the ReLU image features, which tames their heavy
  tail) so that no handful of dimensions dominates the first layer;
* **multi-positive targets**: catalogs repeat titles (fashion: 10,106 products, 7,877 distinct titles);
  two products with the same title are not negatives of each other, so they share the target mass;
* a **learned temperature**, large batches (more negatives per step) and a one-cycle cosine schedule;
* descriptions, where a catalog has them, as extra text views of the same photo;
* an **ensemble with CCA**: the final embedding concatenates the InfoNCE projection and a regularised
  CCA projection (each unit length, weighted), so one cosine equals a weighted sum of both similarities.
  CCA is closed form and errs differently, so the blend beats either alone.

When the user points tuwen at a CLIP-style checkpoint (``tuwen align WS --clip FOLDER``) its two towers
are used zero-shot instead and nothing is trained.
"""


from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.util.folders import read_info, write_info
from tuwen.util.runtime import torch_threads
from tuwen.util.vectors import l2

BANK_SIZE = 8192  # training texts kept (projected, float16) to estimate each photo's hubness
FORMAT_VERSION = 1


@dataclass
class AlignConfig:
    """Hyper-parameters of the alignment; the defaults are the ones the benchmark measured."""
    dim: int = 256  # joint space of the InfoNCE heads
    hidden: int = 512
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 0.05
    dropout: float = 0.1
    input_dropout: float = 0.3  # dropout on the standardised inputs: a cheap augmentation against overfitting
    temperature: float = 0.05  # initial value; learned
    cca_dim: int = 256
    cca_reg: float = 0.1
    cca_weight: float = 0.3  # share of the CCA cosine in the ensemble; 0 disables CCA
    csls: float = 0.5  # hubness penalty weight for query_texts() (0 disables); see Aligner.index_images
    csls_k: int = 5
    image_pca: int = 0  # >0: project standardised image features onto this many principal axes first (speed)
    seed: int = 0
    threads: int | None = 1  # one thread: on a shared 2-core box two threads stall at BLAS barriers (3x slower)


@dataclass
class _Standardiser:
    """Per-dimension centring and scaling learnt on the training pairs (optionally after a square root)."""
    mean: np.ndarray
    scale: np.ndarray
    sqrt: bool = False
    components: np.ndarray | None = None  # (dim, k) principal axes applied after scaling, or None

    @classmethod
    def fit(cls, x: np.ndarray, sqrt: bool = False, pca: int = 0) -> _Standardiser:
        x = np.sqrt(np.maximum(x, 0)) if sqrt else x
        std = cls(x.mean(0).astype(np.float32), (x.std(0) + 1e-6).astype(np.float32), sqrt)
        if 0 < pca < x.shape[1]:
            z = (x - std.mean) / std.scale
            _, s, vt = np.linalg.svd(z[:: max(1, len(z) // 20000)], full_matrices=False)
            std.components = (vt[:pca].T / (s[:pca] / np.sqrt(len(z)))).astype(np.float32)  # whitened axes
        return std

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.sqrt(np.maximum(x, 0)) if self.sqrt else x
        z = ((x - self.mean) / self.scale).astype(np.float32)
        return z @ self.components if self.components is not None else z


def fit_cca(x: np.ndarray, y: np.ndarray, dim: int, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Regularised CCA in closed form: whiten each side, SVD of the cross-covariance (x, y already centred).

    Closed form rather than scikit-learn's iterative CCA: 512 components on 8k pairs take seconds, not hours.
    """

    def inverse_sqrt(c: np.ndarray) -> np.ndarray:
        c = c + reg * np.trace(c) / len(c) * np.eye(len(c))
        w, v = np.linalg.eigh(c)
        return (v * np.maximum(w, 1e-12) ** -0.5) @ v.T

    wx, wy = inverse_sqrt(x.T @ x / len(x)), inverse_sqrt(y.T @ y / len(y))
    u, _, vt = np.linalg.svd(wx @ (x.T @ y / len(x)) @ wy, full_matrices=False)
    dim = min(dim, u.shape[1])
    return (wx @ u[:, :dim]).astype(np.float32), (wy @ vt.T[:, :dim]).astype(np.float32)


class Aligner:
    """Text and image projection into one space: ``fit`` on pairs, then ``encode_text`` / ``encode_image``.

    Both encoders return unit-length rows, so a dot product is the cosine the search engine ranks by.
    """

    def __init__(self, config: AlignConfig | None = None) -> None:
        self.config = config or AlignConfig()
        self.text_std: _Standardiser | None = None
        self.image_std: _Standardiser | None = None
        self.heads: dict[str, Any] = {}
        self.cca: tuple[np.ndarray, np.ndarray] | None = None
        self.bank: np.ndarray | None = None  # projected training texts, for the CSLS hubness penalty
        self._numpy_heads: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self.log: list[dict[str, float]] = []
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------ fit
    def fit(self, texts: np.ndarray, images: np.ndarray, groups: Sequence[int] | np.ndarray | None = None,
            extra_texts: np.ndarray | None = None, progress: Callable[[int], None] | None = None) -> Aligner:
        """Learn the projection from ``texts[i]`` ↔ ``images[i]`` pairs.

        ``groups[i]`` marks rows whose text is the same (same title): they are positives of one another.
        ``extra_texts`` (same rows, e.g. descriptions; zero rows = missing) are a second text view of the
        same photos, drawn at random in place of the title for half of the pairs that have one.
        ``progress(n)`` is called after every epoch.
        """
        import torch

        cfg = self.config
        texts, images = np.asarray(texts, np.float32), np.asarray(images, np.float32)
        if len(texts) != len(images) or len(texts) < 2:
            raise ValueError(f"alignment needs at least 2 (text, photo) pairs, got {len(texts)} and {len(images)}")
        self.text_std = _Standardiser.fit(texts)
        self.image_std = _Standardiser.fit(images, sqrt=bool((images >= 0).all()), pca=cfg.image_pca)
        xt, xi = self.text_std(texts), self.image_std(images)
        xe = self.text_std(extra_texts) if extra_texts is not None else None
        has_extra = (np.abs(extra_texts).sum(1) > 0) if extra_texts is not None else None
        if groups is None:
            groups = np.arange(len(texts))
        groups = np.asarray(groups)
        threads = cfg.threads or torch.get_num_threads()
        with torch_threads(threads):
            self._fit_heads(xt, xi, groups, xe, has_extra, progress)
        if cfg.cca_weight > 0:
            self.cca = fit_cca(xt, xi, cfg.cca_dim, cfg.cca_reg)
        _, first = np.unique(groups, return_index=True)  # one text per distinct title
        keep = np.sort(first)[:: max(1, len(first) // BANK_SIZE)][:BANK_SIZE]
        self.bank = self.encode_text(texts[keep]).astype(np.float16)
        return self

    def _fit_heads(self, xt: np.ndarray, xi: np.ndarray, groups: np.ndarray, xe: np.ndarray | None,
                   has_extra: np.ndarray | None, progress: Callable[[int], None] | None) -> None:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        torch.manual_seed(cfg.seed)
        text_head = _head(xt.shape[1], cfg.hidden, cfg.dim, cfg.dropout)
        image_head = _head(xi.shape[1], cfg.hidden, cfg.dim, cfg.dropout)
        log_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))
        params = [*text_head.parameters(), *image_head.parameters(), log_scale]
        optimiser = _AdamW(params, cfg.weight_decay)
        batch = min(cfg.batch_size, len(xt))
        steps_per_epoch = max(1, len(xt) // batch)  # drop the ragged tail: tiny last batches are noisy
        total_steps = cfg.epochs * steps_per_epoch
        t_all, i_all, g_all = torch.from_numpy(xt), torch.from_numpy(xi), torch.from_numpy(groups)
        e_all = torch.from_numpy(xe) if xe is not None else None
        extra_rows = torch.from_numpy(has_extra) if has_extra is not None else None
        generator = torch.Generator().manual_seed(cfg.seed)
        start = time.perf_counter()
        for epoch in range(cfg.epochs):
            text_head.train()
            image_head.train()
            order = torch.randperm(len(xt), generator=generator)
            total = 0.0
            for step in range(steps_per_epoch):
                rows = order[step * batch:(step + 1) * batch]
                t = t_all[rows]
                if e_all is not None and extra_rows is not None:
                    swap = extra_rows[rows] & (torch.rand(len(rows), generator=generator) < 0.5)
                    t = torch.where(swap[:, None], e_all[rows], t)
                xi_b = i_all[rows]
                if cfg.input_dropout > 0:
                    t, xi_b = F.dropout(t, cfg.input_dropout), F.dropout(xi_b, cfg.input_dropout)
                zt = F.normalize(text_head(t), dim=1)
                zi = F.normalize(image_head(xi_b), dim=1)
                logits = zt @ zi.T * log_scale.exp().clamp(max=100.0)
                g = g_all[rows]
                target = (g[:, None] == g[None, :]).float()
                target = target / target.sum(1, keepdim=True)
                loss = (-(target * F.log_softmax(logits, 1)).sum(1).mean()
                        - (target * F.log_softmax(logits.T, 1)).sum(1).mean()) / 2
                for p in params:
                    p.grad = None
                loss.backward()
                optimiser.step(_one_cycle(cfg.lr, len(self.log) * steps_per_epoch + step, total_steps))
                total += float(loss.detach())
            seconds = time.perf_counter() - start
            self.log.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, "seconds": seconds,
                             "temperature": float(1 / log_scale.detach().exp())})
            if progress:
                progress(1)
        text_head.eval()
        image_head.eval()
        self.heads = {"text": text_head, "image": image_head}
        self._numpy_heads = {}

    # --------------------------------------------------------------------------------------------- encode
    def _numpy_head(self, side: str) -> Callable[[np.ndarray], np.ndarray]:
        """The trained head as plain numpy (same maths, exact GELU): a query is one vector, and torch's
        per-call overhead and thread hand-offs cost ~15 ms of a search on a busy 2-core machine."""
        cached = self._numpy_heads.get(side)
        if cached is None:
            from scipy.special import erf

            state = {k: v.detach().numpy().astype(np.float32) for k, v in self.heads[side].state_dict().items()}
            skip = state["skip.weight"].T.copy()
            if "mlp.0.weight" in state:
                w1, b1 = state["mlp.0.weight"].T.copy(), state["mlp.0.bias"]
                w2, b2 = state["mlp.3.weight"].T.copy(), state["mlp.3.bias"]

                def cached(z: np.ndarray) -> np.ndarray:
                    h = z @ w1 + b1
                    h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
                    return h @ w2 + b2 + z @ skip
            else:
                def cached(z: np.ndarray) -> np.ndarray:
                    return z @ skip
            self._numpy_heads[side] = cached
        return cached

    def _encode(self, side: str, x: np.ndarray) -> np.ndarray:
        if not self.heads or self.text_std is None or self.image_std is None:
            raise RuntimeError("the aligner is not fitted; call fit() or load()")
        std = self.text_std if side == "text" else self.image_std
        z = std(np.asarray(x, np.float32).reshape(len(x), -1))
        nce = l2(self._numpy_head(side)(z))
        w = self.config.cca_weight if self.cca is not None else 0.0
        if w <= 0 or self.cca is None:
            out = nce
        else:
            cca = l2(z @ self.cca[0 if side == "text" else 1])
            out = np.hstack([math.sqrt(1 - w) * nce, math.sqrt(w) * cca])
        blank = np.abs(np.asarray(x)).sum(1) == 0
        out[blank] = 0.0  # no text / no photo stays "no signal", never a confident vector
        return out.astype(np.float32)

    def encode_text(self, x: np.ndarray) -> np.ndarray:
        """Unit-length joint-space vectors for frozen text features ``(n, text_dim)``."""
        return self._encode("text", x)

    def encode_image(self, x: np.ndarray) -> np.ndarray:
        """Unit-length joint-space vectors for frozen image features ``(n, image_dim)``."""
        return self._encode("image", x)

    def _image_in_dim(self) -> int:
        assert self.image_std is not None
        comps = self.image_std.components
        return int(comps.shape[1]) if comps is not None else int(len(self.image_std.mean))

    def hubness(self, images_z: np.ndarray, bank_z: np.ndarray) -> np.ndarray:
        """Each photo's mean cosine to its ``csls_k`` nearest texts of a bank (the catalog's own titles).

        Some photos ("hubs") sit close to very many texts and crowd every result list; CSLS
        (Lample et al., 2018) subtracts this local density so a photo must be close to *this* query,
        not just to everything. Measured on fashion: +0.04 R@10 for no training cost.
        """
        k = max(1, min(self.config.csls_k, len(bank_z)))
        out = np.zeros(len(images_z), np.float32)
        for lo in range(0, len(images_z), 2048):
            sims = images_z[lo:lo + 2048] @ bank_z.T
            out[lo:lo + 2048] = np.partition(sims, -k, axis=1)[:, -k:].mean(1)
        return out

    def index_images(self, images: np.ndarray) -> np.ndarray:
        """Photo vectors for a search index: ``[z, -hubness]``; rank by dot product with :meth:`query_texts`
        vectors ``[z, β]``, which equals cosine minus β × hubness — β is chosen per query, 0 turns CSLS off.

        Hubness is measured against the titles the aligner was trained on (kept with the model), so a
        photo's vector depends on that photo and the model only: editing one product re-indexes one row.
        """
        z = self.encode_image(images)
        hub = np.zeros(len(z), np.float32)
        if self.bank is not None and len(self.bank):
            hub = self.hubness(z, self.bank.astype(np.float32))
            hub[np.abs(z).sum(1) == 0] = 0.0
        return np.hstack([z, -hub[:, None]]).astype(np.float32)

    def query_texts(self, texts: np.ndarray, csls: float | None = None) -> np.ndarray:
        """Query vectors matching :meth:`index_images`: ``[z, β]`` with β = ``csls`` (default: the config's).

        CSLS helps when each query has one right photo (held-out title → its photo: R@10 +0.03) and hurts
        attribute queries whose answers are the common, "hubby" products (P@10 -0.03 for "black casual
        shoes for men"), so search sets β itself (``IndexSettings.csls``, default 0).
        """
        z = self.encode_text(texts)
        beta = self.config.csls if csls is None else csls
        return np.hstack([z, np.full((len(z), 1), beta, np.float32)])

    @property
    def out_dim(self) -> int:
        cca = self.cca[0].shape[1] if self.cca is not None and self.config.cca_weight > 0 else 0
        return self.config.dim + cca

    # ------------------------------------------------------------------------------------------ save/load
    def save(self, folder: Path | str) -> None:
        """Weights (torch state dicts + numpy arrays) and a JSON config into a folder no reader sees yet
        (:func:`tuwen.search.align.workspace.align_workspace` swaps it in); reloads in a fresh process."""
        import torch

        if self.text_std is None or self.image_std is None:
            raise RuntimeError("nothing to save: the aligner is not fitted")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"text_mean": self.text_std.mean, "text_scale": self.text_std.scale,
                                         "image_mean": self.image_std.mean, "image_scale": self.image_std.scale}
        if self.cca is not None:
            arrays["cca_text"], arrays["cca_image"] = self.cca
        if self.image_std.components is not None:
            arrays["image_components"] = self.image_std.components
        if self.bank is not None:
            arrays["bank"] = self.bank
        np.savez(folder / "arrays.npz", **arrays)
        torch.save({side: head.state_dict() for side, head in self.heads.items()}, folder / "heads.pt")
        write_info(folder / "align.json", "alignment", FORMAT_VERSION,
                   {"kind": "trained", "config": asdict(self.config), "image_sqrt": self.image_std.sqrt,
                    "in_dims": {"text": int(len(self.text_std.mean)), "image": self._image_in_dim()},
                    "log": self.log, "meta": self.meta})

    @classmethod
    def load(cls, folder: Path | str) -> Aligner:
        import torch

        folder = Path(folder)
        info = read_info(folder / "align.json", "alignment", FORMAT_VERSION, "run `tuwen align WS`")
        known = AlignConfig.__dataclass_fields__
        aligner = cls(AlignConfig(**{k: v for k, v in info["config"].items() if k in known}))
        arrays = np.load(folder / "arrays.npz")
        aligner.text_std = _Standardiser(arrays["text_mean"], arrays["text_scale"])
        aligner.image_std = _Standardiser(arrays["image_mean"], arrays["image_scale"], bool(info["image_sqrt"]),
                                          arrays["image_components"] if "image_components" in arrays else None)
        if "cca_text" in arrays:
            aligner.cca = (arrays["cca_text"], arrays["cca_image"])
        aligner.bank = arrays["bank"] if "bank" in arrays else None
        cfg = aligner.config
        states = torch.load(folder / "heads.pt", weights_only=True)
        dims = info["in_dims"]
        aligner.heads = {side: _head(dims[side], cfg.hidden, cfg.dim, cfg.dropout) for side in ("text", "image")}
        for side, head in aligner.heads.items():
            head.load_state_dict(states[side])
            head.eval()
        aligner.log, aligner.meta = info.get("log", []), info.get("meta", {})
        return aligner


def _one_cycle(peak: float, step: int, total: int, warmup: float = 0.1) -> float:
    """Learning rate of a one-cycle schedule: linear warm-up for 10% of the steps, then cosine down to ~0."""
    rise = max(1, int(total * warmup))
    if step < rise:
        return peak * (0.04 + 0.96 * step / rise)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - rise) / max(1, total - rise))))


class _AdamW:
    """AdamW in a dozen lines. ``torch.optim`` would do, but building any torch optimiser imports
    ``torch._dynamo`` (about 5-10 s here), which would dominate aligning a small catalog."""

    def __init__(self, params: Sequence[Any], weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        import torch

        self.params = list(params)
        self.weight_decay, self.betas, self.eps = weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, lr: float) -> None:
        import torch

        self.t += 1
        b1, b2 = self.betas
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                if p.grad is None:
                    continue
                if p.dim() > 1:  # decay weights, not biases or the temperature
                    p.mul_(1 - lr * self.weight_decay)
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v / (1 - b2 ** self.t)).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1 ** self.t))


def _head(d_in: int, hidden: int, d_out: int, dropout: float) -> Any:
    """Two-layer MLP plus a linear shortcut: the shortcut keeps what a linear map (CCA-like) already gets."""
    import torch.nn as nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = (nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))
                        if hidden > 0 else None)
            self.skip = nn.Linear(d_in, d_out, bias=False)

        def forward(self, x: Any) -> Any:
            return self.skip(x) if self.mlp is None else self.mlp(x) + self.skip(x)

    return Head()


# ------------------------------------------------------------------------------------- retrieval metrics


def retrieval_metrics(queries: np.ndarray, gallery: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k and MRR when query ``i``'s only correct answer is gallery item ``i`` (ties count against)."""
    scores = l2(queries) @ l2(gallery).T
    rank = (scores > np.diag(scores)[:, None]).sum(1)
    out = {f"R@{k}": float((rank < k).mean()) for k in ks}
    out["MRR"] = float((1.0 / (rank + 1)).mean())
    return out
