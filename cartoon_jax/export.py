"""Flax variables <-> flat NumPy .npz ('/'-joined keys), loadable with allow_pickle=False.

An optional metadata dict is stored as JSON under the key '__meta__' (a 0-d unicode array).
"""

import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from cartoon_jax import file_kinds, images

META_KEY = "__meta__"
# What to do with the weight files `cartoon-jax convert` reads, given where an .npz goes.
CONVERT_HINTS = dict.fromkeys(("torch", "pickle", "npy"), "convert it with `cartoon-jax convert`")


def _flatten(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Nested dict of arrays -> {'a/b/c': np.ndarray}. Keys must be strings without '/'."""
  flat = traverse_util.flatten_dict(dict(tree))
  for path in flat:
    bad = [p for p in path if not isinstance(p, str) or not p or "/" in p]
    if bad:
      name = "/".join(map(str, path))
      raise ValueError(f"cannot export key {name!r}: keys must be non-empty, no '/'")
  return {"/".join(path): np.asarray(value) for path, value in flat.items()}


def write_npz(flat: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
  """Write arrays to `path` atomically (temp file in the same folder, then os.replace)."""
  path = os.fspath(path)
  for key, value in flat.items():
    if value.dtype.kind not in "biufcU":
      raise ValueError(
        f"{path}: {key!r} has dtype {value.dtype}, which .npz cannot hold without pickle; "
        "cast it (e.g. to float32) first"
      )
  with images.atomic_output(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, **flat)


def save_params(
  variables: Mapping[str, Any], path: str | os.PathLike, *, meta: Mapping[str, Any] | None = None
) -> None:
  """Save a (nested) Flax variables dict to a flat .npz, atomically; `meta` is stored as JSON."""
  flat = _flatten(variables)
  if META_KEY in flat:
    raise ValueError(f"{META_KEY!r} is reserved for metadata")
  if meta is not None:
    flat[META_KEY] = np.array(json.dumps(dict(meta)))
  write_npz(flat, path)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All arrays of an .npz (allow_pickle=False), metadata key included."""
  path = os.fspath(path)
  file_kinds.expect(path, ("npz",), "a NumPy .npz", hints=CONVERT_HINTS)
  try:
    with np.load(path, allow_pickle=False) as data:
      return {key: data[key] for key in data.files}
  except ValueError as e:
    raise ValueError(f"{path}: not a readable .npz without pickle ({e})") from None
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise ValueError(f"{path}: damaged .npz ({type(e).__name__}: {e})") from None


def load_params(path: str | os.PathLike) -> dict[str, Any]:
  """Nested dict of np.ndarray saved by `save_params` (metadata left out)."""
  flat = read_npz(path)
  flat.pop(META_KEY, None)
  return traverse_util.unflatten_dict(flat, sep="/")


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
  """The metadata dict saved with the params ({} if none)."""
  flat = read_npz(path)
  if META_KEY not in flat:
    return {}
  return json.loads(str(flat[META_KEY][()]))
