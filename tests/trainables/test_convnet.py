"""ConvNet family: shapes and gradients, ensembles, IDX files, shift expansion, voting."""

from __future__ import annotations

import gzip
import struct
from dataclasses import asdict

import numpy as np
import pytest
import torch

from trainables import create
from trainables.config import resolve
from trainables.convnet.data import (
    DataError,
    load,
    load_idx_folder,
    read_idx,
    shift_expand,
    write_idx,
)
from trainables.convnet.model import ConvNetShape, build
from trainables.convnet.spec import DEFAULTS
from trainables.convnet.trainable import ClassificationEvaluator, ensemble_loss


def tiny_shape(image_size: int = 8, classes: int = 10, **overrides) -> ConvNetShape:
    """The shape of the tiny variant's net (``convnet_tiny``), with ``overrides``."""
    cfg = resolve("convnet_tiny", overrides)
    return ConvNetShape.from_config(cfg, in_channels=1, image_size=image_size, classes=classes)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("ensemble", [1, 3])
def test_shapes_and_gradients(activation, pooling, ensemble):
    shape = tiny_shape(conv_layers=2, activation=activation, pooling=pooling, fc_layers=2, fc_width=8, dropout=0.2)
    model = build(shape, ensemble)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 10, (5,))
    out = model(x)
    assert out.shape == ((5, 10) if ensemble == 1 else (ensemble, 5, 10))
    ensemble_loss(out, y).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_filters_grow_per_layer_and_kernel_pads_same():
    shape = tiny_shape(image_size=28, conv_layers=2, filters=20, filter_growth=2, kernel=5)
    assert shape.channels() == [20, 40]
    model = build(shape)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.features[0].out_channels == 20 and model.features[3].out_channels == 40


def test_too_many_pooling_layers_tell_the_limit():
    with pytest.raises(ValueError, match="use conv_layers <= 3"):
        build(tiny_shape(conv_layers=4))


def test_the_shape_takes_its_values_from_the_spec_defaults():
    shape = asdict(ConvNetShape.from_config(resolve("convnet", {}), in_channels=1, image_size=8, classes=10))
    assert (shape.pop("in_channels"), shape.pop("image_size"), shape.pop("classes")) == (1, 8, 10)  # from the data
    assert shape == {key: DEFAULTS[key] for key in shape}
    assert (shape["kernel"], shape["fc_width"]) == (3, 128)  # what the catalog always gave users


def test_ensemble_loss_trains_each_member_as_if_alone():
    torch.manual_seed(0)
    out, y = torch.randn(3, 4, 5), torch.randint(0, 5, (4,))
    expected = sum(torch.nn.functional.cross_entropy(out[i], y) for i in range(3))
    assert torch.allclose(ensemble_loss(out, y), expected)


def test_votes():
    # three members, two samples, two classes
    logits = torch.tensor([[[5.0, 0.0], [0.0, 1.0]], [[0.0, 0.1], [0.0, 1.0]], [[0.0, 0.1], [9.0, 0.0]]])
    y = torch.tensor([1, 1])
    soft, major = ClassificationEvaluator("softmax"), ClassificationEvaluator("majority")
    soft.update(logits, y)
    major.update(logits, y)
    # sample 0: the mean softmax says class 0 (one confident member); the majority says 1
    # sample 1: the mean softmax says class 0 (one very confident member); the majority 1
    assert soft.compute()["val_accuracy"] == 0.0
    assert major.compute()["val_accuracy"] == 1.0


# ----------------------------------------------------------------------------- IDX


def test_read_idx_parses_a_hand_written_big_endian_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([7, 2, 1]))
    assert read_idx(path).tolist() == [7, 2, 1]
    shorts = tmp_path / "shorts"
    shorts.write_bytes(b"\x00\x00\x0b\x02" + struct.pack(">II", 2, 2) + struct.pack(">4h", 1, -2, 300, 4))
    assert read_idx(shorts).tolist() == [[1, -2], [300, 4]]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(24).reshape(2, 3, 4) * 3 - 10).astype(dtype)
    if dtype == "uint8":
        array = np.abs(array).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    back = read_idx(path)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01")
    with pytest.raises(DataError, match="expected 10 bytes"):
        read_idx(short)
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_idx_folder(tmp_path)


def _write_mnist_like(folder, n=120, size=12, gz=True):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, size, size), np.uint8)
    for i, label in enumerate(labels):  # a bright square whose place encodes the label
        r, c = divmod(int(label), 4)
        images[i, 1 + 3 * r : 3 + 3 * r, 1 + 3 * c : 3 + 3 * c] = 255
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images.idx3-ubyte{suffix}", images)
    write_idx(folder / f"train-labels.idx1-ubyte{suffix}", labels)
    return images, labels


def test_idx_folder_with_gzip_and_dotted_names(tmp_path):
    _, labels = _write_mnist_like(tmp_path)
    with gzip.open(tmp_path / "train-images.idx3-ubyte.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x03"
    x, y = load_idx_folder(tmp_path)
    assert x.shape == (120, 1, 12, 12) and np.array_equal(y, labels)


@pytest.mark.slow
def test_convnet_trains_on_an_idx_folder(tmp_path, reporter):
    _write_mnist_like(tmp_path, gz=False)
    config = {"data": {"idx": str(tmp_path)}, "max_epochs": 2, "subset": None, "conv_layers": 2}
    create("convnet_tiny")(config, reporter)
    assert reporter.epochs == [1, 2]


# ----------------------------------------------------------------------------- data


def test_shift_expand_makes_five_copies_shifted_by_one_pixel():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 2] = 1
    big, y = shift_expand(x, np.array([7]))
    assert big.shape == (5, 1, 4, 4) and y.tolist() == [7] * 5
    where = sorted(tuple(int(v) for v in np.argwhere(img[0])[0]) for img in big)
    assert where == sorted([(1, 2), (0, 2), (2, 2), (1, 1), (1, 3)])
    edge = np.zeros((1, 1, 3, 3), np.float32)
    edge[0, 0, 0, 0] = 1  # shifted off the image: no wrap-around
    assert shift_expand(edge, np.array([0]))[0].sum() == 3


def test_digits_split_is_seeded_standardized_and_expanded():
    a = load("digits", validation_fraction=0.2, seed=1)
    b = load("digits", validation_fraction=0.2, seed=1)
    c = load("digits", validation_fraction=0.2, seed=2, expand_shifts=True)
    assert len(a.train_x) + len(a.val_x) == 1797 and len(a.val_x) == 359
    assert np.array_equal(a.val_y, b.val_y) and not np.array_equal(a.val_y, c.val_y)
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-3
    assert len(c.train_x) == 5 * len(a.train_x) and a.classes == 10


def test_digits_match_scikit_learn():
    from sklearn.datasets import load_digits

    from trainables.convnet.data import load_digits_arrays

    x, y = load_digits_arrays()
    bunch = load_digits()
    assert np.array_equal(x[:, 0], bunch.images) and np.array_equal(y, bunch.target)
