"""Tests for cartoon_jax.ops.filtering: box filter and guided filter vs NumPy loops, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.ops.filtering import box_filter, guided_filter


def _box_reference(x: np.ndarray, r: int) -> np.ndarray:
  """Mean over the (2r+1)^2 window clipped to the image, pixel by pixel."""
  b, h, w, c = x.shape
  out = np.zeros_like(x, dtype=np.float64)
  for i in range(h):
    for j in range(w):
      window = x[:, max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1, :]
      out[:, i, j, :] = window.mean(axis=(1, 2))
  return out


def _guided_reference(x: np.ndarray, y: np.ndarray, r: int, eps: float) -> np.ndarray:
  """The authors' GuidedFilter formulas on top of the loop box mean."""
  mean_x, mean_y = _box_reference(x, r), _box_reference(y, r)
  cov_xy = _box_reference(x * y, r) - mean_x * mean_y
  var_x = _box_reference(x * x, r) - mean_x * mean_x
  a = cov_xy / (var_x + eps)
  b = mean_y - a * mean_x
  return _box_reference(a, r) * x + _box_reference(b, r)


@pytest.mark.parametrize("r", [0, 1, 2, 5])
def test_box_filter_matches_loop(r):
  x = np.random.default_rng(r).normal(size=(2, 9, 11, 3)).astype(np.float32)
  np.testing.assert_allclose(
    np.asarray(box_filter(jnp.asarray(x), r=r)), _box_reference(x, r), atol=1e-5
  )


@pytest.mark.parametrize(("r", "eps"), [(1, 1e-2), (5, 0.2), (2, 1e-3)])
def test_guided_filter_matches_loop(r, eps):
  rng = np.random.default_rng(10 + r)
  x = rng.uniform(-1, 1, (2, 12, 10, 3)).astype(np.float32)
  y = np.tanh(x + 0.3 * rng.normal(size=x.shape)).astype(np.float32)
  out = jax.jit(lambda a, b: guided_filter(a, b, r=r, eps=eps))(x, y)
  np.testing.assert_allclose(np.asarray(out), _guided_reference(x, y, r, eps), atol=2e-5)
  # Self-guided smoothing (the surface loss) keeps constant images constant.
  flat = np.full((1, 8, 8, 3), 0.25, np.float32)
  np.testing.assert_allclose(np.asarray(guided_filter(flat, flat, r=r, eps=eps)), flat, atol=1e-6)


def test_guided_filter_gradients_match_finite_differences():
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.uniform(-1, 1, (1, 7, 6, 2)))
    y = jnp.asarray(rng.uniform(-1, 1, (1, 7, 6, 2)))
    weights = jnp.asarray(rng.normal(size=x.shape))
    loss = jax.jit(lambda a, b: jnp.sum(weights * guided_filter(a, b, r=2, eps=0.05)))
    grads = jax.grad(loss, argnums=(0, 1))(x, y)
    for _ in range(2):
      dx, dy = rng.normal(size=x.shape), rng.normal(size=y.shape)
      h = 1e-6
      numeric = (loss(x + h * dx, y + h * dy) - loss(x - h * dx, y - h * dy)) / (2 * h)
      analytic = jnp.sum(grads[0] * dx) + jnp.sum(grads[1] * dy)
      np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6)
    self_guided = jax.jit(lambda a: jnp.sum(weights * guided_filter(a, a, r=1, eps=0.2)))
    grad_x = jax.grad(self_guided)(x)
    numeric = (self_guided(x + h * dx) - self_guided(x - h * dx)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(grad_x * dx)), float(numeric), rtol=1e-6)


def test_bad_input():
  with pytest.raises(ValueError, match="one shape"):
    guided_filter(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 1)), r=1, eps=0.1)
  with pytest.raises(ValueError, match="r=-1"):
    box_filter(jnp.zeros((1, 4, 4, 3)), r=-1)
  with pytest.raises(ValueError, match="shape"):
    box_filter(jnp.zeros((4, 4, 3)), r=1)
