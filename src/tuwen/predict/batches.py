"""A FeatureSet's rows as the tensors a network reads: dense blocks as matrices, sparse TF-IDF rows as
EmbeddingBag (indices, offsets, weights) triples, plus the present-input mask."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tuwen.predict.features import FeatureSet

Batch = tuple[list[Any], torch.Tensor]


def make_batch(features: FeatureSet, rows: np.ndarray | None = None, device: str | torch.device = "cpu") -> Batch:
    """Tensors for some rows of a FeatureSet, in the model's input order (sparse inputs as EmbeddingBag triples)."""
    rows = np.arange(len(features)) if rows is None else np.asarray(rows)
    inputs: list[Any] = []
    for spec in features.specs:
        if spec.kind == "sparse":
            part = features.sparse[spec.name][rows]
            inputs.append((torch.from_numpy(part.indices.astype(np.int64)).to(device),
                           torch.from_numpy(part.indptr[:-1].astype(np.int64)).to(device),
                           torch.from_numpy(part.data.astype(np.float32)).to(device)))
        else:
            inputs.append(torch.from_numpy(features.dense[spec.name][rows]).to(device))
    return inputs, torch.from_numpy(features.mask[rows]).to(device)
