"""Helpers shared by the loss modules."""

import jax
import jax.numpy as jnp


def at_least_f32(x: jax.Array) -> jax.Array:
  """x in float32, or unchanged where it is already float64: losses reduce in >= float32."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))
