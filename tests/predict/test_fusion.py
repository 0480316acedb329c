"""Fusion strategies and the multimodal network: shapes, masking, modality dropout, and that fusing learns
what no single modality can (tiny synthetic tensors, no workspace)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureSet, InputSpec
from tuwen.predict.fusion import FUSIONS, make_fusion, masked_softmax, modality_dropout
from tuwen.predict.networks import EnsembleModel, ExpertBlend, MultimodalModel, build_network, network_inputs
from tuwen.predict.training.loop import make_optimizers

torch.set_num_threads(1)


@pytest.mark.parametrize("name", FUSIONS)
def test_every_fusion_ignores_masked_tokens_and_keeps_shape(name: str) -> None:
    torch.manual_seed(0)
    fusion = make_fusion(name, n_inputs=3, dim=8).eval()
    tokens = torch.randn(5, 3, 8)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    out = fusion(tokens, mask)
    assert out.shape == (5, 8)
    assert torch.isfinite(out).all()  # even the row with no modality at all
    changed = tokens.clone()
    changed[~mask] = 100.0  # garbage where a modality is absent must not matter
    assert torch.allclose(fusion(changed, mask), out, atol=1e-5)


@pytest.mark.parametrize("name", ["mean", "weighted", "gated", "attention", "late"])
def test_fusion_weights_are_shares_of_present_modalities(name: str) -> None:
    torch.manual_seed(0)
    fusion = make_fusion(name, n_inputs=3, dim=8).eval()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        weights = fusion.weights(torch.randn(3, 3, 8), mask)
    assert weights is not None and weights.shape == (3, 3)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3), atol=1e-5)
    assert (weights[~mask] == 0).all()
    assert float(weights[2, 1]) == pytest.approx(1.0)


def test_concat_has_no_weights_and_unknown_fusion_is_rejected() -> None:
    assert make_fusion("concat", 2, 4).weights(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.bool)) is None
    with pytest.raises(ValueError, match="unknown fusion 'sum'"):
        make_fusion("sum", 2, 4)
    with pytest.raises(ValueError, match="late fusion mode"):
        make_fusion("late:median", 2, 4)


def test_masked_softmax_gives_zero_rows_when_nothing_is_present() -> None:
    weights = masked_softmax(torch.zeros(2, 3), torch.tensor([[0, 0, 0], [0, 1, 1]], dtype=torch.bool))
    assert weights[0].tolist() == [0.0, 0.0, 0.0]
    assert weights[1].tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_modality_dropout_never_adds_and_keeps_one_modality() -> None:
    torch.manual_seed(0)
    mask = torch.rand(2000, 3) > 0.2
    mask[0] = torch.tensor([False, False, False])
    dropped = modality_dropout(mask, p=0.5)
    assert not (dropped & ~mask).any()  # an absent modality never appears
    has_any = mask.any(dim=1)
    assert dropped[has_any].any(dim=1).all()  # at least one survives wherever one was present
    assert not dropped[0].any()
    rate = 1 - dropped[mask].float().mean().item()
    assert 0.3 < rate < 0.5  # about p, less because of the keep-one rule
    assert torch.equal(modality_dropout(mask, p=0.0), mask)


def _xor_features(n: int, seed: int) -> tuple[FeatureSet, np.ndarray]:
    """Label = a + 2b: ``a`` is readable only from the dense input, ``b`` only from the sparse one."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    dense = rng.normal(size=(n, 6)).astype(np.float32)
    dense[:, 0] += 3 * (2 * a - 1)
    words = np.zeros((n, 10), dtype=np.float32)
    words[np.arange(n), b * 5 + rng.integers(0, 5, n)] = 1.0  # five synonyms per value of b
    specs = [InputSpec("image", "pixels", "image"), InputSpec("title", "tfidf_sparse", "text")]
    features = FeatureSet([str(i) for i in range(n)], specs, {"image@pixels": dense},
                          {"title@tfidf_sparse": sp.csr_matrix(words)}, np.ones((n, 2), dtype=bool))
    return features, a + 2 * b


def _train(network: MultimodalModel, features: FeatureSet, y: np.ndarray, steps: int = 150) -> None:
    network.fit_normalisation(features)
    optimizers = make_optimizers(network, lr=1e-2, weight_decay=0.0)
    inputs, mask = make_batch(features)
    target = torch.from_numpy(y)
    network.train()
    for _ in range(steps):
        result = network(inputs, mask)
        loss = torch.nn.functional.cross_entropy(result["outputs"]["y"], target)
        unimodal = result["unimodal"]["y"]
        loss = loss + torch.nn.functional.cross_entropy(unimodal.flatten(0, 1),
                                                        target.repeat_interleave(unimodal.shape[1]))
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
    network.eval()


