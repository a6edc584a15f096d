"""A configurable U-Net: ``depth`` down-samplings, filters ``base_filters * growth**level``,
``convs_per_block`` 'same' convolutions per block, optional batch norm, dropout, and
transposed-convolution or bilinear up-sampling. Outputs one logit map per class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import Config

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}
UPSAMPLING = ("transpose", "bilinear")
MAX_DEPTH = 8


@dataclass(frozen=True)
class UNetShape:
    """The architecture of one U-Net; built from a resolved config (the spec holds the defaults)."""

    in_channels: int
    classes: int
    depth: int
    base_filters: int
    growth: float
    kernel: int
    convs_per_block: int
    batch_norm: bool
    activation: str
    dropout: float
    upsampling: str

    @classmethod
    def from_config(cls, cfg: Config, *, in_channels: int, classes: int) -> UNetShape:
        """The shape a trial's config asks for, each value checked (``TrainableConfigError`` names the key)."""
        return cls(
            in_channels=in_channels,
            classes=classes,
            depth=cfg.integer("depth", low=1, high=MAX_DEPTH),
            base_filters=cfg.integer("base_filters", low=1),
            growth=cfg.number("growth", low=0.5, high=4.0),
            kernel=cfg.integer("kernel", low=1),
            convs_per_block=cfg.integer("convs_per_block", low=1),
            batch_norm=cfg.flag("batch_norm"),
            activation=cfg.choice("activation", ACTIVATIONS),
            dropout=cfg.number("dropout", low=0.0, high=0.99),
            upsampling=cfg.choice("upsampling", UPSAMPLING),
        )

    def widths(self) -> list[int]:
        return [max(1, round(self.base_filters * self.growth**i)) for i in range(self.depth + 1)]

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.depth


def size_error(size: int, depth: int, what: str = "patch") -> str | None:
    """The message for a spatial size that ``depth`` poolings cannot halve evenly."""
    multiple = 2**depth
    if size % multiple == 0 and size >= multiple:
        return None
    fix = max(multiple, -(-size // multiple) * multiple)
    return f"{what} {size} is not divisible by 2**depth={multiple}; use {fix}"


class Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, shape: UNetShape, dropout: float = 0.0):
        layers: list[nn.Module] = []
        for i in range(shape.convs_per_block):
            layers.append(
                nn.Conv2d(cin if i == 0 else cout, cout, shape.kernel, padding="same", bias=not shape.batch_norm)
            )
            if shape.batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(ACTIVATIONS[shape.activation](inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, mode: str):
        super().__init__()
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, kernel_size=1),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.up(x)


class UNet(nn.Module):
    def __init__(self, shape: UNetShape):
        super().__init__()
        if shape.upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {shape.upsampling!r}")
        self.shape = shape
        w = shape.widths()
        self.down = nn.ModuleList()
        cin = shape.in_channels
        for level in range(shape.depth):
            self.down.append(Block(cin, w[level], shape))
            cin = w[level]
        self.pool = nn.MaxPool2d(2)
        self.bottom = Block(w[shape.depth - 1], w[shape.depth], shape, shape.dropout)
        self.ups = nn.ModuleList()
        self.decode = nn.ModuleList()
        for level in reversed(range(shape.depth)):
            self.ups.append(Up(w[level + 1], w[level], shape.upsampling))
            self.decode.append(Block(2 * w[level], w[level], shape, shape.dropout))
        self.head = nn.Conv2d(w[0], shape.classes, kernel_size=1)

    def check_input(self, x: Tensor) -> None:
        for dim, what in ((-2, "height"), (-1, "width")):
            message = size_error(x.shape[dim], self.shape.depth, f"input {what}")
            if message:
                raise ValueError(message)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.ups, self.decode, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)
