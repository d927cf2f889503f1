"""Files and arrays: atomic writes, JSON, NumPy .npz (Flax variables), and the pixel range.

Every output is written through `atomic_output`: a temporary file in the target's folder, renamed
onto the target only when complete and deleted if anything fails, so a reader never sees a partial
file and a failed write leaves the old file as it was. Commands check each output with
`check_output` before they do any work.

An .npz holds Flax variables as flat '/'-joined keys, loadable with allow_pickle=False; an optional
metadata dict is stored as JSON under the key '__meta__' (a 0-d unicode array).

Images are stored as uint8 and the models work in [-1, 1]: `to_model_range` and `to_pixels` are the
one conversion between the two (NumPy or JAX arrays).
"""

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from cartoon_jax import file_kinds

META_KEY = "__meta__"
# What to do with the weight files `cartoon-jax convert` reads, given where an .npz goes.
CONVERT_HINTS = dict.fromkeys(("torch", "pickle", "npy"), "convert it with `cartoon-jax convert`")

# ------------------------------------------------------------------------------------------------
# The pixel range.


def to_model_range(pixels: Any) -> Any:
  """uint8 pixels (a NumPy or JAX array) -> float32 in [-1, 1]: pixels / 127.5 - 1."""
  return pixels.astype(np.float32) / 127.5 - 1.0


def to_pixels(x: Any, *, dtype: Any = np.uint8) -> Any:
  """[-1, 1] values (a NumPy or JAX array) -> (x + 1) * 127.5 clipped to [0, 255], rounded to the
  nearest level (half to even) for an integer `dtype`, unrounded for a float one."""
  values = ((x + 1.0) * 127.5).clip(0.0, 255.0)
  if np.issubdtype(dtype, np.integer):
    values = values.round()
  return values.astype(dtype)


# ------------------------------------------------------------------------------------------------
# Atomic writes.


def temp_path_for(path: str) -> str:
  """Creates an empty temporary file next to `path` (same extension, hidden); returns its path."""
  folder, name = os.path.split(os.path.abspath(path))
  stem, ext = os.path.splitext(name)
  fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=folder)
  os.close(fd)
  return tmp


def replace_into(tmp: str, path: str) -> None:
  """Renames a finished temporary file onto `path`, with the permissions a new file would get."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)
  os.replace(tmp, path)


def check_folder(folder: str, *, what: str) -> None:
  """Raises OSError naming `what` unless `folder`, or where it is missing the nearest existing
  folder above it (the missing ones are created when the output is written), is a writable
  folder."""
  existing = os.path.abspath(folder or ".")
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise NotADirectoryError(f"{what}: {existing} is not a folder")
  try:
    fd, probe_path = tempfile.mkstemp(prefix=".write-test.", dir=existing)
  except OSError as e:
    raise PermissionError(f"{what}: folder {existing} is not writable ({e.strerror})") from None
  os.close(fd)
  os.remove(probe_path)


def check_output(path: str, *, overwrite: bool) -> None:
  """Raises OSError naming `path` unless a command may write it: not a folder, not an existing
  file without `overwrite`, in a writable (or creatable) folder. Commands call it for every
  output before they write anything."""
  if os.path.isdir(path):
    raise IsADirectoryError(f"{path} is a folder: give a file name")
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
  check_folder(os.path.dirname(os.path.abspath(path)), what=path)


def make_parents(path: str) -> list[str]:
  """Creates the missing parent folders of `path`; returns the ones it created, deepest first."""
  missing, folder = [], os.path.dirname(os.path.abspath(path))
  while not os.path.exists(folder):
    missing.append(folder)
    folder = os.path.dirname(folder)
  if missing:
    os.makedirs(missing[0])
  return missing


def remove_empty(folders: list[str]) -> None:
  """Removes `folders` (deepest first) while they are empty: undoes `make_parents` after a
  failure, so that a failed command leaves no folder behind."""
  for folder in folders:
    try:
      os.rmdir(folder)
    except OSError:
      return


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
  """Yields a temporary path to write; on success it replaces `path`, on any error it is deleted.

  Missing parent folders of `path` are created (and removed again on an error).
  """
  created = make_parents(path)
  try:
    tmp = temp_path_for(path)
    try:
      yield tmp
      replace_into(tmp, path)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
  except BaseException:
    remove_empty(created)
    raise


@contextlib.contextmanager
def atomic_folder(dst: str, *, overwrite: bool) -> Iterator[str]:
  """A temporary folder beside `dst` to fill; when the block ends without error it becomes `dst`
  (an existing `dst`, allowed only with `overwrite`, is replaced in one rename), readable as the
  umask allows. On an error it is removed, with the parent folders this created."""
  dst = os.path.abspath(dst)
  if os.path.exists(dst) and not overwrite:
    raise FileExistsError(f"{dst} exists (pass --overwrite to replace it)")
  parent = os.path.dirname(dst)
  check_folder(parent, what=dst)
  created = make_parents(dst)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}-", dir=parent)
  try:
    yield tmp
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the folder from other users
    if os.path.exists(dst):
      trash = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}-old-", dir=parent)
      os.rename(dst, os.path.join(trash, "old"))
      os.rename(tmp, dst)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.rename(tmp, dst)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    remove_empty(created)
    raise


def atomic_write(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (see `atomic_output`)."""
  with atomic_output(path) as tmp, open(tmp, "wb") as f:
    f.write(data)


# ------------------------------------------------------------------------------------------------
# JSON and text.


def read_json(path: str, *, missing_ok: bool = False) -> Any:
  """The JSON value in the file `path`; {} for a missing file if `missing_ok`."""
  if missing_ok and not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def write_json(path: str, data: Any, *, overwrite: bool) -> None:
  """Writes `data` as indented JSON, atomically; refuses to replace a file unless `overwrite`."""
  check_output(path, overwrite=overwrite)
  atomic_write(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def write_text(path: str, text: str, *, overwrite: bool) -> None:
  """Writes `text` atomically; refuses to replace a file unless `overwrite`."""
  check_output(path, overwrite=overwrite)
  atomic_write(path, text.encode())


# ------------------------------------------------------------------------------------------------
# NumPy .npz.


def _leaves(tree: Mapping[str, Any], path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
  """{key path: leaf} of a nested mapping (empty sub-mappings hold no leaf)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_leaves(value, (*path, key)))
    else:
      out[(*path, key)] = value
  return out


def _shapes(tree: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
  """{'a/b': shape} of a nested mapping whose leaves have a .shape (arrays, ShapeDtypeStruct)."""
  return {"/".join(map(str, path)): tuple(leaf.shape) for path, leaf in _leaves(tree).items()}


def _flatten(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Nested dict of arrays -> {'a/b/c': np.ndarray}. Keys must be strings without '/'."""
  flat = _leaves(tree)
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
  with atomic_output(path) as tmp, open(tmp, "wb") as f:
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
  tree: dict[str, Any] = {}
  for key, value in flat.items():
    *groups, name = key.split("/")
    node = tree
    for group in groups:
      node = node.setdefault(group, {})
    node[name] = value
  return tree


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
  """The metadata dict saved with the params ({} if none)."""
  flat = read_npz(path)
  if META_KEY not in flat:
    return {}
  return json.loads(str(flat[META_KEY][()]))


def check_tree(tree: Mapping[str, Any], *, like: Mapping[str, Any], source: str) -> None:
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
