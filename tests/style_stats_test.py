"""Tests for cartoon_jax.evaluate.style_stats against pixel-by-pixel loops."""

import math

import numpy as np
import pytest

from cartoon_jax.evaluate import style_stats


def _batch(seed: int = 0, shape=(3, 9, 11, 3)) -> np.ndarray:
  """Random images in [-1, 1] with flat patches, repeated colours and a few values outside."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, shape)
  x[0, 2:7, 3:9] = x[0, 2, 3]  # a flat patch
  x[1] = np.round(x[1] * 2) / 2  # few colours
  x[2, 0, 0] = [1.2, -1.5, 1.0]  # clipped
  x[2, 4:, :] *= 0.002  # nearly flat half
  return x.astype(np.float32)


def _gray(image: np.ndarray, y: int, x: int) -> float:
  r, g, b = (float(v) for v in image[y, x])
  return (r + g + b) / 3


def _colour_count_loops(images: np.ndarray) -> float:
  counts = []
  for image in images:
    colours = set()
    for row in image:
      for pixel in row:
        colours.add(tuple(int(min(max((float(v) + 1) * 127.5, 0), 255)) // 8 for v in pixel))
    counts.append(len(colours))
  return sum(counts) / len(counts)


def _laplacian_energy_loops(images: np.ndarray) -> float:
  total, n = 0.0, 0
  for image in images:
    h, w = image.shape[:2]
    for y in range(1, h - 1):
      for x in range(1, w - 1):
        neighbours = sum(
          _gray(image, y + dy, x + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
        )
        total += (neighbours - 4 * _gray(image, y, x)) ** 2
        n += 1
  return total / n


def _gradient_loops(images: np.ndarray) -> np.ndarray:
  b, h, w = images.shape[:3]
  out = np.zeros((b, h - 2, w - 2))
  for i, image in enumerate(images):
    for y in range(1, h - 1):
      for x in range(1, w - 1):
        gx = (_gray(image, y, x + 1) - _gray(image, y, x - 1)) / 2
        gy = (_gray(image, y + 1, x) - _gray(image, y - 1, x)) / 2
        out[i, y - 1, x - 1] = math.sqrt(gx * gx + gy * gy)
  return out


@pytest.mark.parametrize("seed", [0, 1])
def test_statistics_match_loops(seed):
  x = _batch(seed)
  assert style_stats.colour_count(x) == _colour_count_loops(x)
  assert style_stats.laplacian_energy(x) == pytest.approx(_laplacian_energy_loops(x), rel=1e-12)
  grad = _gradient_loops(x)
  np.testing.assert_allclose(style_stats.gradient_magnitude(x), grad, rtol=1e-12, atol=1e-15)
  for t in (0.005, 0.05, 0.3):
    assert style_stats.flat_fraction(x, threshold=t) == np.mean(grad < t)
  assert 0 < style_stats.flat_fraction(x) < 1
  assert style_stats.summary(x) == {
    "colour_count": _colour_count_loops(x),
    "laplacian_energy": pytest.approx(_laplacian_energy_loops(x), rel=1e-12),
    "flat_fraction": np.mean(grad < style_stats.FLAT_THRESHOLD),
  }


def test_known_values():
  flat = np.zeros((2, 5, 6, 3), np.float32)
  assert style_stats.colour_count(flat) == 1
  assert style_stats.laplacian_energy(flat) == 0
  assert style_stats.flat_fraction(flat) == 1
  # A horizontal ramp: the Laplacian vanishes, the gradient is the slope, 6 columns of 6 colours.
  ramp = np.broadcast_to(np.linspace(-1, 1, 6)[None, None, :, None], (1, 5, 6, 3))
  assert style_stats.laplacian_energy(ramp) == pytest.approx(0, abs=1e-24)
  np.testing.assert_allclose(style_stats.gradient_magnitude(ramp), 0.4)
  assert style_stats.colour_count(ramp) == 6
  # Quantisation: levels 0..7 share a 5-bit code, 8 does not (values mid-level, away from floor's
  # rounding edge).
  levels = np.array([0.5, 7.5, 8.5, 255], np.float64)[None, None, :, None] / 127.5 - 1
  assert style_stats.colour_count(np.repeat(np.repeat(levels, 3, 1), 3, 3)) == 3


def test_bad_input():
  with pytest.raises(ValueError, match=r"expected float images in \[-1, 1\], got uint8"):
    style_stats.colour_count(np.zeros((1, 4, 4, 3), np.uint8))
  with pytest.raises(
    ValueError, match=r"expected \(B, H, W, 3\) images, H, W >= 3, got \(4, 4, 3\)"
  ):
    style_stats.laplacian_energy(np.zeros((4, 4, 3), np.float32))
  with pytest.raises(ValueError, match=r"got \(1, 2, 8, 3\)"):
    style_stats.flat_fraction(np.zeros((1, 2, 8, 3), np.float32))
  with pytest.raises(ValueError, match="threshold=0 must be > 0"):
    style_stats.flat_fraction(np.zeros((1, 4, 4, 3), np.float32), threshold=0)
