"""U-Net: shapes and gradients, the size check, losses, the Jaccard evaluator, training."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from trainables import create
from trainables.config import resolve
from trainables.unet.losses import LOSSES, JaccardEvaluator, bce_jaccard, dice, soft_jaccard
from trainables.unet.model import UNet, UNetShape, size_error
from trainables.unet.spec import DEFAULTS


def tiny_shape(in_channels: int, classes: int, **overrides) -> UNetShape:
    """The shape of the tiny variant's U-Net (``unet_tiny``), with ``overrides``."""
    return UNetShape.from_config(resolve("unet_tiny", overrides), in_channels=in_channels, classes=classes)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize(("batch_norm", "activation"), [(True, "relu"), (False, "elu")])
def test_shapes_and_gradients(depth, upsampling, batch_norm, activation):
    shape = tiny_shape(
        5,
        3,
        depth=depth,
        growth=1.5,
        convs_per_block=2,
        batch_norm=batch_norm,
        activation=activation,
        dropout=0.1,
        upsampling=upsampling,
    )
    model = UNet(shape)
    x = torch.randn(2, 5, 16, 16)
    out = model(x)
    assert out.shape == (2, 3, 16, 16)
    bce_jaccard(out, (torch.rand(2, 3, 16, 16) > 0.5).float()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_widths_grow_per_level():
    assert tiny_shape(3, 1, depth=3, base_filters=16, growth=1.5).widths() == [16, 24, 36, 54]


def test_kernel_5_and_three_convs_per_block_keep_the_size():
    model = UNet(tiny_shape(2, 1, depth=2, base_filters=4, kernel=5, convs_per_block=3))
    assert model(torch.randn(1, 2, 12, 12)).shape == (1, 1, 12, 12)


def test_sizes_not_divisible_by_two_to_the_depth_are_explained():
    assert size_error(60, 4) == "patch 60 is not divisible by 2**depth=16; use 64"
    assert size_error(64, 4) is None
    assert size_error(8, 4) == "patch 8 is not divisible by 2**depth=16; use 16"
    model = UNet(tiny_shape(1, 1, depth=3, base_filters=2))
    with pytest.raises(ValueError, match="input width 20 is not divisible by 2\\*\\*depth=8; use 24"):
        model(torch.randn(1, 1, 16, 20))


def test_the_shape_takes_its_values_from_the_spec_defaults():
    shape = asdict(UNetShape.from_config(resolve("unet", {}), in_channels=3, classes=5))
    assert shape.pop("in_channels") == 3 and shape.pop("classes") == 5  # from the data, not the config
    assert shape == {key: DEFAULTS[key] for key in shape}
    assert UNetShape(**shape, in_channels=3, classes=5).widths() == [32, 64, 128, 256, 512]


def test_losses_are_near_zero_for_a_perfect_prediction_and_positive_otherwise():
    target = (torch.rand(2, 2, 8, 8) > 0.5).float()
    perfect = (target * 2 - 1) * 30
    for name, loss in LOSSES.items():
        assert loss(perfect, target).item() < 1e-3, name
        assert loss(-perfect, target).item() > 0.5, name
    assert soft_jaccard(perfect, target).shape == (2,)
    assert dice(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item() == pytest.approx(1 / 3, abs=1e-4)


def test_bce_jaccard_is_bce_minus_log_soft_jaccard():
    logits, target = torch.randn(2, 3, 4, 4), (torch.rand(2, 3, 4, 4) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((0, 2, 3))
    jac = (inter + 1e-6) / (p.sum((0, 2, 3)) + target.sum((0, 2, 3)) - inter + 1e-6)
    assert torch.allclose(bce_jaccard(logits, target), bce - jac.log().mean())


def test_jaccard_evaluator_counts_exactly():
    evaluator = JaccardEvaluator(["buildings", "water"], LOSSES["bce"])
    truth = torch.zeros(1, 2, 4, 4)
    truth[0, 0, :2, :2] = 1  # 4 building pixels; no water
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :2, :3] = 5  # 6 predicted, 4 of them right
    evaluator.update(logits[:, :, :2], truth[:, :, :2])  # two batches: sums carry over
    evaluator.update(logits[:, :, 2:], truth[:, :, 2:])
    result = evaluator.compute()
    assert result["val_jaccard_buildings"] == pytest.approx(4 / 6)
    assert result["val_jaccard_water"] == 1.0  # nothing to find, nothing found
    assert result["val_jaccard"] == pytest.approx((4 / 6 + 1) / 2)


@pytest.mark.slow
def test_unet_tiny_trains_and_reports_per_class_jaccard(reporter):
    create("unet_tiny")({"max_epochs": 2}, reporter)
    assert reporter.epochs == [1, 2]
    last = reporter.reports[-1]
    assert {"val_jaccard", "val_jaccard_buildings", "val_jaccard_water", "val_loss", "train_loss"} <= set(last)
    assert 0 <= last["val_jaccard"] <= 1


@pytest.mark.slow
def test_per_class_trains_one_output(reporter):
    create("unet_tiny")(
        {
            "max_epochs": 1,
            "per_class": "water",
            "augment": "none",
            "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True},
            "loss": "dice",
            "upsampling": "bilinear",
        },
        reporter,
    )
    report = reporter.reports[0]
    assert "val_jaccard_water" in report and "val_jaccard_buildings" not in report
    assert report["val_jaccard"] == report["val_jaccard_water"]


def test_background_baseline_scores_zero_on_present_classes():
    from trainables.unet.trainable import background_baseline

    result = background_baseline({"classes": ["buildings", "water"]}, name="unet_tiny")
    for name in ("buildings", "water"):
        assert result[f"val_jaccard_{name}"] in (0.0, 1.0)  # 1.0 only if absent from validation
    assert result["val_loss"] > 0