@pytest.mark.parametrize("name", FUSIONS)
def test_each_fusion_learns_what_needs_both_modalities(name: str) -> None:
    train, y_train = _xor_features(400, seed=1)
    test, y_test = _xor_features(200, seed=2)
    torch.manual_seed(0)
    network = MultimodalModel(network_inputs(train), {"y": 4}, fusion=name, hidden=16, dropout=0.0,
                              input_dropout=0.0, modality_dropout=0.0)
    _train(network, train, y_train)
    with torch.no_grad():
        inputs, mask = make_batch(test)
        fused = network(inputs, mask)["outputs"]["y"].argmax(1).numpy()
        only_image = mask.clone()
        only_image[:, 1] = False
        one = network(inputs, only_image)["outputs"]["y"].argmax(1).numpy()
    assert (fused == y_test).mean() > 0.9
    assert (one == y_test).mean() < 0.6  # one modality alone cannot tell the four classes apart


def test_missing_modality_still_predicts_from_what_is_there() -> None:
    train, y = _xor_features(300, seed=3)
    torch.manual_seed(0)
    network = MultimodalModel(network_inputs(train), {"y": 4}, fusion="gated", hidden=16, dropout=0.0,
                              input_dropout=0.0, modality_dropout=0.3)
    _train(network, train, y)
    test, y_test = _xor_features(200, seed=4)
    test.mask[:, 1] = False  # no text at all
    with torch.no_grad():
        predicted = network(*make_batch(test))["outputs"]["y"].argmax(1).numpy()
    a = y_test % 2
    assert ((predicted % 2) == a).mean() > 0.9  # the photo's half of the answer survives


def test_blend_falls_back_to_the_useful_modality() -> None:
    """A blend fitted on held-out rows moves weight away from an input that only carries noise."""
    torch.manual_seed(0)
    features, y = _xor_features(300, seed=5)
    y = y % 2  # only the dense input matters now
    network = MultimodalModel(network_inputs(features), {"y": 2}, fusion="mean", hidden=16, dropout=0.0,
                              input_dropout=0.0, modality_dropout=0.0)
    _train(network, features, y)
    val, y_val = _xor_features(200, seed=6)
    inputs, mask = make_batch(val)

    def loss(head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.nn.functional.cross_entropy(output, target, reduction="none"), torch.ones_like(target).bool()

    weights = network.fit_blend(inputs, mask, {"y": torch.from_numpy(y_val % 2)}, loss)
    assert bool(network.blend_on)
    fused_share, image_share, text_share = weights[0]
    assert text_share < max(fused_share, image_share)


def test_ensemble_averages_members_and_rebuilds_from_config() -> None:
    features, _ = _xor_features(20, seed=7)
    torch.manual_seed(0)
    members = [MultimodalModel(network_inputs(features), {"y": 4}, fusion="concat", hidden=8) for _ in range(2)]
    ensemble = EnsembleModel(members).eval()
    inputs, mask = make_batch(features)
    with torch.no_grad():
        expected = (members[0](inputs, mask)["outputs"]["y"] + members[1](inputs, mask)["outputs"]["y"]) / 2
        assert torch.allclose(ensemble(inputs, mask)["outputs"]["y"], expected, atol=1e-6)
    rebuilt = build_network(ensemble.config)
    assert isinstance(rebuilt, EnsembleModel) and len(rebuilt.members) == 2
    rebuilt.load_state_dict(ensemble.state_dict())
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(inputs, mask)["outputs"]["y"], expected, atol=1e-6)


