"""pytorch-fid's Inception-v3 (FIDInceptionA/C/E blocks) up to pool3 (2048-d) as a Flax module.

Same network as mseitzer/pytorch-fid `InceptionV3(output_blocks=(3,))` with the TF-ported
weights pt_inception-2015-12-05-6726825d.pth: torchvision Inception3 layers (BasicConv2d = conv
without bias + BatchNorm(eps=1e-3) + ReLU), average pools that exclude padding in Mixed_5b-5d,
6b-6e and 7b, a max pool in Mixed_7c's pool branch, and a global average pool at the end.
Variables: {'params': conv kernels (HWIO) and BN scale/bias, 'batch_stats': BN mean/var}, from
`cartoon-jax convert --kind inception` (cartoon_jax.weights.inception).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FID_SIZE = 299
BN_EPS = 1e-3
NUM_FEATURES = 2048


@functools.cache
def variables_shapes() -> dict:
  """ShapeDtypeStructs of FIDInceptionV3's variables (no compute; cached, do not modify)."""
  x = jnp.zeros((1, 75, 75, 3), jnp.float32)
  return jax.eval_shape(FIDInceptionV3(resize_input=False).init, jax.random.PRNGKey(0), x)


# ----------------------------------------------------------------------------------------------
# The network.


@functools.lru_cache(maxsize=64)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) float32 matrix of 1-D bilinear interpolation as torch's
  F.interpolate(mode='bilinear', align_corners=False) without antialiasing, with its float32
  source-index arithmetic (scale = in / out, src = max(scale * (o + 0.5) - 0.5, 0)). Cached;
  the array is read-only."""
  m = np.zeros((size_out, size_in), np.float32)
  scale = np.float32(size_in) / np.float32(size_out)
  for o in range(size_out):
    src = max(scale * (np.float32(o) + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = int(src)
    step = 1 if i0 < size_in - 1 else 0
    frac = np.float32(min(max(src - np.float32(i0), 0.0), 1.0))
    m[o, i0] += np.float32(1.0) - frac
    m[o, i0 + step] += frac
  m.flags.writeable = False
  return m


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """(B, H, W, C) -> (B, height, width, C), torch bilinear with align_corners=False."""
  if x.shape[1:3] == (height, width):
    return x
  ry = jnp.asarray(resize_matrix(x.shape[1], height))
  rx = jnp.asarray(resize_matrix(x.shape[2], width))
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,bhwc->bowc", ry, x, precision=hi)
  return jnp.einsum("pw,bowc->bopc", rx, x, precision=hi)


class BasicConv(nn.Module):
  """Conv (no bias) + BatchNorm (running statistics, eps 1e-3) + ReLU; 'same' or no padding."""

  features: int
  kernel: tuple[int, int]
  strides: int = 1
  same: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel
    pad = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if self.same else ((0, 0), (0, 0))
    x = nn.Conv(
      self.features,
      self.kernel,
      strides=self.strides,
      padding=pad,
      use_bias=False,
      precision=jax.lax.Precision.HIGHEST,
      name="conv",
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), name="branch5x5_2")(b5)
    b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(384, (3, 3), strides=2, same=False, name="branch3x3")(x)
    bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), strides=2, same=False, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv(c7, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), name="branch7x7_3")(b7)
    bd = BasicConv(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, (7, 1), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, (1, 7), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, (7, 1), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), strides=2, same=False, name="branch3x3_2")(b3)
    b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), strides=2, same=False, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (pool='avg', padding excluded) or FIDInceptionE_2 (pool='max')."""

  pool: str

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate(
      [
        BasicConv(384, (1, 3), name="branch3x3_2a")(b3),
        BasicConv(384, (3, 1), name="branch3x3_2b")(b3),
      ],
      axis=-1,
    )
    bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate(
      [
        BasicConv(384, (1, 3), name="branch3x3dbl_3a")(bd),
        BasicConv(384, (3, 1), name="branch3x3dbl_3b")(bd),
      ],
      axis=-1,
    )
    if self.pool == "avg":
      pooled = _avg_pool_3x3(x)
    else:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    bp = BasicConv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """pool3 features (B, 2048) of images x (B, H, W, 3) RGB in [0, 1] (pytorch-fid's input range).

  resize_input: bilinear resize to 299x299 first (torch align_corners=False, no antialias), as
  pytorch-fid does by default. normalize_input: map [0, 1] to [-1, 1]. Inputs must be at least
  75x75 when not resized. Variables: 'params' and 'batch_stats' (BatchNorm running statistics).
  """

  resize_input: bool = True
  normalize_input: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"FIDInceptionV3: expected (B, H, W, 3) RGB input, got shape {x.shape}")
    x = x.astype(jnp.float32)
    if self.resize_input:
      x = resize_bilinear(x, FID_SIZE, FID_SIZE)
    elif min(x.shape[1:3]) < 75:
      raise ValueError(f"FIDInceptionV3: input {x.shape[1:3]} is smaller than 75x75")
    if self.normalize_input:
      x = 2.0 * x - 1.0
    x = BasicConv(32, (3, 3), strides=2, same=False, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), same=False, name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), same=False, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE("avg", name="Mixed_7b")(x)
    x = InceptionE("max", name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))
