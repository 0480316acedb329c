"""Fusion strategies: how the projected modality vectors of one product become one vector (or one prediction).

Every module here takes the same input: ``tokens`` of shape ``(batch, modalities, dim)``, one
projected vector per modality input (title text, description text, photo, tabular attributes…),
and ``mask`` of shape ``(batch, modalities)``, True where the product *has* that input. A product
without a photo or with an empty title therefore still gets a prediction from what it has: every
strategy ignores masked tokens instead of reading zeros as evidence.

All strategies return a ``(batch, dim)`` vector, except :class:`LateFusion`, which combines the
*predictions* of per-modality heads (the model calls :meth:`LateFusion.combine` for it). Keeping
one signature is what lets the ablation swap strategies by name and nothing else.

``weights(tokens, mask)`` returns the per-sample share of each modality for the strategies
that have one (weighted, gated, attention): ``tuwen predict`` prints them as contributions.
"""

from __future__ import annotations

import torch
from torch import nn

from tuwen.choices import FUSIONS  # the names live there, so `tuwen --help` lists them without torch

NEG_INF = -1e4  # large but finite, so an all-masked row gives uniform weights instead of NaN


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over modalities that are present; a row with none present gets all zeros."""
    weights = torch.softmax(scores.masked_fill(~mask, NEG_INF), dim=-1)
    return weights * mask.any(dim=-1, keepdim=True)


class Fusion(nn.Module):
    """Base class: holds the number of modality inputs and the token width."""

    late = False

    def __init__(self, n_inputs: int, dim: int):
        super().__init__()
        self.n_inputs = n_inputs
        self.dim = dim

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Per-sample modality weights (rows sum to 1 over present inputs), or None when the strategy has none."""
        return None


