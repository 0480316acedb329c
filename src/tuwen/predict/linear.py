"""A regularised linear model over every input, trained by the task's own loss: logistic regression for
labels, (smooth-L1) linear regression for prices, one softmax per head for tags.

Why every model carries one: on targets that one word of the title names ("Navy Blue", "Kurta"),
logistic regression on TF-IDF is as good as the neural text network or better (fashion colour: 0.924 vs
0.923 macro-F1; articleType 0.977 vs 0.969), and its errors differ from the networks'. It is the baseline
every practitioner fits first; inside :class:`tuwen.predict.networks.ExpertBlend` it is one more member the
validation blend weighs (never a stand-alone pick: a fused model's linear member over every input is
early concatenation, which lost to the blends on H&M names), so a model is an ensemble of
differently-built members. Fitted beside the networks it costs little wall time: full-batch L-BFGS,
the L2 strength picked on the validation rows.

Inputs are put on one footing before one penalty applies to all: TF-IDF rows are already unit-length;
each dense block (USE, MobileNetV2, colour histogram) is standardised with the training rows' statistics
and divided by the square root of its width, so its rows have unit length on average too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureSet
from tuwen.predict.tasks import Task

# L2 strengths tried, times 1 / training rows (so 1.0 is scikit-learn's C=1 on the mean loss), strongest first:
# each fit starts from the previous one's weights, the usual regularisation path.
L2_PATH = (1.0, 0.1, 0.01)


LINEAR = "linear"  # its name among a fused model's experts, and its config's "kind"


class LinearModel(nn.Module):
    """Per input a (dim × outputs) weight matrix, applied as a bag of weighted rows for sparse TF-IDF, summed
    over the inputs an item has, plus a bias. Same call signature as the networks, so an expert blend can hold it.

    The weights start at zero and are made without torch's random number generator: the model is built and
    fitted in a thread beside a network's training loop, which must draw exactly the numbers it would alone.
    """

    def __init__(self, inputs: Sequence[dict[str, Any]], heads: dict[str, int], l2: float = 0.0, kind: str = LINEAR,
                 dense: str = "standardise"):
        super().__init__()
        # dense: "standardise" (training statistics, see fit_normalisation) or "l2" (each row scaled to unit length,
        # as the scikit-learn baselines of predict.training.plain see dense vectors)
        self.config = {"kind": kind, "inputs": [dict(i) for i in inputs], "heads": dict(heads), "l2": l2,
                       "dense": dense}
        self.input_names = [i["name"] for i in inputs]
        self.head_names = list(heads)
        width = sum(heads.values())
        self.sparse = [i["kind"] == "sparse" for i in inputs]
        self.parts = nn.ParameterList(nn.Parameter(torch.zeros(i["dim"], width)) for i in inputs)
        self.bias = nn.Parameter(torch.zeros(width))
        for k, i in enumerate(inputs):  # dense inputs' standardisation (identity for sparse ones)
            dim = i["dim"] if i["kind"] != "sparse" else 0
            self.register_buffer(f"mean_{k}", torch.zeros(dim))
            self.register_buffer(f"scale_{k}", torch.ones(dim))

    def fit_normalisation(self, features: FeatureSet) -> None:
        """Standardise each dense block on the training rows where it is present, then scale it to unit length."""
        for k, name in enumerate(self.input_names):
            if name in features.dense:
                matrix = features.dense[name][features.mask[:, k]]
                if len(matrix):
                    getattr(self, f"mean_{k}").copy_(torch.from_numpy(matrix.mean(axis=0)))
                    std = torch.from_numpy(matrix.std(axis=0)).clamp(min=1e-3)
                    getattr(self, f"scale_{k}").copy_(std * math.sqrt(matrix.shape[1]))

    def forward(self, inputs: list[Any], mask: torch.Tensor) -> dict[str, Any]:
        total = self.bias.expand(mask.shape[0], -1)
        for k, (weight, x) in enumerate(zip(self.parts, inputs, strict=True)):
            if self.sparse[k]:
                indices, offsets, values = x
                out = F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values)
            elif self.config["dense"] == "l2":
                out = (x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)) @ weight
            else:
                out = ((x - getattr(self, f"mean_{k}")) / getattr(self, f"scale_{k}")) @ weight
            total = total + out * mask[:, k:k + 1].to(out.dtype)
        outputs = total.split(list(self.config["heads"].values()), dim=-1)
        return {"outputs": dict(zip(self.head_names, outputs, strict=True)), "mask": mask}

    def penalty(self) -> torch.Tensor:
        return sum((weight ** 2).sum() for weight in self.parts)  # type: ignore[return-value]


def fit_linear(inputs: Sequence[dict[str, Any]], task: Task, train: FeatureSet, y_train: dict[str, np.ndarray],
               val: FeatureSet, y_val: dict[str, np.ndarray], max_iter: int = 60, device: str = "cpu"
               ) -> tuple[LinearModel, dict[str, Any]]:
    """Fit along :data:`L2_PATH` by full-batch L-BFGS on the task's loss; keep the strength that scores best on
    the validation rows (the task's main metric). Returns the model and ``{"l2": ..., "validation": {...}}``.

    It leaves torch's thread count alone (the caller sets it: it may be fitting beside a training loop)."""
    sign = 1.0 if task.higher_is_better else -1.0
    model = LinearModel(inputs, task.heads())
    model.fit_normalisation(train)
    model.to(device)
    x_train, mask_train = make_batch(train, None, device)
    x_val, mask_val = make_batch(val, None, device)
    targets = {h: torch.from_numpy(v).to(device) for h, v in y_train.items()}
    best: tuple[float, float, dict[str, torch.Tensor]] | None = None
    scores: dict[str, float] = {}
    for strength in L2_PATH:
        l2 = strength / max(len(train), 1)
        _minimise(model, task, x_train, mask_train, targets, l2, max_iter)
        model.eval()
        with torch.no_grad():
            outputs = model(x_val, mask_val)["outputs"]
        predictions = {h: task.transform(h, o) for h, o in outputs.items()}
        value = task.metrics(predictions, y_val).get(task.primary, math.nan)
        scores[f"{strength:g}/n"] = round(value, 4)
        score = sign * value if math.isfinite(value) else -math.inf
        if best is None or score > best[0]:
            best = (score, l2, {k: v.clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[2])
    model.config["l2"] = best[1]
    model.eval()
    return model, {"l2": best[1], "validation": scores}


def _minimise(model: LinearModel, task: Task, inputs: list[Any], mask: torch.Tensor,
              targets: dict[str, torch.Tensor], l2: float, max_iter: int) -> None:
    """Mean task loss over every head + ``l2 / 2 · ‖W‖²`` (bias unpenalised), by L-BFGS with a line search."""
    model.train()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=10,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = task.loss(model(inputs, mask)["outputs"], targets) + 0.5 * l2 * model.penalty()
        loss.backward()
        return loss

    optimizer.step(closure)
