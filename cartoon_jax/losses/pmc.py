"""Perceptual motion consistency (PMC): spatio-temporal correlative maps of the paper's eqs. 5-7.

For one feature layer with frames s0, s1 (inputs) and t0, t1 (outputs), each (B, H, W, M) with
N = H * W positions, the correlative map C_{s0,s1} has row i = <h(s0)_i, h(s1)_j> over all j, and
the loss is the mean over rows i (and the batch) of 1 - cos(row i of C_{s0,s1}, row i of
C_{t0,t1}). Two forms:

- "global" (default): the paper's N x N maps, exact, with every frame's features mean-centred
  (per sample and channel, over positions) and L2-normalised per position. Row i of C_s dotted with
  row i of C_t is a_i^T (B^T D) c_i and |row i of C_s|^2 = a_i^T (B^T B) a_i (a, b, c, d the
  features of s0, s1, t0, t1), so three M x M Gram matrices give every row's cosine in O(N M^2)
  without building the maps. Where that costs more than the maps (N <= 3 M) the maps are built.
- "sampled_official": the authors' code: 256 random query rows shared over the batch and both
  pairs, 32 x 32 key windows clamped to the map where the map is larger than the window on both
  sides (else every position), frame-1 features centred and normalised, frame-2 features raw,
  optional top-quarter rank masking with the threshold taken from the output map.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax.losses.common import at_least_f32

NORMALIZE_EPS = 1e-12  # F.normalize
COSINE_EPS = 1e-8  # F.cosine_similarity
FORMS = ("auto", "gram", "direct")
MODES = ("global", "sampled_official")


def _clamped_norm(x: jax.Array, *, axis: int, eps: float, keepdims: bool = False) -> jax.Array:
  """max(||x||_2, eps) along `axis`; its gradient is finite (zero) at x = 0."""
  return jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=keepdims), eps * eps))


def _cosine_from_products(dot: jax.Array, sq_a: jax.Array, sq_b: jax.Array) -> jax.Array:
  """dot / (max(|a|, eps) * max(|b|, eps)) from <a, b>, |a|^2 and |b|^2 (eps = 1e-8)."""
  floor = COSINE_EPS * COSINE_EPS
  return dot / (jnp.sqrt(jnp.maximum(sq_a, floor)) * jnp.sqrt(jnp.maximum(sq_b, floor)))


def centre_normalise(features: jax.Array) -> jax.Array:
  """(B, H, W, M) -> (B, N, M), at least float32: minus the per-sample channel mean over
  positions, then divided by max(L2 norm over channels, 1e-12) at every position (F.normalize)."""
  b, h, w, m = features.shape
  f = at_least_f32(features).reshape(b, h * w, m)
  f = f - jnp.mean(f, axis=1, keepdims=True)
  return f / _clamped_norm(f, axis=-1, eps=NORMALIZE_EPS, keepdims=True)


def _check_layer(s0: jax.Array, s1: jax.Array, t0: jax.Array, t1: jax.Array) -> None:
  shapes = {a.shape for a in (s0, s1, t0, t1)}
  if len(shapes) != 1 or s0.ndim != 4:
    raise ValueError(
      "pmc_loss needs four (B, H, W, M) features of one shape per layer, got "
      f"{[tuple(a.shape) for a in (s0, s1, t0, t1)]}"
    )


def global_form(num_positions: int, num_channels: int) -> str:
  """'direct' where building the two N x N maps (2 N^2 M multiply-adds) is no dearer than the
  Gram route (6 N M^2: three Gram matrices and three row quadratic forms), else 'gram'."""
  return "direct" if num_positions <= 3 * num_channels else "gram"


def pmc_global_layer(
  s0: jax.Array, s1: jax.Array, t0: jax.Array, t1: jax.Array, *, form: str = "auto"
) -> jax.Array:
  """Exact global PMC of one layer: mean over batch and all N rows of 1 - cos(C_s row, C_t row).

  s0, s1, t0, t1: (B, H, W, M) features of frame 1/frame 2 of the inputs and of the outputs. Every
  frame is centred and normalised (`centre_normalise`); cosine eps 1e-8. form: 'auto' (cheaper of
  the two), 'gram' (three M x M Gram matrices) or 'direct' (the N x N maps; for tests and
  benchmarks). Returns a scalar in [0, 2].
  """
  _check_layer(s0, s1, t0, t1)
  if form not in FORMS:
    raise ValueError(f"pmc_global_layer form={form!r}: expected one of {FORMS}")
  a, b, c, d = (centre_normalise(f) for f in (s0, s1, t0, t1))
  if form == "auto":
    form = global_form(a.shape[1], a.shape[2])
  if form == "direct":
    cs = jnp.einsum("bim,bjm->bij", a, b)
    ct = jnp.einsum("bim,bjm->bij", c, d)
    dot, sq_s, sq_t = (jnp.sum(u * v, axis=-1) for u, v in ((cs, ct), (cs, cs), (ct, ct)))
  else:
    g_bd = jnp.einsum("bnm,bnk->bmk", b, d)
    g_bb = jnp.einsum("bnm,bnk->bmk", b, b)
    g_dd = jnp.einsum("bnm,bnk->bmk", d, d)
    dot = jnp.sum(jnp.einsum("bnm,bmk->bnk", a, g_bd) * c, axis=-1)
    sq_s = jnp.sum(jnp.einsum("bnm,bmk->bnk", a, g_bb) * a, axis=-1)
    sq_t = jnp.sum(jnp.einsum("bnm,bmk->bnk", c, g_dd) * c, axis=-1)
  return jnp.mean(1.0 - _cosine_from_products(dot, sq_s, sq_t))


def sample_query_positions(rng: jax.Array, num_positions: int, num_queries: int = 256) -> jax.Array:
  """The first min(num_queries, num_positions) entries of a random permutation of the flat
  (row-major) positions 0..num_positions-1 (torch.randperm prefix in the authors' code)."""
  count = min(num_queries, num_positions)
  return jax.random.permutation(rng, num_positions)[:count]


def window_key_indices(positions: jax.Array, height: int, width: int, window: int) -> jax.Array:
  """Flat key positions (P, window^2) of the window x window block around each query, clamped.

  The block starts at (clip(row - window//2, 0, H - window), clip(col - window//2, 0, W - window))
  and is flattened row-major. Only meaningful where window < H and window < W. (The authors'
  code takes row = id // H, which equals id // W on their square maps; this uses id // W.)
  """
  row, col = positions // width, positions % width
  r0 = jnp.clip(row - window // 2, 0, height - window)
  c0 = jnp.clip(col - window // 2, 0, width - window)
  offsets = np.arange(window)
  rows = r0[:, None, None] + offsets[None, :, None]
  cols = c0[:, None, None] + offsets[None, None, :]
  return (rows * width + cols).reshape(positions.shape[0], window * window)


def pmc_sampled_layer(
  s0: jax.Array,
  s1: jax.Array,
  t0: jax.Array,
  t1: jax.Array,
  positions: jax.Array,
  *,
  window: int = 32,
  rank: bool = False,
) -> jax.Array:
  """The authors' PMC of one layer at the given flat query positions (P,), shared over the batch.

  Map S[b, k, j] = <normalised centred frame-1 feature at positions[k], raw frame-2 feature at
  key j of query k>; keys are the clamped window x window block where window < H and window < W,
  else every position. rank=True zeroes, in both maps, the entries where the output map is below
  its (floor(K/4)+1)-th largest value of the row (K keys). Returns the mean over batch and
  queries of 1 - cos(S_src row, S_tgt row) (cosine eps 1e-8), a scalar.
  """
  _check_layer(s0, s1, t0, t1)
  bsz, h, w, m = s0.shape
  windowed = window < h and window < w
  keys = window_key_indices(positions, h, w, window) if windowed else None

  def correlation(f1: jax.Array, f2: jax.Array) -> jax.Array:
    query = centre_normalise(f1)[:, positions]
    full = jnp.einsum("bpm,bnm->bpn", query, at_least_f32(f2).reshape(bsz, h * w, m))
    if keys is None:
      return full
    return full[:, jnp.arange(keys.shape[0])[:, None], keys]

  src = correlation(s0, s1)
  tgt = correlation(t0, t1)
  if rank:
    threshold = jax.lax.top_k(tgt, tgt.shape[-1] // 4 + 1)[0][..., -1:]
    keep = tgt >= threshold
    src = jnp.where(keep, src, 0.0)
    tgt = jnp.where(keep, tgt, 0.0)
  dot, sq_s, sq_t = (jnp.sum(u * v, axis=-1) for u, v in ((src, tgt), (src, src), (tgt, tgt)))
  return jnp.mean(1.0 - _cosine_from_products(dot, sq_s, sq_t))


def pmc_loss(
  s0: Sequence[jax.Array],
  s1: Sequence[jax.Array],
  t0: Sequence[jax.Array],
  t1: Sequence[jax.Array],
  *,
  mode: str = "global",
  rng: jax.Array | None = None,
  num_queries: int = 256,
  window: int = 32,
  rank: bool = False,
) -> jax.Array:
  """PMC loss, the mean over layers of the per-layer loss (a scalar in [0, 2]).

  s0, s1, t0, t1: lists (one entry per layer) of (B, H, W, M) features of the input frame, the
  second input frame, and the generator outputs of both. mode 'global' (`pmc_global_layer`) or
  'sampled_official' (`pmc_sampled_layer`; needs `rng`, split into one query draw per layer;
  num_queries, window and rank apply to it only).
  """
  if mode not in MODES:
    raise ValueError(f"pmc_loss mode={mode!r}: expected one of {MODES}")
  if not (len(s0) == len(s1) == len(t0) == len(t1)) or not s0:
    raise ValueError(
      f"pmc_loss needs one feature per layer in each of s0, s1, t0, t1, got lengths "
      f"{[len(s0), len(s1), len(t0), len(t1)]}"
    )
  if mode == "global":
    if rank:
      raise ValueError("pmc_loss: rank=True exists only with mode='sampled_official'")
    losses = [pmc_global_layer(*layer) for layer in zip(s0, s1, t0, t1, strict=True)]
  else:
    if rng is None:
      raise ValueError("pmc_loss mode='sampled_official' needs an rng for the query positions")
    losses = []
    layers = zip(s0, s1, t0, t1, strict=True)
    for layer_rng, layer in zip(jax.random.split(rng, len(s0)), layers, strict=True):
      positions = sample_query_positions(
        layer_rng, layer[0].shape[1] * layer[0].shape[2], num_queries
      )
      losses.append(pmc_sampled_layer(*layer, positions, window=window, rank=rank))
  return jnp.mean(jnp.stack(losses))
