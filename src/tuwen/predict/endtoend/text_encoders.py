"""Trainable text encoders over token ids (from :class:`tuwen.predict.endtoend.tokenizer.Tokenizer`).

Each maps a ``(batch, length)`` id matrix (0 = padding) to one ``(batch, hidden)`` vector, the
same shape a frozen-feature projection produces, so it slots into the fusion as one modality token.

* :class:`TextGRU`: embedding → bidirectional GRU → masked mean + max pooling → linear.
* :class:`TextCNN`: embedding → 1-D convolutions of widths 1, 2, 3 (uni-, bi-, tri-gram detectors)
  → masked max pooling → linear. Faster than the GRU on a CPU and as good on short titles.

While training, whole tokens are replaced by "unknown" with probability ``word_dropout``, so the
model does not lean on one memorised word and copes with words it has never seen.
"""

from __future__ import annotations

import torch
from torch import nn

from tuwen.predict.endtoend.tokenizer import PAD, UNK


def _trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop trailing all-padding columns (batches of short titles run a short sequence)."""
    ids = ids.long()
    longest = int((ids != PAD).sum(dim=1).max()) if ids.numel() else 0
    return ids[:, : max(1, longest)]


class _TokenEncoder(nn.Module):
    def __init__(self, vocab: int, embed: int, word_dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()
        self.word_dropout = word_dropout

    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = _trim(ids)
        mask = ids != PAD
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(ids.shape, device=ids.device) < self.word_dropout) & mask
            ids = ids.masked_fill(drop, UNK)
        return self.embedding(ids), mask


class TextGRU(_TokenEncoder):
    """Bidirectional GRU over word embeddings, masked mean + max pooled."""

    def __init__(self, vocab: int, hidden: int, dropout: float = 0.3, embed: int = 128, units: int = 128,
                 word_dropout: float = 0.1) -> None:
        super().__init__(vocab, embed, word_dropout)
        self.gru = nn.GRU(embed, units, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout / 2)
        self.out = nn.Sequential(nn.Linear(4 * units, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x, mask = self.embed(ids)
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(x), lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=x.shape[1])
        valid = mask.unsqueeze(-1)
        mean = (states * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
        top = states.masked_fill(~valid, -1e4).max(dim=1).values * mask.any(dim=1, keepdim=True)
        return self.out(torch.cat([mean, top], dim=1))


class TextCNN(_TokenEncoder):
    """1-D convolutions of widths 1-3 over word embeddings, masked max pooled."""

    def __init__(self, vocab: int, hidden: int, dropout: float = 0.3, embed: int = 128, channels: int = 128,
                 widths: tuple[int, ...] = (1, 2, 3), word_dropout: float = 0.1) -> None:
        super().__init__(vocab, embed, word_dropout)
        self.convs = nn.ModuleList(nn.Conv1d(embed, channels, w, padding=w - 1) for w in widths)
        self.dropout = nn.Dropout(dropout / 2)
        self.out = nn.Sequential(nn.Linear(channels * len(widths), hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Dropout(dropout))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x, mask = self.embed(ids)
        x = self.dropout(x).transpose(1, 2)  # (batch, embed, length)
        pooled = []
        for conv in self.convs:
            y = torch.relu(conv(x))[:, :, : mask.shape[1]]  # window starting at each token
            pooled.append(y.masked_fill(~mask.unsqueeze(1), 0.0).max(dim=2).values)
        return self.out(torch.cat(pooled, dim=1))


TEXT_ENCODERS = {"gru": TextGRU, "cnn": TextCNN}
