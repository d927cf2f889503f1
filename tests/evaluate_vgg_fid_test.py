"""Tests for cartoon_jax.evaluate.vgg_fid: pooled VGG16 features against a one-image-at-a-time
forward, and the Fréchet distance against a NumPy/scipy rendering of the formula."""

import os
import sys

import numpy as np
import pytest
from scipy import linalg

from cartoon_jax import fileio
from cartoon_jax import images as images_lib
from cartoon_jax.evaluate import vgg_fid
from cartoon_jax.models.vgg import VGG16

sys.path.insert(0, os.path.dirname(__file__))
from evaluate_cli_test import random_vgg16  # noqa: E402


@pytest.fixture(scope="module")
def variables() -> dict:
  return random_vgg16()


def _images(n: int, sizes, seed: int = 0) -> list[np.ndarray]:
  """Smooth random uint8 images, cycling through `sizes` ((h, w) pairs)."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    h, w = sizes[i % len(sizes)]
    small = rng.uniform(0, 255, (h // 4 + 1, w // 4 + 1, 3))
    big = np.kron(small, np.ones((4, 4, 1)))[:h, :w] + rng.normal(0, 8, (h, w, 3))
    out.append(np.clip(big, 0, 255).astype(np.uint8))
  return out


def _reference_features(variables, images, layer) -> np.ndarray:
  """One image per forward, then the spatial mean as a plain loop over positions."""
  rows = []
  for image in images:
    x = fileio.to_model_range(image[None])
    fmap = np.asarray(VGG16().apply(variables, x, layers=(layer,))[layer])[0]
    total = np.zeros(fmap.shape[-1], np.float64)
    for y in range(fmap.shape[0]):
      for x_ in range(fmap.shape[1]):
        total += fmap[y, x_]
    rows.append(total / (fmap.shape[0] * fmap.shape[1]))
  return np.stack(rows)


def _reference_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
  """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)), means and covariances by loops."""
  stats = []
  for feats in (feats_a, feats_b):
    n = len(feats)
    mu = sum(feats) / n
    sigma = sum(np.outer(f - mu, f - mu) for f in feats) / (n - 1)
    stats.append((mu, sigma))
  (mu_a, s_a), (mu_b, s_b) = stats
  root = linalg.sqrtm(s_a @ s_b).real
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def test_features_match_single_image_forward(variables, tmp_path):
  images = _images(5, [(32, 40), (48, 32)])
  # Batches of 2 over two sizes: each size gets its own padded batches, rows keep their order.
  got = vgg_fid.vgg16_features(variables, images, batch_size=2)
  assert got.shape == (5, 512) and got.dtype == np.float64 and got.std() > 0
  want = _reference_features(variables, images, vgg_fid.DEFAULT_LAYER)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
  # The same from a folder (sorted names) and from one array.
  for i, image in enumerate(images):
    images_lib.write_image(str(tmp_path / "set" / f"{i}.png"), image)
  from_folder = vgg_fid.vgg16_features(variables, str(tmp_path / "set"), batch_size=2)
  np.testing.assert_allclose(from_folder, got, rtol=1e-5, atol=1e-6 * np.abs(want).max())
  same_size = np.stack(images[::2])
  np.testing.assert_allclose(
    vgg_fid.vgg16_features(variables, same_size, batch_size=2), got[::2], rtol=1e-5, atol=1e-6
  )


def test_frechet_distance_matches_numpy_reference(variables):
  # relu1_2 (64-d) and 80 images a set, so both covariances have full rank.
  set_a = _images(80, [(16, 16)], seed=1)
  set_b = [np.clip(im.astype(np.int16) * 3 // 4 + 40, 0, 255).astype(np.uint8) for im in set_a[:70]]
  kwargs = {"layer": "relu1_2", "batch_size": 32}
  got = vgg_fid.vgg16_frechet_distance(variables, set_a, set_b, **kwargs)
  feats_a = vgg_fid.vgg16_features(variables, set_a, **kwargs)
  feats_b = vgg_fid.vgg16_features(variables, set_b, **kwargs)
  want = _reference_distance(feats_a, feats_b)
  assert want > 1e-3
  assert got == pytest.approx(want, rel=1e-6)
  mu, sigma = vgg_fid.vgg16_statistics(variables, set_b, **kwargs)
  np.testing.assert_allclose(mu, sum(feats_b) / len(feats_b), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(feats_b, rowvar=False), rtol=1e-10, atol=1e-14)
  assert vgg_fid.vgg16_frechet_distance(variables, set_a, set_a, **kwargs) == pytest.approx(
    0.0, abs=1e-8 * np.trace(np.cov(feats_a, rowvar=False))
  )


@pytest.mark.slow
def test_identical_sets_give_zero_at_the_default_layer(variables):
  """512-d: scipy's sqrtm of 512 x 512 takes ~10 s on 2 cores, twice."""
  images = _images(6, [(32, 32)], seed=2)
  feats = vgg_fid.vgg16_features(variables, images, batch_size=4)
  scale = np.trace(np.cov(feats, rowvar=False))
  same = vgg_fid.vgg16_frechet_distance(variables, images, images, batch_size=4)
  assert abs(same) < 1e-6 * scale
  other = vgg_fid.vgg16_frechet_distance(variables, images, _images(6, [(32, 32)], 3), batch_size=4)
  assert other > 1e-3 * scale


def test_resize_option_and_bad_input(variables, tmp_path):
  small = _images(3, [(8, 12)], seed=4)
  with pytest.raises(ValueError, match="image 0: 12x8 is too small for relu5_3"):
    vgg_fid.vgg16_features(variables, small)
  assert vgg_fid.vgg16_features(variables, small, size=16, layer="relu5_1").shape == (3, 512)
  with pytest.raises(ValueError, match="size=8: relu5_3 needs images of at least 16 pixels"):
    vgg_fid.vgg16_features(variables, small, size=8)
  with pytest.raises(ValueError, match="unknown VGG16 layer 'conv5_4'"):
    vgg_fid.vgg16_features(variables, small, layer="conv5_4")
  with pytest.raises(ValueError, match=r"image 1: expected uint8 \(H, W, 3\) RGB, got float32"):
    vgg_fid.vgg16_features(variables, [small[0], small[1].astype(np.float32)], size=16)
  images_lib.write_image(str(tmp_path / "one" / "a.png"), small[0])
  with pytest.raises(ValueError, match="one: the Fréchet distance needs at least 2 images, got 1"):
    vgg_fid.vgg16_frechet_distance(variables, str(tmp_path / "one"), small, size=16)
  (tmp_path / "one" / "b.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="b.png: cannot decode"):
    vgg_fid.vgg16_features(variables, str(tmp_path / "one"), size=16)
