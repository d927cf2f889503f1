"""Box filter and He et al.'s guided filter (per channel), NHWC, as in the authors' GuidedFilter."""

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax


def _window_sum(x: Any, r: int, axis: int) -> Any:
  """Sum over the 2r+1 window along `axis`, zeros outside.

  lax.reduce_window: on CPU about as fast as summing shifted slices forward and ~10x faster
  backward; cumulative sums and a depthwise conv are slower.
  """
  window = [1] * x.ndim
  window[axis] = 2 * r + 1
  padding = [(0, 0)] * x.ndim
  padding[axis] = (r, r)
  return lax.reduce_window(x, 0.0, lax.add, window, (1,) * x.ndim, padding)


def _window_count(n: int, r: int) -> np.ndarray:
  """How many of the 2r+1 window positions around each index 0..n-1 fall inside [0, n)."""
  i = np.arange(n)
  return (np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1).astype(np.float32)


def box_filter(x: Any, *, r: int) -> Any:
  """Local mean of x (B, H, W, C) over the (2r+1)^2 window, the window clipped at the borders.

  Equals the authors' box(x) / box(ones): a zero-padded depthwise box convolution divided by the
  same convolution of ones, so border pixels average only the pixels that exist. Same shape and
  dtype as x.
  """
  if x.ndim != 4:
    raise ValueError(f"box_filter expects (B, H, W, C), got shape {x.shape}")
  if r < 0:
    raise ValueError(f"box_filter radius r={r} must be >= 0")
  h, w = x.shape[1], x.shape[2]
  count = np.outer(_window_count(h, r), _window_count(w, r))[None, :, :, None]
  total = _window_sum(_window_sum(x, r, 1), r, 2)
  return total / jnp.asarray(count, dtype=x.dtype)


def guided_filter(x: Any, y: Any, *, r: int, eps: float) -> Any:
  """He et al.'s guided filter with guide x and input y, both (B, H, W, C), channel by channel.

  mean_x, mean_y, cov_xy = box(x*y) - mean_x*mean_y, var_x = box(x*x) - mean_x^2,
  A = cov_xy / (var_x + eps), b = mean_y - A*mean_x, out = box(A)*x + box(b), with box the
  border-normalised local mean of `box_filter`. Differentiable in x and y; same shape as y.
  """
  if x.shape != y.shape:
    raise ValueError(
      f"guided_filter needs guide and input of one shape, got {x.shape} and {y.shape}"
    )
  mean_x = box_filter(x, r=r)
  mean_y = box_filter(y, r=r)
  cov_xy = box_filter(x * y, r=r) - mean_x * mean_y
  var_x = box_filter(x * x, r=r) - mean_x * mean_x
  a = cov_xy / (var_x + eps)
  b = mean_y - a * mean_x
  return box_filter(a, r=r) * x + box_filter(b, r=r)
