"""The linear member of a fused model's expert blend: it learns what a linear model can, picks its L2 strength
on validation rows, ignores absent inputs, and rebuilds from its saved config (tiny synthetic features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureSet, InputSpec
from tuwen.predict.linear import L2_PATH, LinearModel, fit_linear
from tuwen.predict.networks import ExpertBlend, MultimodalModel, build_network, network_inputs
from tuwen.predict.tasks import make_task

torch.set_num_threads(1)


def _features(n: int, seed: int, noise_words: int = 40) -> tuple[FeatureSet, pd.DataFrame]:
    """Label = a + 2b: ``a`` shifts the dense input (scaled by 50, so unscaled it would swamp the penalty),
    ``b`` picks one of five synonyms among ``noise_words`` random words of the sparse one."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    dense = rng.normal(size=(n, 6)).astype(np.float32)
    dense[:, 0] += 2 * (2 * a - 1)
    dense *= 50
    words = sp.lil_matrix((n, 10 + noise_words), dtype=np.float32)
    for row in range(n):
        words[row, b[row] * 5 + rng.integers(0, 5)] = 1.0
        for noise in rng.choice(noise_words, 3, replace=False):
            words[row, 10 + noise] = 1.0
    specs = [InputSpec("image", "pixels", "image"), InputSpec("title", "tfidf_sparse", "text")]
    features = FeatureSet([str(i) for i in range(n)], specs, {"image@pixels": dense},
                          {"title@tfidf_sparse": sp.csr_matrix(words)}, np.ones((n, 2), dtype=bool))
    return features, pd.DataFrame({"id": features.ids, "y": [f"c{v}" for v in a + 2 * b]})


def test_linear_model_learns_both_inputs_and_picks_its_strength_on_validation() -> None:
    train, train_frame = _features(400, seed=1)
    val, val_frame = _features(150, seed=2)
    task = make_task("classify", "y")
    task.fit(train_frame)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    model, fit = fit_linear(network_inputs(train), task, train, task.targets(train_frame), val,
                            task.targets(val_frame))
    # it fits beside a network's training loop: drawing random numbers would change that network
    assert torch.equal(torch.get_rng_state(), before)
    assert set(fit["validation"]) == {f"{s:g}/n" for s in L2_PATH}
    assert fit["l2"] * len(train) == pytest.approx(max(L2_PATH, key=lambda s: (fit["validation"][f"{s:g}/n"], s)))
    test, test_frame = _features(300, seed=3)
    inputs, mask = make_batch(test)
    with torch.no_grad():
        predicted = model(inputs, mask)["outputs"]["y"].argmax(dim=1).numpy()
    assert (predicted == task.targets(test_frame)["y"]).mean() > 0.95  # additive in the two inputs: linear
    without_photo = mask.clone()
    without_photo[:, 0] = False
    changed = [inputs[0] * 0 + 1e6, inputs[1]]  # garbage where the photo is absent must not matter
    with torch.no_grad():
        assert torch.allclose(model(changed, without_photo)["outputs"]["y"],
                              model(inputs, without_photo)["outputs"]["y"])
        words_only = model(inputs, without_photo)["outputs"]["y"].argmax(dim=1).numpy()
    b = task.targets(test_frame)["y"] // 2  # from the words alone the b half of the label is still right
    assert (words_only // 2 == b).mean() > 0.95


def test_linear_model_fits_prices_and_rebuilds_inside_an_expert_blend() -> None:
    train, frame = _features(300, seed=4)
    val, val_frame = _features(100, seed=5)
    for features, table in ((train, frame), (val, val_frame)):  # price: 100 · 2^b · e^(noise)
        b = table["y"].str[1].astype(int).to_numpy() // 2
        table["price"] = 100.0 * 2.0 ** b * np.exp(np.random.default_rng(len(features)).normal(0, 0.05, len(b)))
    task = make_task("price")
    task.fit(frame)
    model, _ = fit_linear(network_inputs(train), task, train, task.targets(frame), val, task.targets(val_frame))
    inputs, mask = make_batch(val)
    with torch.no_grad():
        prices = task.transform("price", model(inputs, mask)["outputs"]["price"])
    assert np.median(np.abs(prices / val_frame["price"].to_numpy() - 1)) < 0.1
    fused = MultimodalModel(network_inputs(train), task.heads(), fusion="concat", hidden=8).eval()
    blended = ExpertBlend(fused, [model], [[0, 1]], ["linear"])
    blended.blend.fill_(-1e9)
    blended.blend[:, 1] = 0.0  # the linear member alone
    rebuilt = build_network(blended.config)
    assert isinstance(rebuilt, ExpertBlend) and isinstance(rebuilt.experts[0], LinearModel)
    rebuilt.load_state_dict(blended.state_dict())
    with torch.no_grad():
        again = rebuilt.eval()(inputs, mask)["outputs"]["price"]
        assert torch.allclose(again, blended(inputs, mask)["outputs"]["price"])
