"""Losses: LSGAN, content/structure feature L1, total variation, PMC, and the G/D objectives."""

from cartoon_jax.losses.gan import lsgan_d_loss, lsgan_g_loss
from cartoon_jax.losses.objectives import (
  LossOptions,
  LossWeights,
  Nets,
  discriminator_inputs,
  discriminator_loss,
  generator_loss,
  pretrain_loss,
)
from cartoon_jax.losses.perceptual import content_loss, tv_loss
from cartoon_jax.losses.pmc import pmc_loss

__all__ = [
  "LossOptions",
  "LossWeights",
  "Nets",
  "content_loss",
  "discriminator_inputs",
  "discriminator_loss",
  "generator_loss",
  "lsgan_d_loss",
  "lsgan_g_loss",
  "pmc_loss",
  "pretrain_loss",
  "tv_loss",
]
