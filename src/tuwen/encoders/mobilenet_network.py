"""The MobileNetV2 network in PyTorch (torchvision's module tree and parameter names), and the pixels-to-features
wrapper every CNN encoder exports. Apart from the encoder so that embedding with a cached ONNX graph never imports
torch (importing it is most of a short run's start-up).
"""

from __future__ import annotations

import torch
from torch import nn

from tuwen.encoders.weights import mobilenet_v2_weights as weights_path

# (expansion t, output channels c, repeats n, first stride s), from the MobileNetV2 paper / torchvision.
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class ConvBNReLU(nn.Sequential):
    """conv -> batch norm -> ReLU6; indices 0/1 match torchvision's ``Conv2dNormActivation``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear), with a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, kernel=1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False)]
        layers.append(nn.BatchNorm2d(cout))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's ``mobilenet_v2`` (width 1.0): ``features`` (19 blocks) + ``classifier``."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for expand, cout, repeats, stride in _INVERTED_RESIDUAL_SETTING:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(ConvBNReLU(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def load_pretrained() -> MobileNetV2:
    """MobileNetV2 with the packaged ImageNet weights, loaded strictly (a name mismatch is an error)."""
    network = MobileNetV2()
    network.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), strict=True)
    return network.eval()


class PixelsToFeatures(nn.Module):
    """uint8 ``(n, h, w, 3)`` pixels -> normalised NCHW -> a backbone -> global average pool.

    The permute leaves NHWC memory underneath, i.e. a channels-last tensor, which is
    the layout the CPU convolution kernels prefer; no copy is made.
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("scale", torch.tensor([1 / (255 * s) for s in std]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return self.backbone(x).mean((2, 3))
