"""Offline weight conversion (`python -m cartoon_jax.weights convert ...`) and checked loading."""

import os
from collections.abc import Mapping
from typing import Any

from cartoon_jax.export import load_params
from cartoon_jax.weights.convert import authors_generator, caffe_vgg19, torchvision_vgg

__all__ = ["authors_generator", "caffe_vgg19", "check", "load_checked", "torchvision_vgg"]


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


def load_checked(path: str | os.PathLike, *, like: Mapping[str, Any]) -> dict[str, Any]:
  """Load an .npz written by `save_params` or the converters, checked key by key against `like`.

  Returns the nested dict of NumPy arrays (metadata left out), e.g. {'params': {...}}.
  """
  tree = load_params(path)
  check(tree, like=like, source=os.fspath(path))
  return tree
