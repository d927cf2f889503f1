"""Bilinear x2 upsampling with align_corners=True (PyTorch nn.UpsamplingBilinear2d semantics)."""

import jax
import jax.numpy as jnp
import numpy as np


def _axis_weights(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """For an axis of length n -> 2n: lower index, upper index and upper weight of each output sample.

  Output index i samples input coordinate i * (n - 1) / (2n - 1) (corners aligned).
  """
  out = 2 * n
  coord = np.arange(out, dtype=np.float64) * ((n - 1) / (out - 1)) if n > 1 else np.zeros(out)
  lo = np.clip(np.floor(coord).astype(np.int32), 0, n - 1)
  hi = np.minimum(lo + 1, n - 1)
  return lo, hi, (coord - lo).astype(np.float32)


def upsample2x_align_corners(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, 2H, 2W, C), bilinear with align_corners=True; keeps the float dtype."""
  if x.ndim != 4:
    raise ValueError(f"upsample2x_align_corners: expected NHWC, got shape {x.shape}")
  for axis in (1, 2):
    lo, hi, w = _axis_weights(x.shape[axis])
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    w = jnp.asarray(w, x.dtype).reshape(shape)
    x = jnp.take(x, lo, axis=axis) * (1 - w) + jnp.take(x, hi, axis=axis) * w
  return x