class ConcatFusion(Fusion):
    """Early fusion: concatenate the tokens (missing ones as zeros plus a presence flag) and mix with a layer.

    The presence flags let the layer learn that a zero block means "absent", not "all features zero".
    """

    def __init__(self, n_inputs: int, dim: int, dropout: float = 0.1):
        super().__init__(n_inputs, dim)
        self.mix = nn.Sequential(nn.Linear(n_inputs * dim + n_inputs, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        flat = (tokens * mask.unsqueeze(-1)).flatten(1)
        return self.mix(torch.cat([flat, mask.to(tokens.dtype)], dim=1))


class MeanFusion(Fusion):
    """Average of the present tokens: no parameters, robust, and the natural choice when inputs are redundant."""

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(tokens.dtype)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        return (tokens * weights.unsqueeze(-1)).sum(dim=1)

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        present = mask.to(tokens.dtype)
        return present / present.sum(dim=1, keepdim=True).clamp(min=1.0)


class WeightedFusion(Fusion):
    """One learned weight per modality (the same for every product), renormalised over the present ones."""

    def __init__(self, n_inputs: int, dim: int):
        super().__init__(n_inputs, dim)
        self.logits = nn.Parameter(torch.zeros(n_inputs))

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_softmax(self.logits.expand(mask.shape[0], -1), mask)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (tokens * self.weights(tokens, mask).unsqueeze(-1)).sum(dim=1)


class GatedFusion(Fusion):
    """A per-sample gate: a small network reads all tokens and decides how much each modality counts here.

    Unlike :class:`WeightedFusion`, a product whose title says nothing ("Granger HW") can lean on its
    photo while another leans on its text; the gate values are interpretable contributions.
    """

    def __init__(self, n_inputs: int, dim: int, dropout: float = 0.1):
        super().__init__(n_inputs, dim)
        self.gate = nn.Sequential(nn.Linear(n_inputs * dim + n_inputs, dim), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(dim, n_inputs))

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        flat = (tokens * mask.unsqueeze(-1)).flatten(1)
        return masked_softmax(self.gate(torch.cat([flat, mask.to(tokens.dtype)], dim=1)), mask)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (tokens * self.weights(tokens, mask).unsqueeze(-1)).sum(dim=1)


class AttentionFusion(Fusion):
    """A tiny transformer over one token per modality plus a learned [CLS] token, which is the output.

    Learned modality embeddings tell the layers which token is which; missing modalities are
    key-padding-masked so attention never reads them. The [CLS] token is always present, so a
    product with no inputs at all still gets a (prior-like) output rather than NaN.
    """

    def __init__(self, n_inputs: int, dim: int, heads: int = 4, layers: int = 1, dropout: float = 0.1):
        super().__init__(n_inputs, dim)
        heads = heads if dim % heads == 0 else 1
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality = nn.Parameter(torch.randn(1, n_inputs, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self._last_attention: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch = tokens.shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), tokens + self.modality], dim=1)
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        return self.norm(self.encoder(x, src_key_padding_mask=padding)[:, 0])

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of [CLS] on each modality in the first layer (heads averaged), renormalised over modalities."""
        batch = tokens.shape[0]
        layer = self.encoder.layers[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), tokens + self.modality], dim=1)
        x = layer.norm1(x)
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        _, attention = layer.self_attn(x[:, :1], x, x, key_padding_mask=padding, need_weights=True,
                                       average_attn_weights=True)
        shares = attention[:, 0, 1:] * mask
        return shares / shares.sum(dim=1, keepdim=True).clamp(min=1e-9)


class LateFusion(Fusion):
    """Late fusion: each modality has its own head; their predictions are combined.

    ``mode="average"`` averages the present heads' outputs (probabilities' logits for classes, values
    for regression); ``mode="stacked"`` learns one weight per (modality, output) and renormalises
    over present modalities, a differentiable form of stacking. The model owns the heads; this module
    only combines, via :meth:`combine`.
    """

    late = True

    def __init__(self, n_inputs: int, dim: int, mode: str = "stacked"):
        super().__init__(n_inputs, dim)
        if mode not in {"average", "stacked"}:
            raise ValueError(f"late fusion mode must be 'average' or 'stacked', not {mode!r}")
        self.mode = mode
        self.logits = nn.Parameter(torch.zeros(n_inputs))

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.mode == "average":
            present = mask.to(tokens.dtype)
            return present / present.sum(dim=1, keepdim=True).clamp(min=1.0)
        return masked_softmax(self.logits.expand(mask.shape[0], -1), mask)

    def combine(self, outputs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``outputs``: (batch, modalities, out) per-modality predictions → (batch, out)."""
        return (outputs * self.weights(tokens, mask).unsqueeze(-1)).sum(dim=1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The fused *representation* of late fusion is the weighted token mean; predictions use combine().
        return (tokens * self.weights(tokens, mask).unsqueeze(-1)).sum(dim=1)


def make_fusion(name: str, n_inputs: int, dim: int, dropout: float = 0.1) -> Fusion:
    """Build a fusion strategy by name (``late:average`` / ``late:stacked`` pick the late-fusion mode)."""
    base, _, option = name.partition(":")
    if base == "concat":
        return ConcatFusion(n_inputs, dim, dropout)
    if base == "mean":
        return MeanFusion(n_inputs, dim)
    if base == "weighted":
        return WeightedFusion(n_inputs, dim)
    if base == "gated":
        return GatedFusion(n_inputs, dim, dropout)
    if base == "attention":
        return AttentionFusion(n_inputs, dim, dropout=dropout)
    if base == "late":
        return LateFusion(n_inputs, dim, option or "stacked")
    raise ValueError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")


def modality_dropout(mask: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly hide present modalities while training (keeping at least one per sample).

    Why: a model that always sees every modality learns to lean on the easiest one and fails when it
    is missing at prediction time; hiding inputs teaches every modality to carry the task alone.
    """
    if p <= 0:
        return mask
    keep = torch.rand(mask.shape, generator=generator, device=mask.device) >= p
    dropped = mask & keep
    # Rows that lost everything get back one of their present modalities, chosen at random.
    empty = ~dropped.any(dim=1) & mask.any(dim=1)
    if empty.any():
        scores = torch.rand(mask.shape, generator=generator, device=mask.device).masked_fill(~mask, -1.0)
        pick = torch.zeros_like(mask)
        pick[torch.arange(mask.shape[0], device=mask.device), scores.argmax(dim=1)] = True
        dropped = torch.where(empty.unsqueeze(1), pick & mask, dropped)
    return dropped
