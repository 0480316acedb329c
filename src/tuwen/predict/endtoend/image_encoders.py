"""Trainable image encoders: a small CNN trained from scratch, and the tail of MobileNetV2 fine-tuned.

Both map their input to one ``(batch, hidden)`` vector, the shape of a modality token in the fusion.

* :class:`SmallCNN` reads ``(batch, size, size, 3)`` uint8 thumbnails (64-128 px): five
  conv-BN-ReLU stages with max pooling between them (16 → 32 → 64 → 128 → 256 channels), then
  global average and max pooling. Training-time augmentation: horizontal flips and small shifts
  (pad and crop). About 21 M multiply-adds per 64 px image (measured: one training step of 128
  images ~0.8 s on one busy CPU core; the 32 → 256 four-stage variant took 2 s).
* :class:`MobileNetTail` is the last ``blocks`` modules of ImageNet MobileNetV2's ``features``
  (by default the last two inverted-residual blocks and the final 1x1 conv, ~1.2 M weights),
  trained on top of the frozen earlier blocks. Its input is the frozen trunk's activation map,
  which never changes while training (the trunk is frozen and in eval mode), so
  :func:`tuwen.predict.endtoend.data.trunk_activations` computes it once per photo and caches it: an epoch
  then costs only the tail, not the whole network.

Large evaluation batches (validation, neighbours) are run in chunks so memory stays bounded.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from tuwen.encoders.image_mobilenet import IMAGENET_MEAN, IMAGENET_STD, MobileNetV2, load_pretrained

EVAL_CHUNK = 256
MOBILENET_MODULES = 19  # len(MobileNetV2().features)


def _chunked(module: nn.Module, run, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    if module.training or len(x) <= EVAL_CHUNK:
        return run(x)
    return torch.cat([run(x[i:i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A from-scratch CNN for ``size`` x ``size`` product thumbnails (uint8 NHWC in, ``hidden`` out)."""

    def __init__(self, hidden: int, dropout: float = 0.3, size: int = 64,
                 channels: tuple[int, ...] = (16, 32, 64, 128, 256), shift: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.shift = size // 16 if shift is None else shift
        stages: list[nn.Module] = []
        cin, side = 3, size
        for i, cout in enumerate(channels):
            stages.append(_stage(cin, cout))
            if i < len(channels) - 1 and side >= 8:  # keep the last map at least 4x4 (batch norm needs > 1 value)
                stages.append(nn.MaxPool2d(2))
                side //= 2
            cin = cout
        self.features = nn.Sequential(*stages)
        self.out = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(2 * cin, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Dropout(dropout))

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(len(x), device=x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.shift:
            s = self.shift
            padded = F.pad(x, (s, s, s, s), mode="replicate")
            dy, dx = (int(v) for v in torch.randint(0, 2 * s + 1, (2,)))
            x = padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        return x

    def _run(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() * (2 / 255) - 1.0  # NHWC uint8 → NCHW in [-1, 1]
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.training:
            x = self.augment(x)
        x = self.features(x.contiguous())
        return self.out(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return _chunked(self, self._run, pixels)


def trunk_start(blocks: int) -> int:
    if not 1 <= blocks <= MOBILENET_MODULES - 1:
        raise ValueError(f"fine-tune between 1 and {MOBILENET_MODULES - 1} of MobileNetV2's last blocks, not {blocks}")
    return MOBILENET_MODULES - blocks


class MobileNetTail(nn.Module):
    """The last ``blocks`` modules of pretrained MobileNetV2 (trainable) → average pool → linear to ``hidden``.

    The input is the frozen trunk's float16/float32 activation map ``(batch, C, H, W)``.
    The ImageNet weights are loaded at construction; a saved model's own weights then replace them.
    """

    def __init__(self, hidden: int, dropout: float = 0.3, blocks: int = 3, pretrained: bool = True) -> None:
        super().__init__()
        network = load_pretrained() if pretrained else MobileNetV2()
        self.blocks = blocks
        self.tail = copy.deepcopy(network.features[trunk_start(blocks):])
        self.out = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(1280, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Dropout(dropout))

    def _run(self, activations: torch.Tensor) -> torch.Tensor:
        x = self.tail(activations.float().contiguous(memory_format=torch.channels_last))
        return self.out(x.mean((2, 3)))

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return _chunked(self, self._run, activations)


class MobileNetTrunk(nn.Module):
    """The frozen first modules of pretrained MobileNetV2 with ImageNet normalisation: uint8 NHWC → activation map."""

    def __init__(self, blocks: int = 3) -> None:
        super().__init__()
        self.trunk = load_pretrained().features[: trunk_start(blocks)]
        self.register_buffer("scale", torch.tensor([1 / (255 * s) for s in IMAGENET_STD]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD,
                                                                           strict=True)]).view(1, 3, 1, 1))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return self.trunk(x.contiguous(memory_format=torch.channels_last))
