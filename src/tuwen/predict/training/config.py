"""Training settings shared by every model kind: the network and optimisation knobs, and one seed for a run."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from tuwen.encoders.defaults import TEXT_ENCODER

MODALITIES = ("text", "image", "tabular")
WIDE_LR = 30.0
REVIEW_ENCODERS = (TEXT_ENCODER,)  # review text encoder when the workspace has no text vectors yet


@dataclass
class TrainConfig:
    """Network and optimisation settings; the defaults train a fused head on 10k products in well under a minute."""

    fusion: str = "gated"
    hidden: int = 256
    dropout: float = 0.4
    input_dropout: float = 0.2
    modality_dropout: float = 0.15
    aux_weight: float = 0.5
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    patience: int = 6
    monitor: str = "metric"  # early stopping watches the task's main validation "metric", or "loss"; "last": none
    ensemble: int = 0  # networks averaged; 0 = by training size: 5 under 1,500 items, 3 under 4,000, else 1
    blend: bool = True  # fit the fused/unimodal output blend on the validation rows (MultimodalModel.fit_blend)
    # A fused model keeps one network per modality beside the fused one and blends them on the validation rows,
    # falling back to the best of them where fusing does not pay (models.ExpertBlend).
    experts: bool = True
    # Every model's validation blend also holds a regularised linear model over its inputs (predict.linear: logistic
    # regression on TF-IDF + standardised vectors), a differently-built member; it never replaces the blend alone.
    linear: bool = True
    # Class weightings tried besides the task's own ("sqrt" soft balancing by default) for a classifier's
    # single-modality networks; the best on the validation rows is kept, and a fused network trains with its
    # best expert's pick. Why both: which one wins depends on the target, and validation sees it. Fashion
    # colours (seed 1): text macro-F1 0.904 with "sqrt", 0.922 with none (validation 0.914 vs 0.933); H&M
    # product types: 0.748 with "sqrt", 0.732 with none (validation 0.760 vs 0.749). The price: each
    # single-modality network trains once per candidate. ``()`` trains once, with the task's own weighting.
    class_weights: tuple[str, ...] = ("none",)
    # A linear TF-IDF → output part beside the projections (MultimodalModel's wide part). Off by default: on H&M
    # names it cost the text model 1.5 macro-F1 points (0.769 → 0.754, it overfits within two epochs).
    wide: bool = False
    min_steps_per_epoch: int = 16  # small catalogs get smaller batches, so an epoch is still several steps
    seed: int = 0
    device: str = "cpu"
    # CPU threads while training (0: torch's default). One: these heads are small, and on a busy 2-core machine
    # two OpenMP threads fighting other processes measured 5x slower than one (22 s vs 4 s for one variant).
    threads: int = 1
    progress: bool = True
    # "best": every choice (members, their class weighting, early-stopping epoch, L2 strength, the stack's
    # weights) made on k-fold out-of-fold predictions (predict.training.crossfit); "fast": one fused network and
    # the plain TF-IDF linear model, blended on one validation part (predict.training.fast; the ablation's
    # single-split variants, with modality experts, stay in predict.training.members); "auto": best below
    # BEST_BELOW rows.
    quality: str = "auto"
    # Fit the chosen configuration again on every labelled row (AutoGluon's refit_full). The CLI's `tuwen train`
    # turns it on; off, a test part is held back and scored (what `tuwen evaluate` and the benchmarks need).
    refit: bool = False
    folds: int = 5  # cross-fitting folds ("best")
    jobs: int = 0  # processes the folds run in (0: every core this process may use, tuwen.util.runtime)
    # The joblib backend those processes come from: "loky", worker processes on this machine; or a backend that
    # something above this layer registered, such as "ray" (tuwen.distributed.train: the jobs run on a Ray
    # cluster). Each job seeds itself, so the backend never changes the numbers.
    backend: str = "loky"


QUALITIES = ("auto", "best", "fast")
# "auto" cross-fits below this many labelled rows. Measured (benchmarks/quality_threshold.py, README "Cross-fitted
# models"): cross-fitting's gain over the fast pipeline shrinks as the validation part grows, while its training
# time is several times the fast pipeline's at every size; at this size the gain is down to a fraction of a
# macro-F1 point, and well above it cross-fitting could not meet the one-minute training bar on 7k products.
BEST_BELOW = 4000


def resolve_quality(config: TrainConfig, rows: int) -> str:
    """"best" or "fast" for a training set of ``rows`` labelled rows."""
    if config.quality not in QUALITIES:
        raise ValueError(f"unknown quality {config.quality!r}; choose one of {', '.join(QUALITIES)}")
    if config.quality != "auto":
        return config.quality
    return "best" if rows < BEST_BELOW else "fast"



def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

