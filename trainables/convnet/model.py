"""The network3 family: ``conv_layers`` x (conv 'same' -> activation -> pool 2x2), then
``fc_layers`` x (dropout -> linear -> activation), then dropout -> linear (softmax logits).

``Ensemble`` stacks N such nets; its forward returns logits of shape (N, batch, classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class ConvNetShape:
    in_channels: int
    image_size: int
    classes: int
    conv_layers: int = 2
    filters: int = 20
    filter_growth: float = 2.0
    kernel: int = 5
    activation: str = "relu"
    pooling: str = "max"
    fc_layers: int = 1
    fc_width: int = 100
    dropout: float = 0.0

    def channels(self) -> list[int]:
        return [max(1, round(self.filters * self.filter_growth**i)) for i in range(self.conv_layers)]

    def check(self) -> None:
        """Raise ValueError when pooling would shrink the image below one pixel."""
        size = self.image_size
        for layer in range(self.conv_layers):
            if size < 2:
                most = layer
                raise ValueError(
                    f"conv_layers={self.conv_layers} pools a {self.image_size}x{self.image_size} "
                    f"image below 1x1 at layer {layer + 1}; use conv_layers <= {most}"
                )
            size //= 2


class ConvNet(nn.Module):
    def __init__(self, shape: ConvNetShape):
        super().__init__()
        shape.check()
        act = ACTIVATIONS[shape.activation]
        pool = POOLS[shape.pooling]
        layers: list[nn.Module] = []
        channels, size = shape.in_channels, shape.image_size
        for width in shape.channels():
            layers += [nn.Conv2d(channels, width, shape.kernel, padding="same"), act(), pool(2)]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        features = channels * size * size
        for _ in range(shape.fc_layers):
            head += [nn.Dropout(shape.dropout), nn.Linear(features, shape.fc_width), act()]
            features = shape.fc_width
        head += [nn.Dropout(shape.dropout), nn.Linear(features, shape.classes)]
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Ensemble(nn.Module):
    """N independently initialized members trained side by side on the same batches."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members])


def build(shape: ConvNetShape, ensemble: int = 1) -> nn.Module:
    if ensemble <= 1:
        return ConvNet(shape)
    return Ensemble([ConvNet(shape) for _ in range(ensemble)])
