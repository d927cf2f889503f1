"""PMC loss: global form vs the naive N x N maps, sampled form vs a loop over the authors' steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.losses import pmc

# Jitted once: eager mode would compile every primitive separately (slow on a shared 2-core box).
global_layer = jax.jit(pmc.pmc_global_layer, static_argnames="form")
sampled_layer = jax.jit(pmc.pmc_sampled_layer, static_argnames=("window", "rank"))


def _frames(seed, shape, *, relu=False):
  """Four correlated feature maps (s0, s1, t0, t1): s1/t1 are noisy shifted copies of s0/t0."""
  rng = np.random.default_rng(seed)
  s0 = rng.normal(size=shape)
  t0 = 0.6 * s0 + rng.normal(size=shape)
  s1 = np.roll(s0, 1, axis=2) + 0.3 * rng.normal(size=shape)
  t1 = np.roll(t0, 1, axis=2) + 0.5 * rng.normal(size=shape)
  frames = [s0, s1, t0, t1]
  if relu:
    frames = [np.maximum(f, 0.0) for f in frames]
  return [f.astype(np.float32) for f in frames]


def _np_centre_normalise(f):
  b, h, w, m = f.shape
  f = f.astype(np.float64).reshape(b, h * w, m)
  f = f - f.mean(axis=1, keepdims=True)
  return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)


def _np_cosine(u, v):
  return float(u @ v / (max(np.linalg.norm(u), 1e-8) * max(np.linalg.norm(v), 1e-8)))


def _np_global_layer(s0, s1, t0, t1):
  """Paper eqs. 5-7 literally: build both N x N maps, then 1 - cos of every row pair."""
  a, b, c, d = (_np_centre_normalise(f) for f in (s0, s1, t0, t1))
  distances = []
  for i in range(a.shape[0]):
    map_s = a[i] @ b[i].T
    map_t = c[i] @ d[i].T
    for row in range(map_s.shape[0]):
      distances.append(1.0 - _np_cosine(map_s[row], map_t[row]))
  return float(np.mean(distances))


def _np_sampled_layer(s0, s1, t0, t1, positions, *, window, rank):
  """The authors' PatchSim + cosine loss, query by query."""
  bsz, h, w, m = s0.shape
  windowed = window < h and window < w

  def keys_of(p):
    if not windowed:
      return list(range(h * w))
    row, col = divmod(int(p), w)
    r0 = min(max(row - window // 2, 0), h - window)
    c0 = min(max(col - window // 2, 0), w - window)
    return [(r0 + i) * w + c0 + j for i in range(window) for j in range(window)]

  def correlation(f1, f2):
    query = _np_centre_normalise(f1)
    raw = f2.astype(np.float64).reshape(bsz, h * w, m)
    return np.array(
      [[[query[b, p] @ raw[b, j] for j in keys_of(p)] for p in positions] for b in range(bsz)]
    )

  src, tgt = correlation(s0, s1), correlation(t0, t1)
  distances = []
  for b in range(bsz):
    for k in range(len(positions)):
      u, v = src[b, k].copy(), tgt[b, k].copy()
      if rank:
        threshold = np.sort(v)[::-1][len(v) // 4]
        drop = v < threshold
        u[drop] = 0.0
        v[drop] = 0.0
      distances.append(1.0 - _np_cosine(u, v))
  return float(np.mean(distances))


@pytest.mark.parametrize(
  "shape, relu",
  [
    ((2, 8, 8, 6), False),  # N = 64 > 3M: Gram form
    ((2, 3, 3, 16), True),  # N = 9 < M: direct form
    ((1, 4, 6, 5), False),  # non-square
    ((2, 5, 5, 8), True),  # N = 25 > 3M = 24, ReLU features with zeros
  ],
)
def test_global_layer_matches_naive_maps(shape, relu):
  frames = _frames(0, shape, relu=relu)
  want = _np_global_layer(*frames)
  n, m = shape[1] * shape[2], shape[3]
  expected_form = "direct" if n <= 3 * m else "gram"
  assert pmc.global_form(n, m) == expected_form
  for form in pmc.FORMS:
    got = float(global_layer(*map(jnp.asarray, frames), form=form))
    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=form)


def test_global_loss_is_mean_over_layers():
  layers = [_frames(1, (2, 8, 8, 4)), _frames(2, (2, 4, 4, 8)), _frames(3, (2, 2, 2, 16))]
  want = np.mean([_np_global_layer(*frames) for frames in layers])
  s0, s1, t0, t1 = ([jnp.asarray(frames[i]) for frames in layers] for i in range(4))
  np.testing.assert_allclose(float(jax.jit(pmc.pmc_loss)(s0, s1, t0, t1)), want, atol=1e-5)


def test_global_ignores_per_frame_offset_and_scale():
  """Centring and normalising make C invariant to a per-channel offset and a positive scale."""
  s0, s1, _, _ = _frames(4, (2, 6, 6, 4))
  offset = np.random.default_rng(5).normal(size=(1, 1, 1, 4)).astype(np.float32)
  t0, t1 = 3.0 * s0 + offset, 0.5 * s1 - offset
  for form in ("gram", "direct"):
    loss = global_layer(*map(jnp.asarray, (s0, s1, t0, t1)), form=form)
    np.testing.assert_allclose(float(loss), 0.0, atol=1e-6)


def test_zero_features_give_finite_loss_and_gradient():
  s0, s1, t0, t1 = map(jnp.asarray, _frames(6, (1, 6, 6, 3)))
  t0 = jnp.zeros_like(t0)
  positions = jnp.arange(0, 36, 4)

  @jax.jit
  def losses_and_grads(t0, t1):
    out = {}
    for form in ("gram", "direct"):
      fn = lambda a, b, f=form: pmc.pmc_global_layer(s0, s1, a, b, form=f)
      out[form] = jax.value_and_grad(fn, argnums=(0, 1))(t0, t1)
    zero = jnp.zeros_like(t0)
    out["sampled"] = jax.value_and_grad(
      lambda a: pmc.pmc_sampled_layer(a, a, a, a, positions, window=4)
    )(zero)
    return out

  for name, (loss, grads) in losses_and_grads(t0, t1).items():
    np.testing.assert_allclose(float(loss), 1.0, atol=1e-6, err_msg=name)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads)), name


def test_query_positions_are_a_permutation_prefix():
  positions = np.asarray(pmc.sample_query_positions(jax.random.key(1), 100, 30))
  assert positions.shape == (30,) and len(set(positions.tolist())) == 30
  assert positions.min() >= 0 and positions.max() < 100
  everything = np.asarray(pmc.sample_query_positions(jax.random.key(1), 20, 256))
  assert sorted(everything.tolist()) == list(range(20))


@pytest.mark.parametrize(
  "shape, window, num_queries, rank",
  [
    ((2, 8, 8, 4), 4, 10, False),  # windows clamped at the borders
    ((2, 8, 8, 4), 4, 10, True),
    ((2, 4, 4, 4), 4, 10, False),  # map not larger than the window: every position is a key
    ((1, 6, 9, 3), 4, 12, True),  # non-square
    ((2, 3, 3, 4), 32, 256, True),  # fewer positions than queries
  ],
)
def test_sampled_layer_matches_loop_reference(shape, window, num_queries, rank):
  frames = _frames(7, shape)
  positions = pmc.sample_query_positions(jax.random.key(2), shape[1] * shape[2], num_queries)
  got = sampled_layer(*map(jnp.asarray, frames), positions, window=window, rank=rank)
  want = _np_sampled_layer(*frames, np.asarray(positions), window=window, rank=rank)
  np.testing.assert_allclose(float(got), want, atol=1e-5)


def test_window_key_indices_clamp():
  keys = np.asarray(pmc.window_key_indices(jnp.array([0, 27, 63]), 8, 8, 4))
  np.testing.assert_array_equal(keys[0], [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27])
  # position 27 = (3, 3): block starts at (1, 1)
  assert keys[1][0] == 9 and keys[1][-1] == 36
  # position 63 = (7, 7): block clamped to start at (4, 4)
  assert keys[2][0] == 36 and keys[2][-1] == 63


def test_sampled_loss_draws_one_position_set_per_layer():
  layers = [_frames(8, (2, 8, 8, 4)), _frames(9, (2, 4, 4, 8))]
  s0, s1, t0, t1 = ([jnp.asarray(frames[i]) for frames in layers] for i in range(4))
  rng = jax.random.key(3)
  loss_fn = jax.jit(pmc.pmc_loss, static_argnames=("mode", "num_queries", "window", "rank"))
  got = loss_fn(
    s0, s1, t0, t1, mode="sampled_official", rng=rng, num_queries=10, window=4, rank=True
  )
  want = []
  for layer_rng, frames in zip(jax.random.split(rng, 2), layers, strict=True):
    n = frames[0].shape[1] * frames[0].shape[2]
    positions = np.asarray(pmc.sample_query_positions(layer_rng, n, 10))
    want.append(_np_sampled_layer(*frames, positions, window=4, rank=True))
  np.testing.assert_allclose(float(got), np.mean(want), atol=1e-5)


def _directional_check(loss_fn, frames, seed):
  """Central finite difference along a random direction in all four inputs vs jax.grad (x64)."""
  loss_fn = jax.jit(loss_fn)
  with jax.enable_x64(True):
    args = [jnp.asarray(f, jnp.float64) for f in frames]
    rng = np.random.default_rng(seed)
    direction = [jnp.asarray(rng.normal(size=f.shape)) for f in frames]
    grads = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2, 3)))(*args)
    analytic = sum(float(jnp.sum(g * v)) for g, v in zip(grads, direction, strict=True))
    step = 1e-6
    plus = loss_fn(*[a + step * v for a, v in zip(args, direction, strict=True)])
    minus = loss_fn(*[a - step * v for a, v in zip(args, direction, strict=True)])
    numeric = float(plus - minus) / (2 * step)
  assert abs(analytic) > 1e-4
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("form", ["gram", "direct"])
def test_global_gradient_matches_finite_differences(form):
  frames = _frames(10, (2, 5, 5, 4), relu=True)
  _directional_check(lambda *a: pmc.pmc_global_layer(*a, form=form), frames, seed=11)


@pytest.mark.parametrize("rank", [False, True])
def test_sampled_gradient_matches_finite_differences(rank):
  frames = _frames(12, (2, 6, 6, 3))
  positions = pmc.sample_query_positions(jax.random.key(4), 36, 8)
  _directional_check(
    lambda *a: pmc.pmc_sampled_layer(*a, positions, window=4, rank=rank), frames, seed=13
  )


def test_bad_arguments_raise():
  f = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="mode"):
    pmc.pmc_loss([f], [f], [f], [f], mode="local")
  with pytest.raises(ValueError, match="rng"):
    pmc.pmc_loss([f], [f], [f], [f], mode="sampled_official")
  with pytest.raises(ValueError, match="rank"):
    pmc.pmc_loss([f], [f], [f], [f], rank=True)
  with pytest.raises(ValueError, match="one shape"):
    pmc.pmc_loss([f], [f], [f], [jnp.zeros((1, 4, 4, 3))])
  with pytest.raises(ValueError, match="lengths"):
    pmc.pmc_loss([f, f], [f], [f], [f])
