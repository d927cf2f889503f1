"""pytorch-fid's Inception-v3 (FIDInceptionA/C/E blocks) up to pool3 (2048-d) as a Flax module.

Same network as mseitzer/pytorch-fid `InceptionV3(output_blocks=(3,))` with the TF-ported
weights pt_inception-2015-12-05-6726825d.pth: torchvision Inception3 layers (BasicConv2d = conv
without bias + BatchNorm(eps=1e-3) + ReLU), average pools that exclude padding in Mixed_5b-5d,
6b-6e and 7b, a max pool in Mixed_7c's pool branch, and a global average pool at the end.
`convert_state_dict` maps that .pth (read into NumPy by cartoon_jax.weights) to our variables:
{'params': conv kernels (HWIO) and BN scale/bias, 'batch_stats': BN mean/var}.
"""

import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax.export import unflatten

FID_SIZE = 299
BN_EPS = 1e-3
NUM_FEATURES = 2048
NUM_CLASSES = 1008  # the TF graph's classifier, present in the .pth and unused for FID

# ----------------------------------------------------------------------------------------------
# pytorch-fid's state_dict layout: (module path, in channels, out channels, kernel (kh, kw)).


def _a(cin: int, pool: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 64, (1, 1)),
    ("branch5x5_1", cin, 48, (1, 1)),
    ("branch5x5_2", 48, 64, (5, 5)),
    ("branch3x3dbl_1", cin, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
    ("branch_pool", cin, pool, (1, 1)),
  ]


def _b(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch3x3", cin, 384, (3, 3)),
    ("branch3x3dbl_1", cin, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
  ]


def _c(cin: int, c7: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 192, (1, 1)),
    ("branch7x7_1", cin, c7, (1, 1)),
    ("branch7x7_2", c7, c7, (1, 7)),
    ("branch7x7_3", c7, 192, (7, 1)),
    ("branch7x7dbl_1", cin, c7, (1, 1)),
    ("branch7x7dbl_2", c7, c7, (7, 1)),
    ("branch7x7dbl_3", c7, c7, (1, 7)),
    ("branch7x7dbl_4", c7, c7, (7, 1)),
    ("branch7x7dbl_5", c7, 192, (1, 7)),
    ("branch_pool", cin, 192, (1, 1)),
  ]


def _d(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch3x3_1", cin, 192, (1, 1)),
    ("branch3x3_2", 192, 320, (3, 3)),
    ("branch7x7x3_1", cin, 192, (1, 1)),
    ("branch7x7x3_2", 192, 192, (1, 7)),
    ("branch7x7x3_3", 192, 192, (7, 1)),
    ("branch7x7x3_4", 192, 192, (3, 3)),
  ]


def _e(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 320, (1, 1)),
    ("branch3x3_1", cin, 384, (1, 1)),
    ("branch3x3_2a", 384, 384, (1, 3)),
    ("branch3x3_2b", 384, 384, (3, 1)),
    ("branch3x3dbl_1", cin, 448, (1, 1)),
    ("branch3x3dbl_2", 448, 384, (3, 3)),
    ("branch3x3dbl_3a", 384, 384, (1, 3)),
    ("branch3x3dbl_3b", 384, 384, (3, 1)),
    ("branch_pool", cin, 192, (1, 1)),
  ]


def basic_convs() -> list[tuple[str, int, int, tuple[int, int]]]:
  """Every BasicConv2d of pytorch-fid's FID Inception: (dotted path, cin, cout, (kh, kw))."""
  convs = [
    ("Conv2d_1a_3x3", 3, 32, (3, 3)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3)),
    ("Conv2d_3b_1x1", 64, 80, (1, 1)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3)),
  ]
  blocks = [
    ("Mixed_5b", _a(192, 32)),
    ("Mixed_5c", _a(256, 64)),
    ("Mixed_5d", _a(288, 64)),
    ("Mixed_6a", _b(288)),
    ("Mixed_6b", _c(768, 128)),
    ("Mixed_6c", _c(768, 160)),
    ("Mixed_6d", _c(768, 160)),
    ("Mixed_6e", _c(768, 192)),
    ("Mixed_7a", _d(768)),
    ("Mixed_7b", _e(1280)),
    ("Mixed_7c", _e(2048)),
  ]
  for block, table in blocks:
    convs += [(f"{block}.{name}", cin, cout, k) for name, cin, cout, k in table]
  return convs


def state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """{key: shape} that pytorch-fid's pt_inception-2015-12-05 state_dict must hold (BN
  num_batches_tracked counters are optional and not listed)."""
  shapes = {}
  for path, cin, cout, (kh, kw) in basic_convs():
    shapes[f"{path}.conv.weight"] = (cout, cin, kh, kw)
    for name in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{path}.bn.{name}"] = (cout,)
  shapes["fc.weight"] = (NUM_CLASSES, NUM_FEATURES)
  shapes["fc.bias"] = (NUM_CLASSES,)
  return shapes


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
  """pytorch-fid Inception state_dict -> {'params': ..., 'batch_stats': ...} for FIDInceptionV3.

  Every key of `state_dict_shapes()` must be present with its shape; '*.num_batches_tracked' is
  accepted and dropped, fc.* (the 1008-way classifier) is checked and dropped; anything else is a
  ValueError naming the key.
  """
  what = "pytorch-fid Inception state_dict"
  want = state_dict_shapes()
  for key, shape in want.items():
    if key not in state_dict:
      raise ValueError(f"{what}: missing key {key!r}")
    if tuple(np.shape(state_dict[key])) != shape:
      raise ValueError(
        f"{what}: key {key!r} has shape {tuple(np.shape(state_dict[key]))}, expected {shape}"
      )
  extra = sorted(k for k in state_dict if k not in want and not k.endswith(".num_batches_tracked"))
  if extra:
    raise ValueError(f"{what}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")
  flat = {}
  for path, *_ in basic_convs():
    dst = path.replace(".", "/")
    src = lambda name, path=path: np.asarray(state_dict[f"{path}.{name}"], np.float32)
    flat[f"params/{dst}/conv/kernel"] = np.ascontiguousarray(
      src("conv.weight").transpose(2, 3, 1, 0)
    )
    flat[f"params/{dst}/bn/scale"] = src("bn.weight")
    flat[f"params/{dst}/bn/bias"] = src("bn.bias")
    flat[f"batch_stats/{dst}/bn/mean"] = src("bn.running_mean")
    flat[f"batch_stats/{dst}/bn/var"] = src("bn.running_var")
  variables = unflatten(flat)
  from cartoon_jax.weights import check

  check(variables, like=variables_shapes(), source=what)
  return variables


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
