"""The authors' SAGenerator (U-Net, residual bottleneck, SSA in the decoder skips) in Flax Linen.

Submodule names follow the authors' PyTorch module names (conv.0 .. conv9.0 -> conv .. conv9,
resblock.{i}.conv1/conv2 -> resblock_{i}/conv1, conv2), so the checkpoint converter's table reads
off directly.
"""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cartoon_jax.models.ssa import ssa
from cartoon_jax.ops.resize import upsample2x_align_corners

OUTER_SLOPE = 0.01  # nn.LeakyReLU() default, used outside the residual blocks
RESBLOCK_SLOPE = 0.2
SIZE_MULTIPLE = 4  # input height and width: two stride-2 convolutions, then two x2 upsamplings


def torch_conv_init(fan_in: int) -> tuple[Callable, Callable]:
  """PyTorch's Conv2d init: kernel kaiming_uniform(a=sqrt(5)) and bias, both U(+-1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def bias_init(rng, shape, dtype=jnp.float32):
    return jax.random.uniform(rng, shape, dtype, -bound, bound)

  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), bias_init


def torch_conv(
  x: jax.Array,
  features: int,
  kernel_size: int,
  *,
  name: str,
  stride: int = 1,
  dtype: jnp.dtype = jnp.float32,
) -> jax.Array:
  """nn.Conv with symmetric padding k//2 and PyTorch's init, created inside the calling module."""
  pad = kernel_size // 2
  kernel_init, bias_init = torch_conv_init(x.shape[-1] * kernel_size * kernel_size)
  return nn.Conv(
    features,
    (kernel_size, kernel_size),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    dtype=dtype,
    kernel_init=kernel_init,
    bias_init=bias_init,
    name=name,
  )(x)


class ResBlock(nn.Module):
  """y = lrelu_0.2(conv2(lrelu_0.2(conv1(x))) + x): activation after the residual add."""

  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = torch_conv(x, self.channels, 3, name="conv1", dtype=self.dtype)
    y = nn.leaky_relu(y, RESBLOCK_SLOPE)
    y = torch_conv(y, self.channels, 3, name="conv2", dtype=self.dtype)
    return nn.leaky_relu(y + x, RESBLOCK_SLOPE)


class SSAGenerator(nn.Module):
  """SAGenerator: (B, H, W, 3) in [-1, 1] -> (B, H, W, 3) tanh output; H, W multiples of 4.

  Attributes:
    channels: base width C (encoder C, 2C, 4C).
    num_blocks: residual blocks in the 4C bottleneck.
    ssa_patch_size: SSA neighbourhood R in both decoder skips; 0 gives plain additive skips.
    dtype: computation dtype (params stay float32).
  """

  channels: int
  num_blocks: int
  ssa_patch_size: int
  dtype: jnp.dtype = jnp.float32

  def _skip(self, encoder: jax.Array, decoder: jax.Array) -> jax.Array:
    if not self.ssa_patch_size:
      return encoder + decoder
    return encoder + ssa(encoder, decoder, patch_size=self.ssa_patch_size)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"SSAGenerator: expected (B, H, W, 3) input, got shape {x.shape}")
    height, width = x.shape[1:3]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
      raise ValueError(
        f"SSAGenerator: height and width must be multiples of {SIZE_MULTIPLE}, got "
        f"{height}x{width} (pad the input, e.g. with cartoon_jax.ops.pad.pad_to_multiple)"
      )
    c = self.channels
    conv = lambda y, features, k, name, stride=1: torch_conv(
      y, features, k, name=name, stride=stride, dtype=self.dtype
    )
    act = lambda y: nn.leaky_relu(y, OUTER_SLOPE)
    x = x.astype(self.dtype)

    x0 = act(conv(x, c, 7, "conv"))
    x1 = act(conv(x0, c, 3, "conv1", 2))
    x1 = act(conv(x1, 2 * c, 3, "conv2"))
    x2 = act(conv(x1, 2 * c, 3, "conv3", 2))
    x2 = act(conv(x2, 4 * c, 3, "conv4"))
    for i in range(self.num_blocks):
      x2 = ResBlock(4 * c, dtype=self.dtype, name=f"resblock_{i}")(x2)
    x2 = act(conv(x2, 2 * c, 3, "conv5"))

    x3 = self._skip(x1, upsample2x_align_corners(x2))
    x3 = act(conv(x3, 2 * c, 3, "conv6"))
    x3 = act(conv(x3, c, 3, "conv7"))

    x4 = self._skip(x0, upsample2x_align_corners(x3))
    x4 = act(conv(x4, c, 3, "conv8"))
    return jnp.tanh(conv(x4, 3, 7, "conv9"))
