"""Tests for cartoon_jax.ops.color: colour shift (fixed and random weights) and rgb_to_lab."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color
import skimage.data

from cartoon_jax.ops.color import color_shift, color_shift_weights, rgb_to_lab, weighted_gray

LOW = np.array([0.199, 0.487, 0.014])
HIGH = np.array([0.399, 0.687, 0.214])


def _gray_reference(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
  out = np.zeros(images.shape[:-1] + (1,))
  for idx in np.ndindex(images.shape[:-1]):
    out[idx + (0,)] = sum(weights[c] * images[idx + (c,)] for c in range(3)) / sum(weights)
  return out


def test_weighted_gray_with_fixed_weights():
  images = np.random.default_rng(0).uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
  weights = np.array([0.25, 0.6, 0.1])
  out = np.asarray(weighted_gray(jnp.asarray(images), weights))
  assert out.shape == (2, 5, 4, 1)
  np.testing.assert_allclose(out, _gray_reference(images, weights), atol=1e-6)
  assert out.min() >= -1 and out.max() <= 1


def test_color_shift_shares_one_draw():
  rng = np.random.default_rng(1)
  a = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 6, 6, 3)).astype(np.float32)
  key = jax.random.key(7)
  gray_a, gray_b = color_shift(key, a, b)
  weights = np.asarray(color_shift_weights(key), np.float64)
  np.testing.assert_allclose(np.asarray(gray_a), _gray_reference(a, weights), atol=1e-6)
  np.testing.assert_allclose(np.asarray(gray_b), _gray_reference(b, weights), atol=1e-6)
  single = color_shift(key, a)
  assert not isinstance(single, tuple)
  np.testing.assert_array_equal(np.asarray(single), np.asarray(gray_a))
  # Pure red / green / blue images recover each weight's share: one draw for all three.
  basis = np.eye(3, dtype=np.float32)[:, None, None, None, :]
  shares = [float(np.asarray(g).ravel()[0]) for g in color_shift(key, *basis)]
  np.testing.assert_allclose(shares, weights / weights.sum(), atol=1e-6)
  with pytest.raises(ValueError, match="at least one"):
    color_shift(key)


def test_color_shift_weight_ranges():
  draws = np.asarray(jax.vmap(color_shift_weights)(jax.random.split(jax.random.key(0), 4000)))
  assert (draws >= LOW - 1e-7).all() and (draws <= HIGH + 1e-7).all()
  # Uniform over the whole interval: the draws reach close to both ends.
  np.testing.assert_allclose(draws.min(0), LOW, atol=2e-3)
  np.testing.assert_allclose(draws.max(0), HIGH, atol=2e-3)
  np.testing.assert_allclose(draws.mean(0), (LOW + HIGH) / 2, atol=5e-3)


def test_rgb_to_lab_matches_skimage():
  rng = np.random.default_rng(2)
  x = rng.uniform(0, 1, (2, 16, 16, 3))
  x[0, 0, :5] = [[0, 0, 0], [1, 1, 1], [0.04, 0.04045, 0.0405], [0.001, 0.01, 0.2], [1, 0, 0]]
  photo = skimage.data.astronaut()[::8, ::8] / 255.0
  to_lab = jax.jit(rgb_to_lab)
  for rgb in (x, photo):
    ours = np.asarray(to_lab(jnp.asarray(rgb, jnp.float32)))
    np.testing.assert_allclose(ours, skimage.color.rgb2lab(rgb), atol=1e-3)
