"""Readers of pickle-based weight files into plain dicts of NumPy arrays.

These are the only places that unpickle: torch.load(weights_only=True) for .pth/.ckpt (torch is
imported here, lazily, and is not a runtime dependency) and np.load(allow_pickle=True) for the
Caffe vgg19.npy. Run them only on files you trust.
"""

import os
from typing import Any

import numpy as np


def _exists(path: str | os.PathLike) -> str:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such weights file: {path}")
  return path


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A .pth state_dict or a Lightning .ckpt (its 'state_dict') -> {key: float array}."""
  path = _exists(path)
  try:
    import torch
  except ImportError as e:
    raise ImportError(
      f"reading {path} needs PyTorch (CPU build: pip install torch==2.13.0); "
      "it is only needed for weight conversion"
    ) from e
  obj: Any = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise ValueError(f"{path}: expected a state_dict (dict of tensors), got {type(obj).__name__}")
  return {
    key: value.detach().cpu().numpy()
    for key, value in obj.items()
    if isinstance(value, torch.Tensor)
  }


def read_caffe_vgg19(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
  """The authors' vgg19.npy (a pickled dict {'conv1_1': [kernel HWIO, bias], ...})."""
  path = _exists(path)
  data = np.load(path, encoding="latin1", allow_pickle=True)
  if data.shape != () or not isinstance(data.item(), dict):
    raise ValueError(f"{path}: expected a pickled dict of [kernel, bias] lists")
  return {key: [np.asarray(a) for a in value] for key, value in data.item().items()}
