"""Tests for cartoon_jax.evaluate.figures: correlative maps against a NumPy reference, colours."""

import os
import sys

import jax.numpy as jnp
import numpy as np

from cartoon_jax import fileio
from cartoon_jax.evaluate import figures
from cartoon_jax.models.vgg import VGG16

sys.path.insert(0, os.path.dirname(__file__))
from evaluate_cli_test import random_vgg16  # noqa: E402
from evaluate_warping_test import make_clip  # noqa: E402


def test_correlative_maps_match_numpy_reference():
  variables = random_vgg16()
  clip = make_clip(2)
  points = [(10, 5), (95, 71), (40, 33)]
  got = figures.correlative_maps(variables, clip[0], clip[1], points, layer="relu2_1")
  x = fileio.to_model_range(jnp.asarray(clip))
  feats = np.asarray(VGG16().apply(variables, x, layers=("relu2_1",))["relu2_1"], np.float64)
  _, h, w, m = feats.shape
  assert got.shape == (3, h, w)
  for k, (px, py) in enumerate(points):
    row, col = int(py * h / 72), int(px * w / 96)
    a = feats[0] - feats[0].mean(axis=(0, 1))  # PMC: centre per frame and channel
    b = feats[1] - feats[1].mean(axis=(0, 1))
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    want = np.zeros((h, w))
    for i in range(h):
      for j in range(w):
        want[i, j] = a[row, col] @ b[i, j]
    np.testing.assert_allclose(got[k], want, atol=1e-5)
  assert np.abs(got).max() <= 1 + 1e-5


def test_colourize_scale_and_mask():
  values = np.array([[0.0, 0.1, 0.2, 0.5]])
  rgb = figures.colourize(values, vmax=0.2, mask=np.array([[False, False, False, True]]))
  assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
  assert rgb[0, 0, 2] > rgb[0, 0, 0]  # low = blue
  assert rgb[0, 2, 0] > rgb[0, 2, 2]  # vmax = red
  np.testing.assert_array_equal(rgb[0, 3], [128, 128, 128])
