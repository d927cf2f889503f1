"""Spatially-adaptive semantic alignment (SSA, paper eqs. 1-3; the authors' LocalAttention).

For every position p of the query map, the logits are raw dot products with the R x R neighbours
of p in the key map, s_d(p) = <q(p), k(p + d)>, softmax over the R^2 neighbours, and the output is
the softmax-weighted sum of the same neighbours (the key is also the value). Neighbours outside the
map are zero vectors: logit 0, value 0, but they keep their share of the softmax mass.

The forward math is written once, in `ssa_forward`, over a small array vocabulary `xp` (`_JaxArrays`
here on NHWC arrays, `onnx_export._Graph` as ONNX nodes on NCHW maps): the JAX operation and the
exported ONNX graph both run it, so a change of formulation there reaches both; a new primitive it
needs is added to both vocabularies.

The R^2 x C patches are never materialised: the forward pass reads R^2 shifted views of the
zero-padded key (on the CPU in float32, one custom call does the same in one pass:
`kernels.ssa_cpu`, tested against `ssa_forward`), and the custom backward pass recomputes those
views and accumulates the key gradient through shifted (zero-filled) views of per-offset terms,
keeping only the (B, H, W, R^2) softmax between the passes.
"""

from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax.kernels import ssa_cpu


class _JaxArrays:
  """SSA's array vocabulary on NHWC JAX arrays; 'channels' is the last axis."""

  @staticmethod
  def zero_pad(x: jax.Array, width: int) -> jax.Array:
    """`width` zero rows and columns on each side."""
    return jnp.pad(x, ((0, 0), (width, width), (width, width), (0, 0)))

  @staticmethod
  def crop(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """x without (first, last) `rows` and `cols`."""
    height, width = x.shape[1:3]
    return x[:, rows[0] : height - rows[1], cols[0] : width - cols[1]]

  @staticmethod
  def channel_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """Per-position dot product over the channels, as one channel, in at least float32."""
    dtype = jnp.promote_types(a.dtype, jnp.float32)
    return jnp.sum(a * b, axis=-1, keepdims=True, dtype=dtype)

  @staticmethod
  def concat(xs: list[jax.Array]) -> jax.Array:
    return jnp.concatenate(xs, axis=-1)

  @staticmethod
  def softmax(x: jax.Array) -> jax.Array:
    return jax.nn.softmax(x, axis=-1)

  @staticmethod
  def channel(x: jax.Array, index: int) -> jax.Array:
    return x[..., index : index + 1]

  @staticmethod
  def scale(weight: jax.Array, x: jax.Array) -> jax.Array:
    """x times the one-channel `weight`, in x's dtype."""
    return weight.astype(x.dtype) * x

  @staticmethod
  def add(a: jax.Array, b: jax.Array) -> jax.Array:
    return a + b


def _check(query: jax.Array, key: jax.Array, patch_size: int) -> None:
  if query.ndim != 4 or query.shape != key.shape:
    raise ValueError(
      f"ssa: query and key must be NHWC with the same shape, got {query.shape} and {key.shape}"
    )
  if patch_size < 1 or patch_size % 2 != 1:
    raise ValueError(f"ssa: patch_size must be a positive odd integer, got {patch_size}")


def _views(xp: Any, x: Any, patch_size: int) -> list[Any]:
  """The R^2 views x(p + d), d in [-R//2, R//2]^2 row-major, zero outside; each shaped as x."""
  padded = xp.zero_pad(x, patch_size // 2)
  last = patch_size - 1
  return [
    xp.crop(padded, (dy, last - dy), (dx, last - dx))
    for dy in range(patch_size)
    for dx in range(patch_size)
  ]


def _logits(xp: Any, query: Any, views: list[Any]) -> Any:
  """The R^2 dot products <query, view_d> as channels, in at least float32."""
  return xp.concat([xp.channel_dot(query, v) for v in views])


def _weighted_sum(xp: Any, weights: Any, views: list[Any]) -> Any:
  """sum_d weights_d * view_d, weights_d the d-th channel of `weights`."""
  out = None
  for i, v in enumerate(views):
    term = xp.scale(xp.channel(weights, i), v)
    out = term if out is None else xp.add(out, term)
  return out


def ssa_forward(xp: Any, query: Any, key: Any, patch_size: int) -> tuple[Any, Any]:
  """SSA's output and its softmax over the R^2 offsets (as channels), in vocabulary `xp`."""
  views = _views(xp, key, patch_size)
  probs = xp.softmax(_logits(xp, query, views))
  return _weighted_sum(xp, probs, views), probs


def _unshift_sum(terms: list[jax.Array], patch_size: int) -> jax.Array:
  """sum_d t_d(p - d): the adjoint of `_views` applied to per-offset terms t_d (B,H,W,C)."""
  half = patch_size // 2
  height, width = terms[0].shape[1:3]
  total = None
  for i, t in enumerate(terms):
    dy, dx = divmod(i, patch_size)
    shifted = jnp.pad(t, ((0, 0), (dy, patch_size - 1 - dy), (dx, patch_size - 1 - dx), (0, 0)))[
      :, half : half + height, half : half + width
    ]
    total = shifted if total is None else total + shifted
  return total


_CPU_KERNEL = {"enabled": True}


def use_cpu_kernel(enabled: bool) -> None:
  """Run SSA's forward pass through `kernels.ssa_cpu` on the CPU (the default) or through XLA
  (`ssa_forward`, the reference), in programs traced from now on (for benchmarks and tests)."""
  _CPU_KERNEL["enabled"] = bool(enabled)


def _forward(query: jax.Array, key: jax.Array, patch_size: int, *, with_probs: bool) -> Any:
  """`ssa_forward`'s output (and softmax if `with_probs`) on JAX arrays; the CPU kernel in its
  place for float32 on the CPU."""

  def reference(q, k):
    out, probs = ssa_forward(_JaxArrays, q, k, patch_size)
    return (out, probs) if with_probs else out

  def kernel(q, k):
    out, probs = ssa_cpu.forward(q, k, patch_size, with_probs=with_probs)
    return (out, probs) if with_probs else out

  float32 = query.dtype == key.dtype == jnp.float32
  on_cpu = jax.default_backend() == "cpu"  # no build on accelerator hosts
  if not (_CPU_KERNEL["enabled"] and float32 and on_cpu and ssa_cpu.available()):
    return reference(query, key)
  return jax.lax.platform_dependent(query, key, cpu=kernel, default=reference)


def _make_ssa(patch_size: int):
  @jax.custom_vjp
  def op(query, key):
    return _forward(query, key, patch_size, with_probs=False)

  def fwd(query, key):
    out, probs = _forward(query, key, patch_size, with_probs=True)
    return out, (query, key, probs)

  def bwd(residuals, grad_out):
    query, key, probs = residuals
    views = _views(_JaxArrays, key, patch_size)
    # d loss / d probs_d = <g, k(p+d)>; softmax backward gives the logit gradients.
    grad_probs = _logits(_JaxArrays, grad_out, views)
    grad_logits = probs * (grad_probs - jnp.sum(probs * grad_probs, axis=-1, keepdims=True))
    grad_query = _weighted_sum(_JaxArrays, grad_logits, views).astype(query.dtype)
    # k(p+d) receives probs_d(p) * g(p) (value path) + grad_logits_d(p) * q(p) (logit path).
    terms = [
      probs[..., i : i + 1].astype(key.dtype) * grad_out
      + grad_logits[..., i : i + 1].astype(key.dtype) * query
      for i in range(patch_size * patch_size)
    ]
    grad_key = _unshift_sum(terms, patch_size).astype(key.dtype)
    return grad_query, grad_key

  op.defvjp(fwd, bwd)
  return op


_OPS: dict[tuple[int, bool], object] = {}


def ssa(query: jax.Array, key: jax.Array, *, patch_size: int = 3) -> jax.Array:
  """Soft SSA: softmax(<q(p), k(p+d)>)-weighted sum of k(p+d) over the R x R neighbourhood.

  Args:
    query: (B, H, W, C) encoder feature.
    key: (B, H, W, C) upsampled decoder feature, also used as the value.
    patch_size: R, odd (the paper uses 3, 5, 7).

  Returns:
    (B, H, W, C) aggregated key features (dtype of key). Differentiable in query and key.
  """
  _check(query, key, patch_size)
  cache_key = (patch_size, _CPU_KERNEL["enabled"])
  if cache_key not in _OPS:
    _OPS[cache_key] = jax.jit(_make_ssa(patch_size))  # jit: one program also when called eagerly
  return _OPS[cache_key](query, key)
