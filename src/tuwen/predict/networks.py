"""MultimodalModel = per-modality projection → fusion → task head(s); TuwenModel = that network plus
everything needed to use it on new products (features, label encoders, neighbours), saved as a folder.

The network works on *frozen* features (the fast path): each input (``title@tfidf_sparse``,
``image@mobilenet_v2``…) is standardised and projected to one token of width ``hidden``; a fusion
strategy from :mod:`tuwen.predict.fusion` combines the tokens; one linear head per task output reads the
result. Every input also has its own small *unimodal* head. Those heads are what late fusion
combines, and for the other strategies they add an auxiliary loss (``aux_weight``): each modality
must be predictive alone, which keeps one strong modality from drowning the others and keeps
predictions sound when a modality is missing.

A saved model folder holds ``config.json`` (task with label encoders, inputs, network
hyper-parameters, split, metrics), ``features.json`` (the fitted TF-IDF vocabularies / tabular
categories), ``weights.pt`` (the state dict) and ``neighbours.npz`` (fused vectors of the training
items, for "nearest training products"). It reloads in a fresh process and predicts identically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureSet
from tuwen.predict.fusion import NEG_INF, make_fusion, masked_softmax, modality_dropout
from tuwen.predict.linear import LINEAR, LinearModel
from tuwen.predict.tasks import Task

FORMAT_VERSION = 1


class DenseProjection(nn.Module):
    """Standardise (statistics from the training rows, stored with the weights) → linear → norm → GELU."""

    def __init__(self, dim: int, hidden: int, dropout: float, input_dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.net = nn.Sequential(nn.Dropout(input_dropout), nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Dropout(dropout))

    def fit(self, matrix: np.ndarray) -> None:
        if len(matrix):
            self.mean.copy_(torch.from_numpy(matrix.mean(axis=0)))
            self.scale.copy_(torch.from_numpy(matrix.std(axis=0)).clamp(min=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale)


class SparseProjection(nn.Module):
    """A sparse linear layer over TF-IDF (an EmbeddingBag weighted by the TF-IDF values) → norm → GELU.

    EmbeddingBag touches only the n-grams a product has, so a 60k-term vocabulary costs little.
    Input dropout drops n-grams, the sparse analogue of dropout on dense features.
    """

    def __init__(self, dim: int, hidden: int, dropout: float, input_dropout: float):
        super().__init__()
        # sparse=True: a step updates only the n-grams in the batch (SparseAdam, see training.loop), not the
        # whole vocabulary x hidden table, which is what makes TF-IDF inputs cheap to train on a CPU.
        self.bag = nn.EmbeddingBag(dim, hidden, mode="sum", sparse=True)
        nn.init.normal_(self.bag.weight, std=0.1)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.input_dropout = input_dropout
        self.post = nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        indices, offsets, values = x
        values = F.dropout(values, self.input_dropout, self.training)
        return self.post(self.bag(indices, offsets, per_sample_weights=values) + self.bias)


class MultimodalModel(nn.Module):
    """Per-input projections → fusion → one head per task output, plus per-input unimodal heads."""

    def __init__(self, inputs: Sequence[dict[str, Any]], heads: dict[str, int], fusion: str = "gated",
                 hidden: int = 256, dropout: float = 0.2, input_dropout: float = 0.1,
                 modality_dropout: float = 0.15, aux_weight: float = 0.5, wide: bool = False):
        super().__init__()
        self.config = {"inputs": [dict(i) for i in inputs], "heads": dict(heads), "fusion": fusion, "hidden": hidden,
                       "dropout": dropout, "input_dropout": input_dropout, "modality_dropout": modality_dropout,
                       "aux_weight": aux_weight, "wide": wide}
        self.input_names = [i["name"] for i in inputs]
        self.projections = nn.ModuleList(
            SparseProjection(i["dim"], hidden, dropout, input_dropout) if i["kind"] == "sparse"
            else DenseProjection(i["dim"], hidden, dropout, input_dropout) for i in inputs)
        self.fusion = make_fusion(fusion, len(inputs), hidden, dropout)
        self.head_names = list(heads)
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, n)) for n in heads.values())
        # Unimodal heads, one (hidden → out) map per input and head, applied in one einsum.
        n_inputs = len(inputs)
        self.unimodal_weight = nn.ParameterList(
            nn.Parameter(torch.randn(n_inputs, hidden, n) / hidden ** 0.5) for n in heads.values())
        self.unimodal_bias = nn.ParameterList(nn.Parameter(torch.zeros(n_inputs, n)) for n in heads.values())
        self.modality_dropout = modality_dropout
        self.aux_weight = aux_weight
        # Output blend (see fit_blend): per head, logits over [fused, input 1..M]; off until fitted.
        self.register_buffer("blend", torch.zeros(len(heads), 1 + n_inputs))
        self.register_buffer("blend_on", torch.zeros((), dtype=torch.bool))
        # Wide part (``wide=True``): a linear map from each sparse TF-IDF input straight to the outputs, added to
        # that input's unimodal head and to the fused output (Wide & Deep). Why: on labels that one word of the
        # title names ("Navy Blue", "Kurta"), logistic regression on TF-IDF beat the projected (deep) path; the
        # wide part is that logistic regression, trained jointly. Starts at zero, so it only adds what it learns.
        self.wide_inputs = [k for k, i in enumerate(inputs) if wide and i["kind"] == "sparse"]
        self.wide = nn.ModuleList(nn.EmbeddingBag(inputs[k]["dim"], sum(heads.values()), mode="sum", sparse=True)
                                  for k in self.wide_inputs)
        for bag in self.wide:
            nn.init.zeros_(bag.weight)

    @property
    def fusion_name(self) -> str:
        return str(self.config["fusion"])

    def tokens(self, inputs: list[Any]) -> torch.Tensor:
        return torch.stack([projection(x) for projection, x in zip(self.projections, inputs, strict=True)], dim=1)

    def forward(self, inputs: list[Any], mask: torch.Tensor) -> dict[str, Any]:
        """Returns fused outputs per head, unimodal outputs per head (batch, inputs, out) and the mask used."""
        if self.training:
            mask = modality_dropout(mask, self.modality_dropout)
        tokens = self.tokens(inputs)
        unimodal = [torch.einsum("bmh,mho->bmo", tokens, w) + b
                    for w, b in zip(self.unimodal_weight, self.unimodal_bias, strict=True)]
        wide = self.wide_outputs(inputs, mask)
        if wide is not None:
            unimodal = [u + w for u, w in zip(unimodal, wide, strict=True)]
        if self.fusion.late:
            outputs = [self.fusion.combine(u, tokens, mask) for u in unimodal]  # type: ignore[attr-defined]
            fused = self.fusion(tokens, mask)
        else:
            fused = self.fusion(tokens, mask)
            outputs = [head(fused) for head in self.heads]
            if wide is not None:
                outputs = [o + w.sum(dim=1) for o, w in zip(outputs, wide, strict=True)]
        if bool(self.blend_on) and not self.training:
            outputs = [self._blend(self.blend[i], o, u, mask) for i, (o, u) in enumerate(zip(outputs, unimodal,
                                                                                               strict=True))]
        return {"outputs": dict(zip(self.head_names, outputs, strict=True)),
                "unimodal": dict(zip(self.head_names, unimodal, strict=True)), "mask": mask, "fused": fused}

    def wide_outputs(self, inputs: list[Any], mask: torch.Tensor) -> list[torch.Tensor] | None:
        """Per head, the wide part's (batch, inputs, out) logits: zero for dense or absent inputs."""
        if not self.wide_inputs:
            return None
        batch, width = mask.shape[0], sum(self.config["heads"].values())
        wide = torch.zeros(batch, len(self.input_names), width, device=mask.device)
        for bag, k in zip(self.wide, self.wide_inputs, strict=True):
            indices, offsets, values = inputs[k]
            values = F.dropout(values, self.config["input_dropout"], self.training)
            wide[:, k] = bag(indices, offsets, per_sample_weights=values) * mask[:, k:k + 1]
        return list(wide.split(list(self.config["heads"].values()), dim=-1))

    @staticmethod
    def _blend(logits: torch.Tensor, fused: torch.Tensor, unimodal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convex combination of the fused output and the present inputs' unimodal outputs."""
        present = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        weights = masked_softmax(logits.expand(mask.shape[0], -1), present)
        return weights[:, :1] * fused + (weights[:, 1:].unsqueeze(-1) * unimodal).sum(dim=1)

    def fit_blend(self, inputs: list[Any], mask: torch.Tensor, targets: dict[str, torch.Tensor], loss: Any,
                  steps: int = 200) -> list[list[float]]:
        """Fit the output blend on held-out (validation) items, then switch it on.

        Why: heads trained on the training rows are over-confident there, so how much to trust the
        fused head versus each modality's own head can only be judged on rows the network has not
        fitted. With the unimodal heads among the candidates, the blend can fall back towards the
        best single modality when fusing does not help on held-out data; it is 1 + M numbers per
        head, so even a 100-item validation set pins it down. ``loss(head, output, target)``
        returns per-sample losses and a validity mask (the task's own loss).
        """
        self.eval()
        self.blend_on.fill_(False)
        with torch.no_grad():
            result = self(inputs, mask)
        fitted = []
        for index, head in enumerate(self.head_names):
            fused, unimodal = result["outputs"][head], result["unimodal"][head]
            self.blend[index] = fit_blend_logits(
                1 + len(self.input_names), lambda w: self._blend(w, fused, unimodal, mask),  # noqa: B023
                lambda output: loss(head, output, targets[head]), steps)  # noqa: B023
            fitted.append(torch.softmax(self.blend[index], dim=0).tolist())
        self.blend_on.fill_(True)
        return fitted

    def weights(self, inputs: list[Any], mask: torch.Tensor) -> torch.Tensor | None:
        """The fusion's per-sample modality weights (gated, weighted, attention, late), if it has any."""
        return self.fusion.weights(self.tokens(inputs), mask)

    def fit_normalisation(self, features: FeatureSet) -> None:
        """Input statistics from the training rows where the input is present."""
        for column, (name, projection) in enumerate(zip(self.input_names, self.projections, strict=True)):
            if isinstance(projection, DenseProjection):
                projection.fit(features.dense[name][features.mask[:, column]])


def fit_blend_logits(members: int, combine: Callable[[torch.Tensor], torch.Tensor],
                     loss: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], steps: int) -> torch.Tensor:
    """Blend logits over ``members`` (softmax → convex weights), fitted by Adam on the task's mean loss.

    ``combine(logits)`` blends the members' outputs; ``loss(output)`` gives per-row losses and which rows
    count. Shared by the in-network blend (fused vs unimodal heads) and the expert blend (fused network vs
    single-modality networks): both are a handful of numbers per head, fitted on validation rows.
    """
    logits = torch.zeros(members, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        losses, valid = loss(combine(logits))
        value = losses.sum() / valid.sum().clamp(min=1)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return logits.detach()


class EnsembleModel(nn.Module):
    """Several MultimodalModels trained from different seeds, their outputs averaged.

    Why: on a catalog of a few hundred products one network's test score moves by ±2 points with
    its seed alone; averaging a handful removes most of that variance (and usually gains a point).
    Small catalogs are also where training several costs seconds.
    """

    def __init__(self, members: Sequence[MultimodalModel]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = {**members[0].config, "ensemble": len(members)}

    @property
    def head_names(self) -> list[str]:
        return self.members[0].head_names

    @property
    def input_names(self) -> list[str]:
        return self.members[0].input_names

    @property
    def fusion_name(self) -> str:
        return self.members[0].fusion_name

    def forward(self, inputs: list[Any], mask: torch.Tensor) -> dict[str, Any]:
        results = [member(inputs, mask) for member in self.members]
        mean = lambda key: {h: torch.stack([r[key][h] for r in results]).mean(0) for h in self.head_names}  # noqa: E731
        return {"outputs": mean("outputs"), "unimodal": mean("unimodal"), "mask": results[0]["mask"],
                "fused": torch.stack([r["fused"] for r in results]).mean(0)}

    def weights(self, inputs: list[Any], mask: torch.Tensor) -> torch.Tensor | None:
        weights = [member.weights(inputs, mask) for member in self.members]
        return None if weights[0] is None else torch.stack(weights).mean(0)  # type: ignore[arg-type]


class ExpertBlend(nn.Module):
    """A fused network plus the single-modality networks ("experts"), outputs blended with weights fitted on
    validation rows, falling back to the best expert when fusing does not pay there.

    Why: a fused network can end up below its best modality (measured: H&M with descriptions,
    naive early concatenation loses to text alone), because the stronger modality's signal gets
    diluted or overfitted in a larger network. Keeping the unimodal networks inside the fused
    model makes "text alone" a point of the fused model's own search space: :meth:`fit_blend`
    learns one convex weight per (head, member) on the validation rows, where no member was
    fitted, and if that blend still scores below an expert alone on the task's main validation
    metric, the model *is* that expert. Averaging differently-built networks is also an
    ensemble, which is most of the gain where modalities complement each other. Besides the
    single-modality networks, training adds a regularised linear model over every input
    (:mod:`tuwen.predict.linear`), the most differently-built member of all. An expert whose inputs are
    all missing for an item (no photo) gets no weight for that item.
    """

    def __init__(self, fused: nn.Module, experts: Sequence[nn.Module], expert_inputs: Sequence[Sequence[int]],
                 expert_names: Sequence[str]):
        super().__init__()
        self.fused = fused
        self.experts = nn.ModuleList(experts)
        self.expert_inputs = [list(map(int, ix)) for ix in expert_inputs]
        self.expert_names = list(expert_names)
        for expert in self.experts:
            expert.requires_grad_(False)
            expert.eval()  # frozen: its dropout never runs
        self.config = {**fused.config,  # type: ignore[dict-item]
                       "experts": [{"name": n, "inputs": ix, "network": e.config}  # type: ignore[dict-item]
                                   for n, ix, e in zip(self.expert_names, self.expert_inputs, experts, strict=True)]}
        self.register_buffer("blend", torch.zeros(len(self.head_names), 1 + len(self.experts)))
        self.blend[:, 1:] = NEG_INF  # the fused network alone until fit_blend

    @property
    def head_names(self) -> list[str]:
        return self.fused.head_names  # type: ignore[return-value]

    @property
    def input_names(self) -> list[str]:
        return self.fused.input_names  # type: ignore[return-value]

    @property
    def fusion_name(self) -> str:
        return self.fused.fusion_name  # type: ignore[return-value]

    def member_outputs(self, inputs: list[Any], mask: torch.Tensor, every: bool = False
                       ) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]], torch.Tensor]:
        """The fused network's result, each expert's outputs, and which members have inputs (batch, 1 + experts).

        An expert the fitted blend gives no weight is not run (``every``: run them all, to fit the blend):
        most fitted blends keep one or two members, and a prediction with contributions runs the model once
        per modality. It counts as absent, so an item missing its chosen expert's inputs gets the fused answer.
        """
        result = self.fused(inputs, mask)
        used = (self.blend > NEG_INF / 2).any(dim=0).tolist()
        expert_outputs, present = [], [torch.ones_like(mask[:, 0])]
        for e, (expert, ix) in enumerate(zip(self.experts, self.expert_inputs, strict=True)):
            if not (every or used[1 + e]):
                expert_outputs.append({h: torch.zeros_like(o) for h, o in result["outputs"].items()})
                present.append(torch.zeros_like(mask[:, 0]))
                continue
            sub_mask = mask[:, ix]
            expert_outputs.append(expert([inputs[i] for i in ix], sub_mask)["outputs"])
            present.append(sub_mask.any(dim=1))
        return result, expert_outputs, torch.stack(present, dim=1)

    @staticmethod
    def combine(logits: torch.Tensor, outputs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Convex combination of the members' outputs over the members present for each item."""
        weights = torch.softmax(logits.expand(present.shape[0], -1).masked_fill(~present, NEG_INF), dim=-1) * present
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return sum(weights[:, i:i + 1] * output for i, output in enumerate(outputs))  # type: ignore[return-value]

    def forward(self, inputs: list[Any], mask: torch.Tensor) -> dict[str, Any]:
        result, expert_outputs, present = self.member_outputs(inputs, mask)
        outputs = {h: self.combine(self.blend[i], [result["outputs"][h], *(e[h] for e in expert_outputs)], present)
                   for i, h in enumerate(self.head_names)}
        return {**result, "outputs": outputs}

    def weights(self, inputs: list[Any], mask: torch.Tensor) -> torch.Tensor | None:
        return self.fused.weights(inputs, mask)  # type: ignore[operator]

    def fit_blend(self, inputs: list[Any], mask: torch.Tensor, targets: dict[str, torch.Tensor], loss: Any,
                  score: Any, steps: int = 200, fallbacks: Sequence[str] | None = None) -> dict[str, Any]:
        """Fit the blend on validation rows by the task's loss; keep it unless a fallback expert alone scores higher.

        ``score(outputs)`` is the task's main validation metric of raw outputs per head (higher is better).
        ``fallbacks`` names the experts that may replace the blend alone (default: every one); the others
        (the linear member) only ever contribute through the blend. Why not also demand that the blend win
        by a bootstrap standard error (the one-standard-error rule)? Tried: on Flipkart's 94 validation
        products the margin sent the fused model to the photo expert, itself picked over text by noise
        (test accuracy 0.81 instead of 0.90); the loss-fitted blend is the safer default.
        Returns the blend weights per head, the validation scores and the choice ("blend" or an expert's name).
        """
        self.eval()
        with torch.no_grad():
            result, expert_outputs, present = self.member_outputs(inputs, mask, every=True)
        candidates = {h: [result["outputs"][h], *(e[h] for e in expert_outputs)] for h in self.head_names}
        fitted = torch.zeros_like(self.blend)
        for index, head in enumerate(self.head_names):
            fitted[index] = fit_blend_logits(
                1 + len(self.experts), lambda w: self.combine(w, candidates[head], present),  # noqa: B023
                lambda output: loss(head, output, targets[head]), steps)  # noqa: B023
        with torch.no_grad():
            scores = {"blend": score({h: self.combine(fitted[i], candidates[h], present)
                                      for i, h in enumerate(self.head_names)})}
            for e, name in enumerate(self.expert_names):
                scores[name] = score({h: expert_outputs[e][h] for h in self.head_names})
        eligible = ["blend", *(n for n in self.expert_names if fallbacks is None or n in fallbacks)]
        choice = max(eligible, key=lambda k: (scores[k], k == "blend"))  # ties keep the blend
        if choice != "blend":
            fitted.fill_(NEG_INF)
            fitted[:, 1 + self.expert_names.index(choice)] = 0.0
        self.blend.copy_(fitted)
        return {"choice": choice, "validation": {k: round(v, 4) for k, v in scores.items()},
                "weights": {h: dict(zip(["fused", *self.expert_names],
                                        [round(w, 4) for w in torch.softmax(fitted[i], 0).tolist()], strict=True))
                            for i, h in enumerate(self.head_names)}}


def build_network(config: dict[str, Any], kind: type[MultimodalModel] | None = None) -> MultimodalModel | EnsembleModel:
    """A network from its saved config (an ensemble when ``config["ensemble"] > 1``); ``kind``: a subclass to build."""
    config = dict(config)
    if config.get("kind") == LINEAR:  # the linear member of an expert blend (tuwen.predict.linear)
        return LinearModel(**config)  # type: ignore[return-value]
    if "experts" in config:  # a fused network with its single-modality experts (ExpertBlend)
        experts = config.pop("experts")
        return ExpertBlend(build_network(config, kind), [build_network(e["network"], kind) for e in experts],
                           [e["inputs"] for e in experts], [e["name"] for e in experts])  # type: ignore[return-value]
    kind = kind or MultimodalModel
    members = int(config.pop("ensemble", 1))
    if members > 1:
        return EnsembleModel([kind(**config) for _ in range(members)])
    return kind(**config)


@torch.no_grad()
def network_outputs(network: MultimodalModel | EnsembleModel, task: Task, features: FeatureSet, batch_size: int = 4096,
                    hide: Sequence[str] = ()) -> dict[str, Any]:
    """Run the network in eval mode over a FeatureSet; transformed predictions per head and fused vectors."""
    network.eval()
    device = next(network.parameters()).device
    hidden = [features.names.index(n) for n in hide]
    raw: dict[str, list[torch.Tensor]] = {h: [] for h in network.head_names}
    fused: list[np.ndarray] = []
    for start in range(0, len(features), batch_size):
        rows = np.arange(start, min(start + batch_size, len(features)))
        inputs, mask = make_batch(features, rows, device)
        if hidden:
            mask = mask.clone()
            mask[:, hidden] = False
        result = network(inputs, mask)
        for head, value in result["outputs"].items():
            raw[head].append(value)
        fused.append(result["fused"].float().cpu().numpy())
    outputs = {h: torch.cat(v) if v else torch.zeros((0, 1)) for h, v in raw.items()}
    predictions = {h: task.transform(h, v) if len(v) else np.zeros((0,)) for h, v in outputs.items()}
    return {"predictions": predictions, "raw": outputs,
            "fused": np.concatenate(fused) if fused else np.zeros((0, network.config["hidden"]))}


def network_inputs(features: FeatureSet) -> list[dict[str, Any]]:
    dims = features.dims()
    return [{"name": s.name, "kind": s.kind, "dim": dims[s.name], "modality": s.modality} for s in features.specs]
