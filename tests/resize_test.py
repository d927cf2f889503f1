"""Bilinear x2 with align_corners=True against a NumPy loop reference."""

import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.ops.resize import upsample2x_align_corners


def upsample_reference(x: np.ndarray) -> np.ndarray:
  b, h, w, c = x.shape
  out = np.zeros((b, 2 * h, 2 * w, c), np.float64)
  sy = (h - 1) / (2 * h - 1)
  sx = (w - 1) / (2 * w - 1)
  for i in range(2 * h):
    for j in range(2 * w):
      y, xx = i * sy, j * sx
      y0, x0 = int(np.floor(y)), int(np.floor(xx))
      y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
      fy, fx = y - y0, xx - x0
      out[:, i, j] = (
        x[:, y0, x0] * (1 - fy) * (1 - fx)
        + x[:, y0, x1] * (1 - fy) * fx
        + x[:, y1, x0] * fy * (1 - fx)
        + x[:, y1, x1] * fy * fx
      )
  return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 2), (1, 4, 4, 1), (1, 1, 3, 2), (1, 7, 2, 3)])
def test_matches_numpy_reference(shape):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  got = np.asarray(upsample2x_align_corners(jnp.asarray(x)))
  np.testing.assert_allclose(got, upsample_reference(x), atol=1e-5)


def test_corners_are_kept():
  x = np.random.default_rng(1).normal(size=(1, 5, 6, 2)).astype(np.float32)
  y = np.asarray(upsample2x_align_corners(x))
  for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
    np.testing.assert_allclose(y[0, i, j], x[0, i, j], atol=1e-6)


def test_keeps_dtype_and_rejects_bad_rank():
  assert upsample2x_align_corners(jnp.zeros((1, 2, 2, 1), jnp.bfloat16)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="NHWC"):
    upsample2x_align_corners(jnp.zeros((2, 2, 1)))
