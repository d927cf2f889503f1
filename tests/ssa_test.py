"""SSA against a plain NumPy loop reference, and its gradients against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.models.ssa import ssa


def _neighbours(key: np.ndarray, b: int, y: int, x: int, r: int) -> np.ndarray:
  """(R*R, C) neighbours of (y, x) in row-major offset order, zeros outside the map."""
  _, h, w, c = key.shape
  out = np.zeros((r * r, c), np.float64)
  for i, dy in enumerate(range(-(r // 2), r // 2 + 1)):
    for j, dx in enumerate(range(-(r // 2), r // 2 + 1)):
      if 0 <= y + dy < h and 0 <= x + dx < w:
        out[i * r + j] = key[b, y + dy, x + dx]
  return out


def ssa_reference(query: np.ndarray, key: np.ndarray, r: int) -> np.ndarray:
  bsz, h, w, _ = query.shape
  out = np.zeros(query.shape, np.float64)
  for b in range(bsz):
    for y in range(h):
      for x in range(w):
        nb = _neighbours(key, b, y, x, r)
        logits = nb @ query[b, y, x].astype(np.float64)
        p = np.exp(logits - logits.max())
        out[b, y, x] = (p / p.sum()) @ nb
  return out


def _inputs(shape, seed=0, scale=0.7):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=shape) * scale).astype(np.float32), (
    rng.normal(size=shape) * scale
  ).astype(np.float32)


@pytest.mark.parametrize(
  "shape, r", [((2, 5, 7, 3), 3), ((1, 6, 4, 5), 5), ((2, 7, 9, 2), 7), ((1, 3, 3, 4), 7)]
)
def test_ssa_matches_numpy_loop(shape, r):
  q, k = _inputs(shape)
  got = np.asarray(jax.jit(lambda q, k: ssa(q, k, patch_size=r))(q, k))
  np.testing.assert_allclose(got, ssa_reference(q, k, r), atol=1e-5, rtol=1e-5)


def test_border_neighbours_keep_softmax_mass():
  # Zero query: uniform softmax over 9 neighbours, so a corner (5 zero neighbours) gets 4/9.
  q = np.zeros((1, 4, 4, 1), np.float32)
  k = np.ones((1, 4, 4, 1), np.float32)
  got = np.asarray(ssa(q, k, patch_size=3))[0, :, :, 0]
  assert got[1, 1] == pytest.approx(1.0)
  assert got[0, 0] == pytest.approx(4 / 9)
  assert got[0, 1] == pytest.approx(6 / 9)


def _finite_difference_check(f, args, eps=1e-3, n=12, seed=0):
  """Directional finite differences of a scalar f against jax.grad, per argument."""
  grads = jax.grad(f, argnums=tuple(range(len(args))))(*args)
  rng = np.random.default_rng(seed)
  for i, (arg, grad) in enumerate(zip(args, grads, strict=True)):
    for _ in range(n // len(args)):
      d = rng.normal(size=arg.shape).astype(np.float64)
      plus = [np.asarray(a, np.float64) for a in args]
      minus = [np.asarray(a, np.float64) for a in args]
      plus[i] = plus[i] + eps * d
      minus[i] = minus[i] - eps * d
      numeric = (f(*plus) - f(*minus)) / (2 * eps)
      analytic = float(np.sum(np.asarray(grad, np.float64) * d))
      assert analytic == pytest.approx(float(numeric), rel=1e-4, abs=1e-6), (i, analytic, numeric)


@pytest.mark.parametrize("r", [3, 5])
def test_ssa_gradients_match_finite_differences(r):
  q, k = _inputs((2, 4, 5, 3), seed=2)
  weights = np.random.default_rng(3).normal(size=q.shape)
  with jax.enable_x64(True):
    f = lambda q, k: jnp.sum(ssa(q, k, patch_size=r) * weights)
    _finite_difference_check(f, (q.astype(np.float64), k.astype(np.float64)))


def test_ssa_gradient_equals_autodiff_of_plain_form():
  # The custom backward pass against autodiff through a direct stacked-views form.
  q, k = _inputs((2, 6, 5, 4), seed=4)
  r = 3

  def plain(q, k):
    kp = jnp.pad(k, ((0, 0), (1, 1), (1, 1), (0, 0)))
    views = jnp.stack(
      [kp[:, dy : dy + 6, dx : dx + 5] for dy in range(r) for dx in range(r)], axis=3
    )
    p = jax.nn.softmax(jnp.einsum("bhwc,bhwdc->bhwd", q, views), axis=-1)
    return jnp.einsum("bhwd,bhwdc->bhwc", p, views)

  w = np.random.default_rng(5).normal(size=q.shape).astype(np.float32)
  got = jax.grad(lambda q, k: jnp.sum(ssa(q, k) * w), argnums=(0, 1))(q, k)
  want = jax.grad(lambda q, k: jnp.sum(plain(q, k) * w), argnums=(0, 1))(q, k)
  for g, e in zip(got, want, strict=True):
    np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=1e-5, rtol=1e-5)


def test_bad_arguments_raise():
  q = np.zeros((1, 4, 4, 2), np.float32)
  with pytest.raises(ValueError, match="patch_size"):
    ssa(q, q, patch_size=4)
  with pytest.raises(ValueError, match="same shape"):
    ssa(q, np.zeros((1, 4, 4, 3), np.float32))
