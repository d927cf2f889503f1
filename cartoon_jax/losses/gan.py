"""Least-squares GAN losses (the authors' LSGanLoss): real target 1, fake target 0."""

import jax
import jax.numpy as jnp

from cartoon_jax.losses.common import at_least_f32


def lsgan_g_loss(fake_logits: jax.Array) -> jax.Array:
  """Generator loss mean((D(fake) - 1)^2) over all batch elements and patch logits (no 0.5)."""
  fake = at_least_f32(jnp.asarray(fake_logits))
  return jnp.mean(jnp.square(fake - 1.0))


def lsgan_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Discriminator loss 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)); any logit shapes."""
  real = at_least_f32(jnp.asarray(real_logits))
  fake = at_least_f32(jnp.asarray(fake_logits))
  return 0.5 * (jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake)))
