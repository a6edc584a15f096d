"""The network3 family: ``conv_layers`` x (conv 'same' -> activation -> pool 2x2), then
``fc_layers`` x (dropout -> linear -> activation), then dropout -> linear (softmax logits).

``Ensemble`` stacks N such nets; its forward returns logits of shape (N, batch, classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import Config

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class ConvNetShape:
    """The architecture of one net; built from a resolved config (the spec holds the defaults)."""

    in_channels: int
    image_size: int
    classes: int
    conv_layers: int
    filters: int
    filter_growth: float
    kernel: int
    activation: str
    pooling: str
    fc_layers: int
    fc_width: int
    dropout: float

    @classmethod
    def from_config(cls, cfg: Config, *, in_channels: int, image_size: int, classes: int) -> ConvNetShape:
        """The shape a trial's config asks for, each value checked (``TrainableConfigError`` names the key)."""
        return cls(
            in_channels=in_channels,
            image_size=image_size,
            classes=classes,
            conv_layers=cfg.integer("conv_layers", low=0),
            filters=cfg.integer("filters", low=1),
            filter_growth=cfg.number("filter_growth", low=0.1),
            kernel=cfg.integer("kernel", low=1),
            activation=cfg.choice("activation", ACTIVATIONS),
            pooling=cfg.choice("pooling", POOLS),
            fc_layers=cfg.integer("fc_layers", low=0),
            fc_width=cfg.integer("fc_width", low=1),
            dropout=cfg.number("dropout", low=0.0, high=0.99),
        )

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
