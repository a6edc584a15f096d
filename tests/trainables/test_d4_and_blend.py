"""D4 augmentation (image and mask together) and blended full-image prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.unet.augment import D4, d4, d4_inverse, random_d4
from trainables.unet.blend import predict_blended, spline_window, triangle
from trainables.unet.crops import RandomCrops


def _which(original: torch.Tensor, transformed: torch.Tensor) -> list[int]:
    return [k for k in D4 if torch.equal(d4(original, k), transformed)]


def test_d4_has_eight_distinct_invertible_transforms():
    x = np.arange(16).reshape(1, 4, 4)
    images = [d4(x, k) for k in D4]
    assert len({im.tobytes() for im in map(np.ascontiguousarray, images)}) == 8
    for k in D4:
        assert np.array_equal(d4_inverse(d4(x, k), k), x)
        t = torch.from_numpy(x.copy())
        assert np.array_equal(d4(t, k).numpy(), d4(x, k))  # numpy and torch agree


def test_random_d4_transforms_image_and_mask_alike():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(64, 3, 6, 6)
    mask = (torch.rand(64, 2, 6, 6) > 0.5).to(torch.uint8)
    out_image, out_mask = random_d4(image, mask, g)
    assert out_mask.dtype == torch.uint8
    seen = set()
    for i in range(len(image)):
        ks = _which(image[i], out_image[i])
        assert len(ks) == 1  # random images have no symmetry
        assert torch.equal(d4(mask[i], ks[0]), out_mask[i])
        seen.add(ks[0])
    assert seen == set(D4)


def test_random_crops_apply_the_same_transform_to_image_and_mask():
    g = torch.Generator().manual_seed(1)
    scenes = torch.randn(2, 3, 20, 20)
    masks = (torch.rand(2, 2, 20, 20) > 0.5).to(torch.uint8)
    crops = RandomCrops(scenes, masks, patch=8, batch_size=16, samples=64, augment=True)
    # every possible (scene, row, column, transform) crop, to look each output up
    keys = [(n, r, c, k) for n in range(2) for r in range(13) for c in range(13) for k in D4]
    images = torch.stack([d4(scenes[n, :, r : r + 8, c : c + 8], k) for n, r, c, k in keys])
    found, seen = 0, set()
    for x, y in crops.epoch(g):
        assert x.shape == (len(x), 3, 8, 8) and y.shape == (len(x), 2, 8, 8)
        for image, mask in zip(x, y, strict=True):
            hits = (images == image).flatten(1).all(1).nonzero().flatten().tolist()
            assert len(hits) == 1
            n, r, c, k = keys[hits[0]]
            assert torch.equal(d4(masks[n, :, r : r + 8, c : c + 8], k), mask)
            found += 1
            seen.add(k)
    assert found == 64 and len(seen) >= 6


def test_batches_do_not_depend_on_how_many_are_gathered_at_once():
    scenes, masks = torch.randn(2, 3, 20, 20), (torch.rand(2, 2, 20, 20) > 0.5).float()
    crops = RandomCrops(scenes, masks, patch=8, batch_size=4, samples=30, augment=True)
    assert crops.batches_per_gather == 1  # on the CPU
    epochs = []
    for per_gather in (1, 3, 100):
        crops.batches_per_gather = per_gather
        epochs.append(list(crops.epoch(torch.Generator().manual_seed(5))))
    for batches in epochs[1:]:
        assert [len(x) for x, _ in batches] == [4] * 7 + [2]
        for (x, y), (x1, y1) in zip(batches, epochs[0], strict=True):
            assert torch.equal(x, x1) and torch.equal(y, y1)


def test_spline_window_is_positive_symmetric_with_mean_one():
    for size in (4, 7, 16, 64):
        w = spline_window(size)
        assert (w > 0).all() and np.allclose(w, w[::-1]) and w.mean() == pytest.approx(1)
        assert w[size // 2] > w[0]
    assert np.allclose(triangle(5), [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    assert np.allclose(triangle(4), [0.25, 0.75, 0.75, 0.25])


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("d4_average", [False, True])
def test_identity_predictor_reconstructs_the_image(overlap, d4_average):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 37, 50)).astype(np.float32)
    out = predict_blended(image, lambda tiles: tiles, 16, overlap=overlap, d4_average=d4_average, batch_size=7)
    assert out.shape == image.shape
    np.testing.assert_allclose(out, image, atol=1e-5)


@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_constant_predictor_gives_the_constant_everywhere(overlap):
    image = np.zeros((2, 23, 31), np.float32)
    out = predict_blended(image, lambda t: np.full((len(t), 4, *t.shape[-2:]), 0.7), 8, overlap=overlap)
    assert out.shape == (4, 23, 31)
    np.testing.assert_allclose(out, 0.7, atol=1e-6)


def test_image_smaller_than_the_window_and_a_channel_summing_predictor():
    image = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    out = predict_blended(image, lambda t: t.sum(1, keepdims=True), 16, overlap=0.5)
    np.testing.assert_allclose(out[0], image.sum(0), rtol=1e-6)


def test_blending_smooths_seams_of_an_inconsistent_predictor():
    """A predictor biased by where a window starts leaves hard seams without blending;
    the spline window makes the jumps between neighbouring pixels small."""
    calls = iter(range(10**6))

    def biased(tiles):
        return np.stack([np.full(t.shape, float(next(calls) % 2)) for t in tiles])

    image = np.zeros((1, 64, 64), np.float32)
    hard = predict_blended(image, biased, 16, overlap=0.0)
    soft = predict_blended(image, biased, 16, overlap=0.5)
    assert np.abs(np.diff(hard[0], axis=1)).max() == pytest.approx(1.0)
    assert np.abs(np.diff(soft[0], axis=1)).max() < 0.5


def test_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        predict_blended(np.zeros((1, 8, 8)), lambda t: t, 4, overlap=1.0)


@pytest.mark.parametrize(
    ("height", "width", "patch", "overlap"), [(37, 53, 16, 0.5), (9, 70, 16, 0.5), (50, 20, 8, 0.75)]
)
def test_row_streaming_blend_equals_the_whole_image_pass_and_reads_one_strip_at_a_time(
    height: int, width: int, patch: int, overlap: float
) -> None:
    from trainables.unet.blend import BlendGrid, predict_blended_rows

    rng = np.random.default_rng(3)
    image = rng.normal(size=(3, height, width))
    weights = rng.normal(size=(2, 3))

    def predict(tiles: np.ndarray) -> np.ndarray:  # depends on the position inside the window: blending matters
        ramp = np.linspace(-1, 1, tiles.shape[-1])
        return np.tanh(np.einsum("kc,bchw->bkhw", weights, tiles) + ramp)

    whole = predict_blended(image, predict, patch, overlap=overlap, d4_average=True)
    reads: list[np.ndarray] = []
    written: list[tuple[int, np.ndarray]] = []

    def read_rows(rows: np.ndarray) -> np.ndarray:
        reads.append(rows)
        return image[:, rows, :]

    predict_blended_rows(
        read_rows, height, width, predict, patch, lambda r, b: written.append((r, b)), overlap=overlap, d4_average=True
    )
    grid = BlendGrid.create(height, width, patch, overlap)
    assert len(reads) == len(grid.window_rows) and all(len(rows) == patch for rows in reads)
    firsts = [r for r, _ in written]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert sum(b.shape[1] for _, b in written) == height, "every row written exactly once"
    streamed = np.concatenate([b for _, b in written], axis=1)
    assert streamed.dtype == np.float32 and np.array_equal(streamed, whole)
