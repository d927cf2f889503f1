"""Spectral-norm patch discriminator (the authors' SpectNormDiscriminator, patch=True)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from cartoon_jax.models.generator import torch_conv_init

SLOPE = 0.01  # nn.LeakyReLU() default in the authors' discriminator


class PatchDiscriminator(nn.Module):
  """(B, H, W, Cin) -> logits (B, H/8, W/8, 1); Cin = 3 (surface) or 1 (texture), inferred at init.

  3 stages of [SN-conv 3x3 stride 2, lrelu, SN-conv 3x3, lrelu] with widths C, 2C, 4C, then an SN
  1x1 conv head. Padding is symmetric (1 for the 3x3 convs) and init is PyTorch's, as in the
  authors' code. Spectral norm: flax.linen.SpectralNorm with one power iteration per forward (u and
  sigma in 'batch_stats'), eps 1e-12. Call with mutable=['batch_stats'] when update_stats is True.
  """

  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool = True) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"PatchDiscriminator: expected NHWC input, got shape {x.shape}")
    x = x.astype(self.dtype)

    def sn_conv(y, features, kernel_size, stride, name):
      pad = kernel_size // 2
      kernel_init, bias_init = torch_conv_init(y.shape[-1] * kernel_size * kernel_size)
      conv = nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dtype=self.dtype,
        kernel_init=kernel_init,
        bias_init=bias_init,
        name=name,
      )
      return nn.SpectralNorm(conv, n_steps=1, epsilon=1e-12, name=f"sn_{name}")(
        y, update_stats=update_stats
      )

    for stage in range(3):
      width = self.channels * 2**stage
      x = nn.leaky_relu(sn_conv(x, width, 3, 2, f"conv{stage}_0"), SLOPE)
      x = nn.leaky_relu(sn_conv(x, width, 3, 1, f"conv{stage}_1"), SLOPE)
    return sn_conv(x, 1, 1, 1, "head")
