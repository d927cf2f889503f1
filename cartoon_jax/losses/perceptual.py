"""Content/structure feature L1 and total variation, with the authors' extra normalisations."""

import math

import jax
import jax.numpy as jnp

from cartoon_jax.losses.common import at_least_f32


def content_loss(feat_a: jax.Array, feat_b: jax.Array) -> jax.Array:
  """mean(|feat_a - feat_b|) / (h * w * c) for features (B, h, w, c), as the authors' code.

  The mean is already per element; the second division (inherited from White-box) makes the
  loss resolution dependent (200 / 524288 per mean-abs unit at 256x256 with VGG19 conv4_4).
  """
  if feat_a.shape != feat_b.shape or feat_a.ndim < 2:
    raise ValueError(
      f"content_loss needs two (B, ...) features of one shape, got {feat_a.shape} "
      f"and {feat_b.shape}"
    )
  diff = jnp.abs(at_least_f32(feat_a) - at_least_f32(feat_b))
  return jnp.mean(diff) / math.prod(feat_a.shape[1:])


def tv_loss(y: jax.Array) -> jax.Array:
  """(mean of squared vertical + mean of squared horizontal differences) / (C * H * W).

  y: (B, H, W, C) images; H, W >= 2. The authors' VariationLoss(k_size=1).
  """
  if y.ndim != 4 or y.shape[1] < 2 or y.shape[2] < 2:
    raise ValueError(f"tv_loss expects (B, H, W, C) with H, W >= 2, got shape {y.shape}")
  y = at_least_f32(y)
  dh = jnp.mean(jnp.square(y[:, 1:] - y[:, :-1]))
  dw = jnp.mean(jnp.square(y[:, :, 1:] - y[:, :, :-1]))
  return (dh + dw) / math.prod(y.shape[1:])
