"""SSA's forward pass on the CPU as one custom call (`ssa_cpu.cc`); its reference is
`models.ssa.ssa_forward`, which XLA's CPU backend compiles to several passes over R^2 shifted
views of the key (5x a convolution's time at video resolution)."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax.kernels import native

SOURCE = "ssa_cpu.cc"
# FFI target name -> the library's handler symbol.
TARGETS = {
  "cartoon_jax_ssa_forward": "CartoonJaxSsaForward",
  "cartoon_jax_ssa_forward_with_probs": "CartoonJaxSsaForwardWithProbs",
}


@functools.cache
def available() -> bool:
  """True once the kernel is built and registered for the CPU; False (with one warning naming the
  cause) when it cannot be built, and SSA then runs its pure-JAX form."""
  try:
    library = native.load(SOURCE)
  except native.KernelBuildError as e:
    warnings.warn(f"SSA runs without its CPU kernel (slower): {e}", stacklevel=2)
    return False
  for target, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
  return True


def forward(
  query: jax.Array, key: jax.Array, patch_size: int, *, with_probs: bool
) -> tuple[jax.Array, jax.Array | None]:
  """(out (B, H, W, C), softmax (B, H, W, R^2) if `with_probs` else None) of SSA for float32 NHWC
  query and key of one shape, as `models.ssa.ssa_forward`. Call only where `available()` is
  True, on the CPU."""
  # The results' types from the query's (inside shard_map they vary over the same mesh axes).
  like = jax.typeof(query)
  out = like.update(dtype=jnp.float32)
  attrs = {"patch_size": np.int64(patch_size)}
  if not with_probs:
    call = jax.ffi.ffi_call("cartoon_jax_ssa_forward", out, vmap_method="sequential")
    return call(query, key, **attrs), None
  probs = like.update(shape=(*query.shape[:3], patch_size * patch_size), dtype=jnp.float32)
  call = jax.ffi.ffi_call(
    "cartoon_jax_ssa_forward_with_probs", (out, probs), vmap_method="sequential"
  )
  return tuple(call(query, key, **attrs))
