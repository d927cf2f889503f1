"""Tests for cartoon_jax.tiling: tile placement, blending windows, seamless blending."""

import numpy as np
import pytest
from scipy import ndimage

from cartoon_jax.tiling import blend_window, tile_starts, tiled_apply


@pytest.mark.parametrize(
  ("length", "tile", "overlap"), [(512, 256, 64), (100, 32, 8), (36, 32, 16)]
)
def test_tile_starts_cover_with_overlap(length, tile, overlap):
  starts = tile_starts(length, tile=tile, overlap=overlap)
  assert starts[0] == 0 and starts[-1] == length - tile
  assert all(s % 4 == 0 for s in starts)
  assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_tile_starts_single_tile_and_errors():
  assert tile_starts(64, tile=128, overlap=64) == [0]
  with pytest.raises(ValueError, match="multiple of 4"):
    tile_starts(64, tile=30, overlap=8)
  with pytest.raises(ValueError, match="overlap"):
    tile_starts(64, tile=32, overlap=32)


def test_blend_window_shape():
  w = blend_window(32, overlap=16, fade_start=True, fade_end=False)
  # Zero on the outer quarter of the overlap, linear over the middle half, one beyond.
  np.testing.assert_array_equal(w[:4], 0)
  np.testing.assert_allclose(w[4:12], (np.arange(4, 12) + 0.5 - 4) / 8)
  np.testing.assert_array_equal(w[12:], 1)
  both = blend_window(32, overlap=16, fade_start=True, fade_end=True)
  np.testing.assert_allclose(both, np.minimum(w, w[::-1]))
  np.testing.assert_array_equal(blend_window(8, overlap=0, fade_start=True, fade_end=True), 1)


def _box3(batch: np.ndarray) -> np.ndarray:
  """A local op (3x3 mean, zero outside the tile): one-pixel border effects per tile."""
  return ndimage.uniform_filter(batch, size=(1, 3, 3, 1), mode="constant")


def test_identity_is_reproduced_exactly():
  x = np.random.default_rng(0).random((2, 40, 56, 3)).astype(np.float32)
  out = tiled_apply(lambda b: b, x, tile=16, overlap=8, batch_size=3)
  np.testing.assert_allclose(out, x, rtol=1e-6)


def test_local_op_has_no_seams():
  """Border effects smaller than overlap/4 are weighted out: tiled == whole frame."""
  x = np.random.default_rng(1).random((1, 72, 100, 3)).astype(np.float32)
  whole = _box3(x)
  tiled = tiled_apply(_box3, x, tile=32, overlap=8, batch_size=4)
  np.testing.assert_allclose(tiled, whole, atol=1e-6)
  seams = tiled_apply(_box3, x, tile=32, overlap=0, batch_size=4)
  assert np.abs(seams - whole).max() > 0.1


def test_batches_are_filled_to_one_shape():
  shapes = set()

  def fn(batch):
    shapes.add(batch.shape)
    return batch

  tiled_apply(fn, np.zeros((1, 48, 48, 3), np.float32), tile=16, overlap=4, batch_size=4)
  assert shapes == {(4, 16, 16, 3)}


def test_overlap_larger_than_half_tile_is_rejected():
  with pytest.raises(ValueError, match="half"):
    tiled_apply(lambda b: b, np.zeros((1, 64, 64, 3)), tile=16, overlap=12, batch_size=1)