def _ce(head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.nn.functional.cross_entropy(output, target, reduction="none"), torch.ones_like(target).bool()


def _accuracy(outputs: dict[str, torch.Tensor], y: np.ndarray) -> float:
    return float((outputs["y"].argmax(1).numpy() == y).mean())


def test_expert_blend_falls_back_to_the_better_expert_and_rebuilds_from_config() -> None:
    """A fused network that learnt nothing is replaced, on validation, by the expert that did; saved and rebuilt,
    the blend predicts the same; an item without the expert's input gets its answer from the other members."""
    torch.manual_seed(0)
    features, y = _xor_features(300, seed=8)
    y = y // 2  # only the sparse (text) input carries the label
    inputs_spec = network_inputs(features)
    fused = MultimodalModel(inputs_spec, {"y": 2}, fusion="concat", hidden=8).eval()  # untrained: chance
    text = MultimodalModel(inputs_spec[1:], {"y": 2}, fusion="concat", hidden=16, dropout=0.0, input_dropout=0.0,
                           modality_dropout=0.0)
    _train(text, features.select(["title@tfidf_sparse"]), y)
    image = MultimodalModel(inputs_spec[:1], {"y": 2}, fusion="concat", hidden=8).eval()  # untrained
    blended = ExpertBlend(fused, [text.eval(), image], [[1], [0]], ["text", "image"])
    val, y_val = _xor_features(200, seed=9)
    y_val = y_val // 2
    inputs, mask = make_batch(val)
    fitted = blended.fit_blend(inputs, mask, {"y": torch.from_numpy(y_val)}, _ce, lambda o: _accuracy(o, y_val))
    assert fitted["validation"]["text"] > 0.95
    assert fitted["validation"][fitted["choice"]] >= max(fitted["validation"].values()) - 1e-9
    with torch.no_grad():
        outputs = blended(inputs, mask)["outputs"]
    assert _accuracy(outputs, y_val) >= fitted["validation"]["text"] - 1e-9
    rebuilt = build_network(blended.config)
    assert isinstance(rebuilt, ExpertBlend) and rebuilt.expert_names == ["text", "image"]
    rebuilt.load_state_dict(blended.state_dict())
    no_text = mask.clone()
    no_text[:, 1] = False
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(inputs, mask)["outputs"]["y"], outputs["y"], atol=1e-6)
        missing = rebuilt(inputs, no_text)["outputs"]["y"]
    assert torch.isfinite(missing).all() and not torch.allclose(missing, outputs["y"])


def test_wide_part_is_a_linear_tfidf_path_that_starts_at_zero() -> None:
    features, y = _xor_features(40, seed=10)
    torch.manual_seed(0)
    wide = MultimodalModel(network_inputs(features), {"y": 4}, fusion="concat", hidden=8, wide=True).eval()
    torch.manual_seed(0)
    deep = MultimodalModel(network_inputs(features), {"y": 4}, fusion="concat", hidden=8).eval()
    assert len(wide.wide) == 1  # one table, for the one sparse input
    deep.load_state_dict({k: v for k, v in wide.state_dict().items() if not k.startswith("wide.")})
    inputs, mask = make_batch(features)
    with torch.no_grad():
        assert torch.allclose(wide(inputs, mask)["outputs"]["y"], deep(inputs, mask)["outputs"]["y"])
    _train(wide, features, y)
    assert float(wide.wide[0].weight.detach().abs().sum()) > 0  # trained through SparseAdam with the rest


def test_a_member_outside_the_fallbacks_only_ever_contributes_through_the_blend() -> None:
    """The linear member is not a fallback: where it alone is best, the blend carries it instead."""
    torch.manual_seed(0)
    features, y = _xor_features(300, seed=13)
    strong = MultimodalModel(network_inputs(features), {"y": 4}, fusion="concat", hidden=16, dropout=0.0,
                             input_dropout=0.0, modality_dropout=0.0)
    _train(strong, features, y)
    weak = MultimodalModel(network_inputs(features), {"y": 4}, fusion="concat", hidden=8).eval()  # untrained
    text = MultimodalModel(network_inputs(features)[1:], {"y": 4}, fusion="concat", hidden=8).eval()
    val, y_val = _xor_features(200, seed=14)
    inputs, mask = make_batch(val)
    with torch.no_grad():
        alone = strong.eval()(inputs, mask)["outputs"]["y"]

    def score(outputs: dict[str, torch.Tensor]) -> float:  # the strong member alone scores best, by fiat
        return 1.0 if torch.equal(outputs["y"], alone) else _accuracy(outputs, y_val) / 2

    def fit(fallbacks: list[str] | None) -> dict[str, object]:
        blended = ExpertBlend(weak, [text, strong], [[1], [0, 1]], ["text", "linear"])
        return blended.fit_blend(inputs, mask, {"y": torch.from_numpy(y_val)}, _ce, score, fallbacks=fallbacks)

    assert fit(None)["choice"] == "linear"
    kept = fit(["text"])
    assert kept["choice"] == "blend" and kept["weights"]["y"]["linear"] > 0.5  # the loss-fitted blend leans on it
