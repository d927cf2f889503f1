"""The authors' SAGenerator (U-Net, residual bottleneck, SSA in the decoder skips) in Flax Linen.

The architecture is written once, in `generator_forward`, over a vocabulary of layers `layers`:
`_FlaxLayers` builds the Flax module from it and `onnx_export._Graph` the ONNX graph, so adding a
layer is one edit there. The vocabulary, x being a feature map in the backend's layout:

  conv(x, features, kernel_size, *, name, stride=1): 2-D convolution, padding k//2, with bias
  leaky_relu(x, slope), add(x, y), tanh(x)
  upsample2x(x): bilinear x2 with aligned corners
  ssa(query, key, patch_size): `models.ssa.ssa`
  block(name, fn, x): fn(layers, x) with its layers named under `name`

Layer names follow the authors' PyTorch module names (conv.0 .. conv9.0 -> conv .. conv9,
resblock.{i}.conv1/conv2 -> resblock_{i}/conv1, conv2), so the checkpoint converter's table reads
off directly.
"""

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

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


def residual_block(layers: Any, x: Any, *, channels: int) -> Any:
  """y = lrelu_0.2(conv2(lrelu_0.2(conv1(x))) + x): activation after the residual add."""
  y = layers.leaky_relu(layers.conv(x, channels, 3, name="conv1"), RESBLOCK_SLOPE)
  y = layers.conv(y, channels, 3, name="conv2")
  return layers.leaky_relu(layers.add(y, x), RESBLOCK_SLOPE)


def generator_forward(
  layers: Any, x: Any, *, channels: int, num_blocks: int, ssa_patch_size: int
) -> Any:
  """SAGenerator's layers on the input map `x`, in the vocabulary `layers` (see the docstring).

  Encoder C, 2C, 4C with two stride-2 convolutions, `num_blocks` residual blocks at 4C, and a
  decoder whose two skips add SSA(encoder, upsampled decoder) with patch size `ssa_patch_size`
  (0: the upsampled decoder itself) to the encoder feature; tanh output with 3 channels.
  """
  c = channels

  def conv(y, features, kernel_size, name, stride=1):
    y = layers.conv(y, features, kernel_size, name=name, stride=stride)
    return layers.leaky_relu(y, OUTER_SLOPE)

  def skip(encoder, decoder):
    decoder = layers.upsample2x(decoder)
    if ssa_patch_size:
      decoder = layers.ssa(encoder, decoder, ssa_patch_size)
    return layers.add(encoder, decoder)

  x0 = conv(x, c, 7, "conv")
  x1 = conv(x0, c, 3, "conv1", 2)
  x1 = conv(x1, 2 * c, 3, "conv2")
  x2 = conv(x1, 2 * c, 3, "conv3", 2)
  x2 = conv(x2, 4 * c, 3, "conv4")
  block = functools.partial(residual_block, channels=4 * c)
  for i in range(num_blocks):
    x2 = layers.block(f"resblock_{i}", block, x2)
  x2 = conv(x2, 2 * c, 3, "conv5")
  x3 = conv(skip(x1, x2), 2 * c, 3, "conv6")
  x3 = conv(x3, c, 3, "conv7")
  x4 = conv(skip(x0, x3), c, 3, "conv8")
  return layers.tanh(layers.conv(x4, 3, 7, name="conv9"))


class _FlaxLayers:
  """`generator_forward`'s vocabulary as Flax layers (NHWC), created inside the calling module."""

  def __init__(self, dtype: jnp.dtype):
    self.dtype = dtype

  def conv(self, x: jax.Array, features: int, kernel_size: int, *, name: str, stride: int = 1):
    return torch_conv(x, features, kernel_size, name=name, stride=stride, dtype=self.dtype)

  leaky_relu = staticmethod(nn.leaky_relu)
  add = staticmethod(operator.add)
  tanh = staticmethod(jnp.tanh)
  upsample2x = staticmethod(upsample2x_align_corners)

  @staticmethod
  def ssa(query: jax.Array, key: jax.Array, patch_size: int) -> jax.Array:
    return ssa(query, key, patch_size=patch_size)

  def block(self, name: str, fn: Callable, x: jax.Array) -> jax.Array:
    return _Block(fn, dtype=self.dtype, name=name)(x)


class _Block(nn.Module):
  """fn(_FlaxLayers(dtype), x) with its parameters under this module's name."""

  fn: Callable
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fn(_FlaxLayers(self.dtype), x)


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
    return generator_forward(
      _FlaxLayers(self.dtype),
      x.astype(self.dtype),
      channels=self.channels,
      num_blocks=self.num_blocks,
      ssa_patch_size=self.ssa_patch_size,
    )
